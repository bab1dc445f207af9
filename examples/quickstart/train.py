#!/usr/bin/env python3
"""train: fits a tiny linear model y ~ w.z + b by mini-batch SGD.

One checkpoint per epoch in $TIERFLOW_CHECKPOINT_DIR/epoch-NNNN/state.json,
each written to a temporary directory and renamed, then committed with the
marker epoch-NNNN.committed (docs/task-helpers.md), so a checkpoint is either
complete or absent. A restarted attempt resumes after the latest checkpoint;
the shuffle of each epoch depends only on the seed and the epoch, so a
resumed run ends with exactly the model of an uninterrupted one.

Params: epochs, lr, batch_size, seed. Input: shards (from stage pack).
Output: model (JSON). QUICKSTART_CRASH_AFTER_EPOCH=N makes the attempt exit
with status 3 right after checkpoint N (for run_by_hand.sh's resume test).
"""

import hashlib
import json
import os
import random
import re
import shutil
import struct

import task

RECORD = struct.Struct("<4d")
CHECKPOINT = re.compile(r"^epoch-(\d{4,})$")


def load_shards():
    directory = task.input_path("shards")
    with open(task.stream_file("shards", "index.json")) as f:
        index = json.load(f)
    records, digest = [], hashlib.sha256()
    for shard in index["shards"]:
        with open(task.stream_file("shards", shard["file"]), "rb") as f:
            data = f.read()
        if hashlib.sha256(data).hexdigest() != shard["sha256"]:
            task.fail("shard %s is corrupt: SHA-256 differs from index.json" % shard["file"])
        digest.update(data)
        records.extend(RECORD.iter_unpack(data))
    if not records:
        task.fail("no training records in %s" % directory)
    return records, digest.hexdigest()


def latest_checkpoint(directory, config, epochs):
    """(epoch, state) of the newest usable checkpoint, or (0, None)."""
    if directory is None:
        return 0, None
    found = sorted((int(m.group(1)), name) for name in os.listdir(directory)
                   if (m := CHECKPOINT.match(name)))
    for epoch, name in reversed(found):
        if epoch > epochs or not os.path.exists(os.path.join(directory, name + ".committed")):
            continue
        try:
            with open(os.path.join(directory, name, "state.json")) as f:
                state = json.load(f)
        except (OSError, ValueError):
            continue  # not a complete checkpoint: look at an older one
        if state.get("config") != config:
            task.log("checkpoint %s was made with other data or params: starting over" % name)
            return 0, None
        return epoch, state
    return 0, None


def save_checkpoint(directory, epoch, state):
    final = os.path.join(directory, "epoch-%04d" % epoch)
    tmp = os.path.join(directory, ".epoch-%04d.tmp" % epoch)
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    task.write_atomic(os.path.join(tmp, "state.json"), json.dumps(state, indent=2) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    os.rename(tmp, final)
    # Committed: tierflow flushes it to a durable tier while training goes
    # on, and restores it for a retry that runs elsewhere.
    task.write_atomic(final + ".committed", json.dumps({"step": epoch}) + "\n")
    return final


def mse(records, weights, bias):
    return sum((sum(w * x for w, x in zip(weights, r[:3])) + bias - r[3]) ** 2
               for r in records) / len(records)


def main():
    epochs = task.param("epochs", int)
    lr = task.param("lr", float)
    batch_size = task.param("batch_size", int)
    seed = task.param("seed", int)
    if epochs < 1 or batch_size < 1 or lr <= 0:
        task.fail("need epochs >= 1, batch_size >= 1 and lr > 0")
    crash_after = int(os.environ.get("QUICKSTART_CRASH_AFTER_EPOCH", "0"))

    records, data_sha = load_shards()
    config = {"lr": lr, "batch_size": batch_size, "seed": seed, "data_sha256": data_sha}
    checkpoints = task.checkpoint_dir()
    start, state = latest_checkpoint(checkpoints, config, epochs)
    if state:
        weights, bias, history = state["weights"], state["bias"], state["loss_history"]
        task.log("resuming from epoch %d (checkpoint in %s)" % (start, checkpoints))
    else:
        weights, bias, history = [0.0, 0.0, 0.0], 0.0, []

    for epoch in range(start + 1, epochs + 1):
        order = list(range(len(records)))
        random.Random(seed * 7919 + epoch).shuffle(order)
        for b in range(0, len(order), batch_size):
            batch = [records[i] for i in order[b:b + batch_size]]
            grad_w, grad_b = [0.0, 0.0, 0.0], 0.0
            for r in batch:
                error = sum(w * x for w, x in zip(weights, r[:3])) + bias - r[3]
                for k in range(3):
                    grad_w[k] += 2 * error * r[k] / len(batch)
                grad_b += 2 * error / len(batch)
            weights = [w - lr * g for w, g in zip(weights, grad_w)]
            bias -= lr * grad_b
        history.append(mse(records, weights, bias))
        task.log("epoch %d/%d: train mse %.6f" % (epoch, epochs, history[-1]))
        if checkpoints:
            path = save_checkpoint(checkpoints, epoch, {
                "epoch": epoch, "weights": weights, "bias": bias,
                "loss_history": history, "config": config})
            task.log("checkpoint %s" % path)
        if epoch == crash_after:
            task.log("simulated crash after epoch %d (QUICKSTART_CRASH_AFTER_EPOCH)" % epoch)
            os._exit(3)

    model = {"features": ["z1", "z2", "z12"], "weights": weights, "bias": bias,
             "epochs": epochs, "loss_history": history,
             "trained_on": {"records": len(records), "data_sha256": data_sha}}
    task.write_atomic(task.output_path("model"), json.dumps(model, indent=2) + "\n")
    task.log("model: weights %s bias %.4f" % (["%.4f" % w for w in weights], bias))


if __name__ == "__main__":
    main()
