#!/usr/bin/env bash
# A full tier (CTest: full_tier): a posix tier on a 2 MiB tmpfs, mounted in
# a user and mount namespace of its own (unshare: no privileges needed).
# Probing it must fail with exit 1 and a message that names the tier and
# says it is full, and leave no partial file behind. A task helper's
# save_checkpoint whose background write fills the tier raises the error
# in the task (by wait_checkpoint) and commits nothing.
#
# Usage: full_tier.sh TIERFLOW_BIN
set -euo pipefail
tierflow="$1"
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
print("returned")
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
INNER
echo "full_tier: ok"
