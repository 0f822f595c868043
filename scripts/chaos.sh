#!/usr/bin/env bash
# The long chaos campaign of `xsn serve` (tests/chaos): R runs of xsn_chaos with seeds N, N+1, ...
# Each run: 3 nodes, 1,000 machines, at least 20,000 events, a node SIGKILLed every 2-5 s for M
# minutes (the clients keep sending until then); every effect is checked at the end.
#
#   scripts/chaos.sh --seed N --minutes M [--runs R] [-- MORE xsn_chaos OPTIONS]
#
# Builds xsn and xsn_chaos if needed (ninja rebuilds only what changed). Exit 1 if any run failed.
#
# Environment:
#   XSN_BUILD_DIR  build directory configured with tests on (default: build)
#   XSN_JOBS       parallel build jobs (default: number of CPUs)
set -euo pipefail

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }

seed= minutes= runs=1 extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seed) seed=${2:?--seed needs a value}; shift 2 ;;
    --minutes) minutes=${2:?--minutes needs a value}; shift 2 ;;
    --runs) runs=${2:?--runs needs a value}; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 64 ;;
  esac
done
[[ -n $seed && -n $minutes ]] || { usage >&2; exit 64; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${XSN_BUILD_DIR:-$root/build}
jobs=${XSN_JOBS:-$(nproc 2>/dev/null || echo 2)}
[[ -f $build/CMakeCache.txt ]] || cmake --preset release -S "$root"
cmake --build "$build" --target xsn xsn_chaos -j "$jobs"

summaries=$(mktemp -d)
trap 'rm -rf "$summaries"' EXIT
failed=0
for ((r = 0; r < runs; ++r)); do
  s=$((seed + r))
  echo "==> run $((r + 1))/$runs, seed $s, $minutes min"
  if "$build/tests/chaos/xsn_chaos" --xsn "$build/src/cli/xsn" --seed "$s" --minutes "$minutes" \
      --nodes 3 --machines 1000 --events 20000 --clients 2 --lease-ms 2000 --partitions 64 \
      --json-summary "$summaries/$s.json" "${extra[@]}"; then
    :
  else
    failed=$((failed + 1))
  fi
done
echo "chaos.sh: $((runs - failed))/$runs runs passed (seeds $seed..$((seed + runs - 1)), $minutes min each)"
[[ $failed -eq 0 ]]
