#!/usr/bin/env python3
"""The HTTP server under load and abuse (CTest: http_limits_test), against the
real `tierflow ui --listen 127.0.0.1:0` on a store the real binary wrote:

1. 300 open /api/v1/events streams: an API request and /metrics are still
   answered, a new stream still receives the events of a run written now
   (and so does an old one), and SIGINT ends every stream and exits 0.
2. 200 slowloris connections dripping one header line a second: normal
   requests are answered meanwhile, and every dripper is closed after the
   header timeout (10 s; the lines do not extend it). On a kept-alive
   connection the timeout counts from the next request's first byte.
3. 200 idle connections: a normal request is answered at once.
4. Over the connection limit (512): each extra connection is answered 503
   at once and closed; once they go, requests are served again.
5. With a token: a request without it gets 401 and the connection is closed
   at once (403 for a wrong one); `bearer` and `BEARER` are accepted, and an
   authorized connection is kept alive.
6. Slow queries: while the test holds the locks of the store's WAL index
   (so every query waits, as behind a long write), 8 API requests (twice the query threads) wait, and the UI's page
   and a new event stream are still answered at once; once the lock goes,
   the 8 are answered.

Every wait is bounded only to detect a hang: a wait that runs out fails.
The figures (time to answer, when drippers were closed) are printed.

Usage: http_limits_test.py TIERFLOW_BIN SOURCE_DIR
"""
import errno
import json
import os
import fcntl
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

TIERFLOW, SOURCE = sys.argv[1], sys.argv[2]
WORK = tempfile.mkdtemp(prefix="tierflow-http-limits.")
DB = os.path.join(WORK, "tierflow.db")
PIPELINE = os.path.join(SOURCE, "examples", "quickstart", "pipeline.yaml")
PROCESSES = []
FAILURES = []
STARTED = time.time()

# The server's documented limits (docs/ui.md, api/http_server.h).
HEADER_TIMEOUT = 10.0
MAX_CONNECTIONS = 512
PROMPT = 5.0  # a request that takes milliseconds; more means starved


def check(condition, message):
    if not condition:
        FAILURES.append(message)
        print("FAIL: " + message, file=sys.stderr)
    return condition


def log(message):
    print("[%6.1fs] %s" % (time.time() - STARTED, message), flush=True)


def start_ui(extra_env=None):
    env = dict(os.environ)
    env.pop("TIERFLOW_UI_TOKEN", None)
    env.pop("TIERFLOW_CLIENT_TOKEN", None)
    env.update(extra_env or {})
    out = open(os.path.join(WORK, "ui-%d.out" % len(PROCESSES)), "w+")
    process = subprocess.Popen([TIERFLOW, "ui", "--db", DB, "--listen", "127.0.0.1:0"],
                               stdout=out, stderr=subprocess.STDOUT, env=env)
    PROCESSES.append(process)
    deadline = time.time() + 60
    while time.time() < deadline:
        out.seek(0)
        text = out.read()
        if "serving the UI on http://" in text:
            address = text.split("serving the UI on http://")[1].split("/")[0]
            host, port = address.rsplit(":", 1)
            return process, (host, int(port))
        if process.poll() is not None:
            raise SystemExit("tierflow ui exited: " + text)
        time.sleep(0.05)
    raise SystemExit("tierflow ui did not start")


def connect(address):
    sock = socket.create_connection(address, timeout=PROMPT)
    return sock


def read_answer(sock, timeout=PROMPT):
    """Reads one answer with a Content-Length (or to the end of the
    connection); returns (status, headers, body, closed). Raises
    socket.timeout when it does not come in time."""
    sock.settimeout(timeout)
    deadline = time.time() + timeout
    data = b""
    while b"\r\n\r\n" not in data:
        if time.time() > deadline:
            raise socket.timeout("no answer head")
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1]) if lines and lines[0].startswith("HTTP/") else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "-1"))
    closed = False
    while length < 0 or len(body) < length:
        if time.time() > deadline:
            raise socket.timeout("no answer body")
        chunk = sock.recv(65536)
        if not chunk:
            closed = True
            break
        body += chunk
    return status, headers, body, closed


def closed_soon(sock, timeout=PROMPT):
    """True when the server ends the connection (FIN or reset) within
    `timeout`, with nothing more sent."""
    sock.settimeout(timeout)
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def get(address, path, headers=None, timeout=PROMPT):
    """One request on a fresh connection: (status, headers, body, seconds)."""
    began = time.time()
    sock = connect(address)
    try:
        lines = ["GET %s HTTP/1.1" % path, "Host: test", "Connection: close"]
        lines += ["%s: %s" % item for item in (headers or {}).items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        status, answer_headers, body, _ = read_answer(sock, timeout)
        return status, answer_headers, body, time.time() - began
    finally:
        sock.close()


def served_promptly(address, what):
    """A normal API request and /metrics, each answered within PROMPT."""
    for path in ("/api/v1/runs", "/metrics"):
        try:
            status, _, body, seconds = get(address, path)
        except (socket.timeout, OSError) as error:
            check(False, "%s: GET %s not answered within %.0f s: %r" % (what, path, PROMPT, error))
            continue
        check(status == 200, "%s: GET %s: status %d" % (what, path, status))
        log("%s: GET %s answered in %.3f s" % (what, path, seconds))
        if path == "/api/v1/runs" and status == 200:
            check(json.loads(body)["total"] >= 1, "%s: runs listed" % what)


def open_stream(address):
    """An /api/v1/events stream whose answer head has arrived."""
    sock = connect(address)
    sock.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: test\r\n\r\n")
    sock.settimeout(PROMPT)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head = data.partition(b"\r\n\r\n")[0].decode("latin-1")
    ok = head.startswith("HTTP/1.1 200") and "text/event-stream" in head
    return sock, ok, data.partition(b"\r\n\r\n")[2]


def wait_for_run_started(sock, already, run_id, timeout):
    """Reads a stream until the run_started event of `run_id` arrives."""
    data = already
    deadline = time.time() + timeout
    while time.time() < deadline:
        if ('"run_id":"%s"' % run_id).encode() in data and b"run_started" in data:
            return True
        sock.settimeout(max(0.1, deadline - time.time()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    return ('"run_id":"%s"' % run_id).encode() in data and b"run_started" in data


def newest_run():
    result = subprocess.run([TIERFLOW, "runs", "--db", DB, "--output", "json", "--limit", "1"],
                            capture_output=True, text=True, timeout=120)
    return json.loads(result.stdout)["runs"][0]["id"]


def section_streams():
    log("1. 300 open event streams")
    ui, address = start_ui()
    streams = []
    for i in range(300):
        try:
            sock, ok, rest = open_stream(address)
        except (socket.timeout, OSError) as error:
            check(False, "event stream %d not answered within %.0f s: %r" % (i, PROMPT, error))
            break
        check(ok, "event stream %d: 200 text/event-stream" % i)
        streams.append((sock, rest))
    log("%d streams open" % len(streams))
    served_promptly(address, "with 300 streams open")
    fresh, ok, rest = open_stream(address)
    check(ok, "a new stream with 300 open: 200 text/event-stream")
    time.sleep(0.6)  # the feed has read where the table ends
    result = subprocess.run([TIERFLOW, "run", PIPELINE, "--db", DB, "--no-cache"],
                            capture_output=True, text=True, timeout=300)
    check(result.returncode == 0, "a run while 300 streams are open: " + result.stderr)
    run_id = newest_run()
    check(wait_for_run_started(fresh, rest, run_id, 60),
          "the new stream receives run_started of %s" % run_id)
    first, first_rest = streams[0]
    check(wait_for_run_started(first, first_rest, run_id, 60),
          "the oldest of 300 streams receives run_started of %s" % run_id)
    log("events of %s arrived on the new and the oldest stream" % run_id)
    began = time.time()
    ui.send_signal(signal.SIGINT)
    try:
        code = ui.wait(timeout=30)
    except subprocess.TimeoutExpired:
        code = None
    check(code == 0, "SIGINT with 301 streams open: exit 0 within 30 s (got %r)" % code)
    ended = sum(1 for sock, _ in streams + [(fresh, b"")] if drained_to_end(sock))
    check(ended == len(streams) + 1, "every stream ended at SIGINT: %d of %d" %
          (ended, len(streams) + 1))
    log("SIGINT: exit %r in %.2f s, %d streams ended" % (code, time.time() - began, ended))
    for sock, _ in streams:
        sock.close()
    fresh.close()


def drained_to_end(sock):
    """Reads what is left; True when the connection has ended."""
    sock.settimeout(PROMPT)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def section_slowloris(address):
    log("2. 200 slowloris connections")
    drippers = []
    connected = []  # when each connected: the server's clock starts later
    for _ in range(200):
        sock = connect(address)
        connected.append(time.time())
        sock.sendall(b"GET /api/v1/runs HTTP/1.1\r\nHost: test\r\n")
        drippers.append(sock)
    opened = time.time()
    closed_at = {}
    answered = {}
    lock = threading.Lock()
    stop = threading.Event()

    def drip():
        line = 0
        while not stop.is_set():
            line += 1
            for index, sock in enumerate(drippers):
                with lock:
                    if index in closed_at:
                        continue
                try:
                    sock.sendall(b"X-Drip-%d: %d\r\n" % (line, line))
                except OSError:
                    pass  # closed by the server: the watcher records it
            stop.wait(1.0)

    def watch():
        selector = selectors.DefaultSelector()
        for index, sock in enumerate(drippers):
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, index)
        while not stop.is_set():
            for key, _ in selector.select(timeout=0.2):
                try:
                    data = key.fileobj.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                with lock:
                    if data:
                        answered[key.data] = data
                    else:
                        closed_at[key.data] = time.time() - connected[key.data]
                selector.unregister(key.fileobj)
            with lock:
                if len(closed_at) == len(drippers):
                    return

    threads = [threading.Thread(target=drip, daemon=True),
               threading.Thread(target=watch, daemon=True)]
    for thread in threads:
        thread.start()
    time.sleep(2)  # the drippers hold their connections
    served_promptly(address, "with 200 dripping connections")
    time.sleep(2)
    served_promptly(address, "with 200 dripping connections, 4 s on")
    kept_alive_dripper(address)
    deadline = opened + HEADER_TIMEOUT + 30
    while time.time() < deadline:
        with lock:
            if len(closed_at) == len(drippers):
                break
        time.sleep(0.2)
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    with lock:
        times = sorted(closed_at.values())
        check(len(times) == len(drippers), "every dripper closed within %.0f s: %d of %d" %
              (HEADER_TIMEOUT + 30, len(times), len(drippers)))
        check(not answered, "no dripper got an answer: %r" % list(answered.values())[:1])
    if times:
        log("drippers closed after %.1f to %.1f s (header timeout %.0f s)" %
            (times[0], times[-1], HEADER_TIMEOUT))
        # They dripped all the while: closed by the timeout, not earlier.
        check(times[0] >= HEADER_TIMEOUT - 0.5, "first dripper closed at %.1f s, before the "
              "header timeout" % times[0])
    for sock in drippers:
        sock.close()


def kept_alive_dripper(address):
    """On a kept-alive connection, the header timeout counts from the next
    request's first byte (not from the previous answer), and dripping does
    not extend it."""
    sock = connect(address)
    sock.sendall(b"GET /api/v1/runs HTTP/1.1\r\nHost: test\r\n\r\n")
    status, _, _, closed = read_answer(sock)
    check(status == 200 and not closed, "kept-alive: first answer %d, closed=%r" % (status, closed))
    time.sleep(3)  # idle, within the idle timeout
    began = time.time()
    sock.sendall(b"GET /api/v1/runs HTTP/1.1\r\n")
    line = 0
    ended = None
    while time.time() < began + HEADER_TIMEOUT + 30:
        if closed_soon(sock, 1.0):
            ended = time.time() - began
            break
        line += 1
        try:
            sock.sendall(b"X-Drip-%d: %d\r\n" % (line, line))
        except OSError:
            ended = time.time() - began
            break
    sock.close()
    check(ended is not None, "a kept-alive connection dripping its next head is closed")
    if ended is not None:
        log("kept-alive dripper closed %.1f s after its first byte" % ended)
        check(ended >= HEADER_TIMEOUT - 0.5, "kept-alive dripper closed at %.1f s, before the "
              "header timeout" % ended)


def section_idle(address):
    log("3. 200 idle connections")
    idle = [connect(address) for _ in range(200)]
    time.sleep(1)
    served_promptly(address, "with 200 idle connections")
    for sock in idle:
        sock.close()


def section_limit(address):
    log("4. over the connection limit")
    time.sleep(2)  # the server has seen the earlier connections go
    held = [connect(address) for _ in range(MAX_CONNECTIONS)]
    extra = [connect(address) for _ in range(8)]
    began = time.time()
    for index, sock in enumerate(extra):
        try:
            status, headers, body, closed = read_answer(sock)
        except (socket.timeout, OSError) as error:
            check(False, "extra connection %d: no 503 within %.0f s: %r" % (index, PROMPT, error))
            continue
        check(status == 503 and headers.get("retry-after") == "1" and
              json.loads(body)["error"] == "unavailable",
              "extra connection %d: 503 with Retry-After: %d %r %r" % (index, status, headers,
                                                                      body))
        check(closed or closed_soon(sock), "extra connection %d closed after its 503" % index)
    log("8 extra connections answered 503 in %.3f s" % (time.time() - began))
    # The held ones were not refused.
    refused = 0
    for sock in held:
        sock.setblocking(False)
        try:
            if sock.recv(65536).startswith(b"HTTP/1.1 503"):
                refused += 1
        except BlockingIOError:
            pass
        except OSError:
            refused += 1
    check(refused == 0, "connections within the limit were refused: %d" % refused)
    for sock in held + extra:
        sock.close()
    deadline = time.time() + 30
    status = 0
    while time.time() < deadline:
        try:
            status = get(address, "/api/v1/runs")[0]
        except (socket.timeout, OSError):
            status = 0
        if status == 200:
            break
        time.sleep(0.2)
    check(status == 200, "once they closed, requests are served again: %d" % status)


def section_token():
    log("5. a token")
    ui, address = start_ui({"TIERFLOW_UI_TOKEN": "s3cret"})
    for headers, wanted in (({}, 401), ({"Authorization": "Bearer wrong"}, 403),
                            ({"Authorization": "Basic czNjcmV0"}, 401)):
        sock = connect(address)
        lines = ["GET /api/v1/runs HTTP/1.1", "Host: test"]  # keep-alive asked for
        lines += ["%s: %s" % item for item in headers.items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        began = time.time()
        status, answer_headers, body, closed = read_answer(sock)
        check(status == wanted, "%r: %d, wanted %d" % (headers, status, wanted))
        check(answer_headers.get("connection") == "close", "%r: Connection: close" % headers)
        check(closed or closed_soon(sock), "%r: the connection is closed at once" % headers)
        log("%r: %d and closed in %.3f s" % (headers, status, time.time() - began))
        sock.close()
    for scheme in ("bearer", "BEARER", "Bearer", "bEaReR"):
        status, _, _, _ = get(address, "/api/v1/runs", {"Authorization": scheme + " s3cret"})
        check(status == 200, "scheme %r accepted: %d" % (scheme, status))
    # An authorized connection is kept alive: two requests on one.
    sock = connect(address)
    for _ in range(2):
        sock.sendall(b"GET /api/v1/runs HTTP/1.1\r\nHost: test\r\nAuthorization: bearer s3cret"
                     b"\r\n\r\n")
        status, headers, _, closed = read_answer(sock)
        check(status == 200 and not closed, "keep-alive with a token: %d closed=%r" %
              (status, closed))
    sock.close()
    ui.send_signal(signal.SIGTERM)
    check(ui.wait(timeout=30) == 0, "SIGTERM: exit 0")


def section_slow_queries(address):
    log("6. slow queries")
    # SQLite's WAL index keeps its locks in bytes 120..127 of the -shm file
    # (write, checkpoint, recover, 5 read marks): holding them all makes
    # every reader wait (its busy timeout is 10 s).
    shm = DB + "-shm"
    deadline = time.time() + 30
    while not os.path.exists(shm) and time.time() < deadline:
        time.sleep(0.1)
    lock = os.open(shm, os.O_RDWR)
    fcntl.lockf(lock, fcntl.LOCK_EX, 8, 120, os.SEEK_SET)
    answers = []
    answers_lock = threading.Lock()

    def slow():
        try:
            status, _, _, seconds = get(address, "/api/v1/runs", timeout=60)
        except (socket.timeout, OSError) as error:
            status, seconds = repr(error), None
        with answers_lock:
            answers.append((status, seconds))

    threads = [threading.Thread(target=slow, daemon=True) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(1)
    with answers_lock:
        check(not answers, "API requests answered while the store is locked: %r" % answers)
    try:
        status, headers, _, seconds = get(address, "/")
        check(status == 200 and headers.get("content-type", "").startswith("text/html"),
              "the UI's page while queries wait: %d" % status)
        log("the UI's page answered in %.3f s while 8 queries wait" % seconds)
    except (socket.timeout, OSError) as error:
        check(False, "the UI's page not answered while queries wait: %r" % error)
    try:
        began = time.time()
        stream, ok, _ = open_stream(address)
        check(ok, "a new event stream while queries wait: 200 text/event-stream")
        log("a new event stream answered in %.3f s while 8 queries wait" % (time.time() - began))
        stream.close()
    except (socket.timeout, OSError) as error:
        check(False, "a new event stream not answered while queries wait: %r" % error)
    os.close(lock)  # releases the locks
    for thread in threads:
        thread.join(timeout=60)
    check(len(answers) == 8 and all(status == 200 for status, _ in answers),
          "the 8 waiting API requests answered 200 once the lock went: %r" % answers)
    log("the 8 waiting API requests answered after %s s" %
        ", ".join("%.1f" % seconds for _, seconds in answers if seconds is not None))


def main():
    result = subprocess.run([TIERFLOW, "run", PIPELINE, "--db", DB], capture_output=True,
                            text=True, timeout=300)
    if not check(result.returncode == 0, "quickstart run: " + result.stdout + result.stderr):
        return
    ui, address = start_ui()
    section_slowloris(address)
    section_idle(address)
    section_limit(address)
    section_slow_queries(address)
    served_promptly(address, "after the abuse")
    ui.send_signal(signal.SIGINT)
    check(ui.wait(timeout=30) == 0, "SIGINT: exit 0")
    section_token()
    section_streams()


try:
    main()
finally:
    for process in PROCESSES:
        if process.poll() is None:
            process.kill()
            process.wait()
    shutil.rmtree(WORK, ignore_errors=True)
print("http_limits_test: %.1f s" % (time.time() - STARTED))
if FAILURES:
    print("http_limits_test: %d failures" % len(FAILURES), file=sys.stderr)
    sys.exit(1)
print("http_limits_test: ok")
