#!/usr/bin/env bash
# Per-thread CPU and context switches of a server at 2 workers under load.
#
#   bash benches/threads.sh BIN PORT SERVER_CPUS
#
# Starts BIN (examples/http or http_tokio, release) on SERVER_CPUS
# (`taskset -c`, e.g. "1" or "0,1"), wrk on CPU 0 (`wrk -t1 -c64`, 1 s of
# warm-up, then 3 s), and prints each thread's CPU ticks (utime+stime) and
# voluntary and involuntary context switches over the 3 s.
BIN=$1; PORT=$2; CPUS=$3
KEVENT_WORKERS=2 TOKIO_WORKER_THREADS=2 taskset -c $CPUS $BIN 127.0.0.1:$PORT 2>/dev/null &
PID=$!; sleep 0.4
taskset -c 0 wrk -t1 -c64 -d1s http://127.0.0.1:$PORT/plaintext >/dev/null 2>&1
for t in /proc/$PID/task/*; do echo "$(cat $t/comm) $(awk '{print $14+$15}' $t/stat) $(grep -E '^(voluntary|nonvoluntary)' $t/status | awk '{printf "%s ", $2}')"; done > /tmp/thr0
taskset -c 0 wrk -t1 -c64 -d3s http://127.0.0.1:$PORT/plaintext | awk '/Requests\/sec/ {print "rps", $2}'
for t in /proc/$PID/task/*; do echo "$(cat $t/comm) $(awk '{print $14+$15}' $t/stat) $(grep -E '^(voluntary|nonvoluntary)' $t/status | awk '{printf "%s ", $2}')"; done > /tmp/thr1
paste /tmp/thr0 /tmp/thr1 | awk '{printf "%-20s cpu_ticks=%d vol_cs=%d invol_cs=%d\n", $1, $6-$2, $7-$3, $8-$4}'
kill -TERM $PID; wait $PID 2>/dev/null
