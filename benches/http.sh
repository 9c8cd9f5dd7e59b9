#!/usr/bin/env bash
# HTTP load: hyper on kevent (examples/http.rs) against hyper on tokio
# (examples/http_tokio.rs), TechEmpower /plaintext, with wrk.
#
#   bash benches/http.sh
#
# Knobs (environment):
#   DURATION=4        seconds of measured load per run
#   WARMUP=1          seconds of unmeasured load before each run
#   ROUNDS=3          A/B alternations per shape (the order flips each round)
#   WORKERS=1         runtime workers, both servers (KEVENT_WORKERS, TOKIO_WORKER_THREADS)
#   CONNECTIONS="64 256"   wrk -c values
#   PIPELINES="1 16"       1 = plain keep-alive, N = N requests pipelined (pipeline.lua)
#   URL_PATH=/plaintext
#   SERVERS="kevent tokio" which servers to run (both needed for the ratios)
#   SYSCALLS=auto     auto | perf | strace | none: how syscalls are counted
#   NO_BUILD=1        skip `cargo build` (use the binaries already built)
#   UPDATE_MD=0       do not rewrite the section of BENCHMARKS.md
#
# Measured per run: wrk's requests/s, p99 latency and request count; the
# server's CPU time (utime+stime from /proc/PID/stat, all threads) across
# the wrk run; its syscalls (perf's raw_syscalls:sys_enter tracepoint) and
# context switches across the run. Each figure is reported as the median over
# the rounds (min..max), then as kevent/tokio ratios of the medians.
# See /work/shared/MEASURING.md (or MEASURING.md of the steering repo) for why
# server CPU per request is the figure that matters on a 2-core machine.

set -euo pipefail

T_START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

DURATION=${DURATION:-4}
WARMUP=${WARMUP:-1}
ROUNDS=${ROUNDS:-3}
WORKERS=${WORKERS:-1}
CONNECTIONS=${CONNECTIONS:-"64 256"}
PIPELINES=${PIPELINES:-"1 16"}
URL_PATH=${URL_PATH:-/plaintext}
SERVERS=${SERVERS:-"kevent tokio"}
SYSCALLS=${SYSCALLS:-auto}
NO_BUILD=${NO_BUILD:-0}
BUILD_FAILED=""
UPDATE_MD=${UPDATE_MD:-1}
HOST=127.0.0.1
declare -A PORT=([kevent]=18080 [tokio]=18081)
declare -A EXAMPLE=([kevent]=http [tokio]=http_tokio)
declare -A WORKER_VAR=([kevent]=KEVENT_WORKERS [tokio]=TOKIO_WORKER_THREADS)

# The command line as run, with the knobs that differ from the defaults.
CMDLINE=""
for v in DURATION WARMUP ROUNDS WORKERS CONNECTIONS PIPELINES URL_PATH SERVERS SYSCALLS; do
    case "$v=${!v}" in
        DURATION=4|WARMUP=1|ROUNDS=3|WORKERS=1|"CONNECTIONS=64 256"|"PIPELINES=1 16"|URL_PATH=/plaintext|"SERVERS=kevent tokio"|SYSCALLS=auto) ;;
        *) if [[ "${!v}" == *" "* ]]; then CMDLINE+="$v=\"${!v}\" "; else CMDLINE+="$v=${!v} "; fi ;;
    esac
done
CMDLINE+="bash benches/http.sh"

log() { printf '%s\n' "$*" >&2; }
die() { log "http.sh: $*"; exit 1; }

# ---------------------------------------------------------------- cleanup
declare -a LIVE_PIDS=()
cleanup() {
    local p
    for p in "${LIVE_PIDS[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

forget_pid() {
    local p keep=()
    for p in "${LIVE_PIDS[@]}"; do [[ "$p" == "$1" ]] || keep+=("$p"); done
    LIVE_PIDS=("${keep[@]}")
}

# ---------------------------------------------------------------- tools
apt_install() {
    local pkg=$1
    if [[ $(id -u) -eq 0 ]]; then
        [[ -n "${APT_UPDATED:-}" ]] || { apt-get update -qq >/dev/null 2>&1 || true; APT_UPDATED=1; }
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null 2>&1
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        [[ -n "${APT_UPDATED:-}" ]] || { sudo -n apt-get update -qq >/dev/null 2>&1 || true; APT_UPDATED=1; }
        sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null 2>&1
    else
        return 1
    fi
}
command -v wrk >/dev/null || { log "installing wrk"; apt_install wrk || true; }
command -v wrk >/dev/null || die "wrk is missing and could not be installed"
if [[ "$SYSCALLS" == auto || "$SYSCALLS" == perf ]] && ! command -v perf >/dev/null; then
    log "installing linux-perf"; apt_install linux-perf || log "could not install linux-perf"
fi
if [[ "$SYSCALLS" == auto || "$SYSCALLS" == strace ]] && ! command -v strace >/dev/null; then
    log "installing strace"; apt_install strace || log "could not install strace"
fi

perf_works() {
    command -v perf >/dev/null || return 1
    local out
    out=$(perf stat -x, -e raw_syscalls:sys_enter -- true 2>&1 >/dev/null) || return 1
    [[ "$out" =~ ^[0-9]+,.*raw_syscalls:sys_enter ]]
}
case "$SYSCALLS" in
    auto)
        if perf_works; then SYSCALL_TOOL=perf
        elif command -v strace >/dev/null; then SYSCALL_TOOL=strace
        else SYSCALL_TOOL=none; fi ;;
    perf) perf_works || die "SYSCALLS=perf but perf cannot count raw_syscalls:sys_enter"; SYSCALL_TOOL=perf ;;
    strace) command -v strace >/dev/null || die "SYSCALLS=strace but strace is missing"; SYSCALL_TOOL=strace ;;
    none) SYSCALL_TOOL=none ;;
    *) die "SYSCALLS must be auto, perf, strace or none" ;;
esac
case "$SYSCALL_TOOL" in
    perf) SYSCALL_NOTE="syscalls and context switches counted by \`perf stat -e raw_syscalls:sys_enter,context-switches -p PID\` (no slowdown)" ;;
    strace) SYSCALL_NOTE="perf unavailable or not chosen: syscalls counted by \`strace -f -c -p PID\`, which slows an epoll server ~4x; CPU/request, req/s and p99 of these runs are distorted" ;;
    none) SYSCALL_NOTE="syscalls not counted (perf and strace unavailable, or SYSCALLS=none): n/a" ;;
esac
log "syscall counting: $SYSCALL_NOTE"

CLK_TCK=$(getconf CLK_TCK)
if awk -v l="${LOAD_START%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
    log "warning: load average $LOAD_START on $(nproc) CPUs: other work competes with the benchmark"
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---------------------------------------------------------------- build
if [[ "$NO_BUILD" != 1 ]]; then
    build_args=()
    for s in $SERVERS; do build_args+=(--example "${EXAMPLE[$s]:?unknown server $s}"); done
    log "building: cargo build --release ${build_args[*]}"
    if ! cargo build --release "${build_args[@]}" >&2; then
        # Go on with whichever server builds, and say which did not.
        ok_servers=""
        for s in $SERVERS; do
            if cargo build --release --example "${EXAMPLE[$s]}" >/dev/null 2>&1; then
                ok_servers+="$s "
            else
                BUILD_FAILED+="$s "
                log "!! $s (examples/${EXAMPLE[$s]}.rs) does not build; going on without it"
            fi
        done
        SERVERS=${ok_servers% }
        BUILD_FAILED=${BUILD_FAILED% }
        [[ -n "$SERVERS" ]] || die "build failed"
    fi
fi
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
    grep -o '"target_directory":"[^"]*"' | head -n1 | sed 's/.*:"//; s/"$//') || true
TARGET_DIR=${TARGET_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}}
declare -A BIN
for s in $SERVERS; do
    BIN[$s]="$TARGET_DIR/release/examples/${EXAMPLE[$s]}"
    [[ -x "${BIN[$s]}" ]] || die "missing ${BIN[$s]}"
done

OUT="$TARGET_DIR/http-bench/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
RESULTS="$OUT/results.tsv"
: >"$RESULTS"
log "raw wrk output, server logs and results.tsv: $OUT"

# TechEmpower's pipeline.lua: N copies of the request, sent as one write.
cat >"$OUT/pipeline.lua" <<'EOF'
init = function(args)
  local r = {}
  local depth = tonumber(args[1]) or 1
  local path = args[2] or wrk.path
  for i = 1, depth do
    r[i] = wrk.format(nil, path)
  end
  req = table.concat(r)
end

request = function()
  return req
end
EOF

# ---------------------------------------------------------------- helpers
port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# utime+stime of a process (all its threads), in clock ticks.
cpu_ticks() {
    local stat rest
    stat=$(<"/proc/$1/stat") || return 1
    rest=${stat##*) }            # drop "pid (comm) ", comm may hold spaces
    # rest starts at field 3 (state): utime, stime are fields 14, 15.
    awk '{ print $12 + $13 }' <<<"$rest"
}

SERVER_PID=
start_server() { # name port log
    local name=$1 port=$2 slog=$3 try i
    for try in 1 2 3; do
        port_open "$port" && die "port $port is already in use: stop whatever listens there"
        : >>"$slog"
        env "${WORKER_VAR[$name]}=$WORKERS" RUST_BACKTRACE=1 \
            "${BIN[$name]}" "$HOST:$port" >>"$slog" 2>&1 &
        SERVER_PID=$!
        LIVE_PIDS+=("$SERVER_PID")
        for ((i = 0; i < 100; i++)); do
            if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
            if grep -qs "listening on" "$slog" && port_open "$port"; then return 0; fi
            sleep 0.1
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            kill -KILL "$SERVER_PID" 2>/dev/null || true
            wait "$SERVER_PID" 2>/dev/null || true
            forget_pid "$SERVER_PID"
            log "$name did not listen on $port within 10 s (log: $slog)"
            return 1
        fi
        wait "$SERVER_PID" 2>/dev/null || true
        forget_pid "$SERVER_PID"
        log "$name exited before listening (try $try); log: $slog"
        sleep 1
    done
    log "$name would not start; see $slog"
    return 1
}

# SIGINT, then wait up to 15 s; sets STOP_HOW to how it ended.
STOP_HOW=
stop_server() { # pid
    local pid=$1 i rc=0
    kill -INT "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        forget_pid "$pid"
        STOP_HOW="hung-on-SIGINT"
        return 0
    fi
    wait "$pid" 2>/dev/null || rc=$?
    forget_pid "$pid"
    STOP_HOW="exit$rc"
}

COUNTER_PID=
start_counter() { # pid outfile
    case "$SYSCALL_TOOL" in
        perf)
            perf stat -x, -e raw_syscalls:sys_enter,context-switches -p "$1" -o "$2" 2>/dev/null &
            COUNTER_PID=$!; LIVE_PIDS+=("$COUNTER_PID"); sleep 0.3 ;;
        strace)
            strace -f -c -p "$1" -o "$2" 2>/dev/null &
            COUNTER_PID=$!; LIVE_PIDS+=("$COUNTER_PID"); sleep 0.5 ;;
        none) COUNTER_PID= ;;
    esac
}
stop_counter() {
    [[ -n "$COUNTER_PID" ]] || return 0
    kill -INT "$COUNTER_PID" 2>/dev/null || true
    wait "$COUNTER_PID" 2>/dev/null || true
    forget_pid "$COUNTER_PID"
    COUNTER_PID=
}
# "syscalls ctxswitches" from the counter's output ("NA" when unknown).
read_counter() { # file
    local f=$1
    case "$SYSCALL_TOOL" in
        perf)
            awk -F, '$3 == "raw_syscalls:sys_enter" { s = $1 }
                     $3 == "context-switches" { c = $1 }
                     END { if (s !~ /^[0-9]+$/) s = "NA"; if (c !~ /^[0-9]+$/) c = "NA"; print s, c }' "$f" ;;
        strace)
            awk '$NF == "total" { s = $4 } END { if (s !~ /^[0-9]+$/) s = "NA"; print s, "NA" }' "$f" ;;
        *) echo "NA NA" ;;
    esac
}

# wrk output -> "rps p99_us requests errors" (errors: socket errors + non-2xx/3xx).
parse_wrk() { # file
    awk '
        function us(v) {
            if (v ~ /us$/) return v + 0
            if (v ~ /ms$/) return v * 1000
            if (v ~ /m$/)  return v * 60e6
            if (v ~ /s$/)  return v * 1e6
            return v + 0
        }
        /^ *99%/ { p99 = us($2) }
        / requests in / { req = $1 }
        /^Requests\/sec:/ { rps = $2 }
        /Socket errors:/ { gsub(",", ""); err += $4 + $6 + $8 + $10 }
        /Non-2xx or 3xx responses:/ { err += $NF }
        END {
            if (rps == "") rps = "NA"; if (req == "") req = 0
            # wrk 4.1 sometimes prints "99%    0.00us" (a percentile bug): unknown, not zero
            if (p99 == "" || p99 == 0) p99 = "NA"
            print rps, p99, req, err + 0
        }' "$1"
}

shape_name() { # conns pipeline
    if [[ $2 -gt 1 ]]; then echo "c$1 pipelined x$2"; else echo "c$1 plain"; fi
}

# ---------------------------------------------------------------- runs
run_one() { # server conns pipeline round
    local name=$1 conns=$2 depth=$3 round=$4 port=${PORT[$1]}
    local tag="${name}-c${conns}-p${depth}-r${round}"
    local slog="$OUT/$tag.server.log" wlog="$OUT/$tag.wrk.txt" clog="$OUT/$tag.counter.txt"
    local url="http://$HOST:$port$URL_PATH"
    local -a wrk_args=(-t1 -c"$conns" --latency --timeout 4s "$url")
    [[ $depth -gt 1 ]] && wrk_args+=(-s "$OUT/pipeline.lua" -- "$depth" "$URL_PATH")

    if ! start_server "$name" "$port" "$slog"; then
        printf '%s\t%s\t%s\tNA\tNA\t0\tNA\tNA\tNA\t0\tstart-failed\n' \
            "$(shape_name "$conns" "$depth")" "$name" "$round" >>"$RESULTS"
        tail -n 20 "$slog" | sed 's/^/    > /' >&2
        return 0
    fi
    local pid=$SERVER_PID
    timeout $((WARMUP + 30)) wrk -d"${WARMUP}s" "${wrk_args[@]}" >"$OUT/$tag.warmup.txt" 2>&1 || true

    start_counter "$pid" "$clog"
    local t0 t1 wrc=0
    t0=$(cpu_ticks "$pid") || t0=NA
    timeout $((DURATION + 30)) wrk -d"${DURATION}s" "${wrk_args[@]}" >"$wlog" 2>&1 || wrc=$?
    t1=$(cpu_ticks "$pid") || t1=NA
    stop_counter

    local alive=yes
    kill -0 "$pid" 2>/dev/null || alive=no
    stop_server "$pid"
    local how=$STOP_HOW

    local rps p99 req err sc cs
    read -r rps p99 req err < <(parse_wrk "$wlog")
    read -r sc cs < <(read_counter "$clog")
    local dticks=NA
    [[ $t0 != NA && $t1 != NA ]] && dticks=$((t1 - t0))

    local flags=""
    [[ $err -gt 0 ]] && flags+="errors=$err,"
    [[ $wrc -ne 0 ]] && flags+="wrk-exit=$wrc,"
    [[ $req -eq 0 ]] && flags+="no-requests,"
    [[ $alive == no ]] && flags+="server-died($how),"
    [[ $how != exit0 && $alive == yes ]] && flags+="$how,"
    flags=${flags%,}
    [[ -n $flags ]] || flags=ok

    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$(shape_name "$conns" "$depth")" "$name" "$round" "$rps" "$p99" "$req" "$dticks" "$sc" "$cs" "$err" "$flags" >>"$RESULTS"
    awk -v n="$name" -v r="$round" -v rps="$rps" -v p99="$p99" -v req="$req" -v dt="$dticks" \
        -v sc="$sc" -v hz="$CLK_TCK" -v f="$flags" 'BEGIN {
            cpu = (dt == "NA" || req == 0) ? "n/a" : sprintf("%.2f", dt / hz * 1e6 / req)
            spr = (sc == "NA" || req == 0) ? "n/a" : sprintf("%.3f", sc / req)
            printf "  round %d %-6s %10s req/s  p99 %8s us  %6s us CPU/req  %6s syscalls/req  %s\n", r, n, rps, p99, cpu, spr, f
        }' >&2
    if [[ $flags != ok ]]; then
        log "    !! $tag: $flags -- wrk output $wlog, server log $slog:"
        sed 's/^/    | /' "$wlog" >&2
        tail -n 20 "$slog" | sed 's/^/    > /' >&2
    fi
}

read -ra SERVER_LIST <<<"$SERVERS"
n_shapes=$(($(wc -w <<<"$CONNECTIONS") * $(wc -w <<<"$PIPELINES")))
est=$((n_shapes * ROUNDS * ${#SERVER_LIST[@]} * (DURATION + WARMUP + 2)))
log "$n_shapes shapes x $ROUNDS rounds x ${#SERVER_LIST[@]} servers, ${DURATION}s each (+${WARMUP}s warm-up): about ${est}s"
for depth in $PIPELINES; do
    for conns in $CONNECTIONS; do
        log "== $(shape_name "$conns" "$depth"): wrk -t1 -c$conns -d${DURATION}s --latency $HOST:PORT$URL_PATH"
        for ((round = 1; round <= ROUNDS; round++)); do
            order=("${SERVER_LIST[@]}")
            if ((round % 2 == 0)); then # ABBA: flip the order every other round
                order=()
                for ((i = ${#SERVER_LIST[@]} - 1; i >= 0; i--)); do order+=("${SERVER_LIST[$i]}"); done
            fi
            for s in "${order[@]}"; do run_one "$s" "$conns" "$depth" "$round"; done
        done
    done
done

# ---------------------------------------------------------------- report
SHAPES=()
for depth in $PIPELINES; do for conns in $CONNECTIONS; do SHAPES+=("$(shape_name "$conns" "$depth")"); done; done

# Aggregate: per shape and server, median (min..max) of each metric.
TABLE=$(
    for shape in "${SHAPES[@]}"; do
        for s in "${SERVER_LIST[@]}"; do
            awk -F'\t' -v shape="$shape" -v srv="$s" -v hz="$CLK_TCK" '
                function stats(a, n,    i, j, t, med) {
                    if (n == 0) return "NA NA NA"
                    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
                    med = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
                    return med " " a[1] " " a[n]
                }
                $1 == shape && $2 == srv {
                    runs++
                    if ($4 != "NA") rps[++nr] = $4
                    if ($5 != "NA") p99[++np] = $5
                    if ($7 != "NA" && $6 > 0) cpu[++nc] = $7 / hz * 1e6 / $6
                    if ($8 != "NA" && $6 > 0) sc[++ns] = $8 / $6
                    if ($9 != "NA" && $6 > 0) cs[++nx] = $9 / $6
                    err += $10
                    if ($11 != "ok") { bad++; why = why (why == "" ? "" : "; ") "r" $3 ": " $11 }
                }
                END {
                    printf "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%d\n", shape, srv, runs,
                        stats(rps, nr), stats(p99, np), stats(cpu, nc), stats(sc, ns), stats(cs, nx),
                        err, bad, (why == "" ? "-" : why), np
                }' "$RESULTS"
        done
    done
)
printf '%s\n' "$TABLE" >"$OUT/summary.tsv"

fmt_range() { # med min max scale fmt
    awk -v m="$1" -v lo="$2" -v hi="$3" -v k="$4" -v f="$5" 'BEGIN {
        if (m == "NA") { print "n/a"; exit }
        printf f " (" f ".." f ")\n", m * k, lo * k, hi * k }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "NA" || b == "NA" || b == 0) print "NA"; else printf "%.2f\n", a / b }'; }
get() { # shape server column -> value
    awk -F'\t' -v shape="$1" -v srv="$2" -v c="$3" '$1 == shape && $2 == srv { split($c, v, " "); print v[1] }' "$OUT/summary.tsv"
}
# columns of summary.tsv: 4 rps, 5 p99, 6 cpu, 7 syscalls, 8 ctxsw (each "med min max")

MD_RESULTS=$(
    echo "| shape | server | req/s | p99 latency (ms) | server CPU/request (µs) | syscalls/request | ctx switches/request | errors |"
    echo "|---|---|---|---|---|---|---|---|"
    while IFS=$'\t' read -r shape srv runs rps p99 cpu sc cs err bad why np99; do
        read -r a b c <<<"$rps";  f_rps=$(fmt_range "$a" "$b" "$c" 1 "%.0f")
        read -r a b c <<<"$p99";  f_p99=$(fmt_range "$a" "$b" "$c" 0.001 "%.2f")
        [[ $np99 -lt $runs ]] && f_p99+=" [$np99 of $runs runs†]"
        read -r a b c <<<"$cpu";  f_cpu=$(fmt_range "$a" "$b" "$c" 1 "%.2f")
        read -r a b c <<<"$sc";   f_sc=$(fmt_range "$a" "$b" "$c" 1 "%.3f")
        read -r a b c <<<"$cs";   f_cs=$(fmt_range "$a" "$b" "$c" 1 "%.3f")
        if [[ $bad -gt 0 ]]; then f_err="**⚠ $bad/$runs runs: $why**"; else f_err="0"; fi
        echo "| $shape | $srv | $f_rps | $f_p99 | $f_cpu | $f_sc | $f_cs | $f_err |"
    done <<<"$TABLE"
)

MD_RATIOS=""
VERDICT_FAIL=0
if [[ " $SERVERS " == *" kevent "* && " $SERVERS " == *" tokio "* ]]; then
    MD_RATIOS=$(
        echo "| shape | CPU/request | syscalls/request | req/s | p99 | targets (CPU ≤ 0.80×; syscalls ≤ 1.0/keep-alive req; req/s ≥, p99 ≤ tokio) |"
        echo "|---|---|---|---|---|---|"
        for shape in "${SHAPES[@]}"; do
            r_cpu=$(ratio "$(get "$shape" kevent 6)" "$(get "$shape" tokio 6)")
            r_sc=$(ratio "$(get "$shape" kevent 7)" "$(get "$shape" tokio 7)")
            r_rps=$(ratio "$(get "$shape" kevent 4)" "$(get "$shape" tokio 4)")
            r_p99=$(ratio "$(get "$shape" kevent 5)" "$(get "$shape" tokio 5)")
            k_sc=$(get "$shape" kevent 7)
            v=$(awk -v c="$r_cpu" -v s="$k_sc" -v r="$r_rps" -v p="$r_p99" 'BEGIN {
                out = ""
                out = out (c == "NA" ? "CPU n/a" : (c <= 0.80 ? "CPU ✓" : "CPU ✗"))
                out = out ", " (s == "NA" ? "syscalls n/a" : (s <= 1.0 ? sprintf("syscalls ✓ (%.2f)", s) : sprintf("syscalls ✗ (%.2f)", s)))
                out = out ", " (r == "NA" ? "req/s n/a" : (r >= 1.0 ? "req/s ✓" : (r >= 0.90 ? "req/s ≈ (within 10%)" : "req/s ✗")))
                out = out ", " (p == "NA" ? "p99 n/a" : (p <= 1.0 ? "p99 ✓" : (p <= 1.10 ? "p99 ≈ (within 10%)" : "p99 ✗")))
                print out }')
            echo "| $shape | $r_cpu | $r_sc | $r_rps | $r_p99 | $v |"
        done
    )
fi

CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MACHINE="$(nproc) vCPU, ${CPU_MODEL:-unknown CPU}, Linux $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC'); load average $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
WRK_VER=$( (wrk -v 2>&1 || true) | awk "NR == 1 { print \$2 }")
T_END=$(date +%s)
ELAPSED=$((T_END - T_START))
ANY_BAD=$(awk -F'\t' '$11 != "ok"' "$RESULTS" | wc -l)

SECTION=$(
    echo "<!-- http:begin -->"
    echo "## HTTP load (benches/http.sh)"
    echo
    echo "_Written by \`benches/http.sh\`; rerunning it rewrites everything between the \`http:begin\`/\`http:end\` markers._"
    echo
    echo "- Command: \`$CMDLINE\` (total ${ELAPSED} s)"
    echo "- Machine: $MACHINE; wrk ${WRK_VER:-?}"
    echo "- Load: \`wrk -t1 -c{$(echo "$CONNECTIONS" | tr ' ' ',')} -d${DURATION}s --latency http://$HOST:PORT$URL_PATH\`, pipelined shapes add TechEmpower's pipeline.lua (\`-s pipeline.lua -- 16\`); ${WARMUP} s warm-up per run, fresh server per run, $ROUNDS rounds alternating kevent/tokio (order flipped every other round)."
    echo "- Servers: \`examples/http.rs\` (kevent, \`KEVENT_WORKERS=$WORKERS\`) and \`examples/http_tokio.rs\` (tokio, \`TOKIO_WORKER_THREADS=$WORKERS\`), release builds."
    echo "- Counting: server CPU = Δ(utime+stime) of \`/proc/PID/stat\` over the wrk run ÷ requests wrk reports; $SYSCALL_NOTE."
    echo
    echo "Each cell: median over the rounds (min..max)."
    echo
    echo "$MD_RESULTS"
    echo
    if [[ -n "$MD_RATIOS" ]]; then
        echo "kevent ÷ tokio, ratios of the medians (below 1 is better for kevent in CPU, syscalls and p99; above 1 for req/s):"
        echo
        echo "$MD_RATIOS"
        echo
    fi
    if [[ -n "$BUILD_FAILED" ]]; then
        echo "**⚠ not measured: $BUILD_FAILED did not build (\`cargo build --release --example ...\` failed), so there are no ratios.**"
        echo
    fi
    if [[ $ANY_BAD -gt 0 ]]; then
        echo "**⚠ $ANY_BAD run(s) had errors or misbehaved (see the errors column); their figures are included above.**"
        echo
    fi
    echo "How to read it: on this 2-vCPU machine wrk needs a core of its own and saturates before the server, so req/s (and p99, which follows wrk's own queueing) differ little between runtimes and swing ±25% between runs; only ratios from the same run, A/B alternated, mean anything. The figure that shows a faster runtime is **server CPU per request** (all server threads' utime+stime over the run ÷ requests; 10 ms ticks). Calibration: this script run A/A, tokio against a copy of itself, gave CPU/request ratios of 0.90–1.06, syscall ratios of 0.99–1.00 and p99 ratios of 0.67–1.71, so CPU differences under ~10% and any single p99 ratio are noise. Syscalls per request explain much of the CPU (the kernel's loopback TCP is most of the cost, so fewer crossings matter). In pipelined shapes one p99 sample covers a batch of 16 requests. † wrk 4.1 sometimes prints \`99%  0.00us\` (its coordinated-omission correction adds samples below the recorded minimum, where its percentile scan starts); such runs have no p99 and the cell says how many runs it rests on. Targets: kevent's server CPU per request ≤ 0.8× tokio's in every shape, ≤ 1.0 syscall per keep-alive request, req/s and p99 no worse than tokio's (a req/s or p99 ratio up to 10% on the wrong side is marked ≈, noise; p99 is noisier still)."
    echo "<!-- http:end -->"
)

echo
echo "$MD_RESULTS"
echo
[[ -n "$MD_RATIOS" ]] && { echo "kevent / tokio (ratios of medians):"; echo; echo "$MD_RATIOS"; echo; }
echo "command: $CMDLINE"
echo "machine: $MACHINE"
echo "syscalls: $SYSCALL_NOTE"
echo "raw data: $OUT"
[[ $ANY_BAD -gt 0 ]] && echo "WARNING: $ANY_BAD run(s) had errors or misbehaved; see $RESULTS"
[[ -n "$BUILD_FAILED" ]] && echo "WARNING: not measured, did not build: $BUILD_FAILED"

if [[ -n "$BUILD_FAILED" ]]; then
    echo "BENCHMARKS.md left as it was: not every server built (section draft: $OUT/section.md)"
    printf '%s\n' "$SECTION" >"$OUT/section.md"
elif [[ "$UPDATE_MD" == 1 ]]; then
    MD="$ROOT/BENCHMARKS.md"
    printf '%s\n' "$SECTION" >"$OUT/section.md"
    if [[ -f "$MD" ]] && grep -q '<!-- http:begin -->' "$MD" && grep -q '<!-- http:end -->' "$MD"; then
        awk -v sec="$OUT/section.md" '
            /<!-- http:begin -->/ { while ((getline l < sec) > 0) print l; skip = 1; next }
            /<!-- http:end -->/ { skip = 0; next }
            !skip { print }' "$MD" >"$MD.tmp.$$"
        mv "$MD.tmp.$$" "$MD"
    elif [[ -f "$MD" ]]; then
        { echo; cat "$OUT/section.md"; } >>"$MD"
    else
        { echo "# Benchmarks"; echo; cat "$OUT/section.md"; } >"$MD"
    fi
    echo "updated $MD"
fi
echo "total runtime: ${ELAPSED}s"
[[ -z "$BUILD_FAILED" ]] || exit 2
