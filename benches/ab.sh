#!/usr/bin/env bash
# One wrk run against a server binary, with its per-request figures: for A/B
# comparisons of two builds (run it alternately on each, other load stopped).
#
#   bash benches/ab.sh BIN PORT WORKERS [PIPELINE] [SECONDS]
#
# BIN: a release build of examples/http (or http_tokio), started with
# KEVENT_WORKERS / TOKIO_WORKER_THREADS = WORKERS ("default": unset). One
# second of warm-up, then `wrk -t1 -c64 -dSECONDS` (pipelined with
# benches/pipeline.lua when PIPELINE > 1). Prints server CPU per request
# (utime+stime of /proc/PID/stat), and context switches, futex calls and
# syscalls per request (`perf stat -p PID`), and how often the kernel took
# a server thread off its CPU while it could still run (involuntary context
# switches, `nonvoluntary_ctxt_switches` of /proc/PID/task/*/status: a worker
# preempted with tasks queued delays them by a whole time slice), wrk's
# maximum latency, and the host's steal time over the run (ticks of the
# `steal` column of /proc/stat: the hypervisor running something else on
# our vCPUs; a run with ~10 ticks lost a CPU for ~100 ms). Needs wrk
# and perf, as benches/http.sh does.
#
# CONNECTIONS (default 64) sets wrk's connections; PACE_MS=N makes each
# connection wait N ms after every response before its next request, so
# both servers see the same offered load (wrk is closed-loop: unpaced, the
# faster server saturates wrk, which shares these CPUs, and wrk's own
# queueing then shows in the latency it measures).
BIN=$1; PORT=$2; W=$3; PIPE=${4:-1}; DUR=${5:-4}
LUA=$(dirname "$0")/pipeline.lua
PACED=$(dirname "$0")/paced.lua
if [ "$W" = default ]; then env -u KEVENT_WORKERS -u TOKIO_WORKER_THREADS $BIN 127.0.0.1:$PORT 2>/dev/null & else KEVENT_WORKERS=$W TOKIO_WORKER_THREADS=$W $BIN 127.0.0.1:$PORT 2>/dev/null & fi
PID=$!
sleep 0.4
ARGS="-t1 -c${CONNECTIONS:-64}"
URL=http://127.0.0.1:$PORT/plaintext
# wrk takes its options before the URL; what follows `--` goes to the script.
wrk_run() { # seconds, extra options...
    local d=$1; shift
    if [ -n "$PACE_MS" ]; then
        wrk $ARGS -d"$d"s "$@" -s "$PACED" "$URL" -- "$PACE_MS"
    elif [ "$PIPE" != 1 ]; then wrk $ARGS -d"$d"s "$@" -s "$LUA" "$URL" -- "$PIPE"; else wrk $ARGS -d"$d"s "$@" "$URL"; fi
}
wrk_run 1 > /dev/null 2>&1
cpu0=$(awk '{print $14+$15}' /proc/$PID/stat)
preempted() { cat /proc/$PID/task/*/status 2>/dev/null | awk '/^nonvoluntary_ctxt_switches/ {n += $2} END {print n + 0}'; }
nv0=$(preempted)
steal() { awk '/^cpu / {print $9}' /proc/stat; }
st0=$(steal)
perf stat -x, -e 'context-switches,syscalls:sys_enter_futex,raw_syscalls:sys_enter' -p $PID -o /tmp/ab.perf &
PP=$!
sleep 0.2 # perf ignores SIGINT until it has attached
OUT=$(wrk_run "$DUR" --latency 2>&1)
cpu1=$(awk '{print $14+$15}' /proc/$PID/stat)
nv1=$(preempted)
st1=$(steal)
kill -INT $PP; wait $PP 2>/dev/null
kill -TERM $PID; wait $PID 2>/dev/null
REQ=$(echo "$OUT" | awk '/requests in/ {print $1}')
RPS=$(echo "$OUT" | awk '/Requests\/sec/ {print $2}')
P99=$(echo "$OUT" | awk '$1=="99%" {print $2}')
MAX=$(echo "$OUT" | awk '/Latency/ {print $4; exit}')
CS=$(awk -F, '/context-switches/ {print $1}' /tmp/ab.perf)
FX=$(awk -F, '/sys_enter_futex/ {print $1}' /tmp/ab.perf)
SC=$(awk -F, '/raw_syscalls/ {print $1}' /tmp/ab.perf)
HZ=$(getconf CLK_TCK)
awk -v c0=$cpu0 -v c1=$cpu1 -v r=$REQ -v hz=$HZ -v cs=$CS -v fx=$FX -v sc=$SC -v rps=$RPS -v p99=$P99 -v max=$MAX -v st=$((st1 - st0)) -v nv=$((nv1 - nv0)) -v b=$(basename $BIN) -v w=$W -v p=$PIPE -v pace=${PACE_MS:--} -v c=${CONNECTIONS:-64} 'BEGIN{printf "%-12s w=%-7s c=%s pace=%sms p=%-2s cpu/req=%.2fus cs/req=%.3f futex/req=%.3f sys/req=%.3f preempted/req=%.4f rps=%s p99=%s max=%s steal=%d\n", b, w, c, pace, p, (c1-c0)/hz*1e6/r, cs/r, fx/r, sc/r, nv/r, rps, p99, max, st}'
