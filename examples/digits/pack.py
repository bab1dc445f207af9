#!/usr/bin/env python3
"""stage: packs the training features into shuffled training shards.

Gathers the feature shards, shuffles the samples once (seeded), and writes
pack_shards files shard-NNNNN.npz (uncompressed: x float32 [n, 64], y
int64), which train streams one by one.
Params: seed, pack_shards. Input: train (feature shards). Output: shards.
"""

import os

import numpy as np

import task
from task import tf


def main():
    count = task.param("pack_shards", int)
    if count < 1:
        task.fail("pack_shards must be >= 1, got %d" % count)
    xs, ys = [], []
    for i, rel in enumerate(tf.shards("train")):
        if not rel.endswith(".npz"):
            continue
        with np.load(tf.shard_path("train", i)) as part:
            xs.append(part["x"])
            ys.append(part["y"])
    if not xs:
        task.fail("no feature shards in %s" % task.input_path("train"))
    x, y = np.concatenate(xs), np.concatenate(ys)
    order = np.random.default_rng(task.param("seed", int)).permutation(len(y))

    out = task.output_path("shards")
    os.makedirs(out, exist_ok=True)
    for s, part in enumerate(np.array_split(order, count)):
        task.write_atomic(os.path.join(out, "shard-%05d.npz" % s),
                          task.npz_bytes(x=x[part], y=y[part]))
    task.log("%d training samples packed into %d shards -> %s" % (len(y), count, out))


if __name__ == "__main__":
    main()
