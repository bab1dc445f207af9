// Starting a run for the engine to drive: a new one (StartNewRun: its
// pipeline loaded and placed, then recorded, its lock taken before anyone
// can see it) or a stopped one taken over (TakeOverRun: its lock taken, its
// pipeline and tiers as it recorded them, its leftover task processes
// killed, its state loaded back, resume.h). Either fills the run model and
// makes the run's store connection and units; nothing runs yet.
//
// Thread-safety: called on the thread that called Engine::Run or Resume,
// before the run's first turn.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "scheduler/checkpoints.h"
#include "scheduler/engine.h"
#include "scheduler/internal/run_model.h"
#include "scheduler/remote_tiers.h"
#include "scheduler/replicas.h"
#include "scheduler/run_lock.h"
#include "scheduler/run_writer.h"
#include "scheduler/sqlite.h"
#include "scheduler/task_cache.h"

namespace tierflow::scheduler::internal {

// One run's store connection, lock and units, for as long as it is driven.
struct RunUnits {
  std::unique_ptr<Database> db;
  std::optional<RunLock> lock;
  std::optional<RunWriter> writer;
  std::optional<TaskCache> cache;
  MoveBook moves;
  std::optional<Replicas> replicas;
  std::optional<Checkpoints> checkpoints;
  // Remote tiers: what they tell the run from transfer threads; their
  // transfers stop once `transfers_cancelled` is set; `tier_retried`: a
  // request was retried (its upload may be left behind).
  TierEvents tier_events;
  std::shared_ptr<std::atomic<bool>> transfers_cancelled =
      std::make_shared<std::atomic<bool>>(false);
  std::atomic<bool> tier_retried{false};
};

// What the units need of the engine that drives them.
struct EngineLinks {
  TaskHooks& hooks;
  std::function<void(MoveResult)> post_move_result;  // any thread
  std::function<void()> wake;                        // any thread
};

absl::Status StartNewRun(const EngineOptions& options, const RunRequest& request,
                         const EngineLinks& links, RunModel& run, RunUnits& units);
// `run_ref`: a run id or `last`. FailedPrecondition for a run that
// succeeded or that another process drives. `reattach`: the executor
// re-attaches to attempts left running (Executor::Reattaches), so they are
// neither killed nor ended but listed in run.reattach.
absl::Status TakeOverRun(const EngineOptions& options, const std::string& run_ref, bool reattach,
                         const EngineLinks& links, RunModel& run, RunUnits& units);

}  // namespace tierflow::scheduler::internal
