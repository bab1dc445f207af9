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
python3 - "$tmp" "$rounds" <<'PY'
import json, os, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
med = lambda xs: sorted(xs)[(len(xs) - 1) // 2]
def span(xs, pct=True):
    f = (lambda x: f"{x * 100:.1f}%") if pct else (lambda x: f"{x:.0f}")
    return f"{f(med(xs))} ({f(min(xs))}–{f(max(xs))})"
runs = {w: [json.load(open(os.path.join(tmp, f"{w}-{r}.json"))) for r in range(1, rounds + 1)]
        for w in ("base", "cand")}
print("| setting | binary | direct | staged | stream | seq. read MB/s | bound | stream / bound | stream vs baseline stream |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for s in runs["cand"][0]["settings"]:
    base_stream = med([r["utilisation"] for d in runs["base"] for r in d["all"]
                       if r["setting"] == s["name"] and r["mode"] == "stream"])
    for w in ("base", "cand"):
        rows = [r for d in runs[w] for r in d["all"] if r["setting"] == s["name"]]
        u = {m: [r["utilisation"] for r in rows if r["mode"] == m] for m in ("direct", "staged", "stream")}
        reads = [r for r in rows if r["mode"] == "read"]
        ratios = [st / rd["bound"] for st, rd in zip(u["stream"], reads)]
        print(f"| {s['name']} | {'baseline' if w == 'base' else 'candidate'} | {span(u['direct'])} | "
              f"{span(u['staged'])} | {span(u['stream'])} | {span([r['tier_mb_s'] for r in reads], False)} | "
              f"{span([r['bound'] for r in reads])} | {span(ratios)} | {med(u['stream']) / base_stream:.3f}x |")
print()
print("Where the stream mode's time goes (medians over rounds): trainer launched / its code")
print("running, after the resume; its waits in open_shard; its compute; from its last line")
print("to the attempt's end; the total.")
print()
print("| setting | binary | launched | code runs | waits | compute | after | total |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for s in runs["cand"][0]["settings"]:
    for w in ("base", "cand"):
        rows = [r for d in runs[w] for r in d["all"] if r["setting"] == s["name"] and r["mode"] == "stream"]
        ms = lambda f: f"{med([r[f] for r in rows]) * 1000:.0f} ms"
        print(f"| {s['name']} | {'baseline' if w == 'base' else 'candidate'} | {ms('start_s')} | "
              f"{ms('trainer_code_s')} | {ms('helper_wait_s')} | {ms('compute_s')} | "
              f"{ms('after_trainer_s')} | {ms('total_s')} |")
PY
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
