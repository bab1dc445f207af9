#!/usr/bin/env bash
# The demo (README "Quick start"): installs missing Debian packages, builds
# the `tierflow` command in Release into build/, and runs the digits
# pipeline (examples/digits: a classifier trained on scikit-learn's digits)
# end to end on the embedded engine with the example's storage tiers (ram,
# local, bulk, archive): validate, plan, run (state, logs and the tiers'
# data in .tierflow/ at the repository root), then show the run and the
# lineage of its published model, and ends by serving the web UI
# (`tierflow ui` on http://127.0.0.1:8080/, in the foreground until Ctrl-C;
# TIERFLOW_DEMO_NO_UI=1 skips it). Run it again and the tasks whose inputs
# did not change are reused from the cache.
# Safe to re-run: the build is incremental.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build="$root/build"
pipeline="examples/digits/pipeline.yaml"
tiers="examples/digits/tiers.yaml"

bash scripts/bootstrap.sh
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" --target tierflow -j 2
tierflow="$build/cli/tierflow"

export TIERFLOW_DB="$root/.tierflow/tierflow.db"
say() { printf '\n$ %s\n' "$*"; }

say tierflow validate "$pipeline"
"$tierflow" validate "$pipeline"
say tierflow plan "$pipeline" --tiers "$tiers"
"$tierflow" plan "$pipeline" --tiers "$tiers"
say tierflow run "$pipeline" --tiers "$tiers"
"$tierflow" run "$pipeline" --tiers "$tiers"
say tierflow show last
"$tierflow" show last
say tierflow logs last publish
"$tierflow" logs last publish   # the model's test accuracy
say tierflow lineage last/publish/release --upstream
"$tierflow" lineage last/publish/release --upstream

if [ "${TIERFLOW_DEMO_NO_UI:-0}" = "1" ]; then
  exit 0
fi
say tierflow ui --listen 127.0.0.1:8080
echo "Open http://127.0.0.1:8080/ in a browser to see the runs, their graphs, logs,"
echo "lineage and tiers (Ctrl-C stops it; TIERFLOW_DEMO_NO_UI=1 skips this step)."
exec "$tierflow" ui --listen 127.0.0.1:8080
