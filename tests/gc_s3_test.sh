#!/usr/bin/env bash
# `tierflow gc` on an s3 tier (CTest: gc_s3, with the `swift` fixture): two
# runs of a pipeline whose durable output has its home in a bucket; gc
# --keep-last 1 deletes the older run's objects through the s3 adapter,
# reports the bytes the bucket lost (listed with curl's own SigV4 signing,
# not tierflow's), and leaves the kept run's objects in place.
#
# Usage: gc_s3_test.sh TIERFLOW_BIN SWIFT_DIR
set -euo pipefail
tierflow="$1"
swift_dir="$2"
work="$(mktemp -d "${TMPDIR:-/tmp}/tierflow-gc-s3.XXXXXX")"
trap 'rm -rf "$work"' EXIT
db="$work/state/tierflow.db"
fail() { echo "gc_s3: FAIL: $*" >&2; exit 1; }
endpoint=$(cat "$swift_dir/endpoint")
export TIERFLOW_TEST_S3_KEY=test:tester TIERFLOW_TEST_S3_SECRET=testing
host=${endpoint#http://}
url="http://test%3Atester:testing@$host"
s3() { curl -fsS --aws-sigv4 "aws:amz:us-east-1:s3" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"; }
bucket="tierflow-gc-$$-$RANDOM"
s3 -X PUT "$url/$bucket" || fail "cannot create bucket $bucket at $endpoint"
# The total size of the objects under PREFIX in the bucket.
bucket_bytes() {
  local prefix
  prefix="$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1")"
  s3 "$url/$bucket?prefix=$prefix" | python3 -c '
import sys, xml.etree.ElementTree as ET
ns = {"s": "http://s3.amazonaws.com/doc/2006-03-01/"}
root = ET.fromstring(sys.stdin.read())
print(sum(int(e.text) for e in root.findall(".//s:Contents/s:Size", ns)))'
}

cat > "$work/tiers.yaml" <<YAML
tiers:
  local:
    adapter: posix
    root: $work/local
  bulk:
    adapter: s3
    endpoint: $endpoint
    bucket: $bucket
    prefix: gc
    access_key_env: TIERFLOW_TEST_S3_KEY
    secret_key_env: TIERFLOW_TEST_S3_SECRET
    scope: cluster
    durability: durable
YAML
cat > "$work/keep.yaml" <<'YAML'
name: keep
stages:
  make:
    cache: false
    outputs: {data: {size: 1MiB, durability: durable}}
    run: head -c 123456 /dev/urandom > "$TIERFLOW_OUTPUT_DATA"
YAML
ids=()
for _ in 1 2; do
  out="$("$tierflow" run "$work/keep.yaml" --tiers "$work/tiers.yaml" --db "$db" --progress plain 2>&1)" ||
    fail "run: $out"
  ids+=("$(sed -n 's/^run \(keep-[0-9a-f]*\) succeeded.*/\1/p' <<< "$out")")
done
old="${ids[0]}"; new="${ids[1]}"
before="$(bucket_bytes "gc/runs/$old/")"
[ "$before" -ge 123456 ] || fail "the older run has $before bytes in the bucket"
"$tierflow" gc --keep-last 1 --db "$db" -o json > "$work/gc.json" || fail "gc: $(cat "$work/gc.json")"
reported="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["bytes_freed"].get("bulk", 0))' "$work/gc.json")"
[ "$reported" = "$before" ] || fail "bulk: reported $reported, the bucket held $before: $(cat "$work/gc.json")"
[ "$(bucket_bytes "gc/runs/$old/")" = 0 ] || fail "the older run's objects are still in the bucket"
[ "$(bucket_bytes "gc/runs/$new/")" -ge 123456 ] || fail "the kept run's objects are gone"
echo "gc_s3: ok"
