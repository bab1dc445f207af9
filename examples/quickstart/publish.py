#!/usr/bin/env python3
"""checkpoint: publishes the trained model with its metrics.

Evaluates the model on the features (MSE and R^2), then writes a release
directory: model.json (weights plus the standardisation stats, so it applies
to raw x1, x2), metrics.json, and MANIFEST.sha256 (`sha256sum -c` format),
written last so a release with a manifest is complete.
Inputs: model, stats, features. Output: release (a directory).
"""

import csv
import hashlib
import json
import os

import task


def main():
    with open(task.input_path("model")) as f:
        model = json.load(f)
    with open(task.input_path("stats")) as f:
        stats = json.load(f)
    with open(task.input_path("features"), newline="") as f:
        rows = [(float(r["z1"]), float(r["z2"]), float(r["z12"]), float(r["y"]))
                for r in csv.DictReader(f)]

    weights, bias = model["weights"], model["bias"]
    predictions = [sum(w * x for w, x in zip(weights, r[:3])) + bias for r in rows]
    ys = [r[3] for r in rows]
    mean_y = sum(ys) / len(ys)
    sse = sum((p - y) ** 2 for p, y in zip(predictions, ys))
    sst = sum((y - mean_y) ** 2 for y in ys) or 1.0
    metrics = {"rows": len(rows), "mse": sse / len(rows), "r2": 1 - sse / sst,
               "epochs": model["epochs"], "final_train_mse": model["loss_history"][-1]}

    release = task.output_path("release")
    os.makedirs(release, exist_ok=True)
    files = {
        "model.json": {
            "predict": "y = w[0]*z1 + w[1]*z2 + w[2]*z1*z2 + bias, z_i = (x_i - mean_i) / std_i",
            "weights": weights, "bias": bias,
            "standardisation": {"x1": stats["x1"], "x2": stats["x2"]},
        },
        "metrics.json": metrics,
    }
    manifest = []
    for name, content in files.items():
        data = (json.dumps(content, indent=2) + "\n").encode()
        task.write_atomic(os.path.join(release, name), data)
        manifest.append("%s  %s\n" % (hashlib.sha256(data).hexdigest(), name))
    task.write_atomic(os.path.join(release, "MANIFEST.sha256"), "".join(manifest))
    task.log("published %s: mse %.5f r2 %.4f" % (release, metrics["mse"], metrics["r2"]))


if __name__ == "__main__":
    main()
