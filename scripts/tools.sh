#!/usr/bin/env bash
# Installs what building and testing ScanPay needs and a fresh machine lacks; skips what is
# present. Idempotent: a second run takes a second or two.
#   scripts/tools.sh          build tools (wasm32 target, wasm-bindgen, npm deps)
#   scripts/tools.sh --test   also what the tests need (Debian chromium, a running PostgreSQL)
# Versions are pinned where toolchain facts require it (see README "Toolchain").
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[tools]\033[0m %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# Rust's WebAssembly target, for the hydrate build.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# No cargo-leptos: scripts/site.sh builds the site with cargo and wasm-bindgen (cargo-leptos
# took 16 minutes to compile on a bare machine; `make watch` still uses it when installed).

# wasm-bindgen CLI at exactly the version Cargo.lock pins (a mismatch breaks the page at load).
wb_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if ! wasm-bindgen --version 2>/dev/null | grep -q " ${wb_version}\$"; then
  say "installing wasm-bindgen-cli ${wb_version} (about 3 minutes, once per machine)"
  # Without --locked: the registry lacks one of its locked dependencies.
  cargo install wasm-bindgen-cli --version "${wb_version}"
fi

# Node.js runs the end2end suite and provides wasm-opt (npm binaryen; Debian's breaks hydration).
if ! command -v npm >/dev/null 2>&1; then
  say "installing Node.js and npm"
  apt_install nodejs npm
fi
if [ ! -f end2end/node_modules/.package-lock.json ] || [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
  say "installing npm packages in end2end/"
  (cd end2end && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ "${1:-}" = "--test" ]; then
  # make test lints with clippy-driver and checks formatting with rustfmt.
  for component in clippy rustfmt; do
    if ! rustup component list --installed | grep -q "^$component"; then
      say "adding the $component component"
      rustup component add "$component"
    fi
  done
  if [ ! -x /usr/bin/chromium ]; then
    say "installing Debian's chromium for the end2end suite"
    apt_install chromium
  fi
  # Chinese pages in screenshots: a small CJK font (phones have one; a bare server does not).
  if [ ! -d /usr/share/fonts/truetype/wqy ]; then
    say "installing a CJK font for readable screenshots"
    apt_install fonts-wqy-microhei
  fi
  if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
    if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
      say "starting the local PostgreSQL server"
      as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
    fi
  fi
fi
say "tools ready"
