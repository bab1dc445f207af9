#!/usr/bin/env bash
# `tierflow lineage export RUN --format openlineage` (CTest: lineage_export).
# Every exported event is validated offline against the OpenLineage spec
# files (../shared/openlineage, 2-0-2 with its facet schemas) and tierflow's
# facet schema (docs/openlineage/) by tests/openlineage_validate.py.
#  - examples/digits (its tiers copied into a temp dir, as digits_run.sh
#    does): one START and one COMPLETE of the run; every task event has the
#    run as its parent; each attempt one START and one end; outputs named
#    digits/STAGE/OUTPUT (with the item for the foreach stage ingest) and
#    versioned by the stored content hash; inputs are what was consumed.
#  - a pipeline whose task fails once and succeeds on its retry: a FAIL with
#    errorMessage for attempt 1, START and COMPLETE of attempt 2 under
#    another runId of the same job; its foreach stage's datasets carry the
#    item; a second run of it gives the same dataset names and versions.
#  - bad input: an unknown run, an unknown format; -o FILE equals stdout.
#
# Usage: lineage_export_test.sh TIERFLOW_BIN SPEC_DIR
set -euo pipefail
tierflow="$1"
spec="$2"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/tierflow-lineage-export.XXXXXX")"
trap 'rm -rf "$work"' EXIT
fail() { echo "lineage_export: FAIL: $*" >&2; exit 1; }
validate() {
  python3 "$here/tests/openlineage_validate.py" "$spec" \
    "$here/docs/openlineage/TierflowStorageDatasetFacet.json" -- "$@" || fail "validation of $*"
}
last_run() {
  python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(
    "SELECT id FROM runs ORDER BY created_at DESC LIMIT 1").fetchone()[0])' "$1"
}
export TIERFLOW_OPENLINEAGE_NAMESPACE=lineage-test

# The checks every run's export passes, beyond the schemas.
cat >"$work/structure.py" <<'PY'
import collections, json, sqlite3, sys
db, run, path = sys.argv[1:4]
events = [json.loads(line) for line in open(path)]
c = sqlite3.connect(db)
pipeline = c.execute("SELECT pipeline_name FROM runs WHERE id=?", (run,)).fetchone()[0]
run_events = [e for e in events if "parent" not in e["run"]["facets"]]
kinds = [e["eventType"] for e in run_events]
assert kinds == ["START", "COMPLETE"], kinds
assert all(e["job"] == {**e["job"], "namespace": "lineage-test", "name": pipeline} for e in run_events)
run_id = run_events[0]["run"]["runId"]
assert events[0] is run_events[0] and events[-1] is run_events[1], "the run's START first, its end last"
times = [e["eventTime"] for e in events]
assert times == sorted(times), "events out of time order"
by_run = collections.defaultdict(list)
for e in events:
    if e is run_events[0] or e is run_events[1]:
        continue
    parent = e["run"]["facets"]["parent"]
    assert parent["run"]["runId"] == run_id, parent
    assert parent["job"] == {"namespace": "lineage-test", "name": pipeline}, parent
    assert e["job"]["facets"]["jobType"]["jobType"] == "TASK"
    by_run[e["run"]["runId"]].append(e)
attempts = c.execute("SELECT id, task_id, state FROM attempts WHERE run_id=?", (run,)).fetchall()
assert len(by_run) == len(attempts), (len(by_run), len(attempts))
task_of = {}
for run_id_, evs in by_run.items():
    assert [e["eventType"] for e in evs][0] == "START" and len(evs) == 2, [e["eventType"] for e in evs]
    assert evs[0]["job"]["name"] == evs[1]["job"]["name"]
    task_of[run_id_] = evs[0]["job"]["name"][len(pipeline) + 1:]
# Outputs: PIPELINE/STAGE/OUTPUT[/ITEM], version = the stored content hash.
stored = {}
for task, stage, item, name, digest in c.execute(
        "SELECT a.task_id, t.stage, t.item, a.name, a.content_hash FROM artifacts a "
        "JOIN tasks t ON t.run_id=a.run_id AND t.id=a.task_id WHERE a.run_id=?", (run,)):
    stored["/".join([pipeline, stage, name] + ([item] if item is not None else []))] = digest
seen = {}
for e in events:
    for out in e.get("outputs", []):
        assert out["name"] in stored, (out["name"], sorted(stored))
        assert out["facets"]["version"]["datasetVersion"] == stored[out["name"]], out
        stats = out["outputFacets"]["outputStatistics"]
        assert stats["size"] >= 0 and stats["fileCount"] >= 1, stats
        copies = out["facets"]["tierflow_storage"]["copies"]
        assert any(copy["role"] == "home" for copy in copies), copies
        assert out["namespace"].startswith(("file://", "s3://")), out["namespace"]
        seen[out["name"]] = out["facets"]["version"]["datasetVersion"]
assert set(seen) == set(stored), sorted(set(stored) - set(seen))
# Inputs: the datasets the attempt consumed.
consumed = collections.Counter(
    r[0] for r in c.execute("SELECT a.task_id FROM lineage_edges e JOIN attempts a "
                            "ON a.id=e.attempt_id WHERE a.run_id=? AND e.direction='consumed'",
                            (run,)))
for run_id_, evs in by_run.items():
    assert len(evs[1].get("inputs", [])) <= consumed[task_of[run_id_]]
    assert consumed[task_of[run_id_]] == 0 or evs[1]["inputs"], task_of[run_id_]
json.dump({"datasets": seen, "runId": run_id}, open(path + ".summary", "w"))
print(f"{run}: {len(events)} events, {len(by_run)} attempts, {len(seen)} output datasets")
PY

echo "== digits"
/usr/bin/python3 -c 'import numpy, importlib.util; assert importlib.util.find_spec("sklearn")' ||
  fail "Debian's python3-numpy and python3-sklearn are needed (scripts/bootstrap.sh installs them)"
mkdir -p "$work/digits"
awk '/^  [a-z][a-z0-9_-]*:$/ { tier = substr($1, 1, length($1) - 1) }
     /^    root:/ { print "    root: " tier; next } { print }' \
  "$here/examples/digits/tiers.yaml" >"$work/digits/tiers.yaml"
db="$work/digits/state/tierflow.db"
"$tierflow" run "$here/examples/digits/pipeline.yaml" --tiers "$work/digits/tiers.yaml" --db "$db" \
  --progress plain --slots 2 >"$work/digits/run.txt" || fail "digits run exited $?"
run=$(last_run "$db")
"$tierflow" lineage export "$run" --format openlineage --db "$db" -o "$work/digits.ndjson" ||
  fail "export exited $?"
validate "$work/digits.ndjson"
python3 "$work/structure.py" "$db" "$run" "$work/digits.ndjson" || fail "digits events"
python3 - "$work/digits.ndjson" <<'PY' || fail "digits foreach datasets"
import json, sys
names = {o["name"] for line in open(sys.argv[1]) for o in json.loads(line).get("outputs", [])}
assert {"digits/ingest/raw/0", "digits/ingest/raw/3"} <= names, sorted(names)
PY
# Export without -o, and by `last`: the same bytes (rendering is deterministic).
"$tierflow" lineage export last --db "$db" >"$work/digits-stdout.ndjson" || fail "export to stdout"
cmp -s "$work/digits.ndjson" "$work/digits-stdout.ndjson" || fail "-o FILE and stdout differ"

echo "== a task that fails once, then succeeds on its retry"
mkdir -p "$work/retry"
cat >"$work/retry/pipeline.yaml" <<'YAML'
name: flaky
params:
  marker: ""
stages:
  make:
    foreach: [north, south]
    run: echo "$TIERFLOW_ITEM" > "$TIERFLOW_OUTPUT_PART"
    outputs: [part]
  combine:
    inputs: {parts: make.part}
    params: [marker]
    retries: {limit: 1, backoff: 1s}
    run: |
      if [ ! -e "$TIERFLOW_PARAM_MARKER" ]; then
        touch "$TIERFLOW_PARAM_MARKER"
        echo "first attempt breaks on purpose" >&2
        exit 3
      fi
      ls "$TIERFLOW_INPUT_PARTS" > "$TIERFLOW_OUTPUT_SUMMARY"
    outputs: [summary]
YAML
rdb="$work/retry/state/tierflow.db"
(cd "$work/retry" && "$tierflow" run pipeline.yaml --db "$rdb" --progress plain \
  --param "marker=$work/retry/marker" >"$work/retry/run1.txt") || fail "retry run exited $?"
[ -e "$work/retry/marker" ] || fail "the first attempt did not run"
run1=$(last_run "$rdb")
"$tierflow" lineage export "$run1" --db "$rdb" -o "$work/retry1.ndjson" || fail "export exited $?"
validate "$work/retry1.ndjson"
python3 "$work/structure.py" "$rdb" "$run1" "$work/retry1.ndjson" || fail "retry run events"
python3 - "$work/retry1.ndjson" <<'PY' || fail "the retry's events"
import json, sys
events = [json.loads(line) for line in open(sys.argv[1])]
combine = [e for e in events if e["job"]["name"] == "flaky.combine"]
assert [e["eventType"] for e in combine] == ["START", "FAIL", "START", "COMPLETE"], \
    [e["eventType"] for e in combine]
first, second = combine[0]["run"]["runId"], combine[2]["run"]["runId"]
assert combine[1]["run"]["runId"] == first and combine[3]["run"]["runId"] == second
assert first != second, "a retry is another run of the same job"
error = combine[1]["run"]["facets"]["errorMessage"]
assert error["message"], error
assert error["programmingLanguage"] == "shell", error
assert "first attempt breaks on purpose" in error.get("stackTrace", ""), error
assert "errorMessage" not in combine[3]["run"]["facets"]
assert [o["name"] for o in combine[3]["outputs"]] == ["flaky/combine/summary"], combine[3]["outputs"]
assert sorted(i["name"] for i in combine[3]["inputs"]) == ["flaky/make/part/north",
                                                           "flaky/make/part/south"]
PY

echo "== the same pipeline again: the same datasets"
(cd "$work/retry" && "$tierflow" run pipeline.yaml --db "$rdb" --progress plain \
  --param "marker=$work/retry/marker" >"$work/retry/run2.txt") || fail "second run exited $?"
run2=$(last_run "$rdb")
[ "$run2" != "$run1" ] || fail "no second run"
"$tierflow" lineage export "$run2" --db "$rdb" -o "$work/retry2.ndjson" || fail "export exited $?"
validate "$work/retry2.ndjson"
python3 "$work/structure.py" "$rdb" "$run2" "$work/retry2.ndjson" || fail "second run events"
python3 - "$work/retry1.ndjson.summary" "$work/retry2.ndjson.summary" <<'PY' || fail "across runs"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert a["runId"] != b["runId"]
assert a["datasets"] == b["datasets"], (a["datasets"], b["datasets"])  # names and versions
PY

echo "== bad input"
if "$tierflow" lineage export nosuch-000000 --db "$rdb" >"$work/out.txt" 2>"$work/err.txt"; then
  fail "an unknown run exported"
fi
grep -q "nosuch-000000" "$work/err.txt" || fail "the error does not name the run: $(cat "$work/err.txt")"
[ ! -s "$work/out.txt" ] || fail "an unknown run wrote events"
set +e
"$tierflow" lineage export "$run1" --db "$rdb" --format csv >/dev/null 2>"$work/err.txt"
code=$?
set -e
[ "$code" = 2 ] || fail "an unknown format exited $code"
grep -q "openlineage" "$work/err.txt" || fail "the error does not list the formats: $(cat "$work/err.txt")"
echo "lineage_export: ok"
