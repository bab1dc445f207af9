#include "tests/engine/detached_executor.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "worker/exec_task.h"

extern "C" char** environ;

namespace tierflow::testing {
namespace {

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// `pid` runs exec-task for `launch_path` (not a recycled pid).
bool Runs(pid_t pid, const std::string& launch_path) {
  if (pid <= 0 || kill(pid, 0) != 0) return false;
  return ReadText("/proc/" + std::to_string(pid) + "/cmdline").find(launch_path) !=
         std::string::npos;
}

}  // namespace

DetachedExecutor::DetachedExecutor(std::string dir, std::string tierflow, ReportCallback on_report)
    : dir_(std::move(dir)), tierflow_(std::move(tierflow)), on_report_(std::move(on_report)) {
  watcher_ = std::thread([this] { Watch(); });
}

DetachedExecutor::~DetachedExecutor() {
  stop_ = true;
  watcher_.join();
}

std::string DetachedExecutor::Handle(pid_t pid) { return "pid:" + std::to_string(pid); }

void DetachedExecutor::Launch(TaskLaunch launch) {
  const int64_t attempt = launch.attempt_id;
  const worker::JobFiles files = worker::JobFiles::In(dir_, attempt);
  pid_t pid = 0;
  if (worker::WriteLaunchFile(files.launch, launch).ok()) {
    std::vector<std::string> args = {tierflow_,    "exec-task", "--launch",
                                     files.launch, "--report",  files.report};
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    // Its output to a file of its own, as a batch job's: nothing of the
    // engine's (a test's pipes) stays open in a process that outlives it.
    const std::string out = dir_ + "/attempt-" + std::to_string(attempt) + ".out";
    posix_spawn_file_actions_t files_to_open;
    posix_spawn_file_actions_init(&files_to_open);
    posix_spawn_file_actions_addopen(&files_to_open, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&files_to_open, 1, out.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                     0644);
    posix_spawn_file_actions_adddup2(&files_to_open, 1, 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
    if (posix_spawn(&pid, tierflow_.c_str(), &files_to_open, &attr, argv.data(), environ) != 0) {
      pid = 0;
    }
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&files_to_open);
  }
  if (pid > 0) {
    std::ofstream log(dir_ + "/submissions.log", std::ios::app);
    log << attempt << ' ' << pid << '\n';
  }
  std::lock_guard lock(mu_);
  if (pid <= 0) {
    // Reported by the watcher: the engine's callback never runs on the
    // thread that launches.
    jobs_[attempt] = Job{.pid = -1};
    return;
  }
  jobs_[attempt] = Job{.pid = pid, .ours = true};
}

bool DetachedExecutor::Reattach(const TaskLaunch& launch, const std::string& handle) {
  const int64_t attempt = launch.attempt_id;
  const worker::JobFiles files = worker::JobFiles::In(dir_, attempt);
  pid_t pid = 0;
  if (handle.rfind("pid:", 0) == 0) {
    pid = static_cast<pid_t>(std::stol(handle.substr(4)));
  } else {  // no handle recorded: the submissions log knows it
    std::ifstream log(dir_ + "/submissions.log");
    for (int64_t logged = 0, logged_pid = 0; log >> logged >> logged_pid;) {
      if (logged == attempt) pid = static_cast<pid_t>(logged_pid);
    }
  }
  // Alive first, then the report: a process that ended between the two
  // looks wrote its report before it went, so the second look sees it (the
  // other order loses an attempt that ends in between).
  if (!Runs(pid, files.launch) &&
      !worker::ReadReportFile(files.report).value_or(std::nullopt).has_value()) {
    return false;
  }
  std::lock_guard lock(mu_);
  jobs_[attempt] = Job{.pid = pid, .submitted_told = true};
  return true;
}

void DetachedExecutor::Signal(int64_t attempt_id, int signal) {
  std::lock_guard lock(mu_);
  auto job = jobs_.find(attempt_id);
  if (job != jobs_.end() && job->second.pid > 0) kill(job->second.pid, signal);
}

void DetachedExecutor::Cancel(int64_t attempt_id) { Signal(attempt_id, SIGTERM); }
void DetachedExecutor::Kill(int64_t attempt_id) { Signal(attempt_id, SIGUSR1); }
void DetachedExecutor::KillAll() {
  std::lock_guard lock(mu_);
  for (const auto& [attempt, job] : jobs_) {
    if (job.pid > 0) kill(job.pid, SIGUSR1);
  }
}

void DetachedExecutor::Watch() {
  while (!stop_) {
    std::vector<TaskReport> reports;
    {
      std::lock_guard lock(mu_);
      for (auto it = jobs_.begin(); it != jobs_.end();) {
        const int64_t attempt = it->first;
        Job& job = it->second;
        const worker::JobFiles files = worker::JobFiles::In(dir_, attempt);
        TaskReport report;
        report.attempt_id = attempt;
        if (job.pid < 0) {
          report.outcome = TaskReport::Outcome::kFailed;
          report.message = "cannot start tierflow exec-task";
          reports.push_back(std::move(report));
          it = jobs_.erase(it);
          continue;
        }
        if (!job.submitted_told) {
          report.outcome = TaskReport::Outcome::kSubmitted;
          report.handle = Handle(job.pid);
          reports.push_back(report);
          job.submitted_told = true;
        }
        // Gone is read before the report: a report written just before the
        // process ended is then seen.
        bool gone = false;
        if (job.ours) {
          int status = 0;
          gone = waitpid(job.pid, &status, WNOHANG) == job.pid;
          if (gone) job.ours = false;
        }
        gone = gone || !Runs(job.pid, files.launch);
        std::optional<TaskReport> final_report =
            worker::ReadReportFile(files.report).value_or(std::nullopt);
        if (final_report) {
          reports.push_back(std::move(*final_report));
          it = jobs_.erase(it);
          continue;
        }
        if (!job.started_told) {
          std::optional<TaskReport> started =
              worker::ReadReportFile(files.started).value_or(std::nullopt);
          if (started) {
            started->handle = Handle(job.pid);
            reports.push_back(std::move(*started));
            job.started_told = true;
          }
        }
        if (gone) {
          report.outcome = TaskReport::Outcome::kLost;
          report.message = "its process is gone without a report";
          reports.push_back(std::move(report));
          it = jobs_.erase(it);
          continue;
        }
        ++it;
      }
    }
    for (TaskReport& report : reports) on_report_(std::move(report));
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace tierflow::testing
