#!/usr/bin/env bash
# A full tier (CTest: full_tier): a posix tier on a 2 MiB tmpfs, mounted in
# a user and mount namespace of its own (unshare: no privileges needed).
# Probing it must fail with exit 1 and a message that names the tier and
# says it is full, and leave no partial file behind. A task helper's
# save_checkpoint whose background write fills the tier raises the error
# in the task (by wait_checkpoint) and commits nothing. A run whose
# write-back to its home finds the tier full fails, and its output says
# which copy to which tier, and that the tier is full; a task that fills
# the tier itself fails with its exit code and the tier's name and free
# space (its log says "No space left on device").
#
# Usage: full_tier.sh TIERFLOW_BIN
set -euo pipefail
tierflow="$(realpath "$1")"
work="$(mktemp -d "${TMPDIR:-/tmp}/tierflow-full-tier.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cat > "$work/tiers.yaml" <<'YAML'
tiers:
  tiny:
    adapter: posix
    root: tiny
YAML
mkdir "$work/tiny"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
unshare --user --map-root-user --mount bash -s "$tierflow" "$work" "$here" <<'INNER'
set -euo pipefail
tierflow="$1"; work="$2"; here="$3"
fail() { echo "full_tier: FAIL: $*" >&2; exit 1; }
mount -t tmpfs -o size=2m tmpfs "$work/tiny"
if "$tierflow" tiers probe tiny --seconds 1 --tiers "$work/tiers.yaml" --db "$work/state/t.db" \
    > "$work/out" 2> "$work/err"; then
  fail "probing a 2 MiB tier with a test object of up to 256 MiB succeeded"
fi
grep -qF "tierflow: probing tier tiny: tier tiny is full: cannot write '.tierflow-probe/sequential' (under $work/tiny): No space left on device" "$work/err" ||
  fail "message: $(cat "$work/err")"
leftover="$(find "$work/tiny" -type f)"
[ -z "$leftover" ] || fail "partial files left: $leftover"
# save_checkpoint returns at once; its background write of 4 MiB finds
# the 2 MiB tier full, and the task hears it from wait_checkpoint.
PYTHONPATH="$here/sdk/python" TIERFLOW_CHECKPOINT_DIR="$work/tiny/ckpt" python3 - > "$work/py.out" 2>&1 <<'PY' ||
import sys
import tierflow_task as tf
tf.save_checkpoint(1, {"state.bin": b"x" * (4 << 20)})
sys.stdout.write("returned\n")  # one write: the background thread's stderr line cannot split it
try:
    tf.wait_checkpoint()
except tf.TierflowError as e:
    print("raised:", e)
    sys.exit(0)
sys.exit("wait_checkpoint did not raise")
PY
  fail "save_checkpoint on a full tier: $(cat "$work/py.out")"
grep -q "^returned$" "$work/py.out" || fail "save_checkpoint did not return: $(cat "$work/py.out")"
grep -q "^raised: checkpoint 1 was not saved: .*No space left on device" "$work/py.out" ||
  fail "save_checkpoint on a full tier: $(cat "$work/py.out")"
[ ! -e "$work/tiny/ckpt/step-00000001.committed" ] || fail "a checkpoint that did not fit was committed"
rm -rf "$work/tiny/ckpt"

# A write-back that fills the home: written on a fast node tier, then
# copied to `tiny`, the only durable tier (its size hint, 1 MiB, fits).
mkdir "$work/fast"
cat > "$work/writeback-tiers.yaml" <<YAML
tiers:
  fast:
    adapter: posix
    root: $work/fast
    durability: node
    profile: {seq_read_mb_s: 2000, seq_write_mb_s: 2000, rand_read_iops: 100000, latency_us: 10}
  tiny:
    adapter: posix
    root: $work/tiny
    durability: durable
    profile: {seq_read_mb_s: 100, seq_write_mb_s: 100, rand_read_iops: 1000, latency_us: 100}
YAML
cat > "$work/writeback.yaml" <<'YAML'
name: writeback
stages:
  make:
    outputs: {big: {size: 1MiB, durability: durable}}
    run: head -c 4194304 /dev/zero > "$TIERFLOW_OUTPUT_BIG"
YAML
if (cd "$work" && "$tierflow" run writeback.yaml --tiers writeback-tiers.yaml \
      --db "$work/state/wb.db" --progress plain > "$work/wb.out" 2>&1); then
  fail "a write-back of 4 MiB to a 2 MiB tier succeeded: $(cat "$work/wb.out")"
fi
grep -q "^run writeback-[0-9a-f]* failed" "$work/wb.out" || fail "run did not fail: $(cat "$work/wb.out")"
grep -q "^write-back failed: copying make.big to tier tiny failed: .* to tier tiny: the target tier is full" \
    "$work/wb.out" || fail "the write-back's failure does not name the full tier: $(cat "$work/wb.out")"

# A task that fills the tier it writes its output on (the only tier).
cat > "$work/fill-tiers.yaml" <<YAML
tiers:
  tiny:
    adapter: posix
    root: $work/tiny
    durability: durable
YAML
cat > "$work/fill.yaml" <<'YAML'
name: fill
stages:
  fill:
    outputs: {big: {size: 1MiB, durability: durable}}
    run: head -c 4194304 /dev/zero > "$TIERFLOW_OUTPUT_BIG"
YAML
if (cd "$work" && "$tierflow" run fill.yaml --tiers fill-tiers.yaml \
      --db "$work/state/fill.db" --progress plain > "$work/fill.out" 2>&1); then
  fail "a task writing 4 MiB on a 2 MiB tier succeeded: $(cat "$work/fill.out")"
fi
grep -q 'fill FAILED: exit 1; its log says "No space left on device": it writes on tier tiny (2 MiB; .* free after the attempt)' \
    "$work/fill.out" || fail "the task's ENOSPC does not name the tier: $(cat "$work/fill.out")"
grep -q '^failed: fill: exit 1; its log says "No space left on device": it writes on tier tiny' \
    "$work/fill.out" || fail "the summary does not name the tier: $(cat "$work/fill.out")"
INNER
echo "full_tier: ok"
