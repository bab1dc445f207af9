#!/usr/bin/env bash
# Builds tierflow and the benchmarks in Release into build/ (the same
# configuration as scripts/demo.sh) and runs bench/dag_scale. Arguments go
# to dag_scale (e.g. --sizes 1000,10000 --shapes wide); see bench/README.md.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build"

bash "$root/scripts/bootstrap.sh"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j 2 --target tierflow dag_scale yaml_parse_only yaml_events_only
exec "$build/bench/dag_scale" --tierflow "$build/cli/tierflow" "$@"
