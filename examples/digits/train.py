#!/usr/bin/env python3
"""train: softmax regression on the packed shards, by mini-batch SGD, one
checkpoint per epoch, resumable.

The shards input is streamed (`stream: true`): training starts once the
first shard is on the working tier, and tf.open_shard(i) waits for shard i
if the copier has not finished it yet, counting the time waited (the
task's data wait). Epoch 1 reads the shards in copy order; later epochs in
a seeded shuffled order, and the samples of each shard shuffled.

Each epoch ends with a checkpoint: tf.save_checkpoint(epoch, {weights.npz,
state.json}) snapshots them and returns; the helper writes them into
TIERFLOW_CHECKPOINT_DIR and commits them while the next epoch trains, and
tierflow flushes them to a durable tier. A new attempt starts from
tf.latest_checkpoint(). The shuffles depend only on the seed and the
epoch, so a resumed run ends with exactly the weights of an uninterrupted
one. `fail_after_epoch` N > 0 makes the first attempt exit 3 right after
checkpoint N is committed, to show the retry resuming.

Params: epochs, lr, l2, batch_size, seed, fail_after_epoch.
Input: shards (from pack, streamed). Output: model (a folder: weights.npz,
train.json).
"""

import json
import os
import sys
import time

# One BLAS thread: the stage asks for one cpu, and every attempt then sums
# in the same order (a resumed model is bit-identical).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import task  # noqa: E402
from task import tf  # noqa: E402

CLASSES = 10


def load_shard(i):
    with tf.open_shard("shards", i) as f:
        with np.load(f) as data:
            return data["x"], data["y"]


def resume(config, epochs):
    """(epoch, W, b, history) of the latest committed checkpoint, or a fresh start."""
    latest = tf.latest_checkpoint()
    if latest is None:
        return 0, None, None, []
    step, path = latest
    with open(os.path.join(path, "state.json")) as f:
        state = json.load(f)
    if state.get("config") != config or step > epochs:
        task.fail("checkpoint %s was made with other params or data (%s): remove it to "
                  "start over" % (path, state.get("config")))
    with np.load(os.path.join(path, "weights.npz")) as w:
        weights, bias = w["W"], w["b"]
    task.log("resuming from epoch %d (checkpoint %s)" % (step, path))
    return step, weights, bias, state["history"]


def save_checkpoint(epoch, weights, bias, history, config):
    """Snapshots the epoch's state; written and committed in the background."""
    state = json.dumps({"epoch": epoch, "history": history, "config": config}, indent=2) + "\n"
    tf.save_checkpoint(epoch, {"weights.npz": task.npz_bytes(W=weights, b=bias),
                               "state.json": state.encode()},
                       loss=history[-1]["loss"], accuracy=history[-1]["accuracy"])


def main():
    epochs = task.param("epochs", int)
    lr = task.param("lr", float)
    l2 = task.param("l2", float)
    batch_size = task.param("batch_size", int)
    seed = task.param("seed", int)
    fail_after = task.param("fail_after_epoch", int)
    if epochs < 1 or batch_size < 1 or lr <= 0 or l2 < 0:
        task.fail("need epochs >= 1, batch_size >= 1, lr > 0 and l2 >= 0")

    files = tf.shards("shards")
    shards = [i for i, name in enumerate(files) if name.endswith(".npz")]
    if not shards:
        task.fail("no .npz shards in %s" % task.input_path("shards"))
    config = {"lr": lr, "l2": l2, "batch_size": batch_size, "seed": seed, "shards": files}
    task.log("%d shards in %s, %s" % (
        len(shards), task.input_path("shards"),
        "streamed while training (copied in the order of its manifest)"
        if os.environ.get("TIERFLOW_STREAM_SHARDS") else "all staged before the start"))
    start, weights, bias, history = resume(config, epochs)
    started = time.monotonic()

    for epoch in range(start + 1, epochs + 1):
        rng = np.random.default_rng([seed, epoch])
        order = shards if epoch == 1 else [shards[k] for k in rng.permutation(len(shards))]
        step_lr = lr / (1.0 + 0.1 * (epoch - 1))
        loss_sum, correct, samples = 0.0, 0, 0
        for i in order:
            x, y = load_shard(i)
            if weights is None:
                weights = np.zeros((x.shape[1], CLASSES), dtype=np.float32)
                bias = np.zeros(CLASSES, dtype=np.float32)
            rows = rng.permutation(len(y))
            for b in range(0, len(rows), batch_size):
                batch = rows[b:b + batch_size]
                xb, yb = x[batch], y[batch]
                logits = xb @ weights + bias
                logits -= logits.max(axis=1, keepdims=True)
                p = np.exp(logits)
                p /= p.sum(axis=1, keepdims=True)
                picked = p[np.arange(len(yb)), yb]
                loss_sum += float(-np.log(np.maximum(picked, 1e-12)).sum())
                correct += int((p.argmax(axis=1) == yb).sum())
                samples += len(yb)
                p[np.arange(len(yb)), yb] -= 1.0
                weights -= step_lr * (xb.T @ p / len(yb) + l2 * weights)
                bias -= step_lr * p.mean(axis=0)
        history.append({"epoch": epoch, "loss": loss_sum / samples,
                        "accuracy": correct / samples, "samples": samples})
        save_checkpoint(epoch, weights, bias, history, config)
        task.log("epoch %d/%d: loss %.4f, train accuracy %.4f, checkpoint step-%08d saving"
                 % (epoch, epochs, history[-1]["loss"], history[-1]["accuracy"], epoch))
        if epoch == fail_after and task.attempt() == 1:
            tf.wait_checkpoint()  # os._exit does not wait for the save in flight
            task.log("simulated failure after epoch %d (fail_after_epoch=%d, attempt 1)"
                     % (epoch, fail_after))
            sys.stdout.flush()
            os._exit(3)

    tf.wait_checkpoint()  # the last epoch's checkpoint is committed before the model
    elapsed = time.monotonic() - started
    waited = tf.waited_seconds()
    out = task.output_path("model")
    os.makedirs(out, exist_ok=True)
    task.write_atomic(os.path.join(out, "weights.npz"), task.npz_bytes(W=weights, b=bias))
    task.write_atomic(os.path.join(out, "train.json"), json.dumps({
        "model": "softmax regression", "epochs": epochs, "resumed_from_epoch": start,
        "train_samples": history[-1]["samples"], "shards": len(shards), "history": history,
        "waited_for_data_seconds": waited, "train_seconds": elapsed}, indent=2) + "\n")
    task.log("trained epochs %d..%d in %.2f s, %.3f s of it waiting for data (%.1f%%)"
             % (start + 1, epochs, elapsed, waited, 100.0 * waited / max(elapsed, 1e-9)))


if __name__ == "__main__":
    main()
