#!/usr/bin/env python3
"""feature: normalises the pixels, splits train/test and shards the
training set.

Pixels are scaled to 0..1, then standardised with the mean and standard
deviation of the training split (a constant pixel keeps std 1). The split
is deterministic: a sample is a test sample when a hash of its id and the
seed falls below test_fraction, so it does not depend on file order.
Params: seed, test_fraction, feature_shards. Input: clean.
Outputs: train (a folder of part-NNNNN.npz, x float32 [n, 64] and y),
test (test.npz), stats (JSON: mean, std, counts, the clean report).
"""

import json
import os

import numpy as np

import task


def is_test(ids, seed, fraction):
    h = (ids.astype(np.uint64) * np.uint64(2654435761) + np.uint64(seed)) % np.uint64(2**32)
    return h.astype(np.float64) / 2**32 < fraction


def main():
    seed = task.param("seed", int)
    fraction = task.param("test_fraction", float)
    shards = task.param("feature_shards", int)
    if not 0 < fraction < 1 or shards < 1:
        task.fail("need 0 < test_fraction < 1 and feature_shards >= 1")
    clean = task.input_path("clean")
    with np.load(os.path.join(clean, "samples.npz")) as data:
        ids, pixels, labels = data["ids"], data["pixels"], data["labels"]
    with open(os.path.join(clean, "report.json")) as f:
        report = json.load(f)

    test = is_test(ids, seed, fraction)
    x = pixels.astype(np.float64) / 16.0
    mean = x[~test].mean(axis=0)
    std = x[~test].std(axis=0)
    std[std < 1e-6] = 1.0
    z = ((x - mean) / std).astype(np.float32)
    y = labels.astype(np.int64)

    train_dir = task.output_path("train")
    os.makedirs(train_dir, exist_ok=True)
    train_idx = np.flatnonzero(~test)
    for s, part in enumerate(np.array_split(train_idx, shards)):
        task.write_atomic(os.path.join(train_dir, "part-%05d.npz" % s),
                          task.npz_bytes(ids=ids[part], x=z[part], y=y[part]))
    task.write_atomic(task.output_path("test"),
                      task.npz_bytes(ids=ids[test], x=z[test], y=y[test]))
    stats = {"pixel_scale": 16.0, "mean": mean.tolist(), "std": std.tolist(),
             "seed": seed, "test_fraction": fraction,
             "samples": {"clean": int(len(ids)), "train": int((~test).sum()),
                         "test": int(test.sum())},
             "clean_report": report}
    task.write_atomic(task.output_path("stats"), json.dumps(stats) + "\n")
    task.log("%d samples: %d train in %d shards, %d test" % (
        len(ids), (~test).sum(), shards, test.sum()))


if __name__ == "__main__":
    main()
