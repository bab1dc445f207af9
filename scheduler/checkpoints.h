// Checkpoints: where tasks write them, and their flush to a durable tier
// while the task runs. A stage with `checkpoints:` writes them on the
// tier placement chose (PlaceCheckpoints, recorded with the run); each one the task
// commits (NAME.committed beside it) is seen by polling the watched tasks'
// folders in the engine's turns, recorded (checkpoints rows, events) and
// copied to the stage's durable tier by the mover; only the newest `keep`
// stay. A retry, or a resumed task, gets its latest flushed checkpoint put
// back first when its folder lost it.
//
// Thread-safety: one per run, used only by the thread that runs the
// engine's turn (engine.h, "Threading").
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/task.h"
#include "scheduler/internal/run_model.h"
#include "scheduler/run_writer.h"
#include "scheduler/sqlite.h"
#include "storage_adapters/local_artifact.h"

namespace tierflow::scheduler::internal {

// Where a run's checkpoints go (indexes into RunModel::tiers).
struct CheckpointTiers {
  uint8_t tier = kNoTier;       // written on; kNoTier: in the run's folder, never flushed
  uint8_t node_tier = kNoTier;  // cluster mode: written first on this node tier (CheckpointRelay)
  std::vector<uint8_t> flush;   // by stage: the durable tier, or kNoTier
};

// The tiers placement chose (RunModel::checkpoint_placement, from
// PlaceCheckpoints, which says why), as indexes into the run's tiers.
CheckpointTiers CheckpointTiersOf(const RunModel& run);

class Checkpoints {
 public:
  // Everything here outlives the Checkpoints.
  Checkpoints(Database& db, RunModel& run, RunWriter& writer, MoveBook& moves, TaskHooks& hooks)
      : db_(db), run_(run), writer_(writer), moves_(moves), hooks_(hooks) {}

  absl::Status SetUp();
  uint8_t tier() const { return tiers_.tier; }

  // The checkpoint folder (and relay) of `task`'s launch, for a stage with
  // checkpoints.
  void SetLaunchDir(uint32_t task, TaskLaunch& launch) const;
  // Before `task` starts: its checkpoints are watched for commits, and (a
  // retry, a resume) the latest one flushed is put back first when its
  // folder lost it (one more of `restores` to wait for).
  absl::Status Watch(uint32_t task, const TaskLaunch& launch, int& restores);
  // `task`'s attempt ended: what it committed just before is flushed too
  // (a failed attempt's latest checkpoint is where its retry starts).
  absl::Status AttemptEnded(uint32_t task);
  // Watched tasks' folders are polled in the turn, every kPollInterval on
  // the engine's clock.
  bool PollDue(SteadyTime now) const { return !watch_.empty() && next_poll_ <= now; }
  // Polling is under way (some task is watched); next_poll says when.
  bool polling() const { return !watch_.empty(); }
  SteadyTime next_poll() const { return next_poll_; }
  absl::Status Poll(const Clock& clock);
  // Cluster mode: where attempt `report` writes its checkpoints, an event.
  absl::Status RecordDir(uint32_t task, const TaskReport& report);
  // A flush, removal or restore ended (its move taken from the book).
  absl::Status ApplyMove(const Move& move, const MoveResult& result);

  // Resume: the flushes a stopped engine cut off are failed; those of
  // tasks kept are flushed again in the first turn (FlushCutOff), those of
  // tasks that run again when they start (Watch).
  absl::Status FailCutOffFlushes(const std::unordered_map<std::string, uint32_t>& by_id);
  absl::Status FlushCutOff();

 private:
  static constexpr std::chrono::milliseconds kPollInterval{200};
  std::string Key(uint32_t task) const;
  absl::Status PollTask(uint32_t task, std::set<std::string>& seen);
  // `attempt`: the attempt that committed it (default: the task's current one).
  absl::Status Flush(uint32_t task, const std::string& name, int64_t attempt = 0);
  absl::Status Keep(uint32_t task);

  Database& db_;
  RunModel& run_;
  RunWriter& writer_;
  MoveBook& moves_;
  TaskHooks& hooks_;
  CheckpointTiers tiers_;
  // Running tasks whose checkpoints are flushed: the names already seen.
  std::unordered_map<uint32_t, std::set<std::string>> watch_;
  SteadyTime next_poll_{};
  struct Unflushed {
    uint32_t task = 0;
    std::string name;
    int64_t attempt = 0;
  };
  std::vector<Unflushed> unflushed_;
  // Flushes under way, by checkpoints row: the content hash their job computes.
  std::unordered_map<int64_t, std::shared_ptr<storage::ContentDigest>> digests_;
};

}  // namespace tierflow::scheduler::internal
