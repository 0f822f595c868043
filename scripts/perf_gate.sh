#!/usr/bin/env bash
# Performance gate on instruction counts: runs every xsn_perf_gate workload under callgrind,
# computes instructions per operation, and compares them with the committed budgets.
#
#   scripts/perf_gate.sh             compare; exit 1 when a workload grew more than 5 %
#   scripts/perf_gate.sh --update    rewrite the budgets file with this run's figures
#
# Options:
#   --exe PATH       the xsn_perf_gate program (default: build/benchmarks/xsn_perf_gate)
#   --budgets FILE   the budgets (default: benchmarks/perf_budgets.json)
#
# Exit status: 0 within budget (or updated), 1 over budget or a workload failed, 77 skipped
# (valgrind not installed, or the budgets are for another toolchain), 64 usage.
# Instruction counts are the same from run to run of one binary, whatever the machine's load;
# see docs/benchmarks.md, "Performance gates", for what is measured and when an update is right.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
exe=$root/build/benchmarks/xsn_perf_gate
budgets=$root/benchmarks/perf_budgets.json
update=0
threshold=5  # percent

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }
die() { printf 'perf_gate: %s\n' "$*" >&2; exit 1; }

while (($#)); do
  case "$1" in
    --update) update=1 ;;
    --exe) exe=${2:?--exe needs a path}; shift ;;
    --budgets) budgets=${2:?--budgets needs a file}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 64 ;;
  esac
  shift
done

if ! command -v valgrind >/dev/null 2>&1; then
  echo "perf_gate: valgrind is not installed (Debian: apt-get install valgrind): gate skipped"
  exit 77
fi
[[ -x $exe ]] || die "$exe not built (cmake --build --preset release --target xsn_perf_gate)"
toolchain=$("$exe" --toolchain)

# The toolchain the budgets were measured with; another compiler or build type executes other
# instructions, so comparing would be noise.
budget_toolchain=
if [[ -f $budgets ]]; then
  budget_toolchain=$(sed -n 's/^ *"toolchain": *"\([^"]*\)".*/\1/p' "$budgets")
fi
if ((!update)) && [[ -n $budget_toolchain && $budget_toolchain != "$toolchain" ]]; then
  echo "perf_gate: the budgets are for '$budget_toolchain', this build is '$toolchain': gate skipped"
  exit 77
fi

# The same start-up stack every time: the environment's and the program path's sizes move every
# stack address, and with them the alignment of copies (memcpy's path) and of allocations; in
# trials that moved counts by up to 1.5 %. So the program runs as a copy at a path of fixed
# length, from that folder, with a fixed environment.
tmp=$(mktemp -d /tmp/xsn-perf-gate.XXXXXXXX)
trap 'rm -rf "$tmp"' EXIT
cp "$exe" "$tmp/xsn_perf_gate"
valgrind_bin=$(command -v valgrind)
start=$SECONDS
# --instr-atstart=no: only the measured loops run instrumented (the program starts and stops
# it), so setup runs at valgrind's uninstrumented speed.
if ! (cd "$tmp" && env -i PATH=/usr/bin:/bin LC_ALL=C "$valgrind_bin" --tool=callgrind --instr-atstart=no \
  --dump-line=no --callgrind-out-file=cg.out ./xsn_perf_gate >log 2>&1); then
  cat "$tmp/log" >&2
  die "xsn_perf_gate failed under valgrind (its output is above)"
fi

# Each dump is `<workload>@<count>` with its total Ir; per operation is the difference of the
# 2n and n dumps over n, so setup and the measuring itself cancel out.
measured=$(awk '
  /^desc: Trigger: Client Request: / {
    label = substr($0, length("desc: Trigger: Client Request: ") + 1)
    next
  }
  /^totals: / && label != "" {
    at = index(label, "@")
    name = substr(label, 1, at - 1)
    count = substr(label, at + 1) + 0
    if (!(name in lo) || count < lo_n[name]) { hi[name] = lo[name]; hi_n[name] = lo_n[name]; lo[name] = $2; lo_n[name] = count }
    else { hi[name] = $2; hi_n[name] = count }
    label = ""
  }
  END {
    for (name in lo) {
      if (hi_n[name] <= lo_n[name]) { print name, "incomplete"; continue }
      printf "%s %.1f\n", name, (hi[name] - lo[name]) / (hi_n[name] - lo_n[name])
    }
  }' "$tmp"/cg.out.* | sort)
[[ -n $measured ]] || die "no measurements in callgrind's output"
if grep -q ' incomplete$' <<<"$measured"; then
  die "workloads without both measured runs: $(grep ' incomplete$' <<<"$measured" | cut -d' ' -f1 | tr '\n' ' ')"
fi
elapsed=$((SECONDS - start))

# Prints one row per workload, budgeted or measured (verdict ok / OVER BUDGET / better / NEW /
# GONE); returns 1 when the gate fails.
compare() {
  local file_threshold budget_lines
  file_threshold=$(sed -n 's/^ *"threshold_percent": *\([0-9.]*\).*/\1/p' "$budgets")
  threshold=${file_threshold:-$threshold}
  budget_lines=$(sed -n 's/^ *"\([^"]*\/[^"]*\)": *\([0-9.]*\),\{0,1\}$/\1 \2/p' "$budgets" | sort)

  awk -v threshold="$threshold" -v elapsed="$elapsed" -v toolchain="$toolchain" -v updating="$update" '
    NF == 0 { next }
    FILENAME == ARGV[1] { budget[$1] = $2; names[$1] = 1; next }
    { got[$1] = $2; names[$1] = 1 }
    END {
      n = asorted(names, order)
      printf "perf gate: instructions per operation (callgrind Ir), %s, limit +%s%%, %d s under valgrind\n",
             toolchain, threshold, elapsed
      printf "  %-28s %14s %14s %9s  %s\n", "workload", "budget", "measured", "change", "verdict"
      fail = 0; better = 0
      for (i = 1; i <= n; ++i) {
        w = order[i]
        if (!(w in budget)) { printf "  %-28s %14s %14s %9s  %s\n", w, "-", got[w], "", "NEW (no budget)"; fail = 1; continue }
        if (!(w in got)) { printf "  %-28s %14s %14s %9s  %s\n", w, budget[w], "-", "", "GONE (budget of no workload)"; fail = 1; continue }
        change = (got[w] - budget[w]) * 100 / budget[w]
        verdict = "ok"
        if (change > threshold) { verdict = "OVER BUDGET"; fail = 1 }
        else if (change < -threshold) { verdict = "better: tighten the budget"; better = 1 }
        printf "  %-28s %14s %14s %+8.1f%%  %s\n", w, budget[w], got[w], change, verdict
      }
      if (updating) {
        print "perf gate: the table compares the budgets being replaced with this run"
      } else if (fail) {
        print "perf gate: FAILED. If the extra cost is intended (a feature that must cost more), rewrite the"
        print "budgets with scripts/perf_gate.sh --update and say why in the commit (docs/benchmarks.md)."
      } else if (better) {
        print "perf gate: passed; some workloads got cheaper: scripts/perf_gate.sh --update locks that in."
      } else {
        print "perf gate: passed"
      }
      exit fail
    }
    # Sorted keys without gawk: insertion sort (a dozen names).
    function asorted(set, out,    k, j, m, t) {
      m = 0
      for (k in set) {
        out[++m] = k
        for (j = m; j > 1 && out[j - 1] > out[j]; --j) { t = out[j]; out[j] = out[j - 1]; out[j - 1] = t }
      }
      return m
    }' <(printf '%s\n' "$budget_lines") <(printf '%s\n' "$measured")
}

if ((update)); then
  # The old budgets against this run first (when they are for this toolchain), so what the
  # update changes is on screen as well as in the diff.
  compared=0
  if [[ -f $budgets && $budget_toolchain == "$toolchain" ]]; then
    compare || true
    compared=1
  fi
  {
    echo '{'
    echo '  "about": "Instructions (callgrind Ir) per operation of each xsn_perf_gate workload; CI fails when one grows more than threshold_percent. Rewrite with scripts/perf_gate.sh --update after a change that is meant to cost more (or that made things cheaper), and say why in the commit: docs/benchmarks.md, Performance gates.",'
    printf '  "toolchain": "%s",\n' "$toolchain"
    printf '  "threshold_percent": %s,\n' "$threshold"
    echo '  "budgets": {'
    awk '{ lines[NR] = sprintf("    \"%s\": %s", $1, $2) }
         END { for (i = 1; i <= NR; ++i) print lines[i] (i < NR ? "," : "") }' <<<"$measured"
    echo '  }'
    echo '}'
  } >"$budgets"
  echo "perf_gate: wrote $budgets ($(wc -l <<<"$measured") workloads, $toolchain, ${elapsed} s under valgrind)"
  ((compared)) || awk '{ printf "  %-28s %14s Ir/op\n", $1, $2 }' <<<"$measured"
  exit 0
fi

[[ -f $budgets ]] || die "$budgets missing: create it with scripts/perf_gate.sh --update"
compare
