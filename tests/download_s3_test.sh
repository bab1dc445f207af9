#!/usr/bin/env bash
# GET /api/v1/artifacts/ID/download of an artifact whose home is an s3 tier
# (CTest: download_s3, with the `swift` fixture): the bytes come through the
# s3 adapter (every other copy marked evicted first, so no posix copy can
# answer) and equal what the task wrote; a uri rewritten in the store to
# another bucket, or to a key climbing out with "..", is refused.
#
# Usage: download_s3_test.sh TIERFLOW_BIN SWIFT_DIR
set -euo pipefail
tierflow="$1"
swift_dir="$2"
work="$(mktemp -d "${TMPDIR:-/tmp}/tierflow-download-s3.XXXXXX")"
ui_pid=""
cleanup() {
  if [ -n "$ui_pid" ]; then kill "$ui_pid" 2>/dev/null || true; wait "$ui_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
db="$work/state/tierflow.db"
fail() { echo "download_s3: FAIL: $*" >&2; exit 1; }
endpoint=$(cat "$swift_dir/endpoint")
export TIERFLOW_TEST_S3_KEY=test:tester TIERFLOW_TEST_S3_SECRET=testing
host=${endpoint#http://}
url="http://test%3Atester:testing@$host"
bucket="tierflow-dl-$$-$RANDOM"
curl -fsS --aws-sigv4 "aws:amz:us-east-1:s3" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
  -X PUT "$url/$bucket" || fail "cannot create bucket $bucket at $endpoint"

cat > "$work/tiers.yaml" <<YAML
tiers:
  local:
    adapter: posix
    root: $work/local
  bulk:
    adapter: s3
    endpoint: $endpoint
    bucket: $bucket
    prefix: dl
    access_key_env: TIERFLOW_TEST_S3_KEY
    secret_key_env: TIERFLOW_TEST_S3_SECRET
    scope: cluster
    durability: durable
YAML
cat > "$work/make.yaml" <<'YAML'
name: make
stages:
  make:
    outputs: {data: {size: 1MiB, durability: durable}}
    run: seq 1 30000 > "$TIERFLOW_OUTPUT_DATA"
YAML
seq 1 30000 > "$work/wanted"
out="$("$tierflow" run "$work/make.yaml" --tiers "$work/tiers.yaml" --db "$db" --progress plain 2>&1)" ||
  fail "run: $out"
run_id="$(sed -n 's/^run \(make-[0-9a-f]*\) succeeded.*/\1/p' <<< "$out")"
[ -n "$run_id" ] || fail "no run id in: $out"

# Only the s3 home can answer: every other copy is marked evicted.
python3 - "$db" <<'PY' || fail "the home is not on bulk"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
homes = db.execute("SELECT tier, uri FROM artifact_copies WHERE role = 'home' AND state = 'present'").fetchall()
assert len(homes) == 1 and homes[0][0] == "bulk" and homes[0][1].startswith("s3://"), homes
db.execute("UPDATE artifact_copies SET state = 'evicted' WHERE role != 'home'")
db.commit()
PY

"$tierflow" ui --db "$db" --listen 127.0.0.1:0 > "$work/ui.out" 2>&1 &
ui_pid=$!
address=""
for _ in $(seq 1 200); do
  address="$(sed -n 's|.*serving the UI on http://\([^/]*\)/.*|\1|p' "$work/ui.out")"
  [ -n "$address" ] && break
  kill -0 "$ui_pid" 2>/dev/null || fail "tierflow ui exited: $(cat "$work/ui.out")"
  sleep 0.1
done
[ -n "$address" ] || fail "tierflow ui printed no address: $(cat "$work/ui.out")"
ref="$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$run_id/make/data")"

code="$(curl -sS -o "$work/got" -w '%{http_code}' "http://$address/api/v1/artifacts/$ref/download")"
[ "$code" = 200 ] || fail "download: $code $(head -c 300 "$work/got")"
cmp -s "$work/got" "$work/wanted" || fail "the downloaded bytes differ from what the task wrote"

# A uri rewritten in the store: another bucket, then a key climbing out.
for uri in "s3://other-bucket/dl/runs/$run_id/x" "s3://$bucket/dl/../../secret"; do
  python3 - "$db" "$uri" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("UPDATE artifact_copies SET uri = ? WHERE role = 'home'", (sys.argv[2],))
db.commit()
PY
  code="$(curl -sS -o "$work/refused" -w '%{http_code}' "http://$address/api/v1/artifacts/$ref/download")"
  [ "$code" = 409 ] || fail "rewritten uri $uri: $code $(cat "$work/refused")"
  grep -q '"reason":"no_readable_copy"' "$work/refused" || fail "rewritten uri $uri: $(cat "$work/refused")"
done
echo "download_s3: ok"
