#!/usr/bin/env python3
"""bench/overhead: per-task scheduling overhead of `tierflow run` on DAGs of
no-op tasks, side by side with `make -j N`, Snakemake and `xargs -P N` (the
fork/exec floor), all measured in the same run. See bench/README.md.

For each DAG shape the harness writes, into a temp dir, one equivalent
definition per tool (pipeline.yaml, Makefile, Snakefile, tasks.txt) with a
fixed random seed, so every run measures the same DAG. Every task runs the
program `true` once and nothing else. Each tool runs as a child process in a
fresh working directory (nothing cached between runs), once to warm up and
then --repeat times; tools take turns within each repetition so that noise
from a shared machine spreads over all of them. The report gives the median
wall time (fork to reap, tool start-up included), the per-task overhead
(wall / tasks), the median CPU time of the tool's whole process tree
(wait4's rusage), and the ratios of both to make's. The target is on wall
time; CPU time shows the same overhead with less noise on a busy machine.

The target (issue 21): tierflow within 1.2x of make -j on every shape (1.3x
at 100,000 tasks), while recording full lineage.

--export adds `tierflow-export`: the same binary with OpenLineage export on
(issue 19), its events POSTed to a receiver on loopback; the report gives
its time against export off and the outbox's events and bytes per 1,000
tasks.

Standard library only.
"""

import argparse
import dataclasses
import datetime
import os
import platform
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

SEED = 42               # same DAGs in every run
TARGET_RATIO = 1.2      # tierflow wall time / make wall time, on every shape (issue 21)
TARGET_RATIO_LARGE = 1.3  # ... on the shapes of 100,000 tasks
LARGE = 100_000
LAYERED_PARENTS = 3     # layered: parents per task, drawn from the layer before

ALL_SHAPES = ["wide1000", "wide10000", "chain200", "diamond500", "layered10x100"]
# Not run unless asked for (--shapes): about 1 to 2 minutes per run and tool.
LARGE_SHAPES = ["wide100000", "layered100x1000"]
# --form shell: the command every task runs, written as a shell string for
# tierflow and as the recipe for make (which execs it without a shell, as it
# holds no shell syntax). Not `true`: that is a shell builtin, which a shell
# string must leave to the shell (common/shell_words.h); /bin/true with
# arguments is an external program, as `python3 train.py --lr 0.1` is.
SHELL_COMMAND = "/bin/true --lr 0.1"
ALL_TOOLS = ["tierflow", "make", "snakemake", "xargs"]
BASELINE = "make"
EXPORT = "tierflow-export"  # --export: tierflow with OpenLineage export on

# Children get a short, fixed PATH: `true` is looked up through PATH by
# xargs (execvp), make, and presumably tierflow, and a long developer PATH
# (pyenv shims, cargo, ...) would add failed execve calls per task to some
# tools and not others.
CHILD_PATH = "/usr/bin:/bin"


# ---- DAG shapes ---------------------------------------------------------------

@dataclasses.dataclass
class Dag:
    shape: str
    what: str
    names: list          # task names in a topological order
    parents: dict        # name -> list of parent names

    @property
    def edges(self):
        return sum(len(p) for p in self.parents.values())

    def sinks(self):
        """Tasks nothing depends on: what make's and Snakemake's `all` ask for."""
        has_child = {p for ps in self.parents.values() for p in ps}
        return [n for n in self.names if n not in has_child]


def task_name(i):
    return f"t{i:05d}"


def make_dag(shape):
    rng = random.Random(SEED)
    if shape.startswith("wide"):
        n = int(shape[len("wide"):])
        names = [task_name(i + 1) for i in range(n)]
        return Dag(shape, f"{n} independent tasks", names, {t: [] for t in names})
    if shape.startswith("chain"):
        n = int(shape[len("chain"):])
        names = [task_name(i + 1) for i in range(n)]
        parents = {t: ([names[i - 1]] if i else []) for i, t in enumerate(names)}
        return Dag(shape, f"{n} tasks in a line, each needs the one before", names, parents)
    if shape.startswith("diamond"):
        k = int(shape[len("diamond"):])
        names = [task_name(i + 1) for i in range(k + 2)]
        source, middle, sink = names[0], names[1:-1], names[-1]
        parents = {source: [], sink: list(middle)}
        parents.update({t: [source] for t in middle})
        return Dag(shape, f"1 -> {k} -> 1", names, parents)
    if shape.startswith("layered"):
        layers, width = (int(x) for x in shape[len("layered"):].split("x"))
        names, parents, previous = [], {}, []
        for _ in range(layers):
            layer = [task_name(len(names) + i + 1) for i in range(width)]
            for t in layer:
                # sorted: the order within `needs` does not matter, and sorted
                # lists make the generated files easier to read and diff.
                parents[t] = sorted(rng.sample(previous, LAYERED_PARENTS)) if previous else []
            names += layer
            previous = layer
        return Dag(shape, f"{layers} layers x {width}, each task needs "
                          f"{LAYERED_PARENTS} random tasks of the layer before", names, parents)
    raise ValueError(f"unknown shape {shape!r}")


# ---- one definition per tool ------------------------------------------------------

def write_pipeline_yaml(dag, path, form="argv"):
    """tierflow: one generic stage per task, `needs` for edges; the command in
    argv form (`["true"]`) or as a shell string (SHELL_COMMAND)."""
    lines = [f"# generated by bench/overhead.py: {dag.shape}, {len(dag.names)} tasks",
             f"name: overhead-{dag.shape}",
             "stages:"]
    for t in dag.names:
        lines.append(f"  {t}:")
        lines.append('    run: ["true"]' if form == "argv" else f'    run: "{SHELL_COMMAND}"')
        if dag.parents[t]:
            lines.append(f"    needs: [{', '.join(dag.parents[t])}]")
    _write(path, lines)


def write_makefile(dag, path, form="argv"):
    """make: one target per task whose recipe is `true`.

    The targets are never created, so make considers every one out of date
    and runs it exactly once per invocation. Make runs a recipe without shell
    metacharacters by exec'ing it directly, so each task is one fork/exec of
    `true`, as in tierflow. `all` (the first target, so the default goal)
    asks for the sinks. Built-in rules and variables are switched off (-rR
    via MAKEFLAGS), as generated Makefiles usually do; none of them apply.
    """
    lines = [f"# generated by bench/overhead.py: {dag.shape}, {len(dag.names)} tasks",
             "MAKEFLAGS += -rR",
             ".PHONY: all",
             f"all: {' '.join(dag.sinks())}",
             ""]
    for t in dag.names:
        lines.append(f"{t}: {' '.join(dag.parents[t])}".rstrip())
        lines.append("\t@true" if form == "argv" else f"\t@{SHELL_COMMAND}")
    _write(path, lines)


def write_snakefile(dag, path):
    """Snakemake: one rule per task running `true`; edges through stamp files.

    Snakemake links jobs only through files, so each rule declares a stamp
    output. touch() makes Snakemake create it in-process (no extra exec per
    task); `shell: "true"` still costs Snakemake's usual `bash -c`.
    """
    def stamp(t):
        return f'"s/{t}"'

    lines = [f"# generated by bench/overhead.py: {dag.shape}, {len(dag.names)} tasks",
             "rule all:",
             f"    input: [{', '.join(stamp(t) for t in dag.sinks())}]",
             ""]
    for t in dag.names:
        lines.append(f"rule {t}:")
        if dag.parents[t]:
            lines.append(f"    input: [{', '.join(stamp(p) for p in dag.parents[t])}]")
        lines.append(f"    output: touch({stamp(t)})")
        lines.append('    shell: "true"')
    _write(path, lines)


def write_task_list(dag, path):
    """xargs: one task name per line; `true NAME` runs once for each."""
    _write(path, dag.names)


def _write(path, lines):
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


# ---- tools ----------------------------------------------------------------------

@dataclasses.dataclass
class Tool:
    name: str
    skip_reason: str = ""   # non-empty: not run, the row says why
    version: str = ""
    note: str = ""          # a caveat worth printing with the results
    env: dict = dataclasses.field(default_factory=dict)  # added to the child's environment

    def command(self, files, rundir, slots):
        """argv and stdin file of one run, working in the fresh `rundir`."""
        raise NotImplementedError

    def check_after(self, files, rundir, tasks):
        """A problem with a finished run that exited 0, or ''."""
        return ""

    def tasks_done(self, rundir):
        """How many tasks a run in rundir has finished, if the tool shows it
        (for the report of a run that timed out), else None."""
        return None


class Tierflow(Tool):
    def __init__(self, binary, name="tierflow", env=None):
        super().__init__(name, env=dict(env or {}))
        self.binary = os.path.abspath(binary)
        self.quiet = False
        # --export: the outbox of the last run checked (rows, body bytes, pending at exit).
        self.last_outbox = None
        if not os.access(self.binary, os.X_OK):
            self.skip_reason = f"skipped (no tierflow binary at {binary})"
            return
        self.version = _first_line([self.binary, "--version"])
        # CLI11 answers `tierflow run --help` with the top-level help and exit
        # 0 when there is no `run` subcommand, so look for run's own usage line.
        help_text = _output([self.binary, "run", "--help"])
        if help_text is None or "Usage: " not in help_text or \
                not any(line.startswith("Usage:") and " run" in line
                        for line in help_text.splitlines()):
            self.skip_reason = f"skipped (no `run` subcommand in {binary})"
            return
        missing = [opt for opt in ("--slots", "--db") if opt not in help_text]
        if missing:
            self.skip_reason = (f"skipped (`{binary} run` has no "
                                f"{' or '.join(missing)} option)")
            return
        self.quiet = "--quiet" in help_text

    def command(self, files, rundir, slots):
        argv = [self.binary, "run", files["yaml"], "--slots", str(slots),
                "--db", os.path.join(rundir, "state", "tierflow.db")]
        if self.quiet:
            argv.append("--quiet")
        return argv, None

    def check_after(self, files, rundir, tasks):
        """The run must have recorded a successful attempt of every task:
        the benchmark is about scheduling *with* lineage."""
        db = os.path.join(rundir, "state", "tierflow.db")
        if not os.path.exists(db):
            return f"exit 0 but no state DB at {db}: lineage not recorded?"
        try:
            recorded = self._recorded(db)
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                (runs, state), = conn.execute("SELECT count(*), max(state) FROM runs")
                (attempts,), = conn.execute(
                    "SELECT count(*) FROM attempts WHERE state = 'succeeded' "
                    "AND finished_at IS NOT NULL")
                (events,), = conn.execute("SELECT count(*) FROM events")
        except sqlite3.Error as e:
            return f"exit 0 but cannot read the lineage in {db}: {e}"
        if recorded != tasks or attempts != tasks:
            return (f"exit 0 but {db} records {recorded} succeeded tasks and {attempts} "
                    f"succeeded attempts of {tasks}")
        if runs != 1 or state != "succeeded":
            return f"exit 0 but {db} holds {runs} runs, state {state}"
        if events < 2 * tasks:  # at least running and succeeded per task
            return f"exit 0 but {db} holds only {events} events for {tasks} tasks"
        if "TIERFLOW_OPENLINEAGE_URL" in self.env:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                outbox = conn.execute(
                    "SELECT count(*), coalesce(sum(length(body)), 0), "
                    "coalesce(sum(state = 'pending'), 0) FROM lineage_outbox").fetchone()
            # A START and an end per attempt, a START and an end of the run.
            if outbox[0] < 2 * tasks + 2:
                return f"exit 0 but {db}'s outbox holds {outbox[0]} events for {tasks} tasks"
            self.last_outbox = outbox
        return ""

    def tasks_done(self, rundir):
        try:
            return self._recorded(os.path.join(rundir, "state", "tierflow.db"))
        except sqlite3.Error:
            return None

    @staticmethod
    def _recorded(db):
        """Tasks with a successful attempt recorded in the state DB."""
        if not os.path.exists(db):
            raise sqlite3.OperationalError(f"no {db}")
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            (n,), = conn.execute(
                "SELECT count(*) FROM tasks WHERE state = 'succeeded'")
        return n


class Make(Tool):
    def __init__(self):
        super().__init__("make")
        if not shutil.which("make", path=CHILD_PATH):
            self.skip_reason = "skipped (make not found)"
            return
        self.version = _first_line(["make", "--version"])

    def command(self, files, rundir, slots):
        return ["make", "-j", str(slots), "-f", files["makefile"]], None


class Snakemake(Tool):
    def __init__(self):
        super().__init__("snakemake")
        if not shutil.which("snakemake", path=CHILD_PATH):
            self.skip_reason = ("skipped (snakemake not found: "
                                "apt-get install snakemake, or bench/run_overhead.sh)")
            return
        self.version = "snakemake " + _first_line(["snakemake", "--version"])

    def command(self, files, rundir, slots):
        # --quiet takes optional values, so it must not stand right before the
        # Snakefile path; -d puts the stamps and .snakemake/ into rundir.
        return ["snakemake", "-j", str(slots), "--scheduler", "greedy", "--quiet",
                "-s", files["snakefile"], "-d", rundir], None

    def check_after(self, files, rundir, tasks):
        if not os.path.isdir(os.path.join(rundir, "s")):
            return "exit 0 but no stamp files: nothing ran?"
        return ""

    def tasks_done(self, rundir):
        stamps = os.path.join(rundir, "s")
        return len(os.listdir(stamps)) if os.path.isdir(stamps) else 0


class Xargs(Tool):
    def __init__(self):
        super().__init__("xargs")
        if not shutil.which("xargs", path=CHILD_PATH):
            self.skip_reason = "skipped (xargs not found)"
            return
        self.version = _first_line(["xargs", "--version"])
        self.note = "ignores dependencies: the fork/exec floor"

    def command(self, files, rundir, slots):
        return ["xargs", "-P", str(slots), "-n", "1", "true"], files["tasks"]


def _child_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERFLOW_OPENLINEAGE")}
    env["PATH"] = CHILD_PATH
    env.update(extra or {})
    return env


class LineageReceiver:
    """An OpenLineage endpoint on loopback for --export (and
    bench/lineage_export.py): http.server answering every POST with 201 at
    once, counting them."""

    def __init__(self):
        import http.server
        self.count = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.count += 1
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = "http://127.0.0.1:%d/api/v1/lineage" % self.server.server_address[1]


def _output(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=_child_env())
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout + r.stderr if r.returncode == 0 else None


def _first_line(argv):
    out = _output(argv)
    return out.strip().splitlines()[0] if out and out.strip() else "?"


# ---- measuring ------------------------------------------------------------------

@dataclasses.dataclass
class Run:
    wall: float = 0.0        # seconds, fork to reap
    cpu: float = 0.0         # seconds, user + system of the whole process tree
    error: str = ""          # "timeout" or a failure description; "" when fine
    done: int = None         # after a timeout: tasks finished, where the tool shows it
    outbox: tuple = None     # --export: the lineage outbox's (events, body bytes, pending)


def run_once(argv, stdin_path, rundir, timeout, env=None):
    """Runs argv in rundir as the leader of a new session and process group.

    os.wait4 gives the CPU time of the child and of every descendant it
    reaped (make's, xargs' and Snakemake's jobs included). Its peak RSS is
    not reported: a child spawned from this Python process starts with the
    parent's RSS as its high-water mark. A timer kills the whole group after
    `timeout` seconds, so a tool that hangs or crawls cannot hold the
    benchmark.
    """
    out_path = os.path.join(rundir, "stdout.txt")
    err_path = os.path.join(rundir, "stderr.txt")
    timed_out = threading.Event()

    def kill_group(pgid):
        timed_out.set()
        _kill_group(pgid)

    with open(out_path, "wb") as out, open(err_path, "wb") as err, \
            open(stdin_path or os.devnull, "rb") as stdin:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=rundir, stdin=stdin, stdout=out, stderr=err,
                                env=_child_env(env), start_new_session=True)
        timer = threading.Timer(timeout, kill_group, (proc.pid,))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            # Ctrl-C or SIGTERM of the harness: the tool is in its own session
            # and would go on running, so end it (and reap it) first.
            timer.cancel()
            _kill_group(proc.pid)
            proc.wait()
            raise
        wall = time.perf_counter() - start
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    # A job that outlived its tool would skew the next run: end the group.
    _kill_group(proc.pid)

    run = Run(wall=wall, cpu=usage.ru_utime + usage.ru_stime)
    if timed_out.is_set():
        run.error = "timeout"
    elif proc.returncode != 0:
        run.error = f"exit {proc.returncode}: {_tail(err_path) or _tail(out_path)}"
    return run


def _kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _tail_lines(path, lines):
    try:
        with open(path, errors="replace") as f:
            return f.read().strip().splitlines()[-lines:]
    except OSError:
        return []


def _tail(path, lines=5):
    """The last lines of a log, on one line for a table cell."""
    return " | ".join(_tail_lines(path, lines))


@dataclasses.dataclass
class Result:
    shape: str
    tasks: int
    edges: int
    tool: str
    runs: list = dataclasses.field(default_factory=list)
    status: str = ""     # non-empty: skipped / timeout / failed; no figures

    def median_wall(self):
        return statistics.median(r.wall for r in self.runs)

    def median_cpu(self):
        return statistics.median(r.cpu for r in self.runs)


def measure_shape(dag, tools, workdir, args, keep):
    """Warm-up plus args.repeat measured runs of every tool on one DAG."""
    shape_dir = os.path.join(workdir, dag.shape)
    os.makedirs(shape_dir, exist_ok=True)
    files = {"yaml": os.path.join(shape_dir, "pipeline.yaml"),
             "makefile": os.path.join(shape_dir, "Makefile"),
             "snakefile": os.path.join(shape_dir, "Snakefile"),
             "tasks": os.path.join(shape_dir, "tasks.txt")}
    write_pipeline_yaml(dag, files["yaml"], args.form)
    write_makefile(dag, files["makefile"], args.form)
    write_snakefile(dag, files["snakefile"])
    write_task_list(dag, files["tasks"])

    results = {t.name: Result(dag.shape, len(dag.names), dag.edges, t.name,
                              status=t.skip_reason) for t in tools}
    active = [t for t in tools if not t.skip_reason]

    def one(tool, label, last):
        rundir = os.path.join(shape_dir, "runs", f"{tool.name}-{label}")
        shutil.rmtree(rundir, ignore_errors=True)
        os.makedirs(rundir)
        argv, stdin = tool.command(files, rundir, args.slots)
        run = run_once(argv, stdin, rundir, args.timeout, tool.env)
        if run.error == "timeout":
            run.done = tool.tasks_done(rundir)
        elif not run.error:
            problem = tool.check_after(files, rundir, len(dag.names))
            if problem:
                run.error = problem
            run.outbox = getattr(tool, "last_outbox", None)
        _progress(f"  {dag.shape} {tool.name} {label}: "
                  f"{_timeout_text(run, args, len(dag.names)) if run.error == 'timeout' else _fmt_s(run.wall)}"
                  f"{'  FAILED ' + run.error if run.error and run.error != 'timeout' else ''}")
        if run.error:
            _progress(f"    command: {' '.join(argv)}{' < ' + stdin if stdin else ''}")
            _progress(f"    last lines of its stderr ({rundir}/stderr.txt):")
            for line in _tail_lines(os.path.join(rundir, "stderr.txt"), 20):
                _progress(f"      {line}")
        # Keep the last run's directory (logs, stamps, state DB) with --keep
        # and after any failure; otherwise clean up as we go.
        elif not (keep and last):
            shutil.rmtree(rundir, ignore_errors=True)
        return run

    def give_up(tool, run):
        results[tool.name].status = (_timeout_text(run, args, len(dag.names))
                                     if run.error == "timeout" else f"failed ({run.error})")
        active.remove(tool)

    for tool in list(active):
        run = one(tool, "warmup", False)
        if run.error:
            give_up(tool, run)
    for rep in range(args.repeat):
        for tool in list(active):
            run = one(tool, f"run{rep + 1}", rep == args.repeat - 1)
            if run.error:
                give_up(tool, run)
            else:
                results[tool.name].runs.append(run)
    return [results[t.name] for t in tools]


# ---- reporting ------------------------------------------------------------------

def _timeout_text(run, args, tasks):
    done = f"; {run.done:,} of {tasks:,} tasks done" if run.done is not None else ""
    return f"timeout (> {args.timeout:g} s{done})"


def _fmt_s(seconds):
    if seconds >= 10:
        return f"{seconds:.1f} s"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1e3:.1f} ms"


def _fmt_per_task(seconds):
    us = seconds * 1e6
    if us >= 1000:
        return f"{us / 1000:.2f} ms"
    return f"{us:.0f} µs"


def _fmt_ratio(r):
    return f"{r:.2f}x" if r < 10 else f"{r:.0f}x"


def table_rows(results):
    """Rows of strings; the header first."""
    rows = [["shape", "tasks", "edges", "tool", "runs", "median wall", "range (min-max)",
             "per task", "median CPU", "wall vs make", "CPU vs make", "target"]]
    by_shape = {}
    for r in results:
        by_shape.setdefault(r.shape, []).append(r)
    for shape, rs in by_shape.items():
        base = next((r for r in rs if r.tool == BASELINE and r.runs and not r.status), None)
        for r in rs:
            row = [r.shape, str(r.tasks), str(r.edges), r.tool]
            if r.status or not r.runs:
                row += ["0", r.status or "no runs", "", "", "", "", "", ""]
            else:
                wall = r.median_wall()
                ratio = wall / base.median_wall() if base else None
                cpu_ratio = r.median_cpu() / base.median_cpu() if base else None
                target = ""
                if r.tool == "tierflow" and ratio is not None:
                    limit = TARGET_RATIO_LARGE if r.tasks >= LARGE else TARGET_RATIO
                    target = "met" if ratio <= limit else "MISSED"
                walls = [run.wall for run in r.runs]
                row += [str(len(r.runs)), _fmt_s(wall),
                        f"{_fmt_s(min(walls))}-{_fmt_s(max(walls))}", _fmt_per_task(wall / r.tasks),
                        _fmt_s(r.median_cpu()),
                        _fmt_ratio(ratio) if ratio is not None else "",
                        _fmt_ratio(cpu_ratio) if cpu_ratio is not None else "", target]
            rows.append(row)
    return rows


def print_against_baseline(results):
    """--baseline: tierflow against tierflow-base, shape by shape."""
    print("\n| shape | tierflow-base median (min-max) | tierflow median (min-max) | ratio |")
    print("|---|---:|---:|---:|")
    for shape in dict.fromkeys(r.shape for r in results):
        pair = {r.tool: r for r in results if r.shape == shape and r.runs and not r.status}
        if "tierflow" not in pair or "tierflow-base" not in pair:
            continue
        cells = []
        for tool in ("tierflow-base", "tierflow"):
            walls = [run.wall for run in pair[tool].runs]
            cells.append(f"{_fmt_s(statistics.median(walls))} "
                         f"({_fmt_s(min(walls))}-{_fmt_s(max(walls))})")
        ratio = pair["tierflow"].median_wall() / pair["tierflow-base"].median_wall()
        print(f"| {shape} | {cells[0]} | {cells[1]} | {ratio:.3f}x |")


def print_export(results):
    """--export: tierflow with OpenLineage export on against off, shape by
    shape, and the outbox per 1,000 tasks."""
    # Wall time includes the receiver's work (a Python process on the same
    # cores) and the run's final drain; CPU is tierflow's own process tree.
    print("\n| shape | export off: median (min-max) | export on: median (min-max) | wall ratio "
          "| CPU ratio | per task off / on | outbox events / 1,000 tasks "
          "| outbox body bytes / 1,000 tasks | pending at exit (max) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for shape in dict.fromkeys(r.shape for r in results):
        pair = {r.tool: r for r in results if r.shape == shape and r.runs and not r.status}
        if "tierflow" not in pair or EXPORT not in pair:
            continue
        cells = []
        for tool in ("tierflow", EXPORT):
            walls = [run.wall for run in pair[tool].runs]
            cells.append(f"{_fmt_s(statistics.median(walls))} "
                         f"({_fmt_s(min(walls))}-{_fmt_s(max(walls))})")
        tasks = pair["tierflow"].tasks
        per_k = 1000.0 / tasks
        outboxes = [run.outbox for run in pair[EXPORT].runs]
        rows = statistics.median(o[0] for o in outboxes) * per_k
        body = statistics.median(o[1] for o in outboxes) * per_k
        ratio = pair[EXPORT].median_wall() / pair["tierflow"].median_wall()
        cpu_ratio = pair[EXPORT].median_cpu() / pair["tierflow"].median_cpu()
        print(f"| {shape} | {cells[0]} | {cells[1]} | {ratio:.2f}x | {cpu_ratio:.2f}x | "
              f"{_fmt_per_task(pair['tierflow'].median_wall() / tasks)} / "
              f"{_fmt_per_task(pair[EXPORT].median_wall() / tasks)} | {rows:,.0f} | "
              f"{body:,.0f} | {max(o[2] for o in outboxes)} |")


def print_text_table(rows):
    widths = [max(len(row[i]) for row in rows if len(row) > i) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        # A skip / timeout / failure message is long: let it run past its column.
        cells = [c.rjust(w) if n and i in (1, 2, 4, 5, 6, 7, 8, 9, 10) else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths))]
        print("  ".join(cells).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def print_markdown_table(rows):
    right = {1, 2, 4, 5, 6, 7, 8, 9, 10}
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "|".join("---:" if i in right else "---" for i in range(len(rows[0]))) + "|")
    for row in rows[1:]:
        print("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")


def _progress(msg):
    print(msg, file=sys.stderr, flush=True)


def _loadavg():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            kib = int(next(l.split()[1] for l in f if l.startswith("MemTotal:")))
            mem = f"{kib / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return (f"{cpu}, {len(os.sched_getaffinity(0))} cores, {mem}, "
            f"Linux {platform.release()}")


def _filesystem(path):
    """The mount type holding path: SQLite's fsyncs and stamp files cost
    very different amounts on tmpfs and on a disk."""
    best, fstype = "", "?"
    path = os.path.realpath(path)
    try:
        with open("/proc/mounts") as f:
            for line in f:
                _, mnt, typ = line.split()[:3]
                if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
                    best, fstype = mnt, typ
    except OSError:
        pass
    return f"{fstype} ({best or '?'})"


# ---- main -------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="bench/overhead.py",
        description="Per-task scheduling overhead of `tierflow run` on DAGs of no-op tasks, "
                    "against make -j N, Snakemake (--scheduler greedy) and xargs -P N "
                    "(the fork/exec floor), measured in the same run. Prints the median "
                    "wall time, per-task overhead (wall / tasks) and the ratio to make "
                    "for every shape and tool. See bench/README.md.",
        epilog="shapes: wide1000, wide10000 (independent tasks); chain200 (each task "
               "needs the one before); diamond500 (1 -> 500 -> 1); layered10x100 (10 "
               f"layers of 100, each task needs {LAYERED_PARENTS} random tasks of the "
               f"layer before; seed {SEED}). Example: bench/overhead.py --shapes "
               "wide1000,chain200 --tools make,xargs --repeat 3")
    p.add_argument("--tierflow", default="build/cli/tierflow", metavar="PATH",
                   help="the tierflow binary (default: %(default)s)")
    p.add_argument("--baseline", metavar="PATH",
                   help="a second tierflow binary (say, the one from before a change), run "
                        "as tool `tierflow-base` taking turns with --tierflow in every "
                        "repetition; the report adds the ratio of their medians with the "
                        "spread (min-max) of each")
    p.add_argument("--slots", type=int, default=len(os.sched_getaffinity(0)), metavar="N",
                   help="tasks run at once by every tool: make -j N, snakemake -j N, "
                        "xargs -P N, tierflow --slots N (default: the number of cores, "
                        "%(default)s)")
    p.add_argument("--repeat", type=int, default=5, metavar="R",
                   help="measured runs per shape and tool, after one warm-up; the "
                        "table shows the median (default: %(default)s)")
    p.add_argument("--shapes", default=",".join(ALL_SHAPES), metavar="LIST",
                   help="comma-separated shapes (default: all: %(default)s)")
    p.add_argument("--tools", default=",".join(ALL_TOOLS), metavar="LIST",
                   help="comma-separated tools (default: all: %(default)s); an unavailable "
                        "tool gets a row saying why")
    p.add_argument("--timeout", type=float, default=600, metavar="SECONDS",
                   help="kill a single tool run after this long and report a timeout "
                        "(default: %(default)s)")
    p.add_argument("--form", choices=["argv", "shell"], default="argv",
                   help="how the tierflow pipeline and the Makefile write each task's "
                        "command: argv (`run: [\"true\"]`, recipe `true`) or shell "
                        f"(`run: \"{SHELL_COMMAND}\"` and the same recipe) "
                        "(default: %(default)s)")
    p.add_argument("--export", action="store_true",
                   help="also run --tierflow with OpenLineage export on, as tool "
                        f"`{EXPORT}`: TIERFLOW_OPENLINEAGE_URL points at a receiver this "
                        "script starts on loopback (answering 201 at once); the report adds "
                        "its time against export off and the outbox's size per 1,000 tasks "
                        "(the default retention keeps delivered events, so it is read after "
                        "each run). The wall time includes the run's final drain of the outbox")
    p.add_argument("--keep", metavar="DIR",
                   help="write the generated files and the last run of every tool to DIR "
                        "and keep them (default: a temp dir, removed)")
    p.add_argument("--markdown", action="store_true",
                   help="print the results as a markdown table for bench/README.md")
    args = p.parse_args(argv)

    args.shapes = [s for s in args.shapes.split(",") if s]
    args.tools = [t for t in args.tools.split(",") if t]
    for s in args.shapes:
        if s not in ALL_SHAPES + LARGE_SHAPES:
            p.error(f"unknown shape {s!r} (known: {', '.join(ALL_SHAPES + LARGE_SHAPES)})")
    for t in args.tools:
        if t not in ALL_TOOLS:
            p.error(f"unknown tool {t!r} (known: {', '.join(ALL_TOOLS)})")
    if args.slots < 1 or args.repeat < 1 or args.timeout <= 0:
        p.error("--slots and --repeat must be at least 1, --timeout positive")
    return args


def main(argv):
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the running tool and the temp dir are cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    makers = {"tierflow": lambda: Tierflow(args.tierflow), "make": Make,
              "snakemake": Snakemake, "xargs": Xargs}
    # Keep the canonical order whatever order --tools gave.
    tools = [makers[name]() for name in ALL_TOOLS if name in args.tools]
    if args.baseline:
        tools.insert(1, Tierflow(args.baseline, "tierflow-base"))
    if args.export:
        receiver = LineageReceiver()
        tools.insert(1, Tierflow(args.tierflow, EXPORT,
                                 {"TIERFLOW_OPENLINEAGE_URL": receiver.url}))

    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        workdir = os.path.abspath(args.keep)
    else:
        workdir = tempfile.mkdtemp(prefix="tierflow-overhead-")

    started = datetime.datetime.now(datetime.timezone.utc)
    print(f"bench/overhead: {started:%Y-%m-%d %H:%M} UTC on {_machine()}")
    print(f"work dir {workdir} on {_filesystem(workdir)}; slots {args.slots}; "
          f"{args.repeat} runs after 1 warm-up; timeout {args.timeout:g} s per run")
    for t in tools:
        print(f"  {t.name}: {t.skip_reason or t.version}{'  (' + t.note + ')' if t.note else ''}")
    print(f"load average at start: {_loadavg()}", flush=True)

    results = []
    try:
        for shape in args.shapes:
            dag = make_dag(shape)
            _progress(f"{shape}: {dag.what}: {len(dag.names)} tasks, {dag.edges} edges")
            results += measure_shape(dag, tools, workdir, args, keep=bool(args.keep))
    finally:
        failed = [r for r in results if r.status.startswith("failed")]
        if failed and not args.keep:
            _progress(f"kept {workdir} for the logs of the failed runs")
        elif not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    print(f"load average at end:   {_loadavg()}")
    print()
    rows = table_rows(results)
    if args.markdown:
        print_markdown_table(rows)
    else:
        print_text_table(rows)

    if args.baseline:
        print_against_baseline(results)
    if args.export:
        print_export(results)
    tf = [r for r in results if r.tool == "tierflow"]
    if tf and all(r.runs and not r.status for r in tf):
        base = {r.shape: r for r in results if r.tool == BASELINE and r.runs}
        ok = all(r.shape in base and r.median_wall() <= (TARGET_RATIO_LARGE if r.tasks >= LARGE
                                                         else TARGET_RATIO) * base[r.shape].median_wall()
                 for r in tf)
        print(f"\ntarget (tierflow within {TARGET_RATIO}x of make -j on every shape, "
              f"{TARGET_RATIO_LARGE}x at {LARGE:,} tasks; {args.form} form): "
              f"{'met' if ok else 'MISSED'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
