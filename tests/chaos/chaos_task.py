#!/usr/bin/env python3
"""The one task script of the chaos pipeline (tests/chaos/chaos.py), standard
library only: `python3 chaos_task.py STAGE`, following the task contract of
docs/running.md (inputs, outputs, item and checkpoint folder in TIERFLOW_*).

What a task writes depends only on its item and its inputs, never on its run,
attempt or timing, so chaos.py can compare every output the engine recorded
with the same task run by hand once (reference mode). Every task also appends
a START line when it begins and an END line just before it exits to the side
effect log named by CHAOS_SIDE_LOG (outside every tier): chaos.py checks that
each line belongs to a recorded attempt and was written before that task's
success was committed.
"""
import hashlib
import json
import os
import random
import sys
import time

SLEEP = float(os.environ.get("CHAOS_SLEEP", "1"))  # 0: the by-hand reference run
TRAIN_STEPS = 8


def side_effect(kind, extra=""):
    log = os.environ.get("CHAOS_SIDE_LOG")
    if not log:
        return
    line = "%s %s %s %s %d %d %s\n" % (kind, os.environ.get("TIERFLOW_RUN_ID", "-"),
                                      os.environ.get("TIERFLOW_TASK_ID", "-"),
                                      os.environ.get("TIERFLOW_ATTEMPT", "0"),
                                      time.time_ns() // 1_000_000, os.getpid(), extra)
    # One write(2) of a short line on O_APPEND: lines of concurrent tasks never mix.
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def nap(seconds):
    if SLEEP:
        time.sleep(seconds * SLEEP)


def write_file(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def tree_digest(root):
    """sha256 over a tree's sorted relative paths and file bytes."""
    h = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            h.update(os.path.relpath(path, root).encode() + b"\0")
            with open(path, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def gather_entries(folder):
    """A gather's folder: one entry per item, in item order. Every entry counts,
    as the contract says (docs/running.md); the listing goes to the attempt's log."""
    entries = sorted(os.listdir(folder), key=lambda name: (len(name), name))
    print("gather %s: %s" % (folder, " ".join(entries)), file=sys.stderr)
    return entries


def ingest(env):
    item = int(env["TIERFLOW_ITEM"])
    nap(0.25)
    write_file(env["TIERFLOW_OUTPUT_RAW"], random.Random(item).randbytes(48 * 1024))


def transform(env):
    item = int(env["TIERFLOW_ITEM"])
    raw = env["TIERFLOW_INPUT_RAW"]
    shards = [open(os.path.join(raw, e), "rb").read() for e in gather_entries(raw)]
    nap(0.3)
    out = env["TIERFLOW_OUTPUT_PART"]
    mine = shards[item % len(shards)]
    write_file(os.path.join(out, "summary.txt"),
               ("%d %d %d\n" % (item, len(shards), sum(map(sum, shards)) + item)).encode())
    write_file(os.path.join(out, "data", "chunk.bin"), mine[item:] + mine[:item])
    write_file(os.path.join(out, "data", "nested", "deep.txt"),
               hashlib.sha256(b"".join(shards) + bytes([item])).hexdigest().encode())
    # Sorts before data/ as a string, after it as a path: the tree hash sorts as paths.
    write_file(os.path.join(out, "data-x.txt"), b"%d\n" % item)
    os.makedirs(os.path.join(out, "empty"))


def merge(env):
    parts = env["TIERFLOW_INPUT_PART"]
    out = env["TIERFLOW_OUTPUT_TABLE"]
    index = []
    nap(0.2)
    for n, entry in enumerate(gather_entries(parts)):
        source = os.path.join(parts, entry)
        for folder, _, files in os.walk(source):
            for name in files:
                path = os.path.join(folder, name)
                relative = os.path.relpath(path, source)
                write_file(os.path.join(out, "part-%d" % n, relative), open(path, "rb").read())
                index.append("part-%d/%s" % (n, relative))
    write_file(os.path.join(out, "index.json"), json.dumps(sorted(index)).encode())


def train(env):
    """TRAIN_STEPS steps, a committed checkpoint after each one; an attempt
    starts after the newest committed checkpoint it finds."""
    table = tree_digest(env["TIERFLOW_INPUT_TABLE"])
    ckpt = env["TIERFLOW_CHECKPOINT_DIR"]
    step, acc = 0, int(table[:15], 16)
    markers = [e for e in os.listdir(ckpt) if e.startswith("step-") and e.endswith(".committed")]
    resumed = -1
    for marker in sorted(markers, reverse=True):
        state = os.path.join(ckpt, marker[:-len(".committed")], "state.json")
        if os.path.isfile(state):
            saved = json.load(open(state))
            step, acc, resumed = saved["step"] + 1, saved["acc"], saved["step"]
            break
    side_effect("CKPT", "resumed_from=%d" % resumed)
    while step < TRAIN_STEPS:
        nap(0.15)
        acc = (acc * 31 + int(hashlib.sha256(b"%s %d" % (table.encode(), step)).hexdigest()[:12],
                              16)) % (1 << 61)
        folder = os.path.join(ckpt, "step-%08d" % step)
        os.makedirs(folder, exist_ok=True)
        write_file(os.path.join(folder, "state.json"), json.dumps({"step": step, "acc": acc}).encode())
        marker = folder + ".committed"
        with open(marker + ".tmp", "w") as f:
            f.write(json.dumps({"step": step}))
        os.rename(marker + ".tmp", marker)
        step += 1
    write_file(env["TIERFLOW_OUTPUT_MODEL"], json.dumps({"acc": acc, "steps": TRAIN_STEPS}).encode())


def report(env):
    raw = env["TIERFLOW_INPUT_RAW"]
    out = env["TIERFLOW_OUTPUT_RELEASE"]
    nap(0.1)
    write_file(os.path.join(out, "model.json"), open(env["TIERFLOW_INPUT_MODEL"], "rb").read())
    write_file(os.path.join(out, "raw.sha256"), tree_digest(raw).encode())


STAGES = {"ingest": ingest, "transform": transform, "merge": merge, "train": train, "report": report}

if __name__ == "__main__":
    side_effect("START")
    STAGES[sys.argv[1]](os.environ)
    side_effect("END")
