#!/usr/bin/env bash
# `tierflow tiers list` on a tiers.yaml of N posix tiers (default 50,000),
# against a store with one measured profile, for each binary given: the
# seconds each takes, and the ratio to the first (the baseline), in one
# sitting. Usage: bench/tiers_list.sh [-n N] BASELINE_TIERFLOW [TIERFLOW...]
set -euo pipefail
n=50000
if [ "${1:-}" = "-n" ]; then n="$2"; shift 2; fi
[ $# -ge 1 ] || { echo "usage: $0 [-n N] BASELINE_TIERFLOW [TIERFLOW...]" >&2; exit 2; }
work="$(mktemp -d "${TMPDIR:-/tmp}/tierflow-bench-tiers.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir "$work/root"
python3 - "$work" "$n" <<'PY'
import sys
work, n = sys.argv[1], int(sys.argv[2])
with open(f"{work}/tiers.yaml", "w") as f:
    f.write("tiers:\n")
    for i in range(n):
        f.write(f"  t{i}:\n    adapter: posix\n    root: {work}/root\n    durability: durable\n")
PY
printf '%-60s %8s %8s\n' BINARY TIERS SECONDS
base=""
for bin in "$@"; do
  rm -rf "$work/state"
  start=$(date +%s.%N)
  "$bin" tiers list --tiers "$work/tiers.yaml" --db "$work/state/t.db" > "$work/out"
  end=$(date +%s.%N)
  lines=$(($(wc -l < "$work/out") - 1))
  [ "$lines" = "$n" ] || { echo "$bin listed $lines tiers, not $n" >&2; exit 1; }
  secs=$(python3 -c "print(f'{$end - $start:.2f}')")
  [ -n "$base" ] || base=$secs
  printf '%-60s %8s %8s  (x%s of the first)\n' "$bin" "$n" "$secs" \
    "$(python3 -c "print(f'{$secs / $base:.3f}')")"
done
