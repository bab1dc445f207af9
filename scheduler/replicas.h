// Replicas: where the run's artifacts are, on which tiers, and the copies
// between tiers that the engine decides. After a task's output is complete
// it is copied to its home and to every tier where unfinished tasks read it
// (streamed to a tier whose reader streams it); a ready task runs once its
// inputs are on the tiers it reads them from; a working copy goes when its
// last reader there ends, a volatile home once every reader has ended; in
// cluster mode the workers' copies on node tiers are recorded, and deleted
// by their workers after the last reader there. Every decision is recorded
// (artifact_copies, events) in the engine's turn; the copies themselves run
// on the mover's threads once the turn is committed (MoveBook).
//
// Thread-safety: one per run, used only by the thread that runs the
// engine's turn (engine.h, "Threading"); a streamed copy's first-files
// notice arrives through `post`, which the caller makes thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/task.h"
#include "scheduler/internal/run_model.h"
#include "scheduler/mover.h"
#include "scheduler/placement.h"
#include "scheduler/run_writer.h"

namespace tierflow::scheduler::internal {

// The needs of task `t` (every producer task's artifact of every input, on
// the tier the input is read from), counted as consumers of those
// artifacts. PlaceRun collects them for every task; a dynamic stage's
// expansion for the tasks it adds and those that read them.
void CollectTaskNeeds(RunModel& run, uint32_t t);

// Opens the run's tiers and places its artifacts. `tiers` empty: the one
// implicit posix tier `local` at the store's folder, with no copies;
// else they are opened with `open_tier` (default: posix only) and placement
// decides each output's home and write tier and each input's working tier,
// before anything is recorded. Fills run.tiers, run.tiers_json and, on
// every task, its places, input tiers and needs.
absl::Status PlaceRun(RunModel& run, const std::vector<PlacementTier>& tiers,
                      const std::function<absl::StatusOr<std::unique_ptr<storage::Adapter>>(
                          const storage::TierConfig&)>& open_tier);

// Nothing of the run runs any more: its staging folders (leftovers of
// failed attempts) go from every posix tier, through the tier's root (a
// symlink planted beneath it is never followed). What could not be removed.
std::vector<std::string> RemoveStaging(const RunModel& run);

class Replicas {
 public:
  // A node-tier copy for a worker to delete (told after the commit).
  struct NodeEviction {
    std::string worker;
    std::string tier;
    std::string key;
  };

  // Everything here outlives the Replicas. `post` hands a move result to
  // the engine from a mover thread (a streamed copy's first files).
  Replicas(RunModel& run, RunWriter& writer, MoveBook& moves, TaskHooks& hooks,
           std::function<void(MoveResult)> post)
      : run_(run), writer_(writer), moves_(moves), hooks_(hooks), post_(std::move(post)) {}

  // Counts, per output and tier, the unfinished tasks that read it there.
  void CountReaders();
  // After `task` produced `output` (or on resume, kept it): copies to its
  // home and to every tier where unfinished tasks read it, then evicts what
  // nobody needs.
  absl::Status ScheduleMoves(uint32_t task, size_t output);
  // `task` produced a new artifact of `output` on its write tier: the old
  // copies are forgotten and this one recorded present.
  absl::Status OutputWritten(uint32_t task, size_t output);
  // Every input of `task` is on the tier it reads it from (a streamed one:
  // its first files); starts the copies that are missing.
  absl::StatusOr<bool> DataReady(uint32_t task);
  // `task` is ready but waits for copies of its inputs: true the first time.
  bool WaitForData(uint32_t task) { return data_waiters_.insert(task).second; }
  // The run is cancelled: nobody waits for copies any more.
  void ForgetDataWaiters() { data_waiters_.clear(); }
  // `task` ended: its needs are released, and copies nobody reads evicted.
  absl::Status ReleaseNeeds(uint32_t task);
  // A cached output kept only on an object store (`from`, `key`) copied
  // into staging on `task`'s write tier (`to_key`) before the reuse.
  void RestoreOutput(uint32_t task, size_t output, uint8_t from, const std::string& key,
                     const std::string& to_key, const std::string& hash);
  // Cluster mode: what a worker copied onto its node tiers for `task`
  // before it started, recorded as working copies.
  absl::Status RecordNodeCopies(uint32_t task, const TaskReport& report);
  // A streamed copy's first files are there: its readers may start.
  absl::Status StreamStarted(const Move& move);
  // A copy, eviction or output restore ended (its move taken from the book).
  absl::Status ApplyMove(int64_t id, const Move& move, const MoveResult& result);
  // Streamed copies stop waiting for readers (the run is ending).
  void StopStreams();

  // Write-backs to a home that failed: the run fails with them.
  const std::vector<std::string>& write_back_failures() const { return move_failures_; }
  // Evictions refused (a symlink, a mount): the run fails with them too.
  const std::vector<std::string>& unsafe_paths() const { return unsafe_paths_; }
  // Node-tier copies to delete, told to their workers after the commit.
  std::vector<NodeEviction>& evictions_on_workers() { return to_evict_on_workers_; }

 private:
  absl::Status StartCopy(uint32_t task, size_t output, uint8_t tier);
  MoveJob StreamCopy(int64_t copy_id, uint8_t source, uint8_t tier, const std::string& key,
                     bool clear_first, const std::string& expected_hash);
  absl::Status WakeDataWaiters();
  absl::Status MaybeEvict(uint32_t task, size_t output);
  absl::Status EvictNodeCopies(uint32_t task, size_t output, uint8_t tier);
  // Records a copy of the current artifact of `task`.`output` on `tier`,
  // at `uri` (default: where it is on that tier).
  absl::StatusOr<int64_t> InsertCopy(uint32_t task, size_t output, uint8_t tier,
                                     std::string_view state, std::optional<uint8_t> source,
                                     const std::string& uri = "");

  RunModel& run_;
  RunWriter& writer_;
  MoveBook& moves_;
  TaskHooks& hooks_;
  std::function<void(MoveResult)> post_;

  std::unordered_set<uint32_t> data_waiters_;  // ready tasks whose inputs are being copied
  std::vector<std::string> move_failures_;
  std::vector<std::string> unsafe_paths_;
  // Streamed copies under way, by copy id: told when their readers end.
  struct StreamControl {
    std::atomic<bool> readers_done{false};
  };
  std::unordered_map<int64_t, std::shared_ptr<StreamControl>> streams_;
  // Cluster mode: the workers' copies on node tiers, by (producer task,
  // output, node tier): which worker, and its artifact_copies row.
  std::map<std::tuple<uint32_t, uint8_t, uint8_t>, std::vector<std::pair<std::string, int64_t>>>
      node_copies_;
  std::vector<NodeEviction> to_evict_on_workers_;
};

}  // namespace tierflow::scheduler::internal
