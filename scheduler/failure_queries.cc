// FailedTasks (run_queries.h): the failed tasks of a run with their latest
// attempts, for the end summary of `tierflow run`, `logs --failed` and the
// UI's failed tasks list.
#include "common/status.h"
#include "common/strings.h"
#include "scheduler/internal/rows.h"
#include "scheduler/internal/run_rows.h"
#include "scheduler/run_queries.h"

namespace tierflow::scheduler {

absl::StatusOr<std::vector<TaskRow>> FailedTasks(Database& db, const std::string& run_id,
                                                 size_t limit, size_t* total) {
  using internal::ForEachRow;
  TF_ASSIGN_OR_RETURN(
      Statement tasks,
      db.Prepare(StrCat(internal::kTaskColumns,
                        " WHERE run_id = ? AND state = 'failed' ORDER BY seq, id")));
  TF_ASSIGN_OR_RETURN(Statement latest,
                      db.Prepare(StrCat(internal::kAttemptColumns,
                                        " WHERE a.run_id = ? AND a.task_id = ? ORDER BY a.number "
                                        "DESC LIMIT 1")));
  tasks.Bind(1, run_id);
  std::vector<TaskRow> failed;
  size_t count = 0;
  TF_RETURN_IF_ERROR(ForEachRow(tasks, [&](const Statement& s) -> absl::Status {
    ++count;
    if (limit != 0 && failed.size() >= limit) return absl::OkStatus();
    TF_ASSIGN_OR_RETURN(TaskRow task, internal::ReadTask(s));
    failed.push_back(std::move(task));
    return absl::OkStatus();
  }));
  for (TaskRow& task : failed) {
    latest.Bind(1, run_id).Bind(2, task.id);
    TF_RETURN_IF_ERROR(ForEachRow(latest, [&](const Statement& s) -> absl::Status {
      TF_ASSIGN_OR_RETURN(AttemptRow attempt, internal::ReadAttempt(s));
      task.attempts.push_back(std::move(attempt));
      return absl::OkStatus();
    }));
  }
  if (total != nullptr) *total = count;
  return failed;
}

}  // namespace tierflow::scheduler
