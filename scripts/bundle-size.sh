#!/usr/bin/env bash
# Prints the size of the built WASM + JS bundle, raw and gzip -9, in bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
name=$(sed -n 's/^output-name *= *"\(.*\)"/\1/p' Cargo.toml)
for f in "target/site/pkg/${name}_bg.wasm" "target/site/pkg/${name}.wasm" "target/site/pkg/${name}.js" "target/site/pkg/${name}.css"; do
  [ -f "$f" ] || continue
  printf '%-36s %9d B raw %9d B gzip\n' "$f" "$(stat -c %s "$f")" "$(gzip -9 -c "$f" | wc -c)"
done
