#include "storage_adapters/s3_client.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <random>
#include <thread>
#include <utility>

#include "common/status.h"
#include "common/strings.h"
#include "storage_adapters/artifact_key.h"
#include "storage_adapters/s3_wire.h"

namespace tierflow::storage::s3_internal {
namespace {

// curl's receive buffer for a streamed body (CURLOPT_BUFFERSIZE).
constexpr long kStreamBuffer = 256L << 10;

// Splits "http://host:port[/]" into scheme and authority.
absl::StatusOr<std::pair<std::string, std::string>> ParseEndpoint(const S3Config& config) {
  std::string_view endpoint = config.endpoint;
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.remove_suffix(1);
  for (std::string_view scheme : {"http", "https"}) {
    const std::string lead = StrCat(scheme, "://");
    if (endpoint.substr(0, lead.size()) != lead) continue;
    const std::string_view authority = endpoint.substr(lead.size());
    if (!authority.empty() && authority.find_first_of("/?#@ \t") == std::string_view::npos) {
      return std::make_pair(std::string(scheme), std::string(authority));
    }
  }
  return absl::InvalidArgumentError(StrCat(
      "tier ", config.tier, ": endpoint must be http://host[:port] or https://host[:port], got '",
      CEscape(config.endpoint), "'"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<S3Client>> S3Client::Make(S3Config config) {
  const std::string tier = StrCat("tier ", config.tier, ": ");
  TF_ASSIGN_OR_RETURN(auto endpoint, ParseEndpoint(config));
  while (!config.endpoint.empty() && config.endpoint.back() == '/') config.endpoint.pop_back();
  if (config.bucket.empty() || config.bucket.size() > 255 ||
      config.bucket.find_first_of("/?#% \t\r\n") != std::string::npos) {
    return absl::InvalidArgumentError(
        StrCat(tier, "'", CEscape(config.bucket), "' is not a bucket name"));
  }
  if (!config.path_style) {
    const bool dns_name = std::all_of(config.bucket.begin(), config.bucket.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
    });
    if (!dns_name) {
      return absl::InvalidArgumentError(
          StrCat(tier, "bucket '", config.bucket,
                 "' cannot be a host name; use path-style URLs (path_style: true)"));
    }
  }
  std::string_view prefix = config.prefix;
  while (!prefix.empty() && prefix.front() == '/') prefix.remove_prefix(1);
  while (!prefix.empty() && prefix.back() == '/') prefix.remove_suffix(1);
  if (!prefix.empty()) {
    absl::StatusOr<std::string> normal = NormalizeArtifactKey(prefix);
    if (!normal.ok()) {
      return absl::InvalidArgumentError(StrCat(tier, "bad prefix: ", normal.status().message()));
    }
    config.prefix = *normal;
  } else {
    config.prefix.clear();
  }
  if (config.access_key.empty() || config.secret_key.empty()) {
    return absl::InvalidArgumentError(StrCat(tier, "no credentials (access key and secret key)"));
  }
  if (config.part_size < kMinPartSize || config.part_size > kMaxPartSize) {
    return absl::InvalidArgumentError(
        StrCat(tier, "part size ", config.part_size, " is outside S3's limits, 5 MiB to 5 GiB"));
  }
  if (config.parallel < 1 || config.parallel > 256) {
    return absl::InvalidArgumentError(StrCat(tier, "parallel must be 1 to 256"));
  }
  const S3Timing& timing = config.timing;
  if (timing.stall.count() <= 0 || timing.min_rate == 0 || timing.backoff.count() < 0 ||
      timing.max_backoff < timing.backoff || timing.budget.count() < 0) {
    return absl::InvalidArgumentError(
        StrCat(tier,
               "the stall timeout and min_rate must be more than 0, backoff and budget not "
               "negative, max_backoff at least backoff"));
  }
  TF_ASSIGN_OR_RETURN(const CurlLibrary* curl, LoadCurl());
  return std::make_unique<S3Client>(*curl, std::move(config), std::move(endpoint.first),
                                    std::move(endpoint.second));
}

S3Client::S3Client(const CurlLibrary& curl, S3Config config, std::string scheme,
                   std::string authority)
    : curl_(curl),
      config_(std::move(config)),
      scheme_(std::move(scheme)),
      authority_(std::move(authority)),
      credentials_{config_.access_key, config_.secret_key, config_.region, "s3"} {}

S3Client::~S3Client() {
  for (CURL* handle : idle_) curl_.easy_cleanup(handle);
}

std::string S3Client::ObjectName(std::string_view key) const {
  return config_.prefix.empty() ? std::string(key) : StrCat(config_.prefix, "/", key);
}

void S3Client::Watch(std::function<void(const RetryNotice&)> on_retry,
                     std::shared_ptr<const std::atomic<bool>> cancel) {
  std::lock_guard<std::mutex> lock(mutex_);
  on_retry_ = std::move(on_retry);
  cancel_ = std::move(cancel);
}

std::shared_ptr<const std::atomic<bool>> S3Client::CancelFlag() {
  std::lock_guard<std::mutex> lock(mutex_);
  return cancel_;
}

void S3Client::NotifyRetry(const absl::Status& failure, int attempt,
                           std::chrono::milliseconds wait) {
  std::function<void(const RetryNotice&)> on_retry;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    on_retry = on_retry_;
  }
  if (on_retry) on_retry({config_.tier, std::string(failure.message()), attempt, wait});
}

bool S3Client::RetryAfter(const absl::Status& failure, int attempt,
                          std::chrono::milliseconds wait) {
  NotifyRetry(failure, attempt, wait);
  const std::shared_ptr<const std::atomic<bool>> cancel = CancelFlag();
  return Sleep(wait, cancel.get());
}

bool S3Client::Sleep(std::chrono::milliseconds wait, const std::atomic<bool>* cancel) const {
  const auto until = std::chrono::steady_clock::now() + wait;
  while (std::chrono::steady_clock::now() < until) {
    if (cancel != nullptr && cancel->load()) return false;
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
        std::chrono::milliseconds(50), until - std::chrono::steady_clock::now()));
  }
  return cancel == nullptr || !cancel->load();
}

absl::Status S3Client::Error(const Request& request, absl::StatusCode code,
                             std::string_view detail) const {
  return absl::Status(
      code, StrCat("tier ", config_.tier, ": cannot ", request.what, " '", request.key, "' (s3://",
                   config_.bucket, "/", request.object, " at ", config_.endpoint, "): ", detail));
}

CURL* S3Client::AcquireHandle() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!idle_.empty()) {
      CURL* handle = idle_.back();
      idle_.pop_back();
      return handle;
    }
  }
  return curl_.easy_init();
}

void S3Client::ReleaseHandle(CURL* handle) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (idle_.size() < static_cast<size_t>(2 * config_.parallel)) {
    idle_.push_back(handle);
    return;
  }
  curl_.easy_cleanup(handle);
}

// ---------------------------------------------------------------------------
// Sending.

S3Client::Attempt S3Client::Perform(CURL* handle, const Request& request,
                                    const std::atomic<bool>* cancel) const {
  curl_.easy_reset(handle);
  Attempt attempt;
  Transfer transfer;
  transfer.request = &request;
  transfer.cancel = cancel;
  if (request.body.md5_while_sending) transfer.md5 = std::make_unique<Digest>(Digest::Kind::kMd5);

  const std::string host =
      config_.path_style ? authority_ : StrCat(config_.bucket, ".", authority_);
  std::string path = config_.path_style ? StrCat("/", config_.bucket) : "";
  if (!request.object.empty() || path.empty()) path += StrCat("/", request.object);
  std::string url = StrCat(scheme_, "://", host, UriEncodePath(path));
  if (!request.query.empty()) url += StrCat("?", CanonicalQuery(request.query));

  SigV4Request signing{request.method, path, request.query, {}, request.body.sha256_hex};
  signing.headers = {{"host", host}, {"x-amz-content-sha256", request.body.sha256_hex}};
  if (!request.body.md5.empty()) {
    signing.headers.emplace_back("content-md5", Base64Encode(request.body.md5));
  }
  signing.headers.insert(signing.headers.end(), request.headers.begin(), request.headers.end());
  const SigV4Signature signature = SignV4(signing, credentials_, std::chrono::system_clock::now());

  curl_slist* headers = nullptr;
  for (const auto& [name, value] : signing.headers) {
    headers = curl_.slist_append(headers, StrCat(name, ": ", value).c_str());
  }
  headers = curl_.slist_append(headers, StrCat("x-amz-date: ", signature.amz_date).c_str());
  headers = curl_.slist_append(headers, StrCat("Authorization: ", signature.authorization).c_str());
  // Large bodies wait for the server's go-ahead, so a refusal (bad
  // credentials, say) comes back as a status, not as a broken connection.
  headers = curl_.slist_append(
      headers, request.body.length() > (64 << 10) ? "Expect: 100-continue" : "Expect:");

  char error[CURL_ERROR_SIZE] = "";
  curl_.easy_setopt(handle, CURLOPT_URL, url.c_str());
  curl_.easy_setopt(handle, CURLOPT_HTTPHEADER, headers);
  curl_.easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);
  curl_.easy_setopt(handle, CURLOPT_PATH_AS_IS, 1L);
  curl_.easy_setopt(handle, CURLOPT_USERAGENT, "tierflow");
  curl_.easy_setopt(handle, CURLOPT_ERRORBUFFER, error);
  const S3Timing& timing = config_.timing;
  curl_.easy_setopt(handle, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timing.stall.count()));
  curl_.easy_setopt(handle, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_.easy_setopt(handle, CURLOPT_LOW_SPEED_TIME,
                    static_cast<long>(std::max<int64_t>(1, (timing.stall.count() + 999) / 1000)));
  // The total deadline: a server that sends a byte now and then keeps the
  // low-speed limit happy for ever, but not this.
  const uint64_t bytes = std::max(request.body.length(), request.expected_bytes);
  const uint64_t deadline_ms = static_cast<uint64_t>(timing.stall.count()) +
                               bytes / std::max<uint64_t>(timing.min_rate / 1000, 1);
  curl_.easy_setopt(handle, CURLOPT_TIMEOUT_MS,
                    static_cast<long>(std::min<uint64_t>(deadline_ms, uint64_t{1} << 40)));
  curl_.easy_setopt(handle, CURLOPT_NOPROGRESS, 0L);
  curl_.easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, OnProgress);
  curl_.easy_setopt(handle, CURLOPT_XFERINFODATA, &transfer);
  curl_.easy_setopt(handle, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_.easy_setopt(handle, CURLOPT_HEADERDATA, &transfer);
  curl_.easy_setopt(handle, CURLOPT_WRITEFUNCTION, OnBody);
  curl_.easy_setopt(handle, CURLOPT_WRITEDATA, &transfer);
  // A streamed body (a ranged GET) goes to its sink in pieces of curl's
  // receive buffer: 16 KiB by default, a recv and a write (pwrite) each;
  // 256 KiB takes fewer of both (client CPU per 256 MiB downloaded 0.25-0.28
  // s -> 0.21-0.23 s, bench/README.md "Issue 21: transfer").
  if (request.sink) curl_.easy_setopt(handle, CURLOPT_BUFFERSIZE, kStreamBuffer);
  if (request.method == "HEAD") {
    curl_.easy_setopt(handle, CURLOPT_NOBODY, 1L);
  } else if (request.method == "PUT" || request.method == "POST") {
    curl_.easy_setopt(handle, CURLOPT_UPLOAD, 1L);
    curl_.easy_setopt(handle, CURLOPT_INFILESIZE_LARGE,
                      static_cast<curl_off_t>(request.body.length()));
    curl_.easy_setopt(handle, CURLOPT_READFUNCTION, OnRead);
    curl_.easy_setopt(handle, CURLOPT_READDATA, &transfer);
    curl_.easy_setopt(handle, CURLOPT_SEEKFUNCTION, OnSeek);
    curl_.easy_setopt(handle, CURLOPT_SEEKDATA, &transfer);
    if (request.method == "POST") curl_.easy_setopt(handle, CURLOPT_CUSTOMREQUEST, "POST");
  } else if (request.method != "GET") {
    curl_.easy_setopt(handle, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
  attempt.code = curl_.easy_perform(handle);
  // Nothing of this call (the error buffer, the callbacks' data) may
  // outlive it in the handle, which keeps only its connection.
  curl_.easy_reset(handle);
  curl_.slist_free_all(headers);
  attempt.curl_error = error[0] != '\0' ? error : curl_.easy_strerror(attempt.code);
  attempt.response = std::move(transfer.response);
  if (transfer.md5 && transfer.hashed == request.body.length()) {
    attempt.response.sent_md5 = transfer.md5->Finish();
  }
  attempt.local = std::move(transfer.local);
  return attempt;
}

std::chrono::milliseconds S3Client::Backoff(int attempt) const {
  // Exponential, capped, with jitter: a random wait in [d/2, d], so that
  // clients that failed together do not retry together.
  static thread_local std::mt19937_64 random(std::random_device{}());
  const int64_t cap = config_.timing.max_backoff.count();
  const int64_t base = std::min(config_.timing.backoff.count(), cap);
  if (base <= 0) return std::chrono::milliseconds(0);
  const int64_t ceiling = std::min<int64_t>(cap, base << std::min(attempt, 20));
  std::uniform_int_distribution<int64_t> jitter(ceiling / 2, ceiling);
  return std::chrono::milliseconds(jitter(random));
}

absl::StatusOr<Response> S3Client::Send(const Request& request) {
  const std::shared_ptr<const std::atomic<bool>> cancel = CancelFlag();
  auto cancelled = [&] {
    return Error(request, absl::StatusCode::kCancelled, "the transfer was cancelled");
  };
  // Retries go on until the budget has passed since the first failure, so
  // a server that restarts (tens of seconds) is ridden out, whatever the
  // size of the transfer that was under way.
  std::optional<std::chrono::steady_clock::time_point> first_failure;
  for (int attempt = 1;; ++attempt) {
    if (cancel && cancel->load()) return cancelled();
    CURL* handle = AcquireHandle();
    if (handle == nullptr) return absl::ResourceExhaustedError("curl_easy_init failed");
    Attempt result = Perform(handle, request, cancel.get());
    ReleaseHandle(handle);
    if (result.code == CURLE_ABORTED_BY_CALLBACK) return cancelled();
    if (!result.local.ok()) {
      return Error(request, result.local.code(), std::string(result.local.message()));
    }
    bool transient = false;
    if (result.code == CURLE_OK) {
      const long status = result.response.status;
      const bool accepted = (status >= 200 && status < 300) ||
                            std::find(request.also_accept.begin(), request.also_accept.end(),
                                      status) != request.also_accept.end();
      if (accepted) return std::move(result.response);
      transient =
          TransientStatus(status) ||
          (status == 400 && TransientCode(XmlText(result.response.body, "Code").value_or("")));
    } else {
      transient = TransientCurlError(result.code);
    }
    if (!transient) return Failure(request, result, attempt);
    const auto now = std::chrono::steady_clock::now();
    if (!first_failure) first_failure = now;
    const std::chrono::milliseconds wait = Backoff(attempt - 1);
    if (now - *first_failure + wait > config_.timing.budget) {
      return Failure(request, result, attempt);
    }
    NotifyRetry(Failure(request, result, attempt), attempt, wait);
    if (!Sleep(wait, cancel.get())) return cancelled();
  }
}

absl::Status S3Client::Failure(const Request& request, const Attempt& attempt, int attempts) const {
  const std::string tries = attempts > 1 ? StrCat(", after ", attempts, " attempts (retry budget ",
                                                  FormatDuration(config_.timing.budget), ")")
                                         : "";
  if (attempt.code != CURLE_OK) {
    return Error(request, absl::StatusCode::kUnavailable,
                 StrCat("cannot reach ", config_.endpoint, ": ", attempt.curl_error, tries));
  }
  const Response& response = attempt.response;
  const std::string code = XmlText(response.body, "Code").value_or("");
  const std::string message = XmlText(response.body, "Message").value_or("");
  std::string detail = StrCat("HTTP ", response.status);
  if (!code.empty()) detail += StrCat(" ", code);
  if (!message.empty()) detail += StrCat(": ", message);
  const long status = response.status;
  if (status == 403) {
    if (code.empty() || code == "SignatureDoesNotMatch" || code == "InvalidAccessKeyId" ||
        code == "InvalidToken" || code == "ExpiredToken" || code == "InvalidSecurity") {
      return Error(
          request, absl::StatusCode::kPermissionDenied,
          StrCat("the credentials were refused (access key '", config_.access_key, "'): ", detail));
    }
    return Error(request, absl::StatusCode::kPermissionDenied, StrCat("access denied: ", detail));
  }
  if (status == 404) {
    if (code == "NoSuchBucket") {
      return Error(request, absl::StatusCode::kNotFound,
                   StrCat("the bucket '", config_.bucket, "' does not exist: ", detail));
    }
    if (code == "NoSuchUpload") {
      return Error(request, absl::StatusCode::kNotFound,
                   StrCat("the multipart upload is gone (aborted or expired): ", detail));
    }
    return Error(request, absl::StatusCode::kNotFound, StrCat("no such object: ", detail));
  }
  if (status == 507 || status == 413 || code == "EntityTooLarge" || code == "QuotaExceeded" ||
      code == "InsufficientStorage") {
    return Error(request, absl::StatusCode::kResourceExhausted,
                 StrCat("the tier is full or the object too large: ", detail));
  }
  if (TransientStatus(status)) {
    return Error(request, absl::StatusCode::kUnavailable,
                 StrCat("the server keeps failing: ", detail, tries));
  }
  if (status == 400 && TransientCode(code)) {
    return Error(request, absl::StatusCode::kUnavailable,
                 StrCat("the server keeps refusing what was sent: ", detail, tries));
  }
  if (status == 400) return Error(request, absl::StatusCode::kInvalidArgument, detail);
  if (status == 409 || status == 412) {
    return Error(request, absl::StatusCode::kFailedPrecondition, detail);
  }
  if (status == 416) return Error(request, absl::StatusCode::kOutOfRange, detail);
  return Error(request, absl::StatusCode::kInternal, detail);
}

// ---------------------------------------------------------------------------
// Operations on objects.

absl::StatusOr<Head> S3Client::HeadObject(const std::string& what, const std::string& key,
                                          const std::string& object) {
  Request request{what, key, "HEAD", object};
  TF_ASSIGN_OR_RETURN(Response response, Send(request));
  Head head;
  const std::string length = response.Header("content-length");
  char* end = nullptr;
  head.bytes = std::strtoull(length.c_str(), &end, 10);
  if (length.empty() || *end != '\0') {
    return Error(request, absl::StatusCode::kInternal, "the reply has no Content-Length");
  }
  head.etag = BareEtag(response.Header("etag"));
  head.modified_ms = ParseTimeMs(response.Header("last-modified"), /*iso8601=*/false);
  head.content_hash = response.Header(std::string(kHashHeader));
  return head;
}

absl::StatusOr<RangeReply> S3Client::GetRange(const std::string& key, const std::string& object,
                                              uint64_t offset, uint64_t length, const Sink& sink) {
  Request request{"read", key, "GET", object};
  request.headers = {{"range", StrCat("bytes=", offset, "-", offset + length - 1)}};
  request.also_accept = {416};
  request.expected_bytes = length;
  request.sink = [&](uint64_t position, std::string_view data) -> absl::Status {
    if (position + data.size() > length) {
      return absl::DataLossError(
          StrCat("the server sent more than the ", length, " bytes asked for"));
    }
    return sink(position, data);
  };
  TF_ASSIGN_OR_RETURN(Response response, Send(request));
  RangeReply reply;
  if (response.status == 416) {
    reply.beyond_end = true;
    return reply;
  }
  reply.bytes = response.received;
  reply.etag = BareEtag(response.Header("etag"));
  const std::string content_length = response.Header("content-length");
  if (!content_length.empty() &&
      std::strtoull(content_length.c_str(), nullptr, 10) != reply.bytes) {
    return Error(request, absl::StatusCode::kDataLoss,
                 StrCat("got ", reply.bytes, " bytes of the ", content_length,
                        " its Content-Length announced"));
  }
  if (response.status == 206) {
    // Content-Range: bytes FIRST-LAST/TOTAL
    unsigned long long first = 0, last = 0, total = 0;
    if (std::sscanf(response.Header("content-range").c_str(), "bytes %llu-%llu/%llu", &first, &last,
                    &total) != 3 ||
        first != offset || last - first + 1 != reply.bytes) {
      return Error(request, absl::StatusCode::kDataLoss,
                   StrCat("the reply's range '", response.Header("content-range"),
                          "' is not the one asked for (", offset, "+", length, ", got ",
                          reply.bytes, " bytes)"));
    }
    reply.total = total;
  } else if (offset == 0) {
    reply.total = reply.bytes;  // the whole object (an empty one has no ranges)
  } else {
    return Error(request, absl::StatusCode::kDataLoss,
                 StrCat("the server ignored the range at ", offset));
  }
  return reply;
}

absl::Status S3Client::RefuseOverwrite(const std::string& key, const std::string& object) {
  if (!config_.write_once) return absl::OkStatus();
  absl::StatusOr<Head> head = HeadObject("write", key, object);
  if (absl::IsNotFound(head.status())) return absl::OkStatus();
  if (!head.ok()) return head.status();
  return absl::AlreadyExistsError(StrCat("tier ", config_.tier, " is an archive (write-once): '",
                                         key, "' exists and cannot be replaced"));
}

absl::Status S3Client::PutObject(const std::string& key, const std::string& object,
                                 const Body& body, const std::string& content_hash) {
  TF_RETURN_IF_ERROR(RefuseOverwrite(key, object));
  Request request{"write", key, "PUT", object};
  request.body = body;
  if (!content_hash.empty()) request.headers.emplace_back(kHashHeader, content_hash);
  TF_ASSIGN_OR_RETURN(Response response, Send(request));
  const std::string etag = BareEtag(response.Header("etag"));
  const std::string md5 = body.md5_while_sending ? response.sent_md5 : body.md5;
  if (md5.empty() || (EtagIsMd5(response) && etag != HexEncode(md5))) {
    Request remove{"write", key, "DELETE", object};
    (void)Send(remove);
    return Error(request, absl::StatusCode::kDataLoss,
                 md5.empty() ? std::string("the object was not sent whole in order, so its MD5 "
                                           "is unknown; it was deleted")
                             : StrCat("the server stored something else: its ETag ", etag,
                                      " is not the MD5 of what was sent, ", HexEncode(md5)));
  }
  return absl::OkStatus();
}
absl::Status S3Client::CreateBucket() {
  Request request{"create the bucket for", "", "PUT", ""};
  std::string xml;
  if (config_.region != "us-east-1") {
    xml = StrCat(
        "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<LocationConstraint>",
        XmlEscape(config_.region), "</LocationConstraint></CreateBucketConfiguration>");
  }
  request.body = MemoryBody(xml);
  if (xml.empty()) request.body.md5.clear();
  request.also_accept = {409};
  TF_ASSIGN_OR_RETURN(Response response, Send(request));
  if (response.status == 409 &&
      XmlText(response.body, "Code").value_or("") != "BucketAlreadyOwnedByYou") {
    return Error(request, absl::StatusCode::kAlreadyExists,
                 StrCat("the bucket belongs to someone else: HTTP 409 ",
                        XmlText(response.body, "Code").value_or("")));
  }
  return absl::OkStatus();
}

absl::Status S3Client::CheckReachable() {
  // A listing of one key under the tier's prefix: it needs the bucket, and
  // credentials good for it; S3's error comes back as a body (a HEAD's
  // would not).
  Request request{"list", "", "GET", ""};
  request.query = {{"list-type", "2"},
                   {"max-keys", "1"},
                   {"prefix", config_.prefix.empty() ? "" : StrCat(config_.prefix, "/")}};
  absl::StatusOr<Response> response = Send(request);
  if (response.ok()) return absl::OkStatus();
  return absl::Status(
      response.status().code(),
      StrCat("tier ", config_.tier, " (bucket '", config_.bucket, "' at ", config_.endpoint,
             ") cannot be reached: ", response.status().message()));
}

}  // namespace tierflow::storage::s3_internal
