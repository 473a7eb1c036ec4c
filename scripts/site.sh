#!/usr/bin/env bash
# Builds the site folder the server serves (target/site: pkg/<name>.js, pkg/<name>.wasm,
# pkg/<name>.css and the files of public/) with plain cargo and wasm-bindgen: the layout
# cargo-leptos makes, without compiling cargo-leptos itself (16 minutes on a bare 2-core
# machine). cargo-leptos stays usable for `cargo leptos watch`.
#   scripts/site.sh            debug bundle (what make run and the tests use)
#   scripts/site.sh --release  optimised bundle (profile wasm-release, then wasm-opt -Oz)
set -euo pipefail
cd "$(dirname "$0")/.."

name=$(sed -n 's/^output-name *= *"\(.*\)"/\1/p' Cargo.toml)
site=target/site
pkg="$site/pkg"
if [ "${1:-}" = "--release" ]; then
  profile=(--profile wasm-release)
  out=wasm-release
else
  profile=()
  out=debug
fi

# The browser half of the app. The same flags as the server build (Makefile CARGO_ENV), as
# cargo-leptos passes them to both.
LEPTOS_OUTPUT_NAME="$name" LEPTOS_SITE_ROOT="$site" LEPTOS_SITE_PKG_DIR=pkg \
  RUSTFLAGS="--cfg erase_components" \
  cargo build -p app --lib --target wasm32-unknown-unknown --no-default-features \
  --features hydrate "${profile[@]}"

tmp="$pkg.new"
rm -rf "$tmp"
mkdir -p "$tmp"
wasm-bindgen "target/wasm32-unknown-unknown/$out/app.wasm" --target web --no-typescript \
  --out-dir "$tmp" --out-name "$name"
# A server built with LEPTOS_OUTPUT_NAME asks for <name>.wasm (leptos' HydrationScripts).
mv "$tmp/${name}_bg.wasm" "$tmp/$name.wasm"
if [ "$out" = wasm-release ]; then
  wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-reference-types --enable-multivalue --enable-mutable-globals \
    "$tmp/$name.wasm" -o "$tmp/$name.wasm"
fi
cp style/main.css "$tmp/$name.css"
mkdir -p "$site"
cp -r public/. "$site/"
# The API reference page (public/docs/api.html) renders the OpenAPI document with swagger-ui
# from npm (end2end/package.json), served from here: nothing is fetched from a CDN.
swagger=end2end/node_modules/swagger-ui-dist
[ -f "$swagger/swagger-ui-bundle.js" ] || { echo "site: $swagger is missing; run scripts/tools.sh" >&2; exit 1; }
cp "$swagger/swagger-ui-bundle.js" "$swagger/swagger-ui.css" "$site/docs/"
rm -rf "$pkg"
mv "$tmp" "$pkg"
echo "site: $pkg/$name.{js,wasm,css}"
