// What a run's remote tiers (s3) tell it from other threads, and the
// run-level care they need: their retries (as they happen, on transfer
// threads) and their unfinished multipart uploads (swept when a run starts
// again and when it ends), kept as events until the engine's next turn
// records them. A remote tier must answer before a run starts: a run that
// cannot write its outputs back should not run its tasks first.
//
// Thread-safety: TierEvents is thread-safe; the functions are called on the
// engine's driving thread.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "scheduler/internal/run_model.h"

namespace tierflow::scheduler::internal {

class TierEvents {
 public:
  using Event = std::pair<std::string, std::string>;  // kind, message
  void Add(std::string kind, std::string message) {
    std::lock_guard lock(mu_);
    events_.emplace_back(std::move(kind), std::move(message));
  }
  std::vector<Event> Take() {
    std::lock_guard lock(mu_);
    return std::exchange(events_, {});
  }
  bool empty() const {
    std::lock_guard lock(mu_);
    return events_.empty();
  }

 private:
  mutable std::mutex mu_;
  std::vector<Event> events_;  // guarded by mu_
};

// Every remote tier of `run`: its retries become transfer_retry events (and
// set `retried`, then call `wake`, on the retrying thread), its transfers
// stop once `*cancelled` is set, and it must be reachable now (else the
// error says nothing was started).
absl::Status WatchRemoteTiers(const RunModel& run, TierEvents& events,
                              std::shared_ptr<std::atomic<bool>> cancelled,
                              std::atomic<bool>& retried, std::function<void()> wake);

// Aborts the unfinished multipart uploads of this run on its remote tiers
// (nothing writes there now); each sweep that found some, or failed, an
// event (`when` says why it swept).
void SweepUploads(const RunModel& run, TierEvents& events, std::string_view when);

}  // namespace tierflow::scheduler::internal
