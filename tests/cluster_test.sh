#!/usr/bin/env bash
# Cluster mode end to end with real processes on loopback (CTest:
# cluster_test): `tierflow server`, two `tierflow worker`s, `tierflow
# submit --wait`.
#  1. The quickstart runs on both workers; every task succeeds exactly once;
#     `status`, `logs`, `lineage` and `workers` work through the server; a
#     task goes to the worker holding its input, and the reason is recorded.
#  2. A worker is killed -9 in the middle of a task: the task runs again on
#     the other worker (its attempt recorded lost, not failed) and the run
#     succeeds.
#  3. The server is killed -9 while a task runs, and started again on the
#     same port: the worker reconnects, the run resumes from the store, and
#     every task succeeds exactly once (the interrupted one ran twice).
#  4. A worker frozen with SIGSTOP (connected but silent) is lost after
#     --worker-timeout; its task runs again on the other worker.
#  5. Resource fit: a stage's gpus, memory and labels decide which worker
#     runs it; a task no worker can fit waits.
#  6. Priority: with one slot busy, a later run of higher priority goes
#     before the rest of an earlier one; equal priorities go in order.
#  7. TLS (a certificate made here with openssl): a plaintext client is
#     refused, one with TIERFLOW_TLS_CA runs; `tierflow cancel --scheduler`
#     cancels a running run through the server.
#  8. Tokens: a server with tokens refuses a client without one and with a
#     wrong one, and a worker with a wrong one; one listening beyond
#     loopback without tokens refuses to start.
#  9. Node tiers: a reader's input is copied onto its worker's own node
#     tier before it starts (and it reads the real data there); the next
#     reader goes to that worker for it, with the reason recorded; the copy
#     is recorded once, with its worker, and evicted (deleted) after.
# 10. Checkpoints on node tiers: a task writes them on its worker's node
#     tier; the worker copies each committed one to the cluster folder,
#     the server flushes it to the durable tier and keeps the last 2; a
#     retry starts with the newest put back on its own node tier.
#
# Usage: cluster_test.sh TIERFLOW_BIN
set -euo pipefail
tierflow="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/tierflow-cluster.XXXXXX")"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT; [ -n "${KEEP_WORK:-}" ] && trap - EXIT
fail() { echo "cluster_test: FAIL: $*" >&2; exit 1; }
sql() { python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); [print("|".join(map(str,r))) for r in c.execute(sys.argv[2])]' "$1" "$2"; }

# start_server NAME [ARGS...]: starts a server on a free port; sets $addr.
start_server() {
  local name=$1
  shift
  "$tierflow" server --listen 127.0.0.1:0 --db "$work/$name/tierflow.db" "$@" \
    >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  eval "pid_$name=$!"
  for _ in $(seq 100); do
    addr=$(sed -n 's/^listening on //p' "$work/$name.out" 2>/dev/null || true)
    [ -n "$addr" ] && return 0
    sleep 0.1
  done
  fail "server $name did not start: $(cat "$work/$name.err")"
}
start_worker() {  # NAME ARGS...
  local name=$1
  shift
  "$tierflow" worker --name "$name" "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  eval "pid_$name=$!"
}

echo "== 1. the quickstart on two workers"
start_server s1 --http-listen 127.0.0.1:0
start_worker w1 --scheduler "$addr" --slots 1
start_worker w2 --scheduler "$addr" --slots 1
"$tierflow" submit "$here/examples/quickstart/pipeline.yaml" --scheduler "$addr" --wait \
  >"$work/submit1.out" 2>&1 || fail "run 1: $(cat "$work/submit1.out")"
db="$work/s1/tierflow.db"
run1=$(sql "$db" "SELECT id FROM runs")
[ "$(sql "$db" "SELECT state FROM runs")" = succeeded ] || fail "run 1 not succeeded"
[ "$(sql "$db" "SELECT count(*) FROM tasks WHERE state='succeeded'")" = 9 ] || fail "run 1: not 9 tasks succeeded"
[ "$(sql "$db" "SELECT count(*) FROM (SELECT task_id FROM attempts WHERE state='succeeded' GROUP BY task_id HAVING count(*)=1)")" = 9 ] ||
  fail "run 1: not exactly one succeeded attempt per task"
[ "$(sql "$db" "SELECT group_concat(DISTINCT worker) FROM (SELECT worker FROM attempts ORDER BY worker)")" = "w1,w2" ] ||
  fail "run 1 should use both workers: $(sql "$db" "SELECT task_id, worker FROM attempts")"
"$tierflow" status "$run1" --scheduler "$addr" | grep -q "^  publish  *succeeded  on w[12]" ||
  fail "status: $("$tierflow" status "$run1" --scheduler "$addr")"
# submit --wait watched the run (WatchRun): a line per task as it ended.
[ "$(grep -cE '^  [^ ]+ succeeded on w[12]$' "$work/submit1.out")" = 9 ] ||
  fail "submit --wait should print each task's end: $(cat "$work/submit1.out")"
"$tierflow" runs --scheduler "$addr" >"$work/runs.out" || fail "runs --scheduler"
grep -qE "^$run1 +quickstart +succeeded$" "$work/runs.out" || fail "runs: $(cat "$work/runs.out")"
# logs, lineage and workers through the server: what the local commands
# print from the same database.
"$tierflow" logs "$run1" train --scheduler "$addr" >"$work/logs.remote" 2>&1 || fail "remote logs: $(cat "$work/logs.remote")"
"$tierflow" logs "$run1" train --db "$db" >"$work/logs.local" 2>&1 || fail "local logs"
[ -s "$work/logs.remote" ] && cmp -s "$work/logs.remote" "$work/logs.local" ||
  fail "remote logs differ: $(diff "$work/logs.remote" "$work/logs.local" | head)"
"$tierflow" lineage "$run1/publish/release" --upstream --scheduler "$addr" --output json >"$work/lineage.remote" ||
  fail "remote lineage"
"$tierflow" lineage "$run1/publish/release" --upstream --db "$db" --output json >"$work/lineage.local"
cmp -s "$work/lineage.remote" "$work/lineage.local" || fail "remote lineage differs"
grep -q '"ingest\[0\]"' "$work/lineage.remote" || fail "lineage of the release does not reach ingest: $(head -c 300 "$work/lineage.remote")"
"$tierflow" lineage nosuchrun --scheduler "$addr" >"$work/lineage.bad" 2>&1 && fail "lineage of an unknown run succeeded"
grep -q "nosuchrun" "$work/lineage.bad" || fail "unknown run: $(cat "$work/lineage.bad")"
TIERFLOW_SCHEDULER="$addr" "$tierflow" logs "$run1" train >"$work/logs.env" 2>&1 || fail "logs with TIERFLOW_SCHEDULER"
cmp -s "$work/logs.env" "$work/logs.local" || fail "logs with TIERFLOW_SCHEDULER differ"
"$tierflow" tiers list --scheduler "$addr" --output json >"$work/tiers.json" || fail "tiers list --scheduler"
python3 - "$work/tiers.json" "$work/s1" <<'PY' || fail "the server's tiers: $(cat "$work/tiers.json")"
import json, sys
tiers = json.load(open(sys.argv[1]))
assert [t["name"] for t in tiers] == ["ram", "local", "bulk"], tiers
assert tiers[1]["location"] == sys.argv[2] + "/tiers/local", tiers[1]
PY
"$tierflow" workers --scheduler "$addr" >"$work/workers.out" || fail "workers"
[ "$(awk 'NR > 1 {print $1}' "$work/workers.out" | sort | tr '\n' ' ')" = "w1 w2 " ] ||
  fail "workers: $(cat "$work/workers.out")"
# The server's HTTP side (--http-listen): the same runs and its live
# workers as JSON, and /metrics with what its engines recorded, which
# promtool accepts.
web=$(sed -n 's|^serving the UI on \(http://[^ ]*\)/$|\1|p' "$work/s1.out")
[ -n "$web" ] || fail "the server did not say where it serves the UI: $(cat "$work/s1.out")"
curl -sf "$web/api/v1/runs" | grep -q "\"$run1\"" || fail "GET /api/v1/runs: $(curl -s "$web/api/v1/runs" | head -c 300)"
curl -sf "$web/api/v1/workers" >"$work/workers.json" || fail "GET /api/v1/workers"
python3 - "$work/workers.json" <<'PY' || fail "/api/v1/workers: $(cat "$work/workers.json")"
import json, sys
workers = json.load(open(sys.argv[1]))
workers = workers.get("workers", workers) if isinstance(workers, dict) else workers
assert sorted(w["name"] for w in workers) == ["w1", "w2"], workers
PY
curl -sf "$web/metrics" >"$work/metrics.txt" || fail "GET /metrics"
promtool check metrics <"$work/metrics.txt" >"$work/promtool.out" 2>&1 ||
  fail "promtool on the server's /metrics: $(cat "$work/promtool.out")"
awk '$1 == "tierflow_scheduler_loop_seconds_count" && $2 > 0 {l = 1}
     $1 == "tierflow_sqlite_commit_seconds_count" && $2 > 0 {c = 1} END {exit !(l && c)}' \
  "$work/metrics.txt" || fail "the engines' loop and commit times are not in /metrics: $(grep -E 'loop|commit' "$work/metrics.txt")"

# Locality: `use` reads what `make` wrote. `short` goes first (as long a
# chain as make's, and first in the file), so to w1, the first of two free
# workers; `make` to w2. When `use` is ready both are free again: without
# locality it would go to w1, with it to w2, where its input is, saying why.
cat >"$work/local.yaml" <<'YAML'
name: locality
stages:
  short:
    run: 'sleep 0.2'
  after_short:
    needs: [short]
    run: 'true'
  make:
    run: 'sleep 1; echo data > "$TIERFLOW_OUTPUT_OUT"'
    outputs: [out]
  use:
    inputs: {in: make.out}
    run: 'cat "$TIERFLOW_INPUT_IN" > "$TIERFLOW_OUTPUT_COPY"'
    outputs: [copy]
YAML
"$tierflow" submit "$work/local.yaml" --scheduler "$addr" --wait >"$work/local.out" 2>&1 ||
  fail "locality run: $(cat "$work/local.out")"
maker=$(sql "$db" "SELECT worker FROM attempts WHERE task_id='make'")
shorter=$(sql "$db" "SELECT worker FROM attempts WHERE task_id='short'")
[ "$shorter" = w1 ] && [ "$maker" = w2 ] || fail "short ran on $shorter, make on $maker (expected w1, w2)"
[ "$(sql "$db" "SELECT worker FROM attempts WHERE task_id='use'")" = "$maker" ] ||
  fail "use did not run where its input is ($maker): $(sql "$db" "SELECT task_id, worker FROM attempts WHERE run_id LIKE 'locality-%'")"
[ "$(sql "$db" "SELECT message FROM events WHERE kind='placed' AND task_id='use'")" = "leased to $maker, which produced 1 of its 1 inputs" ] ||
  fail "use's placement reason: $(sql "$db" "SELECT message FROM events WHERE kind='placed' AND task_id='use'")"

echo "== 2. a worker killed -9 in the middle of a task"
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
"$tierflow" submit "$work/hold.yaml" --scheduler "$addr" --wait >"$work/submit2.out" 2>&1 &
submit=$!
pids+=($submit)
for _ in $(seq 200); do
  holder=$(sql "$db" "SELECT worker FROM attempts WHERE task_id='hold' AND state='running' AND worker != ''")
  [ -n "$holder" ] && break
  sleep 0.1
done
[ -n "$holder" ] || fail "the hold task never started on a worker"
eval "kill -9 \$pid_$holder"
wait "$submit" || fail "run 2: $(cat "$work/submit2.out")"
run2=$(sql "$db" "SELECT id FROM runs WHERE pipeline_name='hold'")
[ "$(sql "$db" "SELECT state FROM runs WHERE id='$run2'")" = succeeded ] || fail "run 2 not succeeded"
attempts=$(sql "$db" "SELECT group_concat(state || '@' || worker, ' ') FROM (SELECT * FROM attempts WHERE run_id='$run2' AND task_id='hold' ORDER BY number)")
other=$([ "$holder" = w1 ] && echo w2 || echo w1)
[ "$attempts" = "lost@$holder succeeded@$other" ] || fail "hold's attempts: $attempts"
[ "$(cat "$work/attempts.txt")" = "$(printf '1\n2')" ] ||
  fail "hold should have started twice: $(cat "$work/attempts.txt")"
# The lost attempt's command outlived its worker (a task runs in its own
# process group). A worker started again under the same name kills it.
lost_pid=$(sql "$db" "SELECT pid FROM attempts WHERE run_id='$run2' AND state='lost'")
[ -n "$lost_pid" ] && kill -0 "$lost_pid" 2>/dev/null || fail "the lost attempt's process ($lost_pid) is not running"
start_worker "$holder" --scheduler "$addr" --slots 1
# (It kills, then says so: wait for both.)
for _ in $(seq 100); do
  ! kill -0 "$lost_pid" 2>/dev/null &&
    grep -q "killed 1 task(s) an earlier worker of this name left running" "$work/$holder.log" &&
    break
  sleep 0.1
done
if kill -0 "$lost_pid" 2>/dev/null; then
  kill -9 -- "-$lost_pid" 2>/dev/null
  fail "the restarted worker $holder left its predecessor's task running"
fi
grep -q "killed 1 task(s) an earlier worker of this name left running" "$work/$holder.log" ||
  fail "restarted worker: $(cat "$work/$holder.log")"
eval "kill -TERM \$pid_$holder"
eval "wait \$pid_$holder" || fail "worker $holder did not stop cleanly"

# SIGTERM stops the surviving worker and the server cleanly (exit 0; under
# ASan, no leak either).
eval "kill -TERM \$pid_$other"
eval "wait \$pid_$other" || fail "worker $other did not stop cleanly on SIGTERM: $(cat "$work/$other.log")"
kill -TERM "$pid_s1"
wait "$pid_s1" || fail "server s1 did not stop cleanly on SIGTERM: $(cat "$work/s1.err")"

echo "== 3. the server killed -9 mid-run, then restarted on its port"
cat >"$work/chain.yaml" <<'YAML'
name: chain
stages:
  a:
    run: 'echo a >> journal.txt; sleep 0.5; echo a > "$TIERFLOW_OUTPUT_OUT"'
    outputs: [out]
  b:
    inputs: {in: a.out}
    run: 'echo b >> journal.txt; sleep 2; cat "$TIERFLOW_INPUT_IN" > "$TIERFLOW_OUTPUT_OUT"'
    outputs: [out]
  c:
    inputs: {in: b.out}
    run: 'echo c >> journal.txt; cat "$TIERFLOW_INPUT_IN" > "$TIERFLOW_OUTPUT_OUT"'
    outputs: [out]
YAML
start_server s4
port=${addr##*:}
start_worker w3 --scheduler "$addr" --slots 1
"$tierflow" submit "$work/chain.yaml" --scheduler "$addr" >"$work/submit3.out" 2>&1 ||
  fail "submit 3: $(cat "$work/submit3.out")"
db4="$work/s4/tierflow.db"
for _ in $(seq 200); do
  [ "$(sql "$db4" "SELECT count(*) FROM attempts WHERE task_id='b' AND state='running' AND worker='w3'")" = 1 ] && break
  sleep 0.1
done
[ "$(sql "$db4" "SELECT state FROM tasks WHERE id='b'")" = running ] || fail "b never ran"
kill -9 "$pid_s4"
wait "$pid_s4" 2>/dev/null || true
"$tierflow" server --listen "127.0.0.1:$port" --db "$db4" >"$work/s4b.out" 2>"$work/s4b.err" &
pids+=($!)
pid_s4b=$!
for _ in $(seq 300); do
  [ "$(sql "$db4" "SELECT state FROM runs")" = succeeded ] && break
  sleep 0.1
done
[ "$(sql "$db4" "SELECT state FROM runs")" = succeeded ] ||
  fail "the run did not finish after the restart: $(cat "$work/s4b.out" "$work/s4b.err"; sql "$db4" "SELECT task_id, number, state, worker FROM attempts")"
grep -q "^resumed run chain-" "$work/s4b.out" || fail "the restarted server did not say it resumed: $(cat "$work/s4b.out")"
[ "$(sql "$db4" "SELECT count(*) FROM (SELECT task_id FROM attempts WHERE state='succeeded' GROUP BY task_id HAVING count(*)=1)")" = 3 ] ||
  fail "not exactly one succeeded attempt per task: $(sql "$db4" "SELECT task_id, number, state FROM attempts")"
[ "$(sql "$db4" "SELECT group_concat(state, ',') FROM (SELECT state FROM attempts WHERE task_id='b' ORDER BY number)")" = "lost,succeeded" ] ||
  fail "b's attempts: $(sql "$db4" "SELECT number, state, message FROM attempts WHERE task_id='b'")"
[ "$(tr '\n' ' ' <"$work/journal.txt")" = "a b b c " ] || fail "journal: $(cat "$work/journal.txt")"
grep -q "reconnecting" "$work/w3.log" || fail "w3 did not reconnect: $(cat "$work/w3.log")"

echo "== 4. a frozen worker (SIGSTOP: connected, silent) is lost after the timeout"
start_server s5 --worker-timeout 2
start_worker w5 --scheduler "$addr" --slots 1
start_worker w6 --scheduler "$addr" --slots 1
db5="$work/s5/tierflow.db"
rm -f "$work/attempts.txt"
"$tierflow" submit "$work/hold.yaml" --scheduler "$addr" >"$work/submit5.out" 2>&1 ||
  fail "submit 5: $(cat "$work/submit5.out")"
holder=""
for _ in $(seq 200); do
  holder=$(sql "$db5" "SELECT worker FROM attempts WHERE task_id='hold' AND state='running' AND worker != ''")
  [ -n "$holder" ] && break
  sleep 0.1
done
[ -n "$holder" ] || fail "hold never started on w5 or w6"
eval "kill -STOP \$pid_$holder"
for _ in $(seq 300); do
  [ "$(sql "$db5" "SELECT state FROM runs")" = succeeded ] && break
  sleep 0.1
done
eval "kill -CONT \$pid_$holder"
other=$([ "$holder" = w5 ] && echo w6 || echo w5)
[ "$(sql "$db5" "SELECT group_concat(state || '@' || worker || ':' || message, ' ') FROM (SELECT * FROM attempts WHERE task_id='hold' ORDER BY number)")" = \
  "lost@$holder:worker $holder was lost (no heartbeat in 2 s); running it again succeeded@$other:" ] ||
  fail "hold's attempts: $(sql "$db5" "SELECT number, state, worker, message FROM attempts WHERE task_id='hold'")"
lost_pid=$(sql "$db5" "SELECT pid FROM attempts WHERE state='lost'")
[ -n "$lost_pid" ] && kill -9 -- "-$lost_pid" 2>/dev/null || true

echo "== 5. resource fit: a task runs only where its gpus and memory fit"
cat >"$work/fit.yaml" <<'YAML'
name: fit
stages:
  gpu:
    resources: {gpus: 1}
    run: 'echo gpu > "$TIERFLOW_OUTPUT_OUT"'
    outputs: [out]
  big:
    resources: {memory: 3GiB}
    run: 'echo big > "$TIERFLOW_OUTPUT_OUT"'
    outputs: [out]
  small:
    foreach: {range: [0, 6]}
    run: 'echo small > "$TIERFLOW_OUTPUT_OUT"'
    outputs: [out]
YAML
start_server s6
start_worker w7 --scheduler "$addr" --slots 2 --memory 1GiB
start_worker w8 --scheduler "$addr" --slots 2 --memory 4GiB --gpus 1 --label zone=b
"$tierflow" submit "$work/fit.yaml" --scheduler "$addr" --wait >"$work/submit6.out" 2>&1 ||
  fail "run 6: $(cat "$work/submit6.out")"
db6="$work/s6/tierflow.db"
[ "$(sql "$db6" "SELECT worker FROM attempts WHERE task_id='gpu'")" = w8 ] || fail "gpu ran on $(sql "$db6" "SELECT worker FROM attempts WHERE task_id='gpu'")"
[ "$(sql "$db6" "SELECT worker FROM attempts WHERE task_id='big'")" = w8 ] || fail "big ran on $(sql "$db6" "SELECT worker FROM attempts WHERE task_id='big'")"
[ "$(sql "$db6" "SELECT count(*) FROM attempts WHERE task_id LIKE 'small%' AND worker='w7'")" -ge 1 ] ||
  fail "no small task on w7: $(sql "$db6" "SELECT task_id, worker FROM attempts")"
# Labels: a stage asking for zone=b runs only on the worker labelled so.
printf 'name: zoned\nstages:\n  z:\n    foreach: {range: [0, 4]}\n    resources: {labels: {zone: b}}\n    run: "true"\n' >"$work/zoned.yaml"
"$tierflow" submit "$work/zoned.yaml" --scheduler "$addr" --wait >"$work/zoned.out" 2>&1 ||
  fail "zoned run: $(cat "$work/zoned.out")"
[ "$(sql "$db6" "SELECT group_concat(DISTINCT worker) FROM attempts WHERE task_id LIKE 'z[%'")" = w8 ] ||
  fail "zoned tasks ran on: $(sql "$db6" "SELECT task_id, worker FROM attempts WHERE task_id LIKE 'z[%'")"
# A task that fits no worker waits (queued), it does not fail.
cat >"$work/huge.yaml" <<'YAML'
name: huge
stages:
  huge:
    resources: {gpus: 8}
    run: 'true'
YAML
"$tierflow" submit "$work/huge.yaml" --scheduler "$addr" >"$work/submit7.out" 2>&1 || fail "submit 7"
sleep 1
[ "$(sql "$db6" "SELECT state FROM tasks WHERE run_id LIKE 'huge-%'")" = running ] ||
  fail "huge should wait for a worker with 8 gpus: $(sql "$db6" "SELECT state, message FROM tasks WHERE run_id LIKE 'huge-%'")"
[ "$(sql "$db6" "SELECT count(*) FROM attempts WHERE task_id='huge' AND worker != ''")" = 0 ] ||
  fail "huge was leased to a worker that cannot fit it"

echo "== 6. priority, then first come first served across runs"
cat >"$work/prio-a.yaml" <<'YAML'
name: prio-a
stages:
  a:
    foreach: {range: [1, 4]}
    run: 'echo "a$TIERFLOW_ITEM" >> order.txt; sleep 1'
YAML
printf 'name: prio-b\nstages:\n  b:\n    run: "echo b >> order.txt"\n' >"$work/prio-b.yaml"
printf 'name: prio-c\nstages:\n  c:\n    run: "echo c >> order.txt"\n' >"$work/prio-c.yaml"
rm -f "$work/order.txt"
start_server s7
start_worker w9 --scheduler "$addr" --slots 1
db7="$work/s7/tierflow.db"
"$tierflow" submit "$work/prio-a.yaml" --scheduler "$addr" >/dev/null || fail "submit prio-a"
for _ in $(seq 100); do
  [ -s "$work/order.txt" ] && break
  sleep 0.05
done
"$tierflow" submit "$work/prio-b.yaml" --scheduler "$addr" --priority 5 >/dev/null || fail "submit prio-b"
"$tierflow" submit "$work/prio-c.yaml" --scheduler "$addr" >/dev/null || fail "submit prio-c"
for _ in $(seq 200); do
  [ "$(sql "$db7" "SELECT count(*) FROM runs WHERE state='succeeded'")" = 3 ] && break
  sleep 0.1
done
[ "$(tr '\n' ' ' <"$work/order.txt")" = "a1 b a2 a3 c " ] ||
  fail "order: $(tr '\n' ' ' <"$work/order.txt") (expected a1 b a2 a3 c)"
# Priorities are kept across a server restart: queued with no worker, the
# server killed -9 and started again, then one worker takes them in order.
rm -f "$work/order.txt"
start_server s7b
port=${addr##*:}
db7b="$work/s7b/tierflow.db"
"$tierflow" submit "$work/prio-c.yaml" --scheduler "$addr" >/dev/null || fail "submit prio-c (2)"
"$tierflow" submit "$work/prio-b.yaml" --scheduler "$addr" --priority 5 >/dev/null || fail "submit prio-b (2)"
[ "$(sql "$db7b" "SELECT group_concat(pipeline_name || '=' || priority, ' ') FROM (SELECT * FROM runs ORDER BY pipeline_name)")" = "prio-b=5 prio-c=0" ] ||
  fail "priorities recorded: $(sql "$db7b" "SELECT pipeline_name, priority FROM runs")"
kill -9 "$pid_s7b"
wait "$pid_s7b" 2>/dev/null || true
"$tierflow" server --listen "127.0.0.1:$port" --db "$db7b" >"$work/s7c.out" 2>"$work/s7c.err" &
pids+=($!)
for _ in $(seq 100); do
  [ "$(grep -c '^resumed run' "$work/s7c.out")" = 2 ] && grep -q '^listening on' "$work/s7c.out" && break
  sleep 0.1
done
for _ in $(seq 100); do
  [ "$(sql "$db7b" "SELECT count(*) FROM tasks WHERE state='queued'")" = 2 ] && break
  sleep 0.1
done
start_worker w9b --scheduler "$addr" --slots 1
for _ in $(seq 200); do
  [ "$(sql "$db7b" "SELECT count(*) FROM runs WHERE state='succeeded'")" = 2 ] && break
  sleep 0.1
done
[ "$(tr '\n' ' ' <"$work/order.txt")" = "b c " ] ||
  fail "order after a restart: $(tr '\n' ' ' <"$work/order.txt") (expected b c: b has priority 5)"

echo "== 7. TLS, and cancel through the server"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/key.pem" -out "$work/cert.pem" -days 1 \
  -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null || fail "openssl req"
start_server s8 --tls-cert "$work/cert.pem" --tls-key "$work/key.pem"
TIERFLOW_TLS_CA="$work/cert.pem" start_worker w10 --scheduler "$addr" --slots 1
if timeout 30 "$tierflow" submit "$work/prio-b.yaml" --scheduler "$addr" >"$work/plain.out" 2>&1; then
  fail "a plaintext client reached a TLS server"
fi
TIERFLOW_TLS_CA="$work/cert.pem" "$tierflow" submit "$work/prio-b.yaml" --scheduler "$addr" --wait \
  >"$work/tls.out" 2>&1 || fail "submit over TLS: $(cat "$work/tls.out")"
grep -q "^  b  *succeeded  on w10" "$work/tls.out" || fail "over TLS: $(cat "$work/tls.out")"
rm -f "$work/attempts.txt"
run8=$(TIERFLOW_TLS_CA="$work/cert.pem" "$tierflow" submit "$work/hold.yaml" --scheduler "$addr" | sed -n 's/^submitted run \([^ ]*\).*/\1/p')
for _ in $(seq 100); do
  [ -s "$work/attempts.txt" ] && break
  sleep 0.1
done
TIERFLOW_TLS_CA="$work/cert.pem" "$tierflow" cancel "$run8" --scheduler "$addr" >"$work/cancel.out" 2>&1 ||
  fail "cancel through the server: $(cat "$work/cancel.out")"
for _ in $(seq 100); do
  [ "$(sql "$work/s8/tierflow.db" "SELECT state FROM runs WHERE id='$run8'")" = cancelled ] && break
  sleep 0.1
done
[ "$(sql "$work/s8/tierflow.db" "SELECT state FROM runs WHERE id='$run8'")" = cancelled ] ||
  fail "run $run8 not cancelled: $(cat "$work/cancel.out"; sql "$work/s8/tierflow.db" "SELECT id, state FROM tasks WHERE run_id='$run8'")"
[ "$(sql "$work/s8/tierflow.db" "SELECT state FROM tasks WHERE run_id='$run8' AND id='hold'")" = cancelled ] ||
  fail "hold not cancelled"

echo "== 8. tokens"
TIERFLOW_CLIENT_TOKEN=client-secret TIERFLOW_WORKER_TOKEN=worker-secret start_server s2
if "$tierflow" submit "$work/hold.yaml" --scheduler "$addr" >"$work/notoken.out" 2>&1; then
  fail "a submit without a token was accepted"
fi
grep -q "requires a client token" "$work/notoken.out" || fail "no token: $(cat "$work/notoken.out")"
if TIERFLOW_TOKEN=nope "$tierflow" submit "$work/hold.yaml" --scheduler "$addr" >"$work/badtoken.out" 2>&1; then
  fail "a submit with a wrong token was accepted"
fi
grep -q "wrong client token" "$work/badtoken.out" || fail "wrong token: $(cat "$work/badtoken.out")"
if TIERFLOW_WORKER_TOKEN=nope timeout 20 "$tierflow" worker --scheduler "$addr" >"$work/badworker.out" 2>&1; then
  fail "a worker with a wrong token was accepted"
fi
grep -q "wrong worker token" "$work/badworker.out" || fail "wrong worker token: $(cat "$work/badworker.out")"
[ "$(sql "$work/s2/tierflow.db" "SELECT count(*) FROM runs" 2>/dev/null || echo 0)" = 0 ] ||
  fail "a refused submit started a run"
if "$tierflow" server --listen 0.0.0.0:0 --db "$work/s3/tierflow.db" >"$work/open.out" 2>&1; then
  fail "a server beyond loopback without tokens started"
fi
grep -q "reaches beyond loopback: set both TIERFLOW_CLIENT_TOKEN and TIERFLOW_WORKER_TOKEN" "$work/open.out" ||
  fail "open server: $(cat "$work/open.out")"
if "$tierflow" server --listen 127.0.0.1:0 --http-listen 0.0.0.0:0 --db "$work/s3/tierflow.db" >"$work/openweb.out" 2>&1; then
  fail "a server whose HTTP side reaches beyond loopback without a token started"
fi
grep -q "^tierflow: --http-listen 0.0.0.0:0 reaches beyond loopback: set TIERFLOW_CLIENT_TOKEN" "$work/openweb.out" ||
  fail "open HTTP side: $(cat "$work/openweb.out")"
grep -q "^listening on" "$work/openweb.out" && fail "it listened before refusing: $(cat "$work/openweb.out")"
echo "== 9. node tiers: inputs copied onto the worker's own tier, kept for the next reader there, evicted after"
mkdir -p "$work/s9"
cat >"$work/s9/tiers.yaml" <<EOF
tiers:
  bulk:
    adapter: posix
    root: $work/s9/bulk
    scope: cluster
    durability: durable
    profile: {seq_read_mb_s: 50, seq_write_mb_s: 50, rand_read_iops: 100, latency_us: 20000}
  nvme:
    adapter: posix
    root: $work/s9/unused-nvme
    scope: node
    durability: node
    profile: {seq_read_mb_s: 3000, seq_write_mb_s: 2000, rand_read_iops: 200000, latency_us: 50}
EOF
cat >"$work/nodetiers.yaml" <<'EOF'
name: nodetiers
stages:
  make:
    kind: ingest
    run: head -c 300000 /dev/urandom > "$TIERFLOW_OUTPUT_DATA"
    outputs: [data]
  read1:
    kind: train
    inputs: {data: make.data}
    run: 'printf "%s %s\n" "$TIERFLOW_INPUT_DATA" "$(cksum < "$TIERFLOW_INPUT_DATA")" > "$TIERFLOW_OUTPUT_SEEN"'
    outputs: [seen]
  read2:
    kind: train
    inputs: {data: make.data, seen: read1.seen}
    run: 'printf "%s %s\n" "$TIERFLOW_INPUT_DATA" "$(cksum < "$TIERFLOW_INPUT_DATA")" > "$TIERFLOW_OUTPUT_SEEN"'
    outputs: [seen]
  shards:
    kind: stage
    run: 'mkdir -p "$TIERFLOW_OUTPUT_SET" && for i in $(seq 10 29); do echo "shard $i" > "$TIERFLOW_OUTPUT_SET/s$i"; done'
    outputs: [set]
  streamed:
    kind: train
    inputs: {set: {from: shards.set, stream: true}}
    run: |
      manifest="$TIERFLOW_STREAM_SET"
      [ -n "$manifest" ] || { echo "no manifest"; exit 4; }
      echo "$TIERFLOW_INPUT_SET present at start: $(ls "$TIERFLOW_INPUT_SET" | wc -l)" > "$TIERFLOW_OUTPUT_SEEN"
      i=0
      for f in $(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["files"]))' "$manifest"); do
        echo $i > "$manifest.tmp" && mv "$manifest.tmp" "$manifest.next"
        while [ ! -e "$TIERFLOW_INPUT_SET/$f" ]; do sleep 0.01; done
        cat "$TIERFLOW_INPUT_SET/$f" >> "$TIERFLOW_OUTPUT_SEEN"
        i=$((i + 1))
      done
    outputs: [seen]
EOF
start_server s9 --tiers "$work/s9/tiers.yaml"
start_worker w91 --scheduler "$addr" --slots 1 --tier "nvme=$work/w91-nvme"
start_worker w92 --scheduler "$addr" --slots 1 --tier "nvme=$work/w92-nvme"
"$tierflow" submit "$work/nodetiers.yaml" --scheduler "$addr" --wait >"$work/submit9.out" 2>&1 ||
  fail "run 9: $(cat "$work/submit9.out")"
db9="$work/s9/tierflow.db"
run9=$(sql "$db9" "SELECT id FROM runs")
w_read1=$(sql "$db9" "SELECT worker FROM attempts WHERE task_id='read1'")
seen1=$(cat "$work/s9/bulk/runs/$run9/artifacts/read1/seen")
seen2=$(cat "$work/s9/bulk/runs/$run9/artifacts/read2/seen")
home_sum=$(cksum <"$work/s9/bulk/runs/$run9/artifacts/make/data")
# read1 read its input on its worker's node tier, and it was the real data.
[ "$seen1" = "$work/$w_read1-nvme/runs/$run9/artifacts/make/data $home_sum" ] ||
  fail "read1 (on $w_read1) did not read make.data from its node tier: $seen1 (home: $home_sum)"
[ "$(sql "$db9" "SELECT worker FROM attempts WHERE task_id='read2'")" = "$w_read1" ] ||
  fail "read2 should go where read1 left make.data: $(sql "$db9" "SELECT task_id, worker FROM attempts")"
sql "$db9" "SELECT message FROM events WHERE kind='placed' AND task_id='read2'" | grep -q "whose node tiers hold" ||
  fail "read2's placement reason: $(sql "$db9" "SELECT task_id, message FROM events WHERE kind='placed'")"
[ "$seen2" = "$seen1" ] || fail "read2 should read the same node copy: $seen2 vs $seen1"
# One copy of make.data on the node tier (made for read1, used by read2),
# recorded with its worker, and evicted after its last reader.
copies=$(sql "$db9" "SELECT c.uri || ' ' || c.state || ' ' || c.source_tier FROM artifact_copies c JOIN artifacts a ON a.id = c.artifact_id WHERE a.task_id='make' AND c.tier='nvme'")
[ "$copies" = "$w_read1:$work/$w_read1-nvme/runs/$run9/artifacts/make/data evicted bulk" ] ||
  fail "node copies of make.data: $copies"
sql "$db9" "SELECT message FROM events WHERE kind='copied' AND task_id='read1'" | grep -q "to tier nvme on $w_read1: .* before the task started" ||
  fail "read1's copy event: $(sql "$db9" "SELECT task_id, kind, message FROM events WHERE kind LIKE 'cop%'")"
for _ in $(seq 50); do
  [ -z "$(find "$work/w91-nvme" "$work/w92-nvme" -type f 2>/dev/null)" ] && break
  sleep 0.1
done
[ -z "$(find "$work/w91-nvme" "$work/w92-nvme" -type f 2>/dev/null)" ] ||
  fail "node copies left after the run: $(find "$work/w91-nvme" "$work/w92-nvme" -type f)"
[ ! -e "$work/s9/unused-nvme/runs" ] || fail "the server wrote on the node tier's own root"
# A streamed input on a node tier: the task started once the first files
# were on its worker's tier (at most 8, the window, before it read any),
# and read all 20 from there, in order, through the manifest.
w_streamed=$(sql "$db9" "SELECT worker FROM attempts WHERE task_id='streamed'")
streamed="$work/s9/bulk/runs/$run9/artifacts/streamed/seen"
head -1 "$streamed" | grep -qE "^$work/$w_streamed-nvme/runs/$run9/artifacts/shards/set present at start: [1-8]$" ||
  fail "streamed input: $(head -1 "$streamed")"
[ "$(tail -n +2 "$streamed" | tr '\n' ' ')" = "$(for i in $(seq 10 29); do printf 'shard %s ' "$i"; done)" ] ||
  fail "streamed input read: $(tail -n +2 "$streamed" | tr '\n' ' ')"
"$tierflow" workers --scheduler "$addr" | grep -q "nvme=$work/w91-nvme" ||
  fail "workers should list node tiers: $("$tierflow" workers --scheduler "$addr")"

echo "== 10. checkpoints on the worker's node tier, relayed to the cluster folder, flushed to the durable tier"
mkdir -p "$work/s10"
cat >"$work/s10/tiers.yaml" <<EOF
tiers:
  bulk:
    adapter: posix
    root: $work/s10/bulk
    scope: cluster
    durability: durable
    profile: {seq_read_mb_s: 50, seq_write_mb_s: 50, rand_read_iops: 100, latency_us: 20000}
  scratch:
    adapter: posix
    root: $work/s10/scratch
    scope: cluster
    durability: volatile
    profile: {seq_read_mb_s: 500, seq_write_mb_s: 500, rand_read_iops: 10000, latency_us: 500}
  nvme:
    adapter: posix
    root: $work/s10/unused-nvme
    scope: node
    durability: node
    profile: {seq_read_mb_s: 3000, seq_write_mb_s: 2000, rand_read_iops: 200000, latency_us: 50}
EOF
cat >"$work/s10/train.py" <<'PY'
import os, sys, time
import tierflow_task as tf
attempt = int(os.environ["TIERFLOW_ATTEMPT"])
with open(os.environ["SIDE"] + ".attempt-%d" % attempt, "w") as f:
    f.write(tf.checkpoint_dir() + "\n")
start = 0
latest = tf.latest_checkpoint()
if latest:
    start, folder = latest
    with open(os.path.join(folder, "state.bin"), "rb") as f:
        state = f.read()
    if state != b"state %d" % start:
        sys.exit("checkpoint %s holds %r" % (folder, state))
for step in range(start + 1, 6):
    tf.save_checkpoint(step, {"state.bin": b"state %d" % step}, attempt=attempt)
    tf.wait_checkpoint()
    time.sleep(0.3)  # the worker relays it while the task runs
    if attempt == 1 and step == 3:
        sys.exit(3)
with open(os.environ["TIERFLOW_OUTPUT_MODEL"], "w") as f:
    f.write("resumed from %d\n" % start)
PY
cat >"$work/s10/pipeline.yaml" <<EOF
name: nodecheckpoints
stages:
  train:
    kind: train
    run: [python3, $work/s10/train.py]
    env: {PYTHONPATH: $here/sdk/python, SIDE: $work/s10/dir}
    checkpoints: {keep: 2}
    retries: {limit: 1, backoff: 1s}
    outputs: [model]
EOF
start_server s10 --tiers "$work/s10/tiers.yaml"
start_worker w101 --scheduler "$addr" --slots 1 --tier "nvme=$work/w101-nvme"
start_worker w102 --scheduler "$addr" --slots 1 --tier "nvme=$work/w102-nvme"
"$tierflow" submit "$work/s10/pipeline.yaml" --scheduler "$addr" --wait >"$work/submit10.out" 2>&1 ||
  fail "run 10: $(cat "$work/submit10.out")"
db10="$work/s10/tierflow.db"
run10=$(sql "$db10" "SELECT id FROM runs")
model10=$(cat "$work/s10/bulk/runs/$run10/artifacts/train/model")
[ "$model10" = "resumed from 3" ] || fail "the retry did not resume from checkpoint 3: $model10"
# Each attempt wrote its checkpoints on its own worker's node tier.
for a in 1 2; do
  w=$(sql "$db10" "SELECT worker FROM attempts WHERE task_id='train' AND number=$a")
  [ "$(cat "$work/s10/dir.attempt-$a")" = "$work/$w-nvme/runs/$run10/checkpoints/train" ] ||
    fail "attempt $a (on $w) wrote its checkpoints in $(cat "$work/s10/dir.attempt-$a")"
done
sql "$db10" "SELECT message FROM events WHERE kind='checkpoint_dir' ORDER BY id" >"$work/s10/events"
[ "$(grep -c "node tier nvme .*copied to tier scratch, then flushed to tier bulk" "$work/s10/events")" = 2 ] ||
  fail "checkpoint_dir events: $(cat "$work/s10/events")"
grep -q "checkpoint step-00000003 put back there first" "$work/s10/events" ||
  fail "the retry's node tier was not given checkpoint 3: $(cat "$work/s10/events")"
# Every checkpoint flushed to bulk, the last 2 kept there with their bytes.
states=$(sql "$db10" "SELECT group_concat(step || ':' || tier || ':' || state, ' ') FROM (SELECT * FROM checkpoints ORDER BY step)")
[ "$states" = "1:bulk:deleted 2:bulk:deleted 3:bulk:deleted 4:bulk:present 5:bulk:present" ] ||
  fail "checkpoints: $(sql "$db10" "SELECT step, attempt_id, tier, state, uri FROM checkpoints")"
for step in 4 5; do
  [ "$(cat "$work/s10/bulk/runs/$run10/checkpoints/train/step-0000000$step/state.bin")" = "state $step" ] ||
    fail "checkpoint $step is not on bulk"
done
[ ! -e "$work/s10/bulk/runs/$run10/checkpoints/train/step-00000003" ] || fail "keep 2 left checkpoint 3 on bulk"
[ -z "$(find "$work/w101-nvme" "$work/w102-nvme" -type f 2>/dev/null)" ] ||
  fail "checkpoints left on the node tiers: $(find "$work/w101-nvme" "$work/w102-nvme" -type f)"

echo "cluster_test: OK ($run1 on w1 and w2; $run2 survived losing $holder; the chain survived its server)"
