// Node tiers on the job side (`tierflow exec-task` on a Slurm node): what a
// cluster worker does with its `--tier NAME=PATH` (worker/node_tiers.h,
// worker/checkpoint_relay.h), for a job that has no tiers of its own. The
// launch carries the node tiers' configured roots
// (TaskLaunch::node_tier_roots); each is expanded on the node from the
// job's own environment ($TMPDIR, $SLURM_JOB_ID, $SLURMD_NODENAME or a
// site path; ExpandTierRoot), never by a shell.
//
// - A root that does not expand (a variable unset on the node) is a node
//   copy error naming the tier and the variable: the task reads that input
//   in place and writes its checkpoints in the cluster folder; the attempt
//   does not fail for it.
// - A copy stays on the node for later jobs there that read it (a
//   file under ROOT/.tierflow-copies records its content hash), until the
//   scheduler evicts it (EvictNodeCopy, run by an eviction job on that
//   node). Jobs of one node stage one at a time (a lock file in the root).
// - A job-scoped root ($SLURM_JOB_ID, $TMPDIR: JobScopedRoot) holds
//   nothing a later job can find: the job removes its copies when its
//   attempt ends.
//
// Thread-safety: Prepare, then Started from any thread, then Ended; not
// concurrently with each other.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/task.h"
#include "worker/checkpoint_relay.h"
#include "worker/node_tiers.h"

namespace tierflow::worker {

// A variable of the job's environment; nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
// The process's own environment (getenv).
std::optional<std::string> ProcessEnv(const std::string& name);

// `root` with each $NAME and ${NAME} replaced by its value from `lookup`.
// Errors name the tier and the variable: one unset or empty, a `$` not
// followed by a name, an unclosed `${`; also a result that is not an
// absolute path. Nothing else is interpreted (no `~`, globs, `$(...)`).
absl::StatusOr<std::string> ExpandTierRoot(const std::string& tier, const std::string& root,
                                           const EnvLookup& lookup);
// The root names the job's own folder ($SLURM_JOB_ID, $SLURM_JOBID,
// $TMPDIR): a later job does not see what this one put there.
bool JobScopedRoot(const std::string& root);

// Deletes exactly ROOT/KEY (file or folder), its stream files and copy
// record, and the folders above them that they leave empty, up to ROOT/runs.
// `key` must be an artifact key (no "..", not absolute); nothing outside
// `root` is touched (storage_adapters/tier_root.h). OK when nothing is
// there.
absl::Status EvictNodeCopy(const std::string& root, const std::string& key);

// An eviction job's list (`tierflow node-evict --list FILE`): one copy a
// line, "TIER<TAB>ROOT<TAB>KEY", ROOT as configured (expanded here, on
// the node). Evicts each (EvictNodeCopy); the first error, after trying
// them all, naming the tier and key.
std::string EvictionList(const std::vector<std::array<std::string, 3>>& copies);
absl::Status EvictNodeCopies(const std::string& list_path, const EnvLookup& lookup = ProcessEnv);

class JobNodeSide {
 public:
  // The launch's node tiers, their roots expanded from `lookup`.
  explicit JobNodeSide(const TaskLaunch& launch, const EnvLookup& lookup = ProcessEnv);
  JobNodeSide(const JobNodeSide&) = delete;
  JobNodeSide& operator=(const JobNodeSide&) = delete;

  // Before the attempt runs: copies its stage-ins onto the node tiers
  // (reusing copies an earlier job on this node left, streaming
  // `stream: true` ones), points its inputs at them, and starts the
  // checkpoint relay.
  void Prepare(TaskLaunch& launch);
  // The kStarted report: what Prepare did (node_copies,
  // checkpoint_node_dir or _error) and the node (`worker`, from
  // $SLURMD_NODENAME when set) when unset.
  void Started(TaskReport& report) const;
  // The attempt ended: streams stop waiting for it, what it committed last
  // is relayed, copies on job-scoped roots are removed, and `report`
  // names the node. Returns once the relay is done.
  void Ended(TaskReport& report);

 private:
  std::map<std::string, std::string> errors_;  // tier -> why its root did not expand
  std::map<std::string, std::string> roots_;   // tier -> expanded root (fills errors_ first)
  std::set<std::string> job_scoped_;
  std::string node_;
  NodeTiers tiers_;
  CheckpointRelays relays_;
  TaskReport notes_;  // node_copies, checkpoint_node_dir, checkpoint_node_error
};

}  // namespace tierflow::worker
