#!/usr/bin/env bash
# Runs tests/memcheck_program.rs under valgrind memcheck: a runtime of each
# flavor spawning, completing, aborting and panicking tasks, doing TCP and
# Unix I/O, and shutting down with tasks pending. Fails on any invalid
# access or definitely leaked block.
#
#   tests/valgrind.sh                       # the mio backend
#   KEVENT_BACKEND=uring tests/valgrind.sh  # try io_uring (see below)
#
# The backend defaults to mio, not auto: valgrind 3.19 does not model the
# kernel writing io_uring's shared rings, so under it the io_uring backend
# never sees its completions and the workload hangs.
set -euo pipefail
export KEVENT_BACKEND="${KEVENT_BACKEND:-mio}"
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }

# Build the test binary and find its path in cargo's JSON messages.
bin=$(cargo test --no-run --test memcheck_program --message-format=json 2>/dev/null |
    grep '"reason":"compiler-artifact"' |
    grep '"name":"memcheck_program"' |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' |
    tail -n 1)
[ -n "$bin" ] && [ -x "$bin" ] || { echo "could not find the memcheck_program binary" >&2; exit 2; }
echo "valgrind memcheck: $bin (KEVENT_BACKEND=$KEVENT_BACKEND)" >&2

# RUST_BACKTRACE=0: the workload's one expected panic prints no backtrace
# (symbolizing it under valgrind is slow).
RUST_BACKTRACE=0 valgrind \
    --error-exitcode=1 \
    --leak-check=full \
    --errors-for-leak-kinds=definite \
    --show-leak-kinds=definite \
    --track-origins=yes \
    "$bin" --exact memcheck_workload --test-threads=1 --nocapture
