#!/usr/bin/env bash
# `tierflow run` with an s3 tier under faults (CTest: s3_faults, with the
# `swift` fixture). The bulk tier points at tests/s3_fault_proxy.py, started
# here in front of the real Swift, with short timeouts and retries set in
# tiers.yaml. Checks, through the real binary and its state database:
#   1. a tier that cannot be reached (wrong secret, missing bucket) fails
#      the run's start naming tier, endpoint, bucket and the S3 error, and
#      no run or task is recorded;
#   2. 5xx replies to uploads are retried: the run succeeds and each retry
#      is a transfer_retry event naming the tier;
#   3. a cached output restored from the bucket through a proxy that flips
#      a byte of every GET is caught (expected and actual hash), the task
#      runs instead;
#   4. a restore that fails on S3 (503 until the budget runs out) reports
#      the S3 error, not a missing staging path;
#   5. tierflow killed (-9) in the middle of a multipart write-back leaves
#      an unfinished upload, which `tierflow resume` finds and aborts;
#   6. in a `tierflow server`, retried requests count in /metrics as
#      tierflow_storage_retries_total{tier="bulk"}.
# Prints its elapsed time.
#
# Usage: s3_faults.sh TIERFLOW_BIN SWIFT_DIR
set -euo pipefail
tierflow="$1"
swift_dir="$2"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/tierflow-s3-faults.XXXXXX")"
proxy_pid=
cleanup() {
  if [ -n "$proxy_pid" ]; then
    kill "$proxy_pid" 2>/dev/null || true
    wait "$proxy_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
start=$SECONDS
db="$work/state/tierflow.db"
fail() { echo "s3_faults: FAIL: $*" >&2; exit 1; }
sql() { python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); [print("|".join(map(str,r))) for r in c.execute(sys.argv[2])]' "$db" "$1"; }

endpoint=$(cat "$swift_dir/endpoint")
python3 "$here/tests/s3_fault_proxy.py" "$endpoint" "$work/proxy.port" &
proxy_pid=$!
for _ in $(seq 200); do [ -s "$work/proxy.port" ] && break; sleep 0.05; done
[ -s "$work/proxy.port" ] || fail "the fault proxy did not start within 10 s"
proxy="http://127.0.0.1:$(cat "$work/proxy.port")"
control() { curl -fsS "$proxy/__proxy/$1" >/dev/null || fail "proxy command $1"; }

export TIERFLOW_TEST_S3_KEY=test:tester TIERFLOW_TEST_S3_SECRET=testing TIERFLOW_TEST_S3_WRONG=wrong
host=${endpoint#http://}
s3() { curl -fsS --aws-sigv4 "aws:amz:us-east-1:s3" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"; }
bucket="tierflow-faults-$$-$RANDOM"
s3 -X PUT "http://test%3Atester:testing@$host/$bucket" || fail "cannot create bucket $bucket"

tiers() {  # BUCKET SECRET_ENV BUDGET
  cat >"$work/tiers.yaml" <<YAML
tiers:
  ram:
    adapter: posix
    root: ram
    durability: volatile
  local:
    adapter: posix
    root: local
  bulk:
    adapter: s3
    endpoint: $proxy
    bucket: $1
    prefix: faults
    access_key_env: TIERFLOW_TEST_S3_KEY
    secret_key_env: $2
    scope: cluster
    durability: durable
    timeout: {stall: 3s, min_rate: 10MB}
    retry: {backoff: 50ms, max_backoff: 200ms, budget: $3}
YAML
}
run() { "$tierflow" run "$here/examples/quickstart/pipeline.yaml" --tiers "$work/tiers.yaml" --db "$db" \
  --progress plain --slots 2; }

# 1. Unreachable tiers: nothing starts.
tiers "$bucket" TIERFLOW_TEST_S3_WRONG 2s
if run >"$work/wrong.txt" 2>&1; then fail "a run with a wrong secret started"; fi
for text in "tier bulk" "$proxy" "'$bucket'" "credentials were refused" "nothing was started"; do
  grep -qF "$text" "$work/wrong.txt" || fail "the wrong-secret error does not say '$text': $(cat "$work/wrong.txt")"
done
tiers "no-such-bucket-$$" TIERFLOW_TEST_S3_SECRET 2s
if run >"$work/nobucket.txt" 2>&1; then fail "a run with a missing bucket started"; fi
grep -qF "'no-such-bucket-$$' does not exist" "$work/nobucket.txt" ||
  fail "the missing-bucket error does not name it: $(cat "$work/nobucket.txt")"
if [ -f "$db" ]; then
  [ "$(sql "SELECT count(*) FROM runs")" = 0 ] || fail "a run was recorded: $(sql "SELECT id, state FROM runs")"
  [ "$(sql "SELECT count(*) FROM attempts")" = 0 ] || fail "attempts were recorded"
fi

# 2. Uploads answered 503 twice: retried, recorded as events.
tiers "$bucket" TIERFLOW_TEST_S3_SECRET 10s
control "fault?kind=5xx&match=PUT%20&count=2"
run >"$work/run1.txt" 2>&1 || fail "run 1 failed: $(tail -5 "$work/run1.txt")"
run1=$(sql "SELECT id FROM runs")
retries=$(sql "SELECT count(*) FROM events WHERE run_id='$run1' AND kind='transfer_retry' AND message LIKE 'tier bulk: attempt _ failed, trying again in %SlowDown%'")
[ "$retries" = 2 ] || fail "expected 2 transfer_retry events, got $retries: $(sql "SELECT kind, message FROM events WHERE kind LIKE 'transfer%'")"

# 3. Run 2 restores cached outputs from the bucket through a proxy that
# flips a byte of every GET: caught, and the tasks run instead.
control "clear"
control "fault?kind=flip&match=GET%20&count=-1"
run >"$work/run2.txt" 2>&1 || fail "run 2 failed: $(tail -5 "$work/run2.txt")"
run2=$(sql "SELECT id FROM runs ORDER BY created_at DESC LIMIT 1")
caught=$(sql "SELECT count(*) FROM events WHERE run_id='$run2' AND kind='copy_failed' AND message LIKE 'restoring the cached %to tier local: tier bulk: %does not match %: expected xxh3:%, got xxh3:%'")
[ "$caught" -ge 1 ] || fail "no restore failed on the flipped bytes: $(sql "SELECT kind, message FROM events WHERE run_id='$run2' AND kind IN ('copy_failed', 'copied')")"
[ "$(sql "SELECT count(*) FROM attempts WHERE run_id='$run2' AND state='failed' AND message LIKE 'restoring the cached %does not match%; running the task'")" -ge 1 ] ||
  fail "the failed reuse does not say why: $(sql "SELECT task_id, state, message FROM attempts WHERE run_id='$run2'")"
[ "$(sql "SELECT state FROM runs WHERE id='$run2'")" = succeeded ] || fail "run 2 did not succeed"

# 4. Restores that fail on S3 itself: the task says what S3 said.
control "clear"
# Object reads only (the check before the run lists the bucket).
control "fault?kind=5xx&match=GET%20/$bucket/faults/runs/&count=-1"
tiers "$bucket" TIERFLOW_TEST_S3_SECRET 500ms
run >"$work/run3.txt" 2>&1 || true
run3=$(sql "SELECT id FROM runs ORDER BY created_at DESC LIMIT 1")
[ "$run3" != "$run2" ] || fail "run 3 did not start: $(tail -5 "$work/run3.txt")"
[ "$(sql "SELECT count(*) FROM attempts WHERE run_id='$run3' AND state='failed' AND message LIKE 'restoring the cached %HTTP 503 SlowDown%; running the task'")" -ge 1 ] ||
  fail "a failed restore does not report the S3 error: $(sql "SELECT task_id, state, message FROM attempts WHERE run_id='$run3'")"
[ "$(sql "SELECT count(*) FROM attempts WHERE run_id='$run3' AND message LIKE '%No such file or directory%'")" = 0 ] ||
  fail "a failed restore still says 'No such file or directory': $(sql "SELECT task_id, message FROM attempts WHERE run_id='$run3' AND message LIKE '%No such file%'")"

# 5. A write-back of 40 MiB (five parts) whose third part stalls; tierflow
# is killed -9 meanwhile; the resume aborts the upload it left.
control "clear"
tiers "$bucket" TIERFLOW_TEST_S3_SECRET 10s
sed -i 's/stall: 3s/stall: 60s/' "$work/tiers.yaml"
cat >"$work/big.yaml" <<'YAML'
name: big
stages:
  write:
    run: ["sh", "-c", "head -c 41943040 /dev/urandom > \"$TIERFLOW_OUTPUT_BIG\""]
    outputs:
      big: {size: 40MiB, durability: durable}
YAML
control "fault?kind=stall&match=partNumber=3&count=-1&seconds=60"
"$tierflow" run "$work/big.yaml" --tiers "$work/tiers.yaml" --db "$db" --progress plain \
  >"$work/big.txt" 2>&1 &
big_pid=$!
for _ in $(seq 600); do
  curl -fsS "$proxy/__proxy/stats" | grep -q '"stall": 1' && break
  sleep 0.05
done
curl -fsS "$proxy/__proxy/stats" | grep -q '"stall": 1' ||
  { kill -9 "$big_pid"; fail "the third part never reached the proxy in 30 s: $(cat "$work/big.txt")"; }
kill -9 "$big_pid"
wait "$big_pid" 2>/dev/null || true
big=$(sql "SELECT id FROM runs WHERE pipeline_id=(SELECT id FROM pipelines WHERE name='big')")
[ "$(sql "SELECT state FROM runs WHERE id='$big'")" = running ] || fail "the killed run is not left running"
control "clear"
"$tierflow" resume "$big" --db "$db" >"$work/resume.txt" 2>&1 ||
  fail "the resume failed: $(tail -5 "$work/resume.txt")"
[ "$(sql "SELECT count(*) FROM events WHERE run_id='$big' AND kind='uploads_aborted' AND message LIKE 'tier bulk: aborted 1 unfinished multipart upload of this run, left by an earlier engine%'")" = 1 ] ||
  fail "the resume did not abort the upload the killed run left: $(sql "SELECT kind, message FROM events WHERE run_id='$big'")"
[ "$(sql "SELECT state FROM runs WHERE id='$big'")" = succeeded ] || fail "the resumed run did not succeed"
# 6. The retry metric of a server's engine.
control "clear"
mkdir -p "$work/cluster"
cat >"$work/cluster/tiers.yaml" <<YAML
tiers:
  shared:
    adapter: posix
    root: shared
    scope: cluster
  bulk:
    adapter: s3
    endpoint: $proxy
    bucket: $bucket
    prefix: cluster
    access_key_env: TIERFLOW_TEST_S3_KEY
    secret_key_env: TIERFLOW_TEST_S3_SECRET
    scope: cluster
    durability: durable
    timeout: {stall: 3s}
    retry: {backoff: 50ms, max_backoff: 200ms, budget: 10s}
YAML
cat >"$work/small.yaml" <<'YAML'
name: small
stages:
  write:
    run: ["sh", "-c", "echo hello > \"$TIERFLOW_OUTPUT_OUT\""]
    outputs:
      out: {size: 1KiB, durability: durable}
YAML
"$tierflow" server --listen 127.0.0.1:0 --db "$work/cluster/tierflow.db" --tiers "$work/cluster/tiers.yaml" \
  --http-listen 127.0.0.1:0 >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
addr= web=
for _ in $(seq 100); do
  addr=$(sed -n 's/^listening on //p' "$work/server.out")
  web=$(sed -n 's|^serving the UI on \(http://[^ ]*\)/$|\1|p' "$work/server.out")
  [ -n "$addr" ] && [ -n "$web" ] && break
  sleep 0.1
done
[ -n "$addr" ] && [ -n "$web" ] || { kill "$server_pid"; fail "the server did not start: $(cat "$work/server.err")"; }
"$tierflow" worker --name s3w --scheduler "$addr" --slots 1 >"$work/worker.log" 2>&1 &
worker_pid=$!
control "fault?kind=5xx&match=PUT%20&count=2"
submitted=0
"$tierflow" submit "$work/small.yaml" --scheduler "$addr" --wait >"$work/submit.out" 2>&1 || submitted=$?
metrics=$(curl -fsS "$web/metrics" || true)
kill "$worker_pid" "$server_pid" 2>/dev/null || true
wait "$worker_pid" "$server_pid" 2>/dev/null || true
[ "$submitted" = 0 ] || fail "the cluster run failed: $(cat "$work/submit.out")"
echo "$metrics" | grep -qx 'tierflow_storage_retries_total{tier="bulk"} 2' ||
  fail "/metrics does not count the 2 retries: $(echo "$metrics" | grep -i retr)"

echo "s3_faults: OK (unreachable tiers refused; $retries retries recorded; flipped restores caught; restore errors named; orphaned upload aborted on resume; retries in /metrics) in $((SECONDS - start)) s"
