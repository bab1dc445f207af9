#!/usr/bin/env python3
"""The tasks of the data-plane benchmarks (bench/data_wait.py,
bench/checkpoint.py, bench/recovery.py), run by `tierflow run` from their
pipelines. Standard library, plus tierflow_task.py (sdk/python) and
dataplane_s3.py, which the benchmarks copy beside this file.

  dataplane_task.py produce            S shards of M MiB into $TIERFLOW_OUTPUT_SHARDS
  dataplane_task.py data MODE          a synthetic trainer reading the shards:
                                       direct (GET from S3 itself), staged or stream
  dataplane_task.py steps MODE         a synthetic trainer checkpointing every few steps:
                                       sync-s3, sync-posix, async (written into
                                       TIERFLOW_CHECKPOINT_DIR, committed; tierflow flushes)
                                       or async-save (tierflow_task.save_checkpoint)

Accelerator compute is a fixed sleep per batch (per shard, per step), as
MLPerf Storage's DLIO emulates it: the accelerator is not the host CPU, and
on a small shared machine a busy loop would measure contention with the
S3 server and the copier rather than waiting for data. The slept time is
measured, not assumed. Each trainer writes what it measured as JSON to
$BENCH_RESULT (by attempt: RESULT.attempt-N.json).
"""

import json
import os
import sys
import time

import tierflow_task as tf


def param(name):
    return int(os.environ["TIERFLOW_PARAM_" + name.upper()])


def write_json(path, document):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(document, f)
    os.replace(tmp, path)


def result_path():
    return "%s.attempt-%s.json" % (os.environ["BENCH_RESULT"], os.environ["TIERFLOW_ATTEMPT"])


def s3_client():
    import dataplane_s3
    return dataplane_s3.S3(os.environ["BENCH_S3_ENDPOINT"], os.environ["BENCH_S3_KEY"],
                           os.environ["BENCH_S3_SECRET"])


def process_start_ms():
    """When this process started, wall clock ms (10 ms resolution): its
    start in clock ticks since boot (/proc/self/stat), against the boot
    time clock now."""
    with open("/proc/self/stat") as f:
        ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    since = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    return int((time.time() - since) * 1000)


def compute(seconds):
    """The accelerator's work on one batch: a fixed sleep, measured."""
    started = time.monotonic()
    time.sleep(seconds)
    return time.monotonic() - started


def produce():
    out = os.environ["TIERFLOW_OUTPUT_SHARDS"]
    shards, mib = param("shards"), param("shard_mib")
    os.makedirs(out)
    block = os.urandom(1 << 20)
    for i in range(shards):
        # 8 bytes of the shard's index, so a shard read for another fails the check.
        with open(os.path.join(out, "shard-%05d" % i), "wb") as f:
            f.write(b"%08d" % i)
            for _ in range(mib):
                f.write(block)


def train_data(mode):
    # The benchmark's preparing run makes the first attempt fail before it
    # reads anything (see bench/data_wait.py); the measured one is armed.
    if not os.path.exists(os.environ["BENCH_GO"]):
        print("not armed yet: exit 1 (bench/data_wait.py prepares the run)")
        return 1
    started_ms = int(time.time() * 1000)
    shards, mib, per_batch = param("shards"), param("shard_mib"), param("compute_ms") / 1000
    expected = 8 + mib * (1 << 20)
    if mode == "direct":
        s3 = s3_client()
        bucket = os.environ["BENCH_S3_BUCKET"]
        # The producer's output in its home, the bulk tier: tierflow's key
        # layout under the tier's prefix (docs/tiers.md).
        key = "%s/runs/%s/artifacts/produce/shards/shard-%%05d" % (
            os.environ["BENCH_S3_PREFIX"], os.environ["TIERFLOW_RUN_ID"])
    elif tf.shard_count("shards") != shards:
        print("expected %d shards, the input has %d" % (shards, tf.shard_count("shards")))
        return 1
    computed = fetched = 0.0
    nbytes = 0
    for i in range(shards):
        t = time.monotonic()
        if mode == "direct":
            data = s3.get(bucket, key % i)
        else:
            with tf.open_shard("shards", i) as f:  # staged: there; stream: waits if not yet
                data = f.read()
        fetched += time.monotonic() - t
        if len(data) != expected or data[:8] != b"%08d" % i:
            print("shard %d: %d bytes, header %r: not what produce wrote" % (i, len(data), data[:8]))
            return 1
        nbytes += len(data)
        del data
        computed += compute(per_batch)
    ended_ms = int(time.time() * 1000)
    with open(os.environ["TIERFLOW_OUTPUT_MODEL"], "w") as f:
        f.write("model\n")
    write_json(result_path(), {"mode": mode, "started_ms": started_ms, "ended_ms": ended_ms,
                               "compute_s": computed, "fetch_s": fetched, "bytes": nbytes,
                               "helper_wait_s": tf.waited_seconds()})
    print("trained on %d shards: compute %.3f s, fetch %.3f s" % (shards, computed, fetched))
    return 0


def train_steps(mode):
    steps, step_ms, every, mib = param("steps"), param("step_ms"), param("every"), param("ckpt_mib")
    progress = os.environ.get("BENCH_PROGRESS")

    def log(line):
        if progress:
            with open(progress, "a") as f:
                f.write("%d %s\n" % (int(time.time() * 1000), line))

    # The model and optimizer state, in memory: an 8-byte step header, then
    # random bytes.
    state = bytearray(8) + os.urandom(1 << 20) * mib
    first = 0
    restored_ms = None
    if mode in ("async", "async-save"):
        log("dir %s" % tf.checkpoint_dir())
        latest = tf.latest_checkpoint()
        if latest is not None:
            step, folder = latest
            with open(os.path.join(folder, "state.bin"), "rb") as f:
                saved = f.read()
            if len(saved) != len(state) or saved[:8] != b"%08d" % step:
                print("checkpoint %s: %d bytes, header %r: damaged" % (folder, len(saved), saved[:8]))
                return 1
            state[:] = saved
            del saved
            first = step + 1
            restored_ms = int(time.time() * 1000)
    log("start attempt %s from step %d" % (os.environ["TIERFLOW_ATTEMPT"], first))
    s3 = s3_client() if mode == "sync-s3" else None
    durable = os.environ.get("BENCH_DURABLE_DIR")
    started_ms = int(time.time() * 1000)
    computed = 0.0
    blocked = []
    committing = []  # async: the commit_checkpoint part of each blocked time
    for step in range(first, steps):
        computed += compute(step_ms / 1000)
        # Through the pipe to tierflow: when tierflow dies, the next print
        # fails (EPIPE) and the trainer stops, as docs/running.md says.
        print("step %d" % step, flush=True)
        log("step %d" % step)
        if (step + 1) % every != 0:
            continue
        state[:8] = b"%08d" % step  # the training step changed the state
        t = time.monotonic()
        if mode == "async":  # into TIERFLOW_CHECKPOINT_DIR (ram); tierflow flushes it
            folder = tf.checkpoint_path(step)
            with open(os.path.join(folder, "state.bin"), "wb") as f:
                f.write(state)
            c = time.monotonic()
            tf.commit_checkpoint(step)
            committing.append(time.monotonic() - c)
        elif mode == "async-save":  # a snapshot in memory; the helper writes and commits it
            tf.save_checkpoint(step, {"state.bin": state})
        elif mode == "sync-s3":  # straight to the S3 bulk tier, one PUT
            s3.put(os.environ["BENCH_S3_BUCKET"], "%s/sync/%s/step-%08d/state.bin" % (
                os.environ["BENCH_S3_PREFIX"], os.environ["TIERFLOW_RUN_ID"], step), state)
        else:  # sync-posix: a durable posix write, as the posix adapter does it
            folder = os.path.join(durable, "step-%08d" % step)
            tmp = folder + ".tmp"
            os.makedirs(tmp, exist_ok=True)
            with open(os.path.join(tmp, "state.bin"), "wb") as f:
                f.write(state)
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, folder)
            fd = os.open(durable, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        blocked.append(time.monotonic() - t)
        log("checkpoint %d %.6f" % (step, blocked[-1]))
    # The last save must be on the checkpoint tier before the trainer ends:
    # blocked too, once per run.
    t = time.monotonic()
    if mode == "async-save":
        tf.wait_checkpoint()
    final_wait = time.monotonic() - t
    ended_ms = int(time.time() * 1000)
    with open(os.environ["TIERFLOW_OUTPUT_MODEL"], "w") as f:
        f.write("model\n")
    write_json(result_path(), {"mode": mode, "first_step": first, "started_ms": started_ms,
                               "process_start_ms": process_start_ms(),
                               "ended_ms": ended_ms, "restored_ms": restored_ms,
                               "compute_s": computed, "blocked_s": blocked, "commit_s": committing,
                               "final_wait_s": final_wait, "checkpoint_bytes": len(state)})
    log("done")
    return 0


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    command = sys.argv[1]
    if command == "produce":
        return produce()
    if command == "data" and len(sys.argv) == 3 and sys.argv[2] in ("direct", "staged", "stream"):
        return train_data(sys.argv[2])
    if command == "steps" and len(sys.argv) == 3 and sys.argv[2] in ("async", "async-save", "sync-s3",
                                                                 "sync-posix"):
        return train_steps(sys.argv[2])
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main())
