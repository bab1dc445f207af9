#!/usr/bin/env python3
"""clean: merges every raw shard, drops malformed rows and duplicate ids.

Input: raw (the gather of all ingest shards). Output: clean (CSV sorted by id).
"""

import math

import task


def parse(line):
    """(id, x1, x2, y), or None for a malformed row."""
    fields = line.strip().split(",")
    if len(fields) != 4:
        return None
    try:
        row_id, values = int(fields[0]), [float(f) for f in fields[1:]]
    except ValueError:
        return None
    if not all(math.isfinite(v) for v in values):
        return None
    return (row_id, *values)


def main():
    rows, malformed, duplicates = {}, 0, 0
    for path in task.input_files("raw"):
        with open(path) as f:
            header = f.readline().strip()
            if header != "id,x1,x2,y":
                task.fail("%s: unexpected header %r" % (path, header))
            for line in f:
                row = parse(line)
                if row is None:
                    malformed += 1
                elif row[0] in rows:
                    duplicates += 1
                else:
                    rows[row[0]] = row
    if not rows:
        task.fail("no valid rows in the input")
    lines = ["id,x1,x2,y"] + ["%d,%.6f,%.6f,%.6f" % rows[k] for k in sorted(rows)]
    task.write_atomic(task.output_path("clean"), "\n".join(lines) + "\n")
    task.log("%d rows kept, %d duplicates and %d malformed rows dropped"
             % (len(rows), duplicates, malformed))


if __name__ == "__main__":
    main()
