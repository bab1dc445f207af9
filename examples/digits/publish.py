#!/usr/bin/env python3
"""checkpoint: publishes the trained model with its metrics to the archive.

Evaluates the model on the held-out test split, then writes a release
folder: model.npz (weights plus the normalisation, so it applies to raw
8x8 pixels 0..16), metrics.json (test accuracy, per-digit accuracy, epochs,
sample counts, what clean dropped) and MANIFEST.sha256 (`sha256sum -c`
format), written last. Its home is the archive tier (write-once).
Inputs: model, test, stats. Output: release (a folder).
"""

import hashlib
import json
import os

import numpy as np

import task


def main():
    model = task.input_path("model")
    with np.load(os.path.join(model, "weights.npz")) as w:
        weights, bias = w["W"], w["b"]
    with open(os.path.join(model, "train.json")) as f:
        trained = json.load(f)
    with np.load(task.input_path("test")) as t:
        x, y = t["x"], t["y"]
    with open(task.input_path("stats")) as f:
        stats = json.load(f)

    predicted = (x @ weights + bias).argmax(axis=1)
    accuracy = float((predicted == y).mean())
    per_digit = {str(d): float((predicted[y == d] == d).mean()) for d in range(10) if (y == d).any()}
    clean = stats["clean_report"]
    metrics = {
        "test_accuracy": accuracy,
        "per_digit_accuracy": per_digit,
        "epochs": trained["epochs"],
        "final_train_loss": trained["history"][-1]["loss"],
        "final_train_accuracy": trained["history"][-1]["accuracy"],
        "samples": {"raw_files": clean["files"], "clean": stats["samples"]["clean"],
                    "train": stats["samples"]["train"], "test": stats["samples"]["test"]},
        "dropped_by_clean": clean["dropped"],
        "resumed_from_epoch": trained["resumed_from_epoch"],
        "waited_for_data_seconds": trained["waited_for_data_seconds"],
        "weights_sha256": hashlib.sha256(weights.tobytes() + bias.tobytes()).hexdigest(),
    }

    release = task.output_path("release")
    os.makedirs(release, exist_ok=True)
    files = {
        "model.npz": task.npz_bytes(
            W=weights, b=bias, pixel_scale=np.float64(stats["pixel_scale"]),
            mean=np.array(stats["mean"]), std=np.array(stats["std"])),
        "metrics.json": (json.dumps(metrics, indent=2) + "\n").encode(),
    }
    manifest = []
    for name, data in files.items():
        task.write_atomic(os.path.join(release, name), data)
        manifest.append("%s  %s\n" % (hashlib.sha256(data).hexdigest(), name))
    task.write_atomic(os.path.join(release, "MANIFEST.sha256"), "".join(manifest))
    task.log("test accuracy %.4f on %d held-out digits (%d epochs) -> %s"
             % (accuracy, len(y), trained["epochs"], release))


if __name__ == "__main__":
    main()
