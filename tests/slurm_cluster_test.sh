#!/usr/bin/env bash
# The private Slurm cluster of scripts/slurm.sh (CTest: slurm_cluster_test,
# label slurm), started in a temporary directory:
#  1. a batch job runs and prints $SLURMD_NODENAME; `-w n2` lands on n2;
#     `--gres=gpu:1` lands on n1 with CUDA_VISIBLE_DEVICES set;
#  2. all ten elements of `--array=0-9` run: squeue is empty afterwards and
#     the jobcomp file has one COMPLETED line per element;
#  3. `scancel` of a running job leaves nothing in squeue (CANCELLED);
#  4. `scontrol update nodename=n2 state=down` marks n2 down, and a job
#     pinned to n2 stays pending until the node is resumed, then runs there;
#  5. `slurm.sh stop` leaves none of the PIDs it recorded alive, and no job
#     step.
# Prints one `sbatch --wrap true` submit-to-done latency and its own time.
# Needs root (slurmd runs jobs as their submitter, munged as user munge):
# skips, with exit code 77 (SKIP_RETURN_CODE), otherwise. Every wait is
# bounded and fails the test when it runs out.
#
# Usage: slurm_cluster_test.sh
test_name=slurm_cluster_test
limit=30 # seconds for any one wait; each takes a few seconds at most
source "$(dirname "${BASH_SOURCE[0]}")/slurm_test_lib.sh"

require_root

start_cluster slurm .
[ "$SLURM_CONF" = "$dir/slurm.conf" ] || fail "slurm.sh env: SLURM_CONF=$SLURM_CONF"
mkdir -p "$dir/out"
cd "$dir/out"

gone() { [ -z "$(squeue -h -j "$1" -o %i)" ]; }
state_is() { [ "$(squeue -h -j "$1" -o %T)" = "$2" ]; }
node_state_is() { [ "$(sinfo -h -n "$1" -N -o %t)" = "$2" ]; }
# The jobcomp line of job ID (jobcomp/filetxt: one per finished job).
jobcomp() { grep "^JobId=$1 " "$dir/jobcomp.txt" || true; }

# Submits a batch job (sbatch ARGS), waits until it is done and prints its
# ID; its output is in JOBID.out.
run_job() {
  local job
  job=$(sbatch --parsable -o '%j.out' "$@") || fail "sbatch $*"
  wait_for "job $job ($*) to finish" gone "$job"
  echo "$job"
}

# 1. Where jobs land.
job=$(run_job --wrap 'echo $SLURMD_NODENAME')
out=$(cat "$job.out")
[[ "$out" =~ ^n[12]$ ]] || fail "echo \$SLURMD_NODENAME printed '$out'"
jobcomp "$job" | grep -q 'JobState=COMPLETED' || fail "job $job not COMPLETED in jobcomp: $(jobcomp "$job")"

job=$(run_job -w n2 --wrap 'echo $SLURMD_NODENAME')
[ "$(cat "$job.out")" = n2 ] || fail "-w n2 ran on '$(cat "$job.out")'"

job=$(run_job --gres=gpu:1 --wrap 'echo $SLURMD_NODENAME ${CUDA_VISIBLE_DEVICES-unset}')
[[ "$(cat "$job.out")" =~ ^n1\ [0-9]$ ]] ||
  fail "--gres=gpu:1 printed '$(cat "$job.out")', not n1 and a CUDA_VISIBLE_DEVICES"

t0=$EPOCHREALTIME
run_job --wrap true >/dev/null
say "sbatch --wrap true: submit to done in $(elapsed "$t0")s"

# 2. A ten-element array.
t0=$EPOCHREALTIME
array=$(sbatch --parsable --array=0-9 -o 'array-%A_%a.out' --wrap 'echo $SLURM_ARRAY_TASK_ID') ||
  fail "sbatch --array"
wait_for "array $array to finish" gone "$array"
say "array of 10: submit to done in $(elapsed "$t0")s"
[ -z "$(squeue -h)" ] || fail "squeue not empty after the array: $(squeue)"
lines=$(grep -c " ArrayJobId=$array " "$dir/jobcomp.txt" || true)
[ "$lines" -eq 10 ] || fail "$lines jobcomp lines for array $array, not 10: $(cat "$dir/jobcomp.txt")"
completed=$(grep " ArrayJobId=$array " "$dir/jobcomp.txt" | grep -c 'JobState=COMPLETED' || true)
[ "$completed" -eq 10 ] || fail "$completed of 10 array elements COMPLETED"
for i in $(seq 0 9); do
  [ "$(cat "array-${array}_$i.out" 2>/dev/null)" = "$i" ] || fail "array element $i printed nothing or not $i"
done

# 3. scancel of a running job.
job=$(sbatch --parsable -o '%j.out' --wrap 'sleep 300') || fail "sbatch sleep"
wait_for "job $job to run" state_is "$job" RUNNING
scancel "$job"
wait_for "cancelled job $job to leave squeue" gone "$job"
wait_for "cancelled job $job in jobcomp" eval 'jobcomp "$job" | grep -q JobState=CANCELLED'
[ -z "$(squeue -h)" ] || fail "squeue not empty after scancel: $(squeue)"

# 4. A node set down runs nothing until it is resumed.
scontrol update nodename=n2 state=down reason=test
wait_for "n2 down" node_state_is n2 down
job=$(sbatch --parsable -o '%j.out' -w n2 --wrap 'echo $SLURMD_NODENAME') || fail "sbatch -w n2"
wait_for "job $job pending" state_is "$job" PENDING
# Three seconds (the scheduler runs every second here): still pending, still
# nothing run, n2 still down.
for _ in $(seq 30); do
  state_is "$job" PENDING || fail "job $job pinned to down n2: $(squeue -h -j "$job" -o '%T %R')"
  node_state_is n2 down || fail "n2 did not stay down: $(sinfo -h -n n2 -N -o '%t %E')"
  sleep 0.1
done
[ ! -e "$job.out" ] || fail "job $job ran on down n2: $(cat "$job.out")"
scontrol update nodename=n2 state=resume
wait_for "job $job to run on resumed n2" gone "$job"
[ "$(cat "$job.out")" = n2 ] || fail "job $job printed '$(cat "$job.out")' after resume"
node_state_is n2 idle || fail "n2 after resume: $(sinfo -h -n n2 -N -o %t)"

# 5. stop leaves nothing behind.
pids=$(cat "$dir"/pids/*.pid)
[ "$(wc -w <<<"$pids")" -eq 4 ] || fail "recorded PIDs: $pids (munged, slurmctld, slurmd n1 and n2 expected)"
bash "$slurm_sh" stop "$dir" || fail "slurm.sh stop"
for pid in $pids; do
  state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status" 2>/dev/null || true)
  case "$state" in
    "" | Z | X) ;;
    *) fail "pid $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline")) still runs after stop" ;;
  esac
done
[ -z "$(find "$dir/spool" -type s)" ] || fail "job steps left after stop: $(find "$dir/spool" -type s)"
! squeue -h >/dev/null 2>&1 || fail "squeue still answers after stop"
bash "$slurm_sh" stop "$dir" || fail "a second stop"
say "PASS"
