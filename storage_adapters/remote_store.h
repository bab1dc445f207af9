// What a tier on a remote object store (s3) does besides the Adapter
// interface: tell its owner about retries, stop when its run stops, check
// that it can be reached before a run relies on it, and clean up the
// unfinished uploads a crash left. The scheduler reaches it through
// Adapter::remote() without depending on any particular store.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tierflow::storage {

// One failed attempt of a request that will be tried again.
struct RetryNotice {
  std::string tier;
  std::string error;                  // what failed: the request, the object, the store's error
  int attempt = 0;                    // the attempt that failed, from 1
  std::chrono::milliseconds wait{0};  // before the next one
};

class RemoteStore {
 public:
  virtual ~RemoteStore() = default;

  // The tier's name, for messages.
  virtual const std::string& tier_name() const = 0;

  // `on_retry` is called on the transfer's thread and must be quick. Once
  // `cancel` is set, transfers under way stop within about a tenth of a
  // second and new requests fail at once, Cancelled. Call before use.
  virtual void Watch(std::function<void(const RetryNotice&)> on_retry,
                     std::shared_ptr<const std::atomic<bool>> cancel) = 0;

  // Whether the store answers with the tier's credentials and has its
  // bucket (with retries); the error names the tier, the endpoint, the
  // bucket and the store's error.
  virtual absl::Status CheckReachable() = 0;

  // Aborts every unfinished multipart upload under `prefix` (a tier key,
  // like "runs/RUN/"): what a crashed or killed writer left. Only for a
  // prefix no writer is using now. The number aborted.
  virtual absl::StatusOr<int> AbortUnfinishedUploads(std::string_view prefix) = 0;
};

}  // namespace tierflow::storage
