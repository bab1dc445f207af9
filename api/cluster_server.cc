// `tierflow server`: the Scheduler and Workers services of
// rpc/tierflow.proto, and nothing of scheduling. Each submitted run is
// driven by the same engine `tierflow run` uses, on a thread of its own,
// with an executor of the lease manager (scheduler/lease_manager.h), which
// decides which worker runs what; the Workers service is its transport: a
// WorkerChannel over each worker's stream, and the stream's messages
// turned into the manager's calls. With `--executor slurm` (ServerOptions::
// executor) new runs run as Slurm jobs instead (api/slurm_executor.h); a
// resumed run always uses the executor and options recorded with it.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "api/cluster.h"
#include "api/http_api.h"
#include "api/http_server.h"
#include "api/internal/chunk_writer.h"
#include "api/internal/run_watch.h"
#include "api/lineage_sender.h"
#include "api/run_service.h"
#include "api/tier_service.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/units.h"
#include "rpc/auth.h"
#include "rpc/status.h"
#include "rpc/task_proto.h"
#include "rpc/tierflow.grpc.pb.h"
#include "scheduler/api_queries.h"
#include "scheduler/engine.h"
#include "scheduler/lease_manager.h"
#include "scheduler/run_supervisor.h"
#include "scheduler/sqlite.h"
#include "scheduler/store.h"
#include "storage_adapters/tier_factory.h"

namespace tierflow::api {

namespace {

// The cluster's id, made the first time a server opens the store and kept
// in it: a worker knows what it leaves behind by it, so two servers (two
// stores) never share one, and a restarted server keeps its own.
absl::StatusOr<std::string> ClusterId(const std::string& db_path) {
  TF_ASSIGN_OR_RETURN(std::unique_ptr<scheduler::Database> db, scheduler::OpenStore(db_path));
  return scheduler::EnsureClusterId(*db, RandomHex(8));
}

using rpc::CheckToken;
using rpc::FromProto;
using rpc::ToGrpc;
using rpc::ToProto;

using WorkerStream = grpc::ServerReaderWriter<v1::SchedulerMessage, v1::WorkerMessage>;

// A WorkerChannel over one worker's stream. Writes are serialised; once
// the stream's handler has returned (Detach) nothing is written to it.
// Close never waits for a write: a write blocked on a frozen worker ends
// once the call is cancelled.
class StreamChannel final : public scheduler::WorkerChannel {
 public:
  StreamChannel(grpc::ServerContext* context, WorkerStream* stream, std::string name,
                bool lease_batches)
      : context_(context), stream_(stream), name_(std::move(name)), lease_batches_(lease_batches) {}
  void Registered(const std::string& worker_id, const std::string& cluster_id,
                  std::chrono::milliseconds heartbeat_interval) override {
    v1::SchedulerMessage message;
    v1::Registered* registered = message.mutable_registered();
    registered->set_worker(name_);
    registered->set_worker_id(worker_id);
    registered->set_cluster_id(cluster_id);
    registered->set_heartbeat_interval_ms(heartbeat_interval.count());
    registered->set_takes_report_batches(true);
    Send(message);
  }
  void Lease(const TaskLaunch& launch) override {
    v1::SchedulerMessage message;
    ToProto(launch, message.mutable_lease());
    Send(message);
  }
  void Leases(const std::vector<TaskLaunch>& launches) override {
    if (!lease_batches_) {
      WorkerChannel::Leases(launches);
      return;
    }
    v1::SchedulerMessage message;
    v1::LeaseBatch* batch = message.mutable_leases();
    for (const TaskLaunch& launch : launches) ToProto(launch, batch->add_leases());
    Send(message);
  }
  void Cancel(int64_t attempt_id, bool kill_now) override {
    v1::SchedulerMessage message;
    message.mutable_cancel()->set_attempt_id(attempt_id);
    message.mutable_cancel()->set_kill_now(kill_now);
    Send(message);
  }
  void Evict(const std::string& tier, const std::string& key) override {
    v1::SchedulerMessage message;
    message.mutable_evict()->set_tier(tier);
    message.mutable_evict()->set_key(key);
    Send(message);
  }
  // Its reader then sees the stream end.
  void Close() override {
    std::lock_guard lock(context_mu_);
    if (context_ != nullptr) context_->TryCancel();
  }
  void Detach() {
    {
      std::lock_guard lock(context_mu_);
      context_ = nullptr;
    }
    std::lock_guard lock(write_mu_);
    stream_ = nullptr;
  }

 private:
  void Send(const v1::SchedulerMessage& message) {
    std::lock_guard lock(write_mu_);
    // A failed write shows as the stream's end to its reader.
    if (stream_ != nullptr) stream_->Write(message);
  }
  std::mutex context_mu_;
  grpc::ServerContext* context_;  // guarded by context_mu_
  std::mutex write_mu_;           // one writer at a time on the stream
  WorkerStream* stream_;          // guarded by write_mu_
  const std::string name_;
  const bool lease_batches_;  // the worker reads LeaseBatch
};

// The stream handler of one worker: registers it with the lease manager,
// hands it what the worker sends, and tells it when the stream ends.
grpc::Status ServeWorker(scheduler::LeaseManager& leases, grpc::ServerContext* context,
                         WorkerStream* stream) {
  v1::WorkerMessage first;
  if (!stream->Read(&first) || !first.has_register_()) {
    return {grpc::StatusCode::INVALID_ARGUMENT, "a worker's first message must be Register"};
  }
  const v1::Register& hello = first.register_();
  scheduler::WorkerSpec spec;
  spec.name = hello.name();
  spec.slots = hello.slots();
  spec.cpus = hello.cpus();
  spec.memory = hello.memory_bytes();
  spec.gpus = hello.gpus();
  spec.labels.insert(hello.labels().begin(), hello.labels().end());
  spec.tiers = FromProto(hello.tiers());
  auto channel =
      std::make_shared<StreamChannel>(context, stream, spec.name, hello.takes_lease_batches());
  absl::StatusOr<std::string> worker_id = leases.Register(std::move(spec), channel);
  if (!worker_id.ok()) {
    channel->Detach();
    return ToGrpc(worker_id.status());
  }
  v1::WorkerMessage message;
  while (stream->Read(&message)) {
    leases.Heard(*worker_id);
    if (message.has_report()) leases.Report(*worker_id, FromProto(message.report()));
    for (const v1::TaskReport& report : message.reports().reports()) {
      leases.Report(*worker_id, FromProto(report));
    }
  }
  channel->Detach();
  leases.Disconnected(*worker_id);
  return grpc::Status::OK;
}

// Calls the lease manager's CheckLiveness a few times a second on a thread
// of its own, until destroyed.
class LivenessMonitor {
 public:
  explicit LivenessMonitor(scheduler::LeaseManager& leases)
      : thread_([this, &leases] {
          std::unique_lock lock(mu_);
          while (!stopping_) {
            cv_.wait_for(lock, std::chrono::milliseconds(200));
            leases.CheckLiveness();
          }
        }) {}
  ~LivenessMonitor() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  std::thread thread_;     // last: starts once the rest is ready
};

// A registered worker as the HTTP API shows it.
RemoteWorker ToRemoteWorker(const scheduler::WorkerStatus& status) {
  return {status.name,   status.slots, status.running, status.last_heartbeat_ms,
          status.labels, status.tiers};
}

// Tells Submit the id of the run it started.
class StartObserver final : public scheduler::RunObserver {
 public:
  void OnRunStarted(const std::string& run_id, bool, const scheduler::RunCounts&) override {
    std::lock_guard lock(mu_);
    if (!told_) {
      told_ = true;
      started_.set_value(run_id);
    }
  }
  void OnTaskEvent(const scheduler::TaskEvent&, const scheduler::RunCounts&) override {}
  void Fail(const absl::Status& status) {
    std::lock_guard lock(mu_);
    if (!told_) {
      told_ = true;
      started_.set_value(status);
    }
  }
  std::future<absl::StatusOr<std::string>> Started() { return started_.get_future(); }

 private:
  std::mutex mu_;
  bool told_ = false;
  std::promise<absl::StatusOr<std::string>> started_;
};

class SchedulerService final : public v1::Scheduler::Service {
 public:
  SchedulerService(const ServerOptions& options, scheduler::LeaseManager& leases)
      : options_(options), leases_(leases) {}
  ~SchedulerService() override {
    std::map<std::string, Driven> runs;
    {
      std::lock_guard lock(mu_);
      runs.swap(runs_);
    }
    for (auto& [id, run] : runs) run.engine->Cancel();
    for (auto& [id, run] : runs) run.thread.join();
  }

  grpc::Status Submit(grpc::ServerContext* context, const v1::SubmitRequest* request,
                      v1::SubmitReply* reply) override {
    if (grpc::Status auth = CheckToken(*context, options_.client_token, "client"); !auth.ok()) {
      return auth;
    }
    absl::StatusOr<std::vector<scheduler::PlacementTier>> tiers =
        LoadPlacementTiers(options_.tiers_file, options_.db_path);
    if (!tiers.ok()) return ToGrpc(tiers.status());
    scheduler::RunRequest run;
    run.file = request->pipeline_file().empty() ? "submitted.yaml" : request->pipeline_file();
    run.yaml = request->pipeline_yaml();
    run.params.insert(request->params().begin(), request->params().end());
    run.priority = request->priority();
    absl::StatusOr<std::string> run_id =
        Drive(std::move(*tiers), request->priority(), {options_.executor, options_.slurm},
              [run](scheduler::Engine& engine) { return engine.Run(run); });
    if (!run_id.ok()) return ToGrpc(run_id.status());
    reply->set_run_id(*run_id);
    return grpc::Status::OK;
  }

  // Runs left `running` by a server that stopped (killed, even): each is
  // resumed on its recorded tiers as `tierflow resume` would, its tasks
  // leased to the workers as they reconnect, with its recorded priority
  // and, among equal priorities, oldest first as before.
  void ResumeUnfinished(std::ostream& log) {
    if (!std::filesystem::exists(options_.db_path)) return;
    scheduler::RunFilter filter;
    filter.state = scheduler::RunState::kRunning;
    absl::StatusOr<scheduler::RunList> runs = api::ListRuns(options_.db_path, filter);
    if (!runs.ok()) {
      log << "cannot list unfinished runs: " << runs.status().message() << std::endl;
      return;
    }
    for (auto summary = runs->runs.rbegin(); summary != runs->runs.rend(); ++summary) {
      absl::StatusOr<std::string> resumed =
          DriveResume(summary->id, static_cast<int>(summary->priority));
      const std::string id = summary->id;
      if (resumed.ok()) {
        log << "resumed run " << id << std::endl;
      } else {
        log << "cannot resume run " << id << ": " << resumed.status().message() << std::endl;
      }
    }
  }

  // No run stays `running` with nobody driving it. Called every
  // kSuperviseEvery: scheduler/run_supervisor.h decides which runs no
  // engine of this server drives (its engine stopped on a store error it
  // could not ride out; a run another process started and left) are
  // resumed, and why; this records the why with each (event
  // run_supervised). A resume that cannot start yet (the store still
  // locked, another process driving the run) is tried again at the next
  // check.
  void Supervise(std::ostream& log) {
    if (!std::filesystem::exists(options_.db_path)) return;
    scheduler::RunFilter filter;
    filter.state = scheduler::RunState::kRunning;
    absl::StatusOr<scheduler::RunList> runs = api::ListRuns(options_.db_path, filter);
    if (!runs.ok()) return;  // the next check tries again
    std::vector<std::string> running;
    std::map<std::string, int> priorities;
    std::map<std::string, scheduler::DrivenRun> driven;
    {
      std::lock_guard lock(mu_);
      for (const scheduler::RunSummary& summary : runs->runs) {
        running.push_back(summary.id);
        priorities[summary.id] = static_cast<int>(summary.priority);
        auto found = runs_.find(summary.id);
        if (found != runs_.end()) {
          std::lock_guard end_lock(found->second.end->mu);
          if (!found->second.end->done) {
            driven[summary.id] = {};
            continue;
          }
          const absl::Status& status = found->second.end->status;
          if (!status.ok() && stopped_.count(summary.id) == 0) {
            // Its first line: the rest tells a user of `tierflow run` to resume.
            const std::string message(status.message());
            stopped_[summary.id] = {message.substr(0, message.find('\n')), WallClockMs()};
            log << "run " << summary.id << ": its engine stopped: " << stopped_[summary.id].why
                << std::endl;
          }
        }
        auto stopped = stopped_.find(summary.id);
        if (found != runs_.end() || stopped != stopped_.end()) {
          driven[summary.id] = {.ended = true,
                                .error = stopped != stopped_.end() ? stopped->second.why : ""};
        }
      }
    }
    for (const scheduler::RunToResume& resume : supervisor_.Check(running, driven)) {
      const std::string& id = resume.run_id;
      std::thread finished;
      {
        std::lock_guard lock(mu_);
        auto found = runs_.find(id);
        if (found != runs_.end()) {
          finished = std::move(found->second.thread);
          runs_.erase(found);
        }
      }
      if (finished.joinable()) finished.join();  // done: it returns at once
      absl::StatusOr<std::string> resumed = DriveResume(id, priorities[id]);
      if (!resumed.ok()) {
        const std::string error(resumed.status().message());
        if (supervisor_.ResumeFailed(id, error)) {
          log << "cannot resume run " << id << " yet: " << error << std::endl;
        }
        continue;
      }
      supervisor_.Resumed(id);
      {
        std::lock_guard lock(mu_);
        stopped_.erase(id);
      }
      log << "resumed run " << id << ": " << resume.why << std::endl;
      if (absl::Status recorded = RecordSupervised(id, resume.why); !recorded.ok()) {
        log << "run " << id << ": cannot record why it was resumed: " << recorded.message()
            << std::endl;
      }
    }
  }
  static constexpr std::chrono::milliseconds kSuperviseEvery{1000};

  grpc::Status GetRun(grpc::ServerContext* context, const v1::GetRunRequest* request,
                      v1::Run* reply) override {
    if (grpc::Status auth = CheckToken(*context, options_.client_token, "client"); !auth.ok()) {
      return auth;
    }
    return ToGrpc(ReadRun(request->run_id(), reply).status());
  }

  // The run now, then again each time any of it changes (read from the
  // store every 200 ms), until it ends or the client goes. Asked for
  // changes only, each message after the first holds only the tasks that
  // changed (api/internal/run_watch.h).
  grpc::Status WatchRun(grpc::ServerContext* context, const v1::GetRunRequest* request,
                        grpc::ServerWriter<v1::Run>* writer) override {
    if (grpc::Status auth = CheckToken(*context, options_.client_token, "client"); !auth.ok()) {
      return auth;
    }
    if (request->changes_only()) {
      return internal::WatchRunChanges(
          options_.db_path, request->run_id(), *context, *writer,
          [this](const std::string& id, int64_t since) { return StoppedSince(id, since); },
          std::chrono::milliseconds(200));
    }
    std::string last;
    std::string run_id = request->run_id();
    const int64_t since = WallClockMs();
    while (!context->IsCancelled()) {
      v1::Run run;
      absl::StatusOr<scheduler::RunState> state = ReadRun(run_id, &run);
      if (!state.ok()) return ToGrpc(state.status());
      run_id = run.run_id();  // `last` stays the run it named first
      std::string now = run.SerializeAsString();
      if (now != last) {
        if (!writer->Write(run)) break;
        last = std::move(now);
      }
      if (*state != scheduler::RunState::kRunning) break;
      // Its engine stopped while this watch ran: the watcher is told why
      // (the server resumes the run, Supervise).
      if (std::optional<std::string> why = StoppedSince(run_id, since)) {
        return {grpc::StatusCode::ABORTED,
                StrCat("the engine driving run ", run_id, " stopped: ", *why,
                       "\nthe server resumes it once it can; watch it again with: tierflow "
                       "status ",
                       run_id)};
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return grpc::Status::OK;
  }

  grpc::Status ListRuns(grpc::ServerContext* context, const v1::ListRunsRequest* request,
                        v1::ListRunsReply* reply) override {
    if (grpc::Status auth = CheckToken(*context, options_.client_token, "client"); !auth.ok()) {
      return auth;
    }
    scheduler::RunFilter filter;
    filter.limit = request->limit() > 0 ? request->limit() : 50;
    absl::StatusOr<scheduler::RunList> runs = api::ListRuns(options_.db_path, filter);
    if (!runs.ok()) return ToGrpc(runs.status());
    for (const scheduler::RunSummary& summary : runs->runs) {
      internal::SetRunFields(summary, *reply->add_runs());
    }
    return grpc::Status::OK;
  }

  grpc::Status ListWorkers(grpc::ServerContext* context, const v1::ListWorkersRequest*,
                           v1::ListWorkersReply* reply) override {
    if (grpc::Status auth = CheckToken(*context, options_.client_token, "client"); !auth.ok()) {
      return auth;
    }
    for (const scheduler::WorkerStatus& worker : leases_.Workers()) {
      v1::WorkerInfo* info = reply->add_workers();
      info->set_name(worker.name);
      info->set_slots(worker.slots);
      info->set_running(worker.running);
      info->mutable_labels()->insert(worker.labels.begin(), worker.labels.end());
      ToProto(worker.tiers, info->mutable_tiers());
      info->set_last_heartbeat_ms(worker.last_heartbeat_ms);
      info->set_worker_id(worker.id);
    }
    return grpc::Status::OK;
  }

  grpc::Status Logs(grpc::ServerContext* context, const v1::LogsRequest* request,
                    grpc::ServerWriter<v1::LogChunk>* writer) override {
    if (grpc::Status auth = CheckToken(*context, options_.client_token, "client"); !auth.ok()) {
      return auth;
    }
    LogRequest log;
    log.db = options_.db_path;
    log.run = request->run_id();
    log.task = request->task_id();
    log.attempt = request->attempt();
    log.follow = request->follow();
    internal::ChunkWriter data(writer, false);
    internal::ChunkWriter notes(writer, true);
    std::ostream data_out(&data);
    std::ostream notes_out(&notes);
    absl::Status status = WriteLog(log, data_out, notes_out);
    data_out.flush();
    notes_out.flush();
    return ToGrpc(status);
  }

  grpc::Status Lineage(grpc::ServerContext* context, const v1::LineageRequest* request,
                       v1::LineageReply* reply) override {
    if (grpc::Status auth = CheckToken(*context, options_.client_token, "client"); !auth.ok()) {
      return auth;
    }
    std::ostringstream text;
    std::optional<int64_t> depth;
    if (request->depth() >= 0) depth = request->depth();
    absl::Status status = WriteLineage(options_.db_path, request->target(), request->upstream(),
                                       request->downstream(), depth, request->format(), text);
    if (!status.ok()) return ToGrpc(status);
    reply->set_text(text.str());
    return grpc::Status::OK;
  }

  grpc::Status Tiers(grpc::ServerContext* context, const v1::TiersRequest* request,
                     v1::TiersReply* reply) override {
    if (grpc::Status auth = CheckToken(*context, options_.client_token, "client"); !auth.ok()) {
      return auth;
    }
    std::ostringstream text;
    absl::Status status =
        WriteTierList(options_.tiers_file, options_.db_path, request->format(), text);
    if (!status.ok()) return ToGrpc(status);
    reply->set_text(text.str());
    return grpc::Status::OK;
  }

  grpc::Status CancelRun(grpc::ServerContext* context, const v1::CancelRunRequest* request,
                         v1::CancelRunReply* reply) override {
    if (grpc::Status auth = CheckToken(*context, options_.client_token, "client"); !auth.ok()) {
      return auth;
    }
    absl::StatusOr<std::optional<LineageConfig>> lineage = LineageConfigFromEnv();
    absl::StatusOr<std::string> done = scheduler::CancelRun(
        options_.db_path, request->run_id(), nullptr,
        lineage.ok() && *lineage ? std::optional((*lineage)->settings) : std::nullopt);
    if (!done.ok()) return ToGrpc(done.status());
    reply->set_message(*done);
    return grpc::Status::OK;
  }

 private:
  // Fills `reply` (the states as their words); the run's state.
  absl::StatusOr<scheduler::RunState> ReadRun(const std::string& run_id, v1::Run* reply) {
    TF_ASSIGN_OR_RETURN(RunDetail detail, ShowRun(options_.db_path, run_id));
    reply->set_run_id(detail.run.id);
    reply->set_pipeline(detail.run.pipeline);
    reply->set_state(std::string(scheduler::RunStateName(detail.run.state)));
    reply->set_created_ms(detail.run.created_at_ms);
    reply->set_finished_ms(detail.run.finished_at_ms.value_or(0));
    reply->set_message(detail.run.message);
    for (const scheduler::TaskRow& row : detail.tasks) {
      v1::Task* task = reply->add_tasks();
      task->set_task_id(row.id);
      task->set_state(std::string(scheduler::TaskStateName(row.state)));
      task->set_attempts(static_cast<uint32_t>(row.attempt_count));
      if (!row.attempts.empty()) task->set_worker(row.attempts.back().worker);
      task->set_message(row.message);
    }
    return detail.run.state;
  }

  // How a Driven engine's run call ended (set by its thread).
  struct DriveEnd {
    std::mutex mu;
    bool done = false;    // guarded by mu
    absl::Status status;  // guarded by mu
  };
  struct Driven {
    std::shared_ptr<scheduler::Engine> engine;
    std::thread thread;
    std::shared_ptr<StartObserver> observer;
    std::shared_ptr<DriveEnd> end;
  };
  struct Stopped {
    std::string why;
    int64_t at_ms = 0;
  };

  // The reason the engine of `run_id` stopped, when it stopped at or after
  // `since_ms` and no new engine drives the run yet.
  std::optional<std::string> StoppedSince(const std::string& run_id, int64_t since_ms) {
    std::lock_guard lock(mu_);
    auto found = stopped_.find(run_id);
    if (found == stopped_.end() || found->second.at_ms < since_ms) return std::nullopt;
    return found->second.why;
  }

  // Where a run's tasks run: "" on the workers, "slurm" as Slurm jobs.
  struct RunExecutor {
    std::string name;
    SlurmOptions slurm;
  };

  // Resumes `id` on the executor it was recorded with (its attempts may
  // still run there: a Slurm run re-attaches to its jobs) and, for Slurm,
  // its recorded submit options; the polling is this server's.
  absl::StatusOr<std::string> DriveResume(const std::string& id, int priority) {
    RunExecutor executor{options_.executor, options_.slurm};
    absl::StatusOr<RecordedExecutor> recorded = RecordedExecutorOf(options_.db_path, id);
    if (!recorded.ok()) return recorded.status();
    executor.name = recorded->executor;
    if (recorded->slurm) executor.slurm.submit = *recorded->slurm;
    return Drive({}, priority, std::move(executor),
                 [id](scheduler::Engine& engine) { return engine.Resume(id); });
  }

  // Starts an engine on a thread of its own doing `drive` (Run or Resume)
  // with an executor of the lease manager, or Slurm's; returns the run's id
  // once it has started, or why it could not.
  absl::StatusOr<std::string> Drive(
      std::vector<scheduler::PlacementTier> tiers, int priority, RunExecutor executor,
      std::function<absl::StatusOr<scheduler::RunResult>(scheduler::Engine&)> drive) {
    const uint64_t run_seq = ++run_seq_;
    scheduler::EngineOptions engine_options;
    engine_options.db_path = options_.db_path;
    engine_options.slots = 1 << 20;  // the workers' slots (or Slurm's queue) are the limit
    engine_options.tiers = std::move(tiers);
    engine_options.open_tier = storage::OpenTier;
    if (absl::StatusOr<std::optional<LineageConfig>> lineage = LineageConfigFromEnv();
        lineage.ok() && *lineage) {
      engine_options.lineage_outbox = (*lineage)->settings;  // RunServer checked it
    }
    if (executor.name == "slurm") {
      UseSlurm(engine_options, std::move(executor.slurm));
    } else {
      engine_options.worker = "";  // until a worker reports it runs the attempt
      engine_options.node_tiers_on_workers = true;
      engine_options.kill_leftovers_on_host = false;  // workers stop their own tasks
      scheduler::LeaseManager* leases = &leases_;
      engine_options.make_executor =
          [leases, priority, run_seq](
              Executor::ReportCallback callback) -> absl::StatusOr<std::unique_ptr<Executor>> {
        return leases->MakeExecutor(std::move(callback), priority, run_seq);
      };
    }
    auto observer = std::make_shared<StartObserver>();
    engine_options.observer = observer.get();
    auto engine = std::make_shared<scheduler::Engine>(std::move(engine_options));
    std::future<absl::StatusOr<std::string>> started = observer->Started();
    auto end = std::make_shared<DriveEnd>();
    std::thread thread([engine, observer, end, drive] {
      absl::StatusOr<scheduler::RunResult> result = drive(*engine);
      if (!result.ok()) observer->Fail(result.status());
      std::lock_guard lock(end->mu);
      end->done = true;
      end->status = result.status();
    });
    absl::StatusOr<std::string> run_id = started.get();
    if (!run_id.ok()) {
      thread.join();
      return run_id.status();
    }
    std::lock_guard lock(mu_);
    runs_[*run_id] = {engine, std::move(thread), observer, end};
    return run_id;
  }
  absl::Status RecordSupervised(const std::string& run_id, const std::string& why) {
    TF_ASSIGN_OR_RETURN(std::unique_ptr<scheduler::Database> db,
                        scheduler::OpenStore(options_.db_path));
    return scheduler::RecordRunSupervised(*db, run_id, why);
  }

  const ServerOptions& options_;
  scheduler::LeaseManager& leases_;
  std::mutex mu_;
  std::map<std::string, Driven> runs_;
  std::map<std::string, Stopped> stopped_;  // guarded by mu_: engines that stopped on an error
  std::atomic<uint64_t> run_seq_{0};
  scheduler::RunSupervisor supervisor_;  // Supervise's own (its caller's thread only)
};

class WorkersService final : public v1::Workers::Service {
 public:
  WorkersService(const ServerOptions& options, scheduler::LeaseManager& leases)
      : options_(options), leases_(leases) {}
  grpc::Status Connect(grpc::ServerContext* context, WorkerStream* stream) override {
    if (grpc::Status auth = CheckToken(*context, options_.worker_token, "worker"); !auth.ok()) {
      return auth;
    }
    return ServeWorker(leases_, context, stream);
  }

 private:
  const ServerOptions& options_;
  scheduler::LeaseManager& leases_;
};

}  // namespace

absl::Status RunServer(const ServerOptions& options, const std::atomic<bool>& stop,
                       std::ostream& log) {
  if (!IsLoopbackListen(options.listen) &&
      (options.client_token.empty() || options.worker_token.empty())) {
    return absl::FailedPreconditionError(
        StrCat("--listen ", options.listen,
               " reaches beyond loopback: set both TIERFLOW_CLIENT_TOKEN and "
               "TIERFLOW_WORKER_TOKEN, or listen on 127.0.0.1"));
  }
  if (!options.http_listen.empty() && !IsLoopbackListen(options.http_listen) &&
      options.client_token.empty()) {
    return absl::FailedPreconditionError(
        StrCat("--http-listen ", options.http_listen,
               " reaches beyond loopback: set TIERFLOW_CLIENT_TOKEN (the UI and API require it "
               "too), or listen on 127.0.0.1"));
  }
  absl::StatusOr<std::string> cluster_id = ClusterId(options.db_path);
  if (!cluster_id.ok()) return cluster_id.status();
  // In cluster mode the server sends the OpenLineage events, all its life.
  TF_ASSIGN_OR_RETURN(std::unique_ptr<LineageSender> lineage,
                      StartLineageDelivery(options.db_path, nullptr));
  scheduler::LeaseManager leases({*cluster_id, options.worker_timeout});
  LivenessMonitor liveness(leases);
  SchedulerService scheduler_service(options, leases);
  WorkersService workers_service(options, leases);
  grpc::ServerBuilder builder;
  int port = 0;
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (!options.tls_cert.empty() || !options.tls_key.empty()) {
    std::string cert, key;
    for (auto [path, text] :
         {std::pair{&options.tls_cert, &cert}, std::pair{&options.tls_key, &key}}) {
      std::ifstream in(*path, std::ios::binary);
      std::stringstream content;
      content << in.rdbuf();
      *text = content.str();
      if (!in || text->empty()) {
        return absl::InvalidArgumentError(StrCat("cannot read the TLS ",
                                                 path == &options.tls_cert ? "certificate" : "key",
                                                 " file '", *path, "'"));
      }
    }
    grpc::SslServerCredentialsOptions tls;
    tls.pem_key_cert_pairs.push_back({key, cert});
    credentials = grpc::SslServerCredentials(tls);
  }
  builder.AddListeningPort(options.listen, credentials, &port);
  builder.RegisterService(&scheduler_service);
  builder.RegisterService(&workers_service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    return absl::UnavailableError(StrCat("cannot listen on ", options.listen));
  }
  log << "listening on " << options.listen.substr(0, options.listen.rfind(':')) << ":" << port
      << std::endl;
  std::unique_ptr<HttpServer> http;
  if (!options.http_listen.empty()) {
    HttpServerOptions web;
    web.listen = options.http_listen;
    web.db_path = options.db_path;
    web.tiers_file = options.tiers_file;
    web.token = options.client_token;
    web.ui_assets = options.ui_assets;
    web.workers_json = [&leases] {
      std::vector<RemoteWorker> workers;
      for (const scheduler::WorkerStatus& worker : leases.Workers()) {
        workers.push_back(ToRemoteWorker(worker));
      }
      return RenderWorkersJson(workers);
    };
    absl::StatusOr<std::unique_ptr<HttpServer>> started = StartHttpServer(web);
    if (!started.ok()) {
      server->Shutdown(std::chrono::system_clock::now());
      return started.status();
    }
    http = std::move(*started);
    log << "serving the UI on http://" << http->address() << "/" << std::endl;
  }
  scheduler_service.ResumeUnfinished(log);
  auto next_check = std::chrono::steady_clock::now() + SchedulerService::kSuperviseEvery;
  while (!stop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (std::chrono::steady_clock::now() < next_check) continue;
    scheduler_service.Supervise(log);
    next_check = std::chrono::steady_clock::now() + SchedulerService::kSuperviseEvery;
  }
  if (http) http->Stop();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return absl::OkStatus();
}

}  // namespace tierflow::api
