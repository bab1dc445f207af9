#include "scheduler/remote_tiers.h"

#include "common/metrics.h"
#include "common/strings.h"
#include "common/units.h"
#include "storage_adapters/remote_store.h"

namespace tierflow::scheduler::internal {

absl::Status WatchRemoteTiers(const RunModel& run, TierEvents& events,
                              std::shared_ptr<std::atomic<bool>> cancelled,
                              std::atomic<bool>& retried, std::function<void()> wake) {
  for (const Tier& tier : run.tiers) {
    storage::RemoteStore* remote = tier.adapter->remote();
    if (remote == nullptr) continue;
    remote->Watch(
        [&events, &retried, wake](const storage::RetryNotice& notice) {
          metrics::Engine().RecordStorageRetry(notice.tier);
          retried = true;
          events.Add("transfer_retry", StrCat("tier ", notice.tier, ": attempt ", notice.attempt,
                                              " failed, trying again in ",
                                              FormatDuration(notice.wait), ": ", notice.error));
          wake();
        },
        cancelled);
    if (absl::Status reachable = remote->CheckReachable(); !reachable.ok()) {
      return absl::Status(reachable.code(),
                          StrCat(reachable.message(), "\nnothing was started: the run needs tier ",
                                 tier.config.name));
    }
  }
  return absl::OkStatus();
}

void SweepUploads(const RunModel& run, TierEvents& events, std::string_view when) {
  for (const Tier& tier : run.tiers) {
    storage::RemoteStore* remote = tier.adapter->remote();
    if (remote == nullptr) continue;
    absl::StatusOr<int> aborted = remote->AbortUnfinishedUploads(StrCat("runs/", run.run_id, "/"));
    if (!aborted.ok()) {
      events.Add(
          "uploads_sweep_failed",
          StrCat("tier ", tier.config.name,
                 ": cannot look for unfinished uploads of this run: ", aborted.status().message()));
    } else if (*aborted > 0) {
      events.Add("uploads_aborted", StrCat("tier ", tier.config.name, ": aborted ", *aborted,
                                           " unfinished multipart upload", *aborted == 1 ? "" : "s",
                                           " of this run, ", when));
    }
  }
}

}  // namespace tierflow::scheduler::internal
