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
#include <utility>

#include "api/internal/run_render.h"
#include "api/run_service.h"
#include "common/file_watcher.h"
#include "common/status.h"
#include "common/strings.h"
#include "scheduler/store.h"

namespace tierflow::api {
namespace {

// Reads a growing file from where it left off.
class Tail {
 public:
  explicit Tail(std::string path) : path_(std::move(path)) {}
  ~Tail() {
    if (fd_ >= 0) close(fd_);
  }
  Tail(const Tail&) = delete;
  Tail& operator=(const Tail&) = delete;

  const std::string& path() const { return path_; }
  bool open() const { return fd_ >= 0; }

  // Opens the file if it exists now; errors other than "not there yet".
  absl::Status TryOpen() {
    if (fd_ >= 0) return absl::OkStatus();
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ >= 0 || errno == ENOENT) return absl::OkStatus();
    return absl::PermissionDeniedError(
        StrCat("cannot read the log ", path_, ": ", std::strerror(errno)));
  }

  // Copies what was appended since the last call to `out`.
  absl::Status Drain(std::ostream& out) {
    if (fd_ < 0) return absl::OkStatus();
    struct stat info;
    // A log rewritten from the start (truncated) is read again from there.
    if (fstat(fd_, &info) == 0 && info.st_size < offset_) {
      offset_ = 0;
    }
    char buffer[1 << 16];
    for (;;) {
      const ssize_t n = pread(fd_, buffer, sizeof buffer, offset_);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        return absl::DataLossError(
            StrCat("cannot read the log ", path_, ": ", std::strerror(errno)));
      }
      if (n == 0) break;
      out.write(buffer, n);
      offset_ += n;
    }
    out.flush();
    if (!out) return absl::UnavailableError("the output was closed");
    return absl::OkStatus();
  }

 private:
  std::string path_;
  int fd_ = -1;
  off_t offset_ = 0;
};

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

// A cached attempt ran nothing: the log worth showing is that of the
// attempt whose outputs it reused (following the chain, boundedly).
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
      TF_ASSIGN_OR_RETURN(scheduler::RunStatus run, scheduler::GetRunStatus(db, attempt.run_id));
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

}  // namespace

absl::Status WriteLog(const LogRequest& request, std::ostream& out, std::ostream& notes) {
  TF_ASSIGN_OR_RETURN(std::unique_ptr<Database> db, OpenReadOnly(request.db));
  TF_ASSIGN_OR_RETURN(std::string run_id, scheduler::ResolveRunId(*db, request.run));
  TF_ASSIGN_OR_RETURN(AttemptRow attempt,
                      scheduler::FindAttempt(*db, run_id, request.task, request.attempt));
  // A cached attempt ran nothing and is over: show the log it stands for.
  const bool cached = attempt.log_path.empty();
  TF_ASSIGN_OR_RETURN(attempt, AttemptWithLog(*db, std::move(attempt), notes));
  if (!request.follow || cached) return PrintWhole(attempt, out, notes);
  return Follow(*db, request, std::move(attempt), out, notes);
}

}  // namespace tierflow::api
