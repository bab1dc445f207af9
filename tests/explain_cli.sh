#!/usr/bin/env bash
# Cache reasons, dry run, --rerun and the resume refusal through the real
# binary (CTest: explain_cli): `run --dry-run` and `plan --explain` say
# for every task whether it would run or be reused and why (no earlier
# run, command changed, param changed, script changed, input will be
# rebuilt, env changed, forced) and write nothing; a real run records the
# same reasons as `cache` events (input changed with its hashes);
# --rerun/--rerun-downstream force stages; an unknown stage is refused with
# a did-you-mean; a resume after the file changed an unfinished task is
# refused naming it, and --force resumes with the stored definition.
#
# Usage: explain_cli.sh TIERFLOW_BIN
set -euo pipefail
tierflow="$1"
work="$(mktemp -d "${TMPDIR:-/tmp}/tierflow-explain.XXXXXX")"
trap 'rm -rf "$work"' EXIT
fail() { echo "explain_cli: FAIL: $*" >&2; exit 1; }
db="$work/state/tierflow.db"
export TIERFLOW_RAM_ROOT="$work/ram"
file="$work/p/pipeline.yaml"
mkdir -p "$work/p"
echo one > "$work/p/data.txt"

write_pipeline() {  # $1: train's command suffix, $2: MODE
  cat > "$file" <<YAML
name: explain
params:
  lr: {type: float, default: 0.1}
stages:
  ingest:
    foreach: [a, b, c, d, e]
    run: cat data.txt > "\$TIERFLOW_OUTPUT_RAW"; echo "\$TIERFLOW_ITEM" >> "\$TIERFLOW_OUTPUT_RAW"
    outputs: {raw: 1KiB}
  clean:
    inputs: {raw: ingest.raw}
    run: cat "\$TIERFLOW_INPUT_RAW"/* > "\$TIERFLOW_OUTPUT_CLEAN"
    outputs: {clean: 1KiB}
  train:
    inputs: {clean: clean.clean}
    run: echo "\$TIERFLOW_PARAM_LR \$MODE" > "\$TIERFLOW_OUTPUT_MODEL"; cat "\$TIERFLOW_INPUT_CLEAN" >> "\$TIERFLOW_OUTPUT_MODEL"$1
    env: {MODE: $2}
    outputs: {model: 1KiB}
  report:
    inputs: {model: train.model}
    run: cp "\$TIERFLOW_INPUT_MODEL" "\$TIERFLOW_OUTPUT_REPORT"
    outputs: {report: 1KiB}
YAML
}
write_pipeline "" fast

# explain ARGS...: `run --dry-run` into $work/out, checked to equal
# `plan --explain` with the same arguments.
explain() {
  "$tierflow" run "$file" --db "$db" --dry-run "$@" > "$work/out" 2> "$work/err" ||
    fail "run --dry-run $*: $(cat "$work/err")"
  "$tierflow" plan "$file" --db "$db" --explain "$@" > "$work/plan_out" 2> "$work/err" ||
    fail "plan --explain $*: $(cat "$work/err")"
  cmp -s "$work/out" "$work/plan_out" || fail "plan --explain differs from run --dry-run"
}
expect() {  # TASK DECISION REASON: the task's line has the decision and names the reason
  grep -F "  $1: $2: " "$work/out" | grep -qF "$3" ||
    fail "expected '$1: $2: ...$3...' in: $(cat "$work/out")"
}
store_sum() { for f in "$db" "$db-wal"; do [ -e "$f" ] && sha256sum < "$f"; done; true; }

# No store yet: every task is "no earlier run", and nothing is created.
explain
expect clean run "no earlier run"
grep -qF "ingest[a..e] (5 tasks): run: no earlier run" "$work/out" ||
  fail "foreach stage not summarised: $(cat "$work/out")"
[ ! -e "$db" ] || fail "a dry run created the store"

"$tierflow" run "$file" --db "$db" --quiet > /dev/null 2> "$work/err" || fail "first run: $(cat "$work/err")"

# Everything reusable; JSON lists every task.
explain -o json
python3 - "$work/out" <<'PY' || fail "json: $(cat "$work/out")"
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["totals"] == {"run": 0, "reuse": 8}, doc["totals"]
ids = [t["id"] for t in doc["tasks"]]
assert ids[:5] == ["ingest[a]", "ingest[b]", "ingest[c]", "ingest[d]", "ingest[e]"], ids
assert all(t["decision"] == "reuse" and t["reason"].startswith("cached from explain-") for t in doc["tasks"])
assert all(t["cached_from"]["attempt"] == 1 for t in doc["tasks"])
PY
before="$(store_sum)"
explain
expect train reuse "cached from explain-"
grep -qF "ingest[a..e] (5 tasks): reuse: cached from explain-" "$work/out" || fail "$(cat "$work/out")"

# A param train reads.
explain --param lr=0.5
expect train run "param lr changed"
expect report run "input model will be rebuilt"

# train's command, and its env.
write_pipeline "; true" fast
explain
expect train run "command changed"
expect clean reuse "cached from"
write_pipeline "" slow
explain
expect train run "env changed (MODE)"
write_pipeline "" fast

# A file the ingest command names: ingest runs, clean's input is rebuilt.
echo two > "$work/p/data.txt"
explain
expect "ingest[a..e] (5 tasks)" run "script data.txt changed"
expect clean run "input raw will be rebuilt"

# --rerun, --rerun-downstream; a dry run wrote nothing.
echo one > "$work/p/data.txt"
explain --rerun train
expect train run "forced (--rerun)"
expect report run "input model will be rebuilt"
expect clean reuse "cached from"
explain --rerun train --rerun-downstream
expect report run "forced (--rerun)"
[ "$(store_sum)" = "$before" ] || fail "a dry run changed the store"

# Unknown stage: refused with a did-you-mean, nothing created.
runs_before="$(sqlite3 "$db" 'SELECT count(*) FROM runs')"
if "$tierflow" run "$file" --db "$db" --rerun trian > "$work/out" 2> "$work/err"; then
  fail "an unknown --rerun stage was accepted"
fi
grep -qF "no stage 'trian'" "$work/err" && grep -qF "did you mean 'train'" "$work/err" ||
  fail "no did-you-mean: $(cat "$work/err")"
if "$tierflow" plan "$file" --db "$db" --explain --rerun trian > "$work/out" 2> "$work/err"; then
  fail "plan --explain took an unknown --rerun stage"
fi
[ "$(sqlite3 "$db" 'SELECT count(*) FROM runs')" = "$runs_before" ] || fail "a refused run was recorded"

# The real run records the reasons: a changed data file, then --rerun.
echo three > "$work/p/data.txt"
"$tierflow" run "$file" --db "$db" --quiet > /dev/null 2> "$work/err" || fail "second run: $(cat "$work/err")"
run2="$(sqlite3 "$db" "SELECT id FROM runs ORDER BY created_at DESC, rowid DESC LIMIT 1")"
event() {  # RUN TASK -> the cache event's text
  sqlite3 "$db" "SELECT message FROM events WHERE run_id = '$1' AND task_id = '$2' AND kind = 'cache'"
}
[[ "$(event "$run2" "ingest[a]")" == "run: script data.txt changed" ]] || fail "ingest[a]: $(event "$run2" "ingest[a]")"
[[ "$(event "$run2" clean)" == "run: input raw changed (ingest[a]: hash "*" -> "*", and 4 more)" ]] ||
  fail "clean: $(event "$run2" clean)"
"$tierflow" run "$file" --db "$db" --quiet --rerun clean > /dev/null 2> "$work/err" || fail "rerun: $(cat "$work/err")"
run3="$(sqlite3 "$db" "SELECT id FROM runs ORDER BY created_at DESC, rowid DESC LIMIT 1")"
[[ "$(event "$run3" clean)" == "run: forced (--rerun)" ]] || fail "clean: $(event "$run3" clean)"
[[ "$(event "$run3" "ingest[b]")" == "reuse: cached from $run2 (attempt 1)" ]] || fail "ingest[b]: $(event "$run3" "ingest[b]")"
[[ "$(event "$run3" train)" == "reuse: cached from "* ]] || fail "train: $(event "$run3" train)"

# Resume refusal: train fails, then the file changes train's command.
write_pipeline "; exit 3" fast
if "$tierflow" run "$file" --db "$db" --quiet --param lr=0.7 > /dev/null 2>&1; then
  fail "the failing run succeeded"
fi
failed="$(sqlite3 "$db" "SELECT id FROM runs ORDER BY created_at DESC, rowid DESC LIMIT 1")"
write_pipeline "; exit 0" fast
attempts_before="$(sqlite3 "$db" 'SELECT count(*) FROM attempts')"
if "$tierflow" resume "$failed" --db "$db" > "$work/out" 2> "$work/err"; then
  fail "resume of a run whose file changed was not refused"
fi
grep -qF "train (command changed)" "$work/err" || fail "refusal names no task: $(cat "$work/err")"
grep -qF "tierflow run $file" "$work/err" && grep -qF -- "--force" "$work/err" ||
  fail "refusal gives no way out: $(cat "$work/err")"
[ "$(sqlite3 "$db" 'SELECT count(*) FROM attempts')" = "$attempts_before" ] || fail "a refused resume ran something"
# --force resumes with the stored definition: train fails again (exit 3).
if "$tierflow" resume "$failed" --db "$db" --force --quiet > /dev/null 2>&1; then
  fail "resume --force ran the new definition"
fi
[ "$(sqlite3 "$db" "SELECT count(*) FROM attempts WHERE run_id = '$failed' AND task_id = 'train'")" -ge 2 ] ||
  fail "resume --force did not run train again"
# The file back as it was: the resume is not refused.
write_pipeline "; exit 3" fast
"$tierflow" resume "$failed" --db "$db" --quiet > /dev/null 2> "$work/err" || true
grep -qF "changed since the run started" "$work/err" && fail "an unchanged file was refused"
echo "explain_cli: ok"
