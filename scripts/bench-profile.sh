#!/usr/bin/env bash
# Profile one node under the load tool: starts a redis-server and a node
# built from the work tree (with -debug-listen), runs cometbox-bench
# against them and, while a phase runs, takes a pprof profile of the node
# and counts its system calls. Everything listens on 127.0.0.1 ports
# picked here; the script stops only what it started.
#
# Usage: scripts/bench-profile.sh [PHASES]
#   PHASES     cometbox-bench phases (default: max1=max/1/20s/16)
# Environment:
#   SUBS       long-polls to hold (default 10000)
#   PROFILE    cpu, allocs, heap, goroutine, trace or none (default cpu)
#   PROF_AT    seconds after the load tool starts to begin (default 12:
#              10,000 polls connected and settled, the first phase running)
#   PROF_SECS  length of the profile and of the system call count (default 10)
#   SYSCALLS   1 to count the node's system calls by kind with perf (needs
#              perf and tracefs; default 0)
#   GOGC       passed to the node as usual (unset: its -gc-percent)
#   NODE_ENV   more environment for the node alone, as NAME=VALUE words
#              (e.g. "GOMAXPROCS=1 GODEBUG=gctrace=1"; gctrace goes to
#              OUT/node.log)
#   OUT        result directory (default a new one under /tmp)
#
# Prints the load tool's table and the profile's top functions; the
# profile is in OUT/node.pprof for `go tool pprof OUT/cometbox OUT/node.pprof`
# (an execution trace in OUT/node.trace, for `go tool trace`).
set -euo pipefail
cd "$(dirname "$0")/.."

PHASES=${1:-max1=max/1/20s/16}
SUBS=${SUBS:-10000}
PROFILE=${PROFILE:-cpu}
PROF_AT=${PROF_AT:-12}
PROF_SECS=${PROF_SECS:-10}
SYSCALLS=${SYSCALLS:-0}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/cometbox-profile.XXXX")}
mkdir -p "$OUT"

command -v redis-server >/dev/null || { echo "redis-server not found (apt-get install redis-server)" >&2; exit 1; }
go build -o "$OUT/cometbox" ./cmd/cometbox
go build -o "$OUT/cometbox-bench" ./cmd/cometbox-bench

# Ports below the ephemeral range, where the polls' connections take theirs.
low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
base=$((10000 + RANDOM % (low - 10010)))
redis_port=$base node_port=$((base + 1)) debug_port=$((base + 2))

pids=()
cleanup() {
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  --loglevel warning --logfile "$OUT/redis.log" --dir "$OUT" &
redis_pid=$!
pids+=("$redis_pid")
for _ in $(seq 50); do [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done

env -- ${NODE_ENV:-} "$OUT/cometbox" -listen "127.0.0.1:$node_port" -redis-url "redis://127.0.0.1:$redis_port" \
  -debug-listen "127.0.0.1:$debug_port" -max-polls-per-client 0 -max-polls 19500 \
  -log-level warn >"$OUT/node.log" 2>&1 &
node_pid=$!
pids+=("$node_pid")
for _ in $(seq 100); do curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$node_port/readyz" 2>/dev/null && break; sleep 0.1; done

"$OUT/cometbox-bench" run -quiet -label profile -target cometbox -url "http://127.0.0.1:$node_port" \
  -subs "$SUBS" -phases "$PHASES" -pid "node=$node_pid" -pid "redis=$redis_pid" \
  -redis "127.0.0.1:$redis_port" -json "$OUT/bench.json" >"$OUT/bench.txt" &
bench_pid=$!
pids+=("$bench_pid")

delivered() { curl -fsS "http://127.0.0.1:$node_port/metrics" | awk '/^cometbox_messages_delivered_total /{print $2}'; }
sleep "$PROF_AT"
d0=$(delivered)
perf_pid=""
if [ "$SYSCALLS" = 1 ]; then
  perf stat -x, -o "$OUT/syscalls.csv" -p "$node_pid" \
    -e 'syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_futex,syscalls:sys_enter_nanosleep' \
    -- sleep "$PROF_SECS" &
  perf_pid=$!
  pids+=("$perf_pid")
fi
case $PROFILE in
  none) sleep "$PROF_SECS" ;;
  cpu) curl -fsS -o "$OUT/node.pprof" "http://127.0.0.1:$debug_port/debug/pprof/profile?seconds=$PROF_SECS" ;;
  trace) curl -fsS -o "$OUT/node.trace" "http://127.0.0.1:$debug_port/debug/pprof/trace?seconds=$PROF_SECS" ;;
  *) curl -fsS -o "$OUT/node.pprof" "http://127.0.0.1:$debug_port/debug/pprof/$PROFILE?seconds=$PROF_SECS" ;;
esac
[ -z "$perf_pid" ] || wait "$perf_pid" || true
d1=$(delivered)
wait "$bench_pid"

cat "$OUT/bench.txt"
msgs=$(awk -v a="$d0" -v b="$d1" 'BEGIN{printf "%d", b - a}')
echo "messages delivered while profiling: $msgs"
if [ "$SYSCALLS" = 1 ] && [ -s "$OUT/syscalls.csv" ] && [ "$msgs" -gt 0 ]; then
  echo "system calls of the node per delivered message:"
  awk -F, -v m="$msgs" '$3 ~ /sys_enter/ {sub(/.*sys_enter_/, "", $3); printf "  %-12s %6.2f\n", $3, $1 / m}' "$OUT/syscalls.csv"
fi
if [ "$PROFILE" = trace ]; then
  echo "time goroutines waited for a core once runnable, by where they were made runnable:"
  go tool trace -pprof=sched "$OUT/node.trace" >"$OUT/sched.pprof"
  go tool pprof -top -nodecount=25 "$OUT/sched.pprof" 2>/dev/null | sed -n '1,35p'
elif [ "$PROFILE" != none ]; then
  index=""
  [ "$PROFILE" = allocs ] && index="-sample_index=alloc_space"
  go tool pprof $index -top -nodecount=25 "$OUT/cometbox" "$OUT/node.pprof" 2>/dev/null | sed -n '1,35p'
fi
echo "results in $OUT"
