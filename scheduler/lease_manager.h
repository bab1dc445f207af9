// The worker registry of cluster mode and the leases it grants: workers
// register through a transport (api/cluster_server.cc: a gRPC stream each)
// behind the small WorkerChannel interface, so nothing here sees the wire;
// engines hand it their ready tasks through the Executor MakeExecutor
// returns; it leases each to the worker scheduler/lease_policy.h chooses,
// routes the workers' reports back to their engines, and declares a worker
// lost when its connection ends or it sends nothing for the timeout (read
// on an injected Clock), reporting its attempts kLost so their engines run
// them again. Thread-safe: every method may be called from any thread; it
// never calls a WorkerChannel or a ReportSink with its lock held.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/task.h"

namespace tierflow::scheduler {

// The lease manager's line to one connected worker. Each call is one
// message; one that cannot be delivered any more is dropped (the
// connection's end reaches the manager as Disconnected). Called from any
// thread, never with the manager's lock held.
class WorkerChannel {
 public:
  virtual ~WorkerChannel() = default;
  // Its registration went through; sent before any lease.
  virtual void Registered(const std::string& worker_id, const std::string& cluster_id,
                          std::chrono::milliseconds heartbeat_interval) = 0;
  virtual void Lease(const TaskLaunch& launch) = 0;
  // Several leases granted at once (several of its slots free), in order;
  // a transport that can carries them in one message.
  virtual void Leases(const std::vector<TaskLaunch>& launches) {
    for (const TaskLaunch& launch : launches) Lease(launch);
  }
  // Stop exactly this attempt: TERM then KILL after its grace, or KILL now.
  virtual void Cancel(int64_t attempt_id, bool kill_now) = 0;
  // It may delete its copy of `key` on its node tier `tier`.
  virtual void Evict(const std::string& tier, const std::string& key) = 0;
  // End the connection: it sent nothing for the timeout. The transport
  // then calls Disconnected, and the loss reads "no heartbeat".
  virtual void Close() = 0;
};

// Where the reports of one executor's attempts go, in order.
class ReportSink {
 public:
  virtual ~ReportSink() = default;
  virtual void Report(TaskReport report) = 0;
};

// What a worker registers with; 0 (or empty) where it says nothing.
struct WorkerSpec {
  std::string name;
  int slots = 0;        // at least 1
  double cpus = 0;      // 0: as many as its slots
  uint64_t memory = 0;  // bytes; 0: unlimited
  uint32_t gpus = 0;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> tiers;  // its node tiers: name -> path
};

// A registered worker as `tierflow workers` and the UI show it.
struct WorkerStatus {
  std::string name;
  std::string id;
  int slots = 0;
  int running = 0;
  int64_t last_heartbeat_ms = 0;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> tiers;
};

struct LeaseManagerOptions {
  std::string cluster_id;  // part of every worker id it issues
  // A worker that sends nothing for this long is lost.
  std::chrono::milliseconds worker_timeout{10000};
  const Clock* clock = &SystemClock();
};

class LeaseManager {
 public:
  explicit LeaseManager(LeaseManagerOptions options);
  ~LeaseManager();
  LeaseManager(const LeaseManager&) = delete;
  LeaseManager& operator=(const LeaseManager&) = delete;

  // --- the engines' side

  // An Executor for one engine: its tasks are queued here with `priority`
  // (higher first), then by `run_seq` (the order runs started in, earlier
  // first), then in the order they became ready. Its reports reach
  // `callback` in order on a thread of their own, so an engine that waits
  // never holds up a worker; none once the executor is destroyed.
  std::unique_ptr<Executor> MakeExecutor(Executor::ReportCallback callback, int priority,
                                         uint64_t run_seq);
  // Queues a task (MakeExecutor's Launch). Safe to repeat: an attempt id
  // already queued or leased keeps its place or its lease.
  void Submit(TaskLaunch launch, std::shared_ptr<ReportSink> sink, int priority, uint64_t run_seq);
  // A queued attempt is reported kCancelled at once; a leased one is
  // cancelled on its worker, which reports how it ended.
  void Cancel(int64_t attempt_id, bool kill_now);
  // `worker` may delete its copy of `key` on its node tier `tier`.
  void EvictNodeCopy(const std::string& worker, const std::string& tier, const std::string& key);

  // --- the transport's side

  // Registers a connected worker and returns the id it is known by from
  // now on (NAME@CLUSTER#RANDOM: a worker that registers again under the
  // same name gets a new one). ALREADY_EXISTS while a worker of that name
  // is connected.
  absl::StatusOr<std::string> Register(WorkerSpec spec, std::shared_ptr<WorkerChannel> channel);
  // Anything it sent: a heartbeat, a report.
  void Heard(const std::string& worker_id);
  // A report of an attempt leased to it; one of an attempt it no longer
  // holds (lost, or a former identity's) is dropped.
  void Report(const std::string& worker_id, TaskReport report);
  // Its connection ended: it is lost, and so are its attempts.
  void Disconnected(const std::string& worker_id);

  // Closes the connection of every worker silent for the timeout; called
  // every so often (a fraction of the timeout) by the transport.
  void CheckLiveness();

  // The registered workers, in name order.
  std::vector<WorkerStatus> Workers() const;
  // Why a queued attempt waits (lease_policy.h WhyNoWorkerFits); nullopt
  // when it is not queued.
  std::optional<std::string> WhyWaiting(int64_t attempt_id) const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tierflow::scheduler
