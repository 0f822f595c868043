#!/usr/bin/env bash
# Sets up a Debian 12 machine for xsn, builds it, and runs an example or the tests.
#
#   scripts/setup.sh example   install what is missing, build, run examples/traffic_light
#   scripts/setup.sh test      install what is missing, build everything, run every test
#   scripts/setup.sh build     install what is missing, build everything
#   scripts/setup.sh deps      only install what is missing
#
# Idempotent: packages that `dpkg` reports installed are not touched (`apt-get update` runs only
# when something is missing), an existing build directory is reused and ninja rebuilds only what
# changed. Needs root (or sudo) only when packages are missing.
#
# Environment:
#   XSN_PRESET  configure/build/test preset from CMakePresets.json (default: release)
#   XSN_JOBS    parallel build and test jobs (default: number of CPUs)
#   XSN_EXTRA_PACKAGES  more Debian packages to install with the others (CI: clang-14 ...)
set -euo pipefail

usage() {
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
}

cmd=${1:-}
case "$cmd" in
  deps | build | example | test) ;;
  -h | --help | help) usage; exit 0 ;;
  *) usage >&2; exit 64 ;;
esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
preset=${XSN_PRESET:-release}
jobs=${XSN_JOBS:-$(nproc 2>/dev/null || echo 2)}

say() { if [[ -t 1 ]]; then printf '\033[1m==> %s\033[0m\n' "$*"; else printf '==> %s\n' "$*"; fi; }
die() { printf 'setup.sh: %s\n' "$*" >&2; exit 1; }

# ---- packages ----
packages=(
  build-essential cmake ninja-build g++ git
  libboost1.81-dev libboost-json1.81-dev libpugixml-dev duktape-dev
  catch2 libbenchmark-dev libspdlog-dev libconcurrentqueue-dev
  libhiredis-dev libnuma-dev redis-server  # the advanced target and its tests
  nodejs npm  # npm fetches the W3C SCXML test suite
  valgrind  # callgrind counts instructions for the performance gate (scripts/perf_gate.sh)
)
# The complexity gate, ctest quality.complexity (scripts/quality.sh --check), is registered when
# configuring finds pmccabe: `build` configures the test tree too, so it installs it as well.
if [[ $cmd == test || $cmd == build ]]; then
  packages+=(pmccabe)
fi
read -r -a extra_packages <<< "${XSN_EXTRA_PACKAGES:-}"
packages+=("${extra_packages[@]}")

installed() {
  local pkg=$1
  [[ $(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null) == installed ]] && return 0
  # Node.js from NodeSource ships npm inside its `nodejs` package (which conflicts with Debian's
  # `npm`): a working command is as good as the package.
  case "$pkg" in
    npm) command -v npm >/dev/null 2>&1 ;;
    nodejs) command -v node >/dev/null 2>&1 ;;
    *) return 1 ;;
  esac
}

install_deps() {
  command -v dpkg-query >/dev/null 2>&1 || die "dpkg not found: this script sets up Debian 12; \
elsewhere install the equivalent of: ${packages[*]}"
  local missing=() pkg
  for pkg in "${packages[@]}"; do
    installed "$pkg" || missing+=("$pkg")
  done
  if ((${#missing[@]} == 0)); then
    say "Debian packages: all installed"
    return
  fi
  say "Installing: ${missing[*]}"
  local sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 || die "run as root (or install sudo) to install: ${missing[*]}"
    sudo=(sudo)
  fi
  local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600)
  "${apt[@]}" update -qq
  "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}"
}

# ---- build ----
binary_dir() {
  case "$preset" in
    release) echo build ;;
    *) echo "build-$preset" ;;
  esac
}

configure() {
  local dir
  dir=$(binary_dir)
  # A configured tree reconfigures itself when a CMakeLists.txt changes; configure only once.
  if [[ -f $dir/CMakeCache.txt && ( -f $dir/build.ninja || -f $dir/Makefile ) ]]; then
    return
  fi
  say "Configuring (preset $preset, in $dir)"
  cmake --preset "$preset"
}

build() {
  configure
  say "Building (preset $preset)"
  cmake --build --preset "$preset" --parallel "$jobs" "$@"
}

has_target() {
  cmake --build "$(binary_dir)" --target help 2>/dev/null | grep -q "^$1:"
}

run_example() {
  local dir
  dir=$(binary_dir)
  configure
  if has_target traffic_light; then
    build --target traffic_light
    local exe
    exe=$(find "$dir" -type f -name traffic_light -perm -u+x -print -quit)
    [[ -n $exe ]] || die "traffic_light was built but not found under $dir"
    say "Running $exe"
    "$exe"
  else
    # Until examples/traffic_light has its program: drive the document with the xsn tool.
    build --target xsn
    local xsn
    xsn=$(find "$dir" -type f -name xsn -perm -u+x -print -quit)
    [[ -n $xsn ]] || die "xsn was built but not found under $dir"
    local args=(run examples/traffic_light/traffic_light.scxml --log
      --advance 150 --event button --advance 300 --event shutdown)
    say "Running $xsn ${args[*]}"
    "$xsn" "${args[@]}"
  fi
}

run_tests() {
  build
  say "Testing (preset $preset)"
  local dir rc=0
  dir=$(binary_dir)
  ctest --preset "$preset" --parallel "$jobs" || rc=$?
  if [[ -f $dir/w3c-summary.txt ]]; then
    echo
    cat "$dir/w3c-summary.txt"
  fi
  return "$rc"
}

install_deps
case "$cmd" in
  deps) ;;
  build) build ;;
  example) run_example ;;
  test) run_tests ;;
esac
