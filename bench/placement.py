#!/usr/bin/env python3
"""bench/placement: what storage-aware placement buys a pipeline, measured
side by side in one run. See bench/README.md.

A pipeline with the six stage kinds (ingest -> clean -> feature -> stage ->
train -> checkpoint), each moving --size bytes with the access pattern of
its kind, runs with `tierflow run`:

  placed    on the embedded default tiers (ram = /dev/shm, local and bulk
            beside the state database): placement writes each output on
            its write tier, writes it back to its home, and copies inputs
            to faster tiers ahead of need;
  all-bulk  with a tiers file holding only the bulk tier (posix, durable,
            on the same disk as local): every output written, and every
            input read, there.

Every task reads its inputs cold: it flushes them and drops them from the
page cache (posix_fadvise DONTNEED) before each pass, as a data set larger
than memory would be; tmpfs keeps its pages, as RAM does. Writes go
through the page cache, and ingest and checkpoint fsync what they wrote, as
durable writers do. The modes take turns within each repetition. The report
gives, per stage, the median task time (attempt start to end, from the
state database) of each mode and their ratio, and the median wall time of
the whole run (write-backs included, which keep the run open after its
last task). Standard library only.
"""

import argparse
import datetime
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

STAGES = ["ingest", "clean", "feature", "stage", "train", "checkpoint"]
MODES = ["placed", "all-bulk"]
BLOCK = 4096

# The task of every stage, by TIERFLOW_STAGE_KIND. Sizes come as params.
TASK = r'''
import os, random, sys, time

kind = os.environ["TIERFLOW_STAGE_KIND"]
size = int(os.environ["TIERFLOW_PARAM_SIZE"])
epochs = int(os.environ["TIERFLOW_PARAM_EPOCHS"])
chunk = 1 << 20
pattern = os.urandom(chunk)


def cold(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def write(path, nbytes, sync):
    with open(path, "wb", buffering=0) as out:
        left = nbytes
        while left > 0:
            left -= out.write(pattern[:min(chunk, left)])
        if sync:
            os.fsync(out.fileno())


def read_all(path):
    cold(path)
    with open(path, "rb", buffering=0) as f:
        while f.read(chunk):
            pass


def read_random(path, reads, seed):
    cold(path)
    blocks = os.path.getsize(path) // 4096
    rng = random.Random(seed)
    fd = os.open(path, os.O_RDONLY)
    try:
        for _ in range(reads):
            os.pread(fd, 4096, rng.randrange(blocks) * 4096)
    finally:
        os.close(fd)


out = next(v for k, v in os.environ.items() if k.startswith("TIERFLOW_OUTPUT_"))
inp = next((v for k, v in os.environ.items() if k.startswith("TIERFLOW_INPUT_")), None)
blocks = size // 4096
if kind == "ingest":                     # large sequential writes, durable
    write(out, size, sync=True)
elif kind == "clean":                    # random reads over the raw data, then a pass
    read_random(inp, blocks // 8, 1)
    read_all(inp)
    write(out, size, sync=False)
elif kind in ("feature", "stage"):       # sequential in, sequential out
    read_all(inp)
    write(out, size, sync=False)
elif kind == "train":                    # random batches, epoch after epoch
    for epoch in range(epochs):
        read_random(inp, blocks // 4, epoch)
    write(out, 1 << 20, sync=False)
elif kind == "checkpoint":               # publish the model, durable
    read_all(inp)
    write(out, 1 << 20, sync=True)
'''


def pipeline_yaml(size, epochs):
    return f"""name: placement-bench
description: six stage kinds moving {size} bytes each (bench/placement.py)
params:
  size: {size}
  epochs: {epochs}
stages:
  ingest:
    kind: ingest
    run: [python3, task.py]
    params: [size, epochs]  # task.py reads them
    outputs: {{raw: {size}}}
    cache: false
  clean:
    kind: clean
    inputs: {{raw: ingest.raw}}
    run: [python3, task.py]
    params: [size, epochs]  # task.py reads them
    outputs: {{clean: {size}}}
    cache: false
  feature:
    kind: feature
    inputs: {{clean: clean.clean}}
    run: [python3, task.py]
    params: [size, epochs]  # task.py reads them
    outputs: {{features: {size}}}
    cache: false
  stage:
    kind: stage
    inputs: {{features: feature.features}}
    run: [python3, task.py]
    params: [size, epochs]  # task.py reads them
    outputs: {{shards: {size}}}
    cache: false
  train:
    kind: train
    inputs: {{shards: stage.shards}}
    io: {{read_passes: {epochs}}}
    run: [python3, task.py]
    params: [size, epochs]  # task.py reads them
    outputs: {{model: 1MiB}}
    cache: false
  checkpoint:
    kind: checkpoint
    inputs: {{model: train.model}}
    run: [python3, task.py]
    params: [size, epochs]  # task.py reads them
    outputs: {{release: 1MiB}}
    cache: false
"""


def parse_size(text):
    units = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(float(text[:-len(unit)]) * factor)
    return int(text)


def human(nbytes):
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= factor:
            return f"{nbytes / factor:.3g} {unit}"
    return f"{nbytes} B"


def seconds(value):
    return f"{value:.2f} s" if value >= 0.1 else f"{value * 1000:.0f} ms"


def run_once(args, work, mode, index):
    state = os.path.join(work, f"state-{mode}-{index}")
    shutil.rmtree(state, ignore_errors=True)  # a failed earlier sitting's
    cmd = [args.tierflow, "run", os.path.join(work, "pipeline.yaml"), "--db",
           os.path.join(state, "tierflow.db"), "--quiet", "--slots", "2", "--progress", "plain"]
    if mode == "all-bulk":
        tiers = os.path.join(work, "bulk-only.yaml")
        with open(tiers, "w") as f:
            f.write("tiers:\n  bulk:\n    adapter: posix\n"
                    f"    root: {os.path.join(state, 'tiers', 'bulk')}\n"
                    "    scope: cluster\n    durability: durable\n")
        cmd += ["--tiers", tiers]
    start = time.monotonic()
    done = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    wall = time.monotonic() - start
    if done.returncode != 0:
        sys.exit(f"placement: {mode} run failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    db = sqlite3.connect(os.path.join(state, "tierflow.db"))
    (run_state,) = db.execute("SELECT state FROM runs").fetchone()
    if run_state != "succeeded":
        sys.exit(f"placement: {mode} run ended {run_state}")
    times = {}
    for task, started, finished in db.execute(
            "SELECT task_id, started_at, finished_at FROM attempts WHERE state = 'succeeded'"):
        times[task] = (finished - started) / 1000
    copies = db.execute("SELECT count(*), coalesce(sum(bytes), 0) FROM artifact_copies "
                        "WHERE source_tier IS NOT NULL AND state IN ('present', 'evicted')"
                        ).fetchone()
    homes = dict(db.execute("SELECT a.task_id, c.tier FROM artifact_copies c JOIN artifacts a "
                            "ON a.id = c.artifact_id WHERE c.role = 'home'"))
    db.close()
    shutil.rmtree(state, ignore_errors=True)
    ram = f"/dev/shm/tierflow-{os.getuid()}"
    if mode == "placed" and os.path.isdir(ram):
        shutil.rmtree(os.path.join(ram, "runs"), ignore_errors=True)
    return {"wall": wall, "times": times, "copies": copies, "homes": homes}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tierflow", required=True, help="the tierflow binary")
    parser.add_argument("--size", default="256MiB", help="bytes each stage moves (default 256MiB)")
    parser.add_argument("--epochs", type=int, default=3, help="train's passes over its input")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each mode (default 3)")
    parser.add_argument("--dir", help="work folder (default: a temp dir beside the state)")
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    args = parser.parse_args()
    args.tierflow = os.path.abspath(args.tierflow)
    size = parse_size(args.size)

    work = args.dir or tempfile.mkdtemp(prefix="tierflow-placement-bench.", dir=os.getcwd())
    os.makedirs(work, exist_ok=True)
    with open(os.path.join(work, "pipeline.yaml"), "w") as f:
        f.write(pipeline_yaml(size, args.epochs))
    with open(os.path.join(work, "task.py"), "w") as f:
        f.write(TASK)

    print(f"# bench/placement: six stage kinds, {human(size)} each, train {args.epochs} epochs; "
          f"{args.repeat} runs per mode, taking turns", flush=True)
    print(f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
          f"{platform.node()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}", flush=True)
    results = {mode: [] for mode in MODES}
    for index in range(args.repeat + 1):  # the first round warms up
        for mode in MODES:
            result = run_once(args, work, mode, index)
            if index > 0:
                results[mode].append(result)
            print(f"#   {'warm-up' if index == 0 else f'run {index}'} {mode}: "
                  f"{seconds(result['wall'])}", flush=True)
    if not args.dir:
        shutil.rmtree(work, ignore_errors=True)

    def median_time(mode, stage):
        return statistics.median(r["times"][stage] for r in results[mode])

    placed_homes = results["placed"][0]["homes"]
    bar = "|" if args.markdown else ""
    print(f"\n{bar} stage {bar} placed: home {bar} placed {bar} all-bulk {bar} all-bulk / placed {bar}")
    if args.markdown:
        print("|---|---|---:|---:|---:|")
    for stage in STAGES:
        placed = median_time("placed", stage)
        bulk = median_time("all-bulk", stage)
        print(f"{bar} {stage} {bar} {placed_homes.get(stage, '-')} {bar} {seconds(placed)} {bar} "
              f"{seconds(bulk)} {bar} {bulk / placed:.2f}x {bar}")
    for label, key in (("sum of task times", None), ("run wall time", "wall")):
        if key is None:
            placed = statistics.median(sum(r["times"].values()) for r in results["placed"])
            bulk = statistics.median(sum(r["times"].values()) for r in results["all-bulk"])
        else:
            placed = statistics.median(r[key] for r in results["placed"])
            bulk = statistics.median(r[key] for r in results["all-bulk"])
        print(f"{bar} **{label}** {bar} {bar} {seconds(placed)} {bar} {seconds(bulk)} {bar} "
              f"{bulk / placed:.2f}x {bar}")
    count, moved = results["placed"][0]["copies"]
    print(f"\nplaced: {count} copies between tiers per run, {human(moved)} moved")


if __name__ == "__main__":
    main()
