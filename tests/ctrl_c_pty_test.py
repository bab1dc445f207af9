#!/usr/bin/env python3
"""Ctrl-C and SIGTERM on a terminal (CTest: ctrl_c_pty).

`tierflow run` runs in a real pseudo-terminal (python3's pty module), so its
live display (the status line redrawn by a thread of its own) is on. Before
the fix that thread started with SIGINT and SIGTERM unblocked and could take
them: tierflow died at once and left its tasks running, or stayed alive with
the run `running`. Checked here, for Ctrl-C typed on the terminal (the line
discipline sends SIGINT to the foreground process group) and for SIGTERM:

- every thread of tierflow has SIGINT and SIGTERM blocked (only its
  signalfd watcher reads them);
- tierflow exits with the cancelled status (130) and says it is cancelling;
- the run and its attempts are recorded cancelled;
- the tasks' processes (the recorded process-group leaders, and a child each
  left in their group) are gone; nothing of the run is left running.

Usage: ctrl_c_pty_test.py TIERFLOW_BIN
"""
import os
import pty
import select
import shutil
import signal
import sqlite3
import sys
import tempfile
import time

TIERFLOW = os.path.abspath(sys.argv[1])
DEADLINE_S = 30  # every wait below fails the test when it runs out

PIPELINE = """name: hold
stages:
  hold:
    foreach: {range: [0, 2]}
    run: sleep 60 & echo $! > child-$TIERFLOW_ITEM.pid; wait
"""


def fail(message):
    print(f"ctrl_c_pty: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def query(db, sql):
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def blocked_in_every_thread(pid):
    """SigBlk of each thread of `pid`: {tid: blocks INT and TERM}."""
    wanted = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1))
    result = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as status:
                for line in status:
                    if line.startswith("SigBlk:"):
                        result[int(tid)] = int(line.split()[1], 16) & wanted == wanted
        except FileNotFoundError:
            pass  # a thread that ended meanwhile
    return result


class Terminal:
    """tierflow on the slave side of a pty; the screen text it wrote."""

    def __init__(self, argv, cwd):
        self.pid, self.master = pty.fork()
        if self.pid == 0:
            os.chdir(cwd)
            os.environ["TERM"] = "xterm"
            os.execv(argv[0], argv)
        self.screen = b""
        self.status = None

    def pump(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ready, _, _ = select.select([self.master], [], [], max(0.0, end - time.monotonic()))
            if not ready:
                return
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the slave side closed
                return
            if not data:
                return
            self.screen += data

    def wait_exit(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.pump(0.2)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.pump(0.2)
                self.status = status
                return True
        return False

    def text(self):
        return self.screen.decode("utf-8", "replace")


def until(what, predicate, terminal=None):
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        if predicate():
            return
        if terminal is not None:
            terminal.pump(0.1)
        else:
            time.sleep(0.1)
    fail(f"timed out after {DEADLINE_S}s waiting for {what}")


def trial(name, stop):
    work = tempfile.mkdtemp(prefix=f"tierflow-ctrlc-{name}.")
    os.mkdir(os.path.join(work, "tier"))
    with open(os.path.join(work, "p.yaml"), "w") as f:
        f.write(PIPELINE)
    with open(os.path.join(work, "tiers.yaml"), "w") as f:
        f.write(f"tiers:\n  disk:\n    adapter: posix\n    root: {work}/tier\n"
                f"    durability: durable\n")
    db = os.path.join(work, "state", "t.db")
    term = Terminal([TIERFLOW, "run", "p.yaml", "--tiers", "tiers.yaml", "--db", db,
                     "--kill-grace", "5"], work)
    try:
        # Both tasks started (their pids recorded) and the live status line drawn.
        def started():
            if not os.path.exists(db):
                return False
            try:
                rows = query(db, "SELECT pid FROM attempts WHERE state = 'running'")
            except sqlite3.OperationalError:
                return False
            return len(rows) == 2 and all(pid is not None for (pid,) in rows)
        until("both tasks to start", started, term)
        until("the live status line", lambda: "2 running" in term.text(), term)
        for item in (0, 1):
            until(f"task {item}'s child pid file",
                  lambda: os.path.exists(os.path.join(work, f"child-{item}.pid")), term)
        leaders = [pid for (pid,) in query(db, "SELECT pid FROM attempts")]
        children = []
        for item in (0, 1):
            with open(os.path.join(work, f"child-{item}.pid")) as f:
                children.append(int(f.read().strip()))
        threads = blocked_in_every_thread(term.pid)
        if len(threads) < 2:
            fail(f"{name}: expected the display's and the watcher's threads, saw {threads}")
        unblocked = [tid for tid, ok in threads.items() if not ok]
        if unblocked:
            fail(f"{name}: threads {unblocked} of tierflow (pid {term.pid}) can take "
                 f"SIGINT/SIGTERM")

        stop(term)
        if not term.wait_exit(DEADLINE_S):
            fail(f"{name}: tierflow still running {DEADLINE_S}s after the signal; "
                 f"screen:\n{term.text()}")
        if not os.WIFEXITED(term.status) or os.WEXITSTATUS(term.status) != 130:
            fail(f"{name}: tierflow ended with wait status {term.status}, not exit 130; "
                 f"screen:\n{term.text()}")
        if "cancelling" not in term.text():
            fail(f"{name}: no 'cancelling' on the terminal:\n{term.text()}")
        runs = query(db, "SELECT state FROM runs")
        if runs != [("cancelled",)]:
            fail(f"{name}: run recorded {runs}, not cancelled")
        attempts = query(db, "SELECT state FROM attempts")
        if sorted(attempts) != [("cancelled",), ("cancelled",)]:
            fail(f"{name}: attempts recorded {attempts}, not both cancelled")
        for pid in leaders:
            until(f"task group {pid} to be gone", lambda: not group_alive(pid))
        for pid in children:
            until(f"task child {pid} to be gone", lambda: not alive(pid))
        print(f"ctrl_c_pty: {name}: exit 130, run and attempts cancelled, "
              f"{len(leaders)} task groups and {len(children)} children gone, "
              f"{len(threads)} threads all blocking SIGINT/SIGTERM")
    finally:
        if term.status is None:
            try:
                os.kill(term.pid, signal.SIGKILL)
                os.waitpid(term.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        os.close(term.master)
        shutil.rmtree(work, ignore_errors=True)


def ctrl_c(term):
    # ^C typed on the terminal: the line discipline sends SIGINT to the
    # foreground process group (tierflow's; each task has a group of its own).
    os.write(term.master, b"\x03")


def sigterm(term):
    os.kill(term.pid, signal.SIGTERM)


trial("ctrl-c", ctrl_c)
trial("sigterm", sigterm)
print("ctrl_c_pty: ok")
