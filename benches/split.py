#!/usr/bin/env python3
"""Sorts a server's CPU samples into what the runtime costs and what any runtime pays.

Reads `perf script -F ip,sym,dso` of a `perf record -e cpu-clock -c PERIOD
-g` profile on stdin and prints one line of JSON: samples per bucket. Used
by benches/split.sh, which knows the period and the requests served and
turns the counts into microseconds per request.

A sample's bucket comes from its call chain (leaf first):

- `net`: a kernel sample with a network-stack frame anywhere in its chain:
  TCP/IP, loopback, socket buffers, the copies to and from them, and the
  wake-ups the stack makes when data arrives (`sock_def_readable` calling
  epoll's or io_uring's callback). Both runtimes move the same bytes
  through the same TCP stack, so this is shared work.
- `sched`: a kernel sample in scheduling, futexes or a wait (`schedule`,
  `futex`, `epoll_wait`, `io_cqring_wait`) within its three innermost
  frames, not under the network stack: sleeping and waking workers. Work
  the kernel does inside a wait (io_uring's task work, epoll's harvest of
  ready items) counts where it belongs, not here.
- `syscall`: any other kernel sample under a system call: entering and
  leaving the kernel, fd lookups, epoll's and io_uring's own bookkeeping.
- `kernel_other`: kernel samples outside all of those (interrupts, page
  faults).
- `runtime`: a user-space leaf in the runtime: kevent, tokio, mio,
  async-task, crossbeam, parking_lot, io-uring, futures.
- `http`: a user-space leaf in the HTTP stack and the app (hyper, http,
  httparse, bytes, axum, tower, serde, matchit, the example's own code,
  tokio's `sync` that hyper-util's graceful shutdown uses on both
  runtimes), the allocator, or
  memcpy/memmove (in tokio's server every user-space copy is hyper's; in
  kevent's some are the runtime's, so kevent's `http` is an upper bound).
- `clock`: reading the clock (vDSO `clock_gettime`): hyper reads it per
  request, and the runtimes' timers do too.
- `user_other`: user-space leaves none of the above names (std's
  thread-locals, generic drop glue): unattributed.
"""

import json
import re
import sys


def starting_with(*prefixes):
    """A pattern matching names that start with one of `prefixes`."""
    return re.compile("^(" + "|".join(map(re.escape, prefixes)) + ")")


def naming(*parts):
    """A pattern matching names that contain one of `parts`."""
    return re.compile("|".join(map(re.escape, parts)))


NET = starting_with(
    "tcp_", "__tcp", "ip_", "__ip_", "ipv4_", "ip6_", "inet", "__inet", "sock_", "__sock_",
    "sk_", "__sk_", "skb_", "__skb", "kfree_skb", "__kfree_skb", "consume_skb", "napi_",
    "__napi", "net_rx", "__netif", "netif_", "process_backlog", "loopback_",
    "__dev_queue_xmit", "dev_hard_start", "validate_xmit", "bbr_", "cubictcp",
    "__alloc_skb", "alloc_skb", "__copy_skb", "release_sock", "lock_sock",
)
SCHED = starting_with(
    "schedule", "__schedule", "finish_task_switch", "futex_", "__futex", "do_futex",
    "__x64_sys_futex", "do_epoll_wait", "io_cqring_wait", "try_to_wake_up", "__wake_up",
    "wake_up_q", "pick_next", "dequeue_task", "enqueue_task", "psi_",
)
SYSCALL = starting_with("entry_SYSCALL", "do_syscall_64", "__x64_sys_", "syscall_exit", "__do_sys_")
RUNTIME = naming(
    "kevent", "tokio::", "mio::", "async_task", "crossbeam", "parking_lot", "io_uring::",
    "futures_",
)
HTTP = naming(
    "hyper", "http::", "httparse", "bytes::", "axum", "tower", "serde", "matchit", "itoa",
    "malloc", "free", "_int_", "memmove", "memcpy", "memset", "alloc::", "realloc",
    "SystemTime", "core::fmt",
)
# The example servers' own code (their accept loops and services).
APP = re.compile(r"^<?(http|axum)(_tokio)?::")
# tokio's runtime-agnostic parts, which hyper-util's graceful shutdown uses
# on both runtimes.
SHARED_TOKIO = naming("tokio::sync::", "tokio::task::coop::")
CLOCK = naming("clock_gettime", "read_tsc", "__vdso")


def bucket(frames):
    """frames: [(sym, dso)], leaf first."""
    kernel = [s for s, d in frames if d == "[kernel.kallsyms]"]
    if frames and frames[0][1] == "[kernel.kallsyms]":
        if any(NET.match(s) for s in kernel):
            return "net"
        # What runs inside a wait (io_uring's task work, epoll's harvest)
        # is not the wait's: only the switch and wake-up themselves are.
        if any(SCHED.match(s) for s in kernel[:3]):
            return "sched"
        if any(SYSCALL.match(s) for s in kernel):
            return "syscall"
        return "kernel_other"
    leaf = frames[0][0] if frames else ""
    if APP.search(leaf) or SHARED_TOKIO.search(leaf):
        return "http"
    if RUNTIME.search(leaf):
        return "runtime"
    if CLOCK.search(leaf) or (frames and "vdso" in frames[0][1]):
        return "clock"
    if HTTP.search(leaf):
        return "http"
    return "user_other"


def main():
    counts = {}
    frames = []
    line_re = re.compile(r"^\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$")

    def flush():
        if frames:
            b = bucket(frames)
            counts[b] = counts.get(b, 0) + 1
            frames.clear()

    for line in sys.stdin:
        if not line.strip():
            flush()
            continue
        m = line_re.match(line)
        if not m:
            continue
        sym = re.sub(r"\+0x[0-9a-f]+$", "", m.group(1))
        frames.append((sym, m.group(2)))
    flush()
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
