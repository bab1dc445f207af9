// WatchRunChanges (api/internal/run_watch.h).
#include "api/internal/run_watch.h"

#include <grpcpp/support/sync_stream.h>

#include <thread>
#include <unordered_map>
#include <vector>

#include "api/internal/run_render.h"
#include "common/clock.h"
#include "common/strings.h"
#include "rpc/status.h"
#include "scheduler/run_queries.h"
#include "scheduler/watch_queries.h"

namespace tierflow::api::internal {
namespace {

void AddTask(const scheduler::WatchedTask& task, v1::Run& out) {
  v1::Task* added = out.add_tasks();
  added->set_task_id(task.id);
  added->set_state(std::string(scheduler::TaskStateName(task.state)));
  added->set_attempts(static_cast<uint32_t>(task.attempts));
  added->set_worker(task.worker);
  added->set_message(task.message);
}

}  // namespace

void SetRunFields(const scheduler::RunSummary& summary, v1::Run& out) {
  out.set_run_id(summary.id);
  out.set_pipeline(summary.pipeline);
  out.set_state(std::string(scheduler::RunStateName(summary.state)));
  out.set_created_ms(summary.created_at_ms);
  out.set_finished_ms(summary.finished_at_ms.value_or(0));
  out.set_message(summary.message);
  const scheduler::RunCounts& c = summary.counts;
  v1::TaskCounts* counts = out.mutable_counts();
  counts->set_total(c.total);
  counts->set_succeeded(c.succeeded);
  counts->set_cached(c.cached);
  counts->set_failed(c.failed);
  counts->set_upstream_failed(c.upstream_failed);
  counts->set_cancelled(c.cancelled);
  counts->set_running(c.running);
  counts->set_waiting(c.pending + c.queued + c.retrying);
}

grpc::Status WatchRunChanges(const std::string& db_path, const std::string& run,
                             grpc::ServerContext& context, grpc::ServerWriter<v1::Run>& writer,
                             const StoppedSince& stopped_since,
                             std::chrono::milliseconds interval) {
  absl::StatusOr<std::unique_ptr<scheduler::Database>> db = OpenReadOnly(db_path);
  if (!db.ok()) return rpc::ToGrpc(db.status());
  absl::StatusOr<std::string> run_id = scheduler::ResolveRunId(**db, run);
  if (!run_id.ok()) return rpc::ToGrpc(run_id.status());
  const int64_t since = WallClockMs();
  std::unordered_map<std::string, scheduler::WatchedTask> sent;  // by task id
  std::string sent_fields;  // the run's own fields last sent, serialised
  bool first = true;
  while (!context.IsCancelled()) {
    // The run before its tasks: the tasks of a run read as ended are final.
    absl::StatusOr<scheduler::RunSummary> summary =
        scheduler::GetRunSummary(**db, *run_id, WallClockMs());
    if (!summary.ok()) return rpc::ToGrpc(summary.status());
    absl::StatusOr<std::vector<scheduler::WatchedTask>> tasks =
        scheduler::ReadWatchedTasks(**db, *run_id);
    if (!tasks.ok()) return rpc::ToGrpc(tasks.status());
    v1::Run message;
    SetRunFields(*summary, message);
    std::string fields = message.SerializeAsString();
    message.set_changes_only(!first);
    for (scheduler::WatchedTask& task : *tasks) {
      auto [before, added] = sent.try_emplace(task.id, task);
      if (!added && before->second == task) continue;
      AddTask(task, message);
      if (!added) before->second = std::move(task);
    }
    if (first || message.tasks_size() > 0 || fields != sent_fields) {
      if (!writer.Write(message)) break;
      sent_fields = std::move(fields);
      first = false;
    }
    if (summary->state != scheduler::RunState::kRunning) break;
    // Its engine stopped while this watch ran: the watcher is told why
    // (the server resumes the run, Supervise).
    if (std::optional<std::string> why = stopped_since(*run_id, since)) {
      return {grpc::StatusCode::ABORTED,
              StrCat("the engine driving run ", *run_id, " stopped: ", *why,
                     "\nthe server resumes it once it can; watch it again with: tierflow status ",
                     *run_id)};
    }
    std::this_thread::sleep_for(interval);
  }
  return grpc::Status::OK;
}

}  // namespace tierflow::api::internal
