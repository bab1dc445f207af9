#!/usr/bin/env python3
"""ingest (foreach item = shard number): generates one shard of raw rows.

Rows are `id,x1,x2,y` with y = 3*x1 - 2*x2 + 0.5 + noise, like a real
source they contain exact duplicates and a few malformed rows for the clean
stage to drop. Deterministic for a given seed and shard.
Params: rows_per_shard, seed. Output: raw (a CSV file).
"""

import random

import task


def main():
    shard = int(task.item())
    rows = task.param("rows_per_shard", int)
    rng = random.Random(task.param("seed", int) * 1000003 + shard)
    lines = ["id,x1,x2,y"]
    for i in range(rows):
        row_id = shard * rows + i
        x1, x2 = rng.uniform(-1, 1), rng.uniform(-1, 1)
        y = 3.0 * x1 - 2.0 * x2 + 0.5 + rng.gauss(0, 0.05)
        line = "%d,%.6f,%.6f,%.6f" % (row_id, x1, x2, y)
        lines.append(line)
        if rng.random() < 0.05:
            lines.append(line)  # the source sent it twice
        if rng.random() < 0.02:
            lines.append("%d,%.6f,,NaN" % (row_id + 10**9, x1))  # a broken record
    out = task.output_path("raw")
    task.write_atomic(out, "\n".join(lines) + "\n")
    task.log("shard %d: %d lines -> %s" % (shard, len(lines) - 1, out))


if __name__ == "__main__":
    main()
