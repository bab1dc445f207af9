#include "worker/exec_task.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
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
  return {StrCat(base, ".launch"), StrCat(base, ".report.started"), StrCat(base, ".report")};
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

absl::Status ExecTask(const std::string& launch_path, const std::string& report_path) {
  TF_ASSIGN_OR_RETURN(TaskLaunch launch, ReadLaunchFile(launch_path));
  const int64_t attempt = launch.attempt_id;
  const std::string started_path = StrCat(report_path, ".started");
  // A folder it cannot report to fails now, before the command runs.
  {
    const std::string probe = StrCat(report_path, ".probe.", getpid());
    int fd = open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      return absl::FailedPreconditionError(StrCat("cannot write the report of attempt ", attempt,
                                                  " to ", report_path, ": ", std::strerror(errno)));
    }
    close(fd);
    unlink(probe.c_str());
  }

  // SIGTERM and SIGUSR1 go to a thread of their own; the pool's children
  // start with a clean mask (worker/subprocess.cc).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  JobNodeSide node_side(launch);  // node tiers: staging, relay, node copies
  std::mutex mu;
  std::condition_variable cv;
  std::optional<TaskReport> final_report;
  absl::Status write_status;
  absl::StatusOr<std::unique_ptr<Executor>> pool = StartLocalPool([&](TaskReport report) {
    if (report.outcome == TaskReport::Outcome::kStarted) {
      node_side.Started(report);
      absl::Status written = WriteReportFile(started_path, report);
      std::lock_guard lock(mu);
      if (!written.ok() && write_status.ok()) write_status = written;
      return;
    }
    std::lock_guard lock(mu);
    final_report = std::move(report);
    cv.notify_all();
  });
  if (!pool.ok()) return pool.status();

  std::thread signal_thread([&, executor = pool->get()] {
    for (;;) {
      int signal = 0;
      if (sigwait(&signals, &signal) != 0) continue;
      {
        std::lock_guard lock(mu);
        if (final_report) return;
      }
      if (signal == SIGUSR1) {
        executor->Kill(attempt);
      } else if (signal == SIGTERM) {
        executor->Cancel(attempt);
      }
    }
  });
  node_side.Prepare(launch);
  (*pool)->Launch(std::move(launch));
  TaskReport report;
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return final_report.has_value(); });
    report = std::move(*final_report);
  }
  // Ends the signal thread: it sees the final report and returns.
  kill(getpid(), SIGUSR1);
  signal_thread.join();
  pool->reset();
  node_side.Ended(report);
  absl::Status written = WriteReportFile(report_path, report);
  if (!written.ok()) return written;
  std::lock_guard lock(mu);
  return write_status;
}

}  // namespace tierflow::worker
