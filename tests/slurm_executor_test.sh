#!/usr/bin/env bash
# `tierflow run --executor slurm` (api/slurm_executor.h) against the private
# two-node Slurm of scripts/slurm.sh, started in a temporary directory
# (CTest: slurm_executor_test, label slurm):
#  a. examples/quickstart runs end to end (arrays throttled to 3 at once):
#     every task succeeded, every attempt has a Slurm handle, and the 4-item
#     foreach stage went as ONE submission (slurmctld's log and the executor's submissions.log);
#  b. kill -9 of `tierflow run` while its items wait on gate files, one item
#     finishing while no engine watches, then `tierflow resume` (the recorded
#     executor): the resumed engine re-attached (events 'reattached'), every
#     task has exactly one succeeded attempt, and no attempt was submitted
#     twice (submissions.log against the attempts table);
#  c. `tierflow cancel` of a running run leaves no job of it in squeue and
#     its tasks recorded cancelled;
#  d. a task with `resources: {gpus: 1}` runs on n1 with CUDA_VISIBLE_DEVICES;
#  e. a task with `timeout: 2s` running `sleep 30` is recorded timed out
#     within a few seconds (exec-task enforces it; -t is whole minutes);
#  f. n2 set down under running jobs: their attempts are recorded lost with
#     Slurm's NODE_FAIL and run again on n1;
#  g. examples/digits end to end (tiers in the test's folder): every task
#     succeeded, ingest as one array, checkpoints flushed, accuracy >= 0.9.
# First, without root: --executor slurm without sbatch on PATH fails naming
# it and records nothing. The rest needs root (slurmd runs jobs as their
# submitter): skips with exit code 77 otherwise. Every wait is bounded and fails the test when it runs out.
#
# Usage: slurm_executor_test.sh TIERFLOW_BINARY
test_name=slurm_executor_test
source "$(dirname "${BASH_SOURCE[0]}")/slurm_test_lib.sh"
tierflow=$(realpath "$1")

# Without sbatch on PATH: an error naming it, and nothing recorded.
nopath=$(mktemp -d "${TMPDIR:-/tmp}/tierflow-no-slurm.XXXXXX")
printf 'name: n\nstages:\n  s:\n    run: "true"\n' >"$nopath/p.yaml"
rc=0
(cd "$nopath" && PATH=/nonexistent "$tierflow" run p.yaml --executor slurm >out 2>&1) || rc=$?
[ $rc -eq 1 ] || fail "--executor slurm without sbatch exited $rc: $(cat "$nopath/out")"
grep -q '`sbatch` is not on PATH' "$nopath/out" || fail "no sbatch: $(cat "$nopath/out")"
[ ! -e "$nopath/.tierflow/tierflow.db" ] || fail "a run without sbatch created the store"
rm -rf "$nopath"

require_root

start_cluster slurm-exec

# a. The quickstart end to end.
t0=$EPOCHREALTIME
mkdir -p "$dir/a"
cd "$dir/a"
before=$(submissions)
"$tierflow" run "$root/examples/quickstart/pipeline.yaml" --executor slurm --slurm-poll 0.2s,1s --progress plain \
  --slurm-array-throttle 3 \
  >run.out 2>&1 || fail "quickstart on slurm: $(tail -20 run.out)"
run=$(run_id .)
[ "$(sql . "SELECT count(*) FROM tasks WHERE state != 'succeeded'")" -eq 0 ] ||
  fail "tasks not succeeded: $(sql . "SELECT id, state, message FROM tasks")"
[ "$(sql . "SELECT count(*) FROM attempts WHERE coalesce(handle, '') = ''")" -eq 0 ] ||
  fail "attempts without a handle: $(sql . "SELECT id, task_id, handle FROM attempts")"
tasks=$(sql . "SELECT count(*) FROM tasks")
# 4 ingest items as one array, then clean, featurize, pack, train, publish;
# besides them, the jobs that deleted node copies (evictions.log).
evictions=$(cat ".tierflow/runs/$run/slurm/evictions.log" 2>/dev/null | wc -l)
[ $(($(submissions) - before - evictions)) -eq $((tasks - 3)) ] ||
  fail "$(($(submissions) - before - evictions)) sbatch submissions for $tasks tasks, not $((tasks - 3))"
jobs=$(sql . "SELECT DISTINCT substr(handle, 1, instr(handle, '_') - 1) FROM attempts
              WHERE task_id LIKE 'ingest[%'")
[ "$(wc -l <<<"$jobs")" -eq 1 ] && [ -n "$jobs" ] || fail "ingest items in jobs: $jobs"
[ "$(wc -l <".tierflow/runs/$run/slurm/submissions.log")" -eq "$tasks" ] ||
  fail "submissions.log: $(cat ".tierflow/runs/$run/slurm/submissions.log")"
say "a. quickstart on slurm ($tasks tasks, foreach as one array) in $(elapsed "$t0")s"

# b. kill -9 mid-run, then resume.
t0=$EPOCHREALTIME
mkdir -p "$dir/b/gates"
cd "$dir/b"
cat >pipeline.yaml <<'EOF'
name: reattach
params:
  gates: ""
stages:
  work:
    foreach: [x, y, z]
    run: |
      echo $$ > "$TIERFLOW_PARAM_GATES/$TIERFLOW_ITEM.pid"
      while [ ! -e "$TIERFLOW_PARAM_GATES/$TIERFLOW_ITEM.open" ]; do sleep 0.05; done
      echo "$TIERFLOW_ITEM" > "$TIERFLOW_OUTPUT_OUT"
    outputs: [out]
  gather:
    inputs: {parts: work.out}
    run: cat "$TIERFLOW_INPUT_PARTS"/* > "$TIERFLOW_OUTPUT_ALL"
    outputs: [all]
EOF
"$tierflow" run pipeline.yaml --param gates="$dir/b/gates" --executor slurm --slurm-poll 0.2s,1s --progress plain \
  >run.out 2>&1 &
engine=$!
background+=("$engine")
wait_for "the three items to run" eval '[ -e gates/x.pid ] && [ -e gates/y.pid ] && [ -e gates/z.pid ]'
wait_for "the handles recorded" eval \
  '[ "$(sql . "SELECT count(*) FROM attempts WHERE coalesce(handle, \"\") != \"\"")" -eq 3 ]'
kill -9 "$engine"
wait "$engine" 2>/dev/null || true
run=$(run_id .)
# x finishes while no engine watches; y and z still run when resume starts.
touch gates/x.open
wait_for "x's report" eval '[ "$(ls .tierflow/runs/$run/slurm/*.report 2>/dev/null | wc -l)" -eq 1 ]'
# On the local executor: refused, naming the executor, nothing changed.
attempts_before=$(sql . "SELECT group_concat(id || state) FROM attempts")
rc=0
"$tierflow" resume "$run" --executor local >wrong.out 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "was started with --executor slurm" wrong.out ||
  fail "a resume on the local executor was not refused (exit $rc): $(cat wrong.out)"
[ "$(sql . "SELECT group_concat(id || state) FROM attempts")" = "$attempts_before" ] ||
  fail "the refused resume changed the attempts"
"$tierflow" resume "$run" --slurm-poll 0.2s,1s >resume.out 2>&1 &
engine=$!
background+=("$engine")
wait_for "the resumed engine to re-attach" eval \
  '[ "$(sql . "SELECT count(*) FROM events WHERE kind = \"reattached\"")" -ge 3 ]'
touch gates/y.open gates/z.open
wait "$engine" || fail "resume: $(tail -20 resume.out)"
[ "$(sql . "SELECT count(*) FROM tasks WHERE state = 'succeeded'")" -eq 4 ] ||
  fail "tasks after resume: $(sql . "SELECT id, state, message FROM tasks")"
one_success_each .
[ "$(sql . "SELECT count(*) FROM attempts")" -eq 4 ] ||
  fail "attempts: $(sql . "SELECT id, task_id, state, handle FROM attempts")"
no_double_submission . "$run"
say "b. kill -9 and resume: re-attached, nothing submitted twice, in $(elapsed "$t0")s"

# c. cancel.
t0=$EPOCHREALTIME
mkdir -p "$dir/c/gates"
cd "$dir/c"
cat >pipeline.yaml <<'EOF'
name: cancel
params:
  gates: ""
stages:
  sleepy:
    foreach: [p, q]
    run: echo $$ > "$TIERFLOW_PARAM_GATES/$TIERFLOW_ITEM.pid"; sleep 300
EOF
"$tierflow" run pipeline.yaml --param gates="$dir/c/gates" --executor slurm --slurm-poll 0.2s,1s --progress plain \
  --kill-grace 2 >run.out 2>&1 &
engine=$!
background+=("$engine")
wait_for "both items to run" eval '[ -e gates/p.pid ] && [ -e gates/q.pid ]'
run=$(run_id .)
"$tierflow" cancel "$run" >cancel.out 2>&1 || fail "tierflow cancel: $(cat cancel.out)"
rc=0
wait "$engine" || rc=$?
[ $rc -eq 130 ] || fail "run after cancel exited $rc: $(tail -20 run.out)"
wait_for "no job of $run in squeue" no_job_of "$run"
[ "$(sql . "SELECT count(*) FROM tasks WHERE state = 'cancelled'")" -eq 2 ] ||
  fail "tasks after cancel: $(sql . "SELECT id, state, message FROM tasks")"
say "c. cancel: no job left, tasks cancelled, in $(elapsed "$t0")s"

# d. a GPU task lands on n1 with CUDA_VISIBLE_DEVICES.
t0=$EPOCHREALTIME
mkdir -p "$dir/d"
cd "$dir/d"
cat >pipeline.yaml <<'EOF'
name: gpu
params:
  seen: ""
stages:
  train:
    resources: {gpus: 1}
    run: |
      echo "$SLURMD_NODENAME ${CUDA_VISIBLE_DEVICES-unset}" > "$TIERFLOW_OUTPUT_ENV"
      cp "$TIERFLOW_OUTPUT_ENV" "$TIERFLOW_PARAM_SEEN"
    outputs: [env]
EOF
"$tierflow" run pipeline.yaml --param seen="$dir/d/seen" --executor slurm --slurm-poll 0.2s,1s --progress plain \
  >run.out 2>&1 || fail "gpu run: $(tail -20 run.out)"
out=$(cat seen)
[[ "$out" =~ ^n1\ [0-9]+$ ]] || fail "the gpu task printed '$out', not n1 and a CUDA_VISIBLE_DEVICES"
[ "$(sql . "SELECT worker FROM attempts")" = n1 ] || fail "recorded on $(sql . "SELECT worker FROM attempts")"
say "d. gpus: 1 on n1 with CUDA_VISIBLE_DEVICES ($out) in $(elapsed "$t0")s"

# e. a timeout to the second.
t0=$EPOCHREALTIME
mkdir -p "$dir/e"
cd "$dir/e"
cat >pipeline.yaml <<'EOF'
name: timeout
stages:
  slow:
    timeout: 2s
    run: sleep 30
EOF
rc=0
"$tierflow" run pipeline.yaml --executor slurm --slurm-poll 0.2s,1s --progress plain --kill-grace 1 >run.out 2>&1 || rc=$?
[ $rc -eq 1 ] || fail "timeout run exited $rc: $(tail -20 run.out)"
took=$(elapsed "$t0")
[ "$(sql . "SELECT state FROM attempts")" = timed_out ] ||
  fail "attempt: $(sql . "SELECT state, message FROM attempts")"
awk -v t="$took" 'BEGIN { exit !(t < 15) }' || fail "a 2 s timeout took ${took}s"
[ "$(sql . "SELECT finished_at - started_at < 4000 FROM attempts")" = 1 ] ||
  fail "attempt ran $(sql . "SELECT finished_at - started_at FROM attempts") ms"
say "e. timeout: 2s attempt recorded timed_out, run over in ${took}s"
# f. A node lost under running jobs: NODE_FAIL, attempts lost, rerun on n1.
t0=$EPOCHREALTIME
mkdir -p "$dir/f/gates"
cd "$dir/f"
cat >pipeline.yaml <<'EOF'
name: nodefail
params:
  gates: ""
stages:
  work:
    foreach: [a, b, c, d]
    run: |
      echo $SLURMD_NODENAME >> "$TIERFLOW_PARAM_GATES/$TIERFLOW_ITEM.nodes"
      while [ ! -e "$TIERFLOW_PARAM_GATES/open" ]; do sleep 0.05; done
      echo $TIERFLOW_ITEM > "$TIERFLOW_OUTPUT_OUT"
    outputs: [out]
EOF
"$tierflow" run pipeline.yaml --param gates="$dir/f/gates" --executor slurm --slurm-poll 0.2s,1s --progress plain \
  >run.out 2>&1 &
engine=$!
background+=("$engine")
wait_for "the four items to run" eval '[ "$(cat gates/*.nodes 2>/dev/null | wc -l)" -eq 4 ]'
on_n2=$(grep -l n2 gates/*.nodes | wc -l)
[ "$on_n2" -ge 1 ] || fail "no item ran on n2: $(grep . gates/*.nodes)"
scontrol update nodename=n2 state=down reason=test
wait_for "the attempts on n2 lost" eval \
  '[ "$(sql . "SELECT count(*) FROM attempts WHERE state = \"lost\"")" -eq "$on_n2" ]'
touch gates/open
wait "$engine" || fail "run after the node failure: $(tail -20 run.out)"
scontrol update nodename=n2 state=resume
[ "$(sql . "SELECT count(*) FROM tasks WHERE state = 'succeeded'")" -eq 4 ] ||
  fail "tasks: $(sql . "SELECT id, state, message FROM tasks")"
[ "$(sql . "SELECT count(*) FROM attempts WHERE state = 'lost' AND message LIKE 'Slurm NODE_FAIL:%'")" \
  -eq "$on_n2" ] || fail "lost attempts: $(sql . "SELECT id, state, worker, message FROM attempts")"
[ "$(sql . "SELECT count(*) FROM attempts WHERE state = 'succeeded' AND number = 2 AND worker = 'n1'")" \
  -eq "$on_n2" ] || fail "reruns: $(sql . "SELECT id, task_id, number, state, worker FROM attempts")"
say "f. n2 down: $on_n2 attempts lost (NODE_FAIL), rerun on n1, in $(elapsed "$t0")s"
# g. examples/digits end to end: its tiers' roots moved into the test's
# folder (as tests/digits_run.sh does) plus a shared scratch tier, every
# stage a Slurm job, its four ingest items one array; train's checkpoints
# relayed from its node and flushed, the published
# metrics' test accuracy >= 0.9.
t0=$EPOCHREALTIME
mkdir -p "$dir/g"
cd "$dir/g"
awk '/^  [a-z][a-z0-9_-]*:$/ { tier = substr($1, 1, length($1) - 1) }
     /^    root:/ { print "    root: " tier; next } { print }' \
  "$root/examples/digits/tiers.yaml" >tiers.yaml
[ "$(grep -c '^    root: ' tiers.yaml)" = 4 ] || fail "expected 4 tiers in $dir/g/tiers.yaml"
# A Slurm site's shared scratch (a parallel file system: every node reaches
# it, nothing is kept safe there): on Slurm the node tiers are each node's
# own, so train writes its checkpoints on its node and each committed one is
# relayed to scratch, then flushed to bulk and recorded.
cat >>tiers.yaml <<'YAML'
  scratch:
    adapter: posix
    root: scratch
    scope: cluster
    durability: node
    profile: {seq_read_mb_s: 1000, seq_write_mb_s: 800, rand_read_iops: 20000, latency_us: 500}
YAML
"$tierflow" run "$root/examples/digits/pipeline.yaml" --tiers tiers.yaml --db .tierflow/tierflow.db \
  --executor slurm --slurm-poll 0.2s,1s --progress plain >run.out 2>&1 || fail "digits on slurm: $(tail -20 run.out)"
[ "$(sql . "SELECT count(*) FROM tasks WHERE state != 'succeeded'")" -eq 0 ] ||
  fail "digits tasks not succeeded: $(sql . "SELECT id, state, message FROM tasks")"
[ "$(sql . "SELECT count(DISTINCT substr(handle, 1, instr(handle, '_') - 1)) FROM attempts
            WHERE task_id LIKE 'ingest[%'")" -eq 1 ] ||
  fail "ingest items in jobs: $(sql . "SELECT task_id, handle FROM attempts")"
[ "$(sql . "SELECT count(*) FROM checkpoints WHERE state = 'present'")" -ge 1 ] ||
  fail "no checkpoint of train flushed: $(sql . "SELECT name, state, message FROM checkpoints")"
metrics=$(sql . "SELECT c.uri FROM artifacts a JOIN artifact_copies c ON c.artifact_id = a.id
                 WHERE a.task_id = 'publish' AND a.name = 'release' AND c.role = 'home'
                 AND c.state = 'present'")/metrics.json
python3 -c 'import json, sys; a = json.load(open(sys.argv[1]))["test_accuracy"]; sys.exit(a < 0.9)' \
  "$metrics" || fail "digits test accuracy below 0.9: $(cat "$metrics")"
say "g. examples/digits on slurm ($(sql . "SELECT count(*) FROM tasks") tasks) in $(elapsed "$t0")s"
say "PASS"
