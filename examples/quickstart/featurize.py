#!/usr/bin/env python3
"""feature: standardises x1 and x2 and adds their product as a feature.

Input: clean. Outputs: features (CSV `id,z1,z2,z12,y`) and stats (JSON with
the mean and standard deviation used, so the published model can take raw x).
"""

import csv
import json
import math

import task


def main():
    with open(task.input_path("clean"), newline="") as f:
        rows = [(int(r["id"]), float(r["x1"]), float(r["x2"]), float(r["y"]))
                for r in csv.DictReader(f)]
    n = len(rows)
    stats = {"rows": n}
    for column, name in ((1, "x1"), (2, "x2")):
        mean = sum(r[column] for r in rows) / n
        std = math.sqrt(sum((r[column] - mean) ** 2 for r in rows) / n) or 1.0
        stats[name] = {"mean": mean, "std": std}
    lines = ["id,z1,z2,z12,y"]
    for row_id, x1, x2, y in rows:
        z1 = (x1 - stats["x1"]["mean"]) / stats["x1"]["std"]
        z2 = (x2 - stats["x2"]["mean"]) / stats["x2"]["std"]
        lines.append("%d,%.9f,%.9f,%.9f,%.6f" % (row_id, z1, z2, z1 * z2, y))
    task.write_atomic(task.output_path("features"), "\n".join(lines) + "\n")
    task.write_atomic(task.output_path("stats"), json.dumps(stats, indent=2) + "\n")
    task.log("%d rows featurised" % n)


if __name__ == "__main__":
    main()
