// The client calls of cluster mode (api/cluster.h): submit, status,
// watch, cancel, logs, lineage, tiers and workers of a `tierflow server`.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "api/cluster.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/units.h"
#include "rpc/channel.h"
#include "rpc/status.h"
#include "rpc/task_proto.h"
#include "rpc/tierflow.grpc.pb.h"

namespace tierflow::api {
namespace {

using rpc::Authorize;
using rpc::FromGrpc;

std::unique_ptr<v1::Scheduler::Stub> SchedulerStub(const std::string& scheduler) {
  return v1::Scheduler::NewStub(rpc::OpenChannel(scheduler));
}

// One unary call of the Scheduler service: `method` is the stub's method
// (&v1::Scheduler::Stub::Submit, ...).
template <typename Request, typename Reply>
absl::StatusOr<Reply> Call(const std::string& scheduler, const std::string& token,
                           grpc::Status (v1::Scheduler::Stub::*method)(grpc::ClientContext*,
                                                                       const Request&, Reply*),
                           const Request& request) {
  Reply reply;
  grpc::ClientContext context;
  Authorize(context, token);
  std::unique_ptr<v1::Scheduler::Stub> stub = SchedulerStub(scheduler);
  grpc::Status status = (stub.get()->*method)(&context, request, &reply);
  if (!status.ok()) return FromGrpc(status, scheduler);
  return reply;
}

}  // namespace

absl::StatusOr<std::string> SubmitRemote(const std::string& scheduler, const std::string& token,
                                         const std::string& file,
                                         const std::map<std::string, std::string>& params,
                                         int priority) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return absl::NotFoundError(StrCat(file, ": cannot read the pipeline file"));
  std::stringstream text;
  text << in.rdbuf();
  v1::SubmitRequest request;
  request.set_pipeline_yaml(text.str());
  std::error_code error;
  request.set_pipeline_file(std::filesystem::absolute(file, error).string());
  request.mutable_params()->insert(params.begin(), params.end());
  request.set_priority(priority);
  TF_ASSIGN_OR_RETURN(v1::SubmitReply reply,
                      Call(scheduler, token, &v1::Scheduler::Stub::Submit, request));
  return reply.run_id();
}

namespace {

std::vector<RemoteWorker> FromProto(const v1::ListWorkersReply& reply) {
  std::vector<RemoteWorker> workers;
  for (const v1::WorkerInfo& info : reply.workers()) {
    RemoteWorker& worker = workers.emplace_back();
    worker.name = info.name();
    worker.slots = info.slots();
    worker.running = info.running();
    worker.last_heartbeat_ms = info.last_heartbeat_ms();
    worker.labels.insert(info.labels().begin(), info.labels().end());
    worker.tiers = rpc::FromProto(info.tiers());
  }
  return workers;
}

}  // namespace

// The states are parsed here, where they arrive: an unknown word fails the
// call, naming the run (and task) it came with.
absl::StatusOr<RemoteRun> FromProto(const v1::Run& reply, const std::string& scheduler) {
  auto unknown = [&](const absl::Status& status, std::string_view task) {
    return absl::Status(
        status.code(), StrCat("scheduler ", scheduler, ": run ", reply.run_id(),
                              task.empty() ? "" : StrCat(", task ", task), ": ", status.message()));
  };
  absl::StatusOr<RunState> state = scheduler::ParseRunState(reply.state());
  if (!state.ok()) return unknown(state.status(), "");
  RemoteRun result{reply.run_id(), reply.pipeline(), *state, reply.message(), {}, {}, 0, {}};
  const v1::TaskCounts& c = reply.counts();
  result.counts.total = c.total();
  result.counts.succeeded = c.succeeded();
  result.counts.cached = c.cached();
  result.counts.failed = c.failed();
  result.counts.upstream_failed = c.upstream_failed();
  result.counts.cancelled = c.cancelled();
  result.counts.running = c.running();
  result.counts.pending = c.waiting();
  result.created_at_ms = reply.created_ms();
  if (reply.finished_ms() > 0) result.finished_at_ms = reply.finished_ms();
  for (const v1::Task& task : reply.tasks()) {
    absl::StatusOr<TaskState> task_state = scheduler::ParseTaskState(task.state());
    if (!task_state.ok()) return unknown(task_state.status(), task.task_id());
    result.tasks.push_back(
        {task.task_id(), *task_state, task.attempts(), task.worker(), task.message()});
  }
  return result;
}

absl::Status WatchRemoteRun(const std::string& scheduler, const std::string& token,
                            const std::string& run,
                            const std::function<void(const RemoteRun&)>& on_change,
                            const WatchOptions& options) {
  using Clock = std::chrono::steady_clock;
  std::string run_id = run;
  bool seen = false;  // the run, once: its state is known
  RunState state = RunState::kRunning;
  // Since when the server has been out of reach, while `lost` (a plain
  // time point: GCC 12 at -O3 takes an optional one for uninitialised).
  bool lost = false;
  Clock::time_point lost_at;
  auto backoff = std::chrono::milliseconds(200);
  std::mt19937_64 random(std::random_device{}());
  for (;;) {
    v1::GetRunRequest request;
    request.set_run_id(run_id);
    // The server sends the tasks that changed, merged here into `merged`
    // (its whole run first; a server older than changes_only sends only
    // whole runs).
    request.set_changes_only(true);
    RemoteRun merged;
    std::unordered_map<std::string, size_t> task_index;  // merged.tasks by id
    grpc::ClientContext context;
    Authorize(context, token);
    std::unique_ptr<grpc::ClientReader<v1::Run>> reader =
        SchedulerStub(scheduler)->WatchRun(&context, request);
    v1::Run message;
    while (reader->Read(&message)) {
      if (lost) {
        if (options.notes != nullptr) {
          *options.notes << "tierflow: reconnected to " << scheduler << "; watching run "
                         << message.run_id() << " again" << std::endl;
        }
        lost = false;
        backoff = std::chrono::milliseconds(200);
      }
      absl::StatusOr<RemoteRun> now = FromProto(message, scheduler);
      if (!now.ok()) {
        context.TryCancel();
        reader->Finish();
        return now.status();
      }
      run_id = now->id;  // "last" names one run from here on
      state = now->state;
      seen = true;
      if (!message.changes_only()) {
        merged = std::move(*now);
        task_index.clear();
        for (size_t i = 0; i < merged.tasks.size(); ++i) task_index[merged.tasks[i].id] = i;
      } else {
        std::vector<RemoteTask> changed = std::move(now->tasks);
        now->tasks = std::move(merged.tasks);
        merged = std::move(*now);
        for (RemoteTask& task : changed) {
          auto [at, added] = task_index.try_emplace(task.id, merged.tasks.size());
          if (added) {
            merged.tasks.push_back(std::move(task));
          } else {
            merged.tasks[at->second] = std::move(task);
          }
        }
      }
      on_change(merged);
    }
    const grpc::Status status = reader->Finish();
    const bool ended = status.ok() && seen && state != RunState::kRunning;
    if (ended) return absl::OkStatus();
    // The server went (killed, restarting, shutting down: the stream broke
    // or ended early) or cannot be reached yet: watch again. Anything else
    // (an unknown run, a refused token) is an answer.
    const bool server_gone = status.ok() || status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                             status.error_code() == grpc::StatusCode::CANCELLED;
    if (!server_gone) return FromGrpc(status, scheduler);
    const std::string why =
        status.ok() ? "the watch ended before the run did" : status.error_message();
    if (!lost) {
      lost = true;
      lost_at = Clock::now();
      if (options.notes != nullptr) {
        *options.notes << "tierflow: lost the server " << scheduler << " (" << why
                       << "); reconnecting for up to " << FormatDuration(options.reconnect_for)
                       << std::endl;
      }
    }
    if (Clock::now() - lost_at >= options.reconnect_for) {
      return absl::UnavailableError(StrCat(
          "scheduler ", scheduler, ": ", why, "; no answer for ",
          FormatDuration(options.reconnect_for), " while watching run ", run_id,
          ", which may still be going (tierflow status ", run_id, " --scheduler ", scheduler, ")"));
    }
    // Capped exponential backoff with equal jitter, so many clients do not
    // reconnect to a restarting server all at once.
    const auto half = backoff / 2;
    const auto wait = half + std::chrono::milliseconds(std::uniform_int_distribution<int64_t>(
                                 0, std::max<int64_t>(half.count(), 1))(random));
    std::this_thread::sleep_for(std::min<Clock::duration>(
        wait, options.reconnect_for - (Clock::now() - lost_at) + std::chrono::milliseconds(1)));
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
  }
}

absl::StatusOr<std::vector<RemoteRun>> ListRemoteRuns(const std::string& scheduler,
                                                      const std::string& token, int limit) {
  v1::ListRunsRequest request;
  request.set_limit(limit);
  TF_ASSIGN_OR_RETURN(v1::ListRunsReply reply,
                      Call(scheduler, token, &v1::Scheduler::Stub::ListRuns, request));
  std::vector<RemoteRun> runs;
  for (const v1::Run& run : reply.runs()) {
    TF_ASSIGN_OR_RETURN(RemoteRun remote, FromProto(run, scheduler));
    runs.push_back(std::move(remote));
  }
  return runs;
}

absl::StatusOr<RemoteRun> GetRemoteRun(const std::string& scheduler, const std::string& token,
                                       const std::string& run) {
  v1::GetRunRequest request;
  request.set_run_id(run);
  TF_ASSIGN_OR_RETURN(v1::Run reply, Call(scheduler, token, &v1::Scheduler::Stub::GetRun, request));
  return FromProto(reply, scheduler);
}

absl::StatusOr<std::string> CancelRemoteRun(const std::string& scheduler, const std::string& token,
                                            const std::string& run) {
  v1::CancelRunRequest request;
  request.set_run_id(run);
  TF_ASSIGN_OR_RETURN(v1::CancelRunReply reply,
                      Call(scheduler, token, &v1::Scheduler::Stub::CancelRun, request));
  return reply.message();
}

absl::Status RemoteLogs(const std::string& scheduler, const std::string& token,
                        const LogRequest& request, std::ostream& out, std::ostream& notes) {
  v1::LogsRequest call;
  call.set_run_id(request.run);
  call.set_task_id(request.task);
  call.set_attempt(request.attempt);
  call.set_follow(request.follow);
  grpc::ClientContext context;
  Authorize(context, token);
  std::unique_ptr<grpc::ClientReader<v1::LogChunk>> reader =
      SchedulerStub(scheduler)->Logs(&context, call);
  v1::LogChunk chunk;
  while (reader->Read(&chunk)) {
    out << chunk.data();
    if (!chunk.note().empty()) notes << chunk.note();
    out.flush();
  }
  return FromGrpc(reader->Finish(), scheduler);
}

absl::StatusOr<std::string> RemoteLineage(const std::string& scheduler, const std::string& token,
                                          const std::string& target, bool upstream, bool downstream,
                                          int64_t depth, const std::string& format) {
  v1::LineageRequest request;
  request.set_target(target);
  request.set_upstream(upstream);
  request.set_downstream(downstream);
  request.set_depth(depth);
  request.set_format(format);
  TF_ASSIGN_OR_RETURN(v1::LineageReply reply,
                      Call(scheduler, token, &v1::Scheduler::Stub::Lineage, request));
  return reply.text();
}

absl::StatusOr<std::vector<RemoteWorker>> ListRemoteWorkers(const std::string& scheduler,
                                                            const std::string& token) {
  TF_ASSIGN_OR_RETURN(
      v1::ListWorkersReply reply,
      Call(scheduler, token, &v1::Scheduler::Stub::ListWorkers, v1::ListWorkersRequest()));
  return FromProto(reply);
}

absl::StatusOr<std::string> RemoteTiers(const std::string& scheduler, const std::string& token,
                                        const std::string& format) {
  v1::TiersRequest request;
  request.set_format(format);
  TF_ASSIGN_OR_RETURN(v1::TiersReply reply,
                      Call(scheduler, token, &v1::Scheduler::Stub::Tiers, request));
  return reply.text();
}

}  // namespace tierflow::api
