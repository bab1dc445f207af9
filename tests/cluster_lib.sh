# Helpers shared by the sections of tests/cluster_test.sh (sourced, not run).
# Each section gets a work folder of its own and starts its own servers and
# workers, so no section depends on another's state; everything it started
# is killed by PID when it exits.
#
# Expects: $tierflow (the binary), $section (the section's name).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/tierflow-cluster-$section.XXXXXX")"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
[ -n "${KEEP_WORK:-}" ] && trap - EXIT
fail() {
  echo "cluster_test $section: FAIL: $*" >&2
  exit 1
}
sql() { python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); [print("|".join(map(str,r))) for r in c.execute(sys.argv[2])]' "$1" "$2"; }

# wait_for SECONDS WHAT COMMAND...: runs COMMAND every 0.1 s until it
# succeeds; when SECONDS run out first, the test fails saying what it
# waited for (and, with $wait_for_detail set, the output of that command).
wait_for() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      fail "timed out after ${seconds} s waiting for: $what${wait_for_detail:+
$(eval "$wait_for_detail" 2>&1 | head -40)}"
    fi
    sleep 0.1
  done
}
# sql_is DB QUERY EXPECTED: the query's output is EXPECTED (for wait_for).
sql_is() { [ "$(sql "$1" "$2" 2>/dev/null)" = "$3" ]; }

# start_server NAME [ARGS...]: starts a server on a free port; sets $addr
# and pid_NAME.
start_server() {
  local name=$1
  shift
  "$tierflow" server --listen 127.0.0.1:0 --db "$work/$name/tierflow.db" "$@" \
    >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  eval "pid_$name=$!"
  local _
  for _ in $(seq 150); do
    addr=$(sed -n 's/^listening on //p' "$work/$name.out" 2>/dev/null || true)
    [ -n "$addr" ] && return 0
    sleep 0.1
  done
  fail "server $name did not start in 15 s: $(cat "$work/$name.err")"
}
# restart_server NAME PORT DB [ARGS...]: a server on a given port and store
# (one started again after a kill); waits until it listens.
restart_server() {
  local name=$1 port=$2 db=$3
  shift 3
  "$tierflow" server --listen "127.0.0.1:$port" --db "$db" "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  eval "pid_$name=$!"
  wait_for 15 "server $name listening on port $port" grep -q '^listening on' "$work/$name.out"
}
# Worker names are unique across sections (a worker kills what carries its
# name: sections run side by side must not share one).
start_worker() {  # NAME ARGS...
  local name=$1
  shift
  "$tierflow" worker --name "$name" --state-dir "$work/worker-state" "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  eval "pid_$name=$!"
}
# The worker WORKER holds a running attempt of TASK in DB (prints it).
running_on() {  # DB TASK
  sql "$1" "SELECT worker FROM attempts WHERE task_id='$2' AND state='running' AND worker != ''" | grep .
}

section_started=$SECONDS
finish_section() {
  echo "cluster_test $section: OK in $((SECONDS - section_started)) s${1:+ ($1)}"
}

# Pipelines more than one section uses.
write_hold_yaml() {  # a task whose first attempt sleeps 60 s, then its reader
  cat >"$work/hold.yaml" <<'YAML'
name: hold
stages:
  hold:
    run: 'echo "$TIERFLOW_ATTEMPT" >> attempts.txt; if [ "$TIERFLOW_ATTEMPT" = 1 ]; then sleep 60; fi; echo done > "$TIERFLOW_OUTPUT_OUT"'
    outputs: [out]
  after:
    inputs: {in: hold.out}
    run: 'cat "$TIERFLOW_INPUT_IN" > "$TIERFLOW_OUTPUT_COPY"'
    outputs: [copy]
YAML
}
write_prio_yaml() {  # prio-a (4 items of 1 s), prio-b and prio-c (one quick task)
  cat >"$work/prio-a.yaml" <<'YAML'
name: prio-a
stages:
  a:
    foreach: {range: [1, 4]}
    run: 'echo "a$TIERFLOW_ITEM" >> order.txt; sleep 1'
YAML
  printf 'name: prio-b\nstages:\n  b:\n    run: "echo b >> order.txt"\n' >"$work/prio-b.yaml"
  printf 'name: prio-c\nstages:\n  c:\n    run: "echo c >> order.txt"\n' >"$work/prio-c.yaml"
}
# The process PID has ended (a zombie nobody reaps yet counts as ended).
gone() {
  local state
  state=$(sed -n 's/^[0-9]* (.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null || true)
  [ -z "$state" ] || [ "$state" = Z ]
}
# wait_exit SECONDS WHAT PID: waits for a child PID to exit (failing the
# test when SECONDS run out first); returns its exit status.
wait_exit() {
  wait_for "$1" "$2" gone "$3"
  wait "$3"
}
# write_tiers FILE: one posix tier in the section's folder (never the
# default RAM tier).
write_tiers() {
  cat >"$1" <<TIERS
tiers:
  local:
    adapter: posix
    root: $work/tier-local
    scope: cluster
    durability: durable
    profile: {seq_read_mb_s: 500, seq_write_mb_s: 500, rand_read_iops: 10000, latency_us: 500}
TIERS
}
# hold_lock DB SECONDS: another process (python's sqlite3) takes the
# store's write lock (BEGIN IMMEDIATE) and holds it for SECONDS; returns
# once it holds it. Sets $lock_pid.
hold_lock() {
  rm -f "$work/lock.state"
  python3 - "$1" "$2" "$work/lock.state" <<'PY' &
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
c.execute("BEGIN IMMEDIATE")
open(sys.argv[3], "w").write("held\n")
time.sleep(float(sys.argv[2]))
c.execute("ROLLBACK")
open(sys.argv[3], "w").write("released\n")
PY
  lock_pid=$!
  pids+=($lock_pid)
  wait_for 30 "another process holding the write lock of $1" grep -q held "$work/lock.state"
}
