#!/usr/bin/env bash
# `tierflow tiers list` and `tiers probe` through the real binary (CTest:
# tiers_cli): a bad tiers file fails naming file:line:col and the field;
# probing a posix tier records a profile that `list` then shows; an unknown
# tier fails with the list of tiers; the probe leaves nothing behind.
#
# Usage: tiers_cli.sh TIERFLOW_BIN
set -euo pipefail
tierflow="$1"
work="$(mktemp -d "${TMPDIR:-/tmp}/tierflow-tiers-cli.XXXXXX")"
trap 'rm -rf "$work"' EXIT
fail() { echo "tiers_cli: FAIL: $*" >&2; exit 1; }
db="$work/state/tierflow.db"

cat > "$work/bad.yaml" <<'YAML'
tiers:
  fast:
    adapter: posix
    rot: nvme
YAML
if "$tierflow" tiers list --tiers "$work/bad.yaml" --db "$db" > "$work/out" 2> "$work/err"; then
  fail "a bad tiers file was accepted"
fi
grep -qF "$work/bad.yaml:4:5: tiers.fast.rot: unknown key 'rot' (did you mean 'root'?)" "$work/err" ||
  fail "no positioned diagnostic: $(cat "$work/err")"
[ ! -e "$db" ] || fail "a bad tiers file created the state database"

cat > "$work/tiers.yaml" <<'YAML'
tiers:
  scratch:
    adapter: posix
    root: scratch
    durability: node
  vault:
    adapter: posix
    root: vault
    scope: cluster
    durability: archive
    profile: {seq_read_mb_s: 150, seq_write_mb_s: 100, rand_read_iops: 200, latency_us: 8000}
YAML
"$tierflow" tiers list --tiers "$work/tiers.yaml" --db "$db" > "$work/list1"
grep -q "^scratch .*not measured (tierflow tiers probe) *$work/scratch$" "$work/list1" ||
  fail "list before probing: $(cat "$work/list1")"
grep -q "^vault .*read 150 MB/s, write 100 MB/s, 200 IOPS, 8000 µs (declared)" "$work/list1" ||
  fail "declared profile not shown: $(cat "$work/list1")"

if "$tierflow" tiers probe scrach --tiers "$work/tiers.yaml" --db "$db" 2> "$work/err"; then
  fail "an unknown tier was probed"
fi
grep -qF "no tier 'scrach' (did you mean 'scratch'?); the tiers are scratch, vault" "$work/err" ||
  fail "unknown tier message: $(cat "$work/err")"

"$tierflow" tiers probe scratch --seconds 1 --tiers "$work/tiers.yaml" --db "$db" > "$work/probe"
grep -q "^scratch: read [0-9]* MB/s, write [0-9]* MB/s, [0-9]* IOPS" "$work/probe" ||
  fail "probe output: $(cat "$work/probe")"
[ -z "$(find "$work/scratch" -type f)" ] || fail "the probe left files: $(find "$work/scratch" -type f)"

"$tierflow" tiers list --tiers "$work/tiers.yaml" --db "$db" --output json > "$work/list.json"
python3 - "$work/list.json" <<'PY'
import json, sys
tiers = {t["name"]: t for t in json.load(open(sys.argv[1]))}
m = tiers["scratch"]["measured_profile"]
assert m is not None, "scratch has no measured profile"
for field in ("seq_read_mb_s", "seq_write_mb_s", "rand_read_iops", "latency_us", "create_us", "stat_us"):
    assert m[field] > 0, (field, m)
assert tiers["vault"]["measured_profile"] is None
assert tiers["vault"]["durability"] == "archive" and tiers["vault"]["scope"] == "cluster"
assert tiers["scratch"]["fs_free_bytes"] > 0
PY
# Placement on these tiers: scratch is node-durable, vault an archive, so an
# output needing `durable` fits nowhere: a clear error, exit 1. The plan uses
# a declared profile for scratch and a store without the probe's figures:
# which tier is faster must not depend on how loaded the machine was when
# the probe ran (a slow probe made scratch slower than vault's declaration).
sed 's/^    durability: node$/    durability: node\n    profile: {seq_read_mb_s: 2000, seq_write_mb_s: 1500, rand_read_iops: 50000, latency_us: 100}/' \
  "$work/tiers.yaml" > "$work/tiers-declared.yaml"
grep -q "seq_write_mb_s: 1500" "$work/tiers-declared.yaml" || fail "no declared profile for scratch"
db="$work/plan-state/tierflow.db"
cat > "$work/pipeline.yaml" <<'YAML'
name: placed
stages:
  prep:
    run: ["true"]
    outputs: {table: 1GiB}
  train:
    kind: train
    inputs: {data: prep.table}
    run: ["true"]
    outputs: {model: {size: 100MiB, durability: archive}}
YAML
"$tierflow" plan "$work/pipeline.yaml" --tiers "$work/tiers-declared.yaml" --db "$db" > "$work/plan" ||
  fail "plan --tiers failed"
grep -q "^  prep.table -> home scratch: needs node; write 1 GiB" "$work/plan" ||
  fail "no home for prep.table: $(cat "$work/plan")"
grep -q "^    train reads it (data) from scratch: reads in place" "$work/plan" ||
  fail "no working tier for train: $(cat "$work/plan")"
grep -q "^  train.model -> home vault (written on scratch): needs archive" "$work/plan" ||
  fail "model not archived: $(cat "$work/plan")"
grep -q "then written back to vault in the background" "$work/plan" ||
  fail "no write-back of the model: $(cat "$work/plan")"
sed -i 's/    outputs: {table: 1GiB}/    outputs: {table: {size: 1GiB, durability: durable}}/' "$work/pipeline.yaml"
if "$tierflow" plan "$work/pipeline.yaml" --tiers "$work/tiers-declared.yaml" --db "$db" > /dev/null 2> "$work/err"; then
  fail "a plan whose output fits no tier succeeded"
fi
grep -qF "prep.table needs a durable home for 1 GiB and no tier fits: scratch is node; vault is an archive" "$work/err" ||
  fail "nothing-fits message: $(cat "$work/err")"

echo "tiers_cli: ok"
