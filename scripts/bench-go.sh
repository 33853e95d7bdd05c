#!/usr/bin/env bash
# bench-go.sh: the Go benchmarks (parser, encoder, re-poll parsing, one
# message's whole cycle on a real redis-server) of a base commit and of the
# working tree, compared by benchstat.
#
#   scripts/bench-go.sh [BASE]     BASE: a git ref, default HEAD
#
# COUNT (default 8) runs of each; BENCH (default .) selects benchmarks.
# Needs redis-server for BenchmarkMessageCycle. Base commits from before the
# benchmarks existed have none to run; pick a later one.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${1:-HEAD}
COUNT=${COUNT:-8}
BENCH=${BENCH:-.}
PKGS=(./pkg/message ./pkg/httpapi)

work=$(mktemp -d)
trap 'git worktree remove --force "$work/base" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git worktree add --detach "$work/base" "$BASE" >/dev/null 2>&1

run() { # DIR OUT
  (cd "$1" && go test -run '^$' -bench "$BENCH" -benchmem -count "$COUNT" "${PKGS[@]}") | tee "$2" | grep -E '^Benchmark' >&2 || true
}
echo "== base: $(git rev-parse --short "$BASE")" >&2
run "$work/base" "$work/base.txt"
echo "== working tree" >&2
run . "$work/new.txt"
go tool benchstat "base=$work/base.txt" "new=$work/new.txt"
