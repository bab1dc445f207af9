#include "storage_adapters/s3_request.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "common/strings.h"
#include "storage_adapters/content_hash.h"
#include "storage_adapters/s3_wire.h"

namespace tierflow::storage::s3_internal {
namespace {

constexpr size_t kMaxErrorBody = size_t{64} << 10;  // the start of an error is enough
constexpr size_t kMaxXmlBody = size_t{16} << 20;    // a listing page of 1000 keys is < 1 MiB
constexpr size_t kHashBuffer = size_t{1} << 20;

// Object data is sent as UNSIGNED-PAYLOAD: the signature covers the
// request, not the bytes, which are protected by Content-MD5 instead (the
// server refuses a body that does not match it, and the ETag it returns is
// checked against it too). Hashing every byte twice before sending (SHA-256
// for the signature, MD5) cost uploads 0.6 s of CPU per 256 MiB on the
// benchmark machine (bench/README.md "transfer"). Small request bodies
// (the XML of CompleteMultipartUpload) are signed in full.
constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";
constexpr size_t kSignedBodyLimit = 64 << 10;

}  // namespace

std::string ErrnoText(int error) { return std::strerror(error); }

Body MemoryBody(std::string_view data) {
  Body body;
  body.memory = data;
  Digest md5(Digest::Kind::kMd5);
  md5.Update(data);
  body.md5 = md5.Finish();
  if (data.size() > kSignedBodyLimit) {
    body.sha256_hex = std::string(kUnsignedPayload);
  } else {
    Digest sha256(Digest::Kind::kSha256);
    sha256.Update(data);
    body.sha256_hex = HexEncode(sha256.Finish());
  }
  return body;
}

absl::StatusOr<Body> FileBody(int fd, uint64_t offset, uint64_t size, std::string* content_hash) {
  ContentHasher hasher;
  Body body;
  body.fd = fd;
  body.offset = offset;
  body.size = size;
  Digest md5(Digest::Kind::kMd5);
  std::string buffer(static_cast<size_t>(std::min<uint64_t>(size, kHashBuffer)), '\0');
  for (uint64_t done = 0; done < size;) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(size - done, buffer.size()));
    const ssize_t n = pread(fd, buffer.data(), want, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return absl::InternalError(n == 0 ? "the file shrank while it was read"
                                        : StrCat("cannot read the file: ", ErrnoText(errno)));
    }
    const std::string_view piece(buffer.data(), static_cast<size_t>(n));
    md5.Update(piece);
    if (content_hash != nullptr) hasher.Update(piece);
    done += static_cast<uint64_t>(n);
  }
  body.sha256_hex = std::string(kUnsignedPayload);
  body.md5 = md5.Finish();
  if (content_hash != nullptr) *content_hash = hasher.Finish();
  return body;
}

absl::StatusOr<std::string> HashFileRange(int fd, uint64_t size) {
  ContentHasher hasher;
  std::string buffer(static_cast<size_t>(std::min<uint64_t>(size, kHashBuffer)), '\0');
  for (uint64_t done = 0; done < size;) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(size - done, buffer.size()));
    const ssize_t n = pread(fd, buffer.data(), want, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return absl::InternalError(n == 0 ? "the file shrank while it was read"
                                        : StrCat("cannot read the file: ", ErrnoText(errno)));
    }
    hasher.Update(std::string_view(buffer.data(), static_cast<size_t>(n)));
    done += static_cast<uint64_t>(n);
  }
  return hasher.Finish();
}

Body FilePartBody(int fd, uint64_t offset, uint64_t size) {
  Body body;
  body.fd = fd;
  body.offset = offset;
  body.size = size;
  body.sha256_hex = std::string(kUnsignedPayload);
  body.md5_while_sending = true;
  return body;
}

bool EtagIsMd5(const Response& response) {
  const std::string sse = response.Header("x-amz-server-side-encryption");
  return sse.rfind("aws:kms", 0) != 0 &&
         response.Header("x-amz-server-side-encryption-customer-algorithm").empty();
}

size_t OnRead(char* out, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  const Body& body = transfer->request->body;
  const size_t n = static_cast<size_t>(
      std::min<uint64_t>(body.length() - transfer->sent, static_cast<uint64_t>(size) * count));
  if (n == 0) return 0;
  if (body.fd < 0) {
    std::memcpy(out, body.memory.data() + transfer->sent, n);
    transfer->Hash(out, n);
    transfer->sent += n;
    return n;
  }
  for (;;) {
    const ssize_t got = pread(body.fd, out, n, static_cast<off_t>(body.offset + transfer->sent));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      transfer->local =
          absl::InternalError(got == 0 ? "the file shrank while it was sent"
                                       : StrCat("cannot read the file: ", ErrnoText(errno)));
      return CURL_READFUNC_ABORT;
    }
    transfer->Hash(out, static_cast<size_t>(got));
    transfer->sent += static_cast<uint64_t>(got);
    return static_cast<size_t>(got);
  }
}

int OnSeek(void* user, curl_off_t offset, int origin) {
  auto* transfer = static_cast<Transfer*>(user);
  if (origin != SEEK_SET || offset < 0 ||
      static_cast<uint64_t>(offset) > transfer->request->body.length()) {
    return CURL_SEEKFUNC_CANTSEEK;
  }
  transfer->sent = static_cast<uint64_t>(offset);
  if (transfer->md5 && offset == 0) {  // sent again from the start (a redirect, a rewind)
    transfer->md5 = std::make_unique<Digest>(Digest::Kind::kMd5);
    transfer->hashed = 0;
  }
  return CURL_SEEKFUNC_OK;
}

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  const std::string_view line(data, size * count);
  if (line.substr(0, 5) == "HTTP/") {
    // A new response (after an interim 100 Continue, say): start afresh.
    transfer->response.headers.clear();
    const size_t space = line.find(' ');
    if (space != std::string_view::npos) {
      transfer->response.status =
          std::strtol(std::string(line.substr(space + 1, 3)).c_str(), nullptr, 10);
    }
  } else if (const size_t colon = line.find(':'); colon != std::string_view::npos) {
    transfer->response.headers[LowerAscii(TrimWhitespace(line.substr(0, colon)))] =
        std::string(TrimWhitespace(line.substr(colon + 1)));
  }
  return size * count;
}

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  Response& response = transfer->response;
  const std::string_view piece(data, size * count);
  const bool success = response.status >= 200 && response.status < 300;
  if (success && transfer->request->sink) {
    absl::Status status = transfer->request->sink(response.received, piece);
    if (!status.ok()) {
      transfer->local = std::move(status);
      return 0;
    }
  } else if (response.body.size() + piece.size() <= (success ? kMaxXmlBody : kMaxErrorBody)) {
    response.body.append(piece);
  } else if (success) {
    transfer->local = absl::InternalError(
        StrCat("the server's reply is larger than ", kMaxXmlBody >> 20, " MiB"));
    return 0;
  } else {
    response.body.append(piece.substr(0, kMaxErrorBody - response.body.size()));
  }
  response.received += piece.size();
  return piece.size();
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* transfer = static_cast<Transfer*>(user);
  return transfer->cancel != nullptr && transfer->cancel->load() ? 1 : 0;
}

bool TransientCurlError(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

bool TransientStatus(long status) {
  return status == 408 || status == 429 ||
         (status >= 500 && status != 501 && status != 505 && status != 507);
}

// A 400 whose cause is the connection, not the request: a body damaged on
// the way (BadDigest: it does not match its Content-MD5), or one that came
// too slowly (RequestTimeout). Sent again, it can succeed.
bool TransientCode(std::string_view code) {
  return code == "BadDigest" || code == "RequestTimeout" || code == "XAmzContentSHA256Mismatch" ||
         code == "IncompleteBody" || code == "InternalError" || code == "SlowDown" ||
         code == "ServiceUnavailable";
}

absl::Status RunParallel(uint64_t count, int parallel,
                         const std::function<absl::Status(uint64_t)>& task) {
  std::atomic<uint64_t> next{0};
  std::atomic<bool> stop{false};
  std::mutex mutex;
  absl::Status failure;
  auto work = [&] {
    while (!stop) {
      const uint64_t index = next++;
      if (index >= count) return;
      if (absl::Status status = task(index); !status.ok()) {
        std::lock_guard<std::mutex> lock(mutex);
        if (failure.ok()) failure = std::move(status);
        stop = true;
      }
    }
  };
  std::vector<std::thread> threads;
  const uint64_t workers = std::min<uint64_t>(count, static_cast<uint64_t>(parallel));
  for (uint64_t i = 1; i < workers; ++i) threads.emplace_back(work);
  work();
  for (std::thread& thread : threads) thread.join();
  return failure;
}

}  // namespace tierflow::storage::s3_internal
