#!/usr/bin/env python3
"""bench/checkpoint: how long a trainer is blocked per checkpoint, written
synchronously to durable storage vs handed to tierflow's async multi-tier
checkpoints, side by side in one run. See bench/README.md.

A synthetic trainer (bench/dataplane_task.py `steps`) computes for a fixed
time per step (a sleep, as MLPerf Storage's DLIO emulates an accelerator)
and every --every steps checkpoints --ckpt-mib MiB of state held in memory.
Four modes, each one `tierflow run` on the same tiers (ram, local disk,
S3 bulk = OpenStack Swift with s3api on loopback):

  sync-s3     one PUT of the checkpoint straight to the S3 bulk tier, the
              tier tierflow flushes to; the trainer blocks until the server
              has it (Swift fsyncs before it answers)
  sync-posix  written into a folder on the local disk, fsynced, renamed
              into place and the folder fsynced (what a durable posix tier
              does); the trainer blocks until then
  async       tierflow_task.checkpoint_path + commit_checkpoint into
              TIERFLOW_CHECKPOINT_DIR (on the ram tier); tierflow flushes it
              to the bulk tier in the background and keeps the last 2
  async-save  tierflow_task.save_checkpoint: the state is copied into the
              helper's staging buffer (reused from one checkpoint to the
              next) and the call returns; the helper writes it into
              TIERFLOW_CHECKPOINT_DIR and commits it in a background thread,
              then tierflow flushes it as for async. A save waits for the
              one before it, and the trainer waits for the last one before
              it ends (counted in "blocked in all")

Blocked time is measured inside the trainer around the checkpoint call. For
both async modes, the engine's flush time (hash + upload) comes from the `checkpoints`
table of the store, and the benchmark fails unless every checkpoint the
trainer committed is recorded flushed (present, or deleted by `keep`) with
the checkpoint's size, and each present one is in the bucket with that
size. Standard library only.
"""

import argparse
import json
import os
import statistics
import sys

import dataplane as dp

MODES = ["sync-s3", "sync-posix", "async", "async-save"]
ASYNC = ("async", "async-save")
SYNC = ("sync-s3", "sync-posix")
KEEP = 2


def pipeline_yaml(bench, args, mode, result):
    env = dict(bench.task_env(), BENCH_RESULT=result,
               BENCH_DURABLE_DIR=os.path.join(bench.work, "durable-posix"))
    env_yaml = "".join(f"      {k}: {json.dumps(v)}\n" for k, v in env.items())
    checkpoints = f"    checkpoints: {{keep: {KEEP}}}\n" if mode in ASYNC else ""
    return f"""name: checkpoint-{mode}
description: bench/checkpoint.py, mode {mode}
params:
  steps: {args.steps}
  step_ms: {args.step_ms}
  every: {args.every}
  ckpt_mib: {args.ckpt_mib}
stages:
  train:
    kind: train
    run: [python3, dataplane_task.py, steps, {mode}]
    params: all  # dataplane_task.py reads its params itself
{checkpoints}    env:
{env_yaml}    outputs: {{model: 1KiB}}
    cache: false
"""


def verify_flushes(bench, store, measured, count):
    """Every committed checkpoint flushed with its size; the kept ones in the bucket."""
    rows = store.all("SELECT name, step, state, bytes, flush_ms, uri, tier FROM checkpoints "
                     "ORDER BY step")
    problems = []
    if len(rows) != count:
        problems.append(f"{len(rows)} checkpoints recorded, the trainer committed {count}")
    for name, step, state, nbytes, flush_ms, uri, tier in rows:
        if state not in ("present", "deleted") or tier != "bulk":
            problems.append(f"{name}: state {state} on tier {tier}")
        if nbytes != measured["checkpoint_bytes"]:
            problems.append(f"{name}: {nbytes} bytes recorded, the trainer wrote "
                            f"{measured['checkpoint_bytes']}")
        if flush_ms is None:
            problems.append(f"{name}: no flush time")
    present = [r for r in rows if r[2] == "present"]
    if len(present) != min(KEEP, count):
        problems.append(f"{len(present)} checkpoints present, keep is {KEEP}")
    prefix = f"s3://{bench.bucket}/"
    for name, _, _, _, _, uri, _ in present:
        size = bench.s3.size(bench.bucket, uri[len(prefix):] + "/state.bin") \
            if uri.startswith(prefix) else None
        if size != measured["checkpoint_bytes"]:
            problems.append(f"{name}: {uri}/state.bin in the bucket has {size} bytes")
    for name, _, state, _, _, uri, _ in rows:
        if state == "deleted" and uri.startswith(prefix) and \
                bench.s3.size(bench.bucket, uri[len(prefix):] + "/state.bin") is not None:
            problems.append(f"{name}: deleted by keep, but still in the bucket")
    if problems:
        sys.exit("checkpoint: async checkpoints not all flushed:\n  " + "\n  ".join(problems))
    return [r[4] / 1000 for r in rows]


def measure(bench, args, mode):
    result = os.path.join(bench.work, f"result-{mode}")
    pipeline = bench.write(f"{mode}.yaml", pipeline_yaml(bench, args, mode, result))
    db = os.path.join(bench.work, f"state-{mode}", "tierflow.db")
    os.makedirs(os.path.join(bench.work, "durable-posix"), exist_ok=True)
    bench.run(["run", pipeline, "--tiers", bench.tiers, "--db", db, "--quiet", "--slots", "2"])
    store = dp.Store(db)
    run_state = store.value("SELECT state FROM runs")
    started, finished = store.one("SELECT started_at, finished_at FROM attempts "
                                  "WHERE task_id = 'train' AND state = 'succeeded'")
    measured = dp.read_json(f"{result}.attempt-1.json")
    count = len(measured["blocked_s"])
    flushes = verify_flushes(bench, store, measured, count) if mode in ASYNC else []
    store.close()
    if run_state != "succeeded":
        sys.exit(f"checkpoint: {mode} run ended {run_state}")
    blocked = measured["blocked_s"]
    out = {"mode": mode, "checkpoints": count, "bytes": measured["checkpoint_bytes"],
           "blocked_s": blocked, "blocked_median_s": statistics.median(blocked),
           "blocked_max_s": max(blocked),
           "blocked_total_s": sum(blocked) + measured["final_wait_s"],
           "final_wait_s": measured["final_wait_s"],
           "compute_s": measured["compute_s"], "task_s": (finished - started) / 1000,
           "commit_median_s": statistics.median(measured["commit_s"]) if measured["commit_s"] else None,
           "flush_s": flushes,
           "flush_median_s": statistics.median(flushes) if flushes else None}
    print(f"#   {mode}: blocked {dp.seconds(out['blocked_median_s'])} per checkpoint (median of "
          f"{count})" + (f", flush {dp.seconds(out['flush_median_s'])}" if flushes else ""),
          flush=True)
    return out


def report(results, target):
    by = {r["mode"]: r for r in results}
    rows = []
    for r in results:
        mb_s = r["bytes"] / 1e6 / r["blocked_median_s"]
        if r["mode"] in ASYNC:
            ratio = [f"{by[m]['blocked_median_s'] / r['blocked_median_s']:.1f}x"
                     for m in SYNC if m in by]
            verdict = "met" if all(by[m]["blocked_median_s"] >= target * r["blocked_median_s"]
                                   for m in SYNC if m in by) else "MISSED"
        else:
            ratio, verdict = [], ""
        blocked = dp.seconds(r["blocked_median_s"])
        if r["commit_median_s"] is not None:
            blocked += f" (commit {r['commit_median_s'] * 1000:.1f} ms)"
        rows.append([r["mode"], r["checkpoints"], dp.human(r["bytes"]),
                     blocked, dp.seconds(r["blocked_max_s"]),
                     f"{mb_s:.0f}", dp.seconds(r["blocked_total_s"]), dp.seconds(r["compute_s"]),
                     dp.seconds(r["task_s"]),
                     dp.seconds(r["flush_median_s"]) if r["flush_median_s"] else "-",
                     " / ".join(ratio) or "-", verdict])
    return dp.markdown_table(
        ["mode", "checkpoints", "size", "blocked (median)", "blocked (max)", "MB/s as blocked",
         "blocked in all", "compute", "task time", "flush (median)", "sync-s3 / sync-posix vs async",
         f"target ({target:.0f}x)"], rows, "lrrrrrrrrrrl")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tierflow", required=True, help="the tierflow binary")
    parser.add_argument("--swift-dir", required=True, help="DIR of `scripts/swift.sh start DIR`")
    parser.add_argument("--dir", help="work folder (default ./dataplane); checkpoint/ inside it")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--steps", type=int, default=25, help="training steps (25)")
    parser.add_argument("--step-ms", type=int, default=400, help="compute per step, ms (400)")
    parser.add_argument("--every", type=int, default=5, help="a checkpoint every N steps (5)")
    parser.add_argument("--ckpt-mib", type=int, default=128, help="checkpoint size, MiB (128)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    target = 10.0
    bench = dp.Bench(args, "checkpoint")
    dp.header(f"bench/checkpoint: {args.ckpt_mib} MiB every {args.every} steps of "
              f"{args.step_ms} ms, sync to durable vs async multi-tier")
    try:
        results = [measure(bench, args, mode) for mode in MODES]
    finally:
        bench.cleanup(args.keep)
    print()
    print(report(results, target))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"target": target, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
