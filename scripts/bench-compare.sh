#!/usr/bin/env bash
# Side-by-side benchmark of cometbox and Nchan (nginx + Redis), as
# docs/performance.md describes: installs nginx, libnginx-mod-nchan and
# redis-server from Debian when missing, builds the node and the load tool,
# then for each of RUNS runs, with fresh server processes every time:
#
#   cometbox: one node + one redis-server
#   nchan-wN: one nginx with N workers (WORKERS, default "1 2 4") + one redis-server
#
# each holding SUBS long-polls (default 10,000), with the same phases (a
# rate sweep, one message per request at max rate, and for cometbox
# batches of 100). Then two hold checks on cometbox: 19,000 polls on one
# node, and 50,000 on 3 nodes from 3 generator processes. Finally one table
# of medians with the ratios, and the latency chart.
#
# Usage: scripts/bench-compare.sh            (about 25 minutes)
#        RUNS=1 SUBS=2000 SHORT=1 SKIP_HOLD=1 scripts/bench-compare.sh   (a 4-minute look)
#        RUNS=0 scripts/bench-compare.sh    (only the hold checks)
#        BENCH_GROUPS=1 scripts/bench-compare.sh  (groups: one group of 10,000 members, about 30 minutes)
# Environment: RUNS SUBS WORKERS PUBLISHERS OUT SHORT SKIP_HOLD SKIP_NCHAN
#   BENCH_GROUPS group mode (docs/performance.md, "Groups"; bash keeps
#                GROUPS for itself): BENCH_GROUPS groups of MEMBERS
#                members (default 10,000) each, one group message per
#                publish, the phases (SWEEP) in group messages per second;
#                every server long-polling and with event streams
#                (MODES_GROUPS, default "poll stream"), Nchan with Redis
#                storage and with its own memory only
#                (NCHAN_STORAGE_GROUPS, default "redis memory"),
#                PUBLISHERS_GROUPS (default 8) publisher connections; no
#                batches, no hold checks
#   SWEEP        the phases both servers run (default below); BATCH the
#                phases only cometbox runs after them (empty: none). E.g.
#                SWEEP=r2000=2000/1/10s BATCH= RUNS=5 SKIP_HOLD=1 measures
#                latency at 2,000 msg/s alone, five times over
#   NODE_REF     the commit whose node to build and measure (default HEAD,
#                extracted with git archive, so uncommitted changes in the
#                work tree are not measured); NODE_REF=worktree builds the
#                work tree as it is
#   COMETBOX_BIN measure this node binary instead of building one
#
# Everything listens on 127.0.0.1 ports picked here; the script stops only
# the processes it started (trap), by pid.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
SUBS=${SUBS:-10000}
WORKERS=${WORKERS:-"1 2 4"}
PUBLISHERS=${PUBLISHERS:-64}
SHORT=${SHORT:-0}
SKIP_HOLD=${SKIP_HOLD:-0}
SKIP_NCHAN=${SKIP_NCHAN:-0}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-${TMPDIR:-/tmp}/cometbox-bench/$STAMP}
NCHAN_MODULE=/usr/lib/nginx/modules/ngx_nchan_module.so

BENCH_GROUPS=${BENCH_GROUPS:-0}
MEMBERS=${MEMBERS:-10000}
MODES=${MODES:-poll}
NCHAN_STORAGE=${NCHAN_STORAGE:-redis}
GROUP_ARGS=()
if [ "$BENCH_GROUPS" -gt 0 ]; then
  SUBS=$((BENCH_GROUPS * MEMBERS))
  SWEEP=${SWEEP:-"g1=1/1/30s,g2=2/1/10s,g3=3/1/10s,g4=4/1/10s,g6=6/1/10s,g8=8/1/10s"}
  BATCH=""
  SKIP_HOLD=1
  PUBLISHERS=${PUBLISHERS_GROUPS:-8} # a group publish is answered once fanned out
  MODES=${MODES_GROUPS:-"poll stream"}
  NCHAN_STORAGE=${NCHAN_STORAGE_GROUPS:-"redis memory"}
  GROUP_ARGS=(-groups "$BENCH_GROUPS")
fi

# phases: NAME=RATE/BATCH/DURATION (see cometbox-bench run -h)
if [ -n "${SWEEP+set}" ]; then
  BATCH=${BATCH-}
elif [ "$SHORT" = 1 ]; then
  SWEEP="r1000=1000/1/3s,r2000=2000/1/4s,r4000=4000/1/3s,max1=max/1/5s/16,max1p64=max/1/5s/64"
  BATCH=${BATCH-batch100=max/100/4s/16}
else
  # paced phases use PUBLISHERS connections, the max-rate phases 16 and
  # 64; the comparison takes each server's best one-message phase
  SWEEP="r1000=1000/1/6s,r2000=2000/1/10s,r4000=4000/1/6s,r6000=6000/1/6s,r8000=8000/1/6s,max1=max/1/15s/16,max1p64=max/1/15s/64"
  BATCH=${BATCH-batch100=max/100/10s/16}
fi

log() { printf '%s bench-compare: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# --- what it needs -----------------------------------------------------------
need_pkgs=()
command -v redis-server >/dev/null 2>&1 || need_pkgs+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need_pkgs+=(redis-tools)
if [ "$SKIP_NCHAN" != 1 ]; then
  command -v nginx >/dev/null 2>&1 || need_pkgs+=(nginx)
  [ -f "$NCHAN_MODULE" ] || need_pkgs+=(libnginx-mod-nchan)
fi
if ((${#need_pkgs[@]})); then
  log "installing ${need_pkgs[*]} from Debian"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}"
fi
NGINX=$(command -v nginx || true)
[ -n "$NGINX" ] || NGINX=/usr/sbin/nginx

mkdir -p "$OUT"
# server directories (configs, logs) stay in $OUT/servers for inspection
WORK=$OUT/servers
mkdir -p "$WORK"
log "results in $OUT"

# --- processes started here, stopped on exit ---------------------------------
STARTED=()
# stop_started stops what this script started, newest first (the load tool,
# then nginx or the nodes, then Redis), each with SIGTERM, then SIGKILL
# after 5 s.
stop_started() {
  local i pid
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
    pid=${STARTED[i]}
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  STARTED=()
}
cleanup() {
  stop_started
  rm -rf "$WORK"/*/tmp "$WORK/bin"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The benchmark shares the machine's 2 cores with anything else running on
# it; before each scenario wait (at most QUIET_WAIT seconds) until other
# programs use less than QUIET_PCT % of one core over 2 s. Each result also
# records the CPU other programs used during every phase ("other%").
QUIET_PCT=${QUIET_PCT:-20}
QUIET_WAIT=${QUIET_WAIT:-180}
cpu_busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9; exit}' /proc/stat; }
wait_quiet() {
  local start=$SECONDS a b pct
  while :; do
    a=$(cpu_busy); sleep 2; b=$(cpu_busy)
    pct=$(echo "$a $b" | awk '{print int(100 * ($3-$1) / ($4-$2) * '"$(nproc)"')}')
    if [ "$pct" -lt "$QUIET_PCT" ]; then return 0; fi
    if [ $((SECONDS - start)) -ge "$QUIET_WAIT" ]; then
      log "machine still busy (other programs at $pct % of a core) after ${QUIET_WAIT}s; measuring anyway"
      return 0
    fi
    sleep 3
  done
}

# Listening ports come from below the ephemeral range, where the tens of
# thousands of client connections take theirs.
EPHEMERAL_LOW=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
free_port() {
  local p
  for _ in $(seq 200); do
    p=$((10000 + RANDOM % (EPHEMERAL_LOW - 10000)))
    if ! ss -Htan "( sport = :$p )" 2>/dev/null | grep -q . &&
      ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  echo "no free port" >&2
  return 1
}

wait_http() { # URL LOGFILE
  for _ in $(seq 150); do
    curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "not answering after 30s: $1; log $2:" >&2
  tail -20 "$2" >&2 || true
  return 1
}

REDIS_PID="" REDIS_PORT=""
start_redis() { # DIR
  for _ in 1 2 3; do
    REDIS_PORT=$(free_port)
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
      --protected-mode no --daemonize no --loglevel warning --logfile "$1/redis.log" --dir "$1" &
    REDIS_PID=$!
    STARTED+=("$REDIS_PID")
    for _ in $(seq 100); do
      [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && return 0
      kill -0 "$REDIS_PID" 2>/dev/null || break
      sleep 0.1
    done
    log "redis-server on port $REDIS_PORT did not start; retrying on another port"
  done
  echo "redis-server did not start; log $1/redis.log" >&2
  return 1
}

NODE_PID="" NODE_URL=""
start_node() { # DIR NAME
  local port
  port=$(free_port)
  "$CBBIN" -listen "127.0.0.1:$port" -redis-url "redis://127.0.0.1:$REDIS_PORT" -node-name "$2" \
    -max-polls-per-client 0 -max-polls 19500 -log-level warn >"$1/$2.log" 2>&1 &
  NODE_PID=$!
  STARTED+=("$NODE_PID")
  NODE_URL="http://127.0.0.1:$port"
  wait_http "$NODE_URL/readyz" "$1/$2.log"
}

NGINX_PID="" NCHAN_URL=""
start_nchan() { # DIR WORKERS [memory]
  local port
  port=$(free_port)
  mkdir -p "$1/tmp"
  sed -e "s#@PREFIX@#$1#g; s#@MODULE@#$NCHAN_MODULE#; s#@WORKERS@#$2#; s#@PORT@#$port#; s#@REDIS_PORT@#$REDIS_PORT#" \
    scripts/nchan-nginx.conf.tmpl >"$1/nginx.conf"
  if [ "${3:-}" = memory ]; then # Nchan's own shared memory only: no Redis
    sed -i -e '/nchan_redis_pass/d' -e '/upstream redis_server {/,/}/d' "$1/nginx.conf"
  fi
  "$NGINX" -p "$1" -c "$1/nginx.conf" -g 'daemon off;' &
  NGINX_PID=$!
  STARTED+=("$NGINX_PID")
  NCHAN_URL="http://127.0.0.1:$port"
  wait_http "$NCHAN_URL/nchan_status" "$1/error.log"
}

# --- build --------------------------------------------------------------------
NODE_REF=${NODE_REF:-HEAD}
mkdir -p "$WORK/bin"
if [ -n "${COMETBOX_BIN:-}" ]; then
  CBBIN=$COMETBOX_BIN
  COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown) (binary $COMETBOX_BIN)"
elif [ "$NODE_REF" = worktree ]; then
  COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  if [ -n "$(git status --porcelain -- cmd/cometbox pkg go.mod go.sum 2>/dev/null)" ]; then
    COMMIT="$COMMIT+uncommitted"
  fi
  CBBIN=$WORK/bin/cometbox
  go build -o "$CBBIN" ./cmd/cometbox
else
  COMMIT=$(git rev-parse --short "$NODE_REF")
  src=$WORK/bin/src
  rm -rf "$src" && mkdir -p "$src"
  git archive "$NODE_REF" | tar -x -C "$src"
  CBBIN=$WORK/bin/cometbox
  (cd "$src" && go build -o "$CBBIN" ./cmd/cometbox)
fi
BENCH=$WORK/bin/cometbox-bench
go build -o "$BENCH" ./cmd/cometbox-bench
log "commit $COMMIT; node binary $CBBIN; $(nproc) CPUs; open-file limit $(ulimit -Hn)"
{
  echo "commit: $COMMIT"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') x $(nproc)"
  echo "kernel: $(uname -r)"
  echo "go: $(go version)"
  echo "redis: $(redis-server --version)"
  [ "$SKIP_NCHAN" = 1 ] || echo "nginx: $("$NGINX" -v 2>&1); nchan: $(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null || echo '?')"
  echo "subs: $SUBS; publishers: $PUBLISHERS; runs: $RUNS; phases: $SWEEP${BATCH:+,$BATCH} (cometbox) / $SWEEP (nchan)"
} >"$OUT/machine.txt"

bench() { # LABEL JSON ARGS...
  local label=$1 json=$2
  shift 2
  wait_quiet
  log "run $label (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  # in the background with wait, so that a signal reaches the trap at once
  "$BENCH" run -label "$label" -commit "$COMMIT" -publishers "$PUBLISHERS" -json "$json" "$@" \
    >"${json%.json}.txt" &
  local pid=$!
  STARTED+=("$pid")
  wait "$pid"
  cat "${json%.json}.txt"
}

# --- the suite ----------------------------------------------------------------
for run in $(seq "$RUNS"); do
  d=$OUT/run$run
  mkdir -p "$d"

  for mode in $MODES; do
    # labels: cometbox, nchan-wN as before; with streams or Nchan's memory
    # storage, a suffix says so
    sfx="" margs=("${GROUP_ARGS[@]}")
    if [ "$mode" = stream ]; then sfx="-stream" margs+=(-stream); fi
    s=$WORK/cb$run$sfx && mkdir -p "$s"
    start_redis "$s"
    start_node "$s" node1
    bench "cometbox$sfx" "$d/cometbox$sfx.json" -target cometbox -url "$NODE_URL" -subs "$SUBS" "${margs[@]}" \
      -phases "$SWEEP${BATCH:+,$BATCH}" -pid "node=$NODE_PID" -pid "redis=$REDIS_PID" -redis "127.0.0.1:$REDIS_PORT"
    stop_started

    if [ "$SKIP_NCHAN" != 1 ]; then
      for storage in $NCHAN_STORAGE; do
        for w in $WORKERS; do
          label="nchan-w$w"
          [ "$storage" = redis ] || label="nchan-$storage-w$w"
          label=$label$sfx
          s=$WORK/nchan$run-$label && mkdir -p "$s"
          start_redis "$s"
          start_nchan "$s" "$w" "$storage"
          bench "$label" "$d/$label.json" -target nchan -url "$NCHAN_URL" -subs "$SUBS" -workers "$w" "${margs[@]}" \
            -phases "$SWEEP" -pid "nginx=$NGINX_PID+" -pid "redis=$REDIS_PID" -redis "127.0.0.1:$REDIS_PORT"
          if grep -q -E 'worker process [0-9]+ exited on signal' "$s/error.log" 2>/dev/null; then
            log "$label: nginx workers crashed during the run:"
            grep -E 'exited on signal' "$s/error.log" | head -5 | tee -a "$d/$label.txt" >&2
          fi
          stop_started
        done
      done
    fi
  done
done

# --- hold checks (cometbox) ---------------------------------------------------
if [ "$SKIP_HOLD" != 1 ]; then
  s=$WORK/hold19k && mkdir -p "$s"
  start_redis "$s"
  start_node "$s" node1
  bench cometbox-hold19k "$OUT/hold19k.json" -target cometbox -url "$NODE_URL" -subs 19000 \
    -phases "once=2000/1/10s" -pid "node=$NODE_PID" -pid "redis=$REDIS_PID" -redis "127.0.0.1:$REDIS_PORT"
  stop_started

  s=$WORK/hold50k && mkdir -p "$s"
  start_redis "$s"
  urls=() pids=()
  for n in 1 2 3; do
    start_node "$s" "node$n"
    urls+=("$NODE_URL")
    pids+=(-pid "node$n=$NODE_PID")
  done
  bench cometbox-hold50k "$OUT/hold50k.json" -target cometbox -procs 3 \
    -url "$(IFS=,; echo "${urls[*]}")" -subs 50000 -phases "once=2000/1/10s" \
    "${pids[@]}" -pid "redis=$REDIS_PID" -redis "127.0.0.1:$REDIS_PORT"
  stop_started
fi

# --- the table ----------------------------------------------------------------
if [ "$BENCH_GROUPS" -gt 0 ] && compgen -G "$OUT/run*/*.json" >/dev/null; then
  "$BENCH" compare -groups -md "$OUT/table.md" "$OUT"/run*/*.json
  log "done: $OUT/table.md, per-run tables in $OUT/run*/"
elif compgen -G "$OUT/run*/*.json" >/dev/null; then
  "$BENCH" compare -md "$OUT/table.md" -svg "$OUT/latency.svg" "$OUT"/run*/*.json
  log "done: $OUT/table.md, $OUT/latency.svg, per-run tables in $OUT/run*/"
fi
[ "$SKIP_HOLD" = 1 ] || log "hold checks: $OUT/hold19k.txt, $OUT/hold50k.txt"
