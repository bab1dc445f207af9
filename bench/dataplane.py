"""Shared parts of the data-plane benchmarks (bench/data_wait.py,
bench/checkpoint.py, bench/recovery.py; bench/run_dataplane.sh runs them):
the Swift endpoint and its credentials, the tiers file, running tierflow,
reading its state database, and the files the tasks need beside them.
Standard library only. See bench/README.md.
"""

import datetime
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import dataplane_s3  # noqa: E402  (bench/, beside this file)

MIB = 1 << 20
# Swift's tempauth user of scripts/swift.sh. tierflow reads them from the
# variables the tiers file names; the synthetic trainers from the same ones.
ACCESS_KEY = "test:tester"
SECRET_KEY = "testing"
KEY_ENV = "BENCH_S3_KEY"
SECRET_ENV = "BENCH_S3_SECRET"

# Declared profiles (MB/s, IOPS, µs), as `tierflow tiers probe` would
# store them: RAM fast, the local disk slow at random reads (a hard disk),
# the object store slowest. With them placement puts the trainer's input
# on ram (`tierflow plan` says why), and the fastest durable tier, where
# checkpoints are flushed, is the S3 bulk tier.
PROFILES = {
    "ram": "{seq_read_mb_s: 4000, seq_write_mb_s: 2500, rand_read_iops: 200000, latency_us: 5}",
    "local": "{seq_read_mb_s: 200, seq_write_mb_s: 200, rand_read_iops: 200, latency_us: 5000}",
    "bulk": "{seq_read_mb_s: 250, seq_write_mb_s: 200, rand_read_iops: 100, latency_us: 20000}",
}


def now_ms():
    return int(time.time() * 1000)


def header(title):
    """The first lines of a report: what, when, where."""
    print(f"# {title}", flush=True)
    print(f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
          f"{platform.node()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}", flush=True)


def seconds(value):
    if value is None:
        return "-"
    return f"{value:.2f} s" if value >= 1 else f"{value * 1000:.0f} ms"


def human(nbytes):
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= factor:
            return f"{nbytes / factor:.3g} {unit}"
    return f"{nbytes} B"


class Bench:
    """One benchmark's work folder, tiers and Swift bucket."""

    def __init__(self, args, name):
        self.tierflow = os.path.abspath(args.tierflow)
        self.name = name
        swift_dir = os.path.abspath(args.swift_dir)
        with open(os.path.join(swift_dir, "endpoint")) as f:
            self.endpoint = f.read().strip()
        base = os.path.abspath(args.dir) if args.dir else os.path.join(os.getcwd(), "dataplane")
        self.work = os.path.join(base, name)
        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(self.work)
        # The ram tier: tmpfs, its own folder, removed at the end.
        self.ram = f"/dev/shm/tierflow-bench-{name}-{os.getpid()}"
        shutil.rmtree(self.ram, ignore_errors=True)
        self.bucket = f"tierflow-bench-{name.replace('_', '-')}-{os.getpid()}"
        self.s3 = dataplane_s3.S3(self.endpoint, ACCESS_KEY, SECRET_KEY)
        self.s3.create_bucket(self.bucket)
        self.prefix = "bench"
        self.env = dict(os.environ)
        self.env[KEY_ENV] = ACCESS_KEY
        self.env[SECRET_ENV] = SECRET_KEY
        # The task scripts and the helpers they import, beside the pipelines.
        for source in (os.path.join(HERE, "dataplane_task.py"), os.path.join(HERE, "dataplane_s3.py"),
                       os.path.join(ROOT, "sdk", "python", "tierflow_task.py")):
            shutil.copy(source, self.work)
        self.tiers = os.path.join(self.work, "tiers.yaml")
        with open(self.tiers, "w") as f:
            f.write(f"""tiers:
  ram:
    adapter: posix
    root: {self.ram}
    durability: volatile
    profile: {PROFILES['ram']}
  local:
    adapter: posix
    root: {os.path.join(self.work, 'local')}
    durability: node
    profile: {PROFILES['local']}
  bulk:
    adapter: s3
    endpoint: {self.endpoint}
    bucket: {self.bucket}
    prefix: {self.prefix}
    access_key_env: {KEY_ENV}
    secret_key_env: {SECRET_ENV}
    scope: cluster
    durability: durable
    profile: {PROFILES['bulk']}
""")

    def task_env(self):
        """What every pipeline's tasks get in `env:` (besides the credentials,
        which they inherit from tierflow's environment)."""
        return {"BENCH_S3_ENDPOINT": self.endpoint, "BENCH_S3_BUCKET": self.bucket,
                "BENCH_S3_PREFIX": self.prefix}

    def write(self, name, text):
        path = os.path.join(self.work, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def run(self, argv, check=True, timeout=600):
        """tierflow ARGV..., its output captured; exits the benchmark when it
        fails and `check` is set."""
        done = subprocess.run([self.tierflow] + argv, cwd=self.work, env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            sys.exit(f"{self.name}: tierflow {' '.join(argv)} exited {done.returncode}:\n"
                     f"{done.stdout}\n{done.stderr}")
        return done

    def popen(self, argv, **kwargs):
        return subprocess.Popen([self.tierflow] + argv, cwd=self.work, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                **kwargs)

    def cleanup(self, keep):
        shutil.rmtree(self.ram, ignore_errors=True)
        if not keep:
            shutil.rmtree(self.work, ignore_errors=True)
        self.s3.close()


class Store:
    """Read-only queries on a state database."""

    def __init__(self, path):
        self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)

    def all(self, sql, *params):
        return self.db.execute(sql, params).fetchall()

    def one(self, sql, *params):
        rows = self.all(sql, *params)
        return rows[0] if rows else None

    def value(self, sql, *params):
        row = self.one(sql, *params)
        return None if row is None else row[0]

    def close(self):
        self.db.close()


def read_json(path):
    with open(path) as f:
        return json.load(f)


def markdown_table(headers, rows, align):
    """A markdown table; `align` is a string of 'l'/'r' per column."""
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)
