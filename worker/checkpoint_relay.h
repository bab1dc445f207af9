// Checkpoints on a cluster worker's node tier (DESIGN.md: "RAM/NVMe first,
// flushed async to durable"). A checkpointing task's lease names the node
// tier to write on (TaskLaunch::checkpoint_relay). The worker points
// TIERFLOW_CHECKPOINT_DIR at NODE_ROOT/key, and while the task runs copies
// each checkpoint it commits (its folder, then its marker) to the cluster
// folder the scheduler watches (TaskLaunch::checkpoint_dir), which flushes
// it on to a durable tier. The task never waits for either copy.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/task.h"

namespace tierflow::worker {

class CheckpointRelays {
 public:
  // `tiers`: this worker's node tiers, name -> path.
  explicit CheckpointRelays(std::map<std::string, std::string> tiers);
  // Stops looking; relays still running end without a last look.
  ~CheckpointRelays();
  CheckpointRelays(const CheckpointRelays&) = delete;
  CheckpointRelays& operator=(const CheckpointRelays&) = delete;

  // Before `launch` runs: when it has a checkpoint_relay on a node tier of
  // this worker, creates its folder there, puts the newest committed
  // checkpoint of the cluster folder in it when it is not there (a retry
  // resumes from it; the copy is added to `report`'s node_copies), points
  // the task's TIERFLOW_CHECKPOINT_DIR at it and starts relaying. Sets
  // report.checkpoint_node_dir, or report.checkpoint_node_error when the
  // task is to write in the cluster folder instead (the tier is not on
  // this worker, the folder cannot be made).
  void Start(TaskLaunch& launch, TaskReport& report);

  // `attempt_id` ended: relays what it committed since the last look, then
  // removes its node folder. Returns when that is done, so the scheduler
  // hears of the end only once every committed checkpoint is in its folder.
  void Ended(int64_t attempt_id);

  // Looks every `interval` (200 ms by default) for new commits.
  void SetIntervalForTesting(std::chrono::milliseconds interval) { interval_ = interval; }

 private:
  struct Relay;
  void Loop();

  const std::map<std::string, std::string> tiers_;
  std::chrono::milliseconds interval_{200};
  std::mutex mu_;
  std::map<int64_t, std::shared_ptr<Relay>> relays_;  // by attempt (guarded by mu_)
  std::atomic<bool> stop_{false};
  std::thread loop_;  // started by the first Start
};

}  // namespace tierflow::worker
