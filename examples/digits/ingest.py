#!/usr/bin/env python3
"""ingest (foreach item = partition): writes one partition of the digits as
many small raw files, the way images arrive from a source.

The source is the digits data shipped with Debian's python3-sklearn
(sklearn/datasets/data/digits.csv.gz: 1797 8x8 images, pixels 0..16, and
their labels), found without importing scikit-learn. Sample k belongs to
partition k % partitions. Each sample becomes one PGM image
`digit-<id>.pgm` (ASCII "P2", 8x8, maxval 16) with its label in a comment.
Like a real feed it is imperfect: some samples arrive twice under a new id,
and a few files are broken (wrong shape, pixel out of range, label out of
range, truncated), for clean to find. Deterministic for a given seed.
Params: partitions, seed, source (empty: find it). Output: raw (a folder).
"""

import gzip
import importlib.util
import os
import random
import sys

import task

DUPLICATE_ID_OFFSET = 100000
BROKEN_ID_OFFSET = 200000


def source_path():
    configured = os.environ.get("TIERFLOW_PARAM_SOURCE", "")
    if configured:
        return configured
    spec = importlib.util.find_spec("sklearn")  # locates the package, imports nothing
    if spec is None or not spec.submodule_search_locations:
        task.fail("scikit-learn is not installed for %s: apt-get install python3-sklearn "
                  "(or pass --param source=PATH/digits.csv.gz)" % sys.executable)
    for location in spec.submodule_search_locations:
        path = os.path.join(location, "datasets", "data", "digits.csv.gz")
        if os.path.exists(path):
            return path
    task.fail("no datasets/data/digits.csv.gz in the sklearn package at %s"
              % list(spec.submodule_search_locations))


def pgm(sample_id, pixels, label, shape=(8, 8)):
    rows = [" ".join(str(p) for p in pixels[r * shape[1]:(r + 1) * shape[1]])
            for r in range(shape[0])]
    return "P2\n# digit %d label %s\n%d %d\n16\n%s\n" % (
        sample_id, label, shape[1], shape[0], "\n".join(rows))


def main():
    partition = int(task.item())
    partitions = task.param("partitions", int)
    rng = random.Random(task.param("seed", int) * 1000003 + partition)
    path = source_path()
    with gzip.open(path, "rt") as f:
        rows = [line.strip().split(",") for line in f if line.strip()]

    out = task.output_path("raw")
    os.makedirs(out, exist_ok=True)
    written = duplicates = broken = 0
    for sample_id in range(partition, len(rows), partitions):
        values = [int(float(v)) for v in rows[sample_id]]
        pixels, label = values[:64], values[64]
        files = [(sample_id, pgm(sample_id, pixels, label))]
        roll = rng.random()
        if roll < 0.03:  # the source sent it twice
            files.append((sample_id + DUPLICATE_ID_OFFSET, pgm(sample_id, pixels, label)))
            duplicates += 1
        elif roll < 0.045:  # and sometimes something broken
            bad_id = sample_id + BROKEN_ID_OFFSET
            kind = rng.randrange(4)
            if kind == 0:
                text = pgm(bad_id, pixels[:56], label, shape=(7, 8))
            elif kind == 1:
                text = pgm(bad_id, [p * 4 for p in pixels], label)
            elif kind == 2:
                text = pgm(bad_id, pixels, label + 10)
            else:
                text = pgm(bad_id, pixels, label)[:40]
            files.append((bad_id, text))
            broken += 1
        for file_id, text in files:
            with open(os.path.join(out, "digit-%06d.pgm" % file_id), "w") as f:
                f.write(text)
            written += 1
    task.log("partition %d/%d: %d files (%d duplicates, %d broken) from %s -> %s"
             % (partition, partitions, written, duplicates, broken, path, out))


if __name__ == "__main__":
    main()
