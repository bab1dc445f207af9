// ReadWatchedTasks (watch_queries.h).
#include "scheduler/watch_queries.h"

#include "common/status.h"
#include "scheduler/internal/rows.h"

namespace tierflow::scheduler {

using internal::ForEachRow;

absl::StatusOr<std::vector<WatchedTask>> ReadWatchedTasks(Database& db, const std::string& run_id) {
  // The latest attempt through attempts' UNIQUE (run_id, task_id, number)
  // index: one lookup per task.
  TF_ASSIGN_OR_RETURN(
      Statement tasks,
      db.Prepare("SELECT t.id, t.state, t.attempts, t.message, "
                 "(SELECT a.worker FROM attempts a WHERE a.run_id = t.run_id AND a.task_id = t.id "
                 "ORDER BY a.number DESC LIMIT 1) "
                 "FROM tasks t WHERE t.run_id = ? ORDER BY t.seq, t.id"));
  tasks.Bind(1, run_id);
  std::vector<WatchedTask> out;
  TF_RETURN_IF_ERROR(ForEachRow(tasks, [&](const Statement& s) -> absl::Status {
    TF_ASSIGN_OR_RETURN(TaskState state, ParseTaskState(s.Text(1)));
    out.push_back({.id = s.Text(0),
                   .state = state,
                   .attempts = s.Int(2),
                   .worker = s.Text(4),
                   .message = s.Text(3)});
    return absl::OkStatus();
  }));
  return out;
}

}  // namespace tierflow::scheduler
