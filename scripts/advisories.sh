#!/usr/bin/env bash
# Refreshes supply-chain/advisory-db, the copy of the RustSec advisory database that
# `make lint` (scripts/deny.sh) checks Cargo.lock against without reaching GitHub: the
# advisories of every crate name in Cargo.lock, all versions, and nothing else.
#   scripts/advisories.sh            clone https://github.com/rustsec/advisory-db (needs GitHub)
#   scripts/advisories.sh CHECKOUT   use a clone (or a bare mirror) already on this machine
# Run it after adding a dependency (scripts/deny.sh refuses a Cargo.lock with crate names the
# copy has not looked at) and now and then to pick up new advisories. The advisories are
# CC0-1.0 (supply-chain/advisory-db/LICENSE.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

url=https://github.com/rustsec/advisory-db
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src=${1:-}
if [ -z "$src" ]; then
  git clone -q --depth 1 "$url" "$work/db"
  src=$work/db
elif [ ! -d "$src/crates" ]; then
  # A bare mirror: check it out first.
  git clone -q "$src" "$work/db"
  src=$work/db
fi

out=supply-chain/advisory-db
rm -rf "$out"
mkdir -p "$out/crates"
names=$(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.lock | sort -u)
for name in $names; do
  if [ -d "$src/crates/$name" ]; then cp -r "$src/crates/$name" "$out/crates/"; fi
done
cp "$src/LICENSE.txt" "$out/"
printf '%s\n' $names > "$out/CRATES"
{
  echo "# The RustSec advisories of the crates named in CRATES (scripts/advisories.sh)."
  echo "url = $url"
  echo "commit = $(git -C "$src" rev-parse HEAD)"
  echo "date = $(git -C "$src" show -s --format=%cI HEAD)"
} > "$out/SOURCE"
echo "advisories: $(find "$out/crates" -name '*.md' | wc -l) advisories of $(wc -l < "$out/CRATES") crate names, from $(sed -n 's/^commit = //p' "$out/SOURCE")"
