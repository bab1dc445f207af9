#!/usr/bin/env bash
# Runs the data-plane benchmarks (see bench/README.md): bench/data_wait.py
# (a trainer reading shards from S3 directly, staged-then-start, streamed),
# bench/checkpoint.py (blocked time per checkpoint, sync to durable vs async
# multi-tier) and bench/recovery.py (kill -9, lose the node's checkpoints,
# resume), against an OpenStack Swift with s3api that it starts on loopback
# with scripts/swift.sh in a temporary folder and stops on exit. Builds
# nothing: give it a tierflow binary (a Release build, e.g. `cmake -S . -B
# build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release && ninja -C build-bench
# tierflow`). Prints each benchmark's table, then a summary; exits non-zero
# when a benchmark failed (a missed target is reported, not a failure).
# About 2 minutes on 2 cores.
#
#   bench/run_dataplane.sh TIERFLOW [--keep DIR] [--only data_wait,checkpoint,recovery]
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
usage() {
  echo "usage: $0 TIERFLOW [--keep DIR] [--only data_wait,checkpoint,recovery]" >&2
  exit 2
}
[ $# -ge 1 ] || usage
tierflow="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
shift
[ -x "$tierflow" ] || { echo "$0: $tierflow is not an executable" >&2; exit 2; }
keep=""
only="data_wait,checkpoint,recovery"
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) [ $# -ge 2 ] || usage; keep=$2; shift 2 ;;
    --only) [ $# -ge 2 ] || usage; only=$2; shift 2 ;;
    *) usage ;;
  esac
done

tmp="$(mktemp -d "${TMPDIR:-/tmp}/tierflow-bench-dataplane.XXXXXX")"
work="${keep:-$tmp/work}"
mkdir -p "$work"
cleanup() {
  bash "$root/scripts/swift.sh" stop "$tmp/swift" || true
  rm -rf "$tmp"
}
trap cleanup EXIT
bash "$root/scripts/swift.sh" start "$tmp/swift" >/dev/null || { echo "$0: Swift did not start" >&2; exit 1; }

echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "tierflow: $tierflow ($("$tierflow" --version 2>/dev/null | head -n 1))"
failed=()
for bench in data_wait checkpoint recovery; do
  case ",$only," in *",$bench,"*) ;; *) continue ;; esac
  echo
  echo "## $bench"
  echo
  started=$SECONDS
  args=(--tierflow "$tierflow" --swift-dir "$tmp/swift" --dir "$work" --json "$tmp/$bench.json")
  [ -n "$keep" ] && args+=(--keep)
  if ! python3 "$root/bench/$bench.py" "${args[@]}"; then
    failed+=("$bench")
    echo "$0: $bench FAILED" >&2
  fi
  echo
  echo "($bench: $((SECONDS - started)) s)"
done

echo
echo "## summary"
echo
python3 - "$tmp" <<'EOF'
import json, os, sys
tmp = sys.argv[1]
def load(name):
    path = os.path.join(tmp, name + ".json")
    return json.load(open(path)) if os.path.exists(path) else None
rows = []
dw = load("data_wait")
if dw:
    res = dw["results"]
    for s in dw["settings"]:
        by = {r["mode"]: r for r in res if r["setting"] == s["name"]}
        util = " / ".join(f"{by[m]['utilisation'] * 100:.0f}%" for m in ("direct", "staged", "stream"))
        ratio = " / ".join(f"{by[m]['utilisation'] / by['direct']['utilisation']:.2f}x"
                           for m in ("staged", "stream"))
        need = s["mib"] * (1 << 20) / 1e6 / (s["compute_ms"] / 1000)
        target = (("met" if by["stream"]["utilisation"] >= dw["target"] else "MISSED")
                  if s["fits"] else "n/a: bandwidth short")
        b = next((b for b in dw.get("bounds", []) if b["setting"] == s["name"]), None)
        if b:  # issue 21's targets, against the sequential read's bound
            target = (f"{b['what']} {(b['stream'] if s['fits'] else b['ratio']) * 100:.1f}% "
                      f">= {b['target'] * 100:.0f}%: {'met' if b['met'] else 'MISSED'}")
            util += f"; bound {b['bound'] * 100:.1f}% (sequential read {b['read_mb_s']:.0f} MB/s)"
        rows.append([f"data_wait, {s['name']} ({s['shards']} x {s['mib']} MiB, "
                     f"{s['compute_ms']} ms/shard, needs {need:.0f} MB/s)",
                     f"utilisation direct / staged / stream: {util}; staged, stream vs direct: {ratio}",
                     target if b else f"stream >= {dw['target'] * 100:.0f}%: {target}"])
ck = load("checkpoint")
if ck:
    by = {r["mode"]: r for r in ck["results"]}
    for mode in ("async", "async-save"):
        if mode not in by:
            continue
        a = by[mode]["blocked_median_s"]
        ratios = {m: by[m]["blocked_median_s"] / a for m in ("sync-s3", "sync-posix")}
        met = all(r >= ck["target"] for r in ratios.values())
        rows.append([f"checkpoint, {mode} ({by[mode]['bytes'] / (1 << 20):.0f} MiB)",
                     f"blocked per checkpoint: sync-s3 {by['sync-s3']['blocked_median_s'] * 1000:.0f} ms, "
                     f"sync-posix {by['sync-posix']['blocked_median_s'] * 1000:.0f} ms, {mode} "
                     f"{a * 1000:.0f} ms ({ratios['sync-s3']:.1f}x, {ratios['sync-posix']:.1f}x less); "
                     f"flush {by[mode]['flush_median_s'] * 1000:.0f} ms",
                     f">= {ck['target']:.0f}x less: {'met' if met else 'MISSED'}"])
rc = load("recovery")
if rc:
    rows.append([f"recovery ({rc['ckpt_bytes'] / (1 << 20):.0f} MiB checkpoint)",
                 f"resume to running again {rc['resume_to_running_s']:.2f} s (restore "
                 f"{rc['restore_s']:.2f} s); {rc['steps_lost']} steps lost; time lost "
                 f"{rc['time_lost_s']:.2f} s vs {rc['scratch_lost_s']:.2f} s from scratch",
                 "reported"])
print("| benchmark | figures | target |")
print("|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
EOF
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ ${#failed[@]} -gt 0 ]; then
  echo "$0: failed: ${failed[*]}" >&2
  exit 1
fi
