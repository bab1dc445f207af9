#!/usr/bin/env bash
# Running Slurm runs (docs/slurm.md "Options", "Resuming and cancelling",
# "Cluster mode") against the private two-node Slurm of scripts/slurm.sh,
# started in a temporary directory (CTest: slurm_ops_test, label slurm):
#  a. a run started with --slurm-option=--nice=1, killed -9 mid-run: a
#     resume with another option is refused naming both, nothing changed;
#     `tierflow resume RUN` without flags re-attaches (events 'reattached')
#     and submits the rest with the recorded option (`scontrol show job`
#     of the job it submitted says Nice=1); one succeeded attempt per task;
#  b. `tierflow cancel` of a run whose engine was killed -9 leaves no job of
#     it in squeue and records it cancelled;
#  c. `tierflow server --executor slurm` runs a pipeline given to `tierflow
#     submit` as Slurm jobs; after kill -9 of the server and a restart it
#     re-attaches (events 'reattached'), every task has exactly one
#     succeeded attempt and no attempt was submitted twice.
# Needs root (slurmd runs jobs as their submitter): skips with exit code 77
# otherwise. Every wait is bounded and fails the test when it runs out.
#
# Usage: slurm_ops_test.sh TIERFLOW_BINARY
test_name=slurm_ops_test
source "$(dirname "${BASH_SOURCE[0]}")/slurm_test_lib.sh"
tierflow=$(realpath "$1")

require_root

start_cluster slurm-ops

# A foreach of gated items, then a task gathering them.
gated_pipeline() { # NAME GATES
  cat <<EOF
name: $1
stages:
  work:
    foreach: [x, y]
    run: |
      echo \$\$ > "$2/\$TIERFLOW_ITEM.pid"
      while [ ! -e "$2/\$TIERFLOW_ITEM.open" ]; do sleep 0.05; done
      echo "\$TIERFLOW_ITEM" > "\$TIERFLOW_OUTPUT_OUT"
    outputs: [out]
  gather:
    inputs: {parts: work.out}
    run: cat "\$TIERFLOW_INPUT_PARTS"/* > "\$TIERFLOW_OUTPUT_ALL"
    outputs: [all]
EOF
}

# a. Recorded options: a resume needs no flags; other flags are refused.
t0=$EPOCHREALTIME
mkdir -p "$dir/a/gates"
cd "$dir/a"
gated_pipeline options "$dir/a/gates" >pipeline.yaml
"$tierflow" run pipeline.yaml --executor slurm --slurm-option=--nice=1 --slurm-poll 0.2s,1s \
  --progress plain >run.out 2>&1 &
engine=$!
background+=("$engine")
wait_for "both items to run" eval '[ -e gates/x.pid ] && [ -e gates/y.pid ]'
wait_for "the handles recorded" eval \
  '[ "$(sql . "SELECT count(*) FROM attempts WHERE coalesce(handle, \"\") != \"\"")" -eq 2 ]'
kill -9 "$engine"
wait "$engine" 2>/dev/null || true
run=$(run_id .)
[ "$(sql . "SELECT executor || ' ' || executor_options FROM runs")" = \
  'slurm {"account":"","array_throttle":0,"extra":["--nice=1"],"partition":""}' ] ||
  fail "recorded: $(sql . "SELECT executor, executor_options FROM runs")"
attempts_before=$(sql . "SELECT group_concat(id || state) FROM attempts")
rc=0
"$tierflow" resume "$run" --slurm-option=--nice=2 >other.out 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q -- "started with --slurm-option=--nice=1" other.out &&
  grep -q -- "not --slurm-option=--nice=2" other.out ||
  fail "a resume with other options was not refused naming both (exit $rc): $(cat other.out)"
[ "$(sql . "SELECT group_concat(id || state) FROM attempts")" = "$attempts_before" ] ||
  fail "the refused resume changed the attempts"
"$tierflow" resume "$run" --slurm-poll 0.2s,1s >resume.out 2>&1 &
engine=$!
background+=("$engine")
wait_for "the resumed engine to re-attach" eval \
  '[ "$(sql . "SELECT count(*) FROM events WHERE kind = \"reattached\"")" -ge 2 ]'
touch gates/x.open gates/y.open
wait "$engine" || fail "resume: $(tail -20 resume.out)"
one_success_each .
no_double_submission . "$run"
gather=$(sql . "SELECT handle FROM attempts WHERE task_id = 'gather'")
nice=$(scontrol show job "$gather" | grep -o 'Nice=[-0-9]*')
[ "$nice" = Nice=1 ] || fail "the resumed run's job $gather has $nice, not the recorded --nice=1"
say "a. resume without flags: recorded --nice=1 reached sbatch, other options refused, in $(elapsed "$t0")s"

# b. cancel of a run whose engine is dead.
t0=$EPOCHREALTIME
mkdir -p "$dir/b/gates"
cd "$dir/b"
gated_pipeline deadcancel "$dir/b/gates" >pipeline.yaml
"$tierflow" run pipeline.yaml --executor slurm --slurm-poll 0.2s,1s --kill-grace 2 --progress plain \
  >run.out 2>&1 &
engine=$!
background+=("$engine")
wait_for "both items to run" eval '[ -e gates/x.pid ] && [ -e gates/y.pid ]'
kill -9 "$engine"
wait "$engine" 2>/dev/null || true
run=$(run_id .)
no_job_of "$run" && fail "the run's jobs are gone before the cancel"
"$tierflow" cancel "$run" >cancel.out 2>&1 || fail "tierflow cancel: $(cat cancel.out)"
grep -q "cancelled its slurm jobs" cancel.out || fail "cancel said: $(cat cancel.out)"
wait_for "no job of $run in squeue" no_job_of "$run"
[ "$(sql . "SELECT state FROM runs")" = cancelled ] || fail "run: $(sql . "SELECT state FROM runs")"
say "b. cancel with a dead engine: no job left, run cancelled, in $(elapsed "$t0")s"

# c. tierflow server --executor slurm, killed -9 and restarted.
t0=$EPOCHREALTIME
mkdir -p "$dir/c/gates"
cd "$dir/c"
gated_pipeline served "$dir/c/gates" >pipeline.yaml
start_server() {
  "$tierflow" server --listen 127.0.0.1:0 --db "$dir/c/.tierflow/tierflow.db" --executor slurm \
    --slurm-poll 0.2s,1s >"server$1.out" 2>&1 &
  server=$!
  background+=("$server")
  wait_for "server $1 to listen" eval \
    'addr=$(sed -n "s/^listening on //p" server'"$1"'.out 2>/dev/null); [ -n "$addr" ]'
}
start_server 1
"$tierflow" submit pipeline.yaml --scheduler "$addr" >submit.out 2>&1 ||
  fail "submit: $(cat submit.out)"
wait_for "both items to run as jobs" eval '[ -e gates/x.pid ] && [ -e gates/y.pid ]'
run=$(run_id .)
wait_for "the handles recorded" eval \
  '[ "$(sql . "SELECT count(*) FROM attempts WHERE coalesce(handle, \"\") != \"\"")" -eq 2 ]'
[ "$(sql . "SELECT executor FROM runs")" = slurm ] || fail "run recorded on '$(sql . "SELECT executor FROM runs")'"
kill -9 "$server"
wait "$server" 2>/dev/null || true
touch gates/x.open # x finishes while no server watches
start_server 2
wait_for "the restarted server to re-attach" eval \
  '[ "$(sql . "SELECT count(*) FROM events WHERE kind = \"reattached\"")" -ge 2 ]'
touch gates/y.open
wait_for "the run to succeed" eval '[ "$(sql . "SELECT state FROM runs")" = succeeded ]'
one_success_each .
no_double_submission . "$run"
[ "$(sql . "SELECT count(*) FROM attempts")" -eq 3 ] ||
  fail "attempts: $(sql . "SELECT id, task_id, state, handle FROM attempts")"
kill "$server"
wait "$server" 2>/dev/null || true
say "c. server --executor slurm: restart re-attached, one attempt per task, in $(elapsed "$t0")s"
