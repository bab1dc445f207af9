// A snapshot of a run's progress read from the state store, for the live
// display of `tierflow run`/`resume` and `tierflow watch` (one code path for
// both: the display only shows what the store recorded). Cheap for runs of
// 100k tasks: a few aggregate queries on the run's rows, no per-task reads
// beyond the few running tasks shown. Same contract as run_queries.h: runs
// on a Database the caller owns, leaves no statement open.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "scheduler/engine.h"
#include "scheduler/run_queries.h"
#include "scheduler/sqlite.h"
#include "scheduler/store.h"

namespace tierflow::scheduler {

struct StageProgress {
  std::string stage;
  std::string kind;  // command, foreach, ...: a foreach stage is one entry
  RunCounts counts;  // its tasks by state (total: all of them)
};

struct RunningTask {
  std::string task_id;
  int64_t started_at_ms = 0;
};

struct CopyInFlight {
  std::string task_id;  // the producing task
  std::string output;
  std::string tier;  // the tier it is copied to
  int64_t bytes = 0;
  int64_t started_at_ms = 0;
};

struct RunProgress {
  std::string run_id;
  std::string pipeline;
  RunState state = RunState::kRunning;
  std::string message;
  EngineStatus engine = EngineStatus::kNotRunning;
  std::optional<int64_t> started_at_ms;
  std::optional<int64_t> finished_at_ms;
  RunCounts counts;                     // the whole run
  std::vector<StageProgress> stages;    // plan order (by the stage's first task)
  std::vector<RunningTask> running;     // oldest first, at most ProgressLimits::running
  size_t data_waits_total = 0;          // tasks waiting for copies of their inputs
  std::vector<std::string> data_waits;  // their ids, at most ProgressLimits::listed
  size_t copies_total = 0;              // copies in state copying
  std::vector<CopyInFlight> copies;     // oldest first, at most ProgressLimits::listed
};

struct ProgressLimits {
  size_t running = 5;
  size_t listed = 3;
};

// The progress of run `run_id` (an exact id). NotFound as GetRunSummary.
absl::StatusOr<RunProgress> GetRunProgress(Database& db, const std::string& run_id,
                                           const ProgressLimits& limits);

// Time spent by the attempts that ran (not cached) per stage, in ms: the
// end summary's TASK TIME for `tierflow watch`.
absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> StageBusyMs(Database& db,
                                                                         const std::string& run_id);

}  // namespace tierflow::scheduler
