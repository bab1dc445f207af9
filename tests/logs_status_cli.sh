#!/usr/bin/env bash
# `tierflow logs RUN` (every task, prefixed; --failed; --stage), `logs -f`
# on a task that has not started (waits, then follows; exits 1 saying why
# when it never will: upstream failed, cancelled, engine gone), `logs -f
# RUN` (every running task, prefixed, until the run ends), `status` on the
# local store, and `runs`' failed counts and colour, through the real
# binary (CTest: logs_status_cli). Tasks wait on gate files this script
# creates, so nothing depends on timing; every wait is bounded and fails
# the test when it runs out.
#
# Usage: logs_status_cli.sh TIERFLOW_BIN
set -euo pipefail
tierflow="$1"
work="$(mktemp -d "${TMPDIR:-/tmp}/tierflow-logs.XXXXXX")"
pids=()
cleanup() {
  touch "$work"/gate-* 2>/dev/null || true  # lets any task still waiting end
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "logs_status_cli: FAIL: $*" >&2; exit 1; }
export TIERFLOW_RAM_ROOT="$work/ram"
unset TIERFLOW_SCHEDULER TIERFLOW_DB NO_COLOR
mkdir -p "$work/p"

# until SECONDS COMMAND...: runs COMMAND every 0.1 s until it succeeds; fails
# the test when SECONDS pass first.
until_ok() {
  local limit=$(($1 * 10)); shift
  for ((i = 0; i < limit; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  fail "timed out after $((limit / 10))s waiting for: $*"
}

# ---------------------------------------------------------------- a failed run
cat > "$work/p/fails.yaml" <<'YAML'
name: logsdemo
stages:
  shard:
    foreach: [a, b, c]
    run: |
      echo "hello $TIERFLOW_ITEM"; echo "err $TIERFLOW_ITEM" >&2
      if [ "$TIERFLOW_ITEM" = b ]; then echo "cannot create : Directory nonexistent" >&2; exit 2; fi
      echo out > "$TIERFLOW_OUTPUT_RAW"
    outputs: {raw: 1KiB}
  merge:
    inputs: {raw: shard.raw}
    run: echo merging
YAML
db1="$work/state1/tierflow.db"
if "$tierflow" run "$work/p/fails.yaml" --db "$db1" -q >"$work/run1.out" 2>&1; then
  fail "the failing run succeeded"
fi

"$tierflow" logs last --db "$db1" >"$work/all.out" 2>"$work/all.err" || fail "logs last: $(cat "$work/all.err")"
# Every task that wrote, in plan order, each line prefixed; the prefix is
# padded to the widest task id (shard[a], 8 characters; merge is shorter).
cat > "$work/all.want" <<'TEXT'
shard[a] | hello a
shard[a] | err a
shard[b] | hello b
shard[b] | err b
shard[b] | cannot create : Directory nonexistent
shard[c] | hello c
shard[c] | err c
TEXT
diff -u "$work/all.want" "$work/all.out" || fail "logs RUN: not every task's lines, prefixed"
grep -q "^merge: never ran (upstream_failed: upstream task shard\[b\] failed)" "$work/all.err" ||
  fail "logs RUN: no note for the task that never ran: $(cat "$work/all.err")"

"$tierflow" logs last --failed --db "$db1" >"$work/failed.out" 2>&1 || fail "logs --failed"
grep '^shard\[b\]' "$work/all.want" | diff -u - "$work/failed.out" ||
  fail "logs --failed: not only the failed task's lines"

"$tierflow" logs last --stage merge --stage shard --db "$db1" >"$work/stage.out" 2>/dev/null ||
  fail "logs --stage"
diff -u "$work/all.want" "$work/stage.out" || fail "logs --stage shard --stage merge"
"$tierflow" logs last --stage merge --db "$db1" >"$work/merge.out" 2>/dev/null || fail "logs --stage merge"
[ ! -s "$work/merge.out" ] || fail "logs --stage merge printed lines of another stage"

set +e
"$tierflow" logs last --stage shrad --db "$db1" >"$work/bad.out" 2>"$work/bad.err"
rc=$?
set -e
[ "$rc" = 1 ] || fail "logs --stage shrad exited $rc, not 1"
grep -qx "run logsdemo-[0-9a-f]* has no stage 'shrad' (did you mean 'shard'?)" "$work/bad.err" ||
  fail "logs --stage shrad: $(cat "$work/bad.err")"
[ ! -s "$work/bad.out" ] || fail "logs --stage shrad printed a log"
set +e
"$tierflow" logs last 'shard[a]' --failed --db "$db1" >/dev/null 2>&1
rc=$?
set -e
[ "$rc" = 2 ] || fail "logs RUN TASK --failed exited $rc, not 2 (a usage error)"

# Colour: the prefix in its task's state colour with --color always, never
# in a pipe otherwise.
esc=$'\033'
"$tierflow" logs last --db "$db1" --color always 2>/dev/null >"$work/color.out"
grep -qF "${esc}[1;31mshard[b]${esc}[0m | cannot create" "$work/color.out" ||
  fail "logs --color always: shard[b] not in the failed colour: $(cat -v "$work/color.out")"
grep -qF "${esc}[32mshard[a]${esc}[0m | hello a" "$work/color.out" ||
  fail "logs --color always: shard[a] not in the succeeded colour"
! grep -q "$esc" "$work/all.out" || fail "logs in a pipe is coloured"

# runs: a failed run never reads 4/4; FAILED counts upstream_failed too.
"$tierflow" runs --db "$db1" >"$work/runs.out"
grep -Eq '^logsdemo-[0-9a-f]+ +logsdemo +failed +2/4 +2 ' "$work/runs.out" ||
  fail "runs: not 2/4 done and 2 failed: $(cat "$work/runs.out")"
! grep -q "$esc" "$work/runs.out" || fail "runs in a pipe is coloured"
"$tierflow" --color always runs --db "$db1" >"$work/runs.color"
grep -qF "${esc}[1;31mfailed${esc}[0m" "$work/runs.color" || fail "runs --color always: no colour"
# The columns stay aligned: colour codes take no width.
sed "s/${esc}\[[0-9;]*m//g" "$work/runs.color" | diff -u "$work/runs.out" - ||
  fail "runs --color always: columns differ from the plain table"
# On a terminal colour is the default, and NO_COLOR turns it off.
script -qec "$tierflow runs --db $db1" /dev/null >"$work/runs.tty" </dev/null
grep -qF "${esc}[1;31mfailed" "$work/runs.tty" || fail "runs on a terminal: no colour"
NO_COLOR=1 script -qec "$tierflow runs --db $db1" /dev/null >"$work/runs.nocolor" </dev/null
! grep -qF "${esc}[1;31m" "$work/runs.nocolor" || fail "runs with NO_COLOR is coloured"

# status on the local store (no --scheduler): the server's first line,
# the engine, counts per stage, the failed tasks with their messages.
"$tierflow" status --db "$db1" >"$work/status.out" 2>&1 || fail "status: $(cat "$work/status.out")"
grep -Eqx 'run logsdemo-[0-9a-f]+ \(logsdemo\): failed - 1 failed, 1 upstream_failed' \
  "$work/status.out" || fail "status: first line: $(cat "$work/status.out")"
grep -qx "engine: not running (the run is over)" "$work/status.out" || fail "status: engine"
grep -qx "tasks: 4 tasks: 2 succeeded, 1 failed, 1 upstream_failed" "$work/status.out" ||
  fail "status: counts"
grep -Eqx 'shard +3 +2 +0 +0 +1 +0' "$work/status.out" || fail "status: shard's counts"
grep -Eqx 'merge +1 +0 +0 +0 +1 +0' "$work/status.out" || fail "status: merge's counts"
grep -Eqx '  shard\[b\] +failed +exit 2' "$work/status.out" || fail "status: failed shard[b]"
grep -Eqx '  merge +upstream_failed +upstream task shard\[b\] failed' "$work/status.out" ||
  fail "status: upstream_failed merge"
"$tierflow" status last --db "$db1" --output json >"$work/status.json"
python3 - "$work/status.json" <<'PY' || fail "status --output json"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["state"] == "failed", s
assert s["tasks"]["failed"] == 1 and s["tasks"]["upstream_failed"] == 1, s["tasks"]
assert [x["stage"] for x in s["stages"]] == ["shard", "merge"], s["stages"]
assert s["stages"][0]["succeeded"] == 2 and s["stages"][0]["failed"] == 1, s["stages"]
assert [f["task_id"] for f in s["failed"]] == ["shard[b]", "merge"], s["failed"]
assert s["engine"] == "not_running" and s["resume_command"] is None, s
PY
set +e
"$tierflow" status nosuchrun --db "$db1" >/dev/null 2>"$work/status.err"
rc=$?
set -e
[ "$rc" = 1 ] || fail "status of an unknown run exited $rc, not 1"
grep -q "no run 'nosuchrun'" "$work/status.err" || fail "status nosuchrun: $(cat "$work/status.err")"

# ---------------------------------------------------------------- logs -f waits
# first waits for its gate; second, behind it, writes two lines.
write_gated() {  # $1: file, $2: gate, $3: first's exit code
  cat > "$1" <<YAML
name: gated
stages:
  first:
    run: for i in \$(seq 1200); do [ -e "$2" ] && break; sleep 0.1; done; echo first done; echo x > "\$TIERFLOW_OUTPUT_X"; exit $3
    outputs: {x: 1KiB}
  second:
    inputs: {x: first.x}
    run: echo "second line 1"; echo "second line 2"
YAML
}
first_running() {
  "$tierflow" status --db "$1" --output json 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)
sys.exit(0 if [r["task_id"] for r in s["running"]] == ["first"] else 1)'
}
start_gated() {
  write_gated "$work/p/gated$1.yaml" "$work/gate-$1" "$2"
  "$tierflow" run "$work/p/gated$1.yaml" --db "$work/state$1/tierflow.db" -q --no-cache \
    >"$work/run$1.out" 2>&1 &
  run_pid=$!
  pids+=("$run_pid")
  until_ok 60 first_running "$work/state$1/tierflow.db"
}
# follow N TASK...: `logs -f last TASK...` on run N in the background.
follow() {
  local n="$1" name="$2"; shift 2
  "$tierflow" logs -f last "$@" --db "$work/state$n/tierflow.db" >"$work/$name.out" \
    2>"$work/$name.err" &
  follow_pid=$!
  pids+=("$follow_pid")
}
# ended PID NAME: waits (bounded) for a follower to exit; its code in $rc.
ended() {
  until_ok 60 bash -c "! kill -0 $1"
  set +e
  wait "$1"
  rc=$?
  set -e
}
waiting_note="waiting for second to start: it is pending behind 1 unfinished task of earlier layers (first)"

# 2: second runs once first is let through.
start_gated 2 0
engine2=$run_pid
"$tierflow" status --db "$work/state2/tierflow.db" >"$work/status2.out"
grep -Eqx "engine: alive \(pid $engine2 on .*\)" "$work/status2.out" ||
  fail "status of a live run: engine: $(cat "$work/status2.out")"
grep -Eq '^  first +1 +[0-9]' "$work/status2.out" || fail "status: first not listed running"
follow 2 wait2 second
wait2=$follow_pid
follow 2 all2
all2=$follow_pid
until_ok 30 grep -qxF "$waiting_note" "$work/wait2.err"
kill -0 "$wait2" 2>/dev/null || fail "logs -f on a pending task did not wait: $(cat "$work/wait2.err")"
[ ! -s "$work/wait2.out" ] || fail "logs -f printed before the task started"
touch "$work/gate-2"
ended "$wait2"
[ "$rc" = 0 ] || fail "logs -f second exited $rc: $(cat "$work/wait2.err")"
printf 'second line 1\nsecond line 2\n' | diff -u - "$work/wait2.out" ||
  fail "logs -f second: not its output"
ended "$all2"
[ "$rc" = 0 ] || fail "logs -f RUN exited $rc: $(cat "$work/all2.err")"
printf 'first  | first done\nsecond | second line 1\nsecond | second line 2\n' |
  diff -u - "$work/all2.out" || fail "logs -f RUN: not every task's lines, prefixed"
ended "$engine2"
[ "$rc" = 0 ] || fail "gated run 2 exited $rc: $(cat "$work/run2.out")"

# 3: first fails, so second never starts.
start_gated 3 1
follow 3 wait3 second
wait3=$follow_pid
follow 3 failed3 --failed  # a task's log once it has failed; prefix as wide as all tasks' ids
failed3=$follow_pid
until_ok 30 grep -qxF "$waiting_note" "$work/wait3.err"
[ ! -s "$work/failed3.out" ] || fail "logs -f --failed printed before anything failed"
touch "$work/gate-3"
ended "$wait3"
[ "$rc" = 1 ] || fail "logs -f behind a failed task exited $rc, not 1"
grep -qx "second will not run: upstream task first failed" "$work/wait3.err" ||
  fail "logs -f behind a failed task: $(cat "$work/wait3.err")"
ended "$failed3"
[ "$rc" = 0 ] || fail "logs -f --failed exited $rc: $(cat "$work/failed3.err")"
printf 'first  | first done\n' | diff -u - "$work/failed3.out" || fail "logs -f --failed"
ended "$run_pid"

# 4: the run is cancelled while second waits.
start_gated 4 0
follow 4 wait4 second
wait4=$follow_pid
until_ok 30 grep -qxF "$waiting_note" "$work/wait4.err"
"$tierflow" cancel last --db "$work/state4/tierflow.db" >/dev/null 2>&1 || fail "cancel"
ended "$wait4"
[ "$rc" = 1 ] || fail "logs -f on a cancelled run exited $rc, not 1"
grep -q "^second will not run: it was cancelled" "$work/wait4.err" ||
  fail "logs -f on a cancelled run: $(cat "$work/wait4.err")"
ended "$run_pid"

# 5: the engine is killed while second waits.
start_gated 5 0
follow 5 wait5 second
wait5=$follow_pid
until_ok 30 grep -qxF "$waiting_note" "$work/wait5.err"
kill -KILL "$run_pid"
wait "$run_pid" 2>/dev/null || true
ended "$wait5"
[ "$rc" = 1 ] || fail "logs -f with the engine gone exited $rc, not 1"
grep -Eq "^second has not started and will not while run gated-[0-9a-f]+ has no engine: .*\(resume with: tierflow resume gated-[0-9a-f]+\)$" \
  "$work/wait5.err" || fail "logs -f with the engine gone: $(cat "$work/wait5.err")"
"$tierflow" status --db "$work/state5/tierflow.db" >"$work/status5.out"
grep -Eq "^engine: gone \(pid $run_pid\); resume with: tierflow resume gated-[0-9a-f]+$" \
  "$work/status5.out" || fail "status with the engine gone: $(cat "$work/status5.out")"
echo "logs_status_cli: ok"
