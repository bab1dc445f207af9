#!/usr/bin/env python3
"""bench/data_wait: how much of a trainer's time goes to waiting for data
read from a slow tier, three ways side by side in one run. See
bench/README.md.

A synthetic trainer (bench/dataplane_task.py `data`) reads S shards of M
MiB, one per batch, and computes for a fixed time on each (a sleep, as
MLPerf Storage's DLIO emulates an accelerator). The shards are the output
of a `produce` stage whose home is the S3 bulk tier (OpenStack Swift with
s3api on loopback, scripts/swift.sh). Three modes:

  direct  the trainer GETs each shard from the bulk tier itself when it
          needs it (signed with SigV4 over one kept-alive connection; the
          stage has no input, only `needs: [produce]`): no tierflow copy
  staged  the shards are the trainer's input, placed on the ram tier and
          not streamed: tierflow copies them from the bulk tier and starts
          the trainer when the copy is complete
  stream  the same input with `stream: true`: the trainer starts once the
          first shard is on ram; tierflow copies the rest in order, at most
          8 ahead of what the trainer opened (tierflow_task.open_shard)

So that tierflow copies from the bulk tier (and not from the local disk the
producer wrote on, which it prefers while that copy exists), every mode is
measured as a `tierflow resume`: a preparing `tierflow run` produces the
shards, writes them back to the bucket and ends failed, because the
trainer's first attempt exits 1 before reading anything (it is "armed" by a
file only for the resume). By then every copy but the one in the bucket is
evicted, as for a data set made by an earlier run: the resume runs the
trainer again, and its input comes from the bucket.

Accelerator utilisation as MLPerf Storage defines it: compute time / total
time. Compute is what the trainer slept; total runs from when the trainer
could have started (the run_resumed event: the producer's output is
complete) to the end of its attempt in the store, so the staged mode's wait
for its copy counts. Two settings: one where the slow tier's bandwidth
suffices for the compute (M MiB per C ms well below what Swift gives) and
one where it does not. Each setting runs --repeat times, the modes taking
turns; the table shows, per mode, the repetition with the median
utilisation and the range over all. Standard library only.
"""

import argparse
import json
import os
import shutil
import sys

import dataplane as dp

MODES = ["direct", "staged", "stream"]


def pipeline_yaml(bench, setting, mode, result, go):
    name = f"data-wait-{setting['name']}-{mode}"  # the same in every repetition
    shards, mib = setting["shards"], setting["mib"]
    if mode == "direct":
        train_io = "    needs: [produce]\n"
    else:
        stream = "true" if mode == "stream" else "false"
        train_io = f"    inputs: {{shards: {{from: produce.shards, stream: {stream}}}}}\n"
    env = dict(bench.task_env(), BENCH_RESULT=result, BENCH_GO=go)
    env_yaml = "".join(f"      {k}: {json.dumps(v)}\n" for k, v in env.items())
    return f"""name: {name}
description: bench/data_wait.py, setting {setting['name']}, mode {mode}
params:
  shards: {shards}
  shard_mib: {mib}
  compute_ms: {setting['compute_ms']}
stages:
  produce:
    kind: stage
    run: [python3, dataplane_task.py, produce]
    params: all  # dataplane_task.py reads its params itself
    outputs: {{shards: {{size: {shards * (mib * dp.MIB + 8)}, durability: durable}}}}
    cache: false
  train:
    kind: train
{train_io}    run: [python3, dataplane_task.py, data, {mode}]
    params: all  # dataplane_task.py reads its params itself
    io: {{read_passes: 1}}
    env:
{env_yaml}    outputs: {{model: 1KiB}}
    cache: false
"""


def measure(bench, setting, mode, rep):
    tag = f"{setting['name']}-{mode}-{rep + 1}"
    result = os.path.join(bench.work, f"result-{tag}")
    go = os.path.join(bench.work, f"go-{tag}")
    pipeline = bench.write(f"{tag}.yaml", pipeline_yaml(bench, setting, mode, result, go))
    shutil.rmtree(bench.ram, ignore_errors=True)  # what earlier runs left in RAM
    db = os.path.join(bench.work, f"state-{tag}", "tierflow.db")
    if mode == "staged" and setting["first"] and rep == 0:
        plan = bench.run(["plan", pipeline, "--tiers", bench.tiers, "--db", db]).stdout
        line = next((l.strip() for l in plan.splitlines() if l.strip().startswith("train reads")), "")
        print(f"#   plan: {line}", flush=True)
        if "from ram" not in line:
            sys.exit(f"data_wait: the trainer's input is not placed on ram:\n{plan}")
    # Prepare: produce, write back to the bucket, the trainer's attempt 1 fails.
    prepared = bench.run(["run", pipeline, "--tiers", bench.tiers, "--db", db, "--quiet",
                          "--slots", "2"], check=False)
    store = dp.Store(db)
    run_id, state = store.one("SELECT id, state FROM runs")
    produced = store.value("SELECT state FROM tasks WHERE id = 'produce'")
    if prepared.returncode != 1 or state != "failed" or produced != "succeeded":
        sys.exit(f"data_wait: preparing {tag} should end failed with produce succeeded; "
                 f"exit {prepared.returncode}, run {state}, produce {produced}:\n"
                 f"{prepared.stdout}\n{prepared.stderr}")
    copies = store.all("SELECT c.tier, c.role FROM artifact_copies c JOIN artifacts a ON "
                       "a.id = c.artifact_id WHERE a.task_id = 'produce' AND c.state = 'present'")
    store.close()
    if copies != [("bulk", "home")]:
        sys.exit(f"data_wait: after preparing {tag} the shards should be only in the bucket, "
                 f"found {copies}")
    # Measure: the resume runs the armed trainer.
    open(go, "w").close()
    resumed = bench.run(["resume", run_id, "--db", db, "--quiet", "--slots", "2"], check=False)
    store = dp.Store(db)
    state = store.value("SELECT state FROM runs")
    if resumed.returncode != 0 or state != "succeeded":
        sys.exit(f"data_wait: resuming {tag} exited {resumed.returncode}, run {state}:\n"
                 f"{resumed.stdout}\n{resumed.stderr}")
    t0 = store.value("SELECT max(time) FROM events WHERE kind = 'run_resumed'")
    attempt = store.one("SELECT number, started_at, finished_at, coalesce(input_wait_ms, 0), "
                        "coalesce(data_wait_ms, 0) FROM attempts WHERE task_id = 'train' AND "
                        "state = 'succeeded'")
    number, started, finished, input_wait, data_wait = attempt
    copy_s = None
    if mode != "direct":
        copy = store.one("SELECT c.id, c.source_tier, c.created_at FROM artifact_copies c JOIN "
                         "artifacts a ON a.id = c.artifact_id WHERE a.task_id = 'produce' AND "
                         "c.tier = 'ram' AND c.created_at >= ?", t0)
        if copy is None or copy[1] != "bulk":
            sys.exit(f"data_wait: {tag}: expected a copy from bulk to ram after the resume, "
                     f"found {copy}")
        copied = store.value("SELECT min(time) FROM events WHERE kind = 'copied' AND "
                             "task_id = 'produce' AND message LIKE '%to tier ram%' AND time >= ?",
                             copy[2])
        copy_s = (copied - copy[2]) / 1000 if copied else None
    store.close()
    measured = dp.read_json(f"{result}.attempt-{number}.json")
    total = (finished - t0) / 1000
    nbytes = measured["bytes"]
    out = {
        "setting": setting["name"], "mode": mode, "run": run_id,
        "shards": setting["shards"], "mib": setting["mib"], "compute_ms": setting["compute_ms"],
        "bytes": nbytes, "compute_s": measured["compute_s"], "total_s": total,
        "utilisation": measured["compute_s"] / total,
        "input_wait_s": input_wait / 1000, "helper_wait_s": data_wait / 1000,
        "fetch_s": measured["fetch_s"], "copy_s": copy_s,
        "start_s": (started - t0) / 1000,
        # The slow tier as this mode saw it: the trainer's own GETs, or the
        # engine's copy (paced by the reader when streamed).
        "tier_mb_s": nbytes / 1e6 / (measured["fetch_s"] if mode == "direct" else copy_s)
        if (mode == "direct" or copy_s) else None,
    }
    print(f"#   {tag}: utilisation {out['utilisation'] * 100:.1f}% "
          f"(compute {out['compute_s']:.2f} s of {total:.2f} s)", flush=True)
    return out


def median_runs(results, settings):
    """Per setting and mode, the repetition with the median utilisation (the
    lower one of an even count), with the range of all repetitions."""
    chosen = []
    for setting in settings:
        for mode in MODES:
            runs = sorted((r for r in results if r["setting"] == setting["name"]
                           and r["mode"] == mode), key=lambda r: r["utilisation"])
            pick = dict(runs[(len(runs) - 1) // 2])
            pick["range"] = (runs[0]["utilisation"], runs[-1]["utilisation"])
            pick["repeats"] = len(runs)
            chosen.append(pick)
    return chosen


def report(chosen, settings, target):
    rows = []
    for setting in settings:
        base = next(r for r in chosen if r["setting"] == setting["name"] and r["mode"] == "direct")
        for r in (r for r in chosen if r["setting"] == setting["name"]):
            need = setting["mib"] * dp.MIB / 1e6 / (setting["compute_ms"] / 1000)
            if r["mode"] == "stream":
                verdict = ("met" if r["utilisation"] >= target else "MISSED") if setting["fits"] \
                    else "n/a (bandwidth short)"
            else:
                verdict = ""
            rows.append([
                setting["name"], r["mode"],
                f"{r['shards']} x {r['mib']} MiB", f"{setting['compute_ms']} ms",
                f"{need:.0f}", f"{r['tier_mb_s']:.0f}" if r["tier_mb_s"] else "-",
                dp.seconds(r["start_s"]), dp.seconds(r["fetch_s"]), dp.seconds(r["compute_s"]),
                dp.seconds(r["total_s"]), f"{r['utilisation'] * 100:.1f}%",
                f"{r['range'][0] * 100:.1f}–{r['range'][1] * 100:.1f}%",
                f"{r['utilisation'] / base['utilisation']:.2f}x", verdict])
    return dp.markdown_table(
        ["setting", "mode", "shards", "compute/shard", "needs MB/s", "slow tier MB/s",
         "trainer started after", "trainer in reads", "compute", "total", "utilisation",
         "range", "vs direct",
         f"target ({target * 100:.0f}%)"], rows, "llrrrrrrrrrrrl")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tierflow", required=True, help="the tierflow binary")
    parser.add_argument("--swift-dir", required=True, help="DIR of `scripts/swift.sh start DIR`")
    parser.add_argument("--dir", help="work folder (default ./dataplane); data_wait/ inside it")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--shards", type=int, default=40, help="setting 1: shards (default 40)")
    parser.add_argument("--shard-mib", type=int, default=8, help="setting 1: MiB per shard (8)")
    parser.add_argument("--compute-ms", type=int, default=160,
                        help="setting 1: compute per shard, ms (160)")
    parser.add_argument("--short-shards", type=int, default=16, help="setting 2: shards (16)")
    parser.add_argument("--short-shard-mib", type=int, default=16,
                        help="setting 2: MiB per shard (16)")
    parser.add_argument("--short-compute-ms", type=int, default=40,
                        help="setting 2: compute per shard, ms (40)")
    parser.add_argument("--repeat", type=int, default=2,
                        help="repetitions, the modes taking turns in each (default 2)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    target = 0.90
    settings = [
        {"name": "fits", "fits": True, "first": True, "shards": args.shards,
         "mib": args.shard_mib, "compute_ms": args.compute_ms},
        {"name": "short", "fits": False, "first": False, "shards": args.short_shards,
         "mib": args.short_shard_mib, "compute_ms": args.short_compute_ms},
    ]
    bench = dp.Bench(args, "data_wait")
    dp.header("bench/data_wait: direct from S3 vs staged-then-start vs streaming prefetch")
    results = []
    try:
        for rep in range(args.repeat):
            for setting in settings:
                for mode in MODES:
                    results.append(measure(bench, setting, mode, rep))
    finally:
        bench.cleanup(args.keep)
    chosen = median_runs(results, settings)
    print()
    print(report(chosen, settings, target))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"target": target, "settings": settings, "results": chosen,
                       "all": results}, f, indent=1)


if __name__ == "__main__":
    main()
