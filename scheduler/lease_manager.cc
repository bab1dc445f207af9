#include "scheduler/lease_manager.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "common/strings.h"
#include "scheduler/lease_policy.h"

namespace tierflow::scheduler {
namespace {

// A ReportSink that hands reports to its engine in order on a thread of
// its own, so an engine that waits (a busy database) never holds up a
// worker's stream, its heartbeats or other runs' reports. Closed once its
// executor is gone: late reports are dropped.
class QueuedReportSink final : public ReportSink {
 public:
  explicit QueuedReportSink(Executor::ReportCallback callback)
      : callback_(std::move(callback)), thread_([this] { Deliver(); }) {}
  ~QueuedReportSink() override { Close(); }
  void Report(TaskReport report) override {
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

class LeaseExecutor final : public Executor {
 public:
  LeaseExecutor(LeaseManager& manager, ReportCallback callback, int priority, uint64_t run_seq)
      : manager_(manager),
        sink_(std::make_shared<QueuedReportSink>(std::move(callback))),
        priority_(priority),
        run_seq_(run_seq) {}
  ~LeaseExecutor() override { sink_->Close(); }
  void Launch(TaskLaunch launch) override {
    {
      std::lock_guard lock(mu_);
      attempts_.insert(launch.attempt_id);
    }
    manager_.Submit(std::move(launch), sink_, priority_, run_seq_);
  }
  void Cancel(int64_t attempt_id) override { manager_.Cancel(attempt_id, false); }
  void Kill(int64_t attempt_id) override { manager_.Cancel(attempt_id, true); }
  void EvictNodeCopy(const std::string& worker, const std::string& tier,
                     const std::string& key) override {
    manager_.EvictNodeCopy(worker, tier, key);
  }
  // Only this run's attempts: each worker kills exactly the ones named.
  void KillAll() override {
    std::set<int64_t> attempts;
    {
      std::lock_guard lock(mu_);
      attempts = attempts_;
    }
    for (int64_t attempt : attempts) manager_.Cancel(attempt, true);
  }

 private:
  LeaseManager& manager_;
  const std::shared_ptr<QueuedReportSink> sink_;
  const int priority_;
  const uint64_t run_seq_;
  std::mutex mu_;
  std::set<int64_t> attempts_;  // every attempt launched (KillAll skips finished ones)
};

}  // namespace

class LeaseManager::Impl {
 public:
  explicit Impl(LeaseManagerOptions options) : options_(std::move(options)) {}

  void Submit(TaskLaunch launch, std::shared_ptr<ReportSink> sink, int priority, uint64_t run_seq) {
    {
      std::lock_guard lock(mu_);
      const int64_t attempt = launch.attempt_id;
      if (queued_.count(attempt) > 0 || leases_.count(attempt) > 0) return;
      // The queue is in order, and the tasks that go after this one are its
      // tail: looked for from the back, where a run's next task almost
      // always goes (from the front, queueing 10,000 ready tasks took
      // 50 million comparisons).
      auto goes_after = [&](const Pending& p) {
        return p.priority < priority || (p.priority == priority && p.run_seq > run_seq);
      };
      auto after = std::find_if_not(pending_.rbegin(), pending_.rend(), goes_after).base();
      pending_.insert(after, {std::move(launch), std::move(sink), priority, run_seq});
      queued_.insert(attempt);
    }
    Dispatch();
  }

  void Cancel(int64_t attempt, bool kill_now) {
    std::shared_ptr<WorkerChannel> channel;
    std::shared_ptr<ReportSink> sink;
    {
      std::lock_guard lock(mu_);
      auto queued = std::find_if(pending_.begin(), pending_.end(),
                                 [&](const Pending& p) { return p.launch.attempt_id == attempt; });
      if (queued != pending_.end()) {
        sink = queued->sink;
        pending_.erase(queued);
        queued_.erase(attempt);
      } else {
        auto leased = leases_.find(attempt);
        if (leased == leases_.end()) return;
        channel = leased->second.worker->channel;
      }
    }
    if (channel) {
      channel->Cancel(attempt, kill_now);
      return;
    }
    TaskReport report;
    report.attempt_id = attempt;
    report.outcome = TaskReport::Outcome::kCancelled;
    report.message = "cancelled before a worker took it";
    sink->Report(std::move(report));
  }

  void EvictNodeCopy(const std::string& name, const std::string& tier, const std::string& key) {
    std::shared_ptr<WorkerChannel> channel;
    {
      std::lock_guard lock(mu_);
      auto found = workers_.find(name);
      if (found == workers_.end()) return;  // gone: it cleared its node tiers
      found->second->policy.held.erase(HeldKey(tier, key));
      channel = found->second->channel;
    }
    channel->Evict(tier, key);
  }

  absl::StatusOr<std::string> Register(WorkerSpec spec, std::shared_ptr<WorkerChannel> channel) {
    auto worker = std::make_shared<Worker>();
    LeaseWorker& policy = worker->policy;
    policy.name = spec.name;
    policy.slots = std::max(1, spec.slots);
    policy.capacity.cpus = spec.cpus > 0 ? spec.cpus : policy.slots;
    policy.capacity.memory = spec.memory > 0 ? spec.memory : UINT64_MAX;
    policy.capacity.gpus = spec.gpus;
    policy.labels = std::move(spec.labels);
    policy.tiers = std::move(spec.tiers);
    worker->channel = std::move(channel);
    {
      std::lock_guard lock(mu_);
      if (workers_.count(policy.name) > 0) {
        return absl::AlreadyExistsError(
            StrCat("a worker named ", policy.name, " is connected already"));
      }
      worker->last_seen_ms = options_.clock->NowMs();
      worker->id = StrCat(policy.name, "@", options_.cluster_id, "#", RandomHex(4));
      workers_[policy.name] = worker;
      by_id_[worker->id] = worker;
    }
    // Told before it is leased anything (it is not `ready` until then).
    worker->channel->Registered(worker->id, options_.cluster_id, HeartbeatInterval());
    {
      std::lock_guard lock(mu_);
      worker->ready = true;
    }
    Dispatch();
    return worker->id;
  }

  void Heard(const std::string& worker_id) {
    std::lock_guard lock(mu_);
    auto found = by_id_.find(worker_id);
    if (found != by_id_.end()) found->second->last_seen_ms = options_.clock->NowMs();
  }

  void Report(const std::string& worker_id, TaskReport report) {
    std::shared_ptr<ReportSink> sink;
    bool freed = false;
    {
      std::lock_guard lock(mu_);
      auto found = by_id_.find(worker_id);
      if (found == by_id_.end()) return;
      Worker& worker = *found->second;
      auto leased = leases_.find(report.attempt_id);
      // Not leased to this worker (any more): a late report of a lost
      // lease, never counted.
      if (leased == leases_.end() || leased->second.worker.get() != &worker) return;
      report.worker = worker.policy.name;
      report.worker_id = worker.id;
      sink = leased->second.sink;
      if (report.outcome == TaskReport::Outcome::kStarted) {
        leased->second.started = true;
        report.message = leased->second.why;
        for (const NodeCopyReport& copy : report.node_copies) {
          if (copy.error.empty()) worker.policy.held[HeldKey(copy.tier, copy.key)] = copy.bytes;
        }
      }
      if (report.outcome == TaskReport::Outcome::kSucceeded) {
        // Where its outputs are, for the locality of their readers: the
        // file or folder, and a foreach item's gathering folder.
        for (const OutputReport& output : report.outputs) {
          produced_on_[output.path] = worker.policy.name;
          produced_on_[std::filesystem::path(output.path).parent_path().string()] =
              worker.policy.name;
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

  // Its leased attempts failed (the engine retries them as their retries
  // allow); reports it may still send are dropped.
  void Disconnected(const std::string& worker_id) {
    struct Orphan {
      int64_t attempt;
      std::shared_ptr<ReportSink> sink;
      bool started;
    };
    std::vector<Orphan> orphans;
    std::string name;
    bool silent = false;
    {
      std::lock_guard lock(mu_);
      auto found = by_id_.find(worker_id);
      if (found == by_id_.end()) return;
      const std::shared_ptr<Worker> worker = found->second;
      by_id_.erase(found);
      workers_.erase(worker->policy.name);
      name = worker->policy.name;
      silent = worker->silent;
      for (int64_t attempt : std::set<int64_t>(worker->attempts)) {
        auto leased = leases_.find(attempt);
        if (leased == leases_.end()) continue;
        orphans.push_back({attempt, leased->second.sink, leased->second.started});
        EndLease(leased);
      }
    }
    // A worker killed -9, or whose network went, ends its connection; only
    // CheckLiveness's cut is silence.
    const std::string what =
        silent ? StrCat("worker ", name, " was lost (no heartbeat in ", TimeoutText(), ")")
               : StrCat("worker ", name, " disconnected (its connection to the server ended)");
    for (Orphan& orphan : orphans) {
      TaskReport report;
      report.attempt_id = orphan.attempt;
      report.outcome = TaskReport::Outcome::kLost;
      report.worker_id = worker_id;
      report.message = StrCat(what, orphan.started ? "" : " before it started this attempt",
                              "; running it again");
      orphan.sink->Report(std::move(report));
    }
    Dispatch();
  }

  void CheckLiveness() {
    std::vector<std::shared_ptr<WorkerChannel>> silent;
    {
      std::lock_guard lock(mu_);
      const int64_t now = options_.clock->NowMs();
      for (const auto& [name, worker] : workers_) {
        if (!worker->silent && now - worker->last_seen_ms > options_.worker_timeout.count()) {
          worker->silent = true;
          silent.push_back(worker->channel);
        }
      }
    }
    for (const auto& channel : silent) channel->Close();
  }

  std::vector<WorkerStatus> Workers() const {
    std::lock_guard lock(mu_);
    std::vector<WorkerStatus> out;
    for (const auto& [name, worker] : workers_) {
      out.push_back({name, worker->id, worker->policy.slots, worker->policy.running,
                     worker->last_seen_ms, worker->policy.labels, worker->policy.tiers});
    }
    return out;
  }

  std::optional<std::string> WhyWaiting(int64_t attempt) const {
    std::lock_guard lock(mu_);
    auto queued = std::find_if(pending_.begin(), pending_.end(),
                               [&](const Pending& p) { return p.launch.attempt_id == attempt; });
    if (queued == pending_.end()) return std::nullopt;
    return WhyNoWorkerFits(queued->launch, ReadyWorkers());
  }

 private:
  struct Worker {
    LeaseWorker policy;  // what the lease policy sees (running, used, held: guarded by mu_)
    std::string id;
    std::shared_ptr<WorkerChannel> channel;
    std::set<int64_t> attempts;  // leased, not finished (guarded by mu_)
    int64_t last_seen_ms = 0;    // guarded by mu_
    bool ready = false;          // told it is registered: it may be leased tasks (guarded by mu_)
    bool silent = false;  // its connection was closed for want of heartbeats (guarded by mu_)
  };
  struct Pending {
    TaskLaunch launch;
    std::shared_ptr<ReportSink> sink;
    int priority = 0;
    uint64_t run_seq = 0;
  };
  struct Lease {
    std::shared_ptr<Worker> worker;
    std::shared_ptr<ReportSink> sink;
    WorkerResources asked;
    std::string why;       // the reason for the choice, told with the start
    bool started = false;  // the worker reported it started
  };

  std::chrono::milliseconds HeartbeatInterval() const {
    return std::max(std::chrono::milliseconds(100), options_.worker_timeout / 4);
  }

  // The workers that may be leased tasks, in name order (mu_ held).
  std::vector<const LeaseWorker*> ReadyWorkers() const {
    std::vector<const LeaseWorker*> ready;
    for (const auto& [name, worker] : workers_) {
      if (worker->ready) ready.push_back(&worker->policy);
    }
    return ready;
  }

  // Leases queued tasks, in order, each to the worker the policy chooses.
  // A task that fits no worker now waits, without holding back the ones
  // behind it.
  void Dispatch() {
    std::vector<std::pair<std::shared_ptr<WorkerChannel>, TaskLaunch>> sends;
    {
      std::lock_guard lock(mu_);
      std::vector<Worker*> ready;
      for (const auto& [name, worker] : workers_) {
        if (worker->ready) ready.push_back(worker.get());
      }
      std::vector<const LeaseWorker*> candidates;
      int free_slots = 0;
      for (Worker* worker : ready) {
        candidates.push_back(&worker->policy);
        free_slots += std::max(0, worker->policy.FreeSlots());
      }
      // With every slot taken nothing can be leased: the queue (all the
      // ready tasks of every run, thousands at times) is not looked at.
      for (auto next = pending_.begin(); next != pending_.end() && free_slots > 0;) {
        std::optional<LeaseChoice> choice = ChooseWorker(next->launch, candidates, produced_on_);
        if (!choice) {
          ++next;
          continue;
        }
        const TaskLaunch& launch = next->launch;
        Worker& best = *ready[choice->index];
        best.attempts.insert(launch.attempt_id);
        best.policy.running = static_cast<int>(best.attempts.size());
        --free_slots;
        best.policy.used.cpus += launch.cpus;
        best.policy.used.memory += launch.memory;
        best.policy.used.gpus += launch.gpus;
        leases_[launch.attempt_id] = {workers_[best.policy.name],
                                      next->sink,
                                      {launch.cpus, launch.memory, launch.gpus},
                                      std::move(choice->reason)};
        queued_.erase(launch.attempt_id);
        sends.emplace_back(best.channel, std::move(next->launch));
        next = pending_.erase(next);
      }
    }
    // The leases of one worker go together, in order: one message when
    // several of its slots were free.
    while (!sends.empty()) {
      std::shared_ptr<WorkerChannel> channel = sends.front().first;
      std::vector<TaskLaunch> launches;
      auto mine = std::stable_partition(sends.begin(), sends.end(),
                                        [&](const auto& send) { return send.first == channel; });
      for (auto send = sends.begin(); send != mine; ++send) {
        launches.push_back(std::move(send->second));
      }
      sends.erase(sends.begin(), mine);
      if (launches.size() == 1) {
        channel->Lease(launches.front());
      } else {
        channel->Leases(launches);
      }
    }
  }

  // Ends a lease (mu_ held): its worker's slot and resources are free again.
  void EndLease(std::unordered_map<int64_t, Lease>::iterator lease) {
    Worker& worker = *lease->second.worker;
    worker.attempts.erase(lease->first);
    worker.policy.running = static_cast<int>(worker.attempts.size());
    worker.policy.used.cpus -= lease->second.asked.cpus;
    worker.policy.used.memory -= lease->second.asked.memory;
    worker.policy.used.gpus -= lease->second.asked.gpus;
    leases_.erase(lease);
  }

  // "10 s", "2.5 s": the worker timeout, as the loss reasons say it.
  std::string TimeoutText() const {
    const int64_t ms = options_.worker_timeout.count();
    if (ms % 1000 == 0) return StrCat(ms / 1000, " s");
    return StrCat(ms / 1000, ".", (ms % 1000) / 100, " s");
  }

  const LeaseManagerOptions options_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Worker>> workers_;          // by name; guarded by mu_
  std::unordered_map<std::string, std::shared_ptr<Worker>> by_id_;  // guarded by mu_
  std::deque<Pending> pending_;                                     // guarded by mu_
  std::unordered_set<int64_t> queued_;         // pending_'s attempt ids; guarded by mu_
  std::unordered_map<int64_t, Lease> leases_;  // guarded by mu_
  ProducedOn produced_on_;                     // guarded by mu_
};

LeaseManager::LeaseManager(LeaseManagerOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}
LeaseManager::~LeaseManager() = default;

std::unique_ptr<Executor> LeaseManager::MakeExecutor(Executor::ReportCallback callback,
                                                     int priority, uint64_t run_seq) {
  return std::make_unique<LeaseExecutor>(*this, std::move(callback), priority, run_seq);
}
void LeaseManager::Submit(TaskLaunch launch, std::shared_ptr<ReportSink> sink, int priority,
                          uint64_t run_seq) {
  impl_->Submit(std::move(launch), std::move(sink), priority, run_seq);
}
void LeaseManager::Cancel(int64_t attempt_id, bool kill_now) {
  impl_->Cancel(attempt_id, kill_now);
}
void LeaseManager::EvictNodeCopy(const std::string& worker, const std::string& tier,
                                 const std::string& key) {
  impl_->EvictNodeCopy(worker, tier, key);
}
absl::StatusOr<std::string> LeaseManager::Register(WorkerSpec spec,
                                                   std::shared_ptr<WorkerChannel> channel) {
  return impl_->Register(std::move(spec), std::move(channel));
}
void LeaseManager::Heard(const std::string& worker_id) { impl_->Heard(worker_id); }
void LeaseManager::Report(const std::string& worker_id, TaskReport report) {
  impl_->Report(worker_id, std::move(report));
}
void LeaseManager::Disconnected(const std::string& worker_id) { impl_->Disconnected(worker_id); }
void LeaseManager::CheckLiveness() { impl_->CheckLiveness(); }
std::vector<WorkerStatus> LeaseManager::Workers() const { return impl_->Workers(); }
std::optional<std::string> LeaseManager::WhyWaiting(int64_t attempt_id) const {
  return impl_->WhyWaiting(attempt_id);
}

}  // namespace tierflow::scheduler
