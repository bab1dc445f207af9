#include "worker/exec_task.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <utility>

#include "common/status.h"
#include "common/strings.h"
#include "rpc/task_proto.h"
#include "worker/job_node_side.h"
#include "worker/local_pool.h"

namespace tierflow::worker {
namespace {

namespace fs = std::filesystem;

absl::Status Errno(const std::string& what, const std::string& path) {
  return absl::UnavailableError(StrCat(what, " ", path, ": ", std::strerror(errno)));
}

// temp file, fsync, rename, fsync of the folder.
absl::Status WriteAtomically(const std::string& path, const std::string& bytes) {
  const std::string temp = StrCat(path, ".tmp.", getpid());
  int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("cannot create", temp);
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status status = Errno("cannot write", temp);
      close(fd);
      unlink(temp.c_str());
      return status;
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) {
    absl::Status status = Errno("cannot fsync", temp);
    close(fd);
    unlink(temp.c_str());
    return status;
  }
  close(fd);
  if (rename(temp.c_str(), path.c_str()) != 0) {
    absl::Status status = Errno("cannot rename into place", path);
    unlink(temp.c_str());
    return status;
  }
  const std::string folder = fs::path(path).parent_path().string();
  int dir = open(folder.empty() ? "." : folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    fsync(dir);
    close(dir);
  }
  return absl::OkStatus();
}

// nullopt: no such file.
absl::StatusOr<std::optional<std::string>> ReadWhole(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    return Errno("cannot read", path);
  }
  std::string bytes;
  char buffer[16384];
  for (;;) {
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status status = Errno("cannot read", path);
      close(fd);
      return status;
    }
    if (n == 0) break;
    bytes.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  return bytes;
}

}  // namespace

JobFiles JobFiles::In(const std::string& dir, int64_t attempt_id) {
  const std::string base = StrCat(dir, "/attempt-", attempt_id);
  return {StrCat(base, ".launch"), StrCat(base, ".report.started"), StrCat(base, ".report"),
          StrCat(base, ".cancel")};
}

absl::Status WriteLaunchFile(const std::string& path, const TaskLaunch& launch) {
  v1::TaskLaunch message;
  rpc::ToProto(launch, &message);
  return WriteAtomically(path, message.SerializeAsString());
}

absl::StatusOr<TaskLaunch> ReadLaunchFile(const std::string& path) {
  TF_ASSIGN_OR_RETURN(std::optional<std::string> bytes, ReadWhole(path));
  if (!bytes) return absl::NotFoundError(StrCat(path, ": no such launch file"));
  v1::TaskLaunch message;
  if (!message.ParseFromString(*bytes) || message.attempt_id() == 0) {
    return absl::DataLossError(StrCat(path, ": not a task launch (tierflow.v1.TaskLaunch)"));
  }
  return rpc::FromProto(message);
}

absl::Status WriteReportFile(const std::string& path, const TaskReport& report) {
  v1::TaskReport message;
  rpc::ToProto(report, &message);
  return WriteAtomically(path, message.SerializeAsString());
}

absl::StatusOr<std::optional<TaskReport>> ReadReportFile(const std::string& path) {
  TF_ASSIGN_OR_RETURN(std::optional<std::string> bytes, ReadWhole(path));
  if (!bytes) return std::nullopt;
  v1::TaskReport message;
  if (!message.ParseFromString(*bytes) || message.attempt_id() == 0) {
    return absl::DataLossError(StrCat(path, ": not a task report (tierflow.v1.TaskReport)"));
  }
  return rpc::FromProto(message);
}

namespace {

// One attempt of a job: its files.
struct JobItem {
  int64_t attempt_id = 0;  // 0: from the launch file
  std::string launch;
  std::string report;
  std::string cancel;  // its cancel marker; "": none
};

// What an item's cancel marker asks: "kill" at once, else cancel (TERM,
// KILL after the grace).
enum class Marker { kNone, kCancel, kKill };
Marker MarkerOf(const std::string& path) {
  absl::StatusOr<std::optional<std::string>> text = ReadWhole(path);
  if (!text.ok()) return Marker::kCancel;  // there, but unreadable
  if (!*text) return Marker::kNone;
  return (*text)->starts_with("kill") ? Marker::kKill : Marker::kCancel;
}

// A folder it cannot report to fails now, before the command runs.
absl::Status ProbeReportFolder(int64_t attempt, const std::string& report_path) {
  const std::string probe = StrCat(report_path, ".probe.", getpid());
  int fd = open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::FailedPreconditionError(StrCat("cannot write the report of attempt ", attempt,
                                                " to ", report_path, ": ", std::strerror(errno)));
  }
  close(fd);
  unlink(probe.c_str());
  return absl::OkStatus();
}

// Runs `items` one after another on one local pool, each under the
// single-attempt contract (header comment); signals as ExecTaskList says.
// The first error that kept an item from reporting, after every item had
// its turn.
absl::Status RunItems(std::vector<JobItem> items) {
  // TERM, USR1 and USR2 go to a thread of their own; the pool's children
  // start with a clean mask (worker/subprocess.cc).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);
  sigaddset(&signals, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::mutex mu;  // guards the report state below
  // The running item's node tiers: staging, checkpoint relay, node copies.
  std::optional<JobNodeSide> node_side;
  std::condition_variable cv;
  std::optional<TaskReport> final_report;
  std::string started_path;  // the running item's
  absl::Status write_status;
  absl::StatusOr<std::unique_ptr<Executor>> pool = StartLocalPool([&](TaskReport report) {
    std::lock_guard lock(mu);
    if (report.outcome == TaskReport::Outcome::kStarted) {
      if (node_side) node_side->Started(report);
      absl::Status written = WriteReportFile(started_path, report);
      if (!written.ok() && write_status.ok()) write_status = written;
      return;
    }
    final_report = std::move(report);
    cv.notify_all();
  });
  if (!pool.ok()) return pool.status();

  // What the signals see: the item running, and whether the job was told
  // to stop (TERM: cancel, USR1: kill), which also stops the items after.
  std::mutex control_mu;
  const JobItem* current = nullptr;
  int stop_signal = 0;
  bool done = false;
  std::thread signal_thread([&, executor = pool->get()] {
    for (;;) {
      int signal = 0;
      if (sigwait(&signals, &signal) != 0) continue;
      std::lock_guard lock(control_mu);
      if (done) return;
      if (signal == SIGTERM || signal == SIGUSR1) stop_signal = signal;
      if (current == nullptr) continue;
      const Marker marker = signal == SIGUSR2 ? MarkerOf(current->cancel) : Marker::kNone;
      if (signal == SIGUSR1 || marker == Marker::kKill) {
        executor->Kill(current->attempt_id);
      } else if (signal == SIGTERM || marker == Marker::kCancel) {
        executor->Cancel(current->attempt_id);
      }
    }
  });

  absl::Status first_error;
  auto keep = [&first_error](absl::Status status) {
    if (!status.ok() && first_error.ok()) first_error = std::move(status);
  };
  // Cancelled before its turn (checked before and after its inputs are
  // staged): reported so, never run. Called under control_mu.
  auto cancelled_before_start = [&](const JobItem& item) -> std::optional<TaskReport> {
    if (stop_signal == 0 && MarkerOf(item.cancel) == Marker::kNone) return std::nullopt;
    TaskReport cancelled;
    cancelled.attempt_id = item.attempt_id;
    cancelled.outcome = TaskReport::Outcome::kCancelled;
    cancelled.message = stop_signal != 0 ? "cancelled before it started: its Slurm job was stopped"
                                         : "cancelled before it started";
    cancelled.finished_ms = WallClockMs();
    return cancelled;
  };
  for (JobItem& item : items) {
    absl::StatusOr<TaskLaunch> launch = ReadLaunchFile(item.launch);
    if (!launch.ok()) {
      keep(launch.status());
      continue;
    }
    const int64_t attempt = item.attempt_id = launch->attempt_id;
    if (absl::Status probe = ProbeReportFolder(attempt, item.report); !probe.ok()) {
      keep(probe);
      continue;
    }
    std::optional<TaskReport> cancelled;
    {
      std::lock_guard lock(control_mu);
      cancelled = cancelled_before_start(item);
    }
    if (cancelled) {
      keep(WriteReportFile(item.report, *cancelled));
      continue;
    }
    {
      std::lock_guard report_lock(mu);
      node_side.emplace(*launch);
      started_path = StrCat(item.report, ".started");
      final_report.reset();
    }
    node_side->Prepare(*launch);  // no report comes before Launch
    {
      std::lock_guard lock(control_mu);
      cancelled = cancelled_before_start(item);
      if (!cancelled) {
        current = &item;
        (*pool)->Launch(std::move(*launch));
      }
    }
    TaskReport report;
    if (cancelled) {
      report = std::move(*cancelled);
    } else {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return final_report.has_value(); });
      report = std::move(*final_report);
    }
    {
      std::lock_guard lock(control_mu);
      current = nullptr;
    }
    node_side->Ended(report);
    {
      std::lock_guard lock(mu);
      node_side.reset();
    }
    keep(WriteReportFile(item.report, report));
  }
  {
    std::lock_guard lock(control_mu);
    done = true;
  }
  // Ends the signal thread: it sees `done` and returns.
  kill(getpid(), SIGUSR2);
  signal_thread.join();
  pool->reset();
  std::lock_guard lock(mu);
  keep(write_status);
  return first_error;
}

}  // namespace

absl::Status ExecTask(const std::string& launch_path, const std::string& report_path) {
  // DIR/attempt-ID.report → DIR/attempt-ID.cancel, as JobFiles names it.
  std::string_view base = report_path;
  if (base.ends_with(".report")) base.remove_suffix(std::string_view(".report").size());
  return RunItems({JobItem{.attempt_id = 0,
                           .launch = launch_path,
                           .report = report_path,
                           .cancel = StrCat(base, ".cancel")}});
}

absl::Status ExecTaskList(const std::string& dir, const std::string& list_file, size_t first,
                          size_t count) {
  TF_ASSIGN_OR_RETURN(std::optional<std::string> text, ReadWhole(list_file));
  if (!text) return absl::NotFoundError(StrCat(list_file, ": no such list file"));
  std::vector<int64_t> attempts;
  std::istringstream lines(*text);
  for (std::string text_line; std::getline(lines, text_line);) {
    const std::string_view line = TrimWhitespace(text_line);
    if (line.empty()) continue;
    int64_t attempt = 0;
    auto [end, error] = std::from_chars(line.data(), line.data() + line.size(), attempt);
    if (error != std::errc() || end != line.data() + line.size() || attempt <= 0) {
      return absl::DataLossError(
          StrCat(list_file, ": not an attempt id: '", line, "' (one attempt id a line)"));
    }
    attempts.push_back(attempt);
  }
  if (first >= attempts.size()) {
    return absl::InvalidArgumentError(
        StrCat(list_file, " has ", attempts.size(), " attempts: none from --first ", first));
  }
  std::vector<JobItem> items;
  for (size_t i = first; i < attempts.size() && i - first < count; ++i) {
    const JobFiles files = JobFiles::In(dir, attempts[i]);
    items.push_back(JobItem{.attempt_id = attempts[i],
                            .launch = files.launch,
                            .report = files.report,
                            .cancel = files.cancel});
  }
  return RunItems(items);
}

}  // namespace tierflow::worker
