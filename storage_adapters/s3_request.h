// Requests of the s3 adapter (s3_client.cc) as libcurl sends them: their bodies
// (bytes in memory or a range of a file, each readable again for a retry),
// the request and response records, the curl callbacks that move the bytes
// of one attempt, which failures are transient (worth retrying), and
// RunParallel for parts and ranges. An internal header, used only by the
// s3 adapter (s3*.cc); the functions here keep no state between calls.
#pragma once

#include <curl/curl.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage_adapters/sigv4.h"

namespace tierflow::storage::s3_internal {

inline constexpr std::string_view kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

using Pairs = std::vector<std::pair<std::string, std::string>>;

// strerror(error).
std::string ErrnoText(int error);

// A request body: bytes in memory or a range of a file. Either can be read
// again from its start, as a retry needs.
struct Body {
  std::string_view memory;
  int fd = -1;
  uint64_t offset = 0;
  uint64_t size = 0;  // of the file range
  std::string sha256_hex = std::string(kEmptySha256);
  std::string md5;  // raw; sent as Content-MD5 when set
  // A multipart part: its MD5 is computed while it is sent (Response::
  // sent_md5) and checked against the part's ETag before the upload is
  // completed, so hashing overlaps the network and nothing unchecked ever
  // becomes visible.
  bool md5_while_sending = false;

  uint64_t length() const { return fd >= 0 ? size : memory.size(); }
};

// `data`, kept in memory: its MD5 for Content-MD5, and its SHA-256 for the
// signature when it is small (s3_request.cc says why not when large).
Body MemoryBody(std::string_view data);

// A body that streams [offset, offset + size) of `fd`, its MD5 computed
// first (Content-MD5 goes out before the first byte), and in the same pass
// its content hash into `content_hash` when given.
absl::StatusOr<Body> FileBody(int fd, uint64_t offset, uint64_t size,
                              std::string* content_hash = nullptr);

// The content hash of the first `size` bytes of `fd`.
absl::StatusOr<std::string> HashFileRange(int fd, uint64_t size);

// A part of a file for a multipart upload: nothing read before sending.
Body FilePartBody(int fd, uint64_t offset, uint64_t size);

// Where a successful response's body goes: `data` is at `position` of this
// attempt's body (a retry starts again at 0). An error stops the transfer.
using Sink = std::function<absl::Status(uint64_t position, std::string_view data)>;

struct Request {
  Request(std::string what, std::string key, std::string method, std::string object,
          Pairs query = {})
      : what(std::move(what)),
        key(std::move(key)),
        method(std::move(method)),
        object(std::move(object)),
        query(std::move(query)) {}

  std::string what;    // for messages: "read", "write", "list", ...
  std::string key;     // the tier's key (or listing prefix), for messages
  std::string method;  // GET, HEAD, PUT, POST, DELETE
  std::string object;  // the key in the bucket; "" for the bucket itself
  Pairs query;
  Pairs headers;  // besides Host, x-amz-*, Content-MD5 and Authorization
  Body body;
  Sink sink;  // unset: a successful body is kept in Response::body
  // Bytes a successful reply's body is expected to hold (a ranged GET's
  // length), for the attempt's total deadline; uploads count their body.
  uint64_t expected_bytes = 0;
  // Statuses besides 2xx that the caller handles itself.
  std::vector<long> also_accept;
};

struct Response {
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;                            // unless a sink took it
  uint64_t received = 0;
  std::string sent_md5;  // raw MD5 of the request body sent, for md5_while_sending bodies

  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// Whether the ETag of a PUT is the MD5 of the bytes: not for objects the
// server encrypts with KMS or a customer's key.
bool EtagIsMd5(const Response& response);

// One attempt of a request, as the curl callbacks see it.
struct Transfer {
  const Request* request = nullptr;
  Response response;
  uint64_t sent = 0;
  absl::Status local;           // our side failed: reading the body, or the sink
  std::unique_ptr<Digest> md5;  // of the body's bytes [0, hashed), as sent
  uint64_t hashed = 0;
  const std::atomic<bool>* cancel = nullptr;  // set: stop the transfer

  void Hash(const char* data, size_t n) {
    if (md5 && sent == hashed) {
      md5->Update(std::string_view(data, n));
      hashed += n;
    }
  }
};

// libcurl's callbacks for one attempt; `user` is its Transfer.
size_t OnRead(char* out, size_t size, size_t count, void* user);
int OnSeek(void* user, curl_off_t offset, int origin);
size_t OnHeader(char* data, size_t size, size_t count, void* user);
size_t OnBody(char* data, size_t size, size_t count, void* user);
int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t);

// Whether a failure is worth another attempt: a connection error, an HTTP
// status, or the Code of a 400's XML reply.
bool TransientCurlError(CURLcode code);
bool TransientStatus(long status);
// A 400 whose cause is the connection, not the request: a body damaged on
// the way (BadDigest: it does not match its Content-MD5), or one that came
// too slowly (RequestTimeout). Sent again, it can succeed.
bool TransientCode(std::string_view code);

// Runs task(0) ... task(count - 1) on up to `parallel` threads, this one
// included; after the first failure starts no more, and returns it.
absl::Status RunParallel(uint64_t count, int parallel,
                         const std::function<absl::Status(uint64_t)>& task);

}  // namespace tierflow::storage::s3_internal
