#!/usr/bin/env bash
# Quality figures of the xsn sources (src/ and include/), printed and written into docs/quality.md:
#   1. cyclomatic complexity per function (pmccabe on a normalised copy: scripts/quality.pl);
#   2. documented public declarations of include/xsn (a `///` comment before each);
#   3. with --coverage: line and branch coverage of the unit, contract and W3C tests (gcovr).
#
#   scripts/quality.sh                    1 and 2: print them and rewrite their docs/quality.md part
#   scripts/quality.sh --coverage         also 3 (a --coverage Debug build in build-coverage/: slow)
#   scripts/quality.sh --check            the CI gate: exit 1 when a function over 15 is not in
#                                         scripts/complexity_baseline.txt (ctest quality.complexity)
#   scripts/quality.sh --update-baseline  rewrite the baseline from today's functions over 15
#   scripts/quality.sh --self-test        the normalisation on tests/quality/constructs.cpp, each
#                                         function against constructs.expected (ctest
#                                         quality.normalise)
#
# Options:
#   --no-write   print only, leave docs/quality.md alone
#   --list       print every function's complexity (value, file:line, name) and stop
#   --rev REV    with --coverage: measure commit REV (git archive into build-coverage.src/), not
#                the working tree
#   --jobs N     build and test jobs for --coverage (default: $XSN_JOBS, else 1)
#
# Exit status: 0 done, 1 the gate failed (or a step did), 64 usage, 77 skipped (pmccabe is not
# installed and cannot be). Run as root, it installs what is missing with apt-get (pmccabe; gcovr
# for --coverage). See docs/quality.md for how each figure is counted.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
baseline=$root/scripts/complexity_baseline.txt
doc=$root/docs/quality.md
limit=15  # the gate: no new function over this
mode=report coverage=0 write=1 rev= jobs=${XSN_JOBS:-1}

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }
die() { printf 'quality.sh: %s\n' "$*" >&2; exit 1; }

while (($#)); do
  case "$1" in
    --check) mode=check ;;
    --update-baseline) mode=update ;;
    --self-test) mode=self-test ;;
    --coverage) coverage=1 ;;
    --no-write) write=0 ;;
    --list) mode=list ;;
    --rev) rev=${2:?--rev needs a commit}; shift ;;
    --jobs) jobs=${2:?--jobs needs a number}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 64 ;;
  esac
  shift
done
[[ $mode == report ]] || ((coverage == 0)) || die "--coverage goes with the report, not --$mode"

tmp=$(mktemp -d /tmp/xsn-quality.XXXXXXXX)
trap 'rm -rf "$tmp"' EXIT

# ---- tools: installed with apt-get when missing and we are root ----
need() {  # need COMMAND PACKAGE: 0 when COMMAND is there (after installing PACKAGE if we can)
  command -v "$1" >/dev/null 2>&1 && return 0
  if ((EUID == 0)) && command -v apt-get >/dev/null 2>&1; then
    echo "quality.sh: installing $2" >&2
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600)
    { "${apt[@]}" install -y -qq --no-install-recommends "$2" ||
      { "${apt[@]}" update -qq && "${apt[@]}" install -y -qq --no-install-recommends "$2"; }; } >&2
  fi
  command -v "$1" >/dev/null 2>&1
}

measured_on() {  # measured_on [REV]: the commit (and whether src/ or include/ had changes), the day
  local at
  at=$(git -C "$root" rev-parse --short "${1:-HEAD}" 2>/dev/null || echo "no git")
  if [[ -z ${1:-} && -n $(git -C "$root" status --porcelain -- src include 2>/dev/null) ]]; then
    at="$at plus uncommitted changes"
  fi
  echo "Measured on: $at, $(date -u +%Y-%m-%d)"
}

# ---- 1. complexity ----
# functions.tsv: value <TAB> path <TAB> line <TAB> name <TAB> id, one line per function, where
# value is pmccabe's traditional McCabe number (1 + if, for, while, case, &&, ||, ?:),
# path is relative to the repository, and id is the name without its namespaces (the function's
# identity for the baseline: moving a function to another file or namespace keeps it).
measure_complexity() {  # measure_complexity [FILE...] (default: src/ and include/)
  local files=("$@")
  cd "$root"
  if ((${#files[@]} == 0)); then
    mapfile -t files < <(find src include -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' \
      -o -name '*.ipp' \) | LC_ALL=C sort)
  fi
  ((${#files[@]})) || die "no sources under src/ and include/"
  perl scripts/quality.pl normalise "$tmp/norm" "${files[@]}" > "$tmp/namespaces"
  (cd "$tmp/norm" && pmccabe "${files[@]}") > "$tmp/pmccabe.txt" 2> "$tmp/pmccabe.err" || true
  if [[ -s $tmp/pmccabe.err ]]; then
    # pmccabe drops what it cannot read, so a gate that went on would miss functions.
    echo "quality.sh: pmccabe could not read all of the sources; functions may be missing:"
    sed 's/^/  /' "$tmp/pmccabe.err"
    echo "(teach scripts/quality.pl normalise the construct at that line: docs/quality.md)"
    [[ $mode == check || $mode == self-test ]] && exit 1
  fi
  # pmccabe: modified <TAB> traditional <TAB> statements <TAB> first line <TAB> lines <TAB>
  #          file(line): name
  awk -F'\t' -v nsfile="$tmp/namespaces" '
    BEGIN { while ((getline ns < nsfile) > 0) isns[ns] = 1; isns["anonymous_namespace"] = 1 }
    {
      spec = $6
      p = index(spec, "): ")
      head = substr(spec, 1, p); name = substr(spec, p + 3)
      file = head; sub(/\([0-9]+\)$/, "", file)
      line = head; sub(/^.*\(/, "", line); sub(/\)$/, "", line)
      gsub(/__/, "::", name)
      n = split(name, part, "::"); id = ""
      for (i = 1; i <= n; i++) if (!(part[i] in isns)) id = id (id == "" ? "" : "::") part[i]
      if (id == "") id = name
      print $2 "\t" file "\t" line "\t" name "\t" id
    }' "$tmp/pmccabe.txt" > "$tmp/functions.tsv"
}

# `src/core/x.cpp` -> `core/x.cpp`, `include/xsn/y.hpp` -> `xsn/y.hpp`: the baseline's file hint
hint() { sed -E 's#^(src|include)/##'; }

complexity_report() {
  awk -F'\t' '
    { n++; if ($1 < 10) under++; if ($1 >= 10) ten++; if ($1 > 15) fifteen++; if ($1 > 25) big++ }
    END {
      if (n == 0) { print "no functions found"; exit 1 }
      printf "Functions: %d, under complexity 10: %d (%.1f%%)\n", n, under, 100 * under / n
      printf "At 10 or more: %d; over 15: %d; over 25: %d\n", ten, fifteen, big
    }' "$tmp/functions.tsv"
  measured_on
  echo
  echo "By folder (functions, under 10, share, over 15):"
  awk -F'\t' '
    { split($2, p, "/"); d = p[1] "/" p[2]; if (p[1] == "include") d = "include/xsn"
      n[d]++; if ($1 < 10) u[d]++; if ($1 > 15) o[d]++ }
    END { for (d in n) printf "  %-18s %5d %5d %6.1f%% %4d\n", d, n[d], u[d], 100 * u[d] / n[d], o[d] }
  ' "$tmp/functions.tsv" | LC_ALL=C sort
  echo
  echo "Top 20 (value  file:line  function):"
  LC_ALL=C sort -t$'\t' -k1,1nr -k2,2 -k3,3n "$tmp/functions.tsv" | awk 'NR <= 20' |
    awk -F'\t' '{ printf "  %4d  %s:%s  %s\n", $1, $2, $3, $4 }'
}

# The gate: every function over $limit must be in the baseline (matched by id; the file is a hint).
complexity_check() {
  [[ -f $baseline ]] || die "$baseline missing (scripts/quality.sh --update-baseline writes it)"
  awk -F'\t' -v limit="$limit" -v out="$tmp/check" '
    FNR == NR {
      if ($0 ~ /^#/ || NF < 2) next
      base[$1]++; bfile[$1] = $2; bval[$1] = $3; order[++nb] = $1; next
    }
    { present[$5] = 1 }
    $1 > limit { over[$5]++; cur[$5, over[$5]] = $0 }
    END {
      bad = 0
      # A baseline function that is not measured at all was renamed or removed, or pmccabe lost
      # it: when most of them are missing the measurement broke (a construct the normalisation
      # does not rewrite hides whole files), and passing would be a lie.
      missing = 0
      for (j = 1; j <= nb; j++) if (!(order[j] in present)) missing++
      if (nb > 0 && missing * 2 > nb) {
        printf "%d of the %d baseline functions were not measured at all: pmccabe lost them (see quality.pl normalise)\n", missing, nb > out ".new"
        bad++
      }
      for (id in over) {
        for (i = 1; i <= over[id]; i++) {
          split(cur[id, i], f, "\t")
          if (i <= base[id]) {
            h = f[2]; sub(/^(src|include)\//, "", h)
            if (h != bfile[id])
              printf "moved (fine): %s now in %s:%s (baseline: %s)\n", f[4], f[2], f[3], bfile[id] > out ".info"
            if (f[1] > bval[id] + 0 && base[id] == 1)
              printf "grew (not failed): %s:%s %s %d (baseline %d)\n", f[2], f[3], f[4], f[1], bval[id] > out ".info"
            continue
          }
          printf "%s:%s: %s has complexity %d (over %d, not in the baseline)\n", f[2], f[3], f[4], f[1], limit > out ".new"
          bad++
        }
      }
      for (j = 1; j <= nb; j++) {
        id = order[j]
        if (seen[id]++) continue
        if (over[id] < base[id])
          printf "%s (%s): now at most %d; remove it from the baseline (--update-baseline)\n", id, bfile[id], limit > out ".gone"
      }
      exit bad > 0
    }' "$baseline" "$tmp/functions.tsv" && rc=0 || rc=$?
  local total
  total=$(awk -F'\t' -v limit="$limit" '$1 > limit' "$tmp/functions.tsv" | wc -l)
  [[ -f $tmp/check.info ]] && LC_ALL=C sort "$tmp/check.info"
  [[ -f $tmp/check.gone ]] && { echo "Baseline entries no longer over $limit:"; LC_ALL=C sort "$tmp/check.gone" | sed 's/^/  /'; }
  if ((rc != 0)); then
    echo "FAILED: functions over complexity $limit that are not in scripts/complexity_baseline.txt:"
    LC_ALL=C sort "$tmp/check.new" | sed 's/^/  /'
    echo "Split them (one function per concern), or, when the lead agrees, record them with"
    echo "scripts/quality.sh --update-baseline (the baseline's diff shows the addition)."
    return 1
  fi
  echo "complexity gate: passed ($total functions over $limit, all in the baseline)"
}

update_baseline() {
  {
    echo "# Functions over complexity $limit (pmccabe, traditional McCabe, on the normalised copy of"
    echo "# src/ and include/), written by scripts/quality.sh --update-baseline. The CI gate"
    echo "# (ctest quality.complexity) fails on a function over $limit that is not listed here."
    echo "# Columns (tab): function (without namespaces) | file relative to src/ or include/ (a hint)"
    echo "# | complexity when recorded. Shrink it: split these functions, then update."
    awk -F'\t' -v limit="$limit" '$1 > limit { h = $2; sub(/^(src|include)\//, "", h); print $5 "\t" h "\t" $1 }' \
      "$tmp/functions.tsv" | LC_ALL=C sort -t$'\t' -k1,1 -k2,2
  } > "$baseline"
  echo "wrote $baseline ($(grep -vc '^#' "$baseline") functions over $limit)"
}

# ---- 2. documented public declarations ----
docs_report() {
  cd "$root"
  local files=()
  mapfile -t files < <(find include/xsn -type f -name '*.hpp' | LC_ALL=C sort)
  perl scripts/quality.pl docs "${files[@]}" > "$tmp/docs.tsv"
  # docs.tsv: documented(0/1) <TAB> kind <TAB> file:line <TAB> declaration
  awk -F'\t' '
    { n++; d += $1; kn[$2]++; kd[$2] += $1 }
    END {
      if (n == 0) { print "no declarations found"; exit 1 }
      printf "Public declarations in include/xsn: %d, documented: %d (%.1f%%)\n", n, d, 100 * d / n
      print "By kind (declarations, documented, share):"
      fflush()
      for (k in kn) printf "  %-10s %5d %5d %6.1f%%\n", k, kn[k], kd[k], 100 * kd[k] / kn[k] | "LC_ALL=C sort"
    }' "$tmp/docs.tsv"
  measured_on
  # Where the undocumented ones are (all of them: perl scripts/quality.pl docs FILE... | grep ^0)
  if awk -F'\t' '$1 == 0 { found = 1 } END { exit !found }' "$tmp/docs.tsv"; then
    echo "Undocumented, by header:"
    awk -F'\t' '$1 == 0 { f = $3; sub(/:[0-9]+$/, "", f); n[f]++ }
      END { for (f in n) printf "  %4d  %s\n", n[f], f }' "$tmp/docs.tsv" | LC_ALL=C sort -k1,1nr -k2,2
  fi
}

# ---- 3. coverage ----
coverage_report() {
  need gcovr gcovr || die "gcovr not installed (Debian: apt-get install gcovr)"
  local src=$root bin=$root/build-coverage sha=
  if [[ -n $rev ]]; then
    src=$root/build-coverage.src
    sha=$(git -C "$root" rev-parse --verify "$rev^{commit}") || die "--rev $rev: no such commit"
    # The same commit again: keep the files (and their times, so ninja rebuilds nothing).
    if [[ ! -f $src/.quality-rev || $(cat "$src/.quality-rev") != "$sha" ]]; then
      rm -rf "$src" && mkdir -p "$src"
      git -C "$root" archive "$sha" | tar -x -C "$src"
      echo "$sha" > "$src/.quality-rev"
    fi
  fi
  # A build tree configured from the other source (working tree or --rev) is started afresh.
  if [[ -f $bin/CMakeCache.txt ]] && ! grep -qxF "CMAKE_HOME_DIRECTORY:INTERNAL=$src" "$bin/CMakeCache.txt"; then
    rm -rf "$bin"
  fi
  local launcher=()
  command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
  # Debug without -g (gcov needs no debug info), -O0 so that lines and branches are the source's;
  # atomic counters, as the bus and store tests run threads (without, gcov printed negative
  # counts for a few lines of the lock-free code and gcovr dropped them).
  local flags="--coverage -fprofile-update=atomic"
  cmake -S "$src" -B "$bin" -G Ninja "${launcher[@]}" -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_C_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS=--coverage \
    -DCMAKE_SHARED_LINKER_FLAGS=--coverage -DCMAKE_CXX_FLAGS_DEBUG=-O0 -DCMAKE_C_FLAGS_DEBUG=-O0 \
    -DXSN_BUILD_TESTS=ON -DXSN_BUILD_CLI=ON -DXSN_WITH_ECMASCRIPT=ON -DXSN_WITH_ADVANCED=ON \
    -DXSN_W3C_TESTS=ON -DXSN_BUILD_BENCHMARKS=OFF -DXSN_BUILD_EXAMPLES=OFF -DXSN_HEADER_CHECK=OFF \
    -DXSN_CHAOS_TESTS=OFF -DXSN_XSTATE_TESTS=OFF > "$tmp/configure.log" ||
    { cat "$tmp/configure.log"; die "configuring the coverage build failed"; }
  cmake --build "$bin" --parallel "$jobs" || die "the coverage build failed"
  find "$bin" -name '*.gcda' -delete
  local test_rc=0
  ctest --test-dir "$bin" -L '^(unit|contract|w3c)$' --parallel "$jobs" > "$tmp/ctest.log" 2>&1 || test_rc=$?
  local ran
  ran=$(grep -E '^[0-9]+% tests passed' "$tmp/ctest.log" || echo "ctest summary missing")
  ((test_rc == 0)) || sed -n '/^The following tests FAILED:/,/^$/p' "$tmp/ctest.log"
  # Only the library's and the tool's own code: src/ and include/xsn (not tests, not third party).
  # Branches: gcc's exception-path and unreachable branches are left out (they are the compiler's,
  # not decisions of the source).
  (cd "$src" && gcovr --root "$src" --object-directory "$bin" --filter 'src/' --filter 'include/xsn/' \
    --exclude-throw-branches --exclude-unreachable-branches --gcov-ignore-parse-errors \
    -j "$jobs" --json-summary "$tmp/coverage.json" --txt "$tmp/coverage.txt" --print-summary) \
    > "$tmp/gcovr.log" 2>&1 || { cat "$tmp/gcovr.log"; die "gcovr failed"; }
  python3 - "$tmp/coverage.json" > "$tmp/coverage.summary" <<'EOF'
import json, sys, collections
data = json.load(open(sys.argv[1]))
tot = collections.defaultdict(lambda: [0, 0, 0, 0])
for f in data["files"]:
    p = f["filename"].split("/")
    key = "include/xsn" if p[0] == "include" else "/".join(p[:2])
    for k in (key, "all"):
        t = tot[k]
        t[0] += f["line_covered"]; t[1] += f["line_total"]
        t[2] += f["branch_covered"]; t[3] += f["branch_total"]
def pct(a, b): return 100.0 * a / b if b else 100.0
a = tot.pop("all")
print(f"Lines: {pct(a[0], a[1]):.1f}% ({a[0]} of {a[1]}); branches: {pct(a[2], a[3]):.1f}% ({a[2]} of {a[3]})")
print("By folder (lines, branches):")
for k in sorted(tot):
    t = tot[k]
    print(f"  {k:<18} {pct(t[0], t[1]):5.1f}% of {t[1]:6d}   {pct(t[2], t[3]):5.1f}% of {t[3]:6d}")
EOF
  {
    cat "$tmp/coverage.summary"
    echo "Tests (labels unit, contract, w3c): $ran"
    measured_on "$sha"
  } > "$tmp/coverage.out"
  cat "$tmp/coverage.out"
}

# ---- docs/quality.md: the text between <!-- quality.sh NAME --> and <!-- /quality.sh NAME -->
write_section() {  # write_section NAME FILE
  local name=$1 body=$2
  [[ -f $doc ]] || die "$doc missing"
  grep -q "^<!-- quality.sh $name -->\$" "$doc" || die "$doc has no '<!-- quality.sh $name -->' marker"
  awk -v name="$name" -v body="$body" '
    $0 == "<!-- quality.sh " name " -->" {
      print; print "```"; while ((getline l < body) > 0) print l; print "```"; skip = 1; next
    }
    $0 == "<!-- /quality.sh " name " -->" { skip = 0 }
    !skip { print }' "$doc" > "$tmp/doc.md"
  cat "$tmp/doc.md" > "$doc"
}

if ! need pmccabe pmccabe; then
  echo "quality.sh: pmccabe is not installed (Debian: apt-get install pmccabe): skipped"
  exit 77
fi
command -v perl >/dev/null 2>&1 || die "perl not found"

if [[ $mode == self-test ]]; then
  fixture=tests/quality/constructs.cpp
  measure_complexity "$fixture"
  awk -F'\t' '{ print $1 "\t" $3 "\t" $4 }' "$tmp/functions.tsv" > "$tmp/got"
  if ! diff -u "$root/tests/quality/constructs.expected" "$tmp/got"; then
    echo "FAILED: complexity of $fixture (value, line, function) differs from constructs.expected"
    exit 1
  fi
  echo "normalisation self-test: passed ($(wc -l < "$tmp/got") functions of $fixture)"
  exit 0
fi

measure_complexity
case "$mode" in
  check) complexity_check; exit ;;
  update) update_baseline; exit ;;
  list) awk -F'\t' '{ printf "%4d  %s:%s  %s\n", $1, $2, $3, $4 }' "$tmp/functions.tsv"; exit ;;
esac

complexity_report | tee "$tmp/complexity.out"
echo
if [[ -f $baseline ]]; then
  complexity_check > "$tmp/gate.out" || true
  grep -E '^(complexity gate|FAILED)' "$tmp/gate.out" || true
else
  echo "no baseline yet (scripts/quality.sh --update-baseline writes it)"
fi
echo
docs_report | tee "$tmp/docs.out"
if ((coverage)); then
  echo
  coverage_report
fi
if ((write)); then
  write_section complexity "$tmp/complexity.out"
  write_section documentation "$tmp/docs.out"
  ((coverage)) && write_section coverage "$tmp/coverage.out"
  echo
  echo "updated ${doc#"$root"/}"
fi
