#!/usr/bin/env python3
"""stage: packs the features into shuffled binary training shards.

Each record is four little-endian float64 (z1, z2, z12, y); index.json lists
the shards with their record counts and SHA-256, which train checks.
Params: pack_shards, seed. Input: features. Output: shards (a directory).
"""

import csv
import hashlib
import json
import os
import random
import struct

import task

RECORD = struct.Struct("<4d")


def main():
    count = task.param("pack_shards", int)
    if count < 1:
        task.fail("pack_shards must be >= 1, got %d" % count)
    with open(task.input_path("features"), newline="") as f:
        records = [tuple(float(r[k]) for k in ("z1", "z2", "z12", "y")) for r in csv.DictReader(f)]
    random.Random(task.param("seed", int)).shuffle(records)

    out = task.output_path("shards")
    os.makedirs(out, exist_ok=True)
    index = {"record": "<4d little-endian float64", "fields": ["z1", "z2", "z12", "y"], "shards": []}
    for s in range(count):
        data = b"".join(RECORD.pack(*r) for r in records[s::count])
        name = "shard-%05d.bin" % s
        task.write_atomic(os.path.join(out, name), data)
        index["shards"].append({"file": name, "records": len(data) // RECORD.size,
                                "sha256": hashlib.sha256(data).hexdigest()})
    # The index goes last: a reader that sees it sees complete shards.
    task.write_atomic(os.path.join(out, "index.json"), json.dumps(index, indent=2) + "\n")
    task.log("%d records in %d shards -> %s" % (len(records), count, out))


if __name__ == "__main__":
    main()
