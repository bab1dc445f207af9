#!/usr/bin/env bash
# Runs bench/overhead.py: per-task scheduling overhead of `tierflow run`
# against make -j, Snakemake and xargs -P on DAGs of no-op tasks (see
# bench/README.md). Installs Debian's snakemake when it is missing, builds
# tierflow in Release into build/ (the same configuration as bench/run.sh),
# and passes every argument on to overhead.py (e.g. --repeat 3 --shapes
# wide1000,chain200 --markdown).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build"

if ! command -v snakemake >/dev/null 2>&1; then
  # root needs no sudo (and the project's machines have none).
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y snakemake
fi

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j 2 --target tierflow
exec python3 "$root/bench/overhead.py" --tierflow "$build/cli/tierflow" "$@"
