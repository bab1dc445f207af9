#!/usr/bin/env bash
# Runs the quickstart pipeline's stages in order without the engine, setting
# the task contract's environment itself, and checks the results: until
# `tierflow run` lands this is how to try the example, and it tests that the
# task scripts keep the contract (CTest: quickstart_by_hand).
#
# Usage: run_by_hand.sh [--keep] [WORKDIR]
#   WORKDIR  where artifacts and checkpoints go (default: a new temp dir,
#            removed at the end unless --keep)
#
# Each task runs under `env -i` (it sees only its own TIERFLOW_* variables)
# with a scratch working directory, as an engine would run it. The train
# stage is run the way a retried task is: the first attempt "crashes" after
# epoch 2, the retry must resume from checkpoint 2, and the model must equal
# that of an uninterrupted run.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
keep=0
if [ "${1:-}" = "--keep" ]; then keep=1; shift; fi
if [ $# -gt 0 ]; then
  work="$1"
  mkdir -p "$work"
  work="$(cd "$work" && pwd)"
else
  work="$(mktemp -d "${TMPDIR:-/tmp}/tierflow-quickstart.XXXXXX")"
  if [ "$keep" -eq 0 ]; then trap 'rm -rf "$work"' EXIT; fi
fi
# Start clean so that the run is the same every time.
rm -rf "$work/artifacts" "$work/checkpoints" "$work/tasks"

# The params, as the defaults of pipeline.yaml.
params=(
  TIERFLOW_PARAM_SHARDS=4
  TIERFLOW_PARAM_ROWS_PER_SHARD=250
  TIERFLOW_PARAM_SEED=7
  TIERFLOW_PARAM_PACK_SHARDS=2
  TIERFLOW_PARAM_EPOCHS=5
  TIERFLOW_PARAM_LR=0.05
  TIERFLOW_PARAM_BATCH_SIZE=32
)
a="$work/artifacts"  # artifacts/<stage>/<output>; a foreach item's in .../<output>/<item>

# run_task TASK_ID SCRIPT [NAME=VALUE...]: one task attempt, as an engine runs it.
run_task() {
  local id="$1" script="$2"
  shift 2
  local cwd="$work/tasks/$id"
  mkdir -p "$cwd"
  echo "== $id"
  (cd "$cwd" && env -i PATH="$PATH" HOME="${HOME:-/tmp}" LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 \
    TIERFLOW_TASK_ID="$id" "${params[@]}" "$@" python3 "$here/$script")
}

fail() { echo "run_by_hand: FAIL: $*" >&2; exit 1; }

for shard in 0 1 2 3; do
  run_task "ingest[$shard]" ingest.py TIERFLOW_ITEM="$shard" TIERFLOW_ITEM_INDEX="$shard" \
    TIERFLOW_OUTPUT_RAW="$a/ingest/raw/$shard"
done
run_task clean clean.py TIERFLOW_INPUT_RAW="$a/ingest/raw" TIERFLOW_OUTPUT_CLEAN="$a/clean/clean"
run_task featurize featurize.py TIERFLOW_INPUT_CLEAN="$a/clean/clean" \
  TIERFLOW_OUTPUT_FEATURES="$a/featurize/features" TIERFLOW_OUTPUT_STATS="$a/featurize/stats"
run_task pack pack.py TIERFLOW_INPUT_FEATURES="$a/featurize/features" \
  TIERFLOW_OUTPUT_SHARDS="$a/pack/shards"

train_env=(TIERFLOW_INPUT_SHARDS="$a/pack/shards" TIERFLOW_OUTPUT_MODEL="$a/train/model"
           TIERFLOW_CHECKPOINT_DIR="$work/checkpoints/train")
status=0
run_task "train (attempt 1)" train.py "${train_env[@]}" QUICKSTART_CRASH_AFTER_EPOCH=2 || status=$?
[ "$status" -eq 3 ] || fail "attempt 1 of train should exit 3 after epoch 2, exited $status"
[ -f "$work/checkpoints/train/epoch-0002/state.json" ] || fail "no checkpoint after epoch 2"
[ ! -e "$a/train/model" ] || fail "a crashed attempt left a model"
log="$work/tasks/train.log"
run_task "train (attempt 2)" train.py "${train_env[@]}" | tee "$log"
grep -q "resuming from epoch 2" "$log" || fail "attempt 2 did not resume from checkpoint 2"
grep -q "epoch 1/5" "$log" && fail "attempt 2 repeated epoch 1"

run_task "train (uninterrupted)" train.py TIERFLOW_INPUT_SHARDS="$a/pack/shards" \
  TIERFLOW_OUTPUT_MODEL="$work/artifacts/train-uninterrupted/model" \
  TIERFLOW_CHECKPOINT_DIR="$work/checkpoints/train-uninterrupted" >/dev/null
cmp -s "$a/train/model" "$work/artifacts/train-uninterrupted/model" ||
  fail "the resumed model differs from the uninterrupted one"

run_task publish publish.py TIERFLOW_INPUT_MODEL="$a/train/model" \
  TIERFLOW_INPUT_STATS="$a/featurize/stats" TIERFLOW_INPUT_FEATURES="$a/featurize/features" \
  TIERFLOW_OUTPUT_RELEASE="$a/publish/release"

echo "== checks"
(cd "$a/publish/release" && sha256sum --quiet -c MANIFEST.sha256) || fail "release manifest"
checkpoints=$(find "$work/checkpoints/train" -mindepth 1 -maxdepth 1 -name 'epoch-*' -type d | wc -l)
[ "$checkpoints" -eq 5 ] || fail "expected 5 checkpoints, found $checkpoints"
python3 - "$a/publish/release/metrics.json" <<'PY' || fail "model quality"
import json, sys
m = json.load(open(sys.argv[1]))
print("metrics: rows %(rows)d, mse %(mse).5f, r2 %(r2).4f" % m)
assert m["rows"] == 1000, "expected 1000 clean rows (4 shards x 250, duplicates dropped)"
assert m["r2"] > 0.99, "r2 %.4f too low: the model did not learn y = 3 x1 - 2 x2 + 0.5" % m["r2"]
PY
echo "run_by_hand: OK (artifacts in $work/artifacts)"
