#!/usr/bin/env python3
"""bench/recovery: a trainer's node is lost mid-run; how long until it
trains again from its latest durable checkpoint, and how many steps are
lost. See bench/README.md.

A synthetic trainer (bench/dataplane_task.py `steps async`) computes for a
fixed time per step (a sleep) and commits a --ckpt-mib MiB checkpoint every
--every steps into TIERFLOW_CHECKPOINT_DIR (the ram tier); tierflow flushes
each to the S3 bulk tier (OpenStack Swift with s3api on loopback) and keeps
the last 2. When the trainer has logged step --kill-at, the benchmark kills
the `tierflow run` process with SIGKILL (the trainer stops at its next
write to its log, whose pipe has no reader any more), removes the task's
checkpoint folder on ram (what a lost node loses), and runs `tierflow
resume`. The engine restores the latest flushed checkpoint from the bucket
before the new attempt starts (event checkpoint_restore), and the trainer
continues after it.

Reported, all from one clock (the store's times and the trainer's log are
wall-clock milliseconds): resume command → checkpoint_restore event (the
engine's start: opening the store, recording the lost attempt, killing
leftovers), → the trainer's process start (the restore itself: copying
the checkpoint back; the process's start time from /proc, because the
store records the attempt as started when the restore begins), → the
trainer running again (Python's start, reading the checkpoint), and the steps lost: steps done before the kill that come after
the restored checkpoint. Beside them, what restarting without a checkpoint
would cost in the same run: every step done before the kill, again.
Standard library only.
"""

import argparse
import json
import os
import shutil
import signal
import sys
import time

import dataplane as dp


def pipeline_yaml(bench, args, result, progress):
    env = dict(bench.task_env(), BENCH_RESULT=result, BENCH_PROGRESS=progress)
    env_yaml = "".join(f"      {k}: {json.dumps(v)}\n" for k, v in env.items())
    return f"""name: recovery
description: bench/recovery.py
params:
  steps: {args.steps}
  step_ms: {args.step_ms}
  every: {args.every}
  ckpt_mib: {args.ckpt_mib}
stages:
  train:
    kind: train
    run: [python3, dataplane_task.py, steps, async]
    params: all  # dataplane_task.py reads its params itself
    checkpoints: {{keep: 2}}
    env:
{env_yaml}    outputs: {{model: 1KiB}}
    cache: false
"""


def read_progress(path):
    """[(ms, words...)] from the trainer's log."""
    if not os.path.exists(path):
        return []
    lines = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2:
                lines.append((int(parts[0]), parts[1:]))
    return lines


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    sys.exit(f"recovery: timed out after {timeout} s waiting for {what}")


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tierflow", required=True, help="the tierflow binary")
    parser.add_argument("--swift-dir", required=True, help="DIR of `scripts/swift.sh start DIR`")
    parser.add_argument("--dir", help="work folder (default ./dataplane); recovery/ inside it")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--steps", type=int, default=40, help="training steps (40)")
    parser.add_argument("--step-ms", type=int, default=250, help="compute per step, ms (250)")
    parser.add_argument("--every", type=int, default=5, help="a checkpoint every N steps (5)")
    parser.add_argument("--ckpt-mib", type=int, default=64, help="checkpoint size, MiB (64)")
    parser.add_argument("--kill-at", type=int, default=23,
                        help="kill tierflow once the trainer logged this step (23)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    bench = dp.Bench(args, "recovery")
    dp.header(f"bench/recovery: kill -9 at step {args.kill_at} of {args.steps} "
              f"({args.step_ms} ms each, {args.ckpt_mib} MiB checkpoint every {args.every}), "
              "lose the node's checkpoints, resume")
    try:
        out = measure(bench, args)
    finally:
        bench.cleanup(args.keep)
    print()
    print(report(out, args))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


def measure(bench, args):
    result = os.path.join(bench.work, "result")
    progress = os.path.join(bench.work, "progress.log")
    pipeline = bench.write("recovery.yaml", pipeline_yaml(bench, args, result, progress))
    db = os.path.join(bench.work, "state", "tierflow.db")

    engine = bench.popen(["run", pipeline, "--tiers", bench.tiers, "--db", db, "--slots", "2",
                          "--progress", "plain"])

    def reached():
        steps = [int(w[1]) for _, w in read_progress(progress) if w[0] == "step"]
        return steps and steps[-1] >= args.kill_at

    wait_for(reached, 120, f"the trainer to log step {args.kill_at}")
    os.kill(engine.pid, signal.SIGKILL)
    killed_ms = dp.now_ms()
    engine.communicate()
    store = dp.Store(db)
    run_id = store.value("SELECT id FROM runs")
    task_pid = store.value("SELECT pid FROM attempts WHERE task_id = 'train' AND number = 1")
    # The latest durable checkpoint: flushed before the kill.
    durable = store.value("SELECT max(step) FROM checkpoints WHERE state = 'present'")
    flushing = store.all("SELECT name FROM checkpoints WHERE state = 'flushing'")
    store.close()
    if durable is None:
        sys.exit("recovery: no checkpoint was flushed before the kill: raise --kill-at")
    # The trainer stops at its next print (EPIPE); give it a moment.
    if task_pid:
        deadline = time.monotonic() + 2
        while alive(task_pid) and time.monotonic() < deadline:
            time.sleep(0.01)
    lines = read_progress(progress)
    done_before = max(int(w[1]) for _, w in lines if w[0] == "step")
    checkpoint_dir = next(" ".join(w[1:]) for _, w in lines if w[0] == "dir")
    local = sorted(os.listdir(checkpoint_dir)) if os.path.isdir(checkpoint_dir) else []
    # The node is lost: so are its checkpoints.
    shutil.rmtree(checkpoint_dir)
    print(f"#   killed tierflow at step {done_before} (trainer "
          f"{'still alive' if task_pid and alive(task_pid) else 'stopped'}); latest durable "
          f"checkpoint: step {durable}; flushing at the kill: {[n for (n,) in flushing]}; "
          f"removed {checkpoint_dir} ({len(local)} entries)", flush=True)

    resume_ms = dp.now_ms()
    resumed = bench.run(["resume", run_id, "--db", db, "--slots", "2"], check=False)
    store = dp.Store(db)
    state = store.value("SELECT state FROM runs")
    if resumed.returncode != 0 or state != "succeeded":
        sys.exit(f"recovery: resume exited {resumed.returncode}, run {state}:\n"
                 f"{resumed.stdout}\n{resumed.stderr}")
    restore = store.one("SELECT time, message FROM events WHERE kind = 'checkpoint_restore' "
                        "AND time >= ?", resume_ms)
    attempt = store.one("SELECT number, started_at, finished_at FROM attempts WHERE "
                        "task_id = 'train' AND state = 'succeeded'")
    first_attempt = store.value("SELECT state FROM attempts WHERE task_id = 'train' AND number = 1")
    # Checkpoints still recorded as being flushed once the run is over.
    stuck = [n for (n,) in store.all("SELECT name FROM checkpoints WHERE state = 'flushing'")]
    store.close()
    if restore is None:
        sys.exit("recovery: no checkpoint_restore event after the resume")
    number, started, finished = attempt
    measured = dp.read_json(f"{result}.attempt-{number}.json")
    after = [(ms, w) for ms, w in read_progress(progress) if ms >= resume_ms]
    first_step_ms = next(ms for ms, w in after if w[0] == "step")
    restored_step = measured["first_step"] - 1
    if restored_step != durable:
        sys.exit(f"recovery: the trainer resumed after step {restored_step}, the latest durable "
                 f"checkpoint before the kill was step {durable}")
    out = {
        "run": run_id, "steps": args.steps, "step_ms": args.step_ms, "every": args.every,
        "ckpt_bytes": measured["checkpoint_bytes"], "killed_at_step": done_before,
        "durable_step": durable, "restored_step": restored_step,
        "first_attempt_state": first_attempt, "flushing_at_kill": [n for (n,) in flushing],
        "still_flushing_after_run": stuck,
        "steps_lost": done_before - restored_step,
        "resume_to_restore_s": (restore[0] - resume_ms) / 1000,
        # The attempt's started_at is recorded before the restore runs (the
        # same millisecond as the checkpoint_restore event); the process
        # starts when the restore is done: its start time comes from /proc.
        "attempt_started_minus_restore_s": (started - restore[0]) / 1000,
        "restore_s": (measured["process_start_ms"] - restore[0]) / 1000,
        "start_to_running_s": (measured["restored_ms"] - measured["process_start_ms"]) / 1000,
        "resume_to_running_s": (measured["restored_ms"] - resume_ms) / 1000,
        "resume_to_first_step_s": (first_step_ms - resume_ms) / 1000,
        "kill_to_resume_s": (resume_ms - killed_ms) / 1000,
    }
    lost_s = out["steps_lost"] * args.step_ms / 1000
    out["time_lost_s"] = out["resume_to_running_s"] + lost_s
    out["scratch_lost_s"] = (done_before + 1) * args.step_ms / 1000
    if stuck:
        print(f"#   NOTE: after the resumed run succeeded, checkpoints still recorded as "
              f"'flushing': {stuck} (the flush the kill interrupted is never ended)", flush=True)
    print(f"#   resumed after step {restored_step}: running again "
          f"{dp.seconds(out['resume_to_running_s'])} after `tierflow resume`", flush=True)
    return out


def report(out, args):
    rows = [
        ["`tierflow resume` → checkpoint_restore event (engine start, lost attempt recorded)",
         dp.seconds(out["resume_to_restore_s"])],
        [f"checkpoint_restore → trainer process start (restoring step {out['restored_step']}, "
         f"{dp.human(out['ckpt_bytes'])}, from S3 to ram)", dp.seconds(out["restore_s"])],
        ["trainer process start → running again (python start, checkpoint read)",
         dp.seconds(out["start_to_running_s"])],
        ["**`tierflow resume` → trainer running again**", f"**{dp.seconds(out['resume_to_running_s'])}**"],
        ["`tierflow resume` → its first step done", dp.seconds(out["resume_to_first_step_s"])],
        [f"steps lost (done before the kill: 0–{out['killed_at_step']}; restored: "
         f"0–{out['restored_step']})", f"{out['steps_lost']} ({dp.seconds(out['steps_lost'] * args.step_ms / 1000)} of compute)"],
        ["**time lost** (resume to running + steps redone)", f"**{dp.seconds(out['time_lost_s'])}**"],
        [f"baseline: restart without a checkpoint (redo steps 0–{out['killed_at_step']})",
         dp.seconds(out["scratch_lost_s"])],
    ]
    return dp.markdown_table(["what", "time"], rows, "lr")


if __name__ == "__main__":
    main()
