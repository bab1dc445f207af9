#!/usr/bin/env bash
# Packing short tasks several to a Slurm job (scheduler/slurm_jobs.h
# "Packing rule", worker/exec_task.h) against the private two-node Slurm of
# scripts/slurm.sh, started in a temporary directory (CTest: slurm_pack_test,
# label slurm):
#  a. a 12-item foreach with `slurm: {items_per_job: 5}` goes as ONE sbatch
#     of an array of 3 elements (slurmctld's log, submissions.log): 3
#     distinct handles, 5 + 5 + 2 attempts each, a `submitted` event with the
#     reason; item 7 exits 3 and fails alone, the other items of its job
#     succeed;
#  b. a run of a pipeline without items_per_job, after a run of a pipeline of
#     the same name recorded its stage's times (2 s a task, on the local
#     executor), packs by them: 10 s / 2.x s = 4 (or 5) items a job, so its
#     12 items go as one array of 3 elements, the reason recorded;
#  c. `tierflow cancel` while the first item of each of two packed jobs runs:
#     no job of the run left in squeue, all 6 tasks cancelled, and every item
#     that never ran reported "cancelled before it started".
# Needs root (slurmd runs jobs as their submitter): skips with exit code 77
# otherwise. Every wait is bounded and fails the test when it runs out.
#
# Usage: slurm_pack_test.sh TIERFLOW_BINARY
test_name=slurm_pack_test
source "$(dirname "${BASH_SOURCE[0]}")/slurm_test_lib.sh"
tierflow=$(realpath "$1")

require_root

start_cluster slurm-pack

# "HANDLE COUNT" per distinct handle of the run's attempts, by handle.
per_handle() { sql "$1" "SELECT handle || ' ' || count(*) FROM attempts GROUP BY handle ORDER BY handle"; }

# a. items_per_job: 5.
t0=$EPOCHREALTIME
mkdir -p "$dir/a"
cd "$dir/a"
cat >pipeline.yaml <<'EOF'
name: packed
stages:
  work:
    foreach: {range: [0, 12]}
    slurm: {items_per_job: 5}
    run: |
      [ "$TIERFLOW_ITEM" != 7 ] || exit 3
      echo "$TIERFLOW_ITEM $SLURM_JOB_ID" > "$TIERFLOW_OUTPUT_OUT"
    outputs: [out]
EOF
before=$(submissions)
rc=0
"$tierflow" run pipeline.yaml --executor slurm --progress plain >run.out 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "a run with a failing item exited 0"
run=$(run_id .)
[ $(($(submissions) - before)) -eq 1 ] ||
  fail "$(($(submissions) - before)) sbatch submissions for 12 packed items, not 1"
[ "$(wc -l <".tierflow/runs/$run/slurm/submissions.log")" -eq 12 ] ||
  fail "submissions.log: $(cat ".tierflow/runs/$run/slurm/submissions.log")"
handles=$(per_handle .)
job=$(sql . "SELECT substr(handle, 1, instr(handle, '_') - 1) FROM attempts LIMIT 1")
[ "$handles" = "$(printf '%s_0 5\n%s_1 5\n%s_2 2' "$job" "$job" "$job")" ] ||
  fail "attempts by handle: $handles"
[ "$(sql . "SELECT state || ' ' || coalesce(exit_code, '') FROM attempts WHERE task_id = 'work[7]'")" = "failed 3" ] ||
  fail "work[7]: $(sql . "SELECT state, exit_code, message FROM attempts WHERE task_id = 'work[7]'")"
[ "$(sql . "SELECT count(*) FROM attempts WHERE state = 'succeeded'")" -eq 11 ] ||
  fail "attempts: $(sql . "SELECT task_id, state, handle, message FROM attempts")"
# The others of work[7]'s job (items 5-9) succeeded.
[ "$(sql . "SELECT count(*) FROM attempts WHERE handle = '${job}_1' AND state = 'succeeded'")" -eq 4 ] ||
  fail "job ${job}_1: $(sql . "SELECT task_id, state FROM attempts WHERE handle = '${job}_1'")"
[ "$(sql . "SELECT count(*) FROM events WHERE kind = 'submitted' AND message LIKE '%items_per_job: 5%'")" -eq 12 ] ||
  fail "submitted events: $(sql . "SELECT task_id, message FROM events WHERE kind = 'submitted'")"
grep -q -- '--count 5$' ".tierflow/runs/$run/slurm/batch-"*.sh ||
  fail "job script: $(cat ".tierflow/runs/$run/slurm/batch-"*.sh)"
say "a. 12 items, items_per_job 5: one sbatch, 3 jobs, item 7 failed alone, in $(elapsed "$t0")s"

# b. packed by the recorded times of an earlier run of the same pipeline name.
t0=$EPOCHREALTIME
mkdir -p "$dir/b"
cd "$dir/b"
cat >first.yaml <<'EOF'
name: timed
stages:
  work:
    foreach: [a, b]
    run: sleep 2
EOF
cat >second.yaml <<'EOF'
name: timed
stages:
  work:
    foreach: {range: [0, 12]}
    run: "true"
EOF
"$tierflow" run first.yaml --progress plain >first.out 2>&1 || fail "first run: $(tail -20 first.out)"
before=$(submissions)
"$tierflow" run second.yaml --executor slurm --progress plain >second.out 2>&1 ||
  fail "second run: $(tail -20 second.out)"
run=$(run_id .)
sbatches=$(($(submissions) - before))
reason=$(sql . "SELECT message FROM events WHERE kind = 'submitted' AND run_id = '$run' LIMIT 1")
[[ "$reason" =~ median\ recorded\ task\ time\ 2s[0-9ms]*:\ ([45])\ item ]] || fail "reason: $reason"
k=${BASH_REMATCH[1]}
# 12 items, k a job: 3 jobs when the 12 launches come as one batch (the
# batching window may close early on a loaded host: then the first job
# still runs k, and no job more than k).
counts=$(sql . "SELECT count(*) FROM attempts WHERE run_id = '$run' GROUP BY handle ORDER BY min(id)")
first=$(head -1 <<<"$counts")
most=$(sort -n <<<"$counts" | tail -1)
jobs=$(wc -l <<<"$counts")
[ "$first" -eq "$k" ] && [ "$most" -le "$k" ] && [ "$jobs" -le $((3 + sbatches - 1)) ] ||
  fail "$sbatches sbatch(es); attempts by handle ($k a job): $(sql . "SELECT handle, count(*) FROM attempts WHERE run_id = '$run' GROUP BY handle")"
if [ "$sbatches" -eq 1 ]; then
  [ "$jobs" -eq 3 ] || fail "one sbatch of 12 items, $k a job, made $jobs jobs"
fi
[ "$(sql . "SELECT count(*) FROM tasks WHERE run_id = '$run' AND state = 'succeeded'")" -eq 12 ] ||
  fail "tasks: $(sql . "SELECT id, state, message FROM tasks WHERE run_id = '$run'")"
say "b. packed by recorded times ($k a job, $jobs jobs in $sbatches sbatch(es): $reason) in $(elapsed "$t0")s"

# c. cancel mid-way.
t0=$EPOCHREALTIME
mkdir -p "$dir/c/gates"
cd "$dir/c"
cat >pipeline.yaml <<'EOF'
name: cancel
params:
  gates: ""
stages:
  sleepy:
    foreach: {range: [0, 6]}
    slurm: {items_per_job: 3}
    run: echo $$ > "$TIERFLOW_PARAM_GATES/$TIERFLOW_ITEM.pid"; sleep 300
EOF
"$tierflow" run pipeline.yaml --param gates="$dir/c/gates" --executor slurm --progress plain \
  --kill-grace 2 >run.out 2>&1 &
engine=$!
background+=("$engine")
wait_for "the first item of each job to run" eval '[ -e gates/0.pid ] && [ -e gates/3.pid ]'
run=$(run_id .)
"$tierflow" cancel "$run" >cancel.out 2>&1 || fail "tierflow cancel: $(cat cancel.out)"
rc=0
wait "$engine" || rc=$?
[ $rc -eq 130 ] || fail "run after cancel exited $rc: $(tail -20 run.out)"
wait_for "no job of $run in squeue" no_job_of "$run"
[ "$(sql . "SELECT count(*) FROM tasks WHERE state = 'cancelled'")" -eq 6 ] ||
  fail "tasks after cancel: $(sql . "SELECT id, state, message FROM tasks")"
[ "$(sql . "SELECT count(*) FROM attempts WHERE state = 'cancelled'")" -eq 6 ] ||
  fail "attempts after cancel: $(sql . "SELECT task_id, state, handle, message FROM attempts")"
# Each attempt is cancelled on its own (marker, USR2): an item whose turn
# came first ran and was stopped; the others were reported cancelled
# without running.
never=0
for i in 0 1 2 3 4 5; do
  message=$(sql . "SELECT message FROM attempts WHERE task_id = 'sleepy[$i]'")
  if [ -e "gates/$i.pid" ]; then
    [[ "$message" != *"before it started"* ]] || fail "sleepy[$i] ran, yet: $message"
  else
    [[ "$message" == *"cancelled before it started"* ]] || fail "sleepy[$i] never ran: $message"
    never=$((never + 1))
  fi
done
say "c. cancel: no job left, 6 tasks cancelled, $never never ran, in $(elapsed "$t0")s"
