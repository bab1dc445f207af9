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

After each direct measurement, while the shards are still in the bucket, the
harness reads them all itself with nothing else running: GETs in order over
one kept-alive connection, no compute (the "read" row). That is "the
bandwidth measured by a direct sequential read of the same shards in the
same sitting" of issue 21, and it sets the bound a streamed trainer can
reach when the bandwidth is short: bound = read MB/s / needs MB/s (at most
1). The stream mode's target is utilisation >= 97% where the bandwidth
suffices, and utilisation / bound >= 90% where it is short.

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
import time

import dataplane as dp

MODES = ["direct", "staged", "stream"]
# The targets of issue 21: stream utilisation where the bandwidth suffices;
# stream utilisation / the bound where it is short.
FITS_TARGET = 0.97
SHORT_TARGET = 0.90


def needs_mb_s(setting):
    return setting["mib"] * dp.MIB / 1e6 / (setting["compute_ms"] / 1000)


def read_sequential(bench, setting, run_id, rep):
    """The bound's bandwidth: every shard of run `run_id` GET in order from
    the bucket over one kept-alive connection (a new client, as the direct
    trainer's), nothing else running, no compute."""
    import dataplane_s3
    key = f"{bench.prefix}/runs/{run_id}/artifacts/produce/shards/shard-%05d"
    expected = 8 + setting["mib"] * dp.MIB
    s3 = dataplane_s3.S3(bench.endpoint, dp.ACCESS_KEY, dp.SECRET_KEY)
    nbytes = 0
    started = time.monotonic()
    try:
        for i in range(setting["shards"]):
            data = s3.get(bench.bucket, key % i)
            if len(data) != expected or data[:8] != b"%08d" % i:
                sys.exit(f"data_wait: read {i}: {len(data)} bytes, header {data[:8]!r}")
            nbytes += len(data)
            del data
    finally:
        s3.close()
    elapsed = time.monotonic() - started
    mb_s = nbytes / 1e6 / elapsed
    bound = min(1.0, mb_s / needs_mb_s(setting))
    out = {"setting": setting["name"], "mode": "read", "run": run_id,
           "shards": setting["shards"], "mib": setting["mib"], "compute_ms": setting["compute_ms"],
           "bytes": nbytes, "read_s": elapsed, "tier_mb_s": mb_s, "bound": bound}
    print(f"#   {setting['name']}-read-{rep + 1}: {mb_s:.0f} MB/s sequential, "
          f"bound {bound * 100:.1f}%", flush=True)
    return out


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
        # Where the rest of the time goes: the trainer's own first line (its
        # process start before it), and from its last line to the attempt's
        # end in the store (its exit, the engine noticing).
        "trainer_code_s": (measured["started_ms"] - t0) / 1000,
        "after_trainer_s": (finished - measured["ended_ms"]) / 1000,
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
    read rows: the median bound; the lower one of an even count), with the
    range of all repetitions."""
    chosen = []
    for setting in settings:
        for mode in MODES + ["read"]:
            by = "bound" if mode == "read" else "utilisation"
            runs = sorted((r for r in results if r["setting"] == setting["name"]
                           and r["mode"] == mode), key=lambda r: r[by])
            pick = dict(runs[(len(runs) - 1) // 2])
            pick["range"] = (runs[0][by], runs[-1][by])
            pick["repeats"] = len(runs)
            chosen.append(pick)
    return chosen


def report(chosen, settings, target):
    rows = []
    for setting in settings:
        base = next(r for r in chosen if r["setting"] == setting["name"] and r["mode"] == "direct")
        for r in (r for r in chosen if r["setting"] == setting["name"]):
            need = needs_mb_s(setting)
            if r["mode"] == "read":
                rows.append([setting["name"], "read (bound)", f"{r['shards']} x {r['mib']} MiB", "-",
                             f"{need:.0f}", f"{r['tier_mb_s']:.0f}", "-", dp.seconds(r["read_s"]),
                             "-", "-", f"bound {r['bound'] * 100:.1f}%",
                             f"{r['range'][0] * 100:.1f}–{r['range'][1] * 100:.1f}%", "", ""])
                continue
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


def bound_rows(results, settings):
    """Per setting: the stream mode's utilisation against the bound that the
    sequential read of the same repetition sets; medians over repetitions
    with their range."""
    rows = []
    for setting in settings:
        def of(mode, field):
            return [r[field] for r in results if r["setting"] == setting["name"] and r["mode"] == mode]

        reads, bounds = of("read", "tier_mb_s"), of("read", "bound")
        utils = of("stream", "utilisation")
        ratios = [u / b for u, b in zip(utils, bounds)]
        med = lambda xs: sorted(xs)[(len(xs) - 1) // 2]  # noqa: E731  (the lower median)
        if setting["fits"]:
            value, target, what = med(utils), FITS_TARGET, "utilisation"
        else:
            value, target, what = med(ratios), SHORT_TARGET, "utilisation / bound"
        rows.append({"setting": setting["name"], "needs_mb_s": needs_mb_s(setting),
                     "read_mb_s": med(reads), "read_range": (min(reads), max(reads)),
                     "bound": med(bounds), "bound_range": (min(bounds), max(bounds)),
                     "stream": med(utils), "stream_range": (min(utils), max(utils)),
                     "ratio": med(ratios), "ratio_range": (min(ratios), max(ratios)),
                     "what": what, "target": target, "met": value >= target})
    return rows


def report_bounds(rows):
    return dp.markdown_table(
        ["setting", "needs MB/s", "sequential read MB/s (range)", "bound (range)",
         "stream utilisation (range)", "utilisation / bound (range)", "target", "verdict"],
        [[r["setting"], f"{r['needs_mb_s']:.0f}",
          f"{r['read_mb_s']:.0f} ({r['read_range'][0]:.0f}–{r['read_range'][1]:.0f})",
          f"{r['bound'] * 100:.1f}% ({r['bound_range'][0] * 100:.1f}–{r['bound_range'][1] * 100:.1f}%)",
          f"{r['stream'] * 100:.1f}% ({r['stream_range'][0] * 100:.1f}–"
          f"{r['stream_range'][1] * 100:.1f}%)",
          f"{r['ratio'] * 100:.1f}% ({r['ratio_range'][0] * 100:.1f}–"
          f"{r['ratio_range'][1] * 100:.1f}%)",
          f"{r['what']} >= {r['target'] * 100:.0f}%", "met" if r["met"] else "MISSED"]
         for r in rows], "lrrrrrll")


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
    parser.add_argument("--sdk", help="the tierflow_task.py the trainers import (default: "
                        "sdk/python's of this tree; a baseline binary gets its own commit's)")
    args = parser.parse_args()
    target = 0.90
    settings = [
        {"name": "fits", "fits": True, "first": True, "shards": args.shards,
         "mib": args.shard_mib, "compute_ms": args.compute_ms},
        {"name": "short", "fits": False, "first": False, "shards": args.short_shards,
         "mib": args.short_shard_mib, "compute_ms": args.short_compute_ms},
    ]
    bench = dp.Bench(args, "data_wait")
    if args.sdk:
        shutil.copy(args.sdk, os.path.join(bench.work, "tierflow_task.py"))
    dp.header("bench/data_wait: direct from S3 vs staged-then-start vs streaming prefetch")
    results = []
    try:
        for rep in range(args.repeat):
            for setting in settings:
                for mode in MODES:
                    results.append(measure(bench, setting, mode, rep))
                    if mode == "direct":  # the shards of that run are in the bucket
                        results.append(read_sequential(bench, setting, results[-1]["run"], rep))
    finally:
        bench.cleanup(args.keep)
    chosen = median_runs(results, settings)
    print()
    print(report(chosen, settings, target))
    bounds = bound_rows(results, settings)
    print()
    print(report_bounds(bounds))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"target": target, "settings": settings, "results": chosen,
                       "bounds": bounds, "all": results}, f, indent=1)


if __name__ == "__main__":
    main()
