#include "storage_adapters/s3.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "common/status.h"
#include "common/strings.h"
#include "storage_adapters/artifact_key.h"
#include "storage_adapters/content_hash.h"
#include "storage_adapters/curl_library.h"
#include "storage_adapters/fd.h"
#include "storage_adapters/remote_store.h"
#include "storage_adapters/s3_request.h"
#include "storage_adapters/s3_wire.h"
#include "storage_adapters/sigv4.h"

namespace tierflow::storage {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kMinPartSize = 5 * kMiB;               // S3's smallest part but the last
constexpr uint64_t kMaxPartSize = uint64_t{5} << 30;      // and its largest
constexpr uint64_t kMaxAutoPartSize = uint64_t{1} << 30;  // the largest PutFile picks itself
constexpr uint64_t kMaxParts = 10000;
// Each object's own content hash, as HashArtifact gives it for a file.
constexpr std::string_view kHashHeader = "x-amz-meta-tierflow-hash";
constexpr std::string_view kTempMarker = ".tierflow-tmp-";

using s3_internal::BareEtag;
using s3_internal::Body;
using s3_internal::ErrnoText;
using s3_internal::EtagIsMd5;
using s3_internal::FileBody;
using s3_internal::FilePartBody;
using s3_internal::HashFileRange;
using s3_internal::MemoryBody;
using s3_internal::OnBody;
using s3_internal::OnHeader;
using s3_internal::OnProgress;
using s3_internal::OnRead;
using s3_internal::OnSeek;
using s3_internal::ParseTimeMs;
using s3_internal::Request;
using s3_internal::Response;
using s3_internal::RunParallel;
using s3_internal::Sink;
using s3_internal::Transfer;
using s3_internal::TransientCode;
using s3_internal::TransientCurlError;
using s3_internal::TransientStatus;
using s3_internal::XmlElements;
using s3_internal::XmlEscape;
using s3_internal::XmlText;

// ---------------------------------------------------------------------------
// Small helpers: files.

// An owned file descriptor.
using File = Fd;

std::string RandomHex() {
  static thread_local std::mt19937_64 random(std::random_device{}());
  char text[17];
  snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(random()));
  return text;
}

// ---------------------------------------------------------------------------
// The adapter.

struct Head {
  uint64_t bytes = 0;
  std::string etag;  // bare
  int64_t modified_ms = 0;
  std::string content_hash;  // kHashHeader, if it was stored
};

struct Part {
  int number = 0;
  std::string etag;  // bare, as the server returned it
  std::string md5;   // raw, of what we sent
};

// What a ranged GET returned.
struct RangeReply {
  bool beyond_end = false;  // the range starts at or past the end (416)
  uint64_t bytes = 0;       // received
  uint64_t total = 0;       // the object's size
  std::string etag;         // bare
};

class S3Adapter final : public Adapter, public RemoteStore {
 public:
  S3Adapter(const CurlLibrary& curl, S3Config config, std::string scheme, std::string authority)
      : curl_(curl),
        config_(std::move(config)),
        scheme_(std::move(scheme)),
        authority_(std::move(authority)),
        credentials_{config_.access_key, config_.secret_key, config_.region, "s3"} {}

  ~S3Adapter() override {
    for (CURL* handle : idle_) curl_.easy_cleanup(handle);
  }

  std::string_view kind() const override { return "s3"; }
  RemoteStore* remote() override { return this; }
  const std::string& tier_name() const override { return config_.tier; }

  void Watch(std::function<void(const RetryNotice&)> on_retry,
             std::shared_ptr<const std::atomic<bool>> cancel) override {
    std::lock_guard<std::mutex> lock(mutex_);
    on_retry_ = std::move(on_retry);
    cancel_ = std::move(cancel);
  }
  absl::Status CheckReachable() override;
  absl::StatusOr<int> AbortUnfinishedUploads(std::string_view prefix) override;

  absl::StatusOr<std::unique_ptr<ObjectWriter>> OpenWrite(std::string_view key) override;
  absl::StatusOr<std::unique_ptr<ObjectReader>> OpenRead(std::string_view key, uint64_t offset,
                                                         std::optional<uint64_t> length) override;
  absl::StatusOr<ObjectInfo> Stat(std::string_view key) override;
  absl::StatusOr<std::vector<ObjectInfo>> List(std::string_view prefix) override;
  absl::Status Delete(std::string_view key) override;
  absl::Status PutFile(std::string_view key, const std::string& local_path) override;
  absl::Status GetFile(std::string_view key, const std::string& local_path) override;

  const S3Config& config() const { return config_; }

  // The key in the bucket of a normalised tier key.
  std::string ObjectName(std::string_view key) const {
    return config_.prefix.empty() ? std::string(key) : StrCat(config_.prefix, "/", key);
  }

  // Sends `request`, retrying transient failures; a response with a 2xx
  // status (or one of request.also_accept), else the error.
  absl::StatusOr<Response> Send(const Request& request);

  absl::StatusOr<Head> HeadObject(const std::string& what, const std::string& key,
                                  const std::string& object);
  absl::StatusOr<RangeReply> GetRange(const std::string& key, const std::string& object,
                                      uint64_t offset, uint64_t length, const Sink& sink);
  // `content_hash`: stored with it as kHashHeader ("" for none).
  absl::Status PutObject(const std::string& key, const std::string& object, const Body& body,
                         const std::string& content_hash);
  // On a write-once tier: FailedPrecondition when `key` exists.
  absl::Status RefuseOverwrite(const std::string& key, const std::string& object);
  absl::StatusOr<std::string> InitiateUpload(const std::string& key, const std::string& object,
                                             const std::string& content_hash);
  absl::StatusOr<Part> UploadPart(const std::string& key, const std::string& object,
                                  const std::string& upload_id, int number, const Body& body);
  absl::Status CompleteUpload(const std::string& key, const std::string& object,
                              const std::string& upload_id, std::vector<Part> parts);
  void AbortUpload(const std::string& key, const std::string& object, const std::string& upload_id);
  absl::Status CreateBucket();

 private:
  struct Attempt {
    CURLcode code = CURLE_OK;
    std::string curl_error;
    Response response;
    absl::Status local;
  };

  Attempt Perform(CURL* handle, const Request& request, const std::atomic<bool>* cancel) const;
  std::shared_ptr<const std::atomic<bool>> CancelFlag() {
    std::lock_guard<std::mutex> lock(mutex_);
    return cancel_;
  }
  void NotifyRetry(const absl::Status& failure, int attempt, std::chrono::milliseconds wait) {
    std::function<void(const RetryNotice&)> on_retry;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      on_retry = on_retry_;
    }
    if (on_retry) on_retry({config_.tier, std::string(failure.message()), attempt, wait});
  }
  // Waits `wait`, or less when the run is cancelled meanwhile; false then.
  bool Sleep(std::chrono::milliseconds wait, const std::atomic<bool>* cancel) const {
    const auto until = std::chrono::steady_clock::now() + wait;
    while (std::chrono::steady_clock::now() < until) {
      if (cancel != nullptr && cancel->load()) return false;
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
          std::chrono::milliseconds(50), until - std::chrono::steady_clock::now()));
    }
    return cancel == nullptr || !cancel->load();
  }
  absl::Status Failure(const Request& request, const Attempt& attempt, int attempts) const;
  absl::Status Error(const Request& request, absl::StatusCode code, std::string_view detail) const {
    return absl::Status(code, StrCat("tier ", config_.tier, ": cannot ", request.what, " '",
                                     request.key, "' (s3://", config_.bucket, "/", request.object,
                                     " at ", config_.endpoint, "): ", detail));
  }
  std::chrono::milliseconds Backoff(int attempt) const;

  CURL* AcquireHandle() {
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
  // Keeps the handle, and with it its open connection, for the next request.
  void ReleaseHandle(CURL* handle) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (idle_.size() < static_cast<size_t>(2 * config_.parallel)) {
      idle_.push_back(handle);
      return;
    }
    curl_.easy_cleanup(handle);
  }

  const CurlLibrary& curl_;  // loaded once, never unloaded
  const S3Config config_;
  const std::string scheme_;
  const std::string authority_;  // host[:port] of the endpoint
  const SigV4Credentials credentials_;
  std::mutex mutex_;
  std::vector<CURL*> idle_ ABSL_GUARDED_BY(mutex_);
  std::function<void(const RetryNotice&)> on_retry_ ABSL_GUARDED_BY(mutex_);
  std::shared_ptr<const std::atomic<bool>> cancel_ ABSL_GUARDED_BY(mutex_);
};

// Streams an object (or a range) in chunks of one part, one ranged GET
// each: memory stays at one chunk whatever the object's size.
class S3Reader final : public ObjectReader {
 public:
  S3Reader(S3Adapter* adapter, std::string key, std::string object, uint64_t offset,
           std::optional<uint64_t> length)
      : adapter_(adapter),
        key_(std::move(key)),
        object_(std::move(object)),
        next_(offset),
        left_(length) {}

  // Fetches the next chunk; at the end, leaves it empty.
  absl::Status Fill() {
    chunk_.clear();
    used_ = 0;
    uint64_t want = adapter_->config().part_size;
    if (left_) want = std::min(want, *left_);
    if (want == 0) {
      done_ = true;
      return absl::OkStatus();
    }
    Sink sink = [this](uint64_t position, std::string_view data) {
      chunk_.resize(static_cast<size_t>(position));  // a retry starts again at 0
      chunk_.append(data);
      return absl::OkStatus();
    };
    TF_ASSIGN_OR_RETURN(RangeReply reply, adapter_->GetRange(key_, object_, next_, want, sink));
    if (reply.beyond_end) {
      chunk_.clear();
      done_ = true;
      return absl::OkStatus();
    }
    if (!etag_.empty() && reply.etag != etag_) {
      return absl::AbortedError(StrCat("tier ", adapter_->config().tier, ": '", key_,
                                       "' was replaced while it was read; read it again"));
    }
    etag_ = reply.etag;
    next_ += chunk_.size();
    if (left_) *left_ -= chunk_.size();
    if (chunk_.size() < want || next_ >= reply.total) done_ = true;
    return absl::OkStatus();
  }

  absl::StatusOr<size_t> Read(std::span<char> buffer) override {
    if (buffer.empty()) return 0;
    if (used_ == chunk_.size()) {
      if (done_) return 0;
      TF_RETURN_IF_ERROR(Fill());
      if (chunk_.empty()) return 0;
    }
    const size_t n = std::min(buffer.size(), chunk_.size() - used_);
    std::memcpy(buffer.data(), chunk_.data() + used_, n);
    used_ += n;
    return n;
  }

 private:
  S3Adapter* adapter_;
  std::string key_;
  std::string object_;
  uint64_t next_;                 // where the next chunk starts
  std::optional<uint64_t> left_;  // bytes of the range not yet fetched
  std::string chunk_;
  size_t used_ = 0;
  bool done_ = false;
  std::string etag_;  // of the first chunk: all must come from one object
};

// Buffers one part; when it fills, starts a multipart upload (once) and
// sends the part from a thread of its own, so that up to `parallel` parts
// (the one being filled included) are in memory at once. Commit sends a
// small object in one PUT, or completes the upload; any failure, and a
// writer destroyed before Commit, aborts the upload. The object's content
// hash goes with it as metadata: a small object's is computed from its
// bytes; a multipart upload's must be known when it starts, from the hash
// source (SetContentHashSource), and is checked against the bytes written
// before the upload completes. Without a source, a large object is stored
// without one (readers then check it only as part of its artifact).
class S3Writer final : public ObjectWriter {
 public:
  S3Writer(S3Adapter* adapter, std::string key, std::string object)
      : adapter_(adapter), key_(std::move(key)), object_(std::move(object)) {}

  ~S3Writer() override {
    JoinAll();
    if (!finished_ && !upload_id_.empty()) adapter_->AbortUpload(key_, object_, upload_id_);
  }

  void SetContentHashSource(std::function<absl::StatusOr<std::string>()> source) override {
    hash_source_ = std::move(source);
  }

  absl::Status Write(std::string_view data) override {
    if (finished_) return Finished();
    TF_RETURN_IF_ERROR(Failure());
    hasher_.Update(data);
    const uint64_t part_size = adapter_->config().part_size;
    while (!data.empty()) {
      const size_t n =
          static_cast<size_t>(std::min<uint64_t>(data.size(), part_size - buffer_.size()));
      if (buffer_.size() + n > buffer_.capacity()) {
        // Grow as usual, but never past one part.
        buffer_.reserve(static_cast<size_t>(std::min<uint64_t>(
            part_size, std::max<uint64_t>(2 * buffer_.capacity(), buffer_.size() + n))));
      }
      buffer_.append(data.substr(0, n));
      data.remove_prefix(n);
      if (buffer_.size() < part_size) continue;
      if (absl::Status status = SendPart(); !status.ok()) {
        Fail(status);
        return status;
      }
    }
    return absl::OkStatus();
  }

  absl::Status Commit() override {
    if (finished_) return Finished();
    absl::Status status = Failure();
    if (status.ok()) status = CommitParts();
    JoinAll();
    if (!status.ok() && !upload_id_.empty()) adapter_->AbortUpload(key_, object_, upload_id_);
    finished_ = true;
    buffer_ = std::string();
    return status;
  }

 private:
  absl::Status CommitParts() {
    const std::string written = hasher_.Finish();
    if (upload_id_.empty()) {
      return adapter_->PutObject(key_, object_, MemoryBody(buffer_), written);
    }
    if (!buffer_.empty()) TF_RETURN_IF_ERROR(SendPart());
    JoinAll();
    TF_RETURN_IF_ERROR(Failure());
    if (!declared_hash_.empty() && declared_hash_ != written) {
      return absl::DataLossError(StrCat("tier ", adapter_->config().tier, ": '", key_,
                                        "' was declared with content hash ", declared_hash_,
                                        " but the bytes written hash to ", written,
                                        " (its source changed while it was copied)"));
    }
    std::vector<Part> parts;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      parts = parts_;
    }
    return adapter_->CompleteUpload(key_, object_, upload_id_, std::move(parts));
  }

  absl::Status SendPart() {
    if (upload_id_.empty()) {
      if (hash_source_) {
        absl::StatusOr<std::string> hash = hash_source_();
        // Without it the object is still checked, as part of its artifact.
        if (hash.ok()) declared_hash_ = *hash;
      }
      TF_ASSIGN_OR_RETURN(upload_id_, adapter_->InitiateUpload(key_, object_, declared_hash_));
    }
    if (static_cast<uint64_t>(next_part_) > kMaxParts) {
      return absl::ResourceExhaustedError(
          StrCat("tier ", adapter_->config().tier, ": '", key_, "' is larger than ", kMaxParts,
                 " parts of ", adapter_->config().part_size, " bytes; raise the part size"));
    }
    in_flight_.emplace_back([this, number = next_part_++, part = std::move(buffer_)] {
      absl::StatusOr<Part> sent =
          adapter_->UploadPart(key_, object_, upload_id_, number, MemoryBody(part));
      if (!sent.ok()) return Fail(sent.status());
      std::lock_guard<std::mutex> lock(mutex_);
      parts_.push_back(*std::move(sent));
    });
    buffer_ = std::string();
    while (in_flight_.size() >= static_cast<size_t>(adapter_->config().parallel)) {
      in_flight_.front().join();
      in_flight_.pop_front();
    }
    return Failure();
  }

  void JoinAll() {
    for (std::thread& thread : in_flight_) thread.join();
    in_flight_.clear();
  }

  absl::Status Failure() {
    std::lock_guard<std::mutex> lock(mutex_);
    return failure_;
  }
  // Remembers the first failure: every later call reports it.
  void Fail(const absl::Status& status) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (failure_.ok()) failure_ = status;
  }

  absl::Status Finished() const {
    return absl::FailedPreconditionError(StrCat(
        "tier ", adapter_->config().tier, ": the writer of '", key_, "' has already committed"));
  }

  S3Adapter* adapter_;
  const std::string key_;
  const std::string object_;
  std::string buffer_;     // the part being filled
  std::string upload_id_;  // once the first part is full
  ContentHasher hasher_;   // of every byte written
  std::function<absl::StatusOr<std::string>()> hash_source_;
  std::string declared_hash_;  // the multipart upload's metadata
  int next_part_ = 1;
  std::deque<std::thread> in_flight_;
  bool finished_ = false;
  std::mutex mutex_;
  std::vector<Part> parts_ ABSL_GUARDED_BY(mutex_);
  absl::Status failure_ ABSL_GUARDED_BY(mutex_);
};

// ---------------------------------------------------------------------------
// Sending.

S3Adapter::Attempt S3Adapter::Perform(CURL* handle, const Request& request,
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

std::chrono::milliseconds S3Adapter::Backoff(int attempt) const {
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

absl::StatusOr<Response> S3Adapter::Send(const Request& request) {
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

absl::Status S3Adapter::Failure(const Request& request, const Attempt& attempt,
                                int attempts) const {
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

absl::StatusOr<Head> S3Adapter::HeadObject(const std::string& what, const std::string& key,
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

absl::StatusOr<RangeReply> S3Adapter::GetRange(const std::string& key, const std::string& object,
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

absl::Status S3Adapter::RefuseOverwrite(const std::string& key, const std::string& object) {
  if (!config_.write_once) return absl::OkStatus();
  absl::StatusOr<Head> head = HeadObject("write", key, object);
  if (absl::IsNotFound(head.status())) return absl::OkStatus();
  if (!head.ok()) return head.status();
  return absl::FailedPreconditionError(StrCat("tier ", config_.tier,
                                              " is an archive (write-once): '", key,
                                              "' exists and cannot be replaced"));
}

absl::Status S3Adapter::PutObject(const std::string& key, const std::string& object,
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

absl::StatusOr<std::string> S3Adapter::InitiateUpload(const std::string& key,
                                                      const std::string& object,
                                                      const std::string& content_hash) {
  Request request{"write", key, "POST", object, {{"uploads", ""}}};
  if (!content_hash.empty()) request.headers.emplace_back(kHashHeader, content_hash);
  TF_ASSIGN_OR_RETURN(Response response, Send(request));
  std::optional<std::string> id = XmlText(response.body, "UploadId");
  if (!id || id->empty()) {
    return Error(request, absl::StatusCode::kInternal,
                 "the reply to starting a multipart upload has no UploadId");
  }
  return *id;
}

absl::StatusOr<Part> S3Adapter::UploadPart(const std::string& key, const std::string& object,
                                           const std::string& upload_id, int number,
                                           const Body& body) {
  Request request{"write",
                  key,
                  "PUT",
                  object,
                  {{"partNumber", std::to_string(number)}, {"uploadId", upload_id}}};
  request.what = StrCat("write part ", number, " of");
  request.body = body;
  TF_ASSIGN_OR_RETURN(Response response, Send(request));
  Part part{number, BareEtag(response.Header("etag")),
            body.md5_while_sending ? response.sent_md5 : body.md5};
  if (part.md5.empty()) {
    return Error(request, absl::StatusCode::kDataLoss,
                 "the part was not sent whole in order, so its MD5 is unknown");
  }
  if (EtagIsMd5(response) && part.etag != HexEncode(part.md5)) {
    return Error(request, absl::StatusCode::kDataLoss,
                 StrCat("the server stored something else: its ETag ", part.etag,
                        " is not the MD5 of what was sent, ", HexEncode(part.md5)));
  }
  return part;
}

absl::Status S3Adapter::CompleteUpload(const std::string& key, const std::string& object,
                                       const std::string& upload_id, std::vector<Part> parts) {
  std::sort(parts.begin(), parts.end(),
            [](const Part& a, const Part& b) { return a.number < b.number; });
  std::string xml = "<CompleteMultipartUpload>";
  Digest md5s(Digest::Kind::kMd5);
  for (const Part& part : parts) {
    xml += StrCat("<Part><PartNumber>", part.number, "</PartNumber><ETag>&quot;",
                  XmlEscape(part.etag), "&quot;</ETag></Part>");
    md5s.Update(part.md5);
  }
  xml += "</CompleteMultipartUpload>";
  // S3's ETag of a multipart object: the MD5 of the parts' MD5s, "-", count.
  const std::string expected = StrCat(HexEncode(md5s.Finish()), "-", parts.size());
  TF_RETURN_IF_ERROR(RefuseOverwrite(key, object));

  Request request{"write", key, "POST", object, {{"uploadId", upload_id}}};
  request.headers = {{"content-type", "application/xml"}};
  request.body = MemoryBody(xml);
  absl::StatusOr<Response> response;
  const auto started = std::chrono::steady_clock::now();
  for (int attempt = 1;; ++attempt) {
    response = Send(request);
    if (absl::IsNotFound(response.status())) {
      // An earlier attempt may have completed it and lost the reply: the
      // object is ours if it carries the ETag of these parts.
      absl::StatusOr<Head> head = HeadObject("write", key, object);
      if (head.ok() && head->etag == expected) return absl::OkStatus();
    }
    if (!response.ok()) return response.status();
    // Completing can fail after the 200 has been sent: the error is the body.
    if (response->body.find("<Error>") == std::string::npos) break;
    const std::string code = XmlText(response->body, "Code").value_or("");
    Attempt failed;
    failed.response = *response;
    failed.response.status = 400;
    if (code == "InternalError" || code == "SlowDown" || code == "ServiceUnavailable") {
      failed.response.status = 503;
      const std::chrono::milliseconds wait = Backoff(attempt - 1);
      if (std::chrono::steady_clock::now() - started + wait <= config_.timing.budget) {
        NotifyRetry(Failure(request, failed, attempt), attempt, wait);
        const std::shared_ptr<const std::atomic<bool>> cancel = CancelFlag();
        if (!Sleep(wait, cancel.get())) {
          return Error(request, absl::StatusCode::kCancelled, "the transfer was cancelled");
        }
        continue;
      }
    }
    if (code == "EntityTooLarge" || code == "QuotaExceeded") failed.response.status = 507;
    return Failure(request, failed, attempt);
  }
  const std::string etag = BareEtag(XmlText(response->body, "ETag").value_or(""));
  if (etag.find('-') != std::string::npos && etag != expected) {
    return Error(request, absl::StatusCode::kDataLoss,
                 StrCat("the server assembled something else: its ETag ", etag,
                        " is not the one of the parts sent, ", expected));
  }
  return absl::OkStatus();
}

void S3Adapter::AbortUpload(const std::string& key, const std::string& object,
                            const std::string& upload_id) {
  Request request{"abort the upload of", key, "DELETE", object, {{"uploadId", upload_id}}};
  (void)Send(request);  // best effort: the server expires abandoned uploads too
}

absl::Status S3Adapter::CreateBucket() {
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

absl::Status S3Adapter::CheckReachable() {
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

absl::StatusOr<int> S3Adapter::AbortUnfinishedUploads(std::string_view prefix) {
  TF_ASSIGN_OR_RETURN(std::string normal, NormalizeArtifactKey(prefix));
  std::string object = ObjectName(normal);
  if (!prefix.empty() && prefix.back() == '/') object += "/";
  Request request{"list the unfinished uploads under", std::string(prefix), "GET", ""};
  std::vector<std::pair<std::string, std::string>> uploads;  // object, upload id
  std::string key_marker, id_marker;
  for (;;) {
    request.query = {{"uploads", ""}, {"prefix", object}};
    if (!key_marker.empty()) request.query.emplace_back("key-marker", key_marker);
    if (!id_marker.empty()) request.query.emplace_back("upload-id-marker", id_marker);
    TF_ASSIGN_OR_RETURN(Response response, Send(request));
    for (std::string_view upload : XmlElements(response.body, "Upload")) {
      std::string name = XmlText(upload, "Key").value_or("");
      std::string id = XmlText(upload, "UploadId").value_or("");
      if (name.compare(0, object.size(), object) == 0 && !id.empty()) {
        uploads.emplace_back(std::move(name), std::move(id));
      }
    }
    if (XmlText(response.body, "IsTruncated").value_or("false") != "true") break;
    std::string next_key = XmlText(response.body, "NextKeyMarker").value_or("");
    std::string next_id = XmlText(response.body, "NextUploadIdMarker").value_or("");
    if (next_key.empty() || (next_key == key_marker && next_id == id_marker)) break;
    key_marker = std::move(next_key);
    id_marker = std::move(next_id);
  }
  const std::string root = config_.prefix.empty() ? "" : StrCat(config_.prefix, "/");
  int aborted = 0;
  for (const auto& [name, id] : uploads) {
    Request abort{"abort the unfinished upload of",
                  name.substr(root.size()),
                  "DELETE",
                  name,
                  {{"uploadId", id}}};
    abort.also_accept = {404};  // gone meanwhile
    TF_ASSIGN_OR_RETURN(Response response, Send(abort));
    if (response.status != 404) ++aborted;
  }
  return aborted;
}

// ---------------------------------------------------------------------------
// The Adapter interface.

absl::StatusOr<std::unique_ptr<ObjectWriter>> S3Adapter::OpenWrite(std::string_view key) {
  TF_ASSIGN_OR_RETURN(std::string normal, NormalizeArtifactKey(key));
  std::string object = ObjectName(normal);
  TF_RETURN_IF_ERROR(RefuseOverwrite(normal, object));
  return std::unique_ptr<ObjectWriter>(new S3Writer(this, std::move(normal), std::move(object)));
}

absl::StatusOr<std::unique_ptr<ObjectReader>> S3Adapter::OpenRead(std::string_view key,
                                                                  uint64_t offset,
                                                                  std::optional<uint64_t> length) {
  TF_ASSIGN_OR_RETURN(std::string normal, NormalizeArtifactKey(key));
  std::string object = ObjectName(normal);
  // The first chunk now, so that a missing object is an error here (an
  // empty range fetches nothing: ask whether the object is there).
  if (length == 0) TF_RETURN_IF_ERROR(HeadObject("read", normal, object).status());
  auto reader =
      std::make_unique<S3Reader>(this, std::move(normal), std::move(object), offset, length);
  TF_RETURN_IF_ERROR(reader->Fill());
  return std::unique_ptr<ObjectReader>(std::move(reader));
}

absl::StatusOr<ObjectInfo> S3Adapter::Stat(std::string_view key) {
  TF_ASSIGN_OR_RETURN(std::string normal, NormalizeArtifactKey(key));
  TF_ASSIGN_OR_RETURN(Head head, HeadObject("stat", normal, ObjectName(normal)));
  return ObjectInfo{normal, head.bytes, head.modified_ms, head.content_hash};
}

absl::StatusOr<std::vector<ObjectInfo>> S3Adapter::List(std::string_view prefix) {
  const std::string root = config_.prefix.empty() ? "" : StrCat(config_.prefix, "/");
  Request request{"list", std::string(prefix), "GET", ""};
  std::vector<ObjectInfo> objects;
  std::string token;
  for (;;) {
    request.query = {{"list-type", "2"}, {"prefix", StrCat(root, prefix)}};
    if (!token.empty()) request.query.emplace_back("continuation-token", token);
    TF_ASSIGN_OR_RETURN(Response response, Send(request));
    for (std::string_view contents : XmlElements(response.body, "Contents")) {
      const std::string name = XmlText(contents, "Key").value_or("");
      if (name.size() <= root.size() || name.compare(0, root.size(), root) != 0) continue;
      std::string key = name.substr(root.size());
      // Objects other tools stored under names no tier key can have (a
      // "..", a double slash) cannot be addressed here: not listed.
      absl::StatusOr<std::string> normal = NormalizeArtifactKey(key);
      if (!normal.ok() || *normal != key) continue;
      ObjectInfo info{std::move(key), 0, 0};
      info.bytes = std::strtoull(XmlText(contents, "Size").value_or("0").c_str(), nullptr, 10);
      info.modified_ms = ParseTimeMs(XmlText(contents, "LastModified").value_or(""), true);
      objects.push_back(std::move(info));
    }
    if (XmlText(response.body, "IsTruncated").value_or("false") != "true") break;
    std::string next = XmlText(response.body, "NextContinuationToken").value_or("");
    if (next.empty() || next == token) {
      return Error(request, absl::StatusCode::kInternal,
                   "the listing is truncated but names no next page");
    }
    token = std::move(next);
  }
  std::sort(objects.begin(), objects.end(),
            [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
  return objects;
}

absl::Status S3Adapter::Delete(std::string_view key) {
  TF_ASSIGN_OR_RETURN(std::string normal, NormalizeArtifactKey(key));
  const std::string object = ObjectName(normal);
  if (config_.write_once) {
    return absl::FailedPreconditionError(StrCat(
        "tier ", config_.tier, " is an archive (write-once): '", normal, "' cannot be deleted"));
  }
  // S3 deletes missing keys without complaint; the interface says NotFound.
  TF_RETURN_IF_ERROR(HeadObject("delete", normal, object).status());
  Request request{"delete", normal, "DELETE", object};
  return Send(request).status();
}

absl::Status S3Adapter::PutFile(std::string_view key, const std::string& local_path) {
  TF_ASSIGN_OR_RETURN(std::string normal, NormalizeArtifactKey(key));
  const std::string object = ObjectName(normal);
  TF_RETURN_IF_ERROR(RefuseOverwrite(normal, object));
  File file(open(local_path.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat info {};
  if (file.get() < 0 || fstat(file.get(), &info) != 0) {
    return absl::NotFoundError(StrCat("cannot read ", local_path, ": ", ErrnoText(errno)));
  }
  if (!S_ISREG(info.st_mode)) {
    return absl::InvalidArgumentError(StrCat(local_path, " is not a file"));
  }
  const uint64_t size = static_cast<uint64_t>(info.st_size);
  std::string content_hash;
  if (size <= config_.part_size) {
    TF_ASSIGN_OR_RETURN(Body body, FileBody(file.get(), 0, size, &content_hash));
    return PutObject(normal, object, body, content_hash);
  }
  // A multipart upload's metadata is set when it starts: the whole file is
  // hashed first (one more read of it, from the page cache at best).
  TF_ASSIGN_OR_RETURN(content_hash, HashFileRange(file.get(), size));

  // One part per stream, of at least part_size and at most 1 GiB (a
  // retry sends a part again): every part costs a request and, on the
  // server, an object of its own (with Swift, 8 MiB parts made a 256 MiB
  // upload 20% slower than 64 MiB ones, bench/README.md); never more than
  // S3's 10000 parts.
  const uint64_t streams = static_cast<uint64_t>(std::max(config_.parallel, 1));
  uint64_t part_size = std::max(config_.part_size, (size + streams - 1) / streams);
  part_size = std::min<uint64_t>(part_size, kMaxAutoPartSize);
  part_size = std::max(part_size, (size + kMaxParts - 1) / kMaxParts);
  part_size = std::min<uint64_t>((part_size + kMiB - 1) / kMiB * kMiB, kMaxPartSize);
  const uint64_t count = (size + part_size - 1) / part_size;
  TF_ASSIGN_OR_RETURN(std::string upload_id, InitiateUpload(normal, object, content_hash));
  std::vector<Part> parts(count);
  absl::Status status = RunParallel(count, config_.parallel, [&](uint64_t index) {
    const uint64_t offset = index * part_size;
    const Body body = FilePartBody(file.get(), offset, std::min(part_size, size - offset));
    TF_ASSIGN_OR_RETURN(parts[index],
                        UploadPart(normal, object, upload_id, static_cast<int>(index + 1), body));
    return absl::OkStatus();
  });
  if (status.ok()) status = CompleteUpload(normal, object, upload_id, std::move(parts));
  if (!status.ok()) AbortUpload(normal, object, upload_id);
  return status;
}

absl::Status S3Adapter::GetFile(std::string_view key, const std::string& local_path) {
  TF_ASSIGN_OR_RETURN(std::string normal, NormalizeArtifactKey(key));
  const std::string object = ObjectName(normal);
  TF_ASSIGN_OR_RETURN(Head head, HeadObject("read", normal, object));

  std::error_code ignored;
  std::filesystem::create_directories(std::filesystem::path(local_path).parent_path(), ignored);
  const std::string temp = StrCat(local_path, kTempMarker, RandomHex());
  File out(open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (out.get() < 0) {
    return absl::PermissionDeniedError(StrCat("cannot write ", temp, ": ", ErrnoText(errno)));
  }
  const uint64_t step = config_.part_size;
  const uint64_t count = (head.bytes + step - 1) / step;
  absl::Status status = RunParallel(count, config_.parallel, [&](uint64_t index) {
    const uint64_t offset = index * step;
    const uint64_t length = std::min(step, head.bytes - offset);
    Sink sink = [&](uint64_t position, std::string_view data) -> absl::Status {
      while (!data.empty()) {
        const ssize_t n =
            pwrite(out.get(), data.data(), data.size(), static_cast<off_t>(offset + position));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          const absl::StatusCode code = errno == ENOSPC || errno == EDQUOT
                                            ? absl::StatusCode::kResourceExhausted
                                            : absl::StatusCode::kInternal;
          return absl::Status(code, StrCat("cannot write ", temp, ": ", ErrnoText(errno)));
        }
        data.remove_prefix(static_cast<size_t>(n));
        position += static_cast<uint64_t>(n);
      }
      return absl::OkStatus();
    };
    TF_ASSIGN_OR_RETURN(RangeReply reply, GetRange(normal, object, offset, length, sink));
    if (reply.beyond_end || reply.bytes != length || reply.etag != head.etag) {
      return absl::AbortedError(StrCat("tier ", config_.tier, ": '", normal,
                                       "' changed while it was downloaded; try again"));
    }
    return absl::OkStatus();
  });
  if (status.ok() && rename(temp.c_str(), local_path.c_str()) != 0) {
    status = absl::InternalError(
        StrCat("cannot rename ", temp, " to ", local_path, ": ", ErrnoText(errno)));
  }
  if (!status.ok()) unlink(temp.c_str());
  return status;
}

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

absl::StatusOr<std::unique_ptr<S3Adapter>> MakeAdapter(S3Config config) {
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
  return std::make_unique<S3Adapter>(*curl, std::move(config), std::move(endpoint.first),
                                     std::move(endpoint.second));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Adapter>> MakeS3Adapter(S3Config config) {
  TF_ASSIGN_OR_RETURN(std::unique_ptr<S3Adapter> adapter, MakeAdapter(std::move(config)));
  return std::unique_ptr<Adapter>(std::move(adapter));
}

absl::Status CreateS3Bucket(const S3Config& config) {
  TF_ASSIGN_OR_RETURN(std::unique_ptr<S3Adapter> adapter, MakeAdapter(config));
  return adapter->CreateBucket();
}

}  // namespace tierflow::storage
