"""A minimal S3 client for the data-plane benchmarks (bench/data_wait.py,
bench/checkpoint.py, bench/recovery.py): GET, PUT and DELETE of whole
objects over one kept-alive HTTP connection, signed with AWS Signature V4.
Standard library only. The benchmarks copy this file next to their task
scripts, so the synthetic trainers use it as a data loader would use boto3.

Object data goes as UNSIGNED-PAYLOAD (the body is not hashed: that is what
the s3 adapter and curl do too, and Swift's s3api requires the
x-amz-content-sha256 header on every request); small request bodies do not
occur here. Path-style URLs: http://HOST:PORT/BUCKET/KEY.
"""

import datetime
import hashlib
import hmac
import http.client
import urllib.parse

UNSIGNED = "UNSIGNED-PAYLOAD"


class S3Error(RuntimeError):
    pass


class S3:
    def __init__(self, endpoint, access_key, secret_key, region="us-east-1"):
        parsed = urllib.parse.urlsplit(endpoint)
        if parsed.scheme != "http" or not parsed.hostname:
            raise S3Error("endpoint must be http://host:port, got %r" % endpoint)
        self.host = parsed.hostname
        self.port = parsed.port or 80
        self.netloc = parsed.netloc
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self._conn = None
        self._last_length = 0

    # -- requests -----------------------------------------------------------

    def get(self, bucket, key):
        """The object's bytes."""
        status, body = self._request("GET", "/%s/%s" % (bucket, key))
        if status != 200:
            raise S3Error("GET %s/%s: HTTP %d: %s" % (bucket, key, status, body[:300]))
        return body

    def put(self, bucket, key, data):
        """Stores `data` (bytes, or a list of bytes sent one after the other,
        without joining them) under key; returns when the server has it
        (Swift's object server fsyncs before it answers)."""
        status, body = self._request("PUT", "/%s/%s" % (bucket, key), data)
        if status != 200:
            raise S3Error("PUT %s/%s: HTTP %d: %s" % (bucket, key, status, body[:300]))

    def size(self, bucket, key):
        """The object's size in bytes (HEAD), or None when there is none."""
        status, _ = self._request("HEAD", "/%s/%s" % (bucket, key))
        if status == 404:
            return None
        if status != 200:
            raise S3Error("HEAD %s/%s: HTTP %d" % (bucket, key, status))
        return self._last_length

    def delete(self, bucket, key):
        status, body = self._request("DELETE", "/%s/%s" % (bucket, key))
        if status not in (200, 204, 404):
            raise S3Error("DELETE %s/%s: HTTP %d: %s" % (bucket, key, status, body[:300]))

    def create_bucket(self, bucket):
        status, body = self._request("PUT", "/%s" % bucket, b"")
        if status not in (200, 409):
            raise S3Error("PUT bucket %s: HTTP %d: %s" % (bucket, status, body[:300]))

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- internals ------------------------------------------------------------

    def _request(self, method, path, body=None):
        path = urllib.parse.quote(path, safe="/-_.~")
        headers = self._sign(method, path, body)
        for attempt in (0, 1):  # a kept-alive connection the server closed: once more
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
            try:
                self._conn.request(method, path, body=body, headers=headers)
                response = self._conn.getresponse()
                data = response.read()
                self._last_length = int(response.getheader("Content-Length", "0"))
                if response.getheader("Connection", "").lower() == "close":
                    self.close()
                return response.status, data
            except (http.client.HTTPException, ConnectionError):
                self.close()
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def _sign(self, method, path, body):
        now = datetime.datetime.now(datetime.timezone.utc)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        day = now.strftime("%Y%m%d")
        headers = {"host": self.netloc, "x-amz-content-sha256": UNSIGNED, "x-amz-date": amz_date}
        if body is not None:
            size = sum(len(b) for b in body) if isinstance(body, list) else len(body)
            headers["content-length"] = str(size)
        names = sorted(headers)
        canonical = "\n".join([
            method, path, "",
            "".join("%s:%s\n" % (n, headers[n].strip()) for n in names),
            ";".join(names), UNSIGNED])
        scope = "%s/%s/s3/aws4_request" % (day, self.region)
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        key = ("AWS4" + self.secret_key).encode()
        for part in (day, self.region, "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (
            "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s"
            % (self.access_key, scope, ";".join(names), signature))
        del headers["host"]  # http.client sends it
        return headers
