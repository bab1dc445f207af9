#!/usr/bin/env python3
"""The live display of `tierflow run` and `tierflow watch` in a real terminal.

tmux on a private socket (never the default server) runs a 302-task pipeline
(a foreach of 299 short sleeps, a few stages, one task that fails with a known
stderr line) and the test reads the pane as a user would, asserting structure
with regexes, not golden screens:
- 100x30: nothing scrolls off while the run goes (history_size stays 0 until
  the summary starts); the block shows the header, the overall bar and a line
  per stage; the summary lists the failed task with its stderr line and a
  `tierflow logs` command that, run through `sh -c`, prints that log;
- 60x15: no line wider than the pane (none wraps), history_size 0 likewise;
- NO_COLOR=1 on the terminal: no colour codes; through a pipe: no escape codes
  at all and a few dozen lines, not 600;
- `tierflow watch last` in a second pane ends with the same summary.

Usage: terminal_tmux_test.py TIERFLOW_BIN
"""

import os
import re
import sqlite3
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

TIERFLOW = os.path.abspath(sys.argv[1])
SOCKET = f"tierflow-{os.getpid()}-{os.urandom(3).hex()}"
DEADLINE_S = 90  # per case: only detects a hang

PIPELINE = """\
name: demo
stages:
  prepare:
    run: sleep 0.3
  shard:
    foreach: {range: [0, 299]}
    needs: [prepare]
    run: sleep 0.05
  wrongvar:
    needs: [prepare]
    run: 'sleep 1; echo "cannot create : Directory nonexistent" >&2; exit 2'
  report:
    needs: [shard]
    run: echo done
"""
STAGES = ["prepare", "shard", "wrongvar", "report"]
STDERR_LINE = "cannot create : Directory nonexistent"


def fail(message):
    print(f"terminal_tmux: FAIL: {message}", flush=True)
    subprocess.run(["tmux", "-L", SOCKET, "kill-server"], capture_output=True)
    sys.exit(1)


def tmux(*args):
    done = subprocess.run(["tmux", "-L", SOCKET, *args], capture_output=True, text=True)
    if done.returncode != 0:
        fail(f"tmux {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def start(name, width, height, command, work, env=""):
    # The pane stays after the command so that its last screen can be read.
    shell = f"cd {shlex.quote(work)} && {env} {command}; echo EXIT=$?; exec sleep 600"
    tmux("new-session", "-d", "-s", name, "-x", str(width), "-y", str(height), shell)
    tmux("set-option", "-t", name, "remain-on-exit", "on")


def history(name):
    return int(tmux("display", "-p", "-t", name, "#{history_size}").strip())


def screen(name, everything=False, escapes=False, join=False):
    args = ["capture-pane", "-p", "-t", name]
    if everything:
        args += ["-S", "-", "-E", "-"]
    if escapes:
        args.append("-e")
    if join:
        args.append("-J")
    return tmux(*args)


def until(what, condition, name):
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > DEADLINE_S:
            fail(f"waited {DEADLINE_S}s for {what}; screen:\n{screen(name)}")
        time.sleep(0.1)


def run_case(name, width, height, work, env=""):
    """Runs the pipeline in a width x height pane, polling it until it ends.
    Returns (frames seen before the summary, the whole pane at the end)."""
    db = f"state/{name}.db"
    start(name, width, height, f"{shlex.quote(TIERFLOW)} run p.yaml --db {db}", work, env)
    frames = []
    began = time.monotonic()
    while True:
        if time.monotonic() - began > DEADLINE_S:
            fail(f"{name}: the run did not end in {DEADLINE_S}s:\n{screen(name)}")
        text = screen(name)
        size = history(name)
        if size > 0 and "STAGE " not in screen(name, everything=True):
            fail(f"{name}: {size} lines scrolled off before the summary; screen with its history:\n"
                 f"{screen(name, everything=True)}")
        whole = screen(name, everything=True)
        if "EXIT=" in whole:
            break
        if "STAGE " not in whole:  # the summary has not begun
            frames.append(text)
        time.sleep(0.1)
    return frames, screen(name, everything=True, join=True), db, time.monotonic() - began


BAR = "[█▒░#!>.]"


def check_block(name, frames, width):
    header = re.compile(r"^run demo-[0-9a-f]+ · demo · 302 tasks")
    overall = re.compile(rf"^{BAR}{{10,40}} \d+/302 succeeded")
    stage = {s: re.compile(rf"^  {s} +generic +{BAR}{{20}} \d+/\d+ succeeded") for s in STAGES}
    full = [f for f in frames
            if any(header.match(l) for l in f.splitlines())
            and any(overall.match(l) for l in f.splitlines())
            and all(any(stage[s].match(l) for l in f.splitlines()) for s in STAGES)]
    if not full:
        fail(f"{name}: no frame showed the header, the overall bar and every stage; "
             f"{len(frames)} frames, the last:\n{frames[-1] if frames else '(none)'}")
    running = [f for f in full if re.search(r"\d+ running", f) and "▸ shard[" in f]
    if not running:
        fail(f"{name}: no frame showed running tasks; one frame:\n{full[-1]}")
    # Redrawn in place: one header on the screen at a time.
    for f in frames:
        if sum(1 for l in f.splitlines() if header.match(l)) > 1:
            fail(f"{name}: the block was drawn twice on one screen:\n{f}")
    print(f"# {name}: {len(frames)} frames polled, {len(full)} showed every stage")
    return full


def check_summary(name, end, work, db):
    if not re.search(r"^EXIT=1$", end, re.M):
        fail(f"{name}: exit code not 1 for a failed run:\n{end}")
    for s in STAGES:
        if not re.search(rf"^{s} +generic +\d+", end, re.M):
            fail(f"{name}: the summary has no row for stage {s}:\n{end}")
    m = re.search(r"^failed: wrongvar: exit 2\n    (.*)\n  logs: (tierflow logs .*)$", end, re.M)
    if not m:
        fail(f"{name}: the summary does not list wrongvar with its log and command:\n{end}")
    if m.group(1) != STDERR_LINE:
        fail(f"{name}: wrongvar's log line is {m.group(1)!r}, not {STDERR_LINE!r}")
    command = m.group(2)
    # As a user pastes it, with `tierflow` this build.
    done = subprocess.run(["sh", "-c", f'tierflow() {{ {shlex.quote(TIERFLOW)} "$@"; }}; {command}'],
                          cwd=work, capture_output=True, text=True, timeout=30)
    if done.returncode != 0 or STDERR_LINE not in done.stdout:
        fail(f"{name}: `{command}` exited {done.returncode}: {done.stdout}{done.stderr}")
    if not re.search(r"^run demo-[0-9a-f]+ failed in \S+ \(301/302 succeeded, 1 failed\)$", end, re.M):
        fail(f"{name}: no final run line:\n{end}")
    return command


def summary_part(end):
    """The summary from the table on, without times (TASK TIME, `in ...`)."""
    lines = end[end.index("STAGE "):].splitlines()
    out = []
    for line in lines:
        if line.startswith("EXIT="):
            break
        line = re.sub(r"\s+\S+$", "", line) if re.match(r"^\w+ +generic ", line) else line
        line = re.sub(r" in \S+ \(", " (", line)
        out.append(line)
    return out


def main():
    if shutil.which("tmux") is None:
        fail("tmux is not installed (scripts/bootstrap.sh installs it)")
    work = tempfile.mkdtemp(prefix="tierflow-tmux-")
    budget = time.monotonic()
    try:
        with open(os.path.join(work, "p.yaml"), "w") as f:
            f.write(PIPELINE)

        # 1. 100x30, colours on (tmux's TERM): nothing scrolls, structure, summary.
        frames, end, db, took = run_case("wide", 100, 30, work)
        check_block("wide", frames, 100)
        command = check_summary("wide", end, work, db)
        print(f"# wide: 100x30, run took {took:.1f}s, history 0 until the summary; {command}")

        # 2. 60x15: no line wraps.
        frames, end, db, took = run_case("narrow", 60, 15, work)
        check_block("narrow", frames, 60)
        for f in frames:
            for line in f.splitlines():
                if len(line) > 59:
                    fail(f"narrow: a line of {len(line)} columns on a 60-column pane:\n{line}")
        check_summary("narrow", end, work, db)
        print(f"# narrow: 60x15, run took {took:.1f}s, no line wider than 59 columns")

        # 2b. Narrowed from 100 to 60 columns while the block is shown: the
        # terminal rewraps the drawn lines; the block is then drawn whole again,
        # not torn (one header on the screen, no line wider than the pane), and
        # nothing more scrolls off. (tmux's own rewrap may push a few top rows
        # into the history as it resizes: its grid keeps the blank rows below
        # the cursor. That count is taken after the resize, and must not grow.)
        db = "state/resize.db"
        start("resize", 100, 30, f"{shlex.quote(TIERFLOW)} run p.yaml --db {db}", work)
        until("the block at 100 columns",
              lambda: re.search(r"^run demo-\S+ · demo · 302 tasks", screen("resize"), re.M),
              "resize")
        time.sleep(0.3)
        tmux("resize-window", "-t", "resize", "-x", "60", "-y", "30")
        resized = time.monotonic()
        pushed = history("resize")
        after = []
        while "EXIT=" not in screen("resize", everything=True):
            if time.monotonic() - resized > DEADLINE_S:
                fail(f"resize: the run did not end:\n{screen('resize')}")
            # The frame first, then the whole history: a frame is kept only
            # when the summary had not begun even after it was taken (the
            # summary's table is as wide as the terminal and wraps).
            frame = screen("resize")
            whole = screen("resize", everything=True)
            if history("resize") > pushed and "STAGE " not in whole:
                fail(f"resize: lines scrolled off after the resize ({pushed} at it):\n{whole}")
            if "STAGE " not in whole and time.monotonic() - resized > 0.5:
                after.append(frame)
            time.sleep(0.1)
        check_block("resize", after, 60)
        for f in after:
            for line in f.splitlines():
                if len(line) > 59:
                    fail(f"resize: a line of {len(line)} columns after narrowing to 60:\n{f}")
        check_summary("resize", screen("resize", everything=True, join=True), work, db)
        print(f"# resize: 100 -> 60 columns mid-run, {len(after)} frames after it, "
              f"one block, no line wider than 59, {pushed} rows pushed by tmux's rewrap")

        # 3. NO_COLOR on the terminal: the block, without colour codes.
        frames, end, db, took = run_case("nocolor", 100, 30, work, env="NO_COLOR=1")
        check_block("nocolor", frames, 100)
        coloured = screen("nocolor", everything=True, escapes=True)
        if re.search(r"\x1b\[[0-9;]*3[0-7]m|\x1b\[[0-9;]*9[0-7]m", coloured):
            fail(f"nocolor: colour codes with NO_COLOR=1:\n{coloured!r}")
        print(f"# nocolor: NO_COLOR=1, run took {took:.1f}s, no colour codes")

        # 4. Through a pipe (CI): plain lines, no escape codes, far fewer than 600.
        started = time.monotonic()
        piped = subprocess.run([TIERFLOW, "run", "p.yaml", "--db", "state/pipe.db"], cwd=work,
                               capture_output=True, text=True, timeout=DEADLINE_S)
        if piped.returncode != 1:
            fail(f"pipe: exit {piped.returncode}:\n{piped.stdout}{piped.stderr}")
        text = piped.stdout + piped.stderr
        if "\x1b" in text:
            fail(f"pipe: escape codes in a pipe:\n{text!r}")
        lines = text.splitlines()
        if len(lines) > 60:
            fail(f"pipe: {len(lines)} lines for 302 tasks:\n{text}")
        for needed in (r"^run demo-[0-9a-f]+: 302 tasks \(pipeline demo\)$", r"^wrongvar FAILED: exit 2$",
                       r"^\[\d+:\d\d\] 301/302 succeeded, 1 failed$", r"^failed: wrongvar: exit 2$",
                       rf"^    {STDERR_LINE}$"):
            if not re.search(needed, text, re.M):
                fail(f"pipe: no line matching {needed}:\n{text}")
        print(f"# pipe: {len(lines)} lines for 302 tasks in "
              f"{time.monotonic() - started:.1f}s, no escape codes")

        # 4b. Many failures: 20 listed with their logs, the rest named by a command.
        with open(os.path.join(work, "many.yaml"), "w") as f:
            f.write("name: many\nstages:\n  bad:\n    foreach: {range: [0, 25]}\n"
                    "    run: 'echo \"item $TIERFLOW_ITEM broke\" >&2; exit 3'\n"
                    "  after:\n    needs: [bad]\n    run: echo never\n")
        many = subprocess.run([TIERFLOW, "run", "many.yaml", "--db", "state/many.db"], cwd=work,
                              capture_output=True, text=True, timeout=DEADLINE_S)
        listed = re.findall(r"^failed: bad\[(\d+)\]: exit 3\n    item \1 broke$", many.stdout,
                            re.M)
        more = re.search(r"^and 5 more: tierflow logs many-[0-9a-f]+ --failed --db state/many.db$",
                         many.stdout, re.M)
        if many.returncode != 1 or len(listed) != 20 or not more:
            fail(f"many: exit {many.returncode}, {len(listed)} failures listed:\n{many.stdout}")
        if re.search(r"^failed: after", many.stdout, re.M) or "1 upstream_failed" not in many.stdout:
            fail(f"many: the upstream_failed task is listed, or not counted:\n{many.stdout}")
        print("# many: 25 failed, 20 listed with their log line, 'and 5 more', "
              "upstream_failed counted not listed")

        # 5. watch: the run in one pane, `tierflow watch last` in another.
        db = "state/watched.db"
        start("driver", 100, 30, f"{shlex.quote(TIERFLOW)} run p.yaml --db {db}", work)
        began = time.monotonic()
        while not os.path.exists(os.path.join(work, db)) or "·" not in screen("driver"):
            if time.monotonic() - began > DEADLINE_S:
                fail(f"watch: the run did not start:\n{screen('driver')}")
            time.sleep(0.1)
        start("watcher", 100, 30, f"{shlex.quote(TIERFLOW)} watch last --db {db}", work)
        watched = []
        while "EXIT=" not in screen("watcher", everything=True) \
                or "EXIT=" not in screen("driver", everything=True):
            if time.monotonic() - began > DEADLINE_S:
                fail(f"watch: did not end:\n{screen('watcher')}")
            frame = screen("watcher")  # before the check, as in the others
            if "STAGE " not in screen("watcher", everything=True):
                watched.append(frame)
                if history("watcher") > 0:
                    fail(f"watch: lines scrolled off before the summary:\n{screen('watcher')}")
            time.sleep(0.1)
        check_block("watcher", watched, 100)
        run_end = screen("driver", everything=True, join=True)
        watch_end = screen("watcher", everything=True, join=True)
        check_summary("watcher", watch_end, work, db)
        if not re.search(r"^wrongvar FAILED: exit 2$", watch_end, re.M):
            fail(f"watch: the failure was not shown as it was recorded:\n{watch_end}")
        if summary_part(run_end) != summary_part(watch_end):
            fail("watch: its summary differs from run's:\n" + "\n".join(summary_part(run_end))
                 + "\n---\n" + "\n".join(summary_part(watch_end)))
        print(f"# watch: attached to the running run, same summary as run's, exit 1")

        # 6. watch of a finished run: its summary at once.
        done = subprocess.run([TIERFLOW, "watch", "last", "--db", db], cwd=work,
                              capture_output=True, text=True, timeout=30)
        if done.returncode != 1 or summary_part(done.stdout + "EXIT=") != summary_part(watch_end):
            fail(f"watch of a finished run: exit {done.returncode}:\n{done.stdout}{done.stderr}")
        print("# watch: a finished run's summary at once, exit 1")

        # 7. watch of a run whose engine was killed: says so, with the resume command.
        with open(os.path.join(work, "slow.yaml"), "w") as f:
            f.write("name: slow\nstages:\n  wait:\n    run: sleep 60\n")
        gone_db = os.path.join(work, "state", "gone.db")
        engine = subprocess.Popen([TIERFLOW, "run", "slow.yaml", "--db", gone_db], cwd=work,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pid = None
        began = time.monotonic()
        while pid is None:
            if time.monotonic() - began > DEADLINE_S:
                engine.kill()
                fail("gone: the slow task never started")
            try:
                with sqlite3.connect(f"file:{gone_db}?mode=ro", uri=True) as c:
                    row = c.execute("SELECT pid FROM attempts WHERE state = 'running'").fetchone()
                    pid = row[0] if row else None
            except sqlite3.Error:
                pass
            time.sleep(0.1)
        engine.kill()
        engine.wait()
        try:
            os.killpg(pid, 9)  # the task's group, which the engine started
        except ProcessLookupError:
            pass
        gone = subprocess.run([TIERFLOW, "watch", "last", "--db", gone_db], cwd=work,
                              capture_output=True, text=True, timeout=30)
        if gone.returncode != 1 or "engine is gone" not in gone.stderr \
                or "tierflow resume slow-" not in gone.stderr:
            fail(f"gone: exit {gone.returncode}:\n{gone.stdout}{gone.stderr}")
        print(f"# watch: a run whose engine was killed: {gone.stderr.strip()}")
        # 8. Ctrl-C: in watch it only detaches; in run it cancels, the block
        # ends with the cursor shown again.
        with open(os.path.join(work, "long.yaml"), "w") as f:
            f.write("name: long\nstages:\n  wait:\n    foreach: {range: [0, 2]}\n"
                    "    run: sleep 60\n")
        db = "state/long.db"
        start("longrun", 100, 30, f"{shlex.quote(TIERFLOW)} run long.yaml --db {db}", work)
        until("the long run's block", lambda: "2 running" in screen("longrun"), "longrun")
        if tmux("display", "-p", "-t", "longrun", "#{cursor_flag}").strip() != "0":
            fail("ctrl-c: the cursor is shown while the block is drawn")
        start("longwatch", 100, 30, f"{shlex.quote(TIERFLOW)} watch last --db {db}", work)
        until("watch's block", lambda: "2 running" in screen("longwatch"), "longwatch")
        tmux("send-keys", "-t", "longwatch", "C-c")
        until("watch to detach", lambda: "EXIT=" in screen("longwatch"), "longwatch")
        text = screen("longwatch", join=True)
        if "EXIT=130" not in text or "detached from run long-" not in text:
            fail(f"ctrl-c: watch did not detach:\n{text}")
        with sqlite3.connect(f"file:{os.path.join(work, db)}?mode=ro", uri=True) as c:
            state = c.execute("SELECT state FROM runs").fetchone()[0]
        if state != "running" or "EXIT=" in screen("longrun"):
            fail(f"ctrl-c: detaching watch stopped the run ({state}):\n{screen('longrun')}")
        tmux("send-keys", "-t", "longrun", "C-c")
        until("run to end after Ctrl-C", lambda: "EXIT=" in screen("longrun", everything=True),
              "longrun")
        text = screen("longrun", everything=True, join=True)
        if "EXIT=130" not in text or "cancelling" not in text or "cancelled" not in text:
            fail(f"ctrl-c: run did not cancel:\n{text}")
        if tmux("display", "-p", "-t", "longrun", "#{cursor_flag}").strip() != "1":
            fail("ctrl-c: the cursor stays hidden after the run")
        print("# ctrl-c: watch detached (exit 130, the run went on); run cancelled (exit 130), "
              "'cancelling' shown, cursor visible again")

        print(f"# terminal_tmux: every case in {time.monotonic() - budget:.1f}s")
    finally:
        subprocess.run(["tmux", "-L", SOCKET, "kill-server"], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
