#!/usr/bin/env bash
# Throughput of `xsn serve`, 1 node against 3 nodes on one Redis, and what Redis pays per event.
# Each run is xsn_chaos in load-only mode (`--kills 0`): its own redis-server (appendonly, with
# the appendfsync below), N nodes, C client threads sending `inc` to 900 counters for S seconds,
# every effect checked at the end; then 5 s of idle nodes. Runs 1 and 3 nodes alternately (the
# order flips every round), for appendfsync `always` and `everysec`, and prints the medians:
# events/s, the ratio 3 nodes / 1 node, Redis CPU us per event (`INFO cpu`), Redis commands per
# event (`INFO commandstats`: those the nodes send, and those their scripts call), the CPU of the
# nodes, of the clients and of the whole machine.
#
#   scripts/throughput.sh [--seconds S] [--clients C] [--rounds R] [--appendfsync always|everysec]
#                         [--check] [--keep DIR] [-- MORE xsn_chaos OPTIONS]
#
# Defaults: 30 s, 8 clients, 3 rounds, both appendfsync settings. --check: exit 1 when 3 nodes
# reach less than 0.8x of one node's events/s (the target of issue 12). --keep DIR: keep every
# run's JSON summary there (a run's summary has the per-command breakdown).
# Builds xsn and xsn_chaos if needed. Exit 1 if a run failed (lost or duplicated effects).
#
# Environment:
#   XSN_BUILD_DIR  build directory configured with tests on (default: build)
#   XSN_JOBS       parallel build jobs (default: number of CPUs)
set -euo pipefail

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }

seconds=30 clients=8 rounds=3 check=0 keep= extra=() fsyncs=(always everysec)
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) seconds=${2:?--seconds needs a value}; shift 2 ;;
    --clients) clients=${2:?--clients needs a value}; shift 2 ;;
    --rounds) rounds=${2:?--rounds needs a value}; shift 2 ;;
    --appendfsync) fsyncs=("${2:?--appendfsync needs a value}"); shift 2 ;;
    --check) check=1; shift ;;
    --keep) keep=${2:?--keep needs a folder}; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 64 ;;
  esac
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${XSN_BUILD_DIR:-$root/build}
jobs=${XSN_JOBS:-$(nproc 2>/dev/null || echo 2)}
[[ -f $build/CMakeCache.txt ]] || cmake --preset release -S "$root"
cmake --build "$build" --target xsn xsn_chaos -j "$jobs"

if [[ -n $keep ]]; then
  mkdir -p "$keep"
  out=$keep
else
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi

failed=0
for fsync in "${fsyncs[@]}"; do
  for ((r = 1; r <= rounds; ++r)); do
    if ((r % 2)); then order=(1 3); else order=(3 1); fi
    for n in "${order[@]}"; do
      summary="$out/$fsync-$n-$r.json"
      echo "==> appendfsync $fsync, $n node(s), round $r/$rounds, load average $(cut -d' ' -f1-3 /proc/loadavg)"
      rm -f "$summary"
      if ! "$build/tests/chaos/xsn_chaos" --xsn "$build/src/cli/xsn" --kills 0 --nodes "$n" \
          --duration-s "$seconds" --idle-s 5 --clients "$clients" --mix counters --machines 1000 \
          --partitions 64 --lease-ms 2000 --appendfsync "$fsync" --seed "$r" --json-summary "$summary" \
          "${extra[@]}" | grep -E '^xsn_chaos (seed|: cost per event)'; then
        failed=$((failed + 1))
      fi
    done
  done
done

status=0
python3 - "$out" "$check" <<'EOF' || status=$?
import glob, json, os, statistics, sys

folder, check = sys.argv[1], sys.argv[2] == "1"
runs = {}
for f in sorted(glob.glob(os.path.join(folder, "*.json"))):
    fsync, nodes, _ = os.path.basename(f)[:-5].split("-")
    with open(f) as fh:
        s = json.load(fh)
    if s.get("passed"):
        runs.setdefault((fsync, int(nodes)), []).append(s)

med = statistics.median
def m(fsync, nodes, get):
    vals = [get(s) for s in runs.get((fsync, nodes), [])]
    vals = [v for v in vals if v is not None]
    return med(vals) if vals else float("nan")

ok = True
for fsync in ("always", "everysec"):
    if (fsync, 1) not in runs and (fsync, 3) not in runs:
        continue
    print(f"\nappendfsync {fsync} (medians of {len(runs.get((fsync, 1), []))} and {len(runs.get((fsync, 3), []))} runs)")
    print(f"  {'nodes':>5} {'events/s':>9} {'redis us/ev':>11} {'cmds/ev':>7} {'+script':>7} "
          f"{'nodes us/ev':>11} {'client us/ev':>12} {'busy':>5} {'idle redis cmds/s':>17}")
    rate = {}
    for n in (1, 3):
        c = lambda k: m(fsync, n, lambda s: s["cost"].get(k))
        rate[n] = m(fsync, n, lambda s: s["events_per_s"])
        idle = m(fsync, n, lambda s: (s.get("idle_cost_per_s") or {}).get("redis_commands_per_event"))
        print(f"  {n:>5} {rate[n]:>9.0f} {c('redis_cpu_us_per_event'):>11.1f} "
              f"{c('redis_commands_per_event'):>7.2f} {c('redis_script_calls_per_event'):>7.2f} "
              f"{c('nodes_cpu_us_per_event'):>11.1f} {c('driver_cpu_us_per_event'):>12.1f} "
              f"{100 * c('machine_busy_fraction'):>4.0f}% {idle:>17.0f}")
    ratio = rate[3] / rate[1] if rate[1] else float("nan")
    met = ratio >= 0.8
    ok = ok and met
    print(f"  ratio 3 nodes / 1 node: {ratio:.2f} (target >= 0.8: {'met' if met else 'NOT met'})")
    names = sorted({k for s in runs.get((fsync, 3), []) for k, v in s["cost"]["commands"].items()
                    if not v["in_script"]})
    for name in names:
        per = lambda n, key: m(fsync, n, lambda s: s["cost"]["commands"].get(name, {}).get(key))
        print(f"    {name:<14} calls/event 1 node {per(1, 'calls_per_event'):.3f}, 3 nodes "
              f"{per(3, 'calls_per_event'):.3f}; us/event {per(1, 'usec_per_event'):.1f}, {per(3, 'usec_per_event'):.1f}")
sys.exit(1 if check and not ok else 0)
EOF
echo "throughput.sh: $failed failed run(s)"
[[ $failed -eq 0 && $status -eq 0 ]]
