#!/usr/bin/env bash
# The numa bus against moodycamel (issue 14, item 3), measured two ways, RUNS times each:
#
#   scripts/bus_target.sh [RUNS] [--exe PATH]
#
# 1. The issue's command: bus/numa and baseline/moodycamel, 1p1c and 2p1c (64 B), in one process,
#    5 repetitions randomly interleaved; the target holds in a run when numa's median rate is at
#    least moodycamel's, at 1p1c and at 2p1c.
# 2. Each benchmark in a process of its own (bus/numa, baseline/moodycamel and
#    baseline/moodycamel_bounded at 2p1c, 5 repetitions each): the same bus without what the
#    benchmarks before it in the process left in the allocator (docs/benchmarks.md, session 13);
#    and bus/numa against baseline/moodycamel at 2p1c with 8-byte payloads, which fit in the item
#    (no allocation per item: the queues without malloc).
#
# RUNS: how many of each (default 5). --exe: the xsn_bench program (default:
# build/benchmarks/xsn_bench, a Release build with -DXSN_WITH_ADVANCED=ON). Prints one line per
# run and how many runs met each comparison. Wall-clock figures: run it on a quiet machine.
# Exit status: 0 (a measurement, not a gate), 64 usage, 1 a benchmark failed or is missing.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
exe=$root/build/benchmarks/xsn_bench
runs=5
usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case "$1" in
    --exe) exe=${2:?--exe needs a path}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) [[ $1 =~ ^[1-9][0-9]*$ ]] || { usage >&2; exit 64; }; runs=$1 ;;
  esac
  shift
done
[[ -x $exe ]] || { echo "bus_target: $exe not found (cmake --build build --target xsn_bench)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# bench OUT FILTER [MORE OPTIONS]: medians of 5 repetitions as JSON in OUT.
bench() {
  local out=$1 filter=$2
  shift 2
  "$exe" --benchmark_filter="$filter" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
    --benchmark_format=json "$@" > "$out" 2> "$tmp/stderr" ||
    { cat "$tmp/stderr" >&2; echo "bus_target: xsn_bench failed" >&2; exit 1; }
}

# Median items/s of each benchmark in the given JSON files, as "name rate" lines (read by
# ratios.py's ns_per_item).
medians() {
  python3 - "$root/benchmarks" "$@" <<'EOF'
import json, sys
sys.path.insert(0, sys.argv[1])
from ratios import ns_per_item
for path in sys.argv[2:]:
    for name, ns in ns_per_item(json.load(open(path))).items():
        if ns:
            print(name, 1e9 / ns)
EOF
}

# rate NAME FILE: the median rate of NAME in the "name rate" lines of FILE.
rate() {
  local r
  r=$(awk -v n="$1" '$1 == n { print $2 }' "$2")
  [[ -n $r ]] || { echo "bus_target: no figure for $1" >&2; exit 1; }
  echo "$r"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
m() { awk -v r="$1" 'BEGIN { printf "%.2f", r / 1e6 }'; }  # items/s as M items/s
ge_one() { awk -v r="$1" 'BEGIN { exit !(r >= 1.0) }'; }

met_1p1c=0 met_2p1c=0 met_alone=0 met_bounded=0 met_8b=0
row() { printf '%-4s | %-30s | %-30s | %-40s | %-28s\n' "$@"; }
row run "interleaved 1p1c numa/moody" "interleaved 2p1c numa/moody" "alone 2p1c numa/moody, numa/bounded" \
  "alone 2p1c 8 B numa/moody"
for ((i = 1; i <= runs; i++)); do
  bench "$tmp/inter.json" '^(bus/numa|baseline/moodycamel)/(1p1c|2p1c)_64B$' --benchmark_enable_random_interleaving=true
  for name in bus/numa/2p1c_64B baseline/moodycamel/2p1c_64B baseline/moodycamel_bounded/2p1c_64B \
    bus/numa/2p1c_8B baseline/moodycamel/2p1c_8B; do
    bench "$tmp/alone-${name//\//_}.json" "^${name}\$"
  done
  medians "$tmp/inter.json" > "$tmp/inter.txt"
  medians "$tmp"/alone-*.json > "$tmp/alone.txt"
  n1=$(rate bus/numa/1p1c_64B "$tmp/inter.txt") m1=$(rate baseline/moodycamel/1p1c_64B "$tmp/inter.txt")
  n2=$(rate bus/numa/2p1c_64B "$tmp/inter.txt") m2=$(rate baseline/moodycamel/2p1c_64B "$tmp/inter.txt")
  an=$(rate bus/numa/2p1c_64B "$tmp/alone.txt") am=$(rate baseline/moodycamel/2p1c_64B "$tmp/alone.txt")
  ab=$(rate baseline/moodycamel_bounded/2p1c_64B "$tmp/alone.txt")
  e8=$(rate bus/numa/2p1c_8B "$tmp/alone.txt") m8=$(rate baseline/moodycamel/2p1c_8B "$tmp/alone.txt")
  r1=$(ratio "$n1" "$m1") r2=$(ratio "$n2" "$m2") ra=$(ratio "$an" "$am") rb=$(ratio "$an" "$ab")
  r8=$(ratio "$e8" "$m8")
  ge_one "$r1" && met_1p1c=$((met_1p1c + 1))
  ge_one "$r2" && met_2p1c=$((met_2p1c + 1))
  ge_one "$ra" && met_alone=$((met_alone + 1))
  ge_one "$rb" && met_bounded=$((met_bounded + 1))
  ge_one "$r8" && met_8b=$((met_8b + 1))
  row "$i" "$r1 ($(m "$n1") / $(m "$m1"))" "$r2 ($(m "$n2") / $(m "$m2"))" \
    "$ra, $rb ($(m "$an") / $(m "$am"), $(m "$ab"))" "$r8 ($(m "$e8") / $(m "$m8"))"
done
echo
echo "numa >= moodycamel, interleaved (the issue's target): 1p1c $met_1p1c of $runs, 2p1c $met_2p1c of $runs"
echo "numa >= moodycamel, 2p1c, each alone:                 $met_alone of $runs"
echo "numa >= moodycamel_bounded, 2p1c, each alone:         $met_bounded of $runs"
echo "numa >= moodycamel, 2p1c 8 B, each alone:             $met_8b of $runs"
echo "(each cell: median ratio, then the medians in M items/s)"
