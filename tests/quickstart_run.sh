#!/usr/bin/env bash
# The quickstart pipeline through the real `tierflow run` (CTest:
# quickstart_run). First run: train's first attempt crashes after epoch 2
# (QUICKSTART_CRASH_AFTER_EPOCH reaches the task through the engine's
# environment), the retry must resume from checkpoint 2 in the same
# TIERFLOW_CHECKPOINT_DIR and the run must succeed with a valid release.
# Second run: everything after ingest (cache: false) is reused from the
# cache but pack, whose output in RAM was freed after run 1 read it; lineage
# records where from.
#
# Usage: quickstart_run.sh TIERFLOW_BIN
set -euo pipefail
tierflow="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/tierflow-quickstart-run.XXXXXX")"
trap 'rm -rf "$work"' EXIT
db="$work/state/tierflow.db"
fail() { echo "quickstart_run: FAIL: $*" >&2; exit 1; }
sql() { python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); [print("|".join(map(str,r))) for r in c.execute(sys.argv[2])]' "$db" "$1"; }

echo "== run 1 (train crashes once after epoch 2)"
QUICKSTART_CRASH_AFTER_EPOCH=2 "$tierflow" run "$here/examples/quickstart/pipeline.yaml" \
  --db "$db" --progress plain --slots 2 | tee "$work/run1.txt" || fail "run 1 exited $?"
run1=$(sql "SELECT id FROM runs ORDER BY created_at DESC LIMIT 1")
[ "$(sql "SELECT state FROM runs WHERE id='$run1'")" = succeeded ] || fail "run 1 not succeeded"
[ "$(sql "SELECT group_concat(state, ',') FROM (SELECT state FROM attempts WHERE run_id='$run1' AND task_id='train' ORDER BY number)")" = "failed,succeeded" ] ||
  fail "train attempts: $(sql "SELECT number, state, message FROM attempts WHERE run_id='$run1' AND task_id='train'")"
log2=$(sql "SELECT log_path FROM attempts WHERE run_id='$run1' AND task_id='train' AND number=2")
grep -q "resuming from epoch 2" "$log2" || fail "train attempt 2 did not resume from checkpoint 2 ($log2)"
release=$(sql "SELECT c.uri FROM artifacts a JOIN artifact_copies c ON c.artifact_id=a.id WHERE a.run_id='$run1' AND a.task_id='publish' AND a.name='release' AND c.role='home' AND c.state='present'")
(cd "$release" && sha256sum --quiet -c MANIFEST.sha256) || fail "release manifest"
python3 - "$release/metrics.json" <<'PY' || fail "model quality"
import json, sys
m = json.load(open(sys.argv[1]))
assert m["rows"] == 1000 and m["r2"] > 0.99, m
print("metrics: rows %(rows)d, r2 %(r2).4f" % m)
PY
# Every produced artifact is recorded with its lineage; the gather has 4 inputs.
[ "$(sql "SELECT count(*) FROM artifacts WHERE run_id='$run1'")" = 10 ] || fail "expected 10 artifacts"
[ "$(sql "SELECT count(*) FROM lineage_edges e JOIN attempts a ON a.id=e.attempt_id WHERE a.run_id='$run1' AND a.task_id='clean' AND e.direction='consumed'")" = 4 ] ||
  fail "clean should consume the 4 ingest shards"

echo "== run 2 (cache)"
"$tierflow" run "$here/examples/quickstart/pipeline.yaml" --db "$db" --progress plain | tee "$work/run2.txt" ||
  fail "run 2 exited $?"
run2=$(sql "SELECT id FROM runs ORDER BY created_at DESC LIMIT 1")
[ "$run2" != "$run1" ] || fail "run 2 has run 1's id"
# pack's shards live in RAM (a stage output needs no more than volatile),
# freed once train read them: pack runs again, and train, whose input has
# the same content, is reused all the same.
[ "$(sql "SELECT group_concat(id, ',') FROM (SELECT id FROM tasks WHERE run_id='$run2' AND state='cached' ORDER BY seq)")" = "clean,featurize,train,publish" ] ||
  fail "expected clean, featurize, train and publish cached: $(sql "SELECT id, state FROM tasks WHERE run_id='$run2'")"
[ "$(sql "SELECT state FROM tasks WHERE run_id='$run2' AND id='pack'")" = succeeded ] ||
  fail "pack should run again (its RAM output was freed)"
[ "$(sql "SELECT count(*) FROM tasks WHERE run_id='$run2' AND stage='ingest' AND state='succeeded'")" = 4 ] ||
  fail "ingest (cache: false) should run again"
# The cached train attempt points at the attempt of run 1 that really ran.
[ "$(sql "SELECT o.run_id || '/' || o.state FROM attempts a JOIN attempts o ON o.id=a.cached_from WHERE a.run_id='$run2' AND a.task_id='train'")" = "$run1/succeeded" ] ||
  fail "train's cached_from should be run 1's succeeded attempt"
echo "quickstart_run: OK ($run1, then $run2 from cache)"
