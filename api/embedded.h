// Embedded mode (DESIGN.md "Modes" 1): the scheduler's engine wired to a
// local worker pool in this process, for `tierflow run`, and the local state
// store the commands of that mode name with --db. The only place that joins
// scheduler/ and worker/, and the cli's one way to the engine: the engine's
// vocabulary is named here so cli includes api/ only. Stateless functions,
// safe from any thread.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "scheduler/engine.h"
#include "scheduler/store.h"

namespace tierflow::api {

using scheduler::BudgetFlags;
using scheduler::Engine;
using scheduler::EngineOptions;
using scheduler::FailedTask;
using scheduler::LocalBudget;
using scheduler::PlacementTier;
using scheduler::RunCounts;
using scheduler::RunObserver;
using scheduler::RunRequest;
using scheduler::RunResult;
using scheduler::RunState;
using scheduler::RunStateName;
using scheduler::StageSummary;
using scheduler::TaskEvent;
using scheduler::TaskState;
using scheduler::TaskStateName;

// An engine whose tasks run on this machine's local worker pool.
std::unique_ptr<Engine> MakeEmbeddedEngine(EngineOptions options);

// This machine's budget for the local pool's tasks (scheduler/local_resources.h:
// cores or --slots, RAM, CUDA_VISIBLE_DEVICES or nvidia-smi), with `flags`'s overrides.
LocalBudget MachineBudget(const BudgetFlags& flags);

// The state database the --db flag names: the flag if given, else
// $TIERFLOW_DB, else .tierflow/tierflow.db under the working directory.
std::string DatabasePath(const std::string& db_flag);

// OK when the store at `db_path` exists and this tierflow can read it; else
// the reason (NotFound naming the path, a schema too old or too new).
absl::Status CheckStoreReadable(const std::string& db_path);

// Asks the engine driving `run` (in the store at `db_path`) to cancel it;
// what was done, for the user.
absl::StatusOr<std::string> CancelLocalRun(const std::string& db_path, const std::string& run);

}  // namespace tierflow::api
