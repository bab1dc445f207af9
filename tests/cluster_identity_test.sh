#!/usr/bin/env bash
# Cluster mode: who may kill what, and how losses are told (CTest:
# cluster_identity_test). Real `tierflow server`s and `tierflow worker`s on
# loopback, free ports, one temporary folder; every wait fails the test
# when it runs out.
#  1. Two runs on one worker. One run's engine fails (its store write
#     cannot get the lock for longer than the busy timeout): it kills its
#     own attempts, and the other run's task on the same worker lives on
#     and succeeds. A run cancelled through the server: the same.
#  2. A worker killed -9 is reported as disconnected, not as silent; the
#     attempt records the id the server issued that worker, which names
#     the server's cluster.
#  3. The gRPC token check takes the scheme in any case: `bearer`,
#     `BEARER` (a raw gRPC call made with curl over HTTP/2).
#  4. Two clusters on one host, each with a worker named w1 sharing one
#     node tier folder and one state folder. Cluster A's w1 is killed -9
#     while its task runs, then started again: it kills exactly its
#     predecessor's orphaned task; cluster B's task lives on and succeeds,
#     and B's folder on the node tier is untouched.
#  5. `submit --wait` across a server killed -9 and started again on its
#     port: it says it lost and regained the server, and exits 0 once the
#     run succeeds.
#
# Usage: cluster_identity_test.sh TIERFLOW_BIN
set -euo pipefail
tierflow="$(realpath "$1")"
started_at=$SECONDS
work="$(mktemp -d "${TMPDIR:-/tmp}/tierflow-identity.XXXXXX")"
pids=()
groups=()  # process groups of tasks that may outlive their worker
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for group in "${groups[@]}"; do kill -9 -- "-$group" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT; [ -n "${KEEP_WORK:-}" ] && trap - EXIT
fail() { echo "cluster_identity_test: FAIL: $*" >&2; exit 1; }
sql() { python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); [print("|".join(map(str,r))) for r in c.execute(sys.argv[2])]' "$1" "$2"; }
# wait_for SECONDS WHAT CONDITION: CONDITION (shell text) is tried every
# 0.1 s; the test fails, naming WHAT, when SECONDS pass without it.
wait_for() {
  local deadline=$((SECONDS + $1)) what=$2 condition=$3
  until eval "$condition"; do
    [ "$SECONDS" -lt "$deadline" ] || fail "waited $1 s in vain for: $what"
    sleep 0.1
  done
}
alive() { kill -0 "$1" 2>/dev/null; }

# start_server NAME [ARGS...]: a server on a free port; sets $addr.
start_server() {
  local name=$1
  shift
  "$tierflow" server --listen 127.0.0.1:0 --db "$work/$name/tierflow.db" "$@" \
    >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  eval "pid_$name=$!"
  addr=""
  wait_for 20 "server $name to listen" \
    'addr=$(sed -n "s/^listening on //p" "$work/$name.out" 2>/dev/null); [ -n "$addr" ]'
}
# start_worker LABEL ARGS...: a worker started in $work/host (so its state
# folder is the default .tierflow/workers there, shared by every worker of
# this "host"); its output in $work/LABEL.log.
mkdir -p "$work/host"
start_worker() {
  local label=$1
  shift
  (cd "$work/host" && exec "$tierflow" worker "$@") >"$work/$label.log" 2>&1 &
  pids+=($!)
  eval "pid_$label=$!"
}
# A task's script: its shell's pid (its process group) in FILE, then it
# waits (at most 5 min: a guard, the test's own waits fail first) for the
# file FLAG, and fails without it.
hold_until() {  # FILE FLAG
  printf 'echo $$ > %s; i=0; while [ ! -e %s ] && [ $i -lt 3000 ]; do sleep 0.1; i=$((i+1)); done; [ -e %s ]' \
    "$1" "$2" "$2"
}

echo "== 1. one run's engine failure, or its cancel, kills none of another run's tasks"
start_server s1
db1="$work/s1/tierflow.db"
start_worker wa --scheduler "$addr" --name wa --slots 3 --cpus 8
cat >"$work/victim.yaml" <<YAML
name: victim
stages:
  b:
    run: '$(hold_until "$work/b.pid" "$work/release_b") && echo b > "\$TIERFLOW_OUTPUT_OUT"'
    outputs: [out]
YAML
cat >"$work/failing.yaml" <<YAML
name: failing
stages:
  slow:
    # Only its first attempt holds on: the server resumes this run once the
    # store is free again (its engine stopped), and that attempt must end.
    run: 'echo \$\$ > "$work/slow.pid"; if [ "\$TIERFLOW_ATTEMPT" = 1 ]; then sleep 300; fi'
  quick:
    run: '$(hold_until "$work/quick.pid" "$work/go_quick")'
YAML
"$tierflow" submit "$work/victim.yaml" --scheduler "$addr" >"$work/submit1b.out" 2>&1 ||
  fail "submit victim: $(cat "$work/submit1b.out")"
wait_for 30 "the victim's task to start" '[ -s "$work/b.pid" ]'
b_pid=$(cat "$work/b.pid")
groups+=("$b_pid")
"$tierflow" submit "$work/failing.yaml" --scheduler "$addr" >"$work/submit1a.out" 2>&1 ||
  fail "submit failing: $(cat "$work/submit1a.out")"
wait_for 30 "the failing run's tasks to start" '[ -s "$work/slow.pid" ] && [ -s "$work/quick.pid" ]'
slow_pid=$(cat "$work/slow.pid")
groups+=("$slow_pid" "$(cat "$work/quick.pid")")
# Every start recorded (the engines have nothing left to write) ...
wait_for 30 "three attempts recorded running on wa" \
  '[ "$(sql "$db1" "SELECT count(*) FROM attempts WHERE state=\"running\" AND worker=\"wa\" AND pid > 0")" = 3 ]'
# ... then the store's write lock is held, and `quick` ends: the failing
# run's engine cannot record it and gives up on the run.
python3 - "$db1" "$work/locked" "$work/unlock" >"$work/locker.out" 2>&1 <<'PY' &
import os, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
db.execute("BEGIN IMMEDIATE")
open(sys.argv[2], "w").close()
deadline = time.time() + 180
while not os.path.exists(sys.argv[3]) and time.time() < deadline:
    time.sleep(0.05)
db.execute("ROLLBACK")
PY
locker=$!
pids+=($locker)
wait_for 20 "the write lock" '[ -e "$work/locked" ]'
touch "$work/go_quick"
# The engine gives up once its store stays locked past SQLite's busy
# timeout (10 s) and whatever retries it makes; this wait bounds both.
wait_for 150 "the failing run's engine to kill its slow task (it should give up on its store)" '! alive "$slow_pid"'
alive "$b_pid" || fail "the victim run's task (pid $b_pid) was killed when the failing run's engine stopped its own"
touch "$work/unlock"
wait "$locker" || fail "the lock holder: $(cat "$work/locker.out")"
touch "$work/release_b"
wait_for 60 "the victim run to succeed" \
  '[ "$(sql "$db1" "SELECT state FROM runs WHERE pipeline_name=\"victim\"")" = succeeded ]'
[ "$(sql "$db1" "SELECT group_concat(state) FROM attempts WHERE task_id='b'")" = succeeded ] ||
  fail "the victim's task should have run once and succeeded: $(sql "$db1" "SELECT number, state, message FROM attempts WHERE task_id='b'")"

# A run cancelled through the server: only its own tasks stop.
# Its pid file is its own: the failing run, resumed by the server at about
# this time, writes slow.pid again.
rm -f "$work/b.pid" "$work/release_b"
sed 's/echo b >/echo b2 >/' "$work/victim.yaml" >"$work/victim2.yaml"  # not a cache hit
"$tierflow" submit "$work/victim2.yaml" --scheduler "$addr" >/dev/null || fail "submit victim (2)"
wait_for 30 "the second victim's task to start" '[ -s "$work/b.pid" ]'
b_pid=$(cat "$work/b.pid")
groups+=("$b_pid")
printf 'name: cancelled\nstages:\n  slow:\n    run: '"'"'echo $$ > "%s"; sleep 300'"'"'\n' "$work/cancelled.pid" >"$work/cancelled.yaml"
run_c=$("$tierflow" submit "$work/cancelled.yaml" --scheduler "$addr" | sed -n 's/^submitted run \([^ ]*\).*/\1/p')
wait_for 30 "the cancelled run's task to start" '[ -s "$work/cancelled.pid" ]'
slow_pid=$(cat "$work/cancelled.pid")
groups+=("$slow_pid")
"$tierflow" cancel "$run_c" --scheduler "$addr" >"$work/cancel.out" 2>&1 || fail "cancel: $(cat "$work/cancel.out")"
wait_for 30 "the cancelled run's task to stop" '! alive "$slow_pid"'
wait_for 30 "run $run_c to be cancelled" '[ "$(sql "$db1" "SELECT state FROM runs WHERE id=\"$run_c\"")" = cancelled ]'
alive "$b_pid" || fail "cancelling run $run_c killed another run's task (pid $b_pid)"
touch "$work/release_b"
wait_for 60 "the second victim run to succeed" \
  '[ "$(sql "$db1" "SELECT count(*) FROM runs WHERE pipeline_name=\"victim\" AND state=\"succeeded\"")" = 2 ]'

echo "== 2. a worker killed -9 is disconnected; its attempts carry the id its server issued"
start_server s2
db2="$work/s2/tierflow.db"
cat >"$work/hold.yaml" <<YAML
name: hold
stages:
  hold:
    run: 'if [ "\$TIERFLOW_ATTEMPT" = 1 ]; then echo \$\$ > "$work/hold.pid"; sleep 300; fi'
YAML
start_worker wk1 --scheduler "$addr" --name wk1 --slots 1
"$tierflow" submit "$work/hold.yaml" --scheduler "$addr" >/dev/null || fail "submit hold"
wait_for 30 "hold to start on wk1" '[ -s "$work/hold.pid" ]'
groups+=("$(cat "$work/hold.pid")")
wait_for 30 "hold's start to be recorded" '[ "$(sql "$db2" "SELECT count(*) FROM attempts WHERE worker=\"wk1\" AND pid > 0")" = 1 ]'
kill -9 "$pid_wk1"
wait "$pid_wk1" 2>/dev/null || true
start_worker wk2 --scheduler "$addr" --name wk2 --slots 1
wait_for 60 "the hold run to succeed on wk2" '[ "$(sql "$db2" "SELECT state FROM runs")" = succeeded ]'
cluster2=$(sql "$db2" "SELECT id FROM cluster")
[[ "$cluster2" =~ ^[0-9a-f]{16}$ ]] || fail "the server's cluster id: '$cluster2'"
attempts=$(sql "$db2" "SELECT group_concat(state || '|' || worker || '|' || message, '
') FROM (SELECT * FROM attempts WHERE task_id='hold' ORDER BY number)")
[ "$attempts" = "lost|wk1|worker wk1 disconnected (its connection to the server ended); running it again
succeeded|wk2|" ] || fail "hold's attempts: $attempts"
ids=$(sql "$db2" "SELECT group_concat(worker_id, ' ') FROM (SELECT worker_id FROM attempts ORDER BY number)")
[[ "$ids" =~ ^wk1@$cluster2#[0-9a-f]{8}\ wk2@$cluster2#[0-9a-f]{8}$ ]] ||
  fail "attempts' worker ids: '$ids' (cluster $cluster2)"
grep -q "connected to $addr with 1 slots (worker id wk2@$cluster2#" "$work/wk2.log" ||
  fail "wk2 did not say its id: $(cat "$work/wk2.log")"
# `show` stays readable: the worker's name, not its id.
"$tierflow" show last --db "$db2" --output json >"$work/show2.json" 2>&1 || fail "show: $(cat "$work/show2.json")"
python3 - "$work/show2.json" <<'PY' || fail "show's workers: $(cat "$work/show2.json")"
import json, sys
workers = []
def walk(node):
    if isinstance(node, dict):
        if "worker" in node:
            workers.append(node["worker"])
        for value in node.values():
            walk(value)
    elif isinstance(node, list):
        for value in node:
            walk(value)
walk(json.load(open(sys.argv[1])))
assert workers == ["wk1", "wk2"], workers
PY

echo "== 3. the bearer scheme in any case over gRPC"
TIERFLOW_CLIENT_TOKEN=client-secret TIERFLOW_WORKER_TOKEN=worker-secret start_server s3
printf '\0\0\0\0\0' >"$work/empty.grpc"  # one empty message, uncompressed
# grpc_status METHOD AUTHORIZATION: the grpc-status the server answers.
grpc_status() {
  curl -s -v --http2-prior-knowledge --max-time 10 -H 'content-type: application/grpc' -H 'te: trailers' \
    -H "authorization: $2" --data-binary @"$work/empty.grpc" "http://$addr/$1" -o /dev/null 2>&1 |
    sed -n 's/^< grpc-status: \([0-9]*\).*/\1/p' | head -1
}
for scheme in bearer BEARER Bearer; do
  got=$(grpc_status tierflow.v1.Scheduler/ListWorkers "$scheme client-secret")
  [ "$got" = 0 ] || fail "ListWorkers with '$scheme client-secret': grpc-status '$got'"
  # A worker's first message must be Register: 3 (INVALID_ARGUMENT) says the token passed.
  got=$(grpc_status tierflow.v1.Workers/Connect "$scheme worker-secret")
  [ "$got" = 3 ] || fail "Connect with '$scheme worker-secret': grpc-status '$got'"
done
got=$(grpc_status tierflow.v1.Scheduler/ListWorkers "bearer wrong")
[ "$got" = 7 ] || fail "a wrong token: grpc-status '$got' (expected 7, PERMISSION_DENIED)"
got=$(grpc_status tierflow.v1.Scheduler/ListWorkers "Basic client-secret")
[ "$got" = 16 ] || fail "another scheme: grpc-status '$got' (expected 16, UNAUTHENTICATED)"

echo "== 4. two clusters, a worker named w1 in each, on one host"
# One node tier folder for both workers (the same NVMe), as the tiers
# files say it; the copies go there before the readers start.
for c in a b; do
  mkdir -p "$work/s4$c"
  cat >"$work/s4$c/tiers.yaml" <<EOF
tiers:
  bulk:
    adapter: posix
    root: $work/s4$c/bulk
    scope: cluster
    durability: durable
    profile: {seq_read_mb_s: 50, seq_write_mb_s: 50, rand_read_iops: 100, latency_us: 20000}
  nvme:
    adapter: posix
    root: $work/s4$c/unused-nvme
    scope: node
    durability: node
    profile: {seq_read_mb_s: 3000, seq_write_mb_s: 2000, rand_read_iops: 200000, latency_us: 50}
EOF
  cat >"$work/reader$c.yaml" <<YAML
name: reader$c
stages:
  make:
    kind: ingest
    run: head -c 100000 /dev/urandom > "\$TIERFLOW_OUTPUT_DATA"
    outputs: [data]
  read:
    kind: train
    inputs: {data: make.data}
    run: 'if [ "\$TIERFLOW_ATTEMPT" = 1 ]; then $(hold_until "$work/read$c.pid" "$work/go_read_$c"); fi; cksum < "\$TIERFLOW_INPUT_DATA" > "\$TIERFLOW_OUTPUT_SUM"'
    outputs: [sum]
YAML
done
nvme="$work/host/nvme"
start_server s4a --tiers "$work/s4a/tiers.yaml"
addr_a=$addr
start_server s4b --tiers "$work/s4b/tiers.yaml"
addr_b=$addr
start_worker w1a --scheduler "$addr_a" --name w1 --slots 2 --cpus 8 --tier "nvme=$nvme"
start_worker w1b --scheduler "$addr_b" --name w1 --slots 2 --cpus 8 --tier "nvme=$nvme"
"$tierflow" submit "$work/readerb.yaml" --scheduler "$addr_b" >/dev/null || fail "submit to cluster b"
"$tierflow" submit "$work/readera.yaml" --scheduler "$addr_a" >/dev/null || fail "submit to cluster a"
wait_for 60 "both readers to start" '[ -s "$work/reada.pid" ] && [ -s "$work/readb.pid" ]'
read_a=$(cat "$work/reada.pid")
read_b=$(cat "$work/readb.pid")
groups+=("$read_a" "$read_b")
run_a=$(sql "$work/s4a/tierflow.db" "SELECT id FROM runs")
run_b=$(sql "$work/s4b/tierflow.db" "SELECT id FROM runs")
copy_b="$nvme/runs/$run_b/artifacts/make/data"
[ -f "$copy_b" ] && [ -f "$nvme/runs/$run_a/artifacts/make/data" ] ||
  fail "the readers' inputs are not on the shared node tier: $(find "$nvme" | head -20)"
sum_b=$(cksum <"$copy_b")
ls "$work/host/.tierflow/workers/" >"$work/state-files"
[ "$(grep -c '\.w1\.json$' "$work/state-files")" = 2 ] ||
  fail "each w1 should keep a state file of its own: $(cat "$work/state-files")"
wait_for 30 "a's reader start to be recorded" \
  '[ "$(sql "$work/s4a/tierflow.db" "SELECT count(*) FROM attempts WHERE task_id=\"read\" AND pid > 0")" = 1 ]'
kill -9 "$pid_w1a"
wait "$pid_w1a" 2>/dev/null || true
alive "$read_a" || fail "a's reader died with its worker (it should be orphaned, for its successor to kill)"
start_worker w1a2 --scheduler "$addr_a" --name w1 --slots 2 --cpus 8 --tier "nvme=$nvme"
wait_for 30 "the restarted w1 of cluster a to kill its predecessor's task" '! alive "$read_a"'
wait_for 10 "the restarted w1 to say so" \
  'grep -q "killed 1 task(s) an earlier worker of this name left running" "$work/w1a2.log"'
alive "$read_b" || fail "cluster b's task (pid $read_b) was killed by cluster a's restarted w1"
[ -f "$copy_b" ] && [ "$(cksum <"$copy_b")" = "$sum_b" ] ||
  fail "cluster b's copy on the node tier was touched: $(ls -la "$(dirname "$copy_b")" 2>&1)"
wait_for 60 "cluster a's run to succeed (its reader again, on the new w1)" \
  '[ "$(sql "$work/s4a/tierflow.db" "SELECT state FROM runs")" = succeeded ]'
touch "$work/go_read_b"
wait_for 60 "cluster b's run to succeed" '[ "$(sql "$work/s4b/tierflow.db" "SELECT state FROM runs")" = succeeded ]'
[ "$(sql "$work/s4b/tierflow.db" "SELECT group_concat(state) FROM attempts WHERE task_id='read'")" = succeeded ] ||
  fail "cluster b's reader should have run once: $(sql "$work/s4b/tierflow.db" "SELECT number, state, message FROM attempts WHERE task_id='read'")"
[ "$(sql "$work/s4a/tierflow.db" "SELECT group_concat(state) FROM (SELECT state FROM attempts WHERE task_id='read' ORDER BY number)")" = "lost,succeeded" ] ||
  fail "cluster a's reader: $(sql "$work/s4a/tierflow.db" "SELECT number, state, message FROM attempts WHERE task_id='read'")"
# Stopped cleanly, a worker leaves nothing: no state file, and none of its
# folders on the node tier.
for w in w1a2 w1b; do
  eval "kill -TERM \$pid_$w"
  eval "wait \$pid_$w" || fail "worker $w did not stop cleanly: $(cat "$work/$w.log")"
done
[ -z "$(ls -A "$work/host/.tierflow/workers/" | grep '\.w1\.')" ] ||
  fail "stopped workers left state files: $(ls -A "$work/host/.tierflow/workers/")"
[ -z "$(find "$nvme" -type f)" ] || fail "stopped workers left files on the node tier: $(find "$nvme" -type f)"

echo "== 5. submit --wait across a server killed -9 and started again"
start_server s5
port=${addr##*:}
db5="$work/s5/tierflow.db"
start_worker w5 --scheduler "$addr" --name w5 --slots 1
cat >"$work/steps.yaml" <<YAML
name: steps
stages:
  first:
    run: 'echo \$\$ > "$work/first.\$TIERFLOW_ATTEMPT.pid"; sleep 2'
  second:
    needs: [first]
    run: 'true'
YAML
"$tierflow" submit "$work/steps.yaml" --scheduler "$addr" --wait >"$work/wait5.out" 2>"$work/wait5.err" &
waiter=$!
pids+=($waiter)
wait_for 30 "first to start" '[ -s "$work/first.1.pid" ]'
groups+=("$(cat "$work/first.1.pid")")
kill -9 "$pid_s5"
wait "$pid_s5" 2>/dev/null || true
wait_for 20 "submit --wait to notice the server went" 'grep -q "lost the server" "$work/wait5.err"'
alive "$waiter" || fail "submit --wait gave up when the server went: $(cat "$work/wait5.err")"
sleep 1
"$tierflow" server --listen "127.0.0.1:$port" --db "$db5" >"$work/s5b.out" 2>"$work/s5b.err" &
pids+=($!)
wait_for 90 "submit --wait to end" '! alive "$waiter"'
wait "$waiter" || fail "submit --wait across a restart exited $?: $(cat "$work/wait5.out" "$work/wait5.err")"
[ "$(sql "$db5" "SELECT state FROM runs")" = succeeded ] || fail "the run did not succeed"
grep -q "^tierflow: lost the server $addr (.*); reconnecting for up to 5m$" "$work/wait5.err" ||
  fail "submit --wait did not say it lost the server: $(cat "$work/wait5.err")"
grep -q "^tierflow: reconnected to $addr; watching run steps-[0-9a-f]* again$" "$work/wait5.err" ||
  fail "submit --wait did not say it regained the server: $(cat "$work/wait5.err")"
grep -q "^run steps-[0-9a-f]* (steps): succeeded$" "$work/wait5.out" ||
  fail "submit --wait did not print the run's end: $(cat "$work/wait5.out")"

echo "cluster_identity_test: OK in $((SECONDS - started_at)) s"
