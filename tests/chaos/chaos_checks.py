"""The checks of the chaos campaign (tests/chaos/chaos.py) after each trial, and
what they compare against: the pipeline's tasks run once by hand, without
tierflow, and storage_adapters/local_artifact.h's HashArtifact reimplemented
exactly with Debian's python3-xxhash."""
import collections
import os
import shutil
import sqlite3
import subprocess
import sys

import xxhash

HERE = os.path.dirname(os.path.abspath(__file__))

# The tasks of chaos.py's PIPELINE in plan order: (task, stage, item, {output: None});
# INPUTS: each stage's inputs. What the reference run follows and verify() expects.
TASKS = ([("ingest[%d]" % i, "ingest", i, {"raw": None}) for i in range(6)] +
         [("transform[%d]" % i, "transform", i, {"part": None}) for i in range(4)] +
         [("merge", "merge", None, {"table": None}), ("train", "train", None, {"model": None}),
          ("report", "report", None, {"release": None})])
INPUTS = {"ingest": {}, "transform": {"raw": "ingest.raw"}, "merge": {"part": "transform.part"},
          "train": {"table": "merge.table"}, "report": {"model": "train.model", "raw": "ingest.raw"}}


class TrialFailed(Exception):
    pass


# -- HashArtifact (storage_adapters/local_artifact.cc), exactly ---------------------------


def _hex(digest):
    return "xxh3:" + digest.hexdigest()


def _hash_file(path):
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while True:
            block = f.read(1 << 20)
            if not block:
                break
            h.update(block)
    return h


def hash_artifact(path):
    """A file by its bytes; a tree by its entries sorted as std::filesystem::path
    sorts them (component by component), each with its type and its file's hash
    or symlink's target, fields NUL-terminated. Symlinks are not followed."""
    if not os.path.isdir(path) or os.path.islink(path):
        return _hex(_hash_file(path))
    entries = []
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            relative = os.path.relpath(os.path.join(folder, name), path)
            entries.append(tuple(os.fsencode(relative).split(b"/")))
    entries.sort()
    h = xxhash.xxh3_128()

    def add(field):
        h.update(field + b"\0")

    for parts in entries:
        relative = b"/".join(parts)
        full = os.path.join(os.fsencode(path), relative)
        if os.path.islink(full):
            add(b"L"), add(relative), add(os.readlink(full))
        elif os.path.isdir(full):
            add(b"D"), add(relative)
        else:
            add(b"F"), add(relative), add(_hex(_hash_file(full)).encode())
    return _hex(h)



# -- the reference: every task run once by hand, without tierflow -------------------------


def reference_hashes(scratch):
    """{(task, output): hash} of chaos_task.py run by hand in plan order."""
    outputs = {}
    hashes = {}
    for task, stage, item, outs in TASKS:
        env = dict(os.environ, CHAOS_SLEEP="0")
        env.pop("CHAOS_SIDE_LOG", None)
        if item is not None:
            env["TIERFLOW_ITEM"], env["TIERFLOW_ITEM_INDEX"] = str(item), str(item)
        for name, source in INPUTS[stage].items():
            source_stage, source_output = source.split(".")
            producers = [t for t, s, _, _ in TASKS if s == source_stage]
            if producers == [source_stage]:
                env["TIERFLOW_INPUT_" + name.upper()] = outputs[(source_stage, source_output)]
            else:  # a gather: one entry per item, named by the item
                gather = os.path.join(scratch, "gather", task, name)
                for producer in producers:
                    item_name = producer[producer.index("[") + 1:-1]
                    source_path = outputs[(producer, source_output)]
                    os.makedirs(gather, exist_ok=True)
                    if os.path.isdir(source_path):
                        shutil.copytree(source_path, os.path.join(gather, item_name))
                    else:
                        shutil.copy(source_path, os.path.join(gather, item_name))
                env["TIERFLOW_INPUT_" + name.upper()] = gather
        for name in outs:
            path = os.path.join(scratch, "out", task, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            env["TIERFLOW_OUTPUT_" + name.upper()] = path
            outputs[(task, name)] = path
        env["TIERFLOW_CHECKPOINT_DIR"] = os.path.join(scratch, "ckpt", task)
        os.makedirs(env["TIERFLOW_CHECKPOINT_DIR"])
        done = subprocess.run([sys.executable, os.path.join(HERE, "chaos_task.py"), stage], env=env,
                              cwd=scratch, capture_output=True, text=True)
        if done.returncode != 0:
            raise TrialFailed("the by-hand run of %s exited %d: %s" % (task, done.returncode, done.stderr))
        for name in outs:
            hashes[(task, name)] = hash_artifact(outputs[(task, name)])
    return hashes


# -- checks after a trial ------------------------------------------------------------------


def verify_run(db, run, reference, stats, problems):
    """One run's checks: its tasks, attempts, outputs, copies and checkpoints.
    Returns its attempts and {task: (succeeded attempt id, number, finished_at)}."""
    tasks = dict(db.execute("SELECT id, state FROM tasks WHERE run_id = ?", (run,)).fetchall())
    expected_tasks = [t for t, _, _, _ in TASKS]
    if sorted(tasks) != sorted(expected_tasks):
        problems.append("%s: tasks %s, expected %s" % (run, sorted(tasks), sorted(expected_tasks)))
    for task, state in sorted(tasks.items()):
        if state not in ("succeeded", "cached"):
            problems.append("%s: task %s is %s" % (run, task, state))
    # Exactly one succeeded (or cached) attempt per task; none left running.
    attempts = db.execute("SELECT id, task_id, number, state, started_at, finished_at FROM attempts "
                          "WHERE run_id = ?", (run,)).fetchall()
    success = {}
    for attempt_id, task, number, state, started, finished in attempts:
        if state in ("succeeded", "cached"):
            if task in success:
                problems.append("%s: task %s succeeded twice: attempts %d and %d" %
                                (run, task, success[task][0], attempt_id))
            success[task] = (attempt_id, number, finished)
        if state == "running":
            problems.append("%s: attempt %d of %s still running" % (run, attempt_id, task))
    for task in expected_tasks:
        if task not in success:
            problems.append("%s: task %s has no succeeded attempt" % (run, task))
    stats["tasks"] += len(success)
    stats["attempts"] += len(attempts)
    stats["lost_attempts"] += sum(1 for a in attempts if a[3] == "lost")
    stats["cached_attempts"] += sum(1 for a in attempts if a[3] == "cached")
    # Every output: its recorded hash is the reference's, and so is every present copy.
    for task, _, _, outs in TASKS:
        if task not in success:
            continue
        for name in outs:
            rows = db.execute("SELECT id, content_hash FROM artifacts WHERE attempt_id = ? AND name = ?",
                              (success[task][0], name)).fetchall()
            if len(rows) != 1:
                problems.append("%s: %s.%s: %d artifacts recorded for its succeeded attempt" %
                                (run, task, name, len(rows)))
                continue
            artifact, recorded = rows[0]
            if recorded != reference[(task, name)]:
                problems.append("%s: %s.%s recorded %s, the task run by hand makes %s" %
                                (run, task, name, recorded, reference[(task, name)]))
            copies = db.execute("SELECT tier, uri, role, content_hash FROM artifact_copies "
                                "WHERE artifact_id = ? AND state = 'present'", (artifact,)).fetchall()
            if not any(role == "home" for _, _, role, _ in copies):
                problems.append("%s: %s.%s has no present home copy: %r" % (run, task, name, copies))
            for tier, uri, role, copy_hash in copies:
                path = uri if uri.startswith("/") else uri.split(":", 1)[-1]
                if copy_hash != recorded:
                    problems.append("%s: %s.%s: copy on %s recorded %s, artifact %s" %
                                    (run, task, name, tier, copy_hash, recorded))
                if not os.path.lexists(path):
                    problems.append("%s: %s.%s: %s copy %s recorded present is missing" %
                                    (run, task, name, tier, uri))
                    continue
                actual = hash_artifact(path)
                stats["copies_verified"] += 1
                if actual != recorded:
                    problems.append("%s: %s.%s: %s copy %s hashes %s, recorded %s" %
                                    (run, task, name, tier, uri, actual, recorded))
            stats["outputs_verified"] += 1
    # Flushed checkpoints hash as recorded.
    for task, name, uri, recorded in db.execute(
            "SELECT task_id, name, uri, content_hash FROM checkpoints WHERE run_id = ? AND state = 'present'",
            (run,)):
        path = uri if uri.startswith("/") else uri.split(":", 1)[-1]
        if not os.path.isdir(path):
            problems.append("%s: checkpoint %s/%s recorded present is missing at %s" % (run, task, name, uri))
        elif recorded and hash_artifact(path) != recorded:
            problems.append("%s: checkpoint %s/%s at %s hashes %s, recorded %s" %
                            (run, task, name, uri, hash_artifact(path), recorded))
        else:
            stats["checkpoints_verified"] += 1
    return attempts, success


def verify(layout, reference, campaign_stats, runs_expected=1):
    """Raises TrialFailed with every violation found; else adds what it verified to
    `campaign_stats` (so the figures count only trials that passed every check)."""
    problems = []
    stats = collections.Counter()
    db = sqlite3.connect("file:%s?mode=ro" % layout.db, uri=True)
    runs = db.execute("SELECT id, state, message FROM runs").fetchall()
    if len(runs) != runs_expected or any(state != "succeeded" for _, state, _ in runs):
        raise TrialFailed("expected %d succeeded runs, found %r" % (runs_expected, runs))
    attempts_of, success_of = {}, {}
    for run, _, _ in runs:
        attempts_of[run], success_of[run] = verify_run(db, run, reference, stats, problems)
    # Side effects: each line names a recorded attempt that started before it, and
    # comes before its task's success was committed.
    lines = open(layout.side_log).read().splitlines() if os.path.exists(layout.side_log) else []
    for line in lines:
        fields = line.split(" ")
        kind, run, task, number, when = fields[0], fields[1], fields[2], int(fields[3]), int(fields[4])
        if kind == "CKPT" and fields[6] != "resumed_from=-1":
            stats["checkpoint_resumes"] += 1
        if run not in attempts_of:
            problems.append("side effect of a run never recorded: %s" % line)
            continue
        started = {(a[1], a[2]): a[4] for a in attempts_of[run]}.get((task, number))
        success = success_of[run]
        if started is None:
            problems.append("side effect of an attempt never recorded: %s" % line)
            continue
        if when < started:
            problems.append("side effect before its attempt was recorded (started %d): %s" % (started, line))
        if task in success and when > success[task][2]:
            problems.append("side effect after %s's success was committed at %d: %s" %
                            (task, success[task][2], line))
    ended = {(f[1], f[2], f[3]) for f in (line.split(" ") for line in lines) if f[0] == "END"}
    for run, success in success_of.items():
        for task, (attempt_id, number, _) in success.items():
            cached = [a for a in attempts_of[run] if a[0] == attempt_id and a[3] == "cached"]
            if not cached and (run, task, str(number)) not in ended:
                problems.append("%s/%s: its succeeded attempt %d never logged its END" % (run, task, number))
    stats["side_effect_lines"] += len(lines)
    db.close()
    # Nothing outside the tier roots changed.
    after = layout.canaries()
    allowed_new = {"pipeline/__pycache__"}
    for path in sorted(set(layout.canaries_before) | set(after)):
        if path in allowed_new or path.startswith("pipeline/__pycache__/"):
            continue
        if layout.canaries_before.get(path) != after.get(path):
            problems.append("outside the tier roots: %s was %s, is %s" %
                            (path, layout.canaries_before.get(path), after.get(path)))
    stats["canaries_verified"] += len(layout.canaries_before)
    if problems:
        raise TrialFailed("; ".join(problems[:20]) + (" (and %d more)" % (len(problems) - 20)
                                                      if len(problems) > 20 else ""))
    stats["runs"] += len(runs)
    campaign_stats.update(stats)
