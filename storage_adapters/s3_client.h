// The s3 adapter's client (s3.cc, s3_multipart.cc, s3_reader.cc use it):
// one bucket (or a prefix in it) at one endpoint, its requests signed and
// sent over pooled curl handles, transient failures retried with capped
// exponential backoff and jitter within S3Timing's budget, every attempt
// with a stall timeout and a deadline that grows with its size, and S3's
// replies turned into the error contract of adapter.h. Also the requests
// on single objects (HEAD, ranged GET, PUT) and on the bucket. An internal
// header. Thread-safe: any number of threads may send at once.
#pragma once

#include <curl/curl.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage_adapters/curl_library.h"
#include "storage_adapters/remote_store.h"
#include "storage_adapters/s3.h"
#include "storage_adapters/s3_request.h"
#include "storage_adapters/sigv4.h"

namespace tierflow::storage::s3_internal {

inline constexpr uint64_t kMiB = uint64_t{1} << 20;
inline constexpr uint64_t kMinPartSize = 5 * kMiB;           // S3's smallest part but the last
inline constexpr uint64_t kMaxPartSize = uint64_t{5} << 30;  // and its largest
inline constexpr uint64_t kMaxParts = 10000;
// Each object's own content hash, as HashArtifact gives it for a file.
inline constexpr std::string_view kHashHeader = "x-amz-meta-tierflow-hash";

struct Head {
  uint64_t bytes = 0;
  std::string etag;  // bare
  int64_t modified_ms = 0;
  std::string content_hash;  // kHashHeader, if it was stored
};

// What a ranged GET returned.
struct RangeReply {
  bool beyond_end = false;  // the range starts at or past the end (416)
  uint64_t bytes = 0;       // received
  uint64_t total = 0;       // the object's size
  std::string etag;         // bare
};

class S3Client {
 public:
  // One attempt of a request: what curl and the server said.
  struct Attempt {
    CURLcode code = CURLE_OK;
    std::string curl_error;
    Response response;
    absl::Status local;
  };

  // Checks `config` (endpoint, bucket, prefix, credentials, part size,
  // timing) and loads libcurl; InvalidArgument naming the tier when bad.
  static absl::StatusOr<std::unique_ptr<S3Client>> Make(S3Config config);

  S3Client(const CurlLibrary& curl, S3Config config, std::string scheme, std::string authority);
  ~S3Client();
  S3Client(const S3Client&) = delete;
  S3Client& operator=(const S3Client&) = delete;

  const S3Config& config() const { return config_; }

  // The key in the bucket of a normalised tier key.
  std::string ObjectName(std::string_view key) const;

  // RemoteStore::Watch: retry notices and the run's cancel flag.
  void Watch(std::function<void(const RetryNotice&)> on_retry,
             std::shared_ptr<const std::atomic<bool>> cancel);

  // Sends `request`, retrying transient failures; a response with a 2xx
  // status (or one of request.also_accept), else the error.
  absl::StatusOr<Response> Send(const Request& request);

  // The error of `request` after `attempts` attempts, as adapter.h's
  // contract words it (NotFound, PermissionDenied, ResourceExhausted,
  // Unavailable, ...), naming the tier, the key, the bucket and the endpoint.
  absl::Status Failure(const Request& request, const Attempt& attempt, int attempts) const;
  absl::Status Error(const Request& request, absl::StatusCode code, std::string_view detail) const;
  // The wait before retry `attempt` (from 0).
  std::chrono::milliseconds Backoff(int attempt) const;
  // Tells the watcher that `attempt` failed and the next comes after `wait`,
  // then waits; false (at once) when the run is cancelled meanwhile.
  bool RetryAfter(const absl::Status& failure, int attempt, std::chrono::milliseconds wait);

  absl::StatusOr<Head> HeadObject(const std::string& what, const std::string& key,
                                  const std::string& object);
  absl::StatusOr<RangeReply> GetRange(const std::string& key, const std::string& object,
                                      uint64_t offset, uint64_t length, const Sink& sink);
  // `content_hash`: stored with it as kHashHeader ("" for none).
  absl::Status PutObject(const std::string& key, const std::string& object, const Body& body,
                         const std::string& content_hash);
  // On a write-once tier: AlreadyExists when `key` exists.
  absl::Status RefuseOverwrite(const std::string& key, const std::string& object);
  absl::Status CreateBucket();
  absl::Status CheckReachable();

 private:
  Attempt Perform(CURL* handle, const Request& request, const std::atomic<bool>* cancel) const;
  std::shared_ptr<const std::atomic<bool>> CancelFlag();
  void NotifyRetry(const absl::Status& failure, int attempt, std::chrono::milliseconds wait);
  // Waits `wait`, or less when the run is cancelled meanwhile; false then.
  bool Sleep(std::chrono::milliseconds wait, const std::atomic<bool>* cancel) const;
  CURL* AcquireHandle();
  // Keeps the handle, and with it its open connection, for the next request.
  void ReleaseHandle(CURL* handle);

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

}  // namespace tierflow::storage::s3_internal
