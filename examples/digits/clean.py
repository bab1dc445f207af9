#!/usr/bin/env python3
"""clean: reads every raw image file of every ingest partition, validates
and deduplicates them.

A file is kept when it parses as an 8x8 PGM with maxval 16, every pixel in
0..16 and a label in 0..9; among files with the same pixels and label only
the one with the lowest id is kept (the source sends some twice). Prints
how many files were dropped and why.
Input: raw (the gather of all ingest partitions). Output: clean (a folder:
samples.npz with ids, pixels and labels sorted by id; report.json).
"""

import json
import os
import re

import numpy as np

import task
from task import tf

NAME = re.compile(r"(?:^|/)digit-(\d+)\.pgm$")
REASONS = ("unreadable", "bad_shape", "value_range", "label_range", "duplicate")


class Reject(Exception):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def parse(text):
    """(pixels as 64 ints, label) of one PGM file, or raises Reject."""
    lines = text.splitlines()
    label = None
    body = []
    for line in lines:
        if line.startswith("#"):
            m = re.search(r"\blabel (-?\d+)\b", line)
            if m:
                label = int(m.group(1))
        else:
            body.extend(line.split())
    if len(body) < 4 or body[0] != "P2" or label is None:
        raise Reject("unreadable")
    try:
        width, height, maxval = int(body[1]), int(body[2]), int(body[3])
        pixels = [int(v) for v in body[4:]]
    except ValueError:
        raise Reject("unreadable")
    if (width, height) != (8, 8):
        raise Reject("bad_shape")
    if len(pixels) != width * height:
        raise Reject("unreadable" if len(pixels) < width * height else "bad_shape")
    if maxval != 16 or min(pixels) < 0 or max(pixels) > 16:
        raise Reject("value_range")
    if not 0 <= label <= 9:
        raise Reject("label_range")
    return pixels, label


def main():
    files = tf.shards("raw")
    if not files:
        task.fail("no raw files in %s" % task.input_path("raw"))
    dropped = dict.fromkeys(REASONS, 0)
    samples = []  # (id, pixels, label)
    for i, rel in enumerate(files):
        m = NAME.search(rel)
        if not m:
            task.fail("unexpected file %s in the raw input" % rel)
        try:
            with open(tf.shard_path("raw", i), encoding="ascii", errors="replace") as f:
                pixels, label = parse(f.read())
        except Reject as r:
            dropped[r.reason] += 1
            continue
        samples.append((int(m.group(1)), pixels, label))

    samples.sort(key=lambda s: s[0])
    seen, kept = set(), []
    for sample in samples:
        key = (tuple(sample[1]), sample[2])
        if key in seen:
            dropped["duplicate"] += 1
            continue
        seen.add(key)
        kept.append(sample)
    if not kept:
        task.fail("no valid samples in %d files" % len(files))

    out = task.output_path("clean")
    os.makedirs(out, exist_ok=True)
    task.write_atomic(os.path.join(out, "samples.npz"), task.npz_bytes(
        ids=np.array([s[0] for s in kept], dtype=np.int32),
        pixels=np.array([s[1] for s in kept], dtype=np.uint8),
        labels=np.array([s[2] for s in kept], dtype=np.uint8)))
    report = {"files": len(files), "kept": len(kept), "dropped": dropped,
              "labels": np.bincount([s[2] for s in kept], minlength=10).tolist()}
    task.write_atomic(os.path.join(out, "report.json"), json.dumps(report, indent=2) + "\n")
    task.log("%d files: %d samples kept, %d dropped (%s)" % (
        len(files), len(kept), sum(dropped.values()),
        ", ".join("%s %d" % (r, dropped[r]) for r in REASONS)))


if __name__ == "__main__":
    main()
