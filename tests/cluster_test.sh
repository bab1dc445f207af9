#!/usr/bin/env bash
# Cluster mode end to end with real processes on loopback: `tierflow
# server`, `tierflow worker`s, `tierflow submit --wait`. One section per
# call (CTest runs each as cluster_test_SECTION, with its own time limit);
# each starts its own servers and workers in a folder of its own
# (tests/cluster_lib.sh), and every wait fails the section when it runs out.
#  quickstart        The quickstart runs on two workers; every task succeeds
#                    exactly once; `status`, `logs`, `lineage`, `workers`,
#                    the HTTP side and /metrics work through the server; a
#                    task goes to the worker holding its input, saying why.
#  worker_lost       A worker is killed -9 in the middle of a task: the task
#                    runs again on the other worker (its attempt recorded
#                    lost, not failed) and the run succeeds; a worker started
#                    again under that name kills the task it left.
#  server_restart    The server is killed -9 while a task runs and started
#                    again on its port: the worker reconnects, the run
#                    resumes, every task succeeds exactly once.
#  frozen_worker     A worker frozen with SIGSTOP is lost after
#                    --worker-timeout; its task runs again on the other.
#  resource_fit      A stage's gpus, memory and labels decide which worker
#                    runs it; a task no worker can fit waits.
#  priority          With one slot busy, a later run of higher priority goes
#                    before the rest of an earlier one; equal priorities go
#                    in order.
#  priority_restart  Two runs queued with no worker, the server killed -9 and
#                    started again: both are resumed, and one 1-slot worker
#                    runs them in priority order to the end (this hung: the
#                    run resumed first never saw its task end).
#  tls_cancel        TLS: a plaintext client is refused, one with
#                    TIERFLOW_TLS_CA runs; `cancel --scheduler` cancels.
#  tokens            Client and worker tokens; no open listener without them.
#  node_tiers        Inputs copied onto a worker's node tier, kept for the
#                    next reader there, evicted after; streamed inputs.
#  node_checkpoints  Checkpoints on node tiers, relayed and flushed; a retry
#                    starts from the newest.
#  db_locked         Another process holds the store's write lock: a wait
#                    past the busy timeout is ridden out (event
#                    database_busy); one past the retry budget stops the
#                    run's engine, which cancels only its own attempts, and
#                    `submit --wait` says why and exits non-zero; another run
#                    on the same worker goes on untouched; the server
#                    resumes the run once the store is free, and it ends.
#  db_locked_embedded The same for `tierflow run`: it says why, exits
#                    non-zero, `runs` shows the engine gone, `resume` ends it.
#  undriven          A run left `running` with no engine (its `tierflow run`
#                    killed -9) is found by the server within seconds and
#                    resumed, and why is recorded.
#
# Usage: cluster_test.sh TIERFLOW_BIN SECTION|all
tierflow="$1"
section="${2:?usage: cluster_test.sh TIERFLOW_BIN SECTION}"
source "$(dirname "${BASH_SOURCE[0]}")/cluster_lib.sh"
section_quickstart() {
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
grep -qE "^$run1 +quickstart +succeeded +9/9 +0 " "$work/runs.out" || fail "runs: $(cat "$work/runs.out")"
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
}

section_worker_lost() {
start_server s1
start_worker wl1 --scheduler "$addr" --slots 1
start_worker wl2 --scheduler "$addr" --slots 1
db="$work/s1/tierflow.db"
write_hold_yaml
"$tierflow" submit "$work/hold.yaml" --scheduler "$addr" --wait >"$work/submit2.out" 2>&1 &
submit=$!
pids+=($submit)
wait_for 20 "the hold task running on a worker" running_on "$db" hold
holder=$(running_on "$db" hold)
eval "kill -9 \$pid_$holder"
wait_exit 40 "submit --wait of the run that lost a worker" "$submit" || fail "run 2: $(cat "$work/submit2.out")"
run2=$(sql "$db" "SELECT id FROM runs WHERE pipeline_name='hold'")
[ "$(sql "$db" "SELECT state FROM runs WHERE id='$run2'")" = succeeded ] || fail "run 2 not succeeded"
attempts=$(sql "$db" "SELECT group_concat(state || '@' || worker, ' ') FROM (SELECT * FROM attempts WHERE run_id='$run2' AND task_id='hold' ORDER BY number)")
other=$([ "$holder" = wl1 ] && echo wl2 || echo wl1)
[ "$attempts" = "lost@$holder succeeded@$other" ] || fail "hold's attempts: $attempts"
[ "$(cat "$work/attempts.txt")" = "$(printf '1\n2')" ] ||
  fail "hold should have started twice: $(cat "$work/attempts.txt")"
# The lost attempt's command outlived its worker (a task runs in its own
# process group). A worker started again under the same name kills it.
lost_pid=$(sql "$db" "SELECT pid FROM attempts WHERE run_id='$run2' AND state='lost'")
[ -n "$lost_pid" ] && kill -0 "$lost_pid" 2>/dev/null || fail "the lost attempt's process ($lost_pid) is not running"
pids+=("-$lost_pid")  # its process group, should the test fail
start_worker "$holder" --scheduler "$addr" --slots 1
# (It kills, then says so: wait for both.)
wait_for 10 "the restarted worker $holder killing its predecessor's task (pid $lost_pid)" gone "$lost_pid"
wait_for_detail="cat '$work/$holder.log'" wait_for 10 "the restarted worker $holder saying it killed the task" \
  grep -q "killed 1 task(s) an earlier worker of this name left running" "$work/$holder.log"
eval "kill -TERM \$pid_$holder"
eval "wait_exit 20 'worker $holder stopping on SIGTERM' \$pid_$holder" || fail "worker $holder did not stop cleanly"

# SIGTERM stops the surviving worker and the server cleanly (exit 0; under
# ASan, no leak either).
eval "kill -TERM \$pid_$other"
eval "wait_exit 20 'worker $other stopping on SIGTERM' \$pid_$other" || fail "worker $other did not stop cleanly on SIGTERM: $(cat "$work/$other.log")"
kill -TERM "$pid_s1"
wait_exit 20 "server s1 stopping on SIGTERM" "$pid_s1" || fail "server s1 did not stop cleanly on SIGTERM: $(cat "$work/s1.err")"
}

section_server_restart() {
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
wait_for 20 "task b running on w3" sql_is "$db4" "SELECT count(*) FROM attempts WHERE task_id='b' AND state='running' AND worker='w3'" 1
kill -9 "$pid_s4"
wait "$pid_s4" 2>/dev/null || true
"$tierflow" server --listen "127.0.0.1:$port" --db "$db4" >"$work/s4b.out" 2>"$work/s4b.err" &
pids+=($!)
pid_s4b=$!
wait_for_detail="cat '$work/s4b.out' '$work/s4b.err'; sql '$db4' 'SELECT task_id, number, state, worker FROM attempts'" \
  wait_for 30 "the run finishing after the restart" sql_is "$db4" "SELECT state FROM runs" succeeded
grep -q "^resumed run chain-" "$work/s4b.out" || fail "the restarted server did not say it resumed: $(cat "$work/s4b.out")"
[ "$(sql "$db4" "SELECT count(*) FROM (SELECT task_id FROM attempts WHERE state='succeeded' GROUP BY task_id HAVING count(*)=1)")" = 3 ] ||
  fail "not exactly one succeeded attempt per task: $(sql "$db4" "SELECT task_id, number, state FROM attempts")"
[ "$(sql "$db4" "SELECT group_concat(state, ',') FROM (SELECT state FROM attempts WHERE task_id='b' ORDER BY number)")" = "lost,succeeded" ] ||
  fail "b's attempts: $(sql "$db4" "SELECT number, state, message FROM attempts WHERE task_id='b'")"
[ "$(tr '\n' ' ' <"$work/journal.txt")" = "a b b c " ] || fail "journal: $(cat "$work/journal.txt")"
grep -q "reconnecting" "$work/w3.log" || fail "w3 did not reconnect: $(cat "$work/w3.log")"
}

section_frozen_worker() {
write_hold_yaml
start_server s5 --worker-timeout 2
start_worker w5 --scheduler "$addr" --slots 1
start_worker w6 --scheduler "$addr" --slots 1
db5="$work/s5/tierflow.db"
rm -f "$work/attempts.txt"
"$tierflow" submit "$work/hold.yaml" --scheduler "$addr" >"$work/submit5.out" 2>&1 ||
  fail "submit 5: $(cat "$work/submit5.out")"
wait_for 20 "hold running on w5 or w6" running_on "$db5" hold
holder=$(running_on "$db5" hold)
eval "kill -STOP \$pid_$holder"
wait_for_detail="sql '$db5' 'SELECT number, state, worker, message FROM attempts'" \
  wait_for 30 "the run succeeding on the other worker" sql_is "$db5" "SELECT state FROM runs" succeeded
eval "kill -CONT \$pid_$holder"
other=$([ "$holder" = w5 ] && echo w6 || echo w5)
[ "$(sql "$db5" "SELECT group_concat(state || '@' || worker || ':' || message, ' ') FROM (SELECT * FROM attempts WHERE task_id='hold' ORDER BY number)")" = \
  "lost@$holder:worker $holder was lost (no heartbeat in 2 s); running it again succeeded@$other:" ] ||
  fail "hold's attempts: $(sql "$db5" "SELECT number, state, worker, message FROM attempts WHERE task_id='hold'")"
lost_pid=$(sql "$db5" "SELECT pid FROM attempts WHERE state='lost'")
[ -n "$lost_pid" ] && kill -9 -- "-$lost_pid" 2>/dev/null || true
}

section_resource_fit() {
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
}

section_priority() {
write_prio_yaml
start_server s7
start_worker w9 --scheduler "$addr" --slots 1
db7="$work/s7/tierflow.db"
"$tierflow" submit "$work/prio-a.yaml" --scheduler "$addr" >/dev/null || fail "submit prio-a"
wait_for 20 "prio-a's first task starting" test -s "$work/order.txt"
"$tierflow" submit "$work/prio-b.yaml" --scheduler "$addr" --priority 5 >/dev/null || fail "submit prio-b"
"$tierflow" submit "$work/prio-c.yaml" --scheduler "$addr" >/dev/null || fail "submit prio-c"
wait_for_detail="sql '$db7' 'SELECT id, state, message FROM runs'" \
  wait_for 30 "the three runs succeeding" sql_is "$db7" "SELECT count(*) FROM runs WHERE state='succeeded'" 3
[ "$(tr '\n' ' ' <"$work/order.txt")" = "a1 b a2 a3 c " ] ||
  fail "order: $(tr '\n' ' ' <"$work/order.txt") (expected a1 b a2 a3 c)"
}

section_priority_restart() {
write_prio_yaml
# Priorities are kept across a server restart: queued with no worker, the
# server killed -9 and started again, then one worker takes them in order.
start_server s7b
port=${addr##*:}
db7b="$work/s7b/tierflow.db"
"$tierflow" submit "$work/prio-c.yaml" --scheduler "$addr" >/dev/null || fail "submit prio-c (2)"
"$tierflow" submit "$work/prio-b.yaml" --scheduler "$addr" --priority 5 >/dev/null || fail "submit prio-b (2)"
[ "$(sql "$db7b" "SELECT group_concat(pipeline_name || '=' || priority, ' ') FROM (SELECT * FROM runs ORDER BY pipeline_name)")" = "prio-b=5 prio-c=0" ] ||
  fail "priorities recorded: $(sql "$db7b" "SELECT pipeline_name, priority FROM runs")"
kill -9 "$pid_s7b"
wait "$pid_s7b" 2>/dev/null || true
restart_server s7c "$port" "$db7b"
two_resumed() { [ "$(grep -c '^resumed run' "$work/s7c.out")" = 2 ]; }
wait_for_detail="cat '$work/s7c.out' '$work/s7c.err'" wait_for 15 "the restarted server resuming both runs" two_resumed
# Both resumed runs' tasks wait for a worker (a new attempt each, leased to
# nobody yet), so the order is the priorities', not the resumes'.
wait_for_detail="sql '$db7b' 'SELECT run_id, task_id, number, state, worker FROM attempts'" \
  wait_for 15 "both resumed runs' tasks waiting for a worker" \
  sql_is "$db7b" "SELECT count(*) FROM attempts WHERE state='running' AND worker=''" 2
start_worker w9b --scheduler "$addr" --slots 1
# Both complete: the run resumed first used to hang here once the other
# had written (its connection kept an old snapshot), its attempt `running`.
wait_for_detail="cat '$work/s7c.out' '$work/s7c.err'; sql '$db7b' 'SELECT run_id, task_id, number, state, worker FROM attempts'" \
  wait_for 30 "both resumed runs succeeding" sql_is "$db7b" "SELECT count(*) FROM runs WHERE state='succeeded'" 2
[ "$(tr '\n' ' ' <"$work/order.txt")" = "b c " ] ||
  fail "order after a restart: $(tr '\n' ' ' <"$work/order.txt") (expected b c: b has priority 5)"
[ "$(sql "$db7b" "SELECT group_concat(state, ',') FROM (SELECT state FROM attempts ORDER BY id)")" = "not_started,not_started,succeeded,succeeded" ] ||
  fail "attempts after the restart: $(sql "$db7b" "SELECT run_id, task_id, number, state, worker FROM attempts")"
}

section_tls_cancel() {
write_hold_yaml
write_prio_yaml
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
run8=$(TIERFLOW_TLS_CA="$work/cert.pem" "$tierflow" submit "$work/hold.yaml" --scheduler "$addr" | sed -n 's/^submitted run \([^ ]*\).*/\1/p')
wait_for 20 "hold starting over TLS" test -s "$work/attempts.txt"
TIERFLOW_TLS_CA="$work/cert.pem" "$tierflow" cancel "$run8" --scheduler "$addr" >"$work/cancel.out" 2>&1 ||
  fail "cancel through the server: $(cat "$work/cancel.out")"
wait_for_detail="cat '$work/cancel.out'; sql '$work/s8/tierflow.db' \"SELECT id, state FROM tasks WHERE run_id='$run8'\"" \
  wait_for 20 "run $run8 cancelled" sql_is "$work/s8/tierflow.db" "SELECT state FROM runs WHERE id='$run8'" cancelled
[ "$(sql "$work/s8/tierflow.db" "SELECT state FROM tasks WHERE run_id='$run8' AND id='hold'")" = cancelled ] ||
  fail "hold not cancelled"
}

section_tokens() {
write_hold_yaml
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
if grep -q "^listening on" "$work/openweb.out"; then
  fail "it listened before refusing: $(cat "$work/openweb.out")"
fi
}

section_node_tiers() {
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
no_node_files() { [ -z "$(find "$work/w91-nvme" "$work/w92-nvme" -type f 2>/dev/null)" ]; }
wait_for_detail="find '$work/w91-nvme' '$work/w92-nvme' -type f" wait_for 10 "the node copies evicted after the run" no_node_files
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
}

section_node_checkpoints() {
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
}

section_db_locked() {
  write_tiers "$work/tiers.yaml"
  # A 6 s retry budget: each try waits the busy timeout, 3 s.
  TIERFLOW_DB_RETRY_SECONDS=6 start_server s --tiers "$work/tiers.yaml"
  local db="$work/s/tierflow.db"
  start_worker w --scheduler "$addr" --slots 3 --cpus 3

  # A lock held 5 s, past the busy timeout but within the budget: the
  # engine waits it out and says so. (Tasks wait for the file `go`, made
  # once the lock is held, so they end while it is.)
  printf 'name: ride\nstages:\n  first:\n    run: "until [ -e go ]; do sleep 0.1; done"\n  second:\n    needs: [first]\n    run: "true"\n' >"$work/ride.yaml"
  "$tierflow" submit "$work/ride.yaml" --scheduler "$addr" --wait >"$work/ride.out" 2>&1 &
  local ride=$!
  pids+=($ride)
  wait_for 20 "ride's first task running on w" running_on "$db" first
  hold_lock "$db" 5
  touch "$work/go"  # first ends while the lock is held
  wait_exit 40 "submit --wait of the run that rode out the lock" "$ride" || fail "ride: $(cat "$work/ride.out")"
  sql "$db" "SELECT message FROM events WHERE kind='database_busy'" | grep -qE "^waited [0-9a-z]+ \([2-9] tries\) for the database's write lock, which another process held$" ||
    fail "no database_busy event: $(sql "$db" "SELECT kind, message FROM events")"
  wait_exit 10 "the lock holder ending" "$lock_pid" || fail "the lock holder failed"

  # A lock held 12 s, past the budget: run `stuck` loses its engine while
  # its task `long` runs and `quick` ends; run `other` has a task on the
  # same worker all along, which must not be touched.
  cat >"$work/stuck.yaml" <<'YAML'
name: stuck
stages:
  quick:
    run: 'until [ -e go2 ]; do sleep 0.1; done'
  next:
    needs: [quick]
    run: 'echo next >> stuck.txt'
  long:
    run: 'if [ ! -e long.first ]; then touch long.first; sleep 60; fi; echo long >> stuck.txt'
YAML
  printf 'name: other\nstages:\n  o:\n    run: "echo start >> other.txt; sleep 14; echo end >> other.txt"\n' >"$work/other.yaml"
  "$tierflow" submit "$work/other.yaml" --scheduler "$addr" --wait >"$work/other.out" 2>&1 &
  local other=$!
  pids+=($other)
  "$tierflow" submit "$work/stuck.yaml" --scheduler "$addr" --wait >"$work/stuck.out" 2>&1 &
  local stuck=$!
  pids+=($stuck)
  wait_for 20 "o running on w" running_on "$db" o
  wait_for 20 "quick running on w" running_on "$db" quick
  wait_for 20 "long running with its pid recorded" \
    sql_is "$db" "SELECT count(*) FROM attempts WHERE task_id='long' AND state='running' AND pid > 0" 1
  local long_pid o_pid run
  long_pid=$(sql "$db" "SELECT pid FROM attempts WHERE task_id='long'")
  o_pid=$(sql "$db" "SELECT pid FROM attempts WHERE task_id='o'")
  run=$(sql "$db" "SELECT id FROM runs WHERE pipeline_name='stuck'")
  pids+=("-$long_pid")
  local locked_at=$SECONDS
  hold_lock "$db" 12
  touch "$work/go2"
  # The watcher is told why, and submit --wait exits non-zero.
  if wait_exit 30 "submit --wait of the run whose engine stopped" "$stuck"; then
    fail "submit --wait succeeded though its run's engine stopped: $(cat "$work/stuck.out")"
  fi
  grep -q "the engine driving run $run stopped: .*database is locked" "$work/stuck.out" ||
    fail "submit --wait did not say why: $(cat "$work/stuck.out")"
  # Its engine stopped its own task, not the other run's.
  wait_for 15 "the stopped engine's task long (pid $long_pid) ending" gone "$long_pid"
  kill -0 "$o_pid" 2>/dev/null || fail "the other run's task (pid $o_pid) was killed: $(cat "$work/w.log")"
  [ $((SECONDS - locked_at)) -lt 12 ] || fail "the engine took longer than the lock to stop"
  grep -q "^run $run: its engine stopped: .*database is locked" "$work/s.out" ||
    fail "the server did not log the stop: $(cat "$work/s.out")"
  # `runs` says no engine drives it (the server, alive, no longer holds
  # the run's lock; between the server's tries to resume it).
  engine_gone() { "$tierflow" runs --db "$db" | grep -qE "^$run +stuck +running \(engine gone\)"; }
  wait_for_detail="'$tierflow' runs --db '$db'" wait_for 10 "runs showing run $run's engine gone" engine_gone
  # Once the store is free the server resumes the run, which ends.
  wait_exit 30 "the lock holder ending" "$lock_pid" || fail "the lock holder failed"
  wait_for_detail="cat '$work/s.out'; sql '$db' 'SELECT run_id, task_id, number, state, worker, message FROM attempts'" \
    wait_for 30 "run $run resumed and succeeded" sql_is "$db" "SELECT state FROM runs WHERE id='$run'" succeeded
  grep -q "^resumed run $run: its engine stopped: .*database is locked" "$work/s.out" ||
    fail "the server did not say why it resumed: $(cat "$work/s.out")"
  sql "$db" "SELECT message FROM events WHERE run_id='$run' AND kind='run_supervised'" |
    grep -q "^the server resumed it: its engine stopped: .*database is locked" ||
    fail "why it was resumed is not recorded: $(sql "$db" "SELECT kind, message FROM events WHERE run_id='$run'")"
  [ "$(sort "$work/stuck.txt" | tr '\n' ' ')" = "long next " ] || fail "stuck.txt: $(cat "$work/stuck.txt")"
  # The other run: one attempt, never interrupted.
  wait_exit 30 "submit --wait of the other run" "$other" || fail "the other run: $(cat "$work/other.out")"
  [ "$(tr '\n' ' ' <"$work/other.txt")" = "start end " ] || fail "other.txt: $(cat "$work/other.txt")"
  [ "$(sql "$db" "SELECT group_concat(state) FROM attempts WHERE task_id='o'")" = succeeded ] ||
    fail "o's attempts: $(sql "$db" "SELECT number, state, message FROM attempts WHERE task_id='o'")"
}

section_db_locked_embedded() {
  write_tiers "$work/tiers.yaml"
  local db="$work/state/tierflow.db"
  printf 'name: embedded\nstages:\n  quick:\n    run: "until [ -e go ]; do sleep 0.1; done"\n  next:\n    needs: [quick]\n    run: "echo next >> next.txt"\n' >"$work/embedded.yaml"
  TIERFLOW_DB_RETRY_SECONDS=2 "$tierflow" run "$work/embedded.yaml" --db "$db" --tiers "$work/tiers.yaml" \
    --progress plain >"$work/run.out" 2>&1 &
  local run_pid=$!
  pids+=($run_pid)
  wait_for 20 "quick running" sql_is "$db" "SELECT count(*) FROM attempts WHERE task_id='quick' AND state='running'" 1
  hold_lock "$db" 6
  touch "$work/go"
  if wait_exit 20 "tierflow run giving up on the locked store" "$run_pid"; then
    fail "tierflow run succeeded on a locked store: $(cat "$work/run.out")"
  fi
  local run
  run=$(sql "$db" "SELECT id FROM runs")
  grep -q "database is locked" "$work/run.out" && grep -q "tierflow resume $run" "$work/run.out" ||
    fail "tierflow run did not say why it stopped: $(cat "$work/run.out")"
  wait_exit 20 "the lock holder ending" "$lock_pid" || fail "the lock holder failed"
  "$tierflow" runs --db "$db" >"$work/runs.out" 2>&1 || fail "runs: $(cat "$work/runs.out")"
  grep -qE "^$run +embedded +running \(engine gone\)" "$work/runs.out" || fail "runs: $(cat "$work/runs.out")"
  "$tierflow" resume "$run" --db "$db" >"$work/resume.out" 2>&1 ||
    fail "resume: $(cat "$work/resume.out")"
  [ "$(sql "$db" "SELECT state FROM runs")" = succeeded ] || fail "not succeeded after resume"
  [ "$(cat "$work/next.txt")" = next ] || fail "next.txt: $(cat "$work/next.txt")"
}

section_undriven() {
  write_tiers "$work/tiers.yaml"
  start_server s --tiers "$work/tiers.yaml"
  local db="$work/s/tierflow.db"
  start_worker wu --scheduler "$addr" --slots 1
  printf 'name: left\nstages:\n  t:\n    run: "if [ ! -e t.first ]; then touch t.first; sleep 60; fi; echo t >> left.txt"\n' >"$work/left.yaml"
  # A run on the server's store whose engine dies: `tierflow run` killed -9.
  "$tierflow" run "$work/left.yaml" --db "$db" --tiers "$work/tiers.yaml" --progress plain >"$work/run.out" 2>&1 &
  local run_pid=$!
  pids+=($run_pid)
  wait_for 20 "t running with its pid recorded" \
    sql_is "$db" "SELECT count(*) FROM attempts WHERE task_id='t' AND state='running' AND pid > 0" 1
  local task_pid run
  task_pid=$(sql "$db" "SELECT pid FROM attempts WHERE task_id='t'")
  run=$(sql "$db" "SELECT id FROM runs")
  pids+=("-$task_pid")
  kill -9 "$run_pid"
  # Found within a few seconds (checks every second, two in a row), resumed
  # on the cluster, and why is recorded.
  wait_for_detail="cat '$work/s.out' '$work/s.err'" wait_for 8 "the server resuming run $run" \
    grep -q "^resumed run $run: no engine of this server drove it" "$work/s.out"
  wait_for_detail="sql '$db' 'SELECT task_id, number, state, worker, message FROM attempts'" \
    wait_for 30 "run $run succeeding on the cluster" sql_is "$db" "SELECT state FROM runs" succeeded
  [ "$(sql "$db" "SELECT group_concat(state || '@' || worker, ' ') FROM (SELECT * FROM attempts ORDER BY number)")" = "lost@local succeeded@wu" ] ||
    fail "t's attempts: $(sql "$db" "SELECT number, state, worker, message FROM attempts")"
  sql "$db" "SELECT message FROM events WHERE kind='run_supervised'" |
    grep -q "^the server resumed it: no engine of this server drove it$" ||
    fail "why it was resumed: $(sql "$db" "SELECT kind, message FROM events")"
  gone "$task_pid" || fail "the dead engine's task (pid $task_pid) is still running"
  [ "$(cat "$work/left.txt")" = t ] || fail "left.txt: $(cat "$work/left.txt")"
}

if [ "$section" = all ]; then  # every section in turn, each in a process of its own
  for name in $(declare -F | sed -n 's/^declare -f section_//p'); do
    bash "${BASH_SOURCE[0]}" "$tierflow" "$name" || fail "section $name failed"
  done
  finish_section
  exit 0
fi
declare -F "section_$section" >/dev/null ||
  fail "no section '$section'; sections: $(declare -F | sed -n 's/^declare -f section_//p' | tr '\n' ' ')"
"section_$section"
finish_section
