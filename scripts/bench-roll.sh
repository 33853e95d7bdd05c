#!/usr/bin/env bash
# Rolling restarts under load: builds the node and the load tool from the
# work tree and runs `cometbox-bench roll`, which starts a redis-server,
# the nodes and HAProxy on deployments/haproxy/haproxy.cfg (its own check
# timings) on 127.0.0.1 ports, holds long-polls and publishes through
# HAProxy, restarts the nodes one at a time with docker-compose's drain
# settings, and prints, per restart, lost, duplicated and empty answers
# and publish-to-delivery latency (docs/guarantees.md, "Rolling
# restarts"). It stops only what it started.
#
# Usage: scripts/bench-roll.sh [cometbox-bench roll flags]
#   e.g. scripts/bench-roll.sh -subs 2000 -rate 300 -rounds 2 -kills 1
# Environment:
#   OUT   result directory (default a new one under /tmp): the binaries,
#         the processes' logs, roll.txt and roll.json
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/cometbox-roll.XXXX")}
mkdir -p "$OUT"
for p in haproxy redis-server; do
  command -v "$p" >/dev/null || { echo "$p not found (apt-get install $p)" >&2; exit 1; }
done
go build -o "$OUT/cometbox" ./cmd/cometbox
go build -o "$OUT/cometbox-bench" ./cmd/cometbox-bench
"$OUT/cometbox" -version

"$OUT/cometbox-bench" roll -node-bin "$OUT/cometbox" -haproxy-cfg deployments/haproxy/haproxy.cfg \
  -dir "$OUT" -json "$OUT/roll.json" "$@" | tee "$OUT/roll.txt"
echo "results in $OUT"
