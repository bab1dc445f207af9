#!/usr/bin/env python3
"""bench/slurm: tierflow on Slurm against the floor of one job per task and
Snakemake 7 on the same cluster, in one sitting. See bench/README.md.

The script starts a private two-node Slurm with scripts/slurm.sh start DIR
(stopped at the end, also on an error or Ctrl-C) and runs one workload of
200 no-op tasks (each runs `true`):

  items     a 100-item foreach stage,
  gather    one task after all 100 items,
  s01..s99  99 independent single-task stages,

in these ways, taking turns within each repetition:

  floor             one job per task, submitted at once with `sbatch
                    --parsable` (the gather with --dependency=afterok on the
                    100 item jobs), waited for by polling squeue by the
                    run's unique job name (what a hand-written script does)
  snakemake         Debian's Snakemake 7 with --cluster 'sbatch --parsable
                    ...' and a --cluster-status script over squeue (then the
                    jobcomp file): Slurm accounting is off on this cluster,
                    so Snakemake's own --slurm mode (which polls sacct)
                    cannot run
  tierflow cold     `tierflow run PIPELINE --executor slurm`, a fresh state
                    database (no recorded task times)
  tierflow warm     a second run on the same database (--no-cache, so every
                    task runs again), with the first run's task times
                    recorded

and the foreach stage alone (100 items):

  100 single jobs   100 `sbatch --wrap true`, waited for as the floor
  array of 100      one `sbatch --array=0-99 --wrap true`
  tierflow cold/warm  a pipeline of the items stage only

For tierflow it records, per foreach item, the Slurm job that ran it (from
the store's attempts.handle: JOB or JOB_INDEX) in items.tsv in the work dir
and prints how many distinct jobs (array elements count as jobs) and
submissions ran the items. The table gives the median wall time of each
(fork to reap for the tools; first sbatch until squeue shows none of the
name for the floors), the jobs' summed run time from the jobcomp file
(whole seconds per job: how long they held the cluster's 4 CPUs) and the
ratios against the targets of issue 17:
tierflow at most 1.2x the floor, at least 2x faster than Snakemake, and the
foreach stage at least 5x faster than 100 single jobs. Standard library
only; needs root (slurmd runs jobs as their submitter).
"""

import argparse
import datetime
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import overhead  # noqa: E402  (the machine line, the load average, killing a process group)

ITEMS = 100              # foreach items
SINGLES = 99             # independent single-task stages
TASKS = ITEMS + 1 + SINGLES
FLOOR_TARGET = 1.2       # tierflow wall / floor wall, at most
SNAKEMAKE_TARGET = 2.0   # snakemake wall / tierflow wall, at least
FOREACH_TARGET = 5.0     # 100 single jobs wall / tierflow foreach wall, at least
POLL = 0.1               # seconds between squeue polls of the floors
CHILD_PATH = "/usr/bin:/bin"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLURM_SH = os.path.join(ROOT, "scripts", "slurm.sh")

# Snakemake's cluster settings, as the Snakemake-Profiles/slurm cookiecutter
# sets them (its defaults): at most 10 submissions and 10 status checks a
# second, 5 s for an output to appear on the shared file system.
SNAKEMAKE_SETTINGS = ["--max-jobs-per-second", "10", "--max-status-checks-per-second", "10",
                      "--latency-wait", "5"]

# Snakemake's --cluster-status: prints running, success or failed for the job
# id in $1. squeue -j shows a job in every state while slurmctld remembers it
# (MinJobAge, 300 s); after that the jobcomp file (jobcomp/filetxt) has its
# end state. A job in neither has just left the queue: still running.
STATUS_SCRIPT = r'''#!/bin/sh
# Written by bench/slurm.py: Snakemake --cluster-status over squeue (accounting is off).
state=$(squeue -h -j "$1" -o %T 2>/dev/null | head -n 1)
case "$state" in
  COMPLETED) echo success; exit 0 ;;
  PENDING|RUNNING|CONFIGURING|COMPLETING|SUSPENDED|REQUEUED|RESIZING) echo running; exit 0 ;;
  "") ;;
  *) echo failed; exit 0 ;;
esac
line=$(grep -m 1 "^JobId=$1 " "JOBCOMP")
case "$line" in
  "") echo running ;;
  *JobState=COMPLETED*) echo success ;;
  *) echo failed ;;
esac
'''

# Measurements in the order they run within a repetition: (key, workload, label).
CASES = [
    ("floor", "200", "floor: one sbatch per task"),
    ("snakemake", "200", "snakemake --cluster"),
    ("tierflow-cold", "200", "tierflow cold"),
    ("tierflow-warm", "200", "tierflow warm"),
    ("singles", "100", "100 single jobs"),
    ("array", "100", "array of 100"),
    ("foreach-cold", "100", "tierflow cold"),
    ("foreach-warm", "100", "tierflow warm"),
]
ALL_KEYS = [c[0] for c in CASES]


class BenchError(Exception):
    pass


# ---- the workload, once per tool ---------------------------------------------------

def single_name(i):
    return f"s{i:02d}"


def write_pipeline(path, with_rest):
    """tierflow: the foreach stage, and with_rest the gather and the singles."""
    lines = ["# generated by bench/slurm.py",
             f"name: slurm-bench-{'all' if with_rest else 'foreach'}",
             "stages:",
             "  items:",
             f"    foreach: {{range: [0, {ITEMS}]}}",
             '    run: ["true"]']
    if with_rest:
        lines += ["  gather:", "    needs: [items]", '    run: ["true"]']
        for i in range(1, SINGLES + 1):
            lines += [f"  {single_name(i)}:", '    run: ["true"]']
    _write(path, lines)


def write_snakefile(path):
    """Snakemake: a rule per stage; edges through touch() stamp files."""
    singles = ", ".join(f'"s/{single_name(i)}"' for i in range(1, SINGLES + 1))
    lines = ["# generated by bench/slurm.py",
             "localrules: all",
             "rule all:",
             f'    input: ["s/gather", {singles}]',
             "",
             "rule items:",
             '    output: touch("s/item{i}")',
             '    shell: "true"',
             "",
             "rule gather:",
             f'    input: expand("s/item{{i}}", i=range({ITEMS}))',
             '    output: touch("s/gather")',
             '    shell: "true"']
    for i in range(1, SINGLES + 1):
        lines += ["", f"rule {single_name(i)}:",
                  f'    output: touch("s/{single_name(i)}")',
                  '    shell: "true"']
    _write(path, lines)


def floor_jobs():
    """The floor's job list: (key, dependency keys) in submission order."""
    items = [f"item{i}" for i in range(ITEMS)]
    return ([(k, []) for k in items] + [("gather", items)] +
            [(single_name(i), []) for i in range(1, SINGLES + 1)])


def _write(path, lines):
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


# ---- the cluster -----------------------------------------------------------------

class Cluster:
    def __init__(self, folder):
        self.dir = os.path.join(folder, "cluster")
        self.env = dict(os.environ, PATH=CHILD_PATH,
                        SLURM_CONF=os.path.join(self.dir, "slurm.conf"))
        self.started = False

    def start(self):
        t0 = time.perf_counter()
        r = subprocess.run(["bash", SLURM_SH, "start", self.dir], capture_output=True, text=True)
        if r.returncode != 0:
            raise BenchError(f"scripts/slurm.sh start failed: {r.stderr.strip()[-2000:]}")
        self.started = True
        return time.perf_counter() - t0

    def stop(self):
        if not self.started:
            return
        r = subprocess.run(["bash", SLURM_SH, "stop", self.dir], capture_output=True, text=True)
        self.started = False
        if r.returncode != 0:
            overhead._progress(f"scripts/slurm.sh stop failed: {r.stderr.strip()}")

    @property
    def jobcomp(self):
        return os.path.join(self.dir, "jobcomp.txt")

    def run(self, argv):
        r = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=60)
        if r.returncode != 0:
            raise BenchError(f"{' '.join(argv[:3])}...: exit {r.returncode}: {r.stderr.strip()}")
        return r.stdout.strip()

    def queued(self, name):
        return self.run(["squeue", "-h", "--array", f"--name={name}", "-o", "%i"]).split()

    def completed(self, name):
        """(COMPLETED, other) counts of the jobcomp lines of jobs named name."""
        ok = other = 0
        try:
            with open(self.jobcomp) as f:
                for line in f:
                    if f" Name={name} " in line:
                        if " JobState=COMPLETED " in line:
                            ok += 1
                        else:
                            other += 1
        except OSError:
            pass
        return ok, other

    def job_seconds(self, name):
        """The sum of EndTime - StartTime over the jobcomp lines of jobs named
        name: how long its jobs held their CPUs (whole seconds per job)."""
        total = 0
        try:
            with open(self.jobcomp) as f:
                for line in f:
                    if f" Name={name} " in line:
                        start = re.search(r" StartTime=(\S+)", line).group(1)
                        end = re.search(r" EndTime=(\S+)", line).group(1)
                        total += (datetime.datetime.fromisoformat(end) -
                                  datetime.datetime.fromisoformat(start)).total_seconds()
        except (OSError, AttributeError, ValueError):
            return None
        return total

    def wait_recorded(self, name, jobs, timeout=10):
        """Waits (bounded, not timed) until jobcomp has all `jobs` of name."""
        deadline = time.monotonic() + timeout
        while True:
            ok, other = self.completed(name)
            if ok + other >= jobs or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if other or ok != jobs:
            raise BenchError(f"jobs named {name}: {ok} COMPLETED, {other} otherwise, "
                             f"of {jobs} (see {self.jobcomp})")

    def cancel(self, name):
        subprocess.run(["scancel", f"--name={name}"], env=self.env, capture_output=True)


# ---- measurements ------------------------------------------------------------------

class Measure:
    """One measured run: wall seconds, jobs and submissions, or an error."""

    def __init__(self, wall=0.0, jobs=None, submissions=None, done=None):
        self.wall, self.jobs, self.submissions = wall, jobs, submissions
        self.job_seconds = None  # jobcomp: the sum of its jobs' run times
        # Set when the run was stopped at the timeout: wall is then a lower
        # bound and done the tasks it had finished.
        self.done = done


def wait_gone(cluster, name, t0, timeout):
    while cluster.queued(name):
        if time.perf_counter() - t0 > timeout:
            cluster.cancel(name)
            raise BenchError(f"jobs named {name} still queued after {timeout:g} s")
        time.sleep(POLL)
    return time.perf_counter() - t0


def sbatch(cluster, name, logs, extra):
    out = cluster.run(["sbatch", "--parsable", f"--job-name={name}",
                       f"--output={logs}/%j.out"] + extra + ["--wrap", "true"])
    return out.split(";")[0]  # "JOBID" or "JOBID;CLUSTER"


def run_sbatches(cluster, rundir, name, timeout, submissions, jobs):
    """The floors: submits every (key, dependency keys, sbatch args) at once,
    in order, a job with dependencies after afterok of theirs; waits until
    none of the `jobs` Slurm jobs named name is queued."""
    logs = _mkdir(rundir, "logs")
    t0 = time.perf_counter()
    ids = {}
    for key, deps, extra in submissions:
        after = [f"--dependency=afterok:{':'.join(ids[d] for d in deps)}"] if deps else []
        ids[key] = sbatch(cluster, name, logs, after + extra)
    wall = wait_gone(cluster, name, t0, timeout)
    cluster.wait_recorded(name, jobs)
    return Measure(wall, jobs=jobs, submissions=len(submissions))


def run_tool(argv, cwd, env, timeout):
    """Runs argv as the leader of its own session; kills the group on a
    timeout or an exception. Returns (wall seconds, exit code)."""
    out = open(os.path.join(cwd, "stdout.txt"), "wb")
    err = open(os.path.join(cwd, "stderr.txt"), "wb")
    with out, err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                env=env, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except BaseException:
            overhead._kill_group(proc.pid)
            proc.wait()
            raise
        wall = time.perf_counter() - t0
    overhead._kill_group(proc.pid)
    if rc != 0:
        raise BenchError(f"{os.path.basename(argv[0])} exited {rc}: "
                         f"{overhead._tail(os.path.join(cwd, 'stderr.txt')) or overhead._tail(os.path.join(cwd, 'stdout.txt'))}"
                         f" (in {cwd})")
    return wall


def run_snakemake(cluster, rundir, name, files, timeout):
    logs = _mkdir(rundir, "logs")
    submit = f"sbatch --parsable --job-name={name} --output={logs}/%j.out"
    argv = ["snakemake", "--jobs", str(TASKS), "--scheduler", "greedy",
            "--cluster", submit, "--cluster-status", files["status"],
            "--cluster-cancel", "scancel"] + SNAKEMAKE_SETTINGS + \
        ["-s", files["snakefile"], "-d", rundir]
    stamps_dir = os.path.join(rundir, "s")
    try:
        wall = run_tool(argv, rundir, cluster.env, timeout)
    except subprocess.TimeoutExpired:
        # Slow, not broken: the timeout is a lower bound on its wall time.
        cluster.cancel(name)
        done = len(os.listdir(stamps_dir)) if os.path.isdir(stamps_dir) else 0
        return Measure(timeout, jobs=TASKS, submissions=TASKS, done=done)
    stamps = os.listdir(stamps_dir) if os.path.isdir(stamps_dir) else []
    if len(stamps) != TASKS:
        raise BenchError(f"snakemake exited 0 but made {len(stamps)} of {TASKS} stamps")
    cluster.wait_recorded(name, TASKS)
    return Measure(wall, jobs=TASKS, submissions=TASKS)


def run_tierflow(cluster, binary, pipeline, rundir, db, warm, tasks, timeout, items_out, label):
    _mkdir(os.path.dirname(db))
    argv = [binary, "run", pipeline, "--executor", "slurm", "--db", db, "--quiet"]
    if warm:
        argv.append("--no-cache")  # run every task again; the times stay recorded
    try:
        wall = run_tool(argv, rundir, cluster.env, timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"tierflow still ran after {timeout:g} s (in {rundir})")
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        (run, state), = conn.execute("SELECT id, state FROM runs ORDER BY rowid DESC LIMIT 1")
        (done,), = conn.execute("SELECT count(*) FROM tasks WHERE run_id = ? AND state = 'succeeded'",
                                (run,))
        handles = conn.execute(
            "SELECT task_id, coalesce(handle, '') FROM attempts WHERE run_id = ? AND state = 'succeeded'",
            (run,)).fetchall()
    if state != "succeeded" or done != tasks or len(handles) != tasks:
        raise BenchError(f"tierflow run {run}: {state}, {done} of {tasks} tasks succeeded, "
                         f"{len(handles)} succeeded attempts (in {rundir})")
    jobs = {_job_of(h) for _, h in handles}
    if "" in jobs:
        raise BenchError(f"tierflow run {run}: a succeeded attempt without a Slurm job handle")
    items = sorted(((t, h) for t, h in handles if t.startswith("items[")),
                   key=lambda th: int(re.search(r"\d+", th[0]).group()))
    for task, handle in items:
        items_out.write(f"{label}\t{run}\t{task}\t{handle}\t{_job_of(handle)}\n")
    item_jobs = {_job_of(h) for _, h in items}
    item_submissions = {j.split("_")[0] for j in item_jobs}
    m = Measure(wall, jobs=len(jobs), submissions=len({j.split("_")[0] for j in jobs}))
    m.job_seconds = cluster.job_seconds(f"tierflow-{run}")
    return m, (len(items), len(item_jobs), len(item_submissions))


def _job_of(handle):
    """The Slurm job of a handle: JOB or JOB_INDEX (anything after it, such
    as a slot within a packed job, is not a job of its own)."""
    m = re.match(r"\d+(_\d+)?", handle)
    return m.group() if m else ""


# ---- reporting ---------------------------------------------------------------------

def _fmt_s(s):
    return f"{s:.1f} s" if s >= 10 else f"{s:.2f} s"


def _median(runs):
    return statistics.median(m.wall for m in runs) if runs else None


def summary_rows(results, errors):
    med = {k: _median(results[k]) for k in ALL_KEYS}
    rows = [["workload", "how", "runs", "median wall", "min-max", "Slurm jobs", "submissions",
             "job time", "ratio", "target"]]
    for key, workload, label in CASES:
        runs = results[key]
        if not runs:
            rows.append([f"{workload} tasks" if workload == "200" else "foreach 100", label, "0",
                         errors.get(key, "not run"), "", "", "", "", "", ""])
            continue
        walls = [m.wall for m in runs]
        cut = [m for m in runs if m.done is not None]
        ratio, target = "", ""
        if key.startswith("tierflow") and med["floor"]:
            r = med[key] / med["floor"]
            ratio = f"this / floor {r:.2f}x"
            target = f"<= {FLOOR_TARGET}x: {'met' if r <= FLOOR_TARGET else 'MISSED'}"
            if med["snakemake"]:
                s = med["snakemake"] / med[key]
                # A Snakemake run stopped at the timeout makes its median a
                # lower bound: "> s" then, and only met can be said of it.
                bound = any(m.done is not None for m in results["snakemake"])
                verdict = "met" if s >= SNAKEMAKE_TARGET else ("not shown" if bound else "MISSED")
                ratio += f"; snakemake / this {'> ' if bound else ''}{s:.2f}x"
                target += f"; >= {SNAKEMAKE_TARGET}x: {verdict}"
        elif key == "snakemake" and med["floor"]:
            ratio = f"this / floor {'> ' if cut else ''}{med[key] / med['floor']:.2f}x"
        elif key in ("array", "foreach-cold", "foreach-warm") and med["singles"]:
            s = med["singles"] / med[key]
            ratio = f"100 single jobs / this {s:.2f}x"
            if key != "array":
                target = f">= {FOREACH_TARGET}x: {'met' if s >= FOREACH_TARGET else 'MISSED'}"
        rows.append([f"{workload} tasks" if workload == "200" else "foreach 100", label,
                     str(len(runs)),
                     _fmt_s(med[key]) + (f" (stopped: {', '.join(f'{m.done} of {TASKS}' for m in cut)} "
                                         "tasks done)" if cut else ""),
                     f"{_fmt_s(min(walls))}-{_fmt_s(max(walls))}",
                     _same(m.jobs for m in runs), _same(m.submissions for m in runs),
                     _job_time(runs), ratio, target])
    return rows


def _job_time(runs):
    secs = [m.job_seconds for m in runs if m.job_seconds is not None]
    return f"{statistics.median(secs):.0f} s" if secs else ""


def _same(values):
    vs = sorted(set(v for v in values if v is not None))
    return "-".join(str(v) for v in (vs[:1] + vs[-1:] if len(vs) > 1 else vs))


def print_table(rows, markdown):
    if markdown:
        print("| " + " | ".join(rows[0]) + " |")
        print("|" + "|".join("---:" if i in (2, 3, 4, 5, 6, 7) else "---" for i in range(len(rows[0]))) + "|")
        for row in rows[1:]:
            print("| " + " | ".join(row) + " |")
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(c.rjust(w) if n and i in (2, 3, 4, 5, 6, 7) else c.ljust(w)
                        for i, (c, w) in enumerate(zip(row, widths))).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


# ---- helpers -----------------------------------------------------------------------

def _mkdir(*parts):
    path = os.path.join(*parts)
    os.makedirs(path, exist_ok=True)
    return path


def _first_line(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, PATH=CHILD_PATH))
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "?"


def ensure_snakemake(install):
    if shutil.which("snakemake", path=CHILD_PATH):
        return ""
    if not install:
        return "skipped (snakemake not found; without --no-install the script installs it)"
    overhead._progress("snakemake missing: apt-get install -y snakemake")
    r = subprocess.run(["apt-get", "install", "-y", "snakemake"], capture_output=True, text=True)
    if r.returncode != 0 or not shutil.which("snakemake", path=CHILD_PATH):
        return f"skipped (apt-get install snakemake failed: {r.stderr.strip()[-300:]})"
    return ""


# ---- main --------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="bench/slurm.py",
        description="tierflow on a private Slurm (scripts/slurm.sh) against one job per task "
                    "(the floor) and Snakemake 7's --cluster mode: 200 no-op tasks (a "
                    f"{ITEMS}-item foreach stage, a gather, {SINGLES} single stages), and "
                    "the foreach stage alone against 100 single jobs and an array. Needs "
                    "root. See bench/README.md.")
    p.add_argument("--tierflow", default="build/cli/tierflow", metavar="PATH",
                   help="a Release tierflow binary (default: %(default)s)")
    p.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="repetitions; the table gives the median (default: %(default)s)")
    p.add_argument("--only", default=",".join(ALL_KEYS), metavar="LIST",
                   help="comma-separated measurements (default: all: %(default)s)")
    p.add_argument("--timeout", type=float, default=300, metavar="SECONDS",
                   help="give up on one measurement after this long (default: %(default)s)")
    p.add_argument("--snakemake-timeout", type=float, default=360, metavar="SECONDS",
                   help="stop Snakemake after this long; its row then gives the timeout as a "
                        "lower bound with the tasks it had done (default: %(default)s)")
    p.add_argument("--no-install", action="store_true",
                   help="do not apt-get install snakemake when it is missing")
    p.add_argument("--keep", metavar="DIR",
                   help="work in DIR and keep it (generated files, logs, state databases, "
                        "items.tsv); default: a temp dir, removed unless something failed")
    p.add_argument("--markdown", action="store_true", help="print the table as markdown")
    args = p.parse_args(argv)
    args.only = [k for k in args.only.split(",") if k]
    for k in args.only:
        if k not in ALL_KEYS:
            p.error(f"unknown measurement {k!r} (known: {', '.join(ALL_KEYS)})")
    if args.repeat < 1 or args.timeout <= 0 or args.snakemake_timeout <= 0:
        p.error("--repeat must be at least 1, the timeouts positive")
    return args


def main(argv):
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if os.geteuid() != 0:
        print("bench/slurm: needs root (slurmd runs jobs as their submitter, munged as munge)",
              file=sys.stderr)
        return 77
    binary = os.path.abspath(args.tierflow)
    wants_tf = any(k.startswith(("tierflow", "foreach")) for k in args.only)
    if wants_tf and not os.access(binary, os.X_OK):
        print(f"bench/slurm: no tierflow binary at {args.tierflow} (--tierflow)", file=sys.stderr)
        return 2
    snakemake_skip = ensure_snakemake(not args.no_install) if "snakemake" in args.only else ""

    workdir = os.path.abspath(args.keep) if args.keep else tempfile.mkdtemp(prefix="tierflow-bench-slurm-")
    os.makedirs(workdir, exist_ok=True)
    os.chmod(workdir, 0o755)  # user munge must reach the cluster's folder
    cluster = Cluster(workdir)
    files = {"all": os.path.join(workdir, "all.yaml"),
             "foreach": os.path.join(workdir, "foreach.yaml"),
             "snakefile": os.path.join(workdir, "Snakefile"),
             "status": os.path.join(workdir, "status.sh"),
             "jobs": os.path.join(workdir, "floor-jobs.txt")}
    write_pipeline(files["all"], True)
    write_pipeline(files["foreach"], False)
    write_snakefile(files["snakefile"])
    _write(files["jobs"], [f"{k}{' afterok:' + ','.join(d) if d else ''}" for k, d in floor_jobs()])

    started = datetime.datetime.now(datetime.timezone.utc)
    print(f"bench/slurm: {started:%Y-%m-%d %H:%M} UTC on {overhead._machine()}")
    print(f"work dir {workdir}; {args.repeat} repetition(s), no warm-up; timeout "
          f"{args.timeout:g} s per measurement, {args.snakemake_timeout:g} s for Snakemake")
    if wants_tf:
        print(f"  tierflow: {_first_line([binary, '--version'])} ({binary})")
    if "snakemake" in args.only:
        print(f"  snakemake: {snakemake_skip or _first_line(['snakemake', '--version'])}: "
              "--cluster 'sbatch --parsable ...' with a --cluster-status script over squeue "
              "(then jobcomp.txt), not --slurm (it needs accounting: sacct); "
              + " ".join(SNAKEMAKE_SETTINGS))

    results = {k: [] for k in ALL_KEYS}
    errors = {}
    if snakemake_skip:
        errors["snakemake"] = snakemake_skip
    failed = False
    items_path = os.path.join(workdir, "items.tsv")
    item_counts = {}
    try:
        overhead._progress(f"cluster up in {cluster.start():.2f} s")
        print(f"  slurm: {cluster.run(['sbatch', '--version'])} (scripts/slurm.sh: 2 nodes x "
              "2 CPUs, accounting off)")
        with open(files["status"], "w") as f:
            f.write(STATUS_SCRIPT.replace("JOBCOMP", cluster.jobcomp))
        os.chmod(files["status"], 0o755)
        print(f"load average at start: {overhead._loadavg()}", flush=True)
        with open(items_path, "w") as items_out:
            items_out.write("run\trun_id\ttask\thandle\tjob\n")
            for rep in range(1, args.repeat + 1):
                for key, _, label in CASES:
                    if key not in args.only or key in errors:
                        continue
                    name = f"bench-{key}-{rep}-{os.getpid()}"
                    rundir = _mkdir(workdir, f"rep{rep}", key)
                    try:
                        m = measure(key, cluster, rundir, name, files, binary, workdir, rep,
                                    args.timeout, args.snakemake_timeout, items_out,
                                    item_counts)
                    except BenchError as e:
                        failed = True
                        errors[key] = f"FAILED: {e}"
                        overhead._progress(f"  rep {rep} {key}: FAILED: {e}")
                        continue
                    results[key].append(m)
                    overhead._progress(f"  rep {rep} {key}: {_fmt_s(m.wall)} ({m.jobs} jobs, "
                              f"{m.submissions} submissions)"
                              + (f"; STOPPED at the timeout, {m.done} of {TASKS} tasks done"
                                 if m.done is not None else ""))
    finally:
        cluster.stop()
        if not args.keep and not failed:
            shutil.rmtree(workdir, ignore_errors=True)
        elif failed:
            overhead._progress(f"kept {workdir} for the logs")

    print(f"load average at end:   {overhead._loadavg()}")
    print()
    print_table(summary_rows(results, errors), args.markdown)
    if item_counts:
        print()
        for label, (n, jobs, subs) in item_counts.items():
            print(f"{label}: its {n} foreach items ran in {jobs} distinct Slurm jobs "
                  f"({subs} submission{'s' if subs != 1 else ''}){' (per item: items.tsv)' if args.keep else ''}")
    return 1 if failed else 0


def measure(key, cluster, rundir, name, files, binary, workdir, rep, timeout, snakemake_timeout,
            items_out, item_counts):
    floors = {"floor": ([(k, deps, []) for k, deps in floor_jobs()], TASKS),
              "singles": ([(i, [], []) for i in range(ITEMS)], ITEMS),
              "array": ([("array", [], [f"--array=0-{ITEMS - 1}"])], ITEMS)}
    runners = {k: (lambda k=k: run_sbatches(cluster, rundir, name, timeout, *floors[k]))
               for k in floors}
    runners["snakemake"] = lambda: run_snakemake(cluster, rundir, name, files, snakemake_timeout)
    if key in runners:
        m = runners[key]()
        m.job_seconds = cluster.job_seconds(name)
        return m
    # tierflow: warm runs on the state database of this repetition's cold run.
    kind, temp = key.rsplit("-", 1)
    base = key if temp == "cold" else f"{kind}-cold"
    db = os.path.join(workdir, f"rep{rep}", base, "state", "tierflow.db")
    if temp == "warm" and not os.path.exists(db):
        raise BenchError(f"{key} needs {base} run before it (--only)")
    pipeline = files["all" if kind == "tierflow" else "foreach"]
    tasks = TASKS if kind == "tierflow" else ITEMS
    label = f"{'200 tasks' if kind == 'tierflow' else 'foreach 100'}, tierflow {temp}, rep {rep}"
    m, counts = run_tierflow(cluster, binary, pipeline, rundir, db, temp == "warm", tasks, timeout,
                             items_out, label)
    item_counts[label] = counts
    return m


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
