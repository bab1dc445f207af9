# Sourced by the Slurm test scripts (tests/slurm_*_test.sh): what each of
# them needs around its own checks. Set `test_name` (and `limit`, the
# seconds any one wait may take; 60 by default) before sourcing it.
#
#   require_root         exits 77 (SKIP_RETURN_CODE) unless run as root:
#                        slurmd runs jobs as their submitter, munged as munge
#   start_cluster PREFIX [SUB]
#                        a private two-node Slurm (scripts/slurm.sh) in
#                        $dir/SUB (default cluster; "." for $dir itself),
#                        $dir a new mktemp folder; stopped on exit, when
#                        $dir is removed unless the test failed. Sets dir,
#                        cluster, ctld_log and Slurm's environment.
#   background+=(PID)    killed on exit
#   wait_for WHAT CMD... polls CMD every 0.1 s; fails after $limit s
#   sql DIR QUERY        the store DIR/.tierflow/tierflow.db
#   run_id DIR, no_job_of RUN, submissions (sbatch calls slurmctld took)
#   one_success_each DIR, no_double_submission DIR RUN
#
# Every wait is bounded and fails the test when it runs out; the test
# prints its time when it ends.
set -euo pipefail
started=$EPOCHREALTIME
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
slurm_sh=$root/scripts/slurm.sh
limit=${limit:-60}
background=()

say() { echo "$test_name: $*" >&2; }
fail() {
  say "FAIL: $*"
  exit 1
}
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

require_root() {
  if [ "$(id -u)" -ne 0 ]; then
    say "SKIPPED: NOT RUN: needs root (slurmd runs jobs as their submitter, munged as user munge);"
    say "SKIPPED: run as root (CI does), e.g. sudo ctest -L slurm"
    exit 77
  fi
}

cleanup() {
  local rc=$?
  for pid in "${background[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  bash "$slurm_sh" stop "$cluster" || rc=1
  if [ $rc -eq 0 ]; then rm -rf "$dir"; else say "files kept in $dir"; fi
  say "took $(elapsed "$started")s"
  exit $rc
}

start_cluster() {
  dir=$(mktemp -d "${TMPDIR:-/tmp}/tierflow-$1.XXXXXX")
  chmod 755 "$dir"
  cluster=$dir/${2:-cluster}
  cluster=${cluster%/.}
  trap cleanup EXIT
  bash "$slurm_sh" start "$cluster" >/dev/null || fail "slurm.sh start"
  eval "$(bash "$slurm_sh" env "$cluster")"
  ctld_log=$cluster/log/slurmctld.log
}

wait_for() {
  local what=$1 deadline=$((SECONDS + limit))
  shift
  until "$@"; do
    [ $SECONDS -lt $deadline ] ||
      fail "$what: not after ${limit}s; squeue: $(squeue 2>&1); sinfo: $(sinfo -N 2>&1)"
    sleep 0.1
  done
}
sql() { sqlite3 -cmd ".timeout 5000" "$1/.tierflow/tierflow.db" "$2"; }
run_id() { sql "$1" "SELECT id FROM runs ORDER BY rowid DESC LIMIT 1"; }
no_job_of() { [ -z "$(squeue --noheader --name="tierflow-$1" --format=%i)" ]; }
submissions() { grep -c _slurm_rpc_submit_batch_job "$ctld_log" || true; }
# Every task of the store in DIR has exactly one succeeded attempt.
one_success_each() {
  local bad
  bad=$(sql "$1" "SELECT t.id, count(a.id) FROM tasks t LEFT JOIN attempts a ON a.run_id = t.run_id
                  AND a.task_id = t.id AND a.state = 'succeeded' GROUP BY t.id HAVING count(a.id) != 1")
  [ -z "$bad" ] || fail "tasks without exactly one succeeded attempt: $bad"
}
# No attempt of RUN went to sbatch twice, and every attempt went with the
# handle recorded for it (the executor's submissions.log against the store).
no_double_submission() { # DIR RUN
  local log=$1/.tierflow/runs/$2/slurm/submissions.log
  [ "$(cut -d' ' -f1 "$log" | sort | uniq -d)" = "" ] || fail "an attempt submitted twice: $(cat "$log")"
  [ "$(sort "$log")" = "$(sql "$1" "SELECT id || ' ' || handle FROM attempts ORDER BY id" | sort)" ] ||
    fail "submissions $(cat "$log") differ from attempts $(sql "$1" "SELECT id, handle FROM attempts")"
}
