"""Sorts a callgrind profile of an HTTP server into parts and prints
user-space instructions per request for each (see benches/instructions.sh).

    python3 benches/instructions.py KEVENT_PROFILE KEVENT_REQUESTS \
        TOKIO_PROFILE TOKIO_REQUESTS [TOP]

Each function's own instructions (callgrind's self cost, its inlined code
included) go to the first part whose pattern its name matches. The kernel
is not counted: callgrind sees user space only.
"""

import re
import sys
from collections import Counter

# (part, pattern) in order; the first match wins.
PARTS = [
    # The runtimes and their glue to hyper: kevent's crates and the task
    # cells it uses; tokio's runtime modules, mio, and hyper-util's tokio
    # adapters (TokioIo, TokioTimer, TokioExecutor).
    ("runtime", r"kevent_runtime::|kevent_reactor::|async_task::|io_uring::|"
                r"tokio::(runtime|net|io|time|task|util|signal|process)::|mio::|"
                r"hyper_util::rt::tokio"),
    # What any runtime runs: hyper, the http types, the parser, buffers.
    ("hyper", r"hyper::|hyper_util::|http::|httparse::|httpdate::|bytes::|itoa|"
              r"want::|futures_util::|futures_core::"),
    # The example's own code and the graceful-shutdown watch (tokio::sync,
    # the same code in both servers).
    ("app", r"^http_tokio::|^generated_http|service::|tokio::sync::"),
    ("allocator", r"malloc|free|realloc|_int_|__rust_alloc|__rust_dealloc|"
                  r"__rust_realloc|__rdl_|__rg_|alloc_perturb|unlink_chunk|"
                  r"__rust_no_alloc_shim"),
    ("memcpy/memset", r"^__mem|^mem(cpy|move|set|cmp)"),
]


def self_costs(path):
    """Self cost of every function in a callgrind output file."""
    names, cost = {}, Counter()
    fn, pending_call = None, False

    def name(spec):
        m = re.match(r"\((\d+)\)(?:\s+(.*))?", spec)
        if not m:
            return spec
        if m.group(2):
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), m.group(1))

    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("fn="):
                fn = name(line[3:])
            elif line.startswith("cfn="):
                name(line[4:])
            elif line.startswith("calls="):
                pending_call = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                fields = line.split()
                if len(fields) < 2:
                    continue
                if pending_call:
                    # The inclusive cost of a call: counted in the callee.
                    pending_call = False
                elif fn is not None:
                    cost[fn] += int(fields[1])
    return cost


def part_of(fn):
    for part, pattern in PARTS:
        if re.search(pattern, fn):
            return part
    return "std, core, other"


def parts_of(cost, requests):
    parts = Counter()
    for fn, c in cost.items():
        parts[part_of(fn)] += c
    return {p: c / requests for p, c in parts.items()}


def main():
    kevent = self_costs(sys.argv[1]), float(sys.argv[2])
    tokio = self_costs(sys.argv[3]), float(sys.argv[4])
    top = int(sys.argv[5]) if len(sys.argv) > 5 else 25
    k, t = parts_of(*kevent), parts_of(*tokio)
    print("| part | kevent | tokio | kevent ÷ tokio |")
    print("|---|---:|---:|---:|")
    rows = [("**total**", sum(k.values()), sum(t.values()))]
    rows += [(p, k.get(p, 0), t.get(p, 0)) for p, _ in PARTS + [("std, core, other", "")]]
    for name, a, b in rows:
        ratio = f"{a / b:.2f}" if b else "n/a"
        print(f"| {name} | {a:.0f} | {b:.0f} | {ratio} |")
    for label, (cost, requests) in (("kevent", kevent), ("tokio", tokio)):
        print(f"\n{label}: the runtime's {top} costliest functions, instructions a request")
        runtime = [(c, fn) for fn, c in cost.items() if part_of(fn) == "runtime"]
        for c, fn in sorted(runtime, reverse=True)[:top]:
            print(f"    {c / requests:7.1f}  {fn[:110]}")


if __name__ == "__main__":
    main()
