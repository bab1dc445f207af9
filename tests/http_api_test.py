#!/usr/bin/env python3
"""`tierflow ui` end to end (CTest: http_api_test): the real binary runs the
quickstart and a small hostile pipeline into a temporary store, serves it
with `tierflow ui --listen 127.0.0.1:0`, and every endpoint is checked over
HTTP: shapes, 404 with did-you-mean, 400 naming the parameter, 405, HEAD,
security headers, task ids with '[' ']' '/', the UI's routes, a hostile log
line escaped in JSON, Server-Sent Events (a new run shows up live;
Last-Event-ID replays), and tokens (401 missing, 403 wrong, bearer, query
parameter and cookie), and placement: recorded for new runs, recomputed (and
labelled so) for a run in a store tierflow 8cf1ea4 wrote, upgraded by a new
run (scheduler/testdata/schema8_quickstart.db). Waits are bounded only
against hangs.

Usage: http_api_test.py TIERFLOW_BIN SOURCE_DIR
"""
import http.client
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

TIERFLOW, SOURCE = sys.argv[1], sys.argv[2]
WORK = tempfile.mkdtemp(prefix="tierflow-http.")
DB = os.path.join(WORK, "tierflow.db")
PROCESSES = []
FAILURES = []

HOSTILE = '</script><img src=x onerror=alert(1)> "quoted" \\ back & amp \x1b[31mred'

HOSTILE_PIPELINE = """name: hostile
stages:
  shard:
    kind: ingest
    foreach: ["a/b", "c d"]
    run: printf '%s\\n' "$TIERFLOW_PARAM_LINE" > "$TIERFLOW_OUTPUT_RAW"; printf '%s\\n' "$TIERFLOW_PARAM_LINE"
    outputs: [raw]
  gather:
    inputs: {raw: shard.raw}
    run: cat "$TIERFLOW_INPUT_RAW"/* 2>/dev/null || true
params:
  line: {type: string, default: "x"}
"""


def check(condition, message):
    if not condition:
        FAILURES.append(message)
        print("FAIL: " + message, file=sys.stderr)
    return condition


def run_tierflow(*args, env=None, timeout=300):
    return subprocess.run([TIERFLOW, *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


def start_ui(extra_env=None, listen="127.0.0.1:0", db=DB):
    env = dict(os.environ)
    env.pop("TIERFLOW_UI_TOKEN", None)
    env.pop("TIERFLOW_CLIENT_TOKEN", None)
    env.update(extra_env or {})
    out = open(os.path.join(WORK, "ui-%d.out" % len(PROCESSES)), "w+")
    process = subprocess.Popen([TIERFLOW, "ui", "--db", db, "--listen", listen], stdout=out,
                               stderr=subprocess.STDOUT, env=env)
    PROCESSES.append(process)
    deadline = time.time() + 60
    while time.time() < deadline:
        out.seek(0)
        text = out.read()
        if "serving the UI on http://" in text:
            address = text.split("serving the UI on http://")[1].split("/")[0]
            return process, address
        if process.poll() is not None:
            raise SystemExit("tierflow ui exited: " + text)
        time.sleep(0.05)
    raise SystemExit("tierflow ui did not start")


class Client:
    def __init__(self, address):
        host, port = address.rsplit(":", 1)
        self.host, self.port = host, int(port)

    def request(self, method, path, headers=None):
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        body = response.read()
        connection.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body

    def json(self, path, status=200, headers=None):
        code, response_headers, body = self.request("GET", path, headers)
        check(code == status, "GET %s: status %d, wanted %d: %s" % (path, code, status, body[:300]))
        check(response_headers.get("content-type", "").startswith("application/json"),
              "GET %s: content type %s" % (path, response_headers.get("content-type")))
        check(b"<" not in body and b">" not in body, "GET %s: raw < or > in JSON" % path)
        return json.loads(body)


def q(text):
    return urllib.parse.quote(text, safe="")


FAILING_PIPELINE = """name: failing
stages:
  part:
    foreach: ["a", "b c", "d"]
    retries: 0
    run: |
      for i in 1 2 3 4 5; do echo "line $i of $TIERFLOW_ITEM"; done
      if [ "$TIERFLOW_ITEM" != a ]; then echo "part $TIERFLOW_ITEM: disk full" >&2; exit 2; fi
"""


def check_failures():
    """GET /api/v1/runs/RUN/failures on a run where 2 of 3 tasks exit 2."""
    db = os.path.join(WORK, "failing.db")
    path = os.path.join(WORK, "failing.yaml")
    with open(path, "w") as f:
        f.write(FAILING_PIPELINE)
    result = run_tierflow("run", path, "--db", db)
    check(result.returncode != 0, "failing run fails: " + result.stdout + result.stderr)
    _, address = start_ui(db=db)
    c = Client(address)
    body = c.json("/api/v1/runs/last/failures")
    run_id = body["run_id"]
    check(run_id.startswith("failing-") and body["total"] == 2 and
          [f["task_id"] for f in body["failures"]] == ["part[b c]", "part[d]"],
          "failures: the two failed tasks in plan order %r" % body)
    first = body["failures"][0]
    check(first["stage"] == "part" and first["item"] == "b c" and first["state"] == "failed" and
          first["exit_code"] == 2 and first["attempt"] == 1 and first["log_path"], "failures: fields %r" % first)
    check(first["log_tail"][-1] == "part b c: disk full" and "line 5 of b c" in first["log_tail"],
          "failures: the log tail ends with the stderr line %r" % first["log_tail"])
    check(first["logs_command"] == "tierflow logs %s 'part[b c]' --db %s" % (run_id, db),
          "failures: a quoted logs command naming the store %r" % first["logs_command"])
    short = c.json("/api/v1/runs/%s/failures?limit=1&lines=2" % run_id)
    check(short["total"] == 2 and len(short["failures"]) == 1 and
          short["failures"][0]["log_tail"] == ["line 5 of b c", "part b c: disk full"] and
          short["failures"][0]["log_cut"], "failures: limit=1&lines=2 %r" % short)
# --- uidata (issue 20): artifact downloads, the tiers a run used, checkpoints.
DATA_PIPELINE = """name: data
stages:
  small:
    foreach: ["x y"]
    run: head -c 3000 /dev/urandom > "$TIERFLOW_OUTPUT_BLOB"
    outputs: [blob]
  big:
    run: head -c 16777217 /dev/zero > "$TIERFLOW_OUTPUT_BIG"
    outputs: [big]
  tree:
    run: mkdir -p "$TIERFLOW_OUTPUT_TREE" && echo a > "$TIERFLOW_OUTPUT_TREE/a" && echo b > "$TIERFLOW_OUTPUT_TREE/b"
    outputs: [tree]
  planted:
    run: echo planted > "$TIERFLOW_OUTPUT_FILE"
    outputs: [file]
  rewritten:
    run: echo rewritten > "$TIERFLOW_OUTPUT_FILE"
    outputs: [file]
  changed:
    run: echo changed > "$TIERFLOW_OUTPUT_FILE"
    outputs: [file]
"""


def check_downloads():
    """GET /api/v1/artifacts/ID/download on a store of its own: the bytes of a
    file; 413 over 16 MiB; 409 for a folder; a symlink planted in the tier, a
    uri rewritten in the store and a file changed since are refused and read
    nothing outside the tier; the token rules hold."""
    import sqlite3
    folder = os.path.join(WORK, "data")
    os.makedirs(folder)
    db = os.path.join(folder, "tierflow.db")
    pipeline = os.path.join(folder, "data.yaml")
    with open(pipeline, "w") as f:
        f.write(DATA_PIPELINE)
    result = run_tierflow("run", pipeline, "--db", db)
    check(result.returncode == 0, "data run: " + result.stdout + result.stderr)
    secret = os.path.join(WORK, "secret.txt")
    with open(secret, "w") as f:
        f.write("SECRET-OUTSIDE-THE-TIER\n")
    ui, address = start_ui(db=db)
    c = Client(address)
    detail = c.json("/api/v1/runs/last")
    run_id = detail["run"]["id"]
    outputs = {o["task_id"]: o for t in detail["tasks"] for o in t["outputs"]}

    def home(task):
        return next(x for x in outputs[task]["copies"] if x["state"] == "present")

    def download(ref, headers=None):
        return c.request("GET", "/api/v1/artifacts/%s/download" % q(str(ref)), headers)

    small = outputs["small[x y]"]
    with open(home("small[x y]")["uri"], "rb") as f:
        wanted = f.read()
    for ref in (small["id"], "%s/small[x y]/blob" % run_id, "last/small[x y]/blob"):
        code, headers, body = download(ref)
        check(code == 200 and body == wanted and len(body) == 3000,
              "download %s: %d, %d bytes" % (ref, code, len(body)))
        check(headers.get("content-type") == "application/octet-stream" and
              headers.get("content-length") == "3000" and
              headers.get("x-content-type-options") == "nosniff" and
              headers.get("content-security-policy") == "default-src 'self'",
              "download headers: %r" % headers)
        check(headers.get("content-disposition") ==
              "attachment; filename=\"small_x_y_-blob\"; filename*=UTF-8''small%5Bx%20y%5D-blob",
              "content-disposition: %r" % headers.get("content-disposition"))
    code, headers, body = c.request("HEAD", "/api/v1/artifacts/%d/download" % small["id"])
    check(code == 200 and body == b"" and headers.get("content-length") == "3000", "HEAD download")

    error = c.json("/api/v1/artifacts/%d/download" % outputs["big"]["id"], 413)
    check(error["reason"] == "too_large" and "16 MiB" in error["message"] and
          "tierflow lineage" in error["instead"], "413 over 16 MiB: %r" % error)
    error = c.json("/api/v1/artifacts/%d/download" % outputs["tree"]["id"], 409)
    check(error["reason"] == "directory" and "2 files" in error["message"] and
          "tierflow lineage" in error["instead"], "409 folder: %r" % error)
    # Other kinds of reference: a run id, a task without that output, no such id.
    check("not an artifact" in c.json("/api/v1/artifacts/%s/download" % run_id, 400)["message"],
          "a run id is not an artifact")
    check("did you mean 'blob'" in c.json("/api/v1/artifacts/%s/download" %
                                          q(run_id + "/small[x y]/blbo"), 404)["message"],
          "404 did-you-mean output")
    c.json("/api/v1/artifacts/99999/download", 404)
    check("'x'" in c.json("/api/v1/artifacts/%d/download?x=1" % small["id"], 400)["message"],
          "400 unknown parameter")

    # A symlink swapped into the tier for the copy, pointing outside: refused.
    planted = home("planted")["uri"]
    os.remove(planted)
    os.symlink(secret, planted)
    code, _, body = download(outputs["planted"]["id"])
    check(code == 409 and b"SECRET" not in body and json.loads(body)["reason"] == "no_readable_copy",
          "planted symlink refused: %d %r" % (code, body[:300]))
    # A uri rewritten in the store to a file outside the tier: refused.
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE artifact_copies SET uri = ? WHERE artifact_id = ?",
                           (secret, outputs["rewritten"]["id"]))
    code, _, body = download(outputs["rewritten"]["id"])
    check(code == 409 and b"SECRET" not in body and b"not under" in body,
          "rewritten uri refused: %d %r" % (code, body[:300]))
    # A copy whose bytes changed since it was recorded: refused.
    with open(home("changed")["uri"], "w") as f:
        f.write("tampered\n")
    code, _, body = download(outputs["changed"]["id"])
    check(code == 409 and b"tampered" not in body and b"no longer holds" in body,
          "changed copy refused: %d %r" % (code, body[:300]))
    ui.send_signal(signal.SIGTERM)
    check(ui.wait(timeout=30) == 0, "data UI: SIGTERM: exit 0")

    # The token: the server's check covers the download too.
    secured, secured_address = start_ui({"TIERFLOW_UI_TOKEN": "s3cret"}, db=db)
    s = Client(secured_address)
    path = "/api/v1/artifacts/%d/download" % small["id"]
    code, _, body = s.request("GET", path)
    check(code == 401 and body != wanted, "download without the token: %d" % code)
    code, _, body = s.request("GET", path, {"Authorization": "Bearer wrong"})
    check(code == 403 and body != wanted, "download with a wrong token: %d" % code)
    code, _, body = s.request("GET", path, {"Cookie": "tierflow_token=nope"})
    check(code == 403 and body != wanted, "download with a wrong cookie: %d" % code)
    for headers in ({"Authorization": "Bearer s3cret"}, {"Cookie": "tierflow_token=s3cret"}):
        code, _, body = s.request("GET", path, headers)
        check(code == 200 and body == wanted, "download with %r: %d" % (headers, code))
    secured.send_signal(signal.SIGTERM)
    check(secured.wait(timeout=30) == 0, "secured data UI: SIGTERM: exit 0")


def check_run_tiers(c, run_id):
    """GET /api/v1/runs/RUN/tiers and /checkpoints against the run's own
    detail (the quickstart: its train stage checkpoints)."""
    detail = c.json("/api/v1/runs/" + run_id)
    used = c.json("/api/v1/runs/%s/tiers" % run_id)
    check(used["run_id"] == run_id, "run tiers: run id")
    tiers = {t["name"]: t for t in used["tiers"]}
    check(set(tiers) == {"ram", "local", "bulk"} and all(t["recorded"] for t in tiers.values()),
          "run tiers: the recorded ones %r" % list(tiers))
    homes, working = {}, {}
    for task in detail["tasks"]:
        for output in task["outputs"]:
            for copy in output["copies"]:
                if copy["state"] != "present":
                    continue
                counts = homes if copy["role"] == "home" else working
                counts.setdefault(copy["tier"], [0, 0])
                counts[copy["tier"]][0] += 1
                counts[copy["tier"]][1] += copy["bytes"]
    for name, tier in tiers.items():
        check([tier["outputs"], tier["home_bytes"]] == homes.get(name, [0, 0]) and
              [tier["copies"], tier["working_bytes"]] == working.get(name, [0, 0]),
              "run tiers: %s matches the run's copies: %r" % (name, tier))
        flushed = [k for k in detail["checkpoints"] if k["tier"] == name and k["state"] == "present"]
        check(tier["checkpoints"] == len(flushed) and
              tier["checkpoint_bytes"] == sum(k["bytes"] for k in flushed) and
              tier["bytes"] == tier["home_bytes"] + tier["working_bytes"] + tier["checkpoint_bytes"],
              "run tiers: %s checkpoints %r" % (name, tier))
    check(sum(t["checkpoints"] for t in tiers.values()) > 0, "run tiers: checkpoints flushed")
    listed = c.json("/api/v1/runs/%s/checkpoints" % run_id)["checkpoints"]
    check([(k["task_id"], k["step"], k["state"]) for k in listed] ==
          [(k["task_id"], k["step"], k["state"]) for k in detail["checkpoints"]] and listed,
          "checkpoints: as the run detail lists them")
    check(all(k["files"] and k["attempt"] == 1 and k["local_uri"] and
              (k["flushed_at_ms"] or 0) >= k["committed_at_ms"] for k in listed),
          "checkpoints: files, attempt, flushed after committed %r" % listed[:1])
    c.json("/api/v1/runs/nope/tiers", 404)
    c.json("/api/v1/runs/nope/checkpoints", 404)


def main():
    pipeline = os.path.join(SOURCE, "examples", "quickstart", "pipeline.yaml")
    result = run_tierflow("run", pipeline, "--db", DB)
    check(result.returncode == 0, "quickstart run: " + result.stdout + result.stderr)
    hostile = os.path.join(WORK, "hostile.yaml")
    with open(hostile, "w") as f:
        f.write(HOSTILE_PIPELINE)
    result = run_tierflow("run", hostile, "--db", DB, "--param", "line=" + HOSTILE)
    check(result.returncode == 0, "hostile run: " + result.stdout + result.stderr)

    ui, address = start_ui()
    c = Client(address)

    # --- runs
    runs = c.json("/api/v1/runs")
    check(runs["total"] == 2 and len(runs["runs"]) == 2, "two runs: %r" % runs)
    quick = next(r for r in runs["runs"] if r["pipeline"] == "quickstart")["id"]
    hostile_run = next(r for r in runs["runs"] if r["pipeline"] == "hostile")["id"]
    check(c.json("/api/v1/runs?limit=1")["runs"][0]["id"] == hostile_run, "limit=1: newest first")
    check(c.json("/api/v1/runs?state=failed")["runs"] == [], "state=failed: none")
    error = c.json("/api/v1/runs?limit=abc", 400)
    check("'limit'" in error["message"] and error["error"] == "bad_request", "400 names limit")
    check("'state'" in c.json("/api/v1/runs?state=bogus", 400)["message"], "400 names state")
    check("'colour'" in c.json("/api/v1/runs?colour=red", 400)["message"], "400 unknown param")

    detail = c.json("/api/v1/runs/" + quick)
    check(detail["run"]["id"] == quick and len(detail["tasks"]) == 9, "run detail: 9 tasks")
    check(all(t["attempts"] and "outputs" in t for t in detail["tasks"]), "attempts, outputs")
    check(c.json("/api/v1/runs/last")["run"]["id"] == hostile_run, "last")
    error = c.json("/api/v1/runs/" + quick[:-1] + "x", 404)
    check("did you mean '%s'" % quick in error["message"], "404 did-you-mean run: %r" % error)

    # --- graph
    graph = c.json("/api/v1/runs/%s/graph" % quick)
    check(len(graph["nodes"]) == 9, "graph: 9 nodes")
    check(graph["edges_complete"] and len(graph["edges"]) == 9, "graph: 9 edges %r" % graph["edges"])
    check({"from": "ingest[0]", "to": "clean"} in graph["edges"], "graph: ingest[0] -> clean")
    groups = {g["stage"]: g for g in graph["groups"]}
    check(groups["ingest"]["tasks"] == 4 and groups["ingest"]["states"] == {"succeeded": 4},
          "graph: ingest group counts %r" % groups.get("ingest"))
    check(groups["ingest"]["foreach"] and groups["publish"]["parents"] == ["train", "featurize"]
          or set(groups["publish"]["parents"]) == {"train", "featurize"}, "graph: group parents")
    check(all(n["state"] == "succeeded" for n in graph["nodes"]), "graph: states")

    # --- tasks: ids with [ ] and /
    task = c.json("/api/v1/runs/%s/tasks/train" % quick)
    check(task["task"]["id"] == "train" and task["placement"]["source"] == "recorded",
          "task: placement recorded %r" % task["placement"].get("source"))
    check(task["placement"]["outputs"][0]["home"] and task["placement"]["outputs"][0]["reason"],
          "task: placement home and reason")
    checkpoint = task["placement"]["checkpoint"] or {}
    check(checkpoint.get("stage") == "train" and checkpoint.get("write_tier") and
          checkpoint.get("flush_tier") not in (None, "", checkpoint.get("write_tier")) and
          "flushed to " + checkpoint["flush_tier"] in checkpoint.get("reason", ""),
          "task: checkpoint placement recorded %r" % checkpoint)
    item = c.json("/api/v1/runs/%s/tasks/%s" % (quick, q("ingest[2]")))["placement"]
    check(item["source"] == "recorded" and item["outputs"] and
          all(o["task"] == "ingest[2]" for o in item["outputs"]) and item["checkpoint"] is None,
          "task: a foreach item's recorded placement %r" % item)
    check(any(io["read_bytes"] > 0 for io in task["io"]) and
          any(io["written_bytes"] > 0 for io in task["io"]), "task: bytes per tier %r" % task["io"])
    check(task["data_wait"]["seconds"] >= 0 and task["data_wait"]["source"] == "measured",
          "task: data wait")
    error = c.json("/api/v1/runs/%s/tasks/trian" % quick, 404)
    check("did you mean 'train'" in error["message"], "404 did-you-mean task: %r" % error)
    attempts = c.json("/api/v1/runs/%s/tasks/%s/attempts" % (quick, q("ingest[2]")))
    check(attempts["task_id"] == "ingest[2]" and len(attempts["attempts"]) == 1, "attempts")
    for path in ("/api/v1/runs/%s/tasks/%s/logs" % (hostile_run, q("shard[a/b]")),
                 "/api/v1/runs/%s/tasks/shard%%5Ba/b%%5D/logs" % hostile_run):
        logs = c.json(path)
        check(logs["task_id"] == "shard[a/b]", "task id with '/': %r" % logs.get("task_id"))
        # The hostile line comes back byte for byte, as JSON text.
        check(logs["text"] == HOSTILE + "\n", "hostile log text: %r" % logs["text"])
    logs = c.json("/api/v1/runs/%s/tasks/%s/logs?tail=5" % (hostile_run, q("shard[c d]")))
    check(logs["text"] == (HOSTILE + "\n")[-5:] and logs["truncated"], "tail=5: %r" % logs["text"])
    check("'tail'" in c.json("/api/v1/runs/%s/tasks/gather/logs?tail=-1" % hostile_run, 400)
          ["message"], "400 names tail")
    error = c.json("/api/v1/runs/%s/tasks/gather/logs?attempt=7" % hostile_run, 404)
    check("attempt" in error["message"], "404 no such attempt: %r" % error)

    # --- lineage
    lineage = c.json("/api/v1/runs/%s/lineage" % quick)
    check(len([n for n in lineage["nodes"] if n["type"] == "attempt"]) == 9, "run lineage attempts")
    release = next(n for n in lineage["nodes"] if n["type"] == "artifact" and n["name"] == "release")
    up = c.json("/api/v1/artifacts/%d/lineage?direction=up" % release["artifact_id"])
    check(any(n.get("task_id", "").startswith("ingest[") for n in up["nodes"]),
          "lineage of the release reaches ingest")
    check(up["direction"] == "upstream", "direction up")
    shallow = c.json("/api/v1/artifacts/%d/lineage?direction=up&depth=1" % release["artifact_id"])
    check(len(shallow["nodes"]) < len(up["nodes"]), "depth=1 walks less")
    by_ref = c.json("/api/v1/artifacts/%s/lineage?direction=down" % q(quick + "/ingest[0]/raw"))
    check(by_ref["direction"] == "downstream" and len(by_ref["nodes"]) > 1, "lineage by ref")
    check("'direction'" in c.json("/api/v1/artifacts/1/lineage?direction=sideways", 400)
          ["message"], "400 names direction")
    check("'depth'" in c.json("/api/v1/artifacts/1/lineage?depth=0", 400)["message"],
          "400 names depth")
    c.json("/api/v1/artifacts/99999/lineage", 404)

    # --- failures (issue 20): a run without any, errors; a failing run in a
    # store of its own (the other checks count this store's runs)
    none = c.json("/api/v1/runs/%s/failures" % quick)
    check(none == {"run_id": quick, "total": 0, "failures": []}, "failures: none %r" % none)
    check("did you mean '%s'" % quick in c.json("/api/v1/runs/%sx/failures" % quick[:-1], 404)
          ["message"], "failures: unknown run 404")
    for bad, name in (("limit=0", "'limit'"), ("limit=101", "'limit'"), ("limit=x", "'limit'"),
                      ("lines=201", "'lines'"), ("tail=3", "'tail'")):
        check(name in c.json("/api/v1/runs/%s/failures?%s" % (quick, bad), 400)["message"],
              "failures: 400 for %s" % bad)
    check_failures()
    check_run_tiers(c, quick)  # uidata

    # --- tiers, workers, unknown
    tiers = c.json("/api/v1/tiers")["tiers"]
    check({t["name"] for t in tiers} == {"ram", "local", "bulk"}, "tiers: %r" % tiers)
    check(all("measured_profile" in t and "stored_bytes" in t for t in tiers), "tier fields")
    check(c.json("/api/v1/workers") == {"mode": "embedded", "workers": []}, "workers")
    check("did you mean 'runs'" in c.json("/api/v1/rnus", 404)["message"], "endpoint did-you-mean")
    c.json("/api/v2/runs", 404)

    # --- methods, HEAD, headers, UI routes
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        code, headers, body = c.request(method, "/api/v1/runs")
        check(code == 405 and headers.get("allow") == "GET, HEAD" and
              json.loads(body)["error"] == "method_not_allowed", "%s: 405" % method)
    code, headers, body = c.request("HEAD", "/api/v1/runs")
    check(code == 200 and body == b"", "HEAD: 200, no body")
    for path in ("/", "/runs/" + quick, "/api/v1/runs", "/metrics", "/nothing.js", "/api/v1/x"):
        code, headers, body = c.request("GET", path)
        check(headers.get("content-security-policy") == "default-src 'self'" and
              headers.get("x-content-type-options") == "nosniff", "security headers on " + path)
    code, headers, index = c.request("GET", "/")
    check(code == 200 and headers["content-type"].startswith("text/html"), "/: the UI")
    code, headers, body = c.request("GET", "/runs/%s/graph" % quick)
    check(code == 200 and body == index, "client-side route serves index.html")
    code, headers, body = c.request("GET", "/nothing.js")
    check(code == 404, "missing asset: 404")

    # --- metrics
    code, headers, body = c.request("GET", "/metrics")
    check(code == 200 and headers["content-type"].startswith("text/plain; version=0.0.4"),
          "metrics content type")
    text = body.decode()
    succeeded = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                    if line.startswith("tierflow_tasks{") and 'state="succeeded"' in line)
    check(succeeded == 12, "tierflow_tasks succeeded = 12 (9 + 3): %s" % succeeded)

    # --- Server-Sent Events: a run written now arrives live.
    events = queue.Queue()

    def subscribe(headers, events):
        connection = http.client.HTTPConnection(c.host, c.port, timeout=120)
        connection.request("GET", "/api/v1/events", headers=headers)
        response = connection.getresponse()
        events.put(("status", response.status, response.getheader("Content-Type")))
        current = {}
        while True:
            line = response.fp.readline()
            if not line:
                return
            line = line.decode().rstrip("\n")
            if line == "":
                if "data" in current:
                    events.put(("event", current))
                current = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                current[name] = value

    threading.Thread(target=subscribe, args=({}, events), daemon=True).start()
    kind, status, content_type = events.get(timeout=30)
    check(status == 200 and content_type.startswith("text/event-stream"), "events: stream")
    time.sleep(0.6)  # the feed has read where the table ends
    result = run_tierflow("run", hostile, "--db", DB, "--no-cache")
    check(result.returncode == 0, "third run: " + result.stderr)
    third = json.loads(run_tierflow("runs", "--db", DB, "--output", "json", "--limit", "1").stdout)[
        "runs"][0]["id"]
    seen_run = seen_task = False
    deadline = time.time() + 60
    while time.time() < deadline and not (seen_run and seen_task):
        try:
            item = events.get(timeout=max(0.1, deadline - time.time()))
        except queue.Empty:
            break
        event = item[1]
        data = json.loads(event["data"])
        if data.get("run_id") != third:
            continue
        if event.get("event") == "run" and data["kind"] == "run_started":
            seen_run = check("id" in event and data["run"]["id"] == third, "run event: %r" % event)
        if event.get("event") == "task" and data["state"] == "succeeded":
            seen_task = True
    check(seen_run, "SSE: run_started of the new run")
    check(seen_task, "SSE: a task of the new run succeeded")

    replayed = queue.Queue()
    threading.Thread(target=subscribe, args=({"Last-Event-ID": "0"}, replayed), daemon=True).start()
    events_after = []
    deadline = time.time() + 30
    while time.time() < deadline and len(events_after) < 3:
        item = replayed.get(timeout=30)
        if item[0] == "event":
            events_after.append(item[1])
    check(events_after and events_after[0].get("id") == "1", "Last-Event-ID 0 replays from id 1")
    code, headers, body = c.request("GET", "/api/v1/events", {"Last-Event-ID": "x"})
    check(code == 400, "bad Last-Event-ID: 400")

    # --- tokens
    secured, secured_address = start_ui({"TIERFLOW_UI_TOKEN": "s3cret"})
    s = Client(secured_address)
    for path in ("/api/v1/runs", "/metrics", "/"):
        error = s.json(path, 401)
        check("token" in error["message"], "401 names the token: %r" % error)
        error = s.json(path, 403, {"Authorization": "Bearer wrong"})
        check("wrong" in error["message"], "403 says wrong: %r" % error)
        code, _, _ = s.request("GET", path, {"Authorization": "Bearer s3cret"})
        check(code == 200, "bearer token: 200 on " + path)
    check("wrong" in s.json("/api/v1/runs?token=nope", 403)["message"], "wrong query token")
    code, headers, _ = s.request("GET", "/?token=s3cret")
    cookie = headers.get("set-cookie", "")
    check(code == 200 and cookie.startswith("tierflow_token=s3cret;") and "HttpOnly" in cookie,
          "query token sets the cookie: %r" % cookie)
    code, _, _ = s.request("GET", "/api/v1/runs", {"Cookie": "tierflow_token=s3cret"})
    check(code == 200, "cookie: 200")
    code, _, _ = s.request("GET", "/api/v1/events", {"Cookie": "tierflow_token=nope"})
    check(code == 403, "events with a wrong cookie: 403")
    secured.send_signal(signal.SIGTERM)
    check(secured.wait(timeout=30) == 0, "SIGTERM: exit 0")

    # --- the command's errors
    result = run_tierflow("ui", "--db", DB, "--listen", "0.0.0.0:0", timeout=60)
    check(result.returncode == 1 and "beyond loopback" in result.stderr, "no token beyond loopback")
    result = run_tierflow("ui", "--db", os.path.join(WORK, "none.db"), timeout=60)
    check(result.returncode == 1 and "none.db" in result.stderr, "missing db: " + result.stderr)
    result = run_tierflow("ui", "--colour", timeout=60)
    check(result.returncode == 2, "bad flag: exit 2")
    result = run_tierflow("ui", "--db", DB, "--listen", "nonsense", timeout=60)
    check(result.returncode == 1 and "HOST:PORT" in result.stderr, "bad --listen")

    ui.send_signal(signal.SIGINT)
    check(ui.wait(timeout=30) == 0, "SIGINT with open event streams: exit 0")

    # --- a store tierflow 8cf1ea4 wrote (schema 8: no recorded decisions),
    # upgraded by a new run: its old run's placement is recomputed and says
    # so; the new run's is recorded.
    old_db = os.path.join(WORK, "old", "tierflow.db")
    os.makedirs(os.path.dirname(old_db))
    shutil.copyfile(os.path.join(SOURCE, "scheduler", "testdata", "schema8_quickstart.db"), old_db)
    result = run_tierflow("run", hostile, "--db", old_db)
    check(result.returncode == 0, "a run into the old store: " + result.stdout + result.stderr)
    old_ui, old_address = start_ui(db=old_db)
    o = Client(old_address)
    old = o.json("/api/v1/runs/quickstart-dc349c/tasks/train")["placement"]
    check(old["source"] == "recomputed" and old["outputs"] and old["outputs"][0]["home"] and
          old["outputs"][0]["reason"] and old["checkpoint"] is None,
          "old store: placement recomputed %r" % old)
    new_run = next(r for r in o.json("/api/v1/runs")["runs"] if r["pipeline"] == "hostile")["id"]
    new = o.json("/api/v1/runs/%s/tasks/gather" % new_run)["placement"]
    check(new["source"] == "recorded" and [i["input"] for i in new["inputs"]] == ["raw"],
          "old store, new run: placement recorded %r" % new)
    old_ui.send_signal(signal.SIGTERM)
    check(old_ui.wait(timeout=30) == 0, "old store's UI: SIGTERM: exit 0")

    check_downloads()  # uidata


try:
    main()
finally:
    for process in PROCESSES:
        if process.poll() is None:
            process.kill()
            process.wait()
    shutil.rmtree(WORK, ignore_errors=True)
if FAILURES:
    print("http_api_test: %d failures" % len(FAILURES), file=sys.stderr)
    sys.exit(1)
print("http_api_test: ok")
