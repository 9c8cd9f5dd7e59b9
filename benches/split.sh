#!/usr/bin/env bash
# Where a request's server CPU goes, kevent against tokio: the same load as
# benches/http.sh, with the server's CPU sampled by perf and each sample
# sorted into what the runtime costs and what any runtime pays (the kernel's
# TCP stack, hyper and the app). It answers "how low can CPU per request
# go": a runtime that cost nothing would still pay tokio's shared part.
#
#   bash benches/split.sh [APP] [WORKERS] [SHAPE]
#
# APP: http (default) or axum. WORKERS: default (one per CPU, the default)
# or N. SHAPE: plain (default), pipelined (16 per batch) or paced (1 ms
# between a response and the next request).
# Knobs: ROUNDS=2 (kevent/tokio alternations, the order flips each round),
# DURATION=4 (seconds sampled per run), NO_BUILD=1 (use built binaries),
# KEVENT_BIN / TOKIO_BIN (run these binaries instead: an A/B of two kevent
# builds is two runs, the tokio column calibrating one against the other).
#
# Sampling: `perf record -e cpu-clock -c 250000 -g -p PID`, one sample per
# 250 µs of server CPU (cpu-clock counts CPU time, so samples × 250 µs ÷
# requests is CPU per request). The buckets are described in
# benches/split.py. Needs wrk and perf, as benches/http.sh does.
set -euo pipefail
APP=${1:-http}
W=${2:-default}
SHAPE=${3:-plain}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-4}
PERIOD_NS=250000
PORT=${PORT:-18090}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
for tool in wrk perf python3; do
    command -v $tool >/dev/null || { echo "split.sh: needs $tool (benches/http.sh installs wrk and perf)" >&2; exit 1; }
done
case $APP in http | axum) ;; *) echo "split.sh: APP is http or axum" >&2; exit 2 ;; esac
WRK_SCRIPT=()
WRK_TAIL=()
case $SHAPE in
    plain) ;;
    pipelined) WRK_SCRIPT=(-s benches/pipeline.lua) ; WRK_TAIL=(-- 16) ;;
    paced) WRK_SCRIPT=(-s benches/paced.lua) ; WRK_TAIL=(-- 1) ;;
    *) echo "split.sh: SHAPE is plain, pipelined or paced" >&2; exit 2 ;;
esac
FEATURES=()
[[ $APP == axum ]] && FEATURES=(--features tokio-compat)
if [[ "${NO_BUILD:-}" != 1 ]]; then
    cargo build --release "${FEATURES[@]}" --example "$APP" --example "${APP}_tokio" >&2
fi
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
    grep -o '"target_directory":"[^"]*"' | head -n1 | sed 's/.*:"//; s/"$//') || true
TARGET_DIR=${TARGET_DIR:-$ROOT/target}
declare -A BIN=([kevent]="${KEVENT_BIN:-$TARGET_DIR/release/examples/$APP}" [tokio]="${TOKIO_BIN:-$TARGET_DIR/release/examples/${APP}_tokio}")
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
URL=http://127.0.0.1:$PORT/plaintext

run() { # server, round
    local s=$1 r=$2 pid perf_pid out
    if [[ $W == default ]]; then
        env -u KEVENT_WORKERS -u TOKIO_WORKER_THREADS "${BIN[$s]}" 127.0.0.1:$PORT 2>/dev/null &
    else
        KEVENT_WORKERS=$W TOKIO_WORKER_THREADS=$W "${BIN[$s]}" 127.0.0.1:$PORT 2>/dev/null &
    fi
    pid=$!
    sleep 0.4
    wrk -t1 -c64 -d1s "${WRK_SCRIPT[@]}" "$URL" "${WRK_TAIL[@]}" >/dev/null 2>&1
    perf record -q -e cpu-clock -c $PERIOD_NS -g -p $pid -o "$TMP/$s.$r.data" 2>/dev/null &
    perf_pid=$!
    sleep 0.3 # perf ignores SIGINT until it has attached
    out=$(wrk -t1 -c64 -d"$DURATION"s "${WRK_SCRIPT[@]}" "$URL" "${WRK_TAIL[@]}" 2>&1)
    kill -INT $perf_pid
    wait $perf_pid 2>/dev/null || true
    kill -TERM $pid
    wait $pid 2>/dev/null || true
    echo "$out" | awk '/requests in/ {print $1}' > "$TMP/$s.$r.req"
    perf script -i "$TMP/$s.$r.data" -F ip,sym,dso 2>/dev/null | python3 benches/split.py > "$TMP/$s.$r.json"
    echo "split.sh: $APP $SHAPE workers=$W $s round $r: $(cat "$TMP/$s.$r.req") requests" >&2
}

for r in $(seq 1 "$ROUNDS"); do
    if ((r % 2)); then order="kevent tokio"; else order="tokio kevent"; fi
    for s in $order; do run $s $r; sleep 0.5; done
done

python3 - "$TMP" "$ROUNDS" "$PERIOD_NS" "$APP" "$W" "$SHAPE" <<'EOF'
import json, sys
tmp, rounds, period, app, w, shape = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:]
order = ["net", "http", "runtime", "syscall", "sched", "clock", "user_other", "kernel_other"]
names = {
    "net": "kernel: TCP/IP stack and its wake-ups (shared)",
    "http": "user: hyper, the app, allocator, copies (shared)",
    "runtime": "user: the runtime",
    "syscall": "kernel: syscall entry, epoll / io_uring bookkeeping",
    "sched": "kernel: sleeping and waking (schedule, futex, waits)",
    "clock": "user: clock reads (vDSO)",
    "user_other": "user: unattributed (std thread-locals, drop glue)",
    "kernel_other": "kernel: other (interrupts, faults)",
}
us = {}
for s in ("kevent", "tokio"):
    samples, reqs = {}, 0
    for r in range(1, rounds + 1):
        reqs += int(open(f"{tmp}/{s}.{r}.req").read().strip() or 0)
        for k, v in json.load(open(f"{tmp}/{s}.{r}.json")).items():
            samples[k] = samples.get(k, 0) + v
    us[s] = {k: samples.get(k, 0) * period / 1000 / reqs for k in order}
print(f"### {app}, {shape}, workers: {w} ({rounds} rounds)\n")
print("| server CPU per request (µs) | kevent | tokio | kevent − tokio |")
print("|---|---|---|---|")
for k in order:
    a, b = us["kevent"][k], us["tokio"][k]
    print(f"| {names[k]} | {a:.2f} | {b:.2f} | {a - b:+.2f} |")
ka, tb = sum(us["kevent"].values()), sum(us["tokio"].values())
print(f"| **total** | **{ka:.2f}** | **{tb:.2f}** | **{ka - tb:+.2f}** (ratio {ka / tb:.2f}) |")
shared = us["tokio"]["net"] + us["tokio"]["http"]
loose = shared + us["tokio"]["clock"] + us["tokio"]["user_other"] + us["tokio"]["kernel_other"]
print(f"\nA runtime that cost nothing would still pay tokio's shared work: "
      f"at best {shared / tb:.2f}× tokio's CPU per request "
      f"({loose / tb:.2f}× if the clock reads and unattributed samples are shared too).")
own = us["kevent"]["runtime"] + us["kevent"]["syscall"] + us["kevent"]["sched"]
print(f"kevent's own part (runtime, syscall bookkeeping, sleeping and waking) is {own:.2f} µs: "
      f"were it zero, kevent would be at {(ka - own) / tb:.2f}× tokio; "
      f"reaching 0.80× needs {max(0.0, ka - 0.8 * tb):.2f} µs cut.")
EOF
