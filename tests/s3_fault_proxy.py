#!/usr/bin/env python3
"""A fault-injecting HTTP proxy in front of a real S3 server (Swift), for
tests: it forwards every request to the server unchanged (Host header
included, so SigV4 signatures still hold) and, on command, damages what
matching requests get back.

    s3_fault_proxy.py UPSTREAM_URL PORT_FILE

listens on a free loopback port, writes it to PORT_FILE once it accepts
connections, and serves until killed. Commands are requests to the proxy
itself, never forwarded:

    GET /__proxy/fault?kind=K&match=M&count=N&skip=S&seconds=T
        the next N requests (after skipping S) whose "METHOD PATH?QUERY"
        contains M get fault K; count=-1: all of them. Kinds:
          reset     the connection is closed (RST) without a reply
          5xx       503 SlowDown
          baddigest 400 BadDigest (as when a body does not match Content-MD5)
          stall     nothing is sent for T seconds, then the connection closes
          trickle   the reply's body is sent at 2 bytes a second
          truncate  half the body, then the connection closes
          flip      one byte in the middle of the body is flipped
          drop      the request reaches the server, its reply is dropped
          nohash    the reply has no x-amz-meta-tierflow-hash (an object
                    stored before tierflow kept one)
    GET /__proxy/refuse?seconds=T
        every connection for T seconds is closed at once (a server restart)
    GET /__proxy/clear        no more faults
    GET /__proxy/stats        JSON: requests forwarded, faults applied by kind

Python standard library only. Thread per connection.
"""
import http.client
import http.server
import json
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer",
              "upgrade", "proxy-connection", "content-length"}


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.rules = []  # dicts: kind, match, count, skip, seconds
        self.refuse_until = 0.0
        self.forwarded = 0
        self.applied = {}

    def pick(self, line):
        with self.lock:
            self.forwarded += 1
            for rule in self.rules:
                if rule["match"] not in line or rule["count"] == 0:
                    continue
                if rule["skip"] > 0:
                    rule["skip"] -= 1
                    continue
                if rule["count"] > 0:
                    rule["count"] -= 1
                self.applied[rule["kind"]] = self.applied.get(rule["kind"], 0) + 1
                return rule
        return None


STATE = State()
UPSTREAM = None  # (host, port)


def reset(sock):
    # SO_LINGER 0: close sends RST, as a crashed server's kernel would.
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def control(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        command = url.path[len("/__proxy/"):]
        reply = {"ok": True}
        with STATE.lock:
            if command == "fault":
                STATE.rules.append({"kind": query["kind"], "match": query.get("match", ""),
                                    "count": int(query.get("count", "1")),
                                    "skip": int(query.get("skip", "0")),
                                    "seconds": float(query.get("seconds", "30"))})
            elif command == "refuse":
                STATE.refuse_until = time.monotonic() + float(query.get("seconds", "10"))
            elif command == "clear":
                STATE.rules = []
                STATE.refuse_until = 0.0
            elif command == "stats":
                reply = {"forwarded": STATE.forwarded, "applied": STATE.applied}
            else:
                reply = {"ok": False, "error": "unknown command " + command}
        body = json.dumps(reply).encode()
        self.send_response(200 if reply.get("ok", True) else 400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def error_reply(self, status, code):
        body = ("<?xml version='1.0' encoding='UTF-8'?><Error><Code>%s</Code>"
                "<Message>injected by s3_fault_proxy</Message></Error>" % code).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def forward(self):
        length = int(self.headers.get("Content-Length", "0") or "0")
        body = self.rfile.read(length) if length > 0 else b""
        upstream = http.client.HTTPConnection(UPSTREAM[0], UPSTREAM[1], timeout=120)
        upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for name, value in self.headers.items():
            if name.lower() in HOP_BY_HOP or name.lower() == "expect":
                continue
            upstream.putheader(name, value)
        upstream.putheader("Content-Length", str(len(body)))
        upstream.endheaders(body)
        response = upstream.getresponse()
        data = response.read()
        headers = [(n, v) for n, v in response.getheaders() if n.lower() not in HOP_BY_HOP]
        # A HEAD's Content-Length is the object's, not of the (empty) body.
        length = response.getheader("Content-Length") if self.command == "HEAD" else None
        status = response.status
        upstream.close()
        return status, headers, data, length

    def handle_one(self):
        if self.path.startswith("/__proxy/"):
            return self.control()
        rule = STATE.pick("%s %s" % (self.command, self.path))
        kind = rule["kind"] if rule else None
        if kind == "reset":
            self.close_connection = True
            reset(self.connection)
            return
        if kind == "5xx":
            return self.error_reply(503, "SlowDown")
        if kind == "baddigest":
            length = int(self.headers.get("Content-Length", "0") or "0")
            if length > 0:
                self.rfile.read(length)
            return self.error_reply(400, "BadDigest")
        if kind == "stall":
            time.sleep(rule["seconds"])
            self.close_connection = True
            reset(self.connection)
            return
        status, headers, data, head_length = self.forward()
        if kind == "drop":
            self.close_connection = True
            reset(self.connection)
            return
        if kind == "nohash":
            headers = [(n, v) for n, v in headers if n.lower() != "x-amz-meta-tierflow-hash"]
        if kind == "flip" and data and 200 <= status < 300:
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1:]
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", head_length or str(len(data)))
        self.end_headers()
        if self.command == "HEAD":
            return
        if kind == "truncate" and data:
            self.wfile.write(data[:len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            reset(self.connection)
            return
        if kind == "trickle":
            deadline = time.monotonic() + rule["seconds"]
            for i in range(0, len(data), 1):
                if time.monotonic() > deadline:
                    break
                self.wfile.write(data[i:i + 1])
                self.wfile.flush()
                time.sleep(0.5)
            self.close_connection = True
            return
        self.wfile.write(data)

    def handle_one_request(self):
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            self.handle_one()
            self.wfile.flush()
        except (ConnectionError, socket.timeout, OSError):
            self.close_connection = True


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def verify_request(self, request, client_address):
        if time.monotonic() < STATE.refuse_until:
            reset(request)
            return False
        return True

    def shutdown_request(self, request):
        try:
            request.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        try:
            request.close()
        except OSError:
            pass


def main():
    global UPSTREAM
    if len(sys.argv) != 3:
        sys.exit("usage: s3_fault_proxy.py UPSTREAM_URL PORT_FILE")
    url = urllib.parse.urlsplit(sys.argv[1])
    UPSTREAM = (url.hostname, url.port or 80)
    server = Server(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    with open(sys.argv[2] + ".tmp", "w") as out:
        out.write("%d\n" % port)
    import os
    os.replace(sys.argv[2] + ".tmp", sys.argv[2])
    server.serve_forever()


if __name__ == "__main__":
    main()
