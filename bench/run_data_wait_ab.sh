#!/usr/bin/env bash
# bench/data_wait.py for two tierflow binaries in one sitting, interleaved:
# ROUNDS rounds, each running data_wait once (--repeat 1) with the baseline
# and once with the candidate, the order swapped every round so that drift
# in the machine's load spreads over both. The baseline's trainers import
# the tierflow_task.py of its own commit (BASE_SDK); the candidate's, this
# tree's. One Swift (scripts/swift.sh) for all. Prints each run's tables,
# then per binary the medians over rounds with their range (min-max). See
# bench/README.md "Issue 21: streamed data".
#
#   bench/run_data_wait_ab.sh BASELINE BASE_SDK CANDIDATE [ROUNDS (3)]
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ $# -ge 3 ] || { echo "usage: $0 BASELINE BASE_SDK CANDIDATE [ROUNDS]" >&2; exit 2; }
base="$(realpath "$1")" base_sdk="$(realpath "$2")" cand="$(realpath "$3")" rounds="${4:-3}"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/tierflow-bench-dwab.XXXXXX")"
cleanup() {
  bash "$root/scripts/swift.sh" stop "$tmp/swift" || true
  rm -rf "$tmp"
}
trap cleanup EXIT
bash "$root/scripts/swift.sh" start "$tmp/swift" >/dev/null || { echo "$0: Swift did not start" >&2; exit 1; }
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$rounds"); do
  order=(base cand)
  [ $((r % 2)) -eq 0 ] && order=(cand base)
  for who in "${order[@]}"; do
    if [ "$who" = base ]; then bin=$base sdk=(--sdk "$base_sdk"); else bin=$cand sdk=(); fi
    echo
    echo "## round $r: $who ($bin), load average $(cut -d' ' -f1 /proc/loadavg)"
    python3 "$root/bench/data_wait.py" --tierflow "$bin" "${sdk[@]}" --swift-dir "$tmp/swift" \
      --dir "$tmp/work-$who" --repeat 1 --json "$tmp/$who-$r.json" || { echo "$0: $who round $r FAILED" >&2; exit 1; }
    if [ -n "${KEEP_JSON:-}" ]; then mkdir -p "$KEEP_JSON" && cp "$tmp/$who-$r.json" "$KEEP_JSON/"; fi
  done
done
echo
echo "## medians over $rounds rounds (range)"
echo
python3 "$root/bench/data_wait_ab_report.py" "$tmp"
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
