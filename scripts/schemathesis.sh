#!/usr/bin/env bash
# Fuzzes the merchant API against its own OpenAPI document with Schemathesis (a third-party
# property-based tester, installed from PyPI into target/tools once): it starts ScanPay in demo
# posture on a free loopback port with a fresh data folder, makes an API key for the demo
# merchant and runs every check on every operation, but for the two exceptions that
# scripts/schemathesis.toml lists with their reasons. `make test` runs it; a failure prints
# Schemathesis's report and a curl line that reproduces it.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=4.32.5
VENV=target/tools/schemathesis-$VERSION
if [ ! -x "$VENV/bin/st" ]; then
  echo "[schemathesis] installing schemathesis $VERSION (PyPI, about 20 s, once per machine)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$VERSION"
fi

BIN=${SCANPAY_BIN:-./target/debug/scanpay}
[ -x "$BIN" ] || { echo "[schemathesis] $BIN is missing: make build first" >&2; exit 1; }
DATA=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT"
pid=
stop() { [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$DATA"; }
trap stop EXIT

export SCANPAY_DATA_DIR="$DATA" SCANPAY_LISTEN="127.0.0.1:$PORT" SCANPAY_PUBLIC_URL="$URL" \
  SCANPAY_LOG=${SCANPAY_LOG:-warn} SCANPAY_API_RATE_PER_MINUTE=100000
"$BIN" serve > "$DATA/serve.log" 2>&1 &
pid=$!
for _ in $(seq 300); do curl -fs "$URL/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "$URL/healthz" >/dev/null || { cat "$DATA/serve.log" >&2; exit 1; }
# The demo merchant exists once the demo has started.
KEY=$("$BIN" apikey create --merchant mer_demo --name schemathesis | awk 'NR==1 {print $2}')

"$VENV/bin/st" --config-file scripts/schemathesis.toml run "$URL/api/v1/openapi.json" \
  --url "$URL/api/v1" \
  --header "Authorization: Bearer $KEY" \
  --max-examples "${SCHEMATHESIS_EXAMPLES:-60}" --seed 20261202 \
  --suppress-health-check all --no-color
