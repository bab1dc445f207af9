// Who drives a run, and how another process stops it. RunLock is the
// exclusive lock on runs/RUN/lock that an engine holds while it drives a run
// (and `tierflow cancel` while it records an undriven run cancelled); the
// cancel file is how `tierflow cancel` asks the driving engine to stop.
// flock: the kernel releases the lock when its holder dies, even by kill -9,
// so "the lock is free" means "nobody drives this run".
//
// Thread-safety: RunLock is a move-only owner, used by one thread; CancelRun
// and EngineAlive may be called from any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "scheduler/lineage_events.h"

namespace tierflow::scheduler {

class RunLock {
 public:
  // Creates `run_dir` if needed and takes its lock. FailedPrecondition,
  // saying how to cancel the run, when another open file description holds
  // it. The holder's "pid host" is written into the file, for messages only.
  static absl::StatusOr<RunLock> Acquire(const std::filesystem::path& run_dir,
                                         const std::string& run_id);
  // "pid host" of the process that last took the lock of `run_dir`.
  static std::string Holder(const std::filesystem::path& run_dir);

  RunLock(RunLock&& other) noexcept;
  RunLock& operator=(RunLock&& other) noexcept;
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;
  ~RunLock();

 private:
  explicit RunLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// The file in a run's folder whose creation asks its engine to cancel; the
// engine watches for it (FileWatcher) and removes a stale one on resume.
inline constexpr char kCancelFile[] = "cancel";

// `tierflow cancel`: `run` is a run id or `last`. When an engine drives the
// run (it holds the run's lock, runs/RUN/lock), asks it to cancel: sets
// cancel_requested and creates runs/RUN/cancel, which the engine watches.
// When none does (it was killed), records the run cancelled in the store
// itself, holding the lock: unfinished tasks cancelled, running attempts
// lost, leftover task processes killed. Returns what was done, for the user.
// A run whose attempts outlive the engine (runs.executor set, e.g. "slurm")
// first has `stop_jobs(run_id, executor)` stop them where they run (its
// error stops the cancel, nothing recorded); this host's processes are
// then not searched.
using StopExecutorJobs =
    std::function<absl::Status(const std::string& run_id, const std::string& executor)>;
// With `outbox` (an OpenLineage endpoint is configured), the ends it records
// put their events in the outbox (lineage_outbox.h) in the same transaction.
absl::StatusOr<std::string> CancelRun(
    const std::string& db_path, const std::string& run, const StopExecutorJobs& stop_jobs = nullptr,
    const std::optional<lineage::ExportSettings>& outbox = std::nullopt);

// True when `pid` on `host` is a live tierflow process (this host only): a
// hint for listings; CancelRun decides by the run's lock.
bool EngineAlive(int64_t pid, const std::string& host);

}  // namespace tierflow::scheduler
