#!/usr/bin/env bash
# Packs a release: target/dist/scanpay-<version>-<commit>-<arch>-linux.tar.gz with the
# `scanpay` program, the site folder, a sample scanpay.toml, a systemd unit and INSTALL.md.
#   scripts/dist.sh           the release build (`make dist` builds it first)
#   scripts/dist.sh --debug   the debug build, for the test that unpacks and starts it
set -euo pipefail
cd "$(dirname "$0")/.."

mode=release
[ "${1:-}" = "--debug" ] && mode=debug
bin=target/$mode/scanpay
[ -x "$bin" ] || { echo "dist: $bin is missing; run make build (or make release) first" >&2; exit 1; }
[ -f target/site/pkg/scanpay.wasm ] || { echo "dist: target/site is missing; run scripts/site.sh first" >&2; exit 1; }

# "scanpay 0.1.0 (commit 1234abcd5678)" → 0.1.0-1234abcd5678
version=$("$bin" --version | sed -n 's/^scanpay \([^ ]*\) (commit \([^)]*\)).*/\1-\2/p')
[ -n "$version" ] || { echo "dist: cannot read the version of $bin" >&2; exit 1; }
name="scanpay-$version-$(uname -m)-linux"
out=target/dist/$name
rm -rf "$out" "$out.tar.gz"
mkdir -p "$out"
cp "$bin" "$out/scanpay"
cp -r target/site "$out/site"
cp scripts/dist/scanpay.toml.sample scripts/dist/scanpay.service scripts/dist/INSTALL.md "$out/"
tar -C target/dist -czf "$out.tar.gz" "$name"
rm -rf "$out"
echo "$out.tar.gz"
