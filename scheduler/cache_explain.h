// What a run of a pipeline would do, task by task, without running it
// (`plan --explain`, `run --dry-run`): run or reuse, and why, decided the
// way the engine's cache decides (TaskCache::Decide) against the store's
// recorded attempts. And which stages `--rerun` forces.
//
// Thread-safety: pure functions over the caller's values and store.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dag/graph.h"
#include "dag/pipeline.h"
#include "scheduler/sqlite.h"

namespace tierflow::scheduler {

// By stage index: the stages `rerun` names and, with `downstream`, every
// stage that depends on one of them, directly or not. InvalidArgument for a
// name that is no stage, with a did-you-mean; empty `rerun`: none forced.
absl::StatusOr<std::vector<bool>> ForcedStages(const dag::TaskGraph& graph,
                                               const std::vector<std::string>& rerun,
                                               bool downstream);

struct ExplainOptions {
  std::vector<std::string> rerun;  // --rerun STAGE
  bool rerun_downstream = false;
  bool no_cache = false;  // --no-cache
};

struct TaskExplanation {
  std::string task_id;
  std::string stage;
  bool foreach = false;  // the stage is a foreach stage
  bool reuse = false;    // false: it would run
  // "no earlier run", "command changed", "param X changed", "input Y will
  // be rebuilt", "forced (--rerun)", "cached from RUN (attempt N)", ...
  std::string reason;
  std::string cached_from_run;  // a reuse: the run whose attempt made the outputs
  uint32_t cached_from_attempt = 0;
};

// Every task of `graph` in plan order (layer by layer, stages in file
// order), as a run of it in `working_dir` would decide now. `db` (may be
// null: no store, every task is "no earlier run") is only read. An output
// kept only on an object store counts as present (the run finds out when
// it restores it).
absl::StatusOr<std::vector<TaskExplanation>> ExplainRun(Database* db, const dag::TaskGraph& graph,
                                                        const std::string& working_dir,
                                                        const ExplainOptions& options);

}  // namespace tierflow::scheduler
