#!/usr/bin/env bash
# Starts a ScanPay cluster on loopback for a person to try (`make cluster`): the standalone
# sandbox gateways on 127.0.0.1:3100 and three nodes on 127.0.0.1:3001-3003 sharing the local
# PostgreSQL database `scanpay_cluster`. Ctrl-C stops them all.
#   Open http://127.0.0.1:3001/board, "Open the demo shop's board", then "Cluster".
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=./target/debug/scanpay
PG=${SCANPAY_CLUSTER_POSTGRES:-postgres://postgres@127.0.0.1:5432}
DB=${SCANPAY_CLUSTER_DATABASE:-scanpay_cluster}
DATA=${SCANPAY_CLUSTER_DATA:-data/cluster}
SECRET=${SCANPAY_CLUSTER_SECRET:-$(head -c 24 /dev/urandom | base64 | tr -d '/+=')}
mkdir -p "$DATA"

if ! psql "$PG/postgres" -Atqc "select 1 from pg_database where datname = '$DB'" | grep -q 1; then
  psql "$PG/postgres" -qc "create database $DB"
fi

pids=()
stop() { kill -TERM "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop EXIT INT TERM

# The sandbox prints the settings that point a node at it, one KEY=value per line.
SCANPAY_DATA_DIR="$DATA/sandbox" SCANPAY_LOG=warn "$BIN" sandbox --listen 127.0.0.1:3100 > "$DATA/sandbox.out" &
pids+=($!)
for _ in $(seq 100); do grep -q '^SCANPAY_WECHAT_APIV3_KEY_FILE=' "$DATA/sandbox.out" 2>/dev/null && break; sleep 0.1; done
mapfile -t settings < <(grep '^SCANPAY_' "$DATA/sandbox.out")

for n in 1 2 3; do
  env "${settings[@]}" \
    SCANPAY_DATABASE_URL="$PG/$DB" SCANPAY_CLUSTER_SECRET="$SECRET" SCANPAY_NODE_ID="node-$n" \
    SCANPAY_LISTEN="127.0.0.1:300$n" SCANPAY_PUBLIC_URL="http://127.0.0.1:300$n" \
    SCANPAY_DATA_DIR="$DATA/node-$n" SCANPAY_LOG="${SCANPAY_LOG:-warn}" \
    "$BIN" serve &
  pids+=($!)
done
echo "ScanPay cluster: nodes on http://127.0.0.1:3001, :3002, :3003 (PostgreSQL $DB), sandbox on :3100."
echo "Open http://127.0.0.1:3001/board, sign in to the demo shop, then Cluster. Ctrl-C stops all."
wait
