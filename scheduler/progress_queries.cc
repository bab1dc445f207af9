// GetRunProgress and StageBusyMs (progress_queries.h): the live display's
// snapshot of a run.
#include "scheduler/progress_queries.h"

#include <map>

#include "common/status.h"
#include "common/strings.h"
#include "scheduler/internal/rows.h"
#include "scheduler/run_counts.h"

namespace tierflow::scheduler {

using internal::ForEachRow;
using internal::StateOf;

absl::StatusOr<RunProgress> GetRunProgress(Database& db, const std::string& run_id,
                                           const ProgressLimits& limits) {
  RunProgress progress;
  progress.run_id = run_id;
  TF_ASSIGN_OR_RETURN(RunStatus status, GetRunStatus(db, run_id));  // NotFound for a bad id
  progress.state = status.state;
  progress.engine = status.engine;
  {
    TF_ASSIGN_OR_RETURN(
        Statement run,
        db.Prepare(
            "SELECT pipeline_name, message, started_at, finished_at FROM runs WHERE id = ?"));
    run.Bind(1, run_id);
    TF_RETURN_IF_ERROR(ForEachRow(run, [&](const Statement& s) {
      progress.pipeline = s.Text(0);
      progress.message = s.Text(1);
      progress.started_at_ms = s.OptionalInt(2);
      progress.finished_at_ms = s.OptionalInt(3);
    }));
  }
  {
    // One pass over the run's tasks: counts per stage and state, stages in
    // plan order by their first task.
    TF_ASSIGN_OR_RETURN(Statement stages,
                        db.Prepare("SELECT stage, kind, state, COUNT(*), MIN(seq) FROM tasks "
                                   "WHERE run_id = ? GROUP BY stage, state"));
    stages.Bind(1, run_id);
    std::map<std::string, std::pair<int64_t, size_t>> order;  // stage -> (first seq, index)
    TF_RETURN_IF_ERROR(ForEachRow(stages, [&](const Statement& s) -> absl::Status {
      const std::string stage = s.Text(0);
      TF_ASSIGN_OR_RETURN(TaskState state,
                          StateOf(ParseTaskState, s.Text(2), StrCat("a task of run ", run_id)));
      auto [it, added] = order.try_emplace(stage, s.Int(4), progress.stages.size());
      if (added) progress.stages.push_back({.stage = stage, .kind = s.Text(1), .counts = {}});
      it->second.first = std::min(it->second.first, s.Int(4));
      StageProgress& entry = progress.stages[it->second.second];
      const int count = static_cast<int>(s.Int(3));
      entry.counts.total += count;
      CountTask(entry.counts, state, count);
      progress.counts.total += count;
      CountTask(progress.counts, state, count);
      return absl::OkStatus();
    }));
    std::sort(progress.stages.begin(), progress.stages.end(),
              [&](const StageProgress& a, const StageProgress& b) {
                return order.at(a.stage).first < order.at(b.stage).first;
              });
  }
  if (progress.counts.running > 0) {
    TF_ASSIGN_OR_RETURN(Statement running,
                        db.Prepare("SELECT id, started_at FROM tasks WHERE run_id = ? AND "
                                   "state = 'running' ORDER BY started_at, seq LIMIT ?"));
    running.Bind(1, run_id).Bind(2, static_cast<int64_t>(limits.running));
    TF_RETURN_IF_ERROR(ForEachRow(running, [&](const Statement& s) {
      progress.running.push_back(
          {.task_id = s.Text(0), .started_at_ms = s.OptionalInt(1).value_or(0)});
    }));
  }
  if (progress.counts.queued + progress.counts.pending > 0) {
    // A task waits for copies of its inputs from its event `data_wait`
    // (engine.cc) until `data_ready` (replicas.cc) or until it leaves the
    // queue (started, failed on its input, cancelled).
    TF_ASSIGN_OR_RETURN(
        Statement waits,
        db.Prepare("SELECT e.task_id, e.kind, MAX(e.id) FROM events e JOIN tasks t "
                   "ON t.run_id = e.run_id AND t.id = e.task_id WHERE e.run_id = ? AND "
                   "e.kind IN ('data_wait', 'data_ready') AND t.state IN ('pending', 'queued') "
                   "GROUP BY e.task_id ORDER BY MAX(e.id)"));
    waits.Bind(1, run_id);
    TF_RETURN_IF_ERROR(ForEachRow(waits, [&](const Statement& s) {
      if (s.Text(1) != "data_wait") return;
      ++progress.data_waits_total;
      if (progress.data_waits.size() < limits.listed) progress.data_waits.push_back(s.Text(0));
    }));
  }
  {
    TF_ASSIGN_OR_RETURN(Statement copies,
                        db.Prepare("SELECT a.task_id, a.name, c.tier, c.bytes, c.created_at FROM "
                                   "artifact_copies c JOIN artifacts a ON a.id = c.artifact_id "
                                   "WHERE c.state = 'copying' AND a.run_id = ? ORDER BY c.id"));
    copies.Bind(1, run_id);
    TF_RETURN_IF_ERROR(ForEachRow(copies, [&](const Statement& s) {
      ++progress.copies_total;
      if (progress.copies.size() >= limits.listed) return;
      progress.copies.push_back({.task_id = s.Text(0),
                                 .output = s.Text(1),
                                 .tier = s.Text(2),
                                 .bytes = s.Int(3),
                                 .started_at_ms = s.Int(4)});
    }));
  }
  return progress;
}

absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> StageBusyMs(
    Database& db, const std::string& run_id) {
  TF_ASSIGN_OR_RETURN(
      Statement busy,
      db.Prepare("SELECT t.stage, SUM(a.finished_at - a.started_at) FROM attempts a JOIN tasks t "
                 "ON t.run_id = a.run_id AND t.id = a.task_id WHERE a.run_id = ? AND "
                 "a.cached_from IS NULL AND a.finished_at IS NOT NULL GROUP BY t.stage"));
  busy.Bind(1, run_id);
  std::vector<std::pair<std::string, int64_t>> out;
  TF_RETURN_IF_ERROR(
      ForEachRow(busy, [&](const Statement& s) { out.emplace_back(s.Text(0), s.Int(1)); }));
  return out;
}

}  // namespace tierflow::scheduler
