#!/usr/bin/env bash
# bench-go.sh: the Go benchmarks (parser, encoder, re-poll parsing, one
# message's whole cycle on a real redis-server, what one message costs
# Redis) of a base commit and of the working tree, compared by benchstat.
#
#   scripts/bench-go.sh [BASE]     BASE: a git ref, default HEAD
#
# COUNT (default 8) turns, each running both once; BENCH (default .)
# selects benchmarks.
# Needs redis-server for BenchmarkMessageCycle and BenchmarkMessageInRedis.
# Base commits from before a benchmark existed have none to run; pick a
# later one.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${1:-HEAD}
COUNT=${COUNT:-8}
BENCH=${BENCH:-.}
PKGS=(./pkg/message ./pkg/httpapi ./pkg/queue)

work=$(mktemp -d)
trap 'git worktree remove --force "$work/base" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git worktree add --detach "$work/base" "$BASE" >/dev/null 2>&1

# Test binaries of both, run in turns, so that the machine's drift (other
# load, frequency) falls on both alike.
build() { # DIR TAG
  for pkg in "${PKGS[@]}"; do
    (cd "$1" && go test -c -o "$work/$2-$(basename "$pkg").test" "$pkg")
  done
}
build "$work/base" base
build . new
echo "== base $(git rev-parse --short "$BASE") against the working tree, $COUNT turns" >&2
for i in $(seq "$COUNT"); do
  for tag in base new; do
    for pkg in "${PKGS[@]}"; do
      (cd "$pkg" && "$work/$tag-$(basename "$pkg").test" -test.run '^$' -test.bench "$BENCH" -test.benchmem -test.count 1) >>"$work/$tag.txt"
    done
  done
  echo "turn $i of $COUNT done" >&2
done
go tool benchstat "base=$work/base.txt" "new=$work/new.txt"
