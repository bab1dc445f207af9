#!/usr/bin/env python3
"""OpenLineage delivery through the store's outbox (CTest: lineage_outbox_*),
end to end: the real `tierflow run`/`resume` and a small HTTP receiver this
test starts on loopback (http.server on a free port), which keeps every
request body, in arrival order, and answers 200 unless told otherwise.

Sections (one per CTest test):
  down      the receiver is down at first: the run starts with the URL on a
            free port nobody listens on, the sender retries for several
            (shortened) backoffs, then the receiver comes up on that port;
            every event arrives, in outbox order, none lost, none twice, with
            the API key as a bearer token.
  rejected  the receiver answers 400 to one event: it is parked with the
            answer, the events behind it still arrive in order, and
            `tierflow lineage export --rejected` shows it.
  kill      kill -9 of the engine mid-run, then `tierflow run --resume`:
            nothing is lost, and duplicates are only within the
            at-least-once contract (stated at check_kill).
  lease     two processes on one store (`tierflow ui` and `tierflow run`):
            one sender (the ui's, which holds the lease) sends, each event
            once, in order; after a kill -9 of the ui, the next run's
            sender takes the dead holder's lease over and sends its events.
  cancel    kill -9 of the engine, then `tierflow cancel` (which sends
            nothing): the attempt's end and the run's ABORT wait in the
            outbox, and a `tierflow ui` started later delivers them, in order
            (at least once, as in kill).
  off       no endpoint configured: a run leaves the outbox empty.
  retention TIERFLOW_OPENLINEAGE_RETENTION=0: delivered rows are deleted.
  server    cluster mode: the server sends; killed -9 with events waiting
            for an endpoint that is down, started again on the same store,
            it delivers every event once, in order, when the endpoint comes
            up (stated at check_server).

Every wait is bounded only to detect a hang: a wait that runs out fails.
Usage: lineage_outbox_test.py TIERFLOW_BIN SOURCE_DIR SECTION [OPENLINEAGE_SPEC_DIR]
"""
import http.server
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

TIERFLOW, SOURCE, SECTION = sys.argv[1], sys.argv[2], sys.argv[3]
# The OpenLineage spec files (OpenLineage.json 2-0-2, facets/) the delivered
# events are validated against (section down).
SPEC = sys.argv[4] if len(sys.argv) > 4 else None
PIPELINE = os.path.join(SOURCE, "tests", "lineage", "naps.yaml")
WORK = tempfile.mkdtemp(prefix="tierflow-lineage-outbox.")
DB = os.path.join(WORK, "tierflow.db")
STARTED = time.time()
FAILURES = []
# The sender records what became of its events once per batch of at most
# this many (api/lineage_sender.cc, kBatchEvents): a kill before the record
# sends that batch again.
SENDER_BATCH = 64


def log(message):
    print("[%6.2fs] %s" % (time.time() - STARTED, message), flush=True)


def check(condition, message):
    if not condition:
        FAILURES.append(message)
        print("FAIL: " + message, file=sys.stderr, flush=True)
    return condition


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Receiver:
    """An OpenLineage endpoint: POST /api/v1/lineage. `reject(body, n)`
    (n: how many requests came before) says whether to answer 400."""

    def __init__(self, port, reject=None):
        self.bodies = []       # every request body, in arrival order
        self.auth = []         # its Authorization header
        self.lock = threading.Lock()
        self.reject = reject
        self.lines = open(os.path.join(WORK, "received.ndjson"), "ab")
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    count = len(receiver.bodies)
                    receiver.bodies.append(body)
                    receiver.auth.append(self.headers.get("Authorization"))
                    receiver.lines.write(body + b"\n")
                    receiver.lines.flush()
                ok = self.path == "/api/v1/lineage" and \
                    self.headers.get("Content-Type") == "application/json"
                status = 400 if not ok or (receiver.reject and receiver.reject(body, count)) \
                    else 201
                answer = b"no thanks: test rejects this one" if status == 400 else b""
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def received(self):
        with self.lock:
            return list(self.bodies)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def environment(port, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERFLOW_")}
    if port is not None:
        env["TIERFLOW_OPENLINEAGE_URL"] = "http://127.0.0.1:%d/api/v1/lineage" % port
    env.update(extra)
    return env


def tierflow(args, env, timeout=120):
    started = time.time()
    done = subprocess.run([TIERFLOW] + args, env=env, capture_output=True, text=True,
                          timeout=timeout)
    log("tierflow %s: exit %d in %.2f s" % (" ".join(args[:2]), done.returncode,
                                            time.time() - started))
    return done


def run_pipeline(env, nap="0.2", timeout=120):
    return tierflow(["run", PIPELINE, "--db", DB, "--slots", "1", "--param", "nap=" + nap], env,
                    timeout)


def store(sql, *args):
    with sqlite3.connect(DB) as db:
        return db.execute(sql, args).fetchall()


def outbox():
    """(seq, body, state, tries, answer) by seq."""
    return [(seq, body.encode(), state, tries, answer) for seq, body, state, tries, answer in
            store("SELECT seq, body, state, tries, answer FROM lineage_outbox ORDER BY seq")]


def expected_events():
    """What the run's state changes make: per run START, RUNNING per
    resume, one end; per attempt START and its end."""
    runs = store("SELECT count(*) FROM runs")[0][0]
    resumes = store("SELECT count(*) FROM events WHERE kind = 'run_resumed'")[0][0]
    attempts = store("SELECT count(*) FROM attempts")[0][0]
    return 2 * runs + resumes + 2 * attempts


def event_type(body):
    return json.loads(body)["eventType"]


def wait_for(what, condition, limit):
    deadline = time.time() + limit
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return check(False, "timed out after %d s waiting for %s" % (limit, what))


def check_down():
    port = free_port()
    env = environment(port, TIERFLOW_OPENLINEAGE_BACKOFF="100,400",
                      TIERFLOW_OPENLINEAGE_API_KEY="s3cret")
    engine = subprocess.Popen([TIERFLOW, "run", PIPELINE, "--db", DB, "--slots", "1", "--param",
                               "nap=0.5"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    # Down for several backoffs: the first event has been tried 4 times.
    wait_for("4 tries of the first event",
             lambda: os.path.exists(DB) and _first_tries() >= 4, 60)
    log("first event tried %d times; the receiver comes up" % _first_tries())
    receiver = Receiver(port)
    out, err = engine.communicate(timeout=120)
    log("run: exit %d" % engine.returncode)
    check(engine.returncode == 0, "the run failed: " + out + err)
    rows = outbox()
    check(len(rows) == expected_events(),
          "outbox has %d events, the run made %d" % (len(rows), expected_events()))
    check(all(state == "delivered" for _, _, state, _, _ in rows),
          "not every event delivered: %s" % [r[2] for r in rows])
    check(rows and rows[0][3] >= 4, "the first event was not retried while the receiver was down")
    received = receiver.received()
    check(received == [body for _, body, _, _, _ in rows],
          "the receiver's events are not the outbox's, in seq order (%d received, %d rows)" %
          (len(received), len(rows)))
    check(event_type(received[0]) == "START" and event_type(received[-1]) == "COMPLETE",
          "first and last events are not the run's START and COMPLETE")
    check(set(receiver.auth) == {"Bearer s3cret"}, "Authorization: %s" % set(receiver.auth))
    receiver.stop()
    check_delivered_events(received)


def subjects(bodies):
    """(eventType, runId, eventTime, job) of each event, in order."""
    out = []
    for body in bodies:
        event = json.loads(body)
        out.append((event["eventType"], event["run"]["runId"], event["eventTime"],
                    event["job"]["name"]))
    return out


def check_delivered_events(received):
    """What was delivered validates against the spec, and is the sequence
    `tierflow lineage export` renders from the store on demand: the same
    events, in the same order, at the same times (their copies may differ:
    an export lists the copies as they are now)."""
    delivered = os.path.join(WORK, "delivered.ndjson")
    with open(delivered, "wb") as f:
        f.write(b"".join(body + b"\n" for body in received))
    check(SPEC is not None, "no OpenLineage spec directory given")
    if SPEC is not None:
        facet = os.path.join(SOURCE, "docs", "openlineage", "TierflowStorageDatasetFacet.json")
        valid = subprocess.run([sys.executable,
                                os.path.join(SOURCE, "tests", "openlineage_validate.py"), SPEC,
                                facet, "--", delivered], capture_output=True, text=True)
        log("validator: " + (valid.stdout + valid.stderr).strip())
        check(valid.returncode == 0, "delivered events do not validate: " + valid.stdout +
              valid.stderr)
    run_id = store("SELECT id FROM runs")[0][0]
    export = tierflow(["lineage", "export", run_id, "--db", DB], os.environ.copy(), 60)
    check(export.returncode == 0, "export failed: " + export.stderr)
    exported = [line.encode() for line in export.stdout.splitlines() if line]
    check(subjects(exported) == subjects(received),
          "the delivered events are not the ones export renders, in order:\n%s\n%s" %
          (subjects(received), subjects(exported)))


def _first_tries():
    try:
        rows = store("SELECT tries FROM lineage_outbox ORDER BY seq LIMIT 1")
    except sqlite3.Error:
        return 0
    return rows[0][0] if rows else 0


def check_rejected():
    port = free_port()
    receiver = Receiver(port, reject=lambda body, count: count == 1)
    done = run_pipeline(environment(port))
    check(done.returncode == 0, "the run failed: " + done.stdout + done.stderr)
    rows = outbox()
    check(len(rows) == expected_events(), "outbox has %d events, the run made %d" %
          (len(rows), expected_events()))
    rejected = [r for r in rows if r[2] == "rejected"]
    check(len(rejected) == 1 and rejected[0][0] == rows[1][0],
          "the second event is not the one rejected: %s" % [(r[0], r[2]) for r in rows])
    check(rejected and "HTTP 400" in rejected[0][4] and "no thanks" in rejected[0][4],
          "the rejection's answer was not kept: %r" % (rejected and rejected[0][4]))
    check(all(r[2] == "delivered" for r in rows if r not in rejected),
          "events behind the rejected one were not all delivered")
    received = receiver.received()
    check(received == [r[1] for r in rows],
          "the events did not arrive once each in seq order (the rejected one included)")
    listed = tierflow(["lineage", "export", "--rejected", "--db", DB], environment(None))
    check(listed.returncode == 0, "export --rejected failed: " + listed.stderr)
    check("1 rejected OpenLineage event" in listed.stdout and
          "seq %d " % rows[1][0] in listed.stdout and "HTTP 400: no thanks" in listed.stdout and
          rows[1][1].decode() in listed.stdout,
          "export --rejected does not show the parked event:\n" + listed.stdout)
    receiver.stop()


def check_at_least_once(bodies, received, before):
    """The contract after a kill -9 (see check_kill). Returns the duplicates."""
    first = []
    for body in received:
        if body not in first:
            first.append(body)
    check(first == bodies, "first arrivals are not the outbox's events in seq order")
    check(all(body in bodies for body in received), "an arrival is no outbox row's bytes")
    twice = [b for b in bodies if received.count(b) > 1]
    check(len(twice) <= SENDER_BATCH and all(received.count(b) == 2 for b in twice),
          "more duplicates than one unrecorded batch (%d): %d" % (SENDER_BATCH, len(twice)))
    check(all(b in before for b in twice), "a duplicate of an event not delivered before the kill")
    if twice:
        # The unrecorded batch: consecutive events, the last of them the
        # last to arrive before the kill.
        first = bodies.index(twice[0])
        check(twice == bodies[first:first + len(twice)], "the duplicates are not one run of events")
        check(twice[-1] == before[-1], "the duplicates do not end with the kill's last arrival")
    return twice


def killed_mid_run(nap, arrived):
    """A run whose engine is killed -9 once `arrived` events arrived at a
    receiver: (receiver, environment, the events before the kill, run id)."""
    port = free_port()
    receiver = Receiver(port)
    env = environment(port)
    engine = subprocess.Popen([TIERFLOW, "run", PIPELINE, "--db", DB, "--slots", "1", "--param",
                               "nap=" + nap], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    wait_for("%d events delivered" % arrived, lambda: len(receiver.received()) >= arrived, 60)
    engine.send_signal(signal.SIGKILL)
    engine.wait(timeout=30)
    before = receiver.received()
    log("killed the engine after %d events arrived" % len(before))
    return receiver, env, before, store("SELECT id FROM runs")[0][0]


def check_kill():
    receiver, env, before, run_id = killed_mid_run("0.6", 5)
    done = tierflow(["run", "--resume", run_id, "--db", DB, "--slots", "1"], env)
    check(done.returncode == 0, "the resume failed: " + done.stdout + done.stderr)
    rows = outbox()
    received = receiver.received()
    # The contract (docs/lineage-export.md, "Delivery"): at least once.
    # Events are marked delivered after their POSTs are answered, a batch of
    # at most SENDER_BATCH at a time; a kill between the answers and the
    # mark sends that batch again from the next process, the same bytes
    # (rendered once, stored in the outbox). So: every event of the outbox
    # arrives; the first arrivals are in seq order; an event arrives twice
    # only if it had arrived before the kill; the duplicates are at most one
    # batch of consecutive events ending with the last arrival before the
    # kill; and every arrival is byte-identical to its row.
    check(len(rows) == expected_events(),
          "outbox has %d events, the run made %d" % (len(rows), expected_events()))
    check(all(r[2] == "delivered" for r in rows), "not every event was delivered")
    bodies = [r[1] for r in rows]
    twice = check_at_least_once(bodies, received, before)
    types = [event_type(b) for b in bodies]
    check("RUNNING" in types and types[-1] == "COMPLETE",
          "no RUNNING at the resume, or the run's COMPLETE is not last: %s" % types)
    log("%d events, %d arrivals, %d duplicated" % (len(rows), len(received), len(twice)))
    receiver.stop()


def check_lease():
    port = free_port()
    receiver = Receiver(port)
    env = environment(port)
    first = run_pipeline(environment(None))  # the store exists before the ui opens it
    check(first.returncode == 0, "the first run failed: " + first.stdout + first.stderr)
    out = open(os.path.join(WORK, "ui.out"), "w+")
    ui = subprocess.Popen([TIERFLOW, "ui", "--db", DB, "--listen", "127.0.0.1:0"], env=env,
                          stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for("the ui's sender to take the lease",
                 lambda: store("SELECT count(*) FROM lineage_sender_lease")[0][0] == 1, 30)
        ui_owner = store("SELECT owner FROM lineage_sender_lease")[0][0]
        check(":%d:" % ui.pid in ui_owner, "the lease is not the ui's: " + ui_owner)
        done = run_pipeline(env)
        check(done.returncode == 0, "the run failed: " + done.stdout + done.stderr)
        check(store("SELECT owner FROM lineage_sender_lease")[0][0] == ui_owner,
              "the lease changed hands while its holder lived")
        rows = outbox()
        check(len(rows) > 0 and all(r[2] == "delivered" for r in rows),
              "not every event was delivered by the ui's sender")
        check(receiver.received() == [r[1] for r in rows],
              "two senders sent, or out of order: %d arrivals for %d events" %
              (len(receiver.received()), len(rows)))
    finally:
        ui.send_signal(signal.SIGKILL)
        ui.wait(timeout=30)
    log("killed the ui; its lease stays until it expires")
    done = run_pipeline(env)
    check(done.returncode == 0, "the run failed: " + done.stdout + done.stderr)
    check("wait in the store's outbox" not in done.stdout,
          "the run did not take over the dead ui's lease: " + done.stdout)
    rows = outbox()
    check(receiver.received() == [r[1] for r in rows] and all(r[2] == "delivered" for r in rows),
          "after the takeover, not every event arrived once in order")
    receiver.stop()


def check_cancel():
    # Killed once the run's and the first attempt's START arrived.
    receiver, env, before, run_id = killed_mid_run("2", 2)
    done = tierflow(["cancel", run_id, "--db", DB], env)
    check(done.returncode == 0, "cancel failed: " + done.stdout + done.stderr)
    rows = outbox()
    types = [(event_type(r[1]), r[2]) for r in rows[-2:]]
    # The attempt is lost (FAIL) once its process was recorded started, else
    # not_started (ABORT).
    check(types in ([("FAIL", "pending"), ("ABORT", "pending")],
                    [("ABORT", "pending"), ("ABORT", "pending")]),
          "the cancel did not queue the attempt's end and the run's ABORT: %s" % types)
    out = open(os.path.join(WORK, "ui.out"), "w+")
    ui = subprocess.Popen([TIERFLOW, "ui", "--db", DB, "--listen", "127.0.0.1:0"], env=env,
                          stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for("the ui to deliver the rest",
                 lambda: all(r[2] == "delivered" for r in outbox()), 60)
    finally:
        ui.send_signal(signal.SIGTERM)
        ui.wait(timeout=30)
    rows = outbox()
    check(len(rows) == expected_events(), "outbox has %d events, the run made %d" %
          (len(rows), expected_events()))
    # At least once, as in check_kill: the killed engine may have sent an
    # event it could not mark.
    check_at_least_once([r[1] for r in rows], receiver.received(), before)
    receiver.stop()


def check_off():
    done = run_pipeline(environment(None))
    check(done.returncode == 0, "the run failed: " + done.stdout + done.stderr)
    check(store("SELECT count(*) FROM lineage_outbox")[0][0] == 0, "the outbox is not empty")
    check(expected_events() > 0, "the run made no state changes")


def check_retention():
    port = free_port()
    receiver = Receiver(port)
    done = run_pipeline(environment(port, TIERFLOW_OPENLINEAGE_RETENTION="0"))
    check(done.returncode == 0, "the run failed: " + done.stdout + done.stderr)
    check(store("SELECT count(*) FROM lineage_outbox")[0][0] == 0,
          "delivered rows were kept with retention 0")
    check(len(receiver.received()) == expected_events(),
          "%d events arrived, the run made %d" % (len(receiver.received()), expected_events()))
    receiver.stop()


def start_server(env, listen, out_path):
    """`tierflow server` on `listen` over DB; returns (process, address)."""
    out = open(out_path, "w+")
    server = subprocess.Popen([TIERFLOW, "server", "--listen", listen, "--db", DB], env=env,
                              stdout=out, stderr=subprocess.STDOUT)
    address = []

    def listening():
        out.seek(0)
        address[:] = [line.split()[-1] for line in out if line.startswith("listening on ")]
        return bool(address)

    wait_for("the server to listen", listening, 30)
    return server, address[0] if address else None


def check_server():
    """Cluster mode: the server sends. The endpoint is down while a run
    starts; the server is killed -9 with events waiting and started again on
    the same store; then the endpoint comes up. Every event arrives once, in
    outbox order (none had been delivered before the kill, so none may come
    twice), sent by the server (it holds the sender's lease), not by submit."""
    port = free_port()
    env = environment(port, TIERFLOW_OPENLINEAGE_BACKOFF="100,400")
    server, address = start_server(env, "127.0.0.1:0", os.path.join(WORK, "server1.out"))
    processes = [server]
    try:
        worker = subprocess.Popen(
            [TIERFLOW, "worker", "--name", "ol-worker-%d" % os.getpid(), "--state-dir",
             os.path.join(WORK, "worker-state"), "--scheduler", address, "--slots", "1"],
            env=environment(None), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(worker)
        submit = tierflow(["submit", PIPELINE, "--scheduler", address, "--param", "nap=0.4"],
                          environment(None), 60)
        check(submit.returncode == 0, "submit failed: " + submit.stdout + submit.stderr)
        wait_for("4 events waiting in the outbox",
                 lambda: store("SELECT count(*) FROM lineage_outbox")[0][0] >= 4, 60)
        owner = store("SELECT owner FROM lineage_sender_lease")[0][0]
        check(":%d:" % server.pid in owner, "the sender's lease is not the server's: " + owner)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
        waiting = store("SELECT count(*) FROM lineage_outbox WHERE state = 'pending'")[0][0]
        log("killed the server with %d events waiting" % waiting)
        check(waiting >= 4, "events were delivered to an endpoint that is down")
        server, _ = start_server(env, address, os.path.join(WORK, "server2.out"))
        processes.append(server)
        receiver = Receiver(port)
        wait_for("the run to end and every event to be delivered", lambda: store(
            "SELECT state FROM runs")[0][0] != "running" and store(
            "SELECT count(*) FROM lineage_outbox WHERE state != 'delivered'")[0][0] == 0, 90)
        check(store("SELECT state FROM runs")[0][0] == "succeeded", "the run did not succeed")
        rows = outbox()
        check(len(rows) == expected_events(),
              "outbox has %d events, the run made %d" % (len(rows), expected_events()))
        received = receiver.received()
        check(received == [r[1] for r in rows],
              "the receiver's events are not the outbox's, once each in seq order "
              "(%d received, %d rows)" % (len(received), len(rows)))
        owner = store("SELECT owner FROM lineage_sender_lease")[0][0]
        check(":%d:" % server.pid in owner, "the restarted server does not send: " + owner)
        log("%d events delivered by the restarted server" % len(received))
        receiver.stop()
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


SECTIONS = {"down": check_down, "rejected": check_rejected, "kill": check_kill,
            "lease": check_lease, "cancel": check_cancel, "off": check_off, "retention": check_retention,
            "server": check_server}

try:
    SECTIONS[SECTION]()
finally:
    log("section %s: %s" % (SECTION, "FAILED" if FAILURES else "ok"))
    if not FAILURES:
        shutil.rmtree(WORK, ignore_errors=True)
    else:
        print("kept " + WORK, file=sys.stderr)
sys.exit(1 if FAILURES else 0)
