// `tierflow server`: the Scheduler and Workers services of tierflow.proto.
// Each submitted run is driven by the same engine `tierflow run` uses, on a
// thread of its own, with a RemoteExecutor that hands its tasks to the
// worker registry; the registry leases them to connected workers (the one
// with the most free slots first) and routes their reports back.
#include <grpcpp/grpcpp.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>
#include <unordered_map>

#include "api/cluster.h"
#include "api/http_api.h"
#include "api/http_server.h"
#include "api/run_service.h"
#include "api/task_proto.h"
#include "api/tier_service.h"
#include "api/tierflow.grpc.pb.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/units.h"
#include "scheduler/engine.h"
#include "scheduler/sqlite.h"
#include "scheduler/store.h"

namespace tierflow::api {
namespace {

std::string HeldKey(const std::string& tier, const std::string& key) {
  return StrCat(tier, "/", key);
}

// `bytes` random bytes as hex.
std::string RandomHex(int bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::random_device random;
  std::string out;
  for (int i = 0; i < bytes; ++i) {
    const unsigned byte = random() & 0xff;
    out += {kHex[byte >> 4], kHex[byte & 15]};
  }
  return out;
}

// The cluster's id, made the first time a server opens the store and kept
// in it: a worker knows what it leaves behind by it, so two servers (two
// stores) never share one, and a restarted server keeps its own.
absl::StatusOr<std::string> ClusterId(const std::string& db_path) {
  TF_ASSIGN_OR_RETURN(std::unique_ptr<scheduler::Database> db, scheduler::OpenStore(db_path));
  TF_ASSIGN_OR_RETURN(scheduler::Statement make,
                      db->Prepare("INSERT INTO cluster(id, created_at) SELECT ?, ? "
                                  "WHERE NOT EXISTS (SELECT 1 FROM cluster)"));
  TF_RETURN_IF_ERROR(make.Bind(1, RandomHex(8)).Bind(2, WallClockMs()).Run());
  TF_ASSIGN_OR_RETURN(scheduler::Statement read,
                      db->Prepare("SELECT id FROM cluster ORDER BY rowid LIMIT 1"));
  TF_ASSIGN_OR_RETURN(bool row, read.Step());
  if (!row) return absl::InternalError(StrCat("database ", db_path, ": no cluster id"));
  return read.Text(0);
}

// OK when `token` is empty (none required) or the call carries it.
grpc::Status CheckToken(const grpc::ServerContext& context, const std::string& token,
                        std::string_view who) {
  if (token.empty()) return grpc::Status::OK;
  const auto& metadata = context.client_metadata();
  auto found = metadata.find("authorization");
  if (found == metadata.end()) {
    return {grpc::StatusCode::UNAUTHENTICATED,
            StrCat("this server requires a ", who, " token: none was sent")};
  }
  // "Bearer TOKEN": the scheme is case-insensitive (RFC 7235 section 2.1),
  // then one or more spaces; the token is compared in constant time.
  std::string_view got(found->second.data(), found->second.size());
  constexpr std::string_view kScheme = "bearer";
  const bool bearer = got.size() > kScheme.size() && got[kScheme.size()] == ' ' &&
                      std::equal(kScheme.begin(), kScheme.end(), got.begin(), [](char a, char b) {
                        return a == std::tolower(static_cast<unsigned char>(b));
                      });
  if (!bearer) {
    return {grpc::StatusCode::UNAUTHENTICATED,
            StrCat("this server requires a ", who, " token: the authorization metadata is not ",
                   "'Bearer TOKEN'")};
  }
  got.remove_prefix(kScheme.size());
  while (!got.empty() && got.front() == ' ') got.remove_prefix(1);
  if (got.size() != token.size() || CRYPTO_memcmp(got.data(), token.data(), token.size()) != 0) {
    return {grpc::StatusCode::PERMISSION_DENIED, StrCat("wrong ", who, " token")};
  }
  return grpc::Status::OK;
}

using WorkerStream = grpc::ServerReaderWriter<v1::SchedulerMessage, v1::WorkerMessage>;

// Where the reports of one executor's attempts go: handed to its engine
// in order on a thread of the sink's own, so an engine that waits (a busy
// database) never holds up a worker's stream, its heartbeats or other
// runs' reports. Closed once its executor is gone: late reports are dropped.
class ReportSink {
 public:
  explicit ReportSink(Executor::ReportCallback callback)
      : callback_(std::move(callback)), thread_([this] { Deliver(); }) {}
  ~ReportSink() { Close(); }
  void Report(TaskReport report) {
    {
      std::lock_guard lock(mu_);
      if (closed_) return;
      queue_.push_back(std::move(report));
    }
    cv_.notify_one();
  }
  // No report is handed over once it returns.
  void Close() {
    {
      std::lock_guard lock(mu_);
      closed_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Deliver() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return closed_ || !queue_.empty(); });
      if (closed_) return;
      TaskReport report = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      callback_(std::move(report));
      lock.lock();
    }
  }
  const Executor::ReportCallback callback_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<TaskReport> queue_;  // guarded by mu_
  bool closed_ = false;           // guarded by mu_
  std::thread thread_;            // last: starts once the rest is ready
};

struct Worker {
  std::string name;
  std::string id;  // issued at its registration (Registered.worker_id)
  int slots = 0;
  double cpus = 0;
  uint64_t memory = 0;
  uint32_t gpus = 0;
  // In use by its leased tasks (guarded by the registry's mu_).
  double used_cpus = 0;
  uint64_t used_memory = 0;
  uint32_t used_gpus = 0;
  bool Fits(const TaskLaunch& task) const {
    for (const auto& [key, value] : task.labels) {
      auto found = labels.find(key);
      if (found == labels.end() || found->second != value) return false;
    }
    return static_cast<int>(attempts.size()) < slots && used_cpus + task.cpus <= cpus + 1e-9 &&
           used_memory + task.memory <= memory && used_gpus + task.gpus <= gpus;
  }
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> tiers;  // its node tiers: name -> path
  // What its node tiers hold (guarded by the registry's mu_): "TIER/KEY" -> bytes.
  std::unordered_map<std::string, uint64_t> held;
  WorkerStream* stream = nullptr;
  grpc::ServerContext* context = nullptr;
  std::mutex write_mu;         // one writer at a time on the stream
  std::set<int64_t> attempts;  // leased, not finished (guarded by the registry's mu_)
  int64_t last_seen_ms = 0;    // guarded by the registry's mu_
  bool lost = false;           // guarded by the registry's mu_
  bool silent = false;  // its stream was cut for want of heartbeats (guarded by the registry's mu_)
  void Send(const v1::SchedulerMessage& message) {
    std::lock_guard lock(write_mu);
    stream->Write(message);  // a failed write shows as the stream's end to its reader
  }
};

class Registry {
 public:
  Registry(std::chrono::milliseconds timeout, std::string cluster_id)
      : timeout_(timeout), cluster_id_(std::move(cluster_id)) {
    monitor_ = std::thread([this] { Monitor(); });
  }
  ~Registry() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    monitor_.join();
  }

  // Queues a task of the run `run_seq` (the order runs were started in):
  // higher `priority` first, then earlier runs first, then in the order
  // tasks became ready.
  void Submit(TaskLaunch launch, std::shared_ptr<ReportSink> sink, int priority, uint64_t run_seq) {
    {
      std::lock_guard lock(mu_);
      auto after = std::find_if(pending_.begin(), pending_.end(), [&](const Pending& p) {
        return p.priority < priority || (p.priority == priority && p.run_seq > run_seq);
      });
      pending_.insert(after, {std::move(launch), std::move(sink), priority, run_seq});
    }
    Dispatch();
  }

  void Cancel(int64_t attempt, bool kill_now) {
    std::shared_ptr<Worker> worker;
    {
      std::lock_guard lock(mu_);
      auto queued = std::find_if(pending_.begin(), pending_.end(),
                                 [&](const Pending& p) { return p.launch.attempt_id == attempt; });
      if (queued != pending_.end()) {
        std::shared_ptr<ReportSink> sink = queued->sink;
        pending_.erase(queued);
        TaskReport report;
        report.attempt_id = attempt;
        report.outcome = TaskReport::Outcome::kCancelled;
        report.message = "cancelled before a worker took it";
        std::thread([sink, report] { sink->Report(report); }).detach();
        return;
      }
      auto leased = leases_.find(attempt);
      if (leased == leases_.end()) return;
      worker = leased->second.worker;
    }
    v1::SchedulerMessage message;
    message.mutable_cancel()->set_attempt_id(attempt);
    message.mutable_cancel()->set_kill_now(kill_now);
    worker->Send(message);
  }

  // `worker` may delete its copy of `key` on its node tier `tier`.
  void EvictNodeCopy(const std::string& name, const std::string& tier, const std::string& key) {
    std::shared_ptr<Worker> worker;
    {
      std::lock_guard lock(mu_);
      auto found = workers_.find(name);
      if (found == workers_.end()) return;  // gone: it cleared its node tiers
      worker = found->second;
      worker->held.erase(HeldKey(tier, key));
    }
    v1::SchedulerMessage message;
    message.mutable_evict()->set_tier(tier);
    message.mutable_evict()->set_key(key);
    worker->Send(message);
  }

  void Describe(v1::ListWorkersReply* reply) {
    std::lock_guard lock(mu_);
    for (const auto& [name, worker] : workers_) {
      v1::WorkerInfo* info = reply->add_workers();
      info->set_name(name);
      info->set_slots(worker->slots);
      info->set_running(static_cast<int32_t>(worker->attempts.size()));
      info->mutable_labels()->insert(worker->labels.begin(), worker->labels.end());
      for (const auto& [tier, path] : worker->tiers) {
        v1::NodeTier* node_tier = info->add_tiers();
        node_tier->set_name(tier);
        node_tier->set_path(path);
      }
      info->set_last_heartbeat_ms(worker->last_seen_ms);
      info->set_worker_id(worker->id);
    }
  }

  // The stream handler of one worker: returns when the stream ends.
  grpc::Status Serve(grpc::ServerContext* context, WorkerStream* stream) {
    v1::WorkerMessage first;
    if (!stream->Read(&first) || !first.has_register_()) {
      return {grpc::StatusCode::INVALID_ARGUMENT, "a worker's first message must be Register"};
    }
    auto worker = std::make_shared<Worker>();
    worker->name = first.register_().name();
    worker->slots = std::max(1, first.register_().slots());
    worker->cpus = first.register_().cpus() > 0 ? first.register_().cpus() : worker->slots;
    worker->memory =
        first.register_().memory_bytes() > 0 ? first.register_().memory_bytes() : UINT64_MAX;
    worker->gpus = first.register_().gpus();
    worker->labels.insert(first.register_().labels().begin(), first.register_().labels().end());
    for (const v1::NodeTier& tier : first.register_().tiers()) {
      worker->tiers[tier.name()] = tier.path();
    }
    worker->stream = stream;
    worker->context = context;
    {
      std::lock_guard lock(mu_);
      if (workers_.count(worker->name) > 0) {
        return {grpc::StatusCode::ALREADY_EXISTS,
                StrCat("a worker named ", worker->name, " is connected already")};
      }
      worker->last_seen_ms = WallClockMs();
      worker->id = StrCat(worker->name, "@", cluster_id_, "#", RandomHex(4));
      workers_[worker->name] = worker;
    }
    v1::SchedulerMessage registered;
    registered.mutable_registered()->set_worker(worker->name);
    registered.mutable_registered()->set_worker_id(worker->id);
    registered.mutable_registered()->set_cluster_id(cluster_id_);
    registered.mutable_registered()->set_heartbeat_interval_ms(
        std::max<int64_t>(100, timeout_.count() / 4));
    worker->Send(registered);
    Dispatch();

    v1::WorkerMessage message;
    while (stream->Read(&message)) {
      {
        std::lock_guard lock(mu_);
        worker->last_seen_ms = WallClockMs();
      }
      if (!message.has_report()) continue;
      TaskReport report = FromProto(message.report());
      report.worker = worker->name;
      report.worker_id = worker->id;
      std::shared_ptr<ReportSink> sink;
      bool freed = false;
      {
        std::lock_guard lock(mu_);
        auto leased = leases_.find(report.attempt_id);
        // Not leased to this worker (any more): a late report of a lost
        // lease, never counted.
        if (leased == leases_.end() || leased->second.worker != worker) continue;
        sink = leased->second.sink;
        if (report.outcome == TaskReport::Outcome::kStarted) {
          leased->second.started = true;
          report.message = leased->second.why;
          for (const NodeCopyReport& copy : report.node_copies) {
            if (copy.error.empty()) worker->held[HeldKey(copy.tier, copy.key)] = copy.bytes;
          }
        }
        if (report.outcome == TaskReport::Outcome::kSucceeded) {
          // Where its outputs are, for the locality of their readers: the
          // file or folder, and a foreach item's gathering folder.
          for (const OutputReport& output : report.outputs) {
            produced_on_[output.path] = worker->name;
            produced_on_[std::filesystem::path(output.path).parent_path().string()] = worker->name;
          }
        }
        if (report.outcome != TaskReport::Outcome::kStarted) {
          EndLease(leased);
          freed = true;
        }
      }
      sink->Report(std::move(report));
      if (freed) Dispatch();
    }
    // A worker killed -9, or whose network went, ends its stream (the
    // context then reads cancelled too); only the monitor's cut is silence.
    bool silent = false;
    {
      std::lock_guard lock(mu_);
      silent = worker->silent;
    }
    Lose(worker, silent ? LossReason::kSilent : LossReason::kDisconnected);
    return grpc::Status::OK;
  }

 private:
  struct Pending {
    TaskLaunch launch;
    std::shared_ptr<ReportSink> sink;
    int priority = 0;
    uint64_t run_seq = 0;
  };
  // How well a worker suits a task, best last.
  struct Locality {
    uint64_t held_bytes = 0;
    int held = 0;
    int tiers = 0;
    int produced = 0;
    int free = 0;
    bool operator<(const Locality& other) const {
      return std::tie(held_bytes, tiers, produced, free) <
             std::tie(other.held_bytes, other.tiers, other.produced, other.free);
    }
  };
  struct Lease {
    std::shared_ptr<Worker> worker;
    std::shared_ptr<ReportSink> sink;
    double cpus = 0;
    uint64_t memory = 0;
    uint32_t gpus = 0;
    std::string why;       // the reason for the choice, told with the start
    bool started = false;  // the worker reported it started
  };
  enum class LossReason {
    kDisconnected,  // its stream ended: killed, network gone, server stopping
    kSilent,        // connected, but no heartbeat within the timeout
  };

  // Leases queued tasks, in order, each to the worker it fits (a free
  // slot, and its cpus, memory and gpus beside what that worker runs) with
  // the most free slots. A task that fits no worker now waits, without
  // holding back the ones behind it.
  void Dispatch() {
    std::vector<std::pair<std::shared_ptr<Worker>, v1::SchedulerMessage>> sends;
    {
      std::lock_guard lock(mu_);
      // With every slot taken nothing can be leased: the queue (all the
      // ready tasks of every run, thousands at times) is not looked at.
      int free_slots = 0;
      for (const auto& [name, worker] : workers_) {
        if (!worker->lost) {
          free_slots += std::max(0, worker->slots - static_cast<int>(worker->attempts.size()));
        }
      }
      for (auto next = pending_.begin(); next != pending_.end() && free_slots > 0;) {
        const TaskLaunch& launch = next->launch;
        // Locality first: the worker whose node tiers already hold the
        // most bytes of what the task reads there; then one that has those
        // node tiers at all (else the task reads in place); then the one
        // that produced most of its inputs; then the most free slots.
        std::map<std::string, int> produced;
        int inputs = 0;
        for (const auto& [name, value] : launch.env) {
          if (name.rfind("TIERFLOW_INPUT_", 0) != 0) continue;
          ++inputs;
          auto producer = produced_on_.find(value);
          if (producer != produced_on_.end()) ++produced[producer->second];
        }
        std::shared_ptr<Worker> best;
        Locality best_score;
        for (const auto& [name, worker] : workers_) {
          const int free = worker->slots - static_cast<int>(worker->attempts.size());
          if (worker->lost || !worker->Fits(launch) || free <= 0) continue;
          Locality score;
          score.free = free;
          score.produced = produced.count(name) > 0 ? produced[name] : 0;
          std::set<std::string> node_tiers;
          for (const StageIn& stage : launch.stage_in) {
            node_tiers.insert(stage.tier);
            auto held = worker->held.find(HeldKey(stage.tier, stage.key));
            if (held == worker->held.end()) continue;
            score.held_bytes += held->second;
            ++score.held;
          }
          for (const std::string& tier : node_tiers) score.tiers += worker->tiers.count(tier);
          if (!best || best_score < score) {
            best_score = score;
            best = worker;
          }
        }
        if (!best) {
          ++next;
          continue;
        }
        best->attempts.insert(launch.attempt_id);
        --free_slots;
        best->used_cpus += launch.cpus;
        best->used_memory += launch.memory;
        best->used_gpus += launch.gpus;
        std::string why = StrCat("leased to ", best->name);
        if (best_score.held > 0) {
          why += StrCat(", whose node tiers hold ", best_score.held, " of the ",
                        launch.stage_in.size(), " artifacts it reads there (",
                        FormatSize(best_score.held_bytes), ")");
        } else if (best_score.tiers > 0) {
          why += StrCat(", which has the node tiers its inputs are copied to");
        } else if (best_score.produced > 0) {
          why += StrCat(", which produced ", best_score.produced, " of its ", inputs, " inputs");
        } else {
          why += StrCat(", the worker with the most free slots (", best_score.free, ")");
        }
        leases_[launch.attempt_id] = {best,          next->sink,  launch.cpus,
                                      launch.memory, launch.gpus, std::move(why)};
        v1::SchedulerMessage message;
        ToProto(launch, message.mutable_lease());
        sends.emplace_back(best, std::move(message));
        next = pending_.erase(next);
      }
    }
    for (auto& [worker, message] : sends) worker->Send(message);
  }

  // Ends a lease (mu_ held): its worker's slot and resources are free again.
  void EndLease(std::unordered_map<int64_t, Lease>::iterator lease) {
    Worker& worker = *lease->second.worker;
    worker.attempts.erase(lease->first);
    worker.used_cpus -= lease->second.cpus;
    worker.used_memory -= lease->second.memory;
    worker.used_gpus -= lease->second.gpus;
    leases_.erase(lease);
  }

  // Its leased tasks failed (the engine retries them as their retries
  // allow); reports it may still send are ignored.
  void Lose(const std::shared_ptr<Worker>& worker, LossReason reason) {
    struct Orphan {
      int64_t attempt;
      std::shared_ptr<ReportSink> sink;
      bool started;
    };
    std::vector<Orphan> orphans;
    {
      std::lock_guard lock(mu_);
      worker->lost = true;
      auto found = workers_.find(worker->name);
      if (found != workers_.end() && found->second == worker) workers_.erase(found);
      const std::set<int64_t> attempts = worker->attempts;
      for (int64_t attempt : attempts) {
        auto leased = leases_.find(attempt);
        if (leased == leases_.end()) continue;
        orphans.push_back({attempt, leased->second.sink, leased->second.started});
        EndLease(leased);
      }
    }
    const std::string what =
        reason == LossReason::kSilent
            ? StrCat("worker ", worker->name, " was lost (no heartbeat in ", TimeoutText(), ")")
            : StrCat("worker ", worker->name, " disconnected (its connection to the server ended)");
    for (Orphan& orphan : orphans) {
      TaskReport report;
      report.attempt_id = orphan.attempt;
      report.outcome = TaskReport::Outcome::kLost;
      report.worker_id = worker->id;
      report.message = StrCat(what, orphan.started ? "" : " before it started this attempt",
                              "; running it again");
      orphan.sink->Report(std::move(report));
    }
    Dispatch();
  }

  // "10 s", "2.5 s": the worker timeout, as the loss reasons say it.
  std::string TimeoutText() const {
    const int64_t ms = timeout_.count();
    if (ms % 1000 == 0) return StrCat(ms / 1000, " s");
    return StrCat(ms / 1000, ".", (ms % 1000) / 100, " s");
  }

  void Monitor() {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      cv_.wait_for(lock, std::chrono::milliseconds(200));
      const int64_t now = WallClockMs();
      for (const auto& [name, worker] : workers_) {
        if (now - worker->last_seen_ms > timeout_.count()) {
          worker->silent = true;
          worker->context->TryCancel();
        }
      }
    }
  }

  const std::chrono::milliseconds timeout_;
  const std::string cluster_id_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::map<std::string, std::shared_ptr<Worker>> workers_;
  std::deque<Pending> pending_;
  std::unordered_map<int64_t, Lease> leases_;
  std::unordered_map<std::string, std::string> produced_on_;  // output path -> worker
  std::thread monitor_;
};

class RemoteExecutor final : public Executor {
 public:
  RemoteExecutor(Registry& registry, ReportCallback callback, int priority, uint64_t run_seq)
      : registry_(registry),
        sink_(std::make_shared<ReportSink>(std::move(callback))),
        priority_(priority),
        run_seq_(run_seq) {}
  ~RemoteExecutor() override { sink_->Close(); }
  void Launch(TaskLaunch launch) override {
    {
      std::lock_guard lock(mu_);
      attempts_.insert(launch.attempt_id);
    }
    registry_.Submit(std::move(launch), sink_, priority_, run_seq_);
  }
  void Cancel(int64_t attempt_id) override { registry_.Cancel(attempt_id, false); }
  void Kill(int64_t attempt_id) override { registry_.Cancel(attempt_id, true); }
  void EvictNodeCopy(const std::string& worker, const std::string& tier,
                     const std::string& key) override {
    registry_.EvictNodeCopy(worker, tier, key);
  }
  // Only this run's attempts: each worker kills exactly the ones named.
  void KillAll() override {
    std::set<int64_t> attempts;
    {
      std::lock_guard lock(mu_);
      attempts = attempts_;
    }
    for (int64_t attempt : attempts) registry_.Cancel(attempt, true);
  }

 private:
  Registry& registry_;
  std::shared_ptr<ReportSink> sink_;
  const int priority_;
  const uint64_t run_seq_;
  std::mutex mu_;
  std::set<int64_t> attempts_;  // every attempt launched (KillAll skips finished ones)
};

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

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  grpc::StatusCode code = grpc::StatusCode::INTERNAL;
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
      code = grpc::StatusCode::INVALID_ARGUMENT;
      break;
    case absl::StatusCode::kNotFound:
      code = grpc::StatusCode::NOT_FOUND;
      break;
    case absl::StatusCode::kFailedPrecondition:
      code = grpc::StatusCode::FAILED_PRECONDITION;
      break;
    case absl::StatusCode::kUnavailable:
      code = grpc::StatusCode::UNAVAILABLE;
      break;
    default:
      break;
  }
  return {code, std::string(status.message())};
}

// A stream of LogChunks as an ostream's buffer: log bytes, or notes.
class ChunkWriter final : public std::streambuf {
 public:
  ChunkWriter(grpc::ServerWriter<v1::LogChunk>* writer, bool notes)
      : writer_(writer), notes_(notes) {}

 protected:
  int overflow(int c) override {
    if (c != traits_type::eof()) buffer_.push_back(static_cast<char>(c));
    if (buffer_.size() >= kChunk) Send();
    return c == traits_type::eof() ? 0 : c;
  }
  std::streamsize xsputn(const char* data, std::streamsize n) override {
    buffer_.append(data, static_cast<size_t>(n));
    if (buffer_.size() >= kChunk) Send();
    return n;
  }
  int sync() override {
    Send();
    return 0;
  }

 private:
  static constexpr size_t kChunk = 64 << 10;
  void Send() {
    if (buffer_.empty()) return;
    v1::LogChunk chunk;
    if (notes_) {
      chunk.set_note(buffer_);
    } else {
      chunk.set_data(buffer_);
    }
    writer_->Write(chunk);
    buffer_.clear();
  }
  grpc::ServerWriter<v1::LogChunk>* writer_;
  const bool notes_;
  std::string buffer_;
};

class SchedulerService final : public v1::Scheduler::Service {
 public:
  SchedulerService(const ServerOptions& options, Registry& registry)
      : options_(options), registry_(registry) {}
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
        Drive(std::move(*tiers), request->priority(),
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
      const std::string id = summary->id;
      absl::StatusOr<std::string> resumed =
          Drive({}, static_cast<int>(summary->priority),
                [id](scheduler::Engine& engine) { return engine.Resume(id); });
      if (resumed.ok()) {
        log << "resumed run " << id << std::endl;
      } else {
        log << "cannot resume run " << id << ": " << resumed.status().message() << std::endl;
      }
    }
  }

  // No run stays `running` with nobody driving it. Called every
  // kSuperviseEvery: a run the store has `running` that no engine of this
  // server drives (its engine stopped on a store error it could not ride
  // out; a run another process started and left) is resumed once seen so
  // on two checks in a row (a run being submitted is not driven yet for a
  // moment), and why is recorded with it (event run_supervised). A resume
  // that cannot start yet (the store still locked, another process driving
  // the run) is tried again at the next check.
  void Supervise(std::ostream& log) {
    if (!std::filesystem::exists(options_.db_path)) return;
    scheduler::RunFilter filter;
    filter.state = scheduler::RunState::kRunning;
    absl::StatusOr<scheduler::RunList> runs = api::ListRuns(options_.db_path, filter);
    if (!runs.ok()) return;                       // the next check tries again
    std::map<std::string, std::string> undriven;  // run -> why
    for (const scheduler::RunSummary& summary : runs->runs) {
      std::string why = "no engine of this server drove it";
      std::thread finished;
      {
        std::lock_guard lock(mu_);
        auto found = runs_.find(summary.id);
        if (found != runs_.end()) {
          std::lock_guard end_lock(found->second.end->mu);
          if (!found->second.end->done) continue;
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
        if (stopped != stopped_.end()) why = StrCat("its engine stopped: ", stopped->second.why);
      }
      undriven[summary.id] = why;
      if (suspects_.count(summary.id) == 0) continue;  // resumed at the next check
      {
        std::lock_guard lock(mu_);
        auto found = runs_.find(summary.id);
        if (found != runs_.end()) {
          finished = std::move(found->second.thread);
          runs_.erase(found);
        }
      }
      if (finished.joinable()) finished.join();  // done: it returns at once
      const std::string id = summary.id;
      absl::StatusOr<std::string> resumed =
          Drive({}, static_cast<int>(summary.priority),
                [id](scheduler::Engine& engine) { return engine.Resume(id); });
      if (!resumed.ok()) {
        std::string& told = resume_errors_[id];
        if (told != resumed.status().message()) {
          told = std::string(resumed.status().message());
          log << "cannot resume run " << id << " yet: " << told << std::endl;
        }
        continue;
      }
      resume_errors_.erase(id);
      undriven.erase(id);
      {
        std::lock_guard lock(mu_);
        stopped_.erase(id);
      }
      log << "resumed run " << id << ": " << why << std::endl;
      if (absl::Status recorded = RecordSupervised(id, why); !recorded.ok()) {
        log << "run " << id << ": cannot record why it was resumed: " << recorded.message()
            << std::endl;
      }
    }
    suspects_.clear();
    for (const auto& [id, why] : undriven) suspects_.insert(id);
  }
  static constexpr std::chrono::milliseconds kSuperviseEvery{1000};

  grpc::Status GetRun(grpc::ServerContext* context, const v1::GetRunRequest* request,
                      v1::Run* reply) override {
    if (grpc::Status auth = CheckToken(*context, options_.client_token, "client"); !auth.ok()) {
      return auth;
    }
    return ToGrpc(ReadRun(request->run_id(), reply));
  }

  // The run now, then again each time any of it changes (read from the
  // store every 200 ms), until it ends or the client goes.
  grpc::Status WatchRun(grpc::ServerContext* context, const v1::GetRunRequest* request,
                        grpc::ServerWriter<v1::Run>* writer) override {
    if (grpc::Status auth = CheckToken(*context, options_.client_token, "client"); !auth.ok()) {
      return auth;
    }
    std::string last;
    std::string run_id = request->run_id();
    const int64_t since = WallClockMs();
    while (!context->IsCancelled()) {
      v1::Run run;
      if (absl::Status status = ReadRun(run_id, &run); !status.ok()) return ToGrpc(status);
      run_id = run.run_id();  // `last` stays the run it named first
      std::string now = run.SerializeAsString();
      if (now != last) {
        if (!writer->Write(run)) break;
        last = std::move(now);
      }
      if (run.state() != "running") break;
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
      v1::Run* run = reply->add_runs();
      run->set_run_id(summary.id);
      run->set_pipeline(summary.pipeline);
      run->set_state(std::string(scheduler::RunStateName(summary.state)));
      run->set_created_ms(summary.created_at_ms);
      run->set_finished_ms(summary.finished_at_ms.value_or(0));
      run->set_message(summary.message);
    }
    return grpc::Status::OK;
  }

  grpc::Status ListWorkers(grpc::ServerContext* context, const v1::ListWorkersRequest*,
                           v1::ListWorkersReply* reply) override {
    if (grpc::Status auth = CheckToken(*context, options_.client_token, "client"); !auth.ok()) {
      return auth;
    }
    registry_.Describe(reply);
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
    ChunkWriter data(writer, false);
    ChunkWriter notes(writer, true);
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
    absl::StatusOr<std::string> done = scheduler::CancelRun(options_.db_path, request->run_id());
    if (!done.ok()) return ToGrpc(done.status());
    reply->set_message(*done);
    return grpc::Status::OK;
  }

 private:
  absl::Status ReadRun(const std::string& run_id, v1::Run* reply) {
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
    return absl::OkStatus();
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

  // Starts an engine on a thread of its own doing `drive` (Run or Resume)
  // with a RemoteExecutor; returns the run's id once it has started, or why
  // it could not.
  absl::StatusOr<std::string> Drive(
      std::vector<scheduler::PlacementTier> tiers, int priority,
      std::function<absl::StatusOr<scheduler::RunResult>(scheduler::Engine&)> drive) {
    const uint64_t run_seq = ++run_seq_;
    scheduler::EngineOptions engine_options;
    engine_options.db_path = options_.db_path;
    engine_options.slots = 1 << 20;  // the workers' slots are the limit
    engine_options.worker = "";      // until a worker reports it runs the attempt
    engine_options.node_tiers_on_workers = true;
    engine_options.kill_leftovers_on_host = false;  // workers stop their own tasks
    engine_options.tiers = std::move(tiers);
    engine_options.open_tier = OpenTier;
    Registry* registry = &registry_;
    engine_options.make_executor =
        [registry, priority,
         run_seq](Executor::ReportCallback callback) -> absl::StatusOr<std::unique_ptr<Executor>> {
      return std::unique_ptr<Executor>(
          new RemoteExecutor(*registry, std::move(callback), priority, run_seq));
    };
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
    TF_ASSIGN_OR_RETURN(scheduler::Statement event,
                        db->Prepare("INSERT INTO events(run_id, time, kind, message) VALUES (?, ?, "
                                    "'run_supervised', ?)"));
    event.Bind(1, run_id).Bind(2, WallClockMs()).Bind(3, StrCat("the server resumed it: ", why));
    return event.Run();
  }

  const ServerOptions& options_;
  Registry& registry_;
  std::mutex mu_;
  std::map<std::string, Driven> runs_;
  std::map<std::string, Stopped> stopped_;  // guarded by mu_: engines that stopped on an error
  std::atomic<uint64_t> run_seq_{0};
  // Supervise's own (its caller's thread only): runs seen undriven at the
  // last check, and the last reason each one's resume failed.
  std::set<std::string> suspects_;
  std::map<std::string, std::string> resume_errors_;
};

class WorkersService final : public v1::Workers::Service {
 public:
  WorkersService(const ServerOptions& options, Registry& registry)
      : options_(options), registry_(registry) {}
  grpc::Status Connect(grpc::ServerContext* context, WorkerStream* stream) override {
    if (grpc::Status auth = CheckToken(*context, options_.worker_token, "worker"); !auth.ok()) {
      return auth;
    }
    return registry_.Serve(context, stream);
  }

 private:
  const ServerOptions& options_;
  Registry& registry_;
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
  Registry registry(options.worker_timeout, *cluster_id);
  SchedulerService scheduler_service(options, registry);
  WorkersService workers_service(options, registry);
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
    web.workers_json = [&registry] {
      v1::ListWorkersReply reply;
      registry.Describe(&reply);
      return RenderWorkersJson(FromProto(reply));
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
