#!/usr/bin/env bash
# The test command (README "Quick start"; CI runs it through .ci/run).
# Installs missing Debian packages, builds everything with AddressSanitizer
# and UndefinedBehaviorSanitizer into build-asan/, runs every CTest test,
# then a bounded libFuzzer run of the YAML loader (scripts/fuzz.sh 60).
# Exits non-zero on the first failure. Safe to re-run: builds are incremental.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build="$root/build-asan"
jobs=2  # the machines have 2 cores, shared

step() { printf '\n== %s\n' "$*"; }

step "bootstrap"
bash scripts/bootstrap.sh

# ccache (installed by bootstrap, used by CMakeLists.txt): keep a CCACHE_DIR
# the caller set, else ccache's default (~/.cache/ccache), which outlives
# the fresh clones CI builds in. BASEDIR and NOHASHDIR make objects built in
# one clone hit in another (debug info may then name the other clone's path).
export CCACHE_BASEDIR="$root"
export CCACHE_NOHASHDIR=true

# Sanitizer reports fail the run (CMakeLists.txt makes UBSan fatal), with stacks.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"

step "configure $build (Debug, ASan+UBSan)"
# A build dir made by another generator cannot be reconfigured for Ninja.
if [ -f "$build/CMakeCache.txt" ] &&
   ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$build/CMakeCache.txt"; then
  echo "$build was not configured with Ninja: removing it"
  rm -rf "$build"
fi
cmake -S "$root" -B "$build" -G Ninja -DTIERFLOW_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug

step "build (-j$jobs)"
cmake --build "$build" -j "$jobs"

step "ctest"
ctest --test-dir "$build" --output-on-failure -j "$jobs" --timeout 300

if [ -x scripts/fuzz.sh ]; then
  step "fuzz (scripts/fuzz.sh 60)"
  scripts/fuzz.sh 60
else
  step "fuzz: skipped, scripts/fuzz.sh is not there yet"
fi

step "all tests passed"
