// The recorded task times of a pipeline's stages in its earlier runs: what
// a batch scheduler packs short tasks by (scheduler/slurm_jobs.h,
// ItemsPerJob). Read once per run, when it starts or resumes, never per
// launch.
//
// Thread-safety: runs on a Database the caller owns (sqlite.h), and leaves
// no statement open.
#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "common/units.h"
#include "scheduler/sqlite.h"

namespace tierflow::scheduler {

// How many of the newest earlier runs of the pipeline count: recent times
// say more of the next run than old ones, and the query stays bounded.
inline constexpr int kStageTimeRuns = 10;

// Stage name → the median run time (attempts.ran_ms: the command's own,
// as its executor measured it; else finished_at - started_at, which on
// Slurm includes the queueing) of the stage's succeeded attempts that ran (not reused
// from the cache) in the kStageTimeRuns newest runs of pipelines named
// `pipeline`, the run `run_id` itself left out. A stage with no such
// attempt is absent.
absl::StatusOr<std::map<std::string, Duration>> MedianStageTimes(Database& db,
                                                                 const std::string& pipeline,
                                                                 const std::string& run_id);

}  // namespace tierflow::scheduler
