#!/usr/bin/env python3
"""Summarise `xsn_bench --benchmark_format=json` output: ns per item for every benchmark, and the
ratios against the baselines for the toggle and parallel machines.

    ./build/benchmarks/xsn_bench --benchmark_format=json > bench.json
    python3 benchmarks/ratios.py bench.json          # or: ... | python3 benchmarks/ratios.py
    python3 benchmarks/ratios.py --check bench.json  # exit 1 when a target is missed

With `--benchmark_repetitions=N` the median aggregate is used. Rates are Google Benchmark's
`items_per_second`, which it computes from CPU time.
"""
import argparse
import json
import sys

MACHINES = ("toggle", "parallel")
# machine: (max ns/event, min statechart/xsn, max xsn/msm)
TARGETS = {"toggle": (40.0, 3.0, 3.0), "parallel": (100.0, 3.0, 2.0)}


def ns_per_item(report):
    """Maps benchmark name -> ns per item, preferring the median aggregate when there is one."""
    plain, median = {}, {}
    for b in report.get("benchmarks", []):
        if b.get("error_occurred"):
            plain.setdefault(b.get("run_name", b["name"]), None)
            continue
        rate = b.get("items_per_second")
        if not rate:
            continue
        name = b.get("run_name", b["name"])
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                median[name] = 1e9 / rate
        else:
            plain.setdefault(name, 1e9 / rate)  # first repetition when not aggregated
    plain.update(median)
    return plain


def fmt(x, width, decimals):
    """`x` right-aligned in `width` columns, or `n/a`."""
    return f"{'n/a':>{width}}" if x is None else f"{x:{width}.{decimals}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", help="JSON report (default: stdin)")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = ap.parse_args()
    with (open(args.file) if args.file else sys.stdin) as f:
        report = json.load(f)
    ns = ns_per_item(report)
    if not ns:
        sys.exit("ratios.py: no benchmark with items_per_second in the input")

    # Fixed order whatever the run order (e.g. --benchmark_enable_random_interleaving).
    prefixes = ("interpreter/", "parse/", "baseline/msm/", "baseline/statechart/")
    def rank(item):
        name = item[0]
        return next((i for i, p in enumerate(prefixes) if name.startswith(p)), len(prefixes))
    ordered = sorted(ns.items(), key=rank)  # stable: input order within a group

    width = max(len(n) for n in ns)
    print(f"{'benchmark':<{width}}  {'ns/item':>10}")
    for name, v in ordered:
        print(f"{name:<{width}}  {fmt(v, 10, 1) if v is not None else 'ERROR':>10}")

    print()
    print(f"{'machine':<9} {'xsn ns':>8} {'msm ns':>8} {'sc ns':>8} {'xsn/msm':>8} {'sc/xsn':>8}  targets")
    missed = []
    for m in MACHINES:
        x = ns.get(f"interpreter/{m}")
        msm = ns.get(f"baseline/msm/{m}")
        sc = ns.get(f"baseline/statechart/{m}")
        x_msm = x / msm if x and msm else None
        sc_x = sc / x if x and sc else None
        max_ns, min_sc, max_msm = TARGETS[m]
        checks = [
            (f"<= {max_ns:g} ns", x is not None and x <= max_ns),
            (f"sc/xsn >= {min_sc:g}", sc_x is not None and sc_x >= min_sc),
            (f"xsn/msm <= {max_msm:g}", x_msm is not None and x_msm <= max_msm),
        ]
        verdict = ", ".join(f"{label} {'ok' if ok else 'MISSED'}" for label, ok in checks)
        missed += [f"{m}: {label}" for label, ok in checks if not ok]
        print(f"{m:<9} {fmt(x, 8, 1)} {fmt(msm, 8, 1)} {fmt(sc, 8, 1)} "
              f"{fmt(x_msm, 8, 2)} {fmt(sc_x, 8, 2)}  {verdict}")

    if args.check and missed:
        print("\nmissed: " + "; ".join(missed), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
