#!/usr/bin/env bash
# Dynamic fan-out through the real binary on its default tiers (CTest:
# dynamic_cli): `plan` shows the dynamic stage and the map over it as
# expanded at run time; `run` places the expanded tasks and the gather
# reading them (the engine tests run without tiers); `show` lists the
# expanded tasks; a dry run says where the gather's input comes from; a
# second run reuses every item.
#
# Usage: dynamic_cli.sh TIERFLOW_BIN
set -euo pipefail
tierflow="$1"
work="$(mktemp -d "${TMPDIR:-/tmp}/tierflow-dynamic.XXXXXX")"
trap 'rm -rf "$work"' EXIT
fail() { echo "dynamic_cli: FAIL: $*" >&2; exit 1; }
export TIERFLOW_RAM_ROOT="$work/ram"
db="$work/state/tierflow.db"
file="$work/p/pipeline.yaml"
mkdir -p "$work/p"
cat > "$file" <<'YAML'
name: dyncli
stages:
  list:
    run: printf 'north\nsouth\neast\n' > "$TIERFLOW_OUTPUT_SHARDS"
    outputs: [shards]
  process:
    foreach: {from: list.shards}
    run: echo "item $TIERFLOW_ITEM" > "$TIERFLOW_OUTPUT_OUT"
    outputs: [out]
  post:
    foreach: {over: process}
    inputs: {one: process.out}
    run: tr a-z A-Z < "$TIERFLOW_INPUT_ONE" > "$TIERFLOW_OUTPUT_OUT"
    outputs: [out]
  gather:
    inputs: {all: post.out}
    run: cat "$TIERFLOW_INPUT_ALL"/* | sort > "$TIERFLOW_OUTPUT_REPORT"
    outputs: [report]
YAML

plan="$("$tierflow" plan "$file")"
grep -q "process  expanded at run time, from list.shards" <<<"$plan" || fail "plan: $plan"
grep -q "post  expanded at run time, with the items of process" <<<"$plan" || fail "plan: $plan"

"$tierflow" run "$file" --db "$db" --progress plain > "$work/run1.out" 2>&1 ||
  fail "first run: $(cat "$work/run1.out")"
sql() { sqlite3 "$db" "$1"; }
run1="$(sql "SELECT id FROM runs ORDER BY created_at DESC LIMIT 1")"
[ "$(sql "SELECT count(*) FROM tasks WHERE run_id = '$run1' AND state = 'succeeded'")" = 8 ] ||
  fail "8 tasks succeeded: $(sql "SELECT id, state, message FROM tasks WHERE run_id = '$run1'")"
report="$(sql "SELECT uri FROM artifact_copies c JOIN artifacts a ON a.id = c.artifact_id
               WHERE a.run_id = '$run1' AND a.task_id = 'gather' AND c.role = 'home'")"
[ "$(cat "$report")" = "$(printf 'ITEM EAST\nITEM NORTH\nITEM SOUTH')" ] ||
  fail "the gather read every mapped item: $(cat "$report")"
"$tierflow" show "$run1" --db "$db" | grep -q "post\[south\]" || fail "show lists post[south]"

explain="$("$tierflow" plan "$file" --explain --db "$db")"
grep -q "list: reuse: cached from $run1" <<<"$explain" || fail "explain: $explain"
grep -q "gather: run: input all comes from post (expanded at run time)" <<<"$explain" ||
  fail "explain: $explain"

"$tierflow" run "$file" --db "$db" --progress plain > "$work/run2.out" 2>&1 ||
  fail "second run: $(cat "$work/run2.out")"
run2="$(sql "SELECT id FROM runs ORDER BY created_at DESC LIMIT 1")"
[ "$run2" != "$run1" ] || fail "a second run"
[ "$(sql "SELECT count(*) FROM tasks WHERE run_id = '$run2' AND state = 'cached'")" = 8 ] ||
  fail "every task reused: $(sql "SELECT id, state FROM tasks WHERE run_id = '$run2'")"
echo "dynamic_cli: ok"
