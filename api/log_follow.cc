// `tierflow logs` (run_service.h WriteLog): prints an attempt's log, or
// follows it as it grows (common/file_watcher.h's Follow on the log and its
// folder, with a bounded re-check of the state store) on to each newer
// attempt of the task. Each call owns its file descriptor, watch and store
// connection; safe from any thread.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "api/internal/log_tail.h"
#include "api/internal/run_render.h"
#include "api/run_service.h"
#include "common/file_watcher.h"
#include "common/status.h"
#include "common/strings.h"
#include "scheduler/store.h"

namespace tierflow::api {
namespace {

// Wakes a follower on changes to one log and its folder, through the
// process's FileWatcher: appends, the writer closing the log, files
// appearing in the folder (the log itself, or the next attempt's), the log
// going away. Without a watch (no inotify, the folder not there yet) the
// bounded wait stands in for the events.
class LogWatch {
 public:
  // (Re)points the watch at `path`, which may not exist yet.
  void Watch(const std::string& path) {
    watch_.reset();
    path_ = path;
    Retry();
  }

  // Tries again to watch, when the last try failed.
  void Retry() {
    if (watch_ != nullptr) return;
    absl::StatusOr<FileWatcher*> watcher = FileWatcher::Get();
    if (!watcher.ok()) return;
    absl::StatusOr<std::unique_ptr<FileWatcher::Watch>> watch =
        (*watcher)->Follow(path_, [this](FileWatcher::Change change) {
          std::lock_guard lock(mu_);
          woken_ = true;
          if (change != FileWatcher::Change::kWritten) check_ = true;
          changed_.notify_all();
        });
    if (watch.ok()) watch_ = std::move(*watch);
  }

  // Waits up to `timeout` for a change. Returns true when one suggests the
  // attempt may have ended (the log closed by its writer or gone, a new
  // file in the folder): worth re-checking the store at once.
  bool Wait(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    changed_.wait_for(lock, timeout, [this] { return woken_; });
    const bool check = check_;
    woken_ = false;
    check_ = false;
    return check;
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  bool woken_ = false;  // guarded by mu_: a change since the last Wait
  bool check_ = false;  // guarded by mu_: one worth re-checking the store for
  std::string path_;
  std::unique_ptr<FileWatcher::Watch> watch_;  // last: gone before what its callback uses
};

absl::Status PrintWhole(const AttemptRow& attempt, std::ostream& out, std::ostream& notes) {
  Tail tail(attempt.log_path);
  TF_RETURN_IF_ERROR(tail.TryOpen());
  if (!tail.open()) {
    if (attempt.state == scheduler::AttemptState::kRunning) {
      notes << Printable(StrCat(attempt.task_id, " attempt ", attempt.number,
                                " has written nothing yet (follow it with -f)"))
            << '\n';
      return absl::OkStatus();
    }
    if (attempt.log_bytes == 0) {  // no file is made for an attempt that writes nothing
      notes << Printable(StrCat(attempt.task_id, " attempt ", attempt.number, " wrote nothing"))
            << '\n';
      return absl::OkStatus();
    }
    return absl::NotFoundError(StrCat("the log of ", attempt.task_id, " attempt ", attempt.number,
                                      " of run ", attempt.run_id, " is gone: ", attempt.log_path));
  }
  return tail.Drain(out);
}

absl::Status Follow(Database& db, const LogRequest& request, AttemptRow attempt, std::ostream& out,
                    std::ostream& notes) {
  const bool latest = request.attempt == 0;
  LogWatch watch;
  auto tail = std::make_unique<Tail>(attempt.log_path);
  watch.Watch(tail->path());
  auto next_check = std::chrono::steady_clock::now();
  for (;;) {
    // Watch first, then open and read: nothing appended in between is lost.
    watch.Retry();
    TF_RETURN_IF_ERROR(tail->TryOpen());
    TF_RETURN_IF_ERROR(tail->Drain(out));

    if (std::chrono::steady_clock::now() >= next_check) {
      TF_ASSIGN_OR_RETURN(scheduler::RunStatus run, SettledRunStatus(db, attempt.run_id));
      TF_ASSIGN_OR_RETURN(AttemptRow current, scheduler::GetAttempt(db, attempt.id));
      const bool running = current.state == scheduler::AttemptState::kRunning;
      const bool run_going = run.state == scheduler::RunState::kRunning;
      if (!running || !run_going || run.engine == EngineStatus::kGone) {
        // The attempt's writes all happened before its state changed.
        TF_RETURN_IF_ERROR(tail->TryOpen());
        TF_RETURN_IF_ERROR(tail->Drain(out));
        if (latest) {
          TF_ASSIGN_OR_RETURN(AttemptRow last,
                              scheduler::FindAttempt(db, attempt.run_id, attempt.task_id));
          if (last.number > attempt.number) {
            notes << Printable(StrCat("--- ", last.task_id, " attempt ", last.number, " (",
                                      StateWord(last.state), ")"))
                  << '\n';
            if (last.log_path.empty()) {
              // Cached: it ran nothing and the task is done.
              TF_ASSIGN_OR_RETURN(AttemptRow original, AttemptWithLog(db, std::move(last), notes));
              return PrintWhole(original, out, notes);
            }
            attempt = std::move(last);
            tail = std::make_unique<Tail>(attempt.log_path);
            watch.Watch(tail->path());
            continue;  // next_check is due: the new attempt is checked at once
          }
        }
        if (!run_going) return absl::OkStatus();
        if (run.engine == EngineStatus::kGone) {
          notes << Printable(StrCat("the engine of run ", attempt.run_id,
                                    " is gone; stopped following (resume with: tierflow resume ",
                                    attempt.run_id, ")"))
                << '\n';
          return absl::OkStatus();
        }
        if (!latest) return absl::OkStatus();
        TF_ASSIGN_OR_RETURN(TaskRow task, scheduler::FindTask(db, attempt.run_id, attempt.task_id));
        if (scheduler::IsTerminal(task.state)) return absl::OkStatus();
        // Retrying: the next attempt's log will appear in the same folder.
      }
      next_check = std::chrono::steady_clock::now() + request.recheck;
    }
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
        next_check - std::chrono::steady_clock::now());
    if (watch.Wait(std::max(wait, std::chrono::milliseconds(0)))) {
      next_check = std::chrono::steady_clock::now();
    }
  }
}

// Why a task that has not started now never will, or "" while it still
// may: it ended without an attempt (upstream failed, cancelled), the run
// ended, or the run's engine is gone.
std::string WillNotStart(const TaskRow& task, const scheduler::RunStatus& run,
                         const std::string& run_id) {
  const std::string name = Printable(task.id);
  const std::string message = task.message.empty() ? "" : ": " + Printable(task.message);
  switch (task.state) {
    case scheduler::TaskState::kUpstreamFailed:
      return StrCat(name, " will not run", message.empty() ? ": an upstream task failed" : message);
    case scheduler::TaskState::kCancelled:
      return StrCat(name, " will not run: it was cancelled", message);
    case scheduler::TaskState::kFailed:
      return StrCat(name, " failed before it started", message);
    default:
      break;
  }
  if (scheduler::IsTerminal(task.state)) {
    return StrCat(name, " ended (", StateWord(task.state), ") without an attempt", message);
  }
  if (run.state != scheduler::RunState::kRunning) {
    return StrCat(name, " will not run: run ", Printable(run_id), " ended (", StateWord(run.state),
                  ") without running it");
  }
  if (run.engine == EngineStatus::kGone) {
    return StrCat(name, " has not started and will not while run ", Printable(run_id),
                  " has no engine: its tierflow process is gone (resume with: tierflow resume ",
                  Printable(run_id), ")");
  }
  return "";
}

// What holds a task back, for the note printed while waiting.
absl::StatusOr<std::string> WhyWaiting(Database& db, const TaskRow& task) {
  if (task.state == scheduler::TaskState::kQueued) return "it is queued, waiting for a free slot";
  if (task.state != scheduler::TaskState::kPending) {
    return StrCat("it is ", StateWord(task.state));
  }
  TF_ASSIGN_OR_RETURN(scheduler::RunDetail detail,
                      scheduler::GetRunDetail(db, task.run_id, /*now_ms=*/0));
  std::vector<std::string> before;
  size_t unfinished = 0;
  for (const TaskRow& other : detail.tasks) {
    if (other.layer >= task.layer || scheduler::IsTerminal(other.state)) continue;
    if (++unfinished <= 3) before.push_back(Printable(other.id));
  }
  if (unfinished == 0) return "it is pending";
  std::string names;
  for (const std::string& name : before) names += StrCat(names.empty() ? "" : ", ", name);
  return StrCat("it is pending behind ", unfinished, " unfinished task", unfinished == 1 ? "" : "s",
                " of earlier layers (", names, unfinished > before.size() ? ", ..." : "", ")");
}

// Waits until the task's first attempt is recorded. FailedPrecondition,
// saying why, once it can no longer start.
absl::Status WaitForStart(Database& db, const LogRequest& request, const std::string& run_id,
                          std::ostream& notes) {
  const auto poll = std::min<std::chrono::milliseconds>(
      std::chrono::duration_cast<std::chrono::milliseconds>(request.recheck),
      std::chrono::milliseconds(250));
  std::string said;
  auto next_note = std::chrono::steady_clock::now();
  for (;;) {
    absl::StatusOr<AttemptRow> attempt = scheduler::FindAttempt(db, run_id, request.task);
    if (attempt.ok()) return absl::OkStatus();
    if (!absl::IsNotFound(attempt.status())) return attempt.status();
    TF_ASSIGN_OR_RETURN(TaskRow task, scheduler::FindTask(db, run_id, request.task));
    TF_ASSIGN_OR_RETURN(scheduler::RunStatus run, SettledRunStatus(db, run_id));
    if (std::string why = WillNotStart(task, run, run_id); !why.empty()) {
      // The task may have started between the reads: look once more.
      if (scheduler::FindAttempt(db, run_id, request.task).ok()) return absl::OkStatus();
      return absl::FailedPreconditionError(why);
    }
    if (std::chrono::steady_clock::now() >= next_note) {
      TF_ASSIGN_OR_RETURN(std::string why, WhyWaiting(db, task));
      if (why != said) {
        notes << "waiting for " << Printable(task.id) << " to start: " << why << std::endl;
        said = why;
      }
      next_note = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    }
    std::this_thread::sleep_for(poll);
  }
}

}  // namespace

absl::StatusOr<AttemptRow> AttemptWithLog(Database& db, AttemptRow attempt, std::ostream& notes) {
  for (int hops = 0; attempt.log_path.empty() && attempt.cached_from && hops < 16; ++hops) {
    TF_ASSIGN_OR_RETURN(AttemptRow original, scheduler::GetAttempt(db, *attempt.cached_from));
    notes << Printable(StrCat(attempt.task_id, " attempt ", attempt.number, " of run ",
                              attempt.run_id, " ran nothing: it reused the outputs of ",
                              original.run_id, "/", original.task_id, " attempt ", original.number,
                              " (#", original.id, "), whose log follows"))
          << '\n';
    attempt = std::move(original);
  }
  if (attempt.log_path.empty()) {
    return absl::NotFoundError(StrCat(attempt.task_id, " attempt ", attempt.number, " of run ",
                                      attempt.run_id, " has no log"));
  }
  return attempt;
}

absl::StatusOr<scheduler::RunStatus> SettledRunStatus(Database& db, const std::string& run_id) {
  TF_ASSIGN_OR_RETURN(scheduler::RunStatus status, scheduler::GetRunStatus(db, run_id));
  // An engine ending the run writes its final state, then lets go of the
  // run's lock: a read between the two sees "running" and no engine. A
  // second read, after the lock was seen free, sees the final state.
  if (status.engine != EngineStatus::kGone) return status;
  return scheduler::GetRunStatus(db, run_id);
}

absl::Status WriteLog(const LogRequest& request, std::ostream& out, std::ostream& notes) {
  if (request.task.empty()) return WriteRunLogs(request, out, notes);
  TF_ASSIGN_OR_RETURN(std::unique_ptr<Database> db, OpenReadOnly(request.db));
  TF_ASSIGN_OR_RETURN(std::string run_id, scheduler::ResolveRunId(*db, request.run));
  if (request.follow && request.attempt == 0) {
    // A task that has not started yet is waited for.
    TF_RETURN_IF_ERROR(WaitForStart(*db, request, run_id, notes));
  }
  TF_ASSIGN_OR_RETURN(AttemptRow attempt,
                      scheduler::FindAttempt(*db, run_id, request.task, request.attempt));
  // A cached attempt ran nothing and is over: show the log it stands for.
  const bool cached = attempt.log_path.empty();
  TF_ASSIGN_OR_RETURN(attempt, AttemptWithLog(*db, std::move(attempt), notes));
  if (!request.follow || cached) return PrintWhole(attempt, out, notes);
  return Follow(*db, request, std::move(attempt), out, notes);
}

}  // namespace tierflow::api
