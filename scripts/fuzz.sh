#!/usr/bin/env bash
# libFuzzer campaigns on the fuzz targets (fuzz/): TARGET for DURATION, from the seed corpus.
#
#   scripts/fuzz.sh TARGET DURATION [-- MORE LIBFUZZER OPTIONS]
#
# TARGET: scxml, xstate, snapshot, test_script, trace, redis_reply, or `all` (every target the
# build has, XSN_JOBS at a time, each for DURATION; CI runs `all 30s` in its asan build).
# DURATION: whole minutes (`10`) or seconds (`30s`). Configures and builds the fuzz build
# (clang-14, -DXSN_FUZZ=ON, ASan + UBSan; redis_reply needs hiredis) when it is not there.
# New inputs go to <build>/fuzz/work/TARGET (the seeds stay in <build>/fuzz/corpus/TARGET), a crash,
# leak or timeout to <build>/fuzz/artifacts/TARGET/. Exit 1 when a campaign found something:
# replay it with `<build>/fuzz/fuzz_TARGET FILE` and make it a test input. With `all`, each
# target's libFuzzer output goes to <build>/fuzz/logs/TARGET.log; a finding's log tail and the
# input (base64) are printed, so a CI log is enough to replay it.
#
# Environment:
#   XSN_FUZZ_BUILD_DIR  the fuzz build directory (default: build-fuzz); an existing build must
#                       have been configured with -DXSN_FUZZ=ON (the asan preset can be)
#   XSN_JOBS            parallel build jobs, and targets run at once by `all` (default: CPUs)
#   XSN_FUZZ_WORKERS    libFuzzer fork mode with N processes (-fork=N; default 0: one process)
#   XSN_FUZZ_PROCESSES  for one TARGET: N independent campaigns at once on its corpus (default 1;
#                       each logs to <build>/fuzz/logs/TARGET.K.log). A target that waits on
#                       sockets and timers (redis_reply) leaves a core partly idle: 4 processes on
#                       2 cores ran 40 % more inputs than 2 (fuzz/README.md, session 14)
#
# Every campaign appends a line to <build>/fuzz/ledger.tsv (UTC time, commit, target, seconds,
# processes, executions, result), so that executions can be added up across campaigns.
set -euo pipefail

usage() { sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; }
[[ $# -ge 2 ]] || { usage >&2; exit 64; }
target=$1 duration=$2
shift 2
[[ ${1:-} == -- ]] && shift
if [[ $duration =~ ^([0-9]+)s$ ]]; then
  seconds=${BASH_REMATCH[1]}
elif [[ $duration =~ ^[0-9]+$ ]]; then
  seconds=$((duration * 60))
else
  echo "fuzz.sh: DURATION must be whole minutes (10) or seconds (30s), not '$duration'" >&2
  exit 64
fi
targets=(scxml xstate snapshot test_script trace redis_reply)
[[ $target == all || " ${targets[*]} " == *" $target "* ]] ||
  { echo "fuzz.sh: unknown target '$target' (${targets[*]} or all)" >&2; exit 64; }

root=$(cd "$(dirname "$0")/.." && pwd)
build=${XSN_FUZZ_BUILD_DIR:-$root/build-fuzz}
jobs=${XSN_JOBS:-$(nproc)}
processes=${XSN_FUZZ_PROCESSES:-1}
[[ $processes =~ ^[1-9][0-9]*$ ]] ||
  { echo "fuzz.sh: XSN_FUZZ_PROCESSES must be a whole number of processes, not '$processes'" >&2; exit 64; }

configure() {
  local advanced=OFF
  [[ $target == redis_reply || $target == all ]] && advanced=ON
  if [[ ! -f $build/CMakeCache.txt ]]; then
    CC=clang-14 CXX=clang++-14 cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DXSN_FUZZ=ON -DXSN_WITH_ADVANCED=$advanced -DXSN_BUILD_TESTS=OFF -DXSN_BUILD_BENCHMARKS=OFF \
      -DXSN_BUILD_EXAMPLES=OFF -DXSN_BUILD_CLI=OFF
  elif ! grep -q '^XSN_FUZZ:BOOL=ON' "$build/CMakeCache.txt"; then
    echo "fuzz.sh: $build is not a fuzz build (configure it with -DXSN_FUZZ=ON)" >&2
    exit 64
  elif [[ $advanced == ON ]] && ! grep -q '^XSN_WITH_ADVANCED:BOOL=ON' "$build/CMakeCache.txt"; then
    cmake "$build" -DXSN_WITH_ADVANCED=ON
  fi
}

# libFuzzer's -timeout counts wall time: a campaign at a low priority (nice) beside other work can
# be starved for seconds and report a timeout that is not one (session 12: two false timeouts at
# nice 19 beside a test run; each input ran in 0.07 s when replayed).
niceness=$(nice)
if ((niceness > 0)); then
  echo "fuzz.sh: running at nice $niceness: with other work on the machine, a starved input can be reported as a timeout" >&2
fi

# campaign NAME [LIBFUZZER OPTIONS...]: runs fuzz_NAME for $seconds; exit 1 on a finding.
campaign() {
  local name=$1 work=$build/fuzz/work/$1 artifacts=$build/fuzz/artifacts/$1/ before after status
  shift
  mkdir -p "$work" "$artifacts"
  before=$(find "$artifacts" -type f | wc -l)
  # -timeout: one input running 10 s is a hang; -rss_limit_mb: 2 GB is a leak or a blow-up.
  set +e
  "$build/fuzz/fuzz_$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts" -fork="${XSN_FUZZ_WORKERS:-0}" "$@" \
    "$work" "$build/fuzz/corpus/$name"
  status=$?
  set -e
  after=$(find "$artifacts" -type f | wc -l)
  if [[ $after -gt $before || $status -ne 0 ]]; then
    echo "fuzz.sh: $name found $((after - before)) new input(s) in $artifacts (libFuzzer exit $status)" >&2
    return 1
  fi
  echo "fuzz.sh: $name ran ${seconds} s without a finding; corpus in $work"
}

# executions LOG...: the executions libFuzzer reported in its final stats, added up.
executions() {
  sed -n 's/^stat::number_of_executed_units: *//p' "$@" | awk '{ n += $1 } END { print n + 0 }'
}

# ledger NAME PROCESSES EXECUTIONS STATUS: one line in <build>/fuzz/ledger.tsv.
ledger() {
  local commit
  commit=$(git -C "$root" describe --always --dirty 2> /dev/null || echo unknown)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$commit" "$1" "$seconds" "$2" "$3" \
    "$( (($4 == 0)) && echo ok || echo finding)" >> "$build/fuzz/ledger.tsv"
}

# report NAME STATUS: one line per target of `all`; on a finding, the log's tail and the inputs.
report() {
  local name=$1 status=$2 log=$build/fuzz/logs/$1.log runs f
  runs=$(executions "$log")
  ledger "$name" 1 "$runs" "$status"
  if ((status == 0)); then
    echo "fuzz_$name: $runs executions in ${seconds} s, no finding"
    return
  fi
  echo "fuzz_$name: FOUND SOMETHING after $runs executions; the end of its log:"
  tail -n 60 "$log"
  for f in $(find "$build/fuzz/artifacts/$name" -type f -newer "$build/fuzz/logs/$name.started"); do
    echo "---- $f (base64; replay: base64 -d > input && $build/fuzz/fuzz_$name input)"
    head -c 65536 "$f" | base64
  done
}

# build_targets TARGETS...: one build at a time in $build (campaigns of several targets may start together).
build_targets() {
  if command -v flock > /dev/null; then
    flock "$build/.fuzz-build.lock" cmake --build "$build" -j "$jobs" --target "$@"
  else
    cmake --build "$build" -j "$jobs" --target "$@"
  fi
}

# one TARGET [LIBFUZZER OPTIONS...]: $processes campaigns of one target at once, added up.
one() {
  local name=$1 logs=$build/fuzz/logs status=0 p pids=() failed=0
  shift
  mkdir -p "$logs"
  rm -f "$logs/$name".*.log  # an earlier campaign's, which `executions` would add up
  if ((processes == 1)); then
    campaign "$name" "$@" 2>&1 | tee "$logs/$name.1.log" || status=$?
    ledger "$name" 1 "$(executions "$logs/$name.1.log")" "$status"
    return "$status"
  fi
  for ((p = 1; p <= processes; p++)); do
    campaign "$name" "$@" > "$logs/$name.$p.log" 2>&1 &
    pids+=("$!")
  done
  for p in "${!pids[@]}"; do
    status=0
    wait "${pids[$p]}" || status=$?
    if ((status != 0)); then
      failed=1
      echo "fuzz_$name, process $((p + 1)): FOUND SOMETHING; the end of its log ($logs/$name.$((p + 1)).log):"
      tail -n 60 "$logs/$name.$((p + 1)).log"
    fi
  done
  local total
  total=$(executions "$logs/$name".*.log)
  ledger "$name" "$processes" "$total" "$failed"
  echo "fuzz_$name: $total executions in ${seconds} s by $processes processes, $( ((failed == 0)) && echo "no finding" || echo "a finding (above)")"
  return "$failed"
}

configure
if [[ $target != all ]]; then
  build_targets "fuzz_$target"
  one "$target" "$@"
  exit
fi

present=("${targets[@]}")  # fuzz_redis_reply is there when the build has the advanced library
grep -q '^XSN_WITH_ADVANCED:BOOL=ON' "$build/CMakeCache.txt" || present=("${targets[@]:0:5}")
build_targets "${present[@]/#/fuzz_}"
mkdir -p "$build/fuzz/logs"
pids=() names=() failed=0
for t in "${present[@]}"; do
  while ((${#pids[@]} >= jobs)); do  # wait for the oldest running target
    status=0
    wait "${pids[0]}" || status=$?
    report "${names[0]}" "$status"
    ((status == 0)) || failed=1
    pids=("${pids[@]:1}") names=("${names[@]:1}")
  done
  touch "$build/fuzz/logs/$t.started"
  campaign "$t" "$@" > "$build/fuzz/logs/$t.log" 2>&1 &
  pids+=("$!") names+=("$t")
done
for i in "${!pids[@]}"; do
  status=0
  wait "${pids[$i]}" || status=$?
  report "${names[$i]}" "$status"
  ((status == 0)) || failed=1
done
exit "$failed"
