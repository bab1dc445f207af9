// Whether a run may be resumed with the definition it started with: when
// its pipeline file has changed since, in a way that changes the command,
// params or env of a task that has not finished, a resume would run a
// stale command. Compared through the cache's ingredients
// (cache_ingredients.h), so "changed" means what the cache means by it.
//
// Thread-safety: runs on the thread that owns `db`.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "scheduler/resume.h"
#include "scheduler/sqlite.h"

namespace tierflow::scheduler {

struct StaleTask {
  std::string task_id;
  std::string why;  // "command changed", "param lr changed", "not in the file any more", ...
};

// The unfinished tasks of `run_id` (not succeeded or cached) whose
// definition in `stored.file` (as it is now) differs from the stored one,
// in plan order. None when the file is gone (nothing to compare with).
// InvalidArgument when the file no longer loads.
absl::StatusOr<std::vector<StaleTask>> StaleUnfinishedTasks(Database& db, const std::string& run_id,
                                                            const internal::StoredRun& stored);

// OK, or FailedPrecondition naming a few stale tasks ("and N more") and
// saying that `tierflow run FILE` reuses what succeeded and `tierflow
// resume RUN --force` resumes with the stored definition.
absl::Status RefuseStaleResume(Database& db, const std::string& run_id,
                               const internal::StoredRun& stored);

}  // namespace tierflow::scheduler
