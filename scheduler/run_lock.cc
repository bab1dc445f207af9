#include "scheduler/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <utility>
#include <vector>

#include "common/processes.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/units.h"
#include "scheduler/lineage_outbox.h"
#include "scheduler/resume.h"
#include "scheduler/run_queries.h"
#include "scheduler/sqlite.h"
#include "scheduler/store.h"

namespace tierflow::scheduler {
namespace fs = std::filesystem;

absl::StatusOr<RunLock> RunLock::Acquire(const fs::path& run_dir, const std::string& run_id) {
  std::error_code error;
  fs::create_directories(run_dir, error);
  if (error) {
    return absl::FailedPreconditionError(
        StrCat("cannot create the run folder ", run_dir.string(), ": ", error.message()));
  }
  std::string path = (run_dir / "lock").string();
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::PermissionDeniedError(StrCat("cannot open ", path, ": ", std::strerror(errno)));
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    close(fd);
    return absl::FailedPreconditionError(
        StrCat("run ", run_id, " is being driven by another tierflow process (", path,
               " is locked); wait for it or cancel it with: tierflow cancel ", run_id));
  }
  // Only messages read it: the lock itself is what counts.
  const std::string holder = StrCat(getpid(), " ", HostName(), "\n");
  if (ftruncate(fd, 0) == 0) (void)!pwrite(fd, holder.data(), holder.size(), 0);
  return RunLock(fd);
}

std::string RunLock::Holder(const fs::path& run_dir) {
  std::ifstream in(run_dir / "lock");
  std::string holder;
  std::getline(in, holder);
  return holder;
}

RunLock::RunLock(RunLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
RunLock& RunLock::operator=(RunLock&& other) noexcept {
  std::swap(fd_, other.fd_);
  return *this;
}
RunLock::~RunLock() {
  if (fd_ >= 0) close(fd_);
}

bool EngineAlive(int64_t pid, const std::string& host) {
  if (pid <= 0 || host != HostName()) return false;
  std::ifstream cmdline(StrCat("/proc/", pid, "/cmdline"), std::ios::binary);
  std::string argv0;
  if (!cmdline || !std::getline(cmdline, argv0, '\0')) return false;
  return fs::path(argv0).filename().string().rfind("tierflow", 0) == 0;
}

absl::StatusOr<std::string> CancelRun(const std::string& db_path, const std::string& run,
                                      const StopExecutorJobs& stop_jobs,
                                      const std::optional<lineage::ExportSettings>& outbox) {
  TF_ASSIGN_OR_RETURN(std::unique_ptr<Database> db, OpenStore(db_path));
  TF_ASSIGN_OR_RETURN(const std::string run_id, ResolveRunId(*db, run));
  auto not_running = [&]() -> absl::Status {
    TF_ASSIGN_OR_RETURN(Statement find, db->Prepare("SELECT state FROM runs WHERE id = ?"));
    find.Bind(1, run_id);
    TF_ASSIGN_OR_RETURN(bool found, find.Step());
    if (found && find.Text(0) == RunStateName(RunState::kRunning)) return absl::OkStatus();
    return absl::FailedPreconditionError(
        StrCat("run ", run_id, " is not running (it ", found ? find.Text(0) : "is gone", ")"));
  };
  TF_RETURN_IF_ERROR(not_running());

  // Whoever holds the run's lock drives it; the lock, not a recorded pid
  // (which the system may have given to another process), tells.
  std::error_code error;
  const fs::path run_dir = fs::absolute(fs::path(db_path).parent_path(), error) / "runs" / run_id;
  absl::StatusOr<RunLock> lock = RunLock::Acquire(run_dir, run_id);
  if (!lock.ok() && lock.status().code() != absl::StatusCode::kFailedPrecondition) {
    return lock.status();
  }
  if (!lock.ok()) {
    // Driven: ask its engine, which watches for the cancel file.
    TF_ASSIGN_OR_RETURN(Statement flag,
                        db->Prepare("UPDATE runs SET cancel_requested = 1 WHERE id = ?"));
    flag.Bind(1, run_id);
    TF_RETURN_IF_ERROR(flag.Run());
    const std::string path = (run_dir / kCancelFile).string();
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      return absl::PermissionDeniedError(StrCat("cannot ask the engine of run ", run_id,
                                                " to cancel: cannot create ", path, ": ",
                                                std::strerror(errno)));
    }
    close(fd);
    const std::string holder = RunLock::Holder(run_dir);
    return StrCat("cancel requested: the engine",
                  holder.empty() ? "" : StrCat(" (pid ", holder, ")"),
                  " is stopping the run's tasks and will record them cancelled");
  }
  // No engine, and none can start while the lock is held: record the end here.
  TF_ASSIGN_OR_RETURN(Statement find_executor,
                      db->Prepare("SELECT coalesce(executor, '') FROM runs WHERE id = ?"));
  find_executor.Bind(1, run_id);
  TF_ASSIGN_OR_RETURN(bool has_executor, find_executor.Step());
  const std::string executor = has_executor ? find_executor.Text(0) : "";
  std::string stopped;
  if (!executor.empty()) {
    if (!stop_jobs) {
      return absl::FailedPreconditionError(
          StrCat("run ", run_id, " runs on --executor ", executor,
                 " and this tierflow cannot stop its jobs; nothing was changed"));
    }
    TF_RETURN_IF_ERROR(stop_jobs(run_id, executor));
    stopped = StrCat(" and cancelled its ", executor, " jobs");
  }
  // An executor's attempts may run on this host (a one-machine cluster):
  // they were stopped through it, not searched for here.
  TF_ASSIGN_OR_RETURN(const int killed,
                      KillLeftoverTasks(*db, run_id, /*may_scan_host=*/executor.empty()));
  const int64_t now = WallClockMs();
  TF_ASSIGN_OR_RETURN(Transaction transaction, Transaction::Begin(*db));
  {
    TF_RETURN_IF_ERROR(not_running());  // an engine may have finished it meanwhile
    std::vector<std::pair<int64_t, AttemptState>> ended;
    TF_RETURN_IF_ERROR(EndInterruptedAttempts(*db, run_id, now, {}, &ended));
    TF_ASSIGN_OR_RETURN(Statement tasks,
                        db->Prepare("UPDATE tasks SET state = 'cancelled', finished_at = ?, "
                                    "message = 'the run was cancelled' WHERE run_id = ? AND state "
                                    "NOT IN ('succeeded', 'cached', 'failed', 'upstream_failed', "
                                    "'cancelled')"));
    tasks.Bind(1, now).Bind(2, run_id);
    TF_RETURN_IF_ERROR(tasks.Run());
    TF_ASSIGN_OR_RETURN(Statement run,
                        db->Prepare("UPDATE runs SET state = 'cancelled', finished_at = ?, "
                                    "cancel_requested = 1, engine_pid = NULL, message = 'cancelled "
                                    "after its engine stopped' WHERE id = ?"));
    run.Bind(1, now).Bind(2, run_id);
    TF_RETURN_IF_ERROR(run.Run());
    TF_ASSIGN_OR_RETURN(Statement event,
                        db->Prepare("INSERT INTO events(run_id, time, kind, message) VALUES (?, ?, "
                                    "'run_cancelled', 'cancelled after its engine stopped')"));
    event.Bind(1, run_id).Bind(2, now);
    TF_RETURN_IF_ERROR(event.Run());
    if (outbox) {
      lineage::OutboxQueue queue(*outbox);
      for (const auto& [attempt_id, state] : ended) {
        queue.Add({.run_id = run_id,
                   .attempt_id = attempt_id,
                   .type = lineage::AttemptEndType(state).value_or(lineage::EventType::kFail),
                   .event_ms = now});
      }
      queue.Add({.run_id = run_id,
                 .attempt_id = std::nullopt,
                 .type = lineage::EventType::kAbort,
                 .event_ms = now});
      TF_RETURN_IF_ERROR(queue.Flush(*db));
    }
  }
  TF_RETURN_IF_ERROR(transaction.Commit());
  return StrCat("run ", run_id, " had no live engine: recorded it cancelled", stopped,
                killed > 0 ? StrCat(" and killed ", killed, " leftover task(s)") : "");
}

}  // namespace tierflow::scheduler
