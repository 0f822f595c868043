#!/usr/bin/env bash
# A libFuzzer campaign on one fuzz target (fuzz/): TARGET for MINUTES, from the seed corpus.
#
#   scripts/fuzz.sh TARGET MINUTES [-- MORE LIBFUZZER OPTIONS]
#
# TARGET: scxml, xstate, snapshot, test_script, trace, redis_reply. Configures and builds the fuzz
# build (clang-14, -DXSN_FUZZ=ON, ASan + UBSan; redis_reply needs hiredis) when it is not there.
# New inputs go to <build>/fuzz/work/TARGET (the seeds stay in <build>/fuzz/corpus/TARGET), a crash,
# leak or timeout to <build>/fuzz/artifacts/TARGET/. Exit 1 when the campaign found something:
# replay it with `<build>/fuzz/fuzz_TARGET FILE` and make it a test input.
#
# Environment:
#   XSN_FUZZ_BUILD_DIR  the fuzz build directory (default: build-fuzz)
#   XSN_JOBS            parallel build jobs (default: number of CPUs)
#   XSN_FUZZ_WORKERS    libFuzzer fork mode with N processes (-fork=N; default 0: one process)
set -euo pipefail

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }
[[ $# -ge 2 ]] || { usage >&2; exit 64; }
target=$1 minutes=$2
shift 2
[[ ${1:-} == -- ]] && shift
[[ $minutes =~ ^[0-9]+$ ]] || { echo "fuzz.sh: MINUTES must be a whole number" >&2; exit 64; }

root=$(cd "$(dirname "$0")/.." && pwd)
build=${XSN_FUZZ_BUILD_DIR:-$root/build-fuzz}
jobs=${XSN_JOBS:-$(nproc)}
if [[ ! -f $build/CMakeCache.txt ]]; then
  advanced=OFF
  [[ $target == redis_reply ]] && advanced=ON
  CC=clang-14 CXX=clang++-14 cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DXSN_FUZZ=ON -DXSN_WITH_ADVANCED=$advanced -DXSN_BUILD_TESTS=OFF -DXSN_BUILD_BENCHMARKS=OFF \
    -DXSN_BUILD_EXAMPLES=OFF -DXSN_BUILD_CLI=OFF
elif [[ $target == redis_reply ]] && ! grep -q '^XSN_WITH_ADVANCED:BOOL=ON' "$build/CMakeCache.txt"; then
  cmake "$build" -DXSN_WITH_ADVANCED=ON
fi
cmake --build "$build" -j "$jobs" --target "fuzz_$target"

work=$build/fuzz/work/$target
artifacts=$build/fuzz/artifacts/$target/
mkdir -p "$work" "$artifacts"
before=$(find "$artifacts" -type f | wc -l)
# -timeout: one input running 10 s is a hang; -rss_limit_mb: 2 GB is a leak or a blow-up.
set +e
"$build/fuzz/fuzz_$target" -max_total_time=$((minutes * 60)) -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$artifacts" -fork="${XSN_FUZZ_WORKERS:-0}" "$@" \
  "$work" "$build/fuzz/corpus/$target"
status=$?
set -e
after=$(find "$artifacts" -type f | wc -l)
if [[ $after -gt $before || $status -ne 0 ]]; then
  echo "fuzz.sh: $target found $((after - before)) new input(s) in $artifacts (libFuzzer exit $status)" >&2
  exit 1
fi
echo "fuzz.sh: $target ran $minutes min without a finding; corpus in $work"
