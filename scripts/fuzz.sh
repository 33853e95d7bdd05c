#!/usr/bin/env bash
# fuzz.sh: one bounded fuzzing run of one target, as `make test-fuzz` does.
#
#   scripts/fuzz.sh TARGET PACKAGE      (FUZZTIME, default 10s)
#
# A real finding fails: go test writes the failing input under
# PACKAGE/testdata/fuzz/TARGET and says "Failing input written". Go 1.26's
# fuzzing coordinator also fails now and then with a bare "context deadline
# exceeded" when -fuzztime runs out while a worker is busy, which is its
# own race (go.dev/issue/75804, fixed in Go 1.27), not a finding: then the
# target's corpus is replayed deterministically, and that decides.
set -uo pipefail
target=$1 pkg=$2
log=$(mktemp)
trap 'rm -f "$log"' EXIT

"${GO:-go}" test -run '^$' -fuzz "^${target}\$" -fuzztime "${FUZZTIME:-10s}" "$pkg" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
[ "$status" = 0 ] && exit 0
if grep -q 'context deadline exceeded' "$log" && ! grep -q -e 'Failing input written' -e 'panic:' -e '_test.go:[0-9]' "$log"; then
  echo "fuzz.sh: $target stopped on the fuzzing engine's deadline race (go.dev/issue/75804), with no finding; replaying its corpus"
  exec "${GO:-go}" test -count=1 -run "^${target}\$" "$pkg"
fi
exit "$status"
