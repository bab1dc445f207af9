#!/usr/bin/env bash
# A full tier (CTest: full_tier): a posix tier on a 2 MiB tmpfs, mounted in
# a user and mount namespace of its own (unshare: no privileges needed).
# Probing it must fail with exit 1 and a message that names the tier and
# says it is full, and leave no partial file behind.
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
unshare --user --map-root-user --mount bash -s "$tierflow" "$work" <<'INNER'
set -euo pipefail
tierflow="$1"; work="$2"
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
INNER
echo "full_tier: ok"
