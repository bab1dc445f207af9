// A cluster worker's node tiers (`tierflow worker --tier NAME=PATH`): its
// own fast storage, which the scheduler places working copies on
// (DESIGN.md "Core model": scope node). Before a task starts, the worker
// copies what the task reads there (TaskLaunch::stage_in) and points the
// task's inputs at those copies; a copy stays for the next task on this
// worker that reads it, until the scheduler evicts it. A worker records
// each folder it makes under PATH/runs/ (worker/worker_state.h) and
// deletes those when it connects, and when it stops: the scheduler knows
// of no copies on a worker that has just connected. What other workers
// (another cluster's, sharing the node tier's folder) keep there is never
// touched.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/task.h"

namespace tierflow::storage {
class Adapter;
}

namespace tierflow::worker {

// A folder a worker made on a node tier: ROOT/KEY, KEY an artifact key
// (a copy) or a checkpoint folder's.
struct NodeFolder {
  std::string root;
  std::string key;
};

// A posix adapter over the folder `root` (a node tier, or a cluster tier
// the worker reaches at that path).
absl::StatusOr<std::unique_ptr<storage::Adapter>> OpenRoot(const std::string& name,
                                                           const std::string& root);

class NodeTiers {
 public:
  explicit NodeTiers(std::map<std::string, std::string> tiers);  // name -> path
  // Waits for the streamed copies under way (their readers count as ended).
  ~NodeTiers();
  NodeTiers(const NodeTiers&) = delete;
  NodeTiers& operator=(const NodeTiers&) = delete;

  // Forgets every copy it knew of and deletes the folders given (what this
  // worker, or the one of its name before it, recorded making), with
  // their stream files and the folders above them that they leave empty,
  // up to ROOT/runs. Nothing else on the node tiers is touched.
  absl::Status Clear(const std::vector<NodeFolder>& recorded);

  // Makes `launch`'s stage-ins on this worker's node tiers (waiting for a
  // copy another task is making), then points each node input whose
  // copies are all there at them; the rest read in place. Returns what it
  // did, one report per stage-in, for the scheduler's lineage.
  // A streamed StageIn (stream set) returns once its first file is there
  // and goes on in the background, at most 8 files ahead of the task; the
  // task finds them through TIERFLOW_STREAM_<NAME>.
  std::vector<NodeCopyReport> Stage(TaskLaunch& launch);

  // A copy of `key` on `tier` made by someone else (an earlier job on this
  // node, worker/job_node_side.h): Stage uses it as is for that content.
  void Adopt(const std::string& tier, const std::string& key, const std::string& content_hash,
             uint64_t bytes);

  // The attempt ended: its streamed copies stop waiting for it.
  void Ended(int64_t attempt_id);

  // Deletes the copy of `key` on `tier` (evicted by the scheduler).
  void Evict(const std::string& tier, const std::string& key);

 private:
  struct Held {
    std::string content_hash;
    uint64_t bytes = 0;
  };
  NodeCopyReport StageOne(const StageIn& stage, int64_t attempt_id);

  const std::map<std::string, std::string> tiers_;
  std::mutex mu_;
  std::condition_variable copied_;
  std::map<std::string, Held> held_;  // "TIER/KEY" (guarded by mu_)
  std::set<std::string> copying_;     // "TIER/KEY" (guarded by mu_)
  std::set<std::string> streaming_;   // "TIER/KEY": streamed, first file there (guarded by mu_)
  // Streamed copies under way: their threads, and per attempt the flags
  // that tell them its reader ended (guarded by mu_).
  std::map<uint64_t, std::thread> streams_;
  std::vector<uint64_t> ended_streams_;  // theirs to join: they have done their work
  uint64_t next_stream_ = 0;
  std::map<int64_t, std::vector<std::shared_ptr<std::atomic<bool>>>> readers_;
};

}  // namespace tierflow::worker
