#!/usr/bin/env bash
# HTTP load: kevent against tokio on the same servers, TechEmpower
# /plaintext, with wrk. Two applications, each with a kevent server and its
# tokio twin:
#   http  examples/http.rs (hyper on kevent)  vs examples/http_tokio.rs
#   axum  examples/axum.rs (axum on kevent)   vs examples/axum_tokio.rs
# each at the default worker count (one per CPU) and at 1 worker.
#
#   bash benches/http.sh
#
# Knobs (environment):
#   DURATION=4        seconds of measured load per run
#   WARMUP=1          seconds of unmeasured load before each run
#   ROUNDS=3          A/B alternations per shape (the order flips each round)
#   APPS="http axum"  which applications to run
#   WORKER_COUNTS="default 1"  runtime workers, both servers; "default" leaves
#                     KEVENT_WORKERS and TOKIO_WORKER_THREADS unset (each
#                     runtime starts one worker per CPU), N sets both to N
#   WORKERS=N         the same as WORKER_COUNTS=N (kept for old command lines)
#   CONNECTIONS="64 256"   wrk -c values
#   PIPELINES="1 16 paced" 1 = plain keep-alive, N = N requests pipelined
#                     (pipeline.lua), paced = keep-alive with PACE_MS between
#                     a response and the connection's next request (paced.lua):
#                     the same offered load for both servers, for latency
#   PACE_MS=1         the pause of the paced shape
#                     close = one connection per request (`Connection:
#                     close`): accepts, registrations and closes, the load
#                     of HTTP/1.0 clients and health checks (not a default)
#   URL_PATH=/plaintext    the path asked of the http application
#   AXUM_PATH=$URL_PATH    the path asked of the axum application (e.g.
#                     /user/42: the router's path parameter and JSON)
#   SERVERS="kevent tokio" which servers to run (both needed for the ratios)
#   SYSCALLS=auto     auto | perf | strace | none: how syscalls are counted
#   NO_BUILD=1        skip `cargo build` (use the binaries already built)
#   UPDATE_MD=0       do not rewrite the section of BENCHMARKS.md
#   ISOLATE=0         run in the machine's network namespace (by default,
#                     as root with iproute2, servers and wrk get one of their
#                     own, so the TCP segment counts are theirs alone)
#
# Measured per run: wrk's requests/s, p99 latency and request count; the
# server's CPU time (utime+stime from /proc/PID/stat, all threads) across
# the wrk run; across the run too, with perf: its syscalls
# (raw_syscalls:sys_enter), context switches, futex calls
# (syscalls:sys_enter_futex) and io_uring enters
# (syscalls:sys_enter_io_uring_enter); and TCP segments sent (OutSegs of the
# Tcp: lines of /proc/net/snmp in a network namespace that holds only the
# server and wrk, so both directions on loopback). Each figure is reported per request as the median over the
# rounds (min..max), then as kevent/tokio ratios of the medians.
# Server CPU per request is the figure to compare: on a 2-core machine wrk
# and the server share the cores, so requests/s mostly says how much CPU the
# load generator left over, while the server's CPU per request is what a
# runtime costs.

set -euo pipefail

T_START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

DURATION=${DURATION:-4}
WARMUP=${WARMUP:-1}
ROUNDS=${ROUNDS:-3}
APPS=${APPS:-"http axum"}
WORKERS=${WORKERS:-}
WORKER_COUNTS=${WORKER_COUNTS:-${WORKERS:-"default 1"}}
CONNECTIONS=${CONNECTIONS:-"64 256"}
PIPELINES=${PIPELINES:-"1 16 paced"}
PACE_MS=${PACE_MS:-1}
URL_PATH=${URL_PATH:-/plaintext}
AXUM_PATH=${AXUM_PATH:-$URL_PATH}
declare -A APP_PATH=([http]=$URL_PATH [axum]=$AXUM_PATH)
SERVERS=${SERVERS:-"kevent tokio"}
SYSCALLS=${SYSCALLS:-auto}
NO_BUILD=${NO_BUILD:-0}
BUILD_FAILED=""
UPDATE_MD=${UPDATE_MD:-1}
HOST=127.0.0.1
NPROC=$(nproc)
declare -A PORT=([kevent]=18080 [tokio]=18081)
# The example of each application:server.
declare -A EXAMPLE=([http:kevent]=http [http:tokio]=http_tokio [axum:kevent]=axum [axum:tokio]=axum_tokio)
declare -A WORKER_VAR=([kevent]=KEVENT_WORKERS [tokio]=TOKIO_WORKER_THREADS)

# The default worker count leads: its table comes first.
ordered=""
for w in $WORKER_COUNTS; do
    [[ $w == default || ($w =~ ^[0-9]+$ && $w -gt 0) ]] ||
        { echo "http.sh: WORKER_COUNTS holds \"default\" or positive integers, not \"$w\"" >&2; exit 1; }
    [[ $w == default ]] && ordered="default $ordered" || ordered+="$w "
done
WORKER_COUNTS=$(echo $ordered)
for p in $PIPELINES; do
    [[ $p == paced || $p == close || ($p =~ ^[0-9]+$ && $p -gt 0) ]] ||
        { echo "http.sh: PIPELINES holds positive integers, \"paced\" or \"close\", not \"$p\"" >&2; exit 1; }
done
[[ $PACE_MS =~ ^[0-9]+$ && $PACE_MS -gt 0 ]] ||
    { echo "http.sh: PACE_MS is a positive number of milliseconds, not \"$PACE_MS\"" >&2; exit 1; }
for a in $APPS; do
    [[ -n "${EXAMPLE[$a:kevent]:-}" ]] || { echo "http.sh: unknown application \"$a\" in APPS (http, axum)" >&2; exit 1; }
done

# The command line as run, with the knobs that differ from the defaults.
CMDLINE=""
for v in DURATION WARMUP ROUNDS APPS WORKER_COUNTS CONNECTIONS PIPELINES PACE_MS URL_PATH AXUM_PATH SERVERS SYSCALLS; do
    case "$v=${!v}" in
        DURATION=4|WARMUP=1|ROUNDS=3|"APPS=http axum"|"WORKER_COUNTS=default 1"|"CONNECTIONS=64 256"|"PIPELINES=1 16 paced"|PACE_MS=1|URL_PATH=/plaintext|"AXUM_PATH=$URL_PATH"|"SERVERS=kevent tokio"|SYSCALLS=auto) ;;
        *) if [[ "${!v}" == *" "* ]]; then CMDLINE+="$v=\"${!v}\" "; else CMDLINE+="$v=${!v} "; fi ;;
    esac
done
CMDLINE+="bash benches/http.sh"

log() { printf '%s\n' "$*" >&2; }
die() { log "http.sh: $*"; exit 1; }

# ---------------------------------------------------------------- cleanup
declare -a LIVE_PIDS=()
NETNS=
cleanup() {
    local p
    for p in "${LIVE_PIDS[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
    done
    [[ -z "$NETNS" ]] || ip netns del "$NETNS" 2>/dev/null || true
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

perf_counts() { # event
    local out
    out=$(perf stat -x, -e "$1" -- true 2>&1 >/dev/null) || return 1
    [[ "$out" =~ ^[0-9]+,.*$1 ]]
}
perf_works() {
    command -v perf >/dev/null && perf_counts raw_syscalls:sys_enter
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
# The events perf counts: syscalls always, the others where this kernel
# has them (an unknown tracepoint would fail the whole perf stat).
PERF_EVENTS=raw_syscalls:sys_enter
if [[ "$SYSCALL_TOOL" == perf ]]; then
    for ev in context-switches syscalls:sys_enter_futex syscalls:sys_enter_io_uring_enter; do
        if perf_counts "$ev"; then PERF_EVENTS+=",$ev"; else log "perf cannot count $ev on this machine: n/a"; fi
    done
fi
case "$SYSCALL_TOOL" in
    perf) SYSCALL_NOTE="syscalls, context switches, futex calls and io_uring enters counted by \`perf stat -e $PERF_EVENTS -p PID\` (no slowdown)" ;;
    strace) SYSCALL_NOTE="perf unavailable or not chosen: syscalls, futex calls and io_uring enters counted by \`strace -f -c -p PID\`, which slows an epoll server ~4x; CPU/request, req/s and p99 of these runs are distorted; context switches n/a" ;;
    none) SYSCALL_NOTE="syscalls, context switches, futex calls and io_uring enters not counted (perf and strace unavailable, or SYSCALLS=none): n/a" ;;
esac
log "syscall counting: $SYSCALL_NOTE"

CLK_TCK=$(getconf CLK_TCK)
if awk -v l="${LOAD_START%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
    log "warning: load average $LOAD_START on $(nproc) CPUs: other work competes with the benchmark"
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---------------------------------------------------------------- build
for s in $SERVERS; do [[ -n "${WORKER_VAR[$s]:-}" ]] || die "unknown server $s in SERVERS (kevent, tokio)"; done
# BUILT[app:server]: the example built; runs of the others are skipped.
declare -A BUILT
for a in $APPS; do for s in $SERVERS; do BUILT[$a:$s]=1; done; done
if [[ "$NO_BUILD" != 1 ]]; then
    # The axum app's timeout layer and WebSocket route call tokio's timer
    # and spawner: on kevent they need the tokio-compat feature (the tokio
    # twin is the same code either way). The http app is built without it,
    # as a user builds it.
    features() { [[ $1 == axum ]] && echo "--features tokio-compat"; true; }
    for a in $APPS; do
        build_args=($(features "$a"))
        for s in $SERVERS; do build_args+=(--example "${EXAMPLE[$a:$s]}"); done
        log "building: cargo build --release ${build_args[*]}"
        if ! cargo build --release "${build_args[@]}" >&2; then
            # Go on with whichever server builds, and say which did not.
            for s in $SERVERS; do
                if ! cargo build --release $(features "$a") --example "${EXAMPLE[$a:$s]}" >/dev/null 2>&1; then
                    BUILT[$a:$s]=0
                    BUILD_FAILED+="$a:$s "
                    log "!! $a on $s (examples/${EXAMPLE[$a:$s]}.rs) does not build; going on without it"
                fi
            done
        fi
    done
    BUILD_FAILED=${BUILD_FAILED% }
    [[ " ${BUILT[*]} " == *" 1 "* ]] || die "build failed"
fi
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
    grep -o '"target_directory":"[^"]*"' | head -n1 | sed 's/.*:"//; s/"$//') || true
TARGET_DIR=${TARGET_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}}
declare -A BIN
for a in $APPS; do for s in $SERVERS; do
    [[ ${BUILT[$a:$s]} == 1 ]] || continue
    BIN[$a:$s]="$TARGET_DIR/release/examples/${EXAMPLE[$a:$s]}"
    [[ -x "${BIN[$a:$s]}" ]] || die "missing ${BIN[$a:$s]}"
done; done

# ---------------------------------------------------------------- network
# The servers and wrk run in a network namespace of their own (root and
# iproute2's `ip` needed; ISOLATE=0 turns it off), so its TCP counters hold
# the benchmark's segments and nothing else on the machine. Loopback in a
# namespace is the same code path as the host's.
IN_NS=()
if [[ "${ISOLATE:-1}" == 1 && $(id -u) -eq 0 ]] && command -v ip >/dev/null; then
    ns="kevent-bench-$$"
    if ip netns add "$ns" 2>/dev/null; then
        NETNS=$ns
        if ip netns exec "$ns" ip link set lo up 2>/dev/null; then
            IN_NS=(ip netns exec "$ns")
        else
            ip netns del "$ns" 2>/dev/null || true
            NETNS=
        fi
    fi
fi
if [[ -n "$NETNS" ]]; then
    SEGS_NOTE="counted in a network namespace that holds only the server and wrk, so both directions on loopback and nothing else"
else
    SEGS_NOTE="machine-wide (no network namespace of its own: not root, or no \`ip\`), so both directions on loopback, and anything else on the machine talking TCP adds to it"
    log "no network namespace for the benchmark: TCP segments are counted machine-wide"
fi

OUT="$TARGET_DIR/http-bench/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
RESULTS="$OUT/results.tsv"
: >"$RESULTS"
log "raw wrk output, server logs and results.tsv: $OUT"

# Pipelined shapes: benches/pipeline.lua sends N copies of the request as
# one write (as TechEmpower's pipeline.lua does).
cp "$ROOT/benches/pipeline.lua" "$OUT/pipeline.lua"
# Paced shapes: benches/paced.lua pauses PACE_MS after every response.
cp "$ROOT/benches/paced.lua" "$OUT/paced.lua"

# ---------------------------------------------------------------- helpers
port_open() { "${IN_NS[@]}" bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null; }

# utime+stime of a process (all its threads), in clock ticks.
cpu_ticks() {
    local stat rest
    stat=$(<"/proc/$1/stat") || return 1
    rest=${stat##*) }            # drop "pid (comm) ", comm may hold spaces
    # rest starts at field 3 (state): utime, stime are fields 14, 15.
    awk '{ print $12 + $13 }' <<<"$rest"
}

# TCP segments sent in the benchmark's namespace (OutSegs of
# /proc/net/snmp's Tcp: lines, as a process in it sees them).
out_segs() {
    "${IN_NS[@]}" cat /proc/net/snmp |
        awk '$1 == "Tcp:" { if (!col) { for (i = 2; i <= NF; i++) if ($i == "OutSegs") col = i; next } print $col; exit }'
}

# The env arguments that give a server `workers` workers.
worker_env() { # name workers
    if [[ $2 == default ]]; then
        printf '%s\n' "-u ${WORKER_VAR[$1]}"
    else
        echo "${WORKER_VAR[$1]}=$2"
    fi
}

SERVER_PID=
start_server() { # app name workers port log
    local app=$1 name=$2 workers=$3 port=$4 slog=$5 try i
    for try in 1 2 3; do
        port_open "$port" && die "port $port is already in use: stop whatever listens there"
        : >>"$slog"
        # shellcheck disable=SC2046 # worker_env's words are separate arguments
        "${IN_NS[@]}" env $(worker_env "$name" "$workers") RUST_BACKTRACE=1 \
            "${BIN[$app:$name]}" "$HOST:$port" >>"$slog" 2>&1 &
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
            perf stat -x, -e "$PERF_EVENTS" -p "$1" -o "$2" 2>/dev/null &
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
# "syscalls ctxswitches futex uring_enters" from the counter's output
# ("NA" when unknown).
read_counter() { # file
    local f=$1
    case "$SYSCALL_TOOL" in
        perf)
            awk -F, '$3 == "raw_syscalls:sys_enter" { s = $1 }
                     $3 == "context-switches" { c = $1 }
                     $3 == "syscalls:sys_enter_futex" { fx = $1 }
                     $3 == "syscalls:sys_enter_io_uring_enter" { u = $1 }
                     function n(v) { return v ~ /^[0-9]+$/ ? v : "NA" }
                     END { print n(s), n(c), n(fx), n(u) }' "$f" ;;
        strace)
            # strace -c: calls are column 4 (errors, column 5, may be empty);
            # a syscall never made has no row, so counts 0 once strace ran.
            awk '$NF == "total" { s = $4 } $NF == "futex" { fx = $4 } $NF == "io_uring_enter" { u = $4 }
                 END { if (s !~ /^[0-9]+$/) print "NA NA NA NA"; else print s, "NA", fx + 0, u + 0 }' "$f" ;;
        *) echo "NA NA NA NA" ;;
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
    if [[ $2 == paced ]]; then echo "c$1 paced ${PACE_MS} ms"
    elif [[ $2 == close ]]; then echo "c$1 connection per request"
    elif [[ $2 -gt 1 ]]; then echo "c$1 pipelined x$2"
    else echo "c$1 plain"; fi
}

workers_name() { # workers
    if [[ $1 == default ]]; then echo "default ($NPROC)"; else echo "$1"; fi
}

# ---------------------------------------------------------------- runs
run_one() { # app server workers conns pipeline round
    local app=$1 name=$2 workers=$3 conns=$4 depth=$5 round=$6 port=${PORT[$2]}
    local tag="${app}-${name}-w${workers}-c${conns}-p${depth}-r${round}"
    local key="$app"$'\t'"$workers"$'\t'"$(shape_name "$conns" "$depth")"$'\t'"$name"$'\t'"$round"
    local slog="$OUT/$tag.server.log" wlog="$OUT/$tag.wrk.txt" clog="$OUT/$tag.counter.txt"
    local path=${APP_PATH[$app]}
    local url="http://$HOST:$port$path"
    local -a wrk_args=(-t1 -c"$conns" --latency --timeout 4s "$url")
    if [[ $depth == paced ]]; then
        wrk_args+=(-s "$OUT/paced.lua" -- "$PACE_MS" "$path")
    elif [[ $depth == close ]]; then
        wrk_args+=(-H "Connection: close")
    elif [[ $depth -gt 1 ]]; then
        wrk_args+=(-s "$OUT/pipeline.lua" -- "$depth" "$path")
    fi

    if [[ ${BUILT[$app:$name]} != 1 ]]; then
        printf '%s\tNA\tNA\t0\tNA\tNA\tNA\tNA\tNA\tNA\t0\tbuild-failed\n' "$key" >>"$RESULTS"
        return 0
    fi
    if ! start_server "$app" "$name" "$workers" "$port" "$slog"; then
        printf '%s\tNA\tNA\t0\tNA\tNA\tNA\tNA\tNA\tNA\t0\tstart-failed\n' "$key" >>"$RESULTS"
        tail -n 20 "$slog" | sed 's/^/    > /' >&2
        return 0
    fi
    local pid=$SERVER_PID
    timeout $((WARMUP + 30)) "${IN_NS[@]}" wrk -d"${WARMUP}s" "${wrk_args[@]}" >"$OUT/$tag.warmup.txt" 2>&1 || true

    start_counter "$pid" "$clog"
    local t0 t1 g0 g1 wrc=0
    t0=$(cpu_ticks "$pid") || t0=NA
    g0=$(out_segs) || g0=NA
    timeout $((DURATION + 30)) "${IN_NS[@]}" wrk -d"${DURATION}s" "${wrk_args[@]}" >"$wlog" 2>&1 || wrc=$?
    g1=$(out_segs) || g1=NA
    t1=$(cpu_ticks "$pid") || t1=NA
    stop_counter

    local alive=yes
    kill -0 "$pid" 2>/dev/null || alive=no
    stop_server "$pid"
    local how=$STOP_HOW

    local rps p99 req err sc cs fx ue
    read -r rps p99 req err < <(parse_wrk "$wlog")
    read -r sc cs fx ue < <(read_counter "$clog")
    local dticks=NA segs=NA
    [[ $t0 != NA && $t1 != NA ]] && dticks=$((t1 - t0))
    [[ $g0 =~ ^[0-9]+$ && $g1 =~ ^[0-9]+$ ]] && segs=$((g1 - g0))

    local flags=""
    [[ $err -gt 0 ]] && flags+="errors=$err,"
    [[ $wrc -ne 0 ]] && flags+="wrk-exit=$wrc,"
    [[ $req -eq 0 ]] && flags+="no-requests,"
    [[ $alive == no ]] && flags+="server-died($how),"
    [[ $how != exit0 && $alive == yes ]] && flags+="$how,"
    flags=${flags%,}
    [[ -n $flags ]] || flags=ok

    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$key" "$rps" "$p99" "$req" "$dticks" "$sc" "$cs" "$fx" "$ue" "$segs" "$err" "$flags" >>"$RESULTS"
    awk -v n="$name" -v r="$round" -v rps="$rps" -v p99="$p99" -v req="$req" -v dt="$dticks" \
        -v sc="$sc" -v cs="$cs" -v fx="$fx" -v ue="$ue" -v sg="$segs" -v hz="$CLK_TCK" -v f="$flags" '
        function per(v, f) { return (v == "NA" || req == 0) ? "n/a" : sprintf(f, v / req) }
        BEGIN {
            cpu = (dt == "NA" || req == 0) ? "n/a" : sprintf("%.2f", dt / hz * 1e6 / req)
            printf "  round %d %-6s %9s req/s  p99 %7s us  %5s us CPU/req  per req: %5s syscalls %5s ctxsw %5s futex %5s enters %5s segs  %s\n",
                r, n, rps, p99, cpu, per(sc, "%.3f"), per(cs, "%.3f"), per(fx, "%.3f"), per(ue, "%.3f"), per(sg, "%.3f"), f
        }' >&2
    if [[ $flags != ok ]]; then
        log "    !! $tag: $flags -- wrk output $wlog, server log $slog:"
        sed 's/^/    | /' "$wlog" >&2
        tail -n 20 "$slog" | sed 's/^/    > /' >&2
    fi
}

read -ra SERVER_LIST <<<"$SERVERS"
n_shapes=$(($(wc -w <<<"$CONNECTIONS") * $(wc -w <<<"$PIPELINES")))
n_apps=$(wc -w <<<"$APPS")
n_workers=$(wc -w <<<"$WORKER_COUNTS")
est=$((n_apps * n_workers * n_shapes * ROUNDS * ${#SERVER_LIST[@]} * (DURATION + WARMUP + 2)))
log "$n_apps apps x $n_workers worker counts x $n_shapes shapes x $ROUNDS rounds x ${#SERVER_LIST[@]} servers, ${DURATION}s each (+${WARMUP}s warm-up): about ${est}s"
for workers in $WORKER_COUNTS; do
    for app in $APPS; do
        for depth in $PIPELINES; do
            for conns in $CONNECTIONS; do
                log "== $app, workers: $(workers_name "$workers"), $(shape_name "$conns" "$depth"): wrk -t1 -c$conns -d${DURATION}s --latency $HOST:PORT${APP_PATH[$app]}"
                for ((round = 1; round <= ROUNDS; round++)); do
                    order=("${SERVER_LIST[@]}")
                    if ((round % 2 == 0)); then # ABBA: flip the order every other round
                        order=()
                        for ((i = ${#SERVER_LIST[@]} - 1; i >= 0; i--)); do order+=("${SERVER_LIST[$i]}"); done
                    fi
                    for s in "${order[@]}"; do run_one "$app" "$s" "$workers" "$conns" "$depth" "$round"; done
                done
            done
        done
    done
done

# ---------------------------------------------------------------- report
SHAPES=()
for depth in $PIPELINES; do for conns in $CONNECTIONS; do SHAPES+=("$(shape_name "$conns" "$depth")"); done; done

# Aggregate: per application, worker count, shape and server, median
# (min..max) of each metric, per request where it is a count.
TABLE=$(
    for workers in $WORKER_COUNTS; do
        for app in $APPS; do
            for shape in "${SHAPES[@]}"; do
                for s in "${SERVER_LIST[@]}"; do
                    awk -F'\t' -v app="$app" -v wk="$workers" -v shape="$shape" -v srv="$s" -v hz="$CLK_TCK" '
                        function stats(a, n,    i, j, t, med) {
                            if (n == 0) return "NA NA NA"
                            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
                            med = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
                            return med " " a[1] " " a[n]
                        }
                        $1 == app && $2 == wk && $3 == shape && $4 == srv {
                            runs++
                            if ($6 != "NA") rps[++nr] = $6
                            if ($7 != "NA") p99[++np] = $7
                            if ($9 != "NA" && $8 > 0) cpu[++nc] = $9 / hz * 1e6 / $8
                            if ($10 != "NA" && $8 > 0) sc[++ns] = $10 / $8
                            if ($11 != "NA" && $8 > 0) cs[++nx] = $11 / $8
                            if ($12 != "NA" && $8 > 0) fx[++nf] = $12 / $8
                            if ($13 != "NA" && $8 > 0) ue[++nu] = $13 / $8
                            if ($14 != "NA" && $8 > 0) sg[++ng] = $14 / $8
                            err += $15
                            if ($16 != "ok") { bad++; why = why (why == "" ? "" : "; ") "r" $5 ": " $16 }
                        }
                        END {
                            printf "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%d\n",
                                app, wk, shape, srv, runs,
                                stats(rps, nr), stats(p99, np), stats(cpu, nc), stats(sc, ns), stats(cs, nx),
                                stats(fx, nf), stats(ue, nu), stats(sg, ng),
                                err, bad, (why == "" ? "-" : why), np
                        }' "$RESULTS"
                done
            done
        done
    done
)
printf '%s\n' "$TABLE" >"$OUT/summary.tsv"
# columns of summary.tsv: 1 app, 2 workers, 3 shape, 4 server, 5 runs; then
# each "med min max": 6 req/s, 7 p99 (µs), 8 CPU/request (µs), 9 syscalls,
# 10 context switches, 11 futex calls, 12 io_uring enters, 13 TCP segments
# (9-13 per request); 14 errors, 15 bad runs, 16 why, 17 runs with a p99.

fmt_range() { # med min max scale fmt
    awk -v m="$1" -v lo="$2" -v hi="$3" -v k="$4" -v f="$5" 'BEGIN {
        if (m == "NA") { print "n/a"; exit }
        printf f " (" f ".." f ")\n", m * k, lo * k, hi * k }'
}
# a ÷ b; equal zeros are 1.00, a count above tokio's zero is "∞".
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {
    if (a == "NA" || b == "NA" || a == "" || b == "") print "NA"
    else if (b == 0) print (a == 0 ? "1.00" : "∞")
    else printf "%.2f\n", a / b }'; }
get() { # app workers shape server column -> median
    awk -F'\t' -v app="$1" -v wk="$2" -v shape="$3" -v srv="$4" -v c="$5" \
        '$1 == app && $2 == wk && $3 == shape && $4 == srv { split($c, v, " "); print v[1] }' "$OUT/summary.tsv"
}

# The results table of one worker count.
md_results() { # workers
    echo "| app | shape | server | req/s | p99 latency (ms) | server CPU/request (µs) | syscalls/request | ctx switches/request | futex calls/request | io_uring enters/request | TCP segments/request | errors |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    while IFS=$'\t' read -r app wk shape srv runs rps p99 cpu sc cs fx ue sg err bad why np99; do
        [[ $wk == "$1" ]] || continue
        read -r a b c <<<"$rps"; f_rps=$(fmt_range "$a" "$b" "$c" 1 "%.0f")
        read -r a b c <<<"$p99"; f_p99=$(fmt_range "$a" "$b" "$c" 0.001 "%.2f")
        [[ $np99 -lt $runs ]] && f_p99+=" [$np99 of $runs runs†]"
        read -r a b c <<<"$cpu"; f_cpu=$(fmt_range "$a" "$b" "$c" 1 "%.2f")
        read -r a b c <<<"$sc";  f_sc=$(fmt_range "$a" "$b" "$c" 1 "%.3f")
        read -r a b c <<<"$cs";  f_cs=$(fmt_range "$a" "$b" "$c" 1 "%.3f")
        read -r a b c <<<"$fx";  f_fx=$(fmt_range "$a" "$b" "$c" 1 "%.3f")
        read -r a b c <<<"$ue";  f_ue=$(fmt_range "$a" "$b" "$c" 1 "%.3f")
        read -r a b c <<<"$sg";  f_sg=$(fmt_range "$a" "$b" "$c" 1 "%.3f")
        if [[ $bad -gt 0 ]]; then f_err="**⚠ $bad/$runs runs: $why**"; else f_err="0"; fi
        echo "| $app | $shape | $srv | $f_rps | $f_p99 | $f_cpu | $f_sc | $f_cs | $f_fx | $f_ue | $f_sg | $f_err |"
    done <"$OUT/summary.tsv"
}

# The kevent ÷ tokio table of one worker count.
md_ratios() { # workers
    local w=$1 app shape
    echo "| app | shape | CPU/request | syscalls/request | ctx switches/request | futex calls/request | TCP segments/request | req/s | p99 | targets (CPU ≤ 0.80×; syscalls ≤ 1.0/keep-alive req; ctx switches, futex, segments ≤; req/s ≥, p99 ≤ tokio) |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    for app in $APPS; do
        for shape in "${SHAPES[@]}"; do
            local k_cpu t_cpu k_sc t_sc k_cs t_cs k_fx t_fx k_sg t_sg k_rps t_rps k_p99 t_p99
            k_cpu=$(get "$app" "$w" "$shape" kevent 8);  t_cpu=$(get "$app" "$w" "$shape" tokio 8)
            k_sc=$(get "$app" "$w" "$shape" kevent 9);   t_sc=$(get "$app" "$w" "$shape" tokio 9)
            k_cs=$(get "$app" "$w" "$shape" kevent 10);  t_cs=$(get "$app" "$w" "$shape" tokio 10)
            k_fx=$(get "$app" "$w" "$shape" kevent 11);  t_fx=$(get "$app" "$w" "$shape" tokio 11)
            k_sg=$(get "$app" "$w" "$shape" kevent 13);  t_sg=$(get "$app" "$w" "$shape" tokio 13)
            k_rps=$(get "$app" "$w" "$shape" kevent 6);  t_rps=$(get "$app" "$w" "$shape" tokio 6)
            k_p99=$(get "$app" "$w" "$shape" kevent 7);  t_p99=$(get "$app" "$w" "$shape" tokio 7)
            local r_cpu r_sc r_cs r_fx r_sg r_rps r_p99 v
            r_cpu=$(ratio "$k_cpu" "$t_cpu"); r_sc=$(ratio "$k_sc" "$t_sc")
            r_cs=$(ratio "$k_cs" "$t_cs"); r_fx=$(ratio "$k_fx" "$t_fx"); r_sg=$(ratio "$k_sg" "$t_sg")
            r_rps=$(ratio "$k_rps" "$t_rps"); r_p99=$(ratio "$k_p99" "$t_p99")
            v=$(awk -v c="$r_cpu" -v s="$k_sc" -v ka="$([[ $shape == *"connection per request"* ]] && echo 0 || echo 1)" -v kx="$k_cs" -v tx="$t_cs" -v kf="$k_fx" -v tf="$t_fx" \
                    -v kg="$k_sg" -v tg="$t_sg" -v r="$r_rps" -v p="$r_p99" '
                # compared as shown (f decimals): a difference the table
                # cannot show is not counted against kevent
                function le(name, k, t, f) {
                    if (k == "NA" || t == "NA" || k == "" || t == "") return name " n/a"
                    return name (sprintf(f, k) + 0 <= sprintf(f, t) + 0 ? " ✓" : " ✗")
                }
                # segments: wrk opens and closes its connections within
                # each run, about 7 segments each; over a different request
                # count that moves the figure by up to ~0.001, so only a
                # difference of 0.01 (one segment per 100 requests) counts
                function le_segs(k, t) {
                    if (k == "NA" || t == "NA" || k == "" || t == "") return "segments n/a"
                    return "segments" (k + 0 <= t + 0.01 ? " ✓" : " ✗")
                }
                BEGIN {
                out = (c == "NA" ? "CPU n/a" : (c <= 0.80 ? "CPU ✓" : "CPU ✗"))
                if (!ka) out = out ", " sprintf("syscalls (%.2f; the 1.0 target is per keep-alive request)", s)
                else out = out ", " (s == "NA" || s == "" ? "syscalls n/a" : (s <= 1.0 ? sprintf("syscalls ✓ (%.2f)", s) : sprintf("syscalls ✗ (%.2f)", s)))
                out = out ", " le("ctx switches", kx, tx, "%.3f") ", " le("futex", kf, tf, "%.3f") ", " le_segs(kg, tg)
                out = out ", " (r == "NA" ? "req/s n/a" : (r >= 1.0 ? "req/s ✓" : (r >= 0.90 ? "req/s ≈ (within 10%)" : "req/s ✗")))
                out = out ", " (p == "NA" ? "p99 n/a" : (p <= 1.0 ? "p99 ✓" : (p <= 1.10 ? "p99 ≈ (within 10%)" : "p99 ✗")))
                print out }')
            echo "| $app | $shape | $r_cpu | $r_sc | $r_cs | $r_fx | $r_sg | $r_rps | $r_p99 | $v |"
        done
    done
}

HAVE_RATIOS=0
[[ " $SERVERS " == *" kevent "* && " $SERVERS " == *" tokio "* ]] && HAVE_RATIOS=1

# One heading, results and ratios per worker count, the default first.
md_tables() {
    local w
    for w in $WORKER_COUNTS; do
        if [[ $w == default ]]; then
            echo "### Default worker count: one worker per CPU ($NPROC here)"
            echo
            echo "\`KEVENT_WORKERS\` and \`TOKIO_WORKER_THREADS\` unset: each runtime starts as many workers as there are CPUs. wrk takes one CPU, so here the workers share the other, and every needless sleep and wake-up shows as context switches and futex calls."
        else
            echo "### $w worker$([[ $w == 1 ]] || echo s)"
            echo
            echo "\`KEVENT_WORKERS=$w\`, \`TOKIO_WORKER_THREADS=$w\`."
        fi
        echo
        echo "Each cell: median over the rounds (min..max), per request where it is a count."
        echo
        md_results "$w"
        echo
        if [[ $HAVE_RATIOS == 1 ]]; then
            echo "kevent ÷ tokio, ratios of the medians (below 1 is better for kevent, except req/s; ∞: tokio made none):"
            echo
            md_ratios "$w"
            echo
        fi
    done
}
MD_TABLES=$(md_tables)

CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MACHINE="$NPROC vCPU, ${CPU_MODEL:-unknown CPU}, Linux $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC'); load average $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
WRK_VER=$( (wrk -v 2>&1 || true) | awk "NR == 1 { print \$2 }")
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?")
git -C "$ROOT" diff --quiet HEAD 2>/dev/null || COMMIT+=" with uncommitted changes"
T_END=$(date +%s)
ELAPSED=$((T_END - T_START))
ANY_BAD=$(awk -F'\t' '$16 != "ok"' "$RESULTS" | wc -l)
WORKERS_TEXT=""
for w in $WORKER_COUNTS; do WORKERS_TEXT+="${WORKERS_TEXT:+, }$(workers_name "$w")"; done

SECTION=$(
    echo "<!-- http:begin -->"
    echo "## HTTP load (benches/http.sh)"
    echo
    echo "_Written by \`benches/http.sh\`; rerunning it rewrites everything between the \`http:begin\`/\`http:end\` markers._"
    echo
    echo "- Command: \`$CMDLINE\` (total ${ELAPSED} s, at $COMMIT)"
    echo "- Machine: $MACHINE; wrk ${WRK_VER:-?}"
    echo "- Load: \`wrk -t1 -c{$(echo "$CONNECTIONS" | tr ' ' ',')} -d${DURATION}s --latency http://$HOST:PORT$URL_PATH\`$([[ $AXUM_PATH == "$URL_PATH" ]] || echo " (\`$AXUM_PATH\` for axum)"), pipelined shapes add TechEmpower's pipeline.lua (\`-s pipeline.lua -- 16\`), paced shapes \`-s paced.lua -- $PACE_MS\` (each connection waits $PACE_MS ms after every response)$([[ " $PIPELINES " == *" close "* ]] && echo ", connection-per-request shapes \`-H 'Connection: close'\` (the server closes each connection after its response)"); ${WARMUP} s warm-up per run, fresh server per run, $ROUNDS rounds alternating kevent/tokio (order flipped every other round)."
    echo "- Servers, release builds, each against its tokio twin: \`examples/http.rs\` / \`examples/http_tokio.rs\` (app \`http\`: hyper, a hand-written service) and \`examples/axum.rs\` / \`examples/axum_tokio.rs\` (app \`axum\`: an axum 0.8 \`Router\` through hyper-util's auto builder and \`TowerToHyperService\`); measured: $APPS. Worker counts: $WORKERS_TEXT."
    echo "- Counting: server CPU = Δ(utime+stime) of \`/proc/PID/stat\` over the wrk run ÷ requests wrk reports; $SYSCALL_NOTE; TCP segments = Δ\`OutSegs\` of the \`Tcp:\` lines of \`/proc/net/snmp\` over the wrk run ÷ requests ($SEGS_NOTE: 2.0 is one request segment and one response segment; wrk's handshakes and closes of its connections add about 0.005 in the paced shapes)."
    echo
    echo "$MD_TABLES"
    echo
    if [[ -n "$BUILD_FAILED" ]]; then
        echo "**⚠ not measured: $BUILD_FAILED did not build (\`cargo build --release --example ...\` failed), so those rows have no figures and no ratios.**"
        echo
    fi
    if [[ $ANY_BAD -gt 0 ]]; then
        echo "**⚠ $ANY_BAD run(s) had errors or misbehaved (see the errors column); their figures are included above.**"
        echo
    fi
    echo "How to read it: on this 2-vCPU machine wrk needs a core of its own and saturates before the server, so req/s (and p99, which follows wrk's own queueing) differ little between runtimes and swing ±25% between runs; only ratios from the same run, A/B alternated, mean anything. The figure that shows a faster runtime is **server CPU per request** (all server threads' utime+stime over the run ÷ requests; 10 ms ticks). Calibration: this script run A/A, tokio against a copy of itself, gave CPU/request ratios of 0.90–1.06, syscall ratios of 0.99–1.00 and p99 ratios of 0.67–1.71, so CPU differences under ~10% and any single p99 ratio are noise. Syscalls per request explain much of the CPU (the kernel's loopback TCP is most of the cost, so fewer crossings matter). Context switches and futex calls per request show how often workers sleep and are woken; io_uring enters are part of the syscalls (tokio makes none). TCP segments above 2.0 per plain keep-alive request mean responses left in pieces (or pure ACKs); they are counted to three decimals, and the target allows 0.01 a request above tokio's (wrk opens and closes its 64 connections in each run, which over a different request count moves the figure by about 0.001). In pipelined shapes one p99 sample covers a batch of 16 requests. wrk is closed-loop: in the plain and pipelined shapes the faster server makes wrk, which shares the CPUs, the bottleneck, and wrk's p99 then includes its own wait for a CPU; the paced shapes offer both servers the same load, one both keep up with, which is where p99 compares runtimes. † wrk 4.1 sometimes prints \`99%  0.00us\` (its coordinated-omission correction adds samples below the recorded minimum, where its percentile scan starts); such runs have no p99 and the cell says how many runs it rests on. Targets, in every shape at every worker count: kevent's server CPU per request ≤ 0.8× tokio's, ≤ 1.0 syscall per keep-alive request, context switches, futex calls and TCP segments per request no more than tokio's, req/s and p99 no worse than tokio's (a req/s or p99 ratio up to 10% on the wrong side is marked ≈, noise; p99 is noisier still)."
    echo "<!-- http:end -->"
)

echo
echo "$MD_TABLES"
echo
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
else
    printf '%s\n' "$SECTION" >"$OUT/section.md"
    echo "BENCHMARKS.md left as it was (UPDATE_MD=$UPDATE_MD); section: $OUT/section.md"
fi
echo "total runtime: ${ELAPSED}s"
[[ -z "$BUILD_FAILED" ]] || exit 2
