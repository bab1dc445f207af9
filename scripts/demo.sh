#!/usr/bin/env bash
# The demo (README "Quick start"): installs missing Debian packages, builds
# the `tierflow` command in Release into build/, and runs it on the
# quickstart pipeline. Today that is `validate` and `plan`; the embedded
# engine (`tierflow run`) comes in the next issue and is one more line below.
# Safe to re-run: the build is incremental.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build="$root/build"
pipeline="examples/quickstart/pipeline.yaml"

bash scripts/bootstrap.sh
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" --target tierflow -j 2
tierflow="$build/cli/tierflow"

# Each line is one `tierflow COMMAND pipeline.yaml` step, run in order.
steps=(
  validate
  plan
)
for step in "${steps[@]}"; do
  printf '\n$ tierflow %s %s\n' "$step" "$pipeline"
  "$tierflow" "$step" "$pipeline"
done
