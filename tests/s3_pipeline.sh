#!/usr/bin/env bash
# A pipeline whose bulk tier is S3 runs end to end (CTest: s3_pipeline,
# with the `swift` fixture: OpenStack Swift with s3api on loopback, started
# by scripts/swift.sh). The quickstart pipeline runs through the real
# `tierflow run --tiers` with ram and local posix tiers and an s3 bulk tier:
# durable outputs are written on local, written back to the bucket, and the
# working copies evicted. The test then reads the release back from the
# bucket with curl's own SigV4 signing (not tierflow's) and checks it
# against the manifest the pipeline wrote.
#
# Usage: s3_pipeline.sh TIERFLOW_BIN SWIFT_DIR
set -euo pipefail
tierflow="$1"
swift_dir="$2"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/tierflow-s3-pipeline.XXXXXX")"
trap 'rm -rf "$work"' EXIT
db="$work/state/tierflow.db"
fail() { echo "s3_pipeline: FAIL: $*" >&2; exit 1; }
sql() { python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); [print("|".join(map(str,r))) for r in c.execute(sys.argv[2])]' "$db" "$1"; }

endpoint=$(cat "$swift_dir/endpoint")
export TIERFLOW_TEST_S3_KEY=test:tester TIERFLOW_TEST_S3_SECRET=testing
# curl splits --user at the first ':', and Swift's access keys are
# ACCOUNT:USER, so the credentials go in the URL, percent-encoded; Swift's
# s3api requires x-amz-content-sha256, which curl signs as given.
host=${endpoint#http://}
url="http://test%3Atester:testing@$host"
s3() { curl -fsS --aws-sigv4 "aws:amz:us-east-1:s3" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"; }
bucket="tierflow-e2e-$$-$RANDOM"
s3 -X PUT "$url/$bucket" || fail "cannot create bucket $bucket at $endpoint"

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
    endpoint: $endpoint
    bucket: $bucket
    prefix: e2e
    access_key_env: TIERFLOW_TEST_S3_KEY
    secret_key_env: TIERFLOW_TEST_S3_SECRET
    scope: cluster
    durability: durable
YAML

"$tierflow" run "$here/examples/quickstart/pipeline.yaml" --tiers "$work/tiers.yaml" --db "$db" \
  --progress plain --slots 2 | tee "$work/run.txt" || fail "run exited $?"
run=$(sql "SELECT id FROM runs")
[ "$(sql "SELECT state FROM runs")" = succeeded ] || fail "run not succeeded: $(sql "SELECT message FROM runs")"

# Every output that needs durability has its home in the bucket, copied
# from local, and no copy is left half made.
homes=$(sql "SELECT count(*) FROM artifact_copies WHERE tier='bulk' AND role='home' AND state='present' AND source_tier='local' AND uri LIKE 's3://$bucket/e2e/runs/$run/artifacts/%'")
[ "$homes" -ge 6 ] || fail "expected the 4 ingest shards, the model and the release in the bucket, got $homes: $(sql "SELECT a.task_id, a.name, c.tier, c.role, c.state FROM artifact_copies c JOIN artifacts a ON a.id=c.artifact_id")"
[ "$(sql "SELECT count(*) FROM artifact_copies WHERE state NOT IN ('present', 'evicted', 'released')")" = 0 ] ||
  fail "copies left unfinished: $(sql "SELECT tier, state, message FROM artifact_copies WHERE state NOT IN ('present', 'evicted', 'released')")"
# Their local copies were working copies, evicted once read.
[ "$(sql "SELECT count(*) FROM artifact_copies c JOIN artifacts a ON a.id=c.artifact_id WHERE a.task_id='publish' AND c.tier='local' AND c.state='evicted'")" = 1 ] ||
  fail "the release's local copy should be evicted"
[ ! -e "$work/local/runs/$run/artifacts/publish/release" ] || fail "the evicted release is still on local"

# The release, read back from the bucket by curl, matches its manifest.
mkdir "$work/release"
prefix="$url/$bucket/e2e/runs/$run/artifacts/publish/release"
s3 -o "$work/release/MANIFEST.sha256" "$prefix/MANIFEST.sha256" || fail "no MANIFEST.sha256 in the bucket"
while read -r _ name; do
  mkdir -p "$work/release/$(dirname "$name")"
  s3 -o "$work/release/$name" "$prefix/$name" || fail "no $name in the bucket"
done <"$work/release/MANIFEST.sha256"
(cd "$work/release" && sha256sum --quiet -c MANIFEST.sha256) || fail "the release in the bucket does not match its manifest"

# Run 2: outputs kept only in the bucket (their local copies were evicted)
# are still reused from the cache: restored from the bucket into staging,
# checked against their recorded hashes, published. pack's shards were in
# RAM, freed after run 1: pack runs again (and train, fed the same shards,
# is reused).
"$tierflow" run "$here/examples/quickstart/pipeline.yaml" --tiers "$work/tiers.yaml" --db "$db" \
  --progress plain --slots 2 >"$work/run2.txt" || fail "run 2 exited $?: $(cat "$work/run2.txt")"
run2=$(sql "SELECT id FROM runs ORDER BY created_at DESC LIMIT 1")
[ "$run2" != "$run" ] || fail "run 2 has run 1's id"
[ "$(sql "SELECT group_concat(id, ',') FROM (SELECT id FROM tasks WHERE run_id='$run2' AND state='cached' ORDER BY seq)")" = "clean,featurize,train,publish" ] ||
  fail "expected clean, featurize, train and publish cached: $(sql "SELECT id, state, message FROM tasks WHERE run_id='$run2'")"
# The release came back from the bucket and went home again, byte for byte.
[ "$(sql "SELECT count(*) FROM artifacts a JOIN artifact_copies c ON c.artifact_id=a.id WHERE a.run_id='$run2' AND a.task_id='publish' AND c.tier='bulk' AND c.state='present'")" = 1 ] ||
  fail "run 2's release has no home in the bucket"
[ "$(sql "SELECT group_concat(DISTINCT content_hash) FROM artifacts WHERE task_id='publish'")" = "$(sql "SELECT content_hash FROM artifacts WHERE run_id='$run' AND task_id='publish'")" ] ||
  fail "the reused release differs from run 1's"
echo "s3_pipeline: OK ($run: $homes artifacts homed in s3://$bucket/e2e; $run2 reused 4 tasks from it)"
