#!/usr/bin/env python3
"""kevent ÷ baseline ratios from criterion's output: a Markdown table, an SVG
bar chart and the geometric mean of the rt suite.

Usage (from the repository root, after the cargo benches):

    python3 benches/chart.py [--criterion DIR]... [--table FILE] [--svg FILE]

Reads every ``<group>/<function>/new/sample.json`` under each criterion
directory (default: ``$CARGO_TARGET_DIR/criterion``, else
``target/criterion``). A comparison pairs, inside one group, the function
``kevent`` (or ``kevent/<variant>``) with its baseline: ``tokio`` (or
``tokio/<variant>``), else the function whose name starts with
``arrayqueue`` (the ring suite's baseline), with the same variant.

The figure compared is the MINIMUM time per iteration over all samples
(``times[i] / iters[i]``) and, when ``--criterion`` is given several times
(for example a copy of the first run's directory and the second run's), over
all runs: on a noisy machine the minimum repeats better than the median.
ratio = kevent min ÷ baseline min; below 1 kevent is faster. With several
runs the table also shows how many runs held each pair and the range of the
ratios measured within each run, so the noise stays visible.

Only the Python standard library is used, so the chart reproduces anywhere.
"""

import argparse
import json
import math
import os
import sys
from xml.sax.saxutils import escape

# Groups of each bench file, in the order the table lists them. A group
# found in criterion's output but not named here is listed under "other".
SUITES = {
    "rt": [
        "spawn_many_local",
        "spawn_many_remote_idle",
        "spawn_many_remote_busy",
        "yield_many",
        "ping_pong",
        "chained_spawn",
    ],
    "time": ["sleeps_100k", "timeout_create_cancel", "timeout_pending_then_cancel"],
    "net": ["tcp_echo_1conn", "tcp_echo_64conn", "accept_storm"],
    "ring": ["ring_1p1c", "ring_1p2c", "wake_latency"],
}
# The targets for the rt suite: geometric mean of the ratios at most
# RT_TARGET_GEOMEAN, and no single ratio above WORST_TARGET.
RT_TARGET_GEOMEAN = 0.85
WORST_TARGET = 1.25

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_criterion_dir():
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")
    return os.path.join(target, "criterion")


def read_samples(root):
    """{(group, function): [ns per iteration of each sample]} for every benchmark under root."""
    samples = {}
    for dirpath, _dirs, files in os.walk(root):
        if os.path.basename(dirpath) != "new" or "sample.json" not in files:
            continue
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            ids = json.load(f)
        with open(os.path.join(dirpath, "sample.json")) as f:
            sample = json.load(f)
        per_iter = [t / n for t, n in zip(sample["times"], sample["iters"]) if n > 0]
        if per_iter:
            samples[(ids["group_id"], ids["function_id"])] = per_iter
    return samples


def split_function(function):
    """'kevent/spin_ack' -> ('kevent', 'spin_ack'); 'tokio' -> ('tokio', None)."""
    name, _, variant = function.partition("/")
    return name, (variant or None)


def comparisons(minima):
    """Rows (suite, label, kevent_fn, baseline_fn, kevent_ns, baseline_ns), table order."""
    by_group = {}
    for (group, function), ns in minima.items():
        by_group.setdefault(group, {})[function] = ns

    rows = []
    for group, functions in by_group.items():
        for function, kevent_ns in functions.items():
            name, variant = split_function(function)
            if name != "kevent":
                continue
            candidates = [
                f
                for f in functions
                if split_function(f)[1] == variant
                and (split_function(f)[0] == "tokio" or split_function(f)[0].startswith("arrayqueue"))
            ]
            # tokio first, then the arrayqueue baseline.
            candidates.sort(key=lambda f: (not f.startswith("tokio"), f))
            if not candidates:
                continue
            baseline = candidates[0]
            suite = next((s for s, groups in SUITES.items() if group in groups), "other")
            label = group if variant is None else f"{group}/{variant}"
            rows.append((suite, label, function, baseline, kevent_ns, functions[baseline]))

    order = {s: i for i, s in enumerate(list(SUITES) + ["other"])}

    def position(row):
        suite, label = row[0], row[1]
        groups = SUITES.get(suite, [])
        group = label.split("/")[0]
        return (order[suite], groups.index(group) if group in groups else len(groups), label)

    rows.sort(key=position)
    return rows


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def geomean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def per_run_ratios(row, runs):
    """The ratio measured within each run that holds both functions of row."""
    group = row[1].split("/")[0]
    return [
        run[(group, row[2])] / run[(group, row[3])]
        for run in runs
        if (group, row[2]) in run and (group, row[3]) in run
    ]


def median(values):
    v = sorted(values)
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


def markdown(rows, runs, medians):
    lines = [
        "Minimum time per iteration over all samples of all runs; "
        "ratio = kevent min ÷ baseline min, below 1 kevent is faster. "
        "Per run: the same ratio within each run alone (lowest–highest). "
        "Median ratio: the same with the median over all samples instead of "
        "the minimum (a check on a baseline whose minimum is a rare outlier).",
        "",
        "| suite | group | kevent min | baseline | baseline min | ratio | runs | per run | median ratio |",
        "|---|---|---:|---|---:|---:|---:|---|---:|",
    ]
    for row in rows:
        suite, label, kfn, base, k, b = row
        ratio = k / b
        mark = " ✗" if ratio > WORST_TARGET else ""
        each = per_run_ratios(row, runs)
        spread = f"{min(each):.2f}–{max(each):.2f}" if len(each) > 1 else ""
        group = label.split("/")[0]
        med = medians[(group, kfn)] / medians[(group, base)]
        lines.append(
            f"| {suite} | `{label}` | {fmt_time(k)} | {split_function(base)[0]} | {fmt_time(b)} "
            f"| {ratio:.2f}{mark} | {len(each)} | {spread} | {med:.2f} |"
        )
    lines.append("")
    lines.append(f"✗: above {WORST_TARGET}×, the worst ratio allowed for any bench.")
    return "\n".join(lines) + "\n"


def svg_chart(rows):
    """A horizontal bar per comparison on a log2 axis centred on 1.0."""
    ratios = [row[4] / row[5] for row in rows]
    lo = min([0.5] + ratios)
    hi = max([2.0] + ratios)
    lo_exp = math.floor(math.log2(lo))
    hi_exp = math.ceil(math.log2(hi))

    label_w, plot_w, value_w = 300, 520, 70
    bar_h, gap, top, bottom = 18, 6, 56, 44
    header_h = 22
    suites = []
    for row in rows:
        if not suites or suites[-1] != row[0]:
            suites.append(row[0])
    height = top + len(rows) * (bar_h + gap) + len(suites) * header_h + bottom
    width = label_w + plot_w + value_w + 20

    def x_of(ratio):
        frac = (math.log2(ratio) - lo_exp) / (hi_exp - lo_exp)
        return label_w + frac * plot_w

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="15" font-weight="bold">'
        "kevent ÷ baseline, minimum time per iteration (log scale)</text>",
        f'<text x="{width / 2}" y="38" text-anchor="middle" fill="#555">'
        "left of 1.0 (green): kevent faster · right (red): kevent slower · "
        f"dashed: {RT_TARGET_GEOMEAN} and {WORST_TARGET}</text>",
    ]
    plot_top = top
    plot_bottom = height - bottom
    # Grid: one line per power of two.
    for e in range(lo_exp, hi_exp + 1):
        x = x_of(2.0**e)
        tick = f"{2.0**e:g}" if e >= 0 else f"1/{2**-e}"
        stroke = "#000" if e == 0 else "#ddd"
        out.append(f'<line x1="{x:.1f}" y1="{plot_top}" x2="{x:.1f}" y2="{plot_bottom}" stroke="{stroke}"/>')
        out.append(f'<text x="{x:.1f}" y="{plot_bottom + 16}" text-anchor="middle">{tick}</text>')
    for target in (RT_TARGET_GEOMEAN, WORST_TARGET):
        x = x_of(target)
        out.append(
            f'<line x1="{x:.1f}" y1="{plot_top}" x2="{x:.1f}" y2="{plot_bottom}" '
            'stroke="#888" stroke-dasharray="4 3"/>'
        )
    out.append(
        f'<text x="{label_w + plot_w / 2}" y="{plot_bottom + 34}" text-anchor="middle" fill="#555">'
        "ratio kevent ÷ baseline (tokio; arrayqueue for ring)</text>"
    )

    y = top
    suite = None
    one = x_of(1.0)
    for (row_suite, label, _, base, _, _), ratio in zip(rows, ratios):
        base = split_function(base)[0]
        if row_suite != suite:
            suite = row_suite
            out.append(
                f'<text x="8" y="{y + 15}" font-weight="bold">{escape(suite)}</text>'
            )
            y += header_h
        x = x_of(ratio)
        left, right = min(x, one), max(x, one)
        colour = "#3a8f3a" if ratio <= 1.0 else "#c0392b"
        out.append(
            f'<text x="{label_w - 8}" y="{y + bar_h - 5}" text-anchor="end">'
            f"{escape(label)} <tspan fill=\"#777\">vs {escape(base)}</tspan></text>"
        )
        out.append(
            f'<rect x="{left:.1f}" y="{y}" width="{max(right - left, 1):.1f}" height="{bar_h}" fill="{colour}"/>'
        )
        if ratio <= 1.0:
            tx, anchor = left - 4, "end"
        else:
            tx, anchor = right + 4, "start"
        out.append(
            f'<text x="{tx:.1f}" y="{y + bar_h - 5}" text-anchor="{anchor}">{ratio:.2f}</text>'
        )
        y += bar_h + gap
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--criterion",
        action="append",
        help="a criterion output directory; repeat to take minima over runs "
        "(default: $CARGO_TARGET_DIR/criterion, else target/criterion)",
    )
    parser.add_argument("--table", help="write the Markdown table here instead of stdout")
    parser.add_argument(
        "--svg", default=os.path.join(REPO, "benches", "ratios.svg"), help="chart file (default: benches/ratios.svg)"
    )
    args = parser.parse_args()
    roots = args.criterion or [default_criterion_dir()]

    runs = []
    for root in roots:
        if not os.path.isdir(root):
            sys.exit(f"no criterion output at {root}: run the cargo benches first")
        runs.append(read_samples(root))
    pooled = {}
    for run in runs:
        for key, per_iter in run.items():
            pooled.setdefault(key, []).extend(per_iter)
    minima = {key: min(v) for key, v in pooled.items()}
    medians = {key: median(v) for key, v in pooled.items()}
    runs = [{key: min(v) for key, v in run.items()} for run in runs]

    rows = comparisons(minima)
    if not rows:
        sys.exit("no group has both a kevent function and a baseline")

    table = markdown(rows, runs, medians)
    rt_rows = [r for r in rows if r[0] == "rt"]
    g = geomean([r[4] / r[5] for r in rt_rows])
    # The same geometric mean within each run that holds every rt pair.
    per_run = [
        geomean([run[(r[1], r[2])] / run[(r[1], r[3])] for r in rt_rows])
        for run in runs
        if rt_rows and all((r[1], r[2]) in run and (r[1], r[3]) in run for r in rt_rows)
    ]
    worst = max(rows, key=lambda r: r[4] / r[5])
    over = [r[1] for r in rows if r[4] / r[5] > WORST_TARGET]
    summary = (
        f"rt geometric mean: {g:.3f} over {len(rt_rows)} groups "
        f"(target ≤ {RT_TARGET_GEOMEAN}: {'met' if g <= RT_TARGET_GEOMEAN else 'not met'})\n"
        + (f"rt geometric mean within each run: {', '.join(f'{x:.3f}' for x in per_run)}\n" if len(per_run) > 1 else "")
        + f"worst ratio: {worst[4] / worst[5]:.2f} ({worst[1]}); "
        f"above {WORST_TARGET}×: {', '.join(over) if over else 'none'}\n"
    )

    if args.table:
        with open(args.table, "w") as f:
            f.write(table)
    else:
        sys.stdout.write(table + "\n")
    sys.stdout.write(summary)

    with open(args.svg, "w") as f:
        f.write(svg_chart(rows))


if __name__ == "__main__":
    main()
