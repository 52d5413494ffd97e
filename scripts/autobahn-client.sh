#!/usr/bin/env bash
# Drives `duplex connect --echo` through every case of an Autobahn|Testsuite
# fuzzingserver (wstest -m fuzzingserver) listening at $AUTOBAHN (default
# ws://127.0.0.1:9001), then asks it to write its reports. Autobahn itself is
# not part of this repository: run it yourself (it needs Python 2.7).
set -euo pipefail
cd "$(dirname "$0")/.."
AUTOBAHN=${AUTOBAHN:-ws://127.0.0.1:9001}
AGENT=${AGENT:-duplex}
bin=$(mktemp -d)/duplex
go build -o "$bin" ./cmd/duplex
count=$("$bin" connect "$AUTOBAHN/getCaseCount" </dev/null 2>/dev/null | head -n1)
echo "cases: $count"
for ((i = 1; i <= count; i++)); do
  timeout 120 "$bin" connect --echo --deflate "$AUTOBAHN/runCase?case=$i&agent=$AGENT" >/dev/null 2>&1 || true
done
"$bin" connect "$AUTOBAHN/updateReports?agent=$AGENT" </dev/null >/dev/null 2>&1 || true
echo "reports written by the fuzzingserver"
