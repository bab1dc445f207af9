#!/usr/bin/env python3
"""OpenLineage export's cost (issue 19): `tierflow run` of N no-op tasks with
export off and on, in one sitting, runs alternated so that both see the same
machine. On: TIERFLOW_OPENLINEAGE_URL points at a receiver this script starts
on loopback (http.server, answering 201 at once), the default retention keeps
the delivered rows so that the outbox's size can be read after the run.

Prints per mode the median wall time of the run (for "on", the final drain
of the outbox included), the per-task cost, its ratio to off, and for "on"
the outbox's rows and body bytes per 1,000 tasks and the events received.

Usage: lineage_export.py --tierflow BIN [--tasks 1000] [--repeat 3] [--slots 2]
"""
import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import time

from overhead import LineageReceiver


def run_once(args, work, env, label):
    rundir = tempfile.mkdtemp(prefix=label + ".", dir=work)
    db = os.path.join(rundir, "tierflow.db")
    started = time.perf_counter()
    done = subprocess.run([args.tierflow, "run", os.path.join(work, "pipeline.yaml"), "--db", db,
                           "--slots", str(args.slots), "--quiet"], env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit("%s run failed: %s%s" % (label, done.stdout, done.stderr))
    with sqlite3.connect(db) as conn:
        rows, body_bytes, pending = conn.execute(
            "SELECT count(*), coalesce(sum(length(body)), 0), "
            "coalesce(sum(state = 'pending'), 0) FROM lineage_outbox").fetchone()
        (run_ms,), = conn.execute("SELECT finished_at - created_at FROM runs").fetchall()
    shutil.rmtree(rundir, ignore_errors=True)
    return wall, rows, body_bytes, pending, run_ms / 1000.0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tierflow", required=True)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--slots", type=int, default=2)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="tierflow-lineage-bench.")
    with open(os.path.join(work, "pipeline.yaml"), "w") as out:
        out.write("name: noops\nstages:\n  noop:\n    foreach: {range: [0, %d]}\n"
                  "    run: [\"true\"]\n" % args.tasks)
    receiver = LineageReceiver()
    base = {k: v for k, v in os.environ.items() if not k.startswith("TIERFLOW_")}
    on_env = dict(base, TIERFLOW_OPENLINEAGE_URL=receiver.url)
    off, on = [], []
    for _ in range(args.repeat):
        off.append(run_once(args, work, base, "off"))
        on.append(run_once(args, work, on_env, "on"))
    shutil.rmtree(work, ignore_errors=True)
    off_wall = statistics.median(r[0] for r in off)
    on_wall = statistics.median(r[0] for r in on)
    off_run = statistics.median(r[4] for r in off)
    on_run = statistics.median(r[4] for r in on)
    per_k = 1000.0 / args.tasks
    print("%d no-op tasks, --slots %d, median of %d runs each, alternated" %
          (args.tasks, args.slots, args.repeat))
    print()
    print("| export | run, created to finished (s) | per task (ms) | ratio to off "
          "| process wall, drain included (s) | ratio to off | outbox rows / 1,000 tasks "
          "| outbox body bytes / 1,000 tasks | pending at exit |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("| off | %.2f | %.3f | 1.00 | %.2f | 1.00 | %d | %d | - |" %
          (off_run, 1000 * off_run / args.tasks, off_wall, off[0][1] * per_k,
           off[0][2] * per_k))
    print("| on | %.2f | %.3f | %.2f | %.2f | %.2f | %d | %d | %d |" %
          (on_run, 1000 * on_run / args.tasks, on_run / off_run, on_wall, on_wall / off_wall,
           on[-1][1] * per_k, on[-1][2] * per_k, max(r[3] for r in on)))
    print()
    print("receiver got %d events in all" % receiver.count)


if __name__ == "__main__":
    main()
