#!/usr/bin/env python3
"""/metrics scraped while a run writes gives consistent figures (CTest:
metrics_consistency).

A run of 301 short tasks (a foreach stage writing a small durable output
each, and a gather stage over them: two stage kinds) writes into a fresh
state store; as soon as the store exists, `tierflow ui` serves it on a free
loopback port, and the test scrapes /metrics every ~50 ms until the run's process ends, then once
more, and parses every scrape's text with the small parser below. It checks:
  - every scrape parses (HELP/TYPE before samples, `name{labels} value`);
  - counters never go down between scrapes (a counter sample that vanishes
    counts as going down); gauges and histograms, which are over what the
    store holds now, are not compared;
  - at every scrape, tierflow_tasks summed over state and kind is either 0
    (the run is not recorded yet) or the run's task count (the store holds
    only this run), and several scrapes saw the run under way;
  - after the run, the succeeded tasks equal the run's task count.
Waits are bounded only against hangs.

Usage: metrics_consistency.py TIERFLOW_BIN
"""

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

ITEMS = 300  # the foreach stage's tasks; the gather stage adds one
PIPELINE = """\
name: consistency
stages:
  make:
    kind: ingest
    foreach: {range: [0, %d]}
    run: head -c 4096 /dev/zero > "$TIERFLOW_OUTPUT_OUT" && sleep 0.05
    outputs:
      out: {size: 4KiB, durability: durable}
  total:
    kind: clean
    inputs: {all: make.out}
    run: du -sb "$TIERFLOW_INPUT_ALL" > "$TIERFLOW_OUTPUT_TOTAL"
    outputs:
      total: 1KiB
""" % ITEMS

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')


def fail(message):
    print("metrics_consistency: FAIL: " + message, file=sys.stderr)
    sys.exit(1)


def parse_labels(text, line):
    labels = {}
    at = 0
    while at < len(text):
        m = LABEL.match(text, at)
        if not m:
            fail("bad labels in line %r" % line)
        labels[m.group(1)] = m.group(2)
        at = m.end()
    return tuple(sorted(labels.items()))


def parse(text):
    """{family: type}, {(name, labels): value}; fails on a line it cannot read."""
    types, samples = {}, {}
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            continue
        if line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            fail("unparsable line %r" % line)
        name = m.group(1)
        family = re.sub(r'_(bucket|sum|count)$', "", name)
        if name not in types and family not in types:
            fail("sample before its TYPE: %r" % line)
        value = float(m.group(4).replace("+Inf", "inf"))
        key = (name, parse_labels(m.group(3) or "", line))
        if key in samples:
            fail("sample twice: %r" % line)
        samples[key] = value
    return types, samples


def tasks_by_state(samples):
    total, by_state = 0.0, {}
    for (name, labels), value in samples.items():
        if name == "tierflow_tasks":
            state = dict(labels)["state"]
            by_state[state] = by_state.get(state, 0) + value
            total += value
    return total, by_state


def scrape(address):
    with urllib.request.urlopen("http://%s/metrics" % address, timeout=30) as response:
        if response.status != 200:
            fail("GET /metrics: %d" % response.status)
        kind = response.headers.get("Content-Type", "")
        if not kind.startswith("text/plain; version=0.0.4"):
            fail("content type %r" % kind)
        return response.read().decode()


def main():
    tierflow = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="tierflow-metrics-consistency.")
    ui = run = None
    try:
        db = os.path.join(work, "tierflow.db")
        pipeline = os.path.join(work, "pipeline.yaml")
        with open(pipeline, "w") as f:
            f.write(PIPELINE)
        # `tierflow ui` needs the store to exist: the run creates it.
        run_out = open(os.path.join(work, "run.out"), "w+")
        run = subprocess.Popen([tierflow, "run", pipeline, "--db", db, "--slots", "4", "--quiet"],
                               stdout=run_out, stderr=subprocess.STDOUT, cwd=work)
        deadline = time.monotonic() + 30
        while not os.path.exists(db) and run.poll() is None:
            if time.monotonic() > deadline:
                fail("the run did not create its store within 30 s")
            time.sleep(0.01)
        ui_out = open(os.path.join(work, "ui.out"), "w+")
        ui = subprocess.Popen([tierflow, "ui", "--db", db, "--listen", "127.0.0.1:0"],
                              stdout=ui_out, stderr=subprocess.STDOUT)
        address = None
        deadline = time.monotonic() + 30
        while address is None and time.monotonic() < deadline and ui.poll() is None:
            ui_out.seek(0)
            m = re.search(r"serving the UI on http://(\S+)/$", ui_out.read(), re.M)
            address = m.group(1) if m else None
            if address is None:
                time.sleep(0.02)
        if address is None:
            ui_out.seek(0)
            fail("tierflow ui did not start: " + ui_out.read())

        scrapes = []
        deadline = time.monotonic() + 150
        while run.poll() is None:
            if time.monotonic() > deadline:
                fail("the run did not end within 150 s")
            scrapes.append(parse(scrape(address)))
            time.sleep(0.05)
        if run.returncode != 0:
            run_out.seek(0)
            fail("the run failed (%d): %s" % (run.returncode, run_out.read()))
        scrapes.append(parse(scrape(address)))

        connection = sqlite3.connect(db)
        runs = connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        task_count = connection.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
        connection.close()
        if runs != 1 or task_count != ITEMS + 1:
            fail("the store holds %d runs and %d tasks, expected 1 and %d" %
                 (runs, task_count, ITEMS + 1))

        under_way = 0
        counters_seen = set()
        previous = None
        for index, (types, samples) in enumerate(scrapes):
            total, by_state = tasks_by_state(samples)
            if total not in (0, task_count):
                fail("scrape %d: tierflow_tasks add up to %g, the run has %d tasks (%s)" %
                     (index, total, task_count, by_state))
            if total == task_count and by_state.get("succeeded", 0) < task_count:
                under_way += 1
            counters = {key: value for key, value in samples.items()
                        if types.get(key[0]) == "counter"}
            counters_seen.update(key[0] for key in counters)
            if previous is not None:
                for key, before in previous.items():
                    after = counters.get(key)
                    if after is None or after < before:
                        fail("scrape %d: counter %s%s went from %g to %s" %
                             (index, key[0], dict(key[1]), before, after))
            previous = counters

        if under_way < 3:
            fail("only %d of %d scrapes saw the run under way" % (under_way, len(scrapes)))
        _, final = scrapes[-1]
        total, by_state = tasks_by_state(final)
        if by_state.get("succeeded", 0) != task_count or total != task_count:
            fail("after the run: tasks by state %s, expected %d succeeded" % (by_state, task_count))
        for name in ("tierflow_bytes_written_total", "tierflow_data_wait_seconds_total"):
            if name not in counters_seen:
                fail("no %s in any scrape" % name)
        written = sum(v for (n, _), v in final.items() if n == "tierflow_bytes_written_total")
        if written < ITEMS * 4096:
            fail("tierflow_bytes_written_total = %g after the run, expected >= %d" %
                 (written, ITEMS * 4096))
        print("metrics_consistency: ok (%d scrapes, %d under way, %d tasks, counters %s)" %
              (len(scrapes), under_way, task_count, sorted(counters_seen)))
    finally:
        for process in (run, ui):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
