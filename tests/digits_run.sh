#!/usr/bin/env bash
# examples/digits through the real `tierflow run --tiers` (CTest: digits_run).
# The example's tiers.yaml is copied with every root moved into a temp dir
# (its profiles and durabilities kept), and the state database goes there too.
# Run 1 (defaults): the run succeeds; the published metrics say test
# accuracy >= 0.9; the release's home is the archive tier, with model.npz
# there; its lineage reaches the ingest tasks.
# Run 2 (--param fail_after_epoch=3): train's first attempt exits after
# committing checkpoint 3; the retry resumes from it (its log says so and
# repeats no earlier epoch) and ends with exactly run 1's weights.
#
# Usage: digits_run.sh TIERFLOW_BIN
set -euo pipefail
tierflow="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/tierflow-digits-run.XXXXXX")"
trap 'rm -rf "$work"' EXIT
db="$work/state/tierflow.db"
pipeline="$here/examples/digits/pipeline.yaml"
fail() { echo "digits_run: FAIL: $*" >&2; exit 1; }
sql() { python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); [print("|".join(map(str,r))) for r in c.execute(sys.argv[2])]' "$db" "$1"; }

/usr/bin/python3 -c 'import numpy, importlib.util; assert importlib.util.find_spec("sklearn")' ||
  fail "Debian's python3-numpy and python3-sklearn are needed (scripts/bootstrap.sh installs them)"

# The example's tiers, each root renamed to the tier's name (relative to the copy: in $work).
awk '/^  [a-z][a-z0-9_-]*:$/ { tier = substr($1, 1, length($1) - 1) }
     /^    root:/ { print "    root: " tier; next } { print }' \
  "$here/examples/digits/tiers.yaml" >"$work/tiers.yaml"
[ "$(grep -c '^    root: ' "$work/tiers.yaml")" = 4 ] || fail "expected 4 tiers in $work/tiers.yaml"
grep -q '^    durability: archive' "$work/tiers.yaml" || fail "the example has no archive tier"

# metrics RUN: the published metrics.json of RUN, read from its home copy.
release_home() {
  sql "SELECT c.tier || '|' || c.uri FROM artifacts a JOIN artifact_copies c ON c.artifact_id=a.id
       WHERE a.run_id='$1' AND a.task_id='publish' AND a.name='release' AND c.role='home' AND c.state='present'"
}

echo "== run 1 (defaults)"
start=$(date +%s.%N)
"$tierflow" run "$pipeline" --tiers "$work/tiers.yaml" --db "$db" --progress plain --slots 2 |
  tee "$work/run1.txt" || fail "run 1 exited $?"
echo "run 1 took $(python3 -c "import sys; print('%.1f s' % (float(sys.argv[2]) - float(sys.argv[1])))" "$start" "$(date +%s.%N)")"
run1=$(sql "SELECT id FROM runs ORDER BY created_at DESC LIMIT 1")
[ "$(sql "SELECT state FROM runs WHERE id='$run1'")" = succeeded ] ||
  fail "run 1 not succeeded: $(sql "SELECT message FROM runs WHERE id='$run1'")"
home1=$(release_home "$run1")
[ "${home1%%|*}" = archive ] || fail "the release's home should be the archive tier, got '$home1'"
release1="${home1#*|}"
case "$release1" in "$work/archive/"*) ;; *) fail "the release is not under the archive root: $release1" ;; esac
[ -s "$release1/model.npz" ] || fail "no model.npz on the archive tier ($release1)"
(cd "$release1" && sha256sum --quiet -c MANIFEST.sha256) || fail "release manifest"
python3 - "$release1/metrics.json" <<'PY' || fail "run 1 metrics"
import json, sys
m = json.load(open(sys.argv[1]))
print("run 1: test accuracy %.4f on %d test samples, %d epochs, %d raw files -> %d clean"
      % (m["test_accuracy"], m["samples"]["test"], m["epochs"], m["samples"]["raw_files"],
         m["samples"]["clean"]))
assert m["test_accuracy"] >= 0.9, "test accuracy %.4f < 0.9" % m["test_accuracy"]
assert m["epochs"] == 12 and m["resumed_from_epoch"] == 0, m
assert m["samples"]["clean"] == 1797 and m["samples"]["train"] + m["samples"]["test"] == 1797, m
assert sum(m["dropped_by_clean"].values()) > 0, "clean dropped nothing: the raw feed has defects"
PY
grep -q "test accuracy 0\.9" "$(sql "SELECT log_path FROM attempts WHERE run_id='$run1' AND task_id='publish'")" ||
  fail "publish's log does not print the test accuracy"
# Many small raw files, on the bulk tier.
[ "$(sql "SELECT count(*) FROM artifact_copies c JOIN artifacts a ON a.id=c.artifact_id WHERE a.run_id='$run1' AND a.name='raw' AND c.tier='bulk' AND c.role='home' AND c.state='present'")" = 4 ] ||
  fail "the 4 ingest partitions should have their home on bulk"
raw_files=$(find "$work/bulk/runs/$run1/artifacts/ingest/raw" -type f -name '*.pgm' | wc -l)
[ "$raw_files" -ge 1500 ] || fail "expected many small raw files on bulk, found $raw_files"
# The lineage of the published model reaches every ingest task.
"$tierflow" lineage "$run1/publish/release" --upstream --db "$db" -o json >"$work/lineage.json" ||
  fail "lineage exited $?"
python3 - "$work/lineage.json" <<'PY' || fail "lineage of the release"
import json, sys
g = json.load(open(sys.argv[1]))
tasks = {n.get("task_id") for n in g["nodes"]}
ingest = sorted(t for t in tasks if t and t.startswith("ingest["))
assert ingest == ["ingest[0]", "ingest[1]", "ingest[2]", "ingest[3]"], sorted(filter(None, tasks))
assert {"clean", "featurize", "pack", "train", "publish"} <= tasks, sorted(filter(None, tasks))
print("lineage: the release comes from %s" % ", ".join(ingest))
PY

echo "== run 2 (train fails once after epoch 3)"
"$tierflow" run "$pipeline" --tiers "$work/tiers.yaml" --db "$db" --progress plain --slots 2 \
  --param fail_after_epoch=3 | tee "$work/run2.txt" || fail "run 2 exited $?"
run2=$(sql "SELECT id FROM runs ORDER BY created_at DESC LIMIT 1")
[ "$run2" != "$run1" ] || fail "run 2 has run 1's id"
[ "$(sql "SELECT state FROM runs WHERE id='$run2'")" = succeeded ] || fail "run 2 not succeeded"
[ "$(sql "SELECT group_concat(state, ',') FROM (SELECT state FROM attempts WHERE run_id='$run2' AND task_id='train' ORDER BY number)")" = "failed,succeeded" ] ||
  fail "train attempts: $(sql "SELECT number, state, message FROM attempts WHERE run_id='$run2' AND task_id='train'")"
log1=$(sql "SELECT log_path FROM attempts WHERE run_id='$run2' AND task_id='train' AND number=1")
log2=$(sql "SELECT log_path FROM attempts WHERE run_id='$run2' AND task_id='train' AND number=2")
grep -q "simulated failure after epoch 3" "$log1" || fail "attempt 1 did not fail after epoch 3 ($log1)"
grep -q "resuming from epoch 3 " "$log2" || fail "attempt 2 did not resume from checkpoint 3 ($log2)"
if grep -qE "epoch [123]/12" "$log2"; then fail "attempt 2 repeated an epoch it resumed past"; fi
grep "resuming from epoch" "$log2"
release2=$(release_home "$run2")
python3 - "$release1/metrics.json" "${release2#*|}/metrics.json" <<'PY' || fail "run 2 metrics"
import json, sys
m1, m2 = (json.load(open(p)) for p in sys.argv[1:])
print("run 2: test accuracy %.4f, resumed from epoch %d" % (m2["test_accuracy"], m2["resumed_from_epoch"]))
assert m2["test_accuracy"] >= 0.9, "test accuracy %.4f < 0.9" % m2["test_accuracy"]
assert m2["resumed_from_epoch"] == 3, m2
assert m2["weights_sha256"] == m1["weights_sha256"], "the resumed model differs from run 1's"
PY
echo "digits_run: OK ($run1, then $run2 resumed from its checkpoint)"
