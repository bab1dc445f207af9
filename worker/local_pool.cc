#include "worker/local_pool.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <variant>

#include "common/status.h"
#include "common/strings.h"
#include "common/units.h"
#include "storage_adapters/local_artifact.h"
#include "storage_adapters/posix.h"
#include "worker/subprocess.h"
#include "worker/task_stats.h"

namespace tierflow::worker {
namespace fs = std::filesystem;
namespace {

// The root of the tier an output is on, through which the pool makes every
// change there (storage_adapters/tier_root.h).
absl::StatusOr<std::shared_ptr<const storage::TierRoot>> OutputRoot(const OutputLaunch& output) {
  if (output.tier_root.empty()) {
    return absl::InvalidArgumentError(StrCat(
        "output '", output.name, "': the launch names no tier root for ", output.final_path));
  }
  return storage::OpenPosixRoot(output.tier_root);
}

int PidfdOpen(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

// An attempt's output: the read end of the pipe its stdout and stderr
// write to, copied into the log file, which is created on the first byte:
// an attempt that prints nothing costs no file (on ext4, allocating an
// inode is a good part of starting a short task).
class LogCapture {
 public:
  LogCapture(int pipe, std::string path) : pipe_(pipe), path_(std::move(path)) {}
  ~LogCapture() {
    if (pipe_ >= 0) close(pipe_);
    if (file_ >= 0) close(file_);
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  int pipe() const { return pipe_; }
  uint64_t bytes() const { return bytes_; }
  // "" or why output was lost ("...: No space left on device").
  const std::string& error() const { return error_; }

  // Copies what the pipe holds (at most `limit` reads, so one chatty task
  // cannot hold up the event thread). False once every writer has closed
  // the pipe and it is empty.
  bool Drain(int limit) {
    for (int reads = 0; limit <= 0 || reads < limit; ++reads) {
      ssize_t n = read(pipe_, buffer_, sizeof buffer_);
      if (n > 0) {
        Write(buffer_, static_cast<size_t>(n));
      } else if (n == 0) {
        return false;
      } else if (errno == EINTR) {
        continue;
      } else {
        return errno == EAGAIN;
      }
    }
    return true;
  }
  // Done with the pipe: its remaining writers (if any escaped the task's
  // process group) get EPIPE.
  void Close() {
    if (pipe_ >= 0) close(pipe_);
    if (file_ >= 0) close(file_);
    pipe_ = file_ = -1;
  }

 private:
  void Write(const char* data, size_t size) {
    if (file_ < 0 && error_.empty()) {
      std::error_code ignored;
      fs::create_directories(fs::path(path_).parent_path(), ignored);
      file_ = open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (file_ < 0) error_ = StrCat(path_, ": ", std::strerror(errno));
    }
    while (file_ >= 0 && size > 0) {
      ssize_t n = write(file_, data, size);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        error_ = StrCat(path_, ": ", std::strerror(errno));
        close(file_);
        file_ = -1;
        return;
      }
      bytes_ += static_cast<uint64_t>(n);
      data += n;
      size -= static_cast<size_t>(n);
    }
  }

  int pipe_ = -1;
  int file_ = -1;
  std::string path_;
  uint64_t bytes_ = 0;
  std::string error_;
  char buffer_[1 << 16];
};

// Tags epoll events of a log pipe apart from those of a pidfd (attempt ids
// are positive and far below 2^63).
constexpr uint64_t kLogTag = uint64_t{1} << 63;

// Runs jobs on a few threads; used for work that may take long (hashing
// outputs) so that the event thread only ever does short things.
class JobQueue {
 public:
  explicit JobQueue(int threads) {
    for (int i = 0; i < std::max(threads, 1); ++i) threads_.emplace_back([this] { Work(); });
  }
  ~JobQueue() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (std::thread& thread : threads_) thread.join();
  }
  void Add(std::function<void()> job) {
    {
      std::lock_guard lock(mu_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
  }

 private:
  void Work() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
        if (stop_) return;  // pending jobs are dropped: the pool is going away
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

class LocalPool final : public Executor {
 public:
  LocalPool(ReportCallback on_report, const LocalPoolOptions& options, int epoll_fd, int wake_fd)
      : on_report_(std::move(on_report)),
        epoll_fd_(epoll_fd),
        wake_fd_(wake_fd),
        clock_(options.clock != nullptr ? *options.clock : SystemClock()),
        finishers_(options.finisher_threads) {
    // Where tasks' helpers account their waits for data (one file each).
    static std::atomic<int> pools{0};
    std::error_code error;
    data_wait_dir_ =
        fs::temp_directory_path(error) / StrCat("tierflow-", getuid(), "-", getpid(), "-", pools++);
    fs::create_directories(data_wait_dir_, error);
    data_wait_prefix_ = data_wait_dir_.string() + "/";
    // A jump of the clock may pass a deadline: the event thread looks.
    clock_listener_.emplace(clock_, [this] { WakeLoop(); });
    thread_ = std::thread([this] { Loop(); });
  }

  ~LocalPool() override {
    clock_listener_.reset();  // before wake_fd_ closes
    Post(Stop{});
    thread_.join();
    // Children still running die with the pool (Subprocess's destructor
    // kills their groups), and their reports are never delivered.
    for (auto& [attempt_id, task] : running_) close(task.pidfd);
    running_.clear();
    close(epoll_fd_);
    close(wake_fd_);
    std::error_code error;
    fs::remove_all(data_wait_dir_, error);
  }

  void Launch(TaskLaunch launch) override { Post(std::move(launch)); }
  void Cancel(int64_t attempt_id) override { Post(CancelCommand{attempt_id, false}); }
  void Kill(int64_t attempt_id) override { Post(CancelCommand{attempt_id, true}); }

  void KillAll() override {
    std::lock_guard lock(pids_mu_);
    for (pid_t pid : pids_) ::kill(-pid, SIGKILL);
  }

 private:
  struct CancelCommand {
    int64_t attempt_id;
    bool kill_now;  // KILL at once, not TERM then KILL after the grace
  };
  struct Stop {};
  using Command = std::variant<TaskLaunch, CancelCommand, Stop>;

  struct Running {
    TaskLaunch launch;
    Subprocess process;
    std::unique_ptr<LogCapture> log;
    int pidfd = -1;
    int64_t started_ms = 0;
    bool cancelled = false;
    bool timed_out = false;
    std::string data_wait_file;  // TIERFLOW_DATA_WAIT_FILE
  };
  // How often running tasks are looked at for processes blocked on I/O.
  static constexpr std::chrono::milliseconds kSampleEvery{200};
  enum class DeadlineKind { kTimeout, kKill };

  void Post(Command command) {
    {
      std::lock_guard lock(commands_mu_);
      commands_.push_back(std::move(command));
    }
    WakeLoop();
  }
  void WakeLoop() {
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
  }

  void Report(TaskReport report) { on_report_(std::move(report)); }

  void Loop() {
    constexpr int kMaxEvents = 64;
    epoll_event events[kMaxEvents];
    while (!stopping_) {
      // Until the next deadline (on clock_) or I/O sample (real time).
      int timeout_ms = -1;
      auto wait_at_most = [&timeout_ms](std::chrono::nanoseconds wait) {
        const int64_t ms = std::chrono::ceil<std::chrono::milliseconds>(wait).count();
        const int bound = static_cast<int>(std::max<int64_t>(ms, 0));
        if (timeout_ms < 0 || bound < timeout_ms) timeout_ms = bound;
      };
      if (!deadlines_.empty()) wait_at_most(deadlines_.begin()->first - clock_.Now());
      if (!running_.empty()) wait_at_most(next_sample_ - std::chrono::steady_clock::now());
      int n = epoll_wait(epoll_fd_, events, kMaxEvents, timeout_ms);
      if (n < 0 && errno != EINTR) break;
      for (int i = 0; i < n; ++i) {
        const uint64_t tag = events[i].data.u64;
        if (tag == 0) {
          uint64_t count;
          (void)!read(wake_fd_, &count, sizeof count);
          RunCommands();
        } else if ((tag & kLogTag) != 0) {
          DrainLog(static_cast<int64_t>(tag & ~kLogTag));
        } else {
          Reap(static_cast<int64_t>(tag));
        }
      }
      FireDeadlines();
      if (!running_.empty() && std::chrono::steady_clock::now() >= next_sample_) {
        SampleBlockedGroups(blocked_);
        next_sample_ = std::chrono::steady_clock::now() + kSampleEvery;
      }
    }
  }

  void RunCommands() {
    std::deque<Command> commands;
    {
      std::lock_guard lock(commands_mu_);
      commands.swap(commands_);
    }
    for (Command& command : commands) {
      if (auto* launch = std::get_if<TaskLaunch>(&command)) {
        Start(std::move(*launch));
      } else if (auto* cancel = std::get_if<CancelCommand>(&command)) {
        auto it = running_.find(cancel->attempt_id);
        if (it == running_.end()) continue;
        if (cancel->kill_now) {
          it->second.cancelled = true;
          ::kill(-it->second.process.pid(), SIGKILL);
        } else if (!it->second.cancelled) {
          it->second.cancelled = true;
          Terminate(it->second);
        }
      } else {
        stopping_ = true;
      }
    }
  }

  // TERM to the group now, KILL after the launch's grace.
  void Terminate(Running& task) {
    ::kill(-task.process.pid(), SIGTERM);
    deadlines_.emplace(clock_.Now() + task.launch.kill_grace,
                       std::make_pair(task.launch.attempt_id, DeadlineKind::kKill));
  }

  void FireDeadlines() {
    const SteadyTime now = clock_.Now();
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
      auto [attempt_id, kind] = deadlines_.begin()->second;
      deadlines_.erase(deadlines_.begin());
      auto it = running_.find(attempt_id);
      if (it == running_.end()) continue;  // already reaped
      if (kind == DeadlineKind::kTimeout) {
        if (!it->second.cancelled && !it->second.timed_out) {
          it->second.timed_out = true;
          Terminate(it->second);
        }
      } else {
        ::kill(-it->second.process.pid(), SIGKILL);
      }
    }
  }

  void Start(TaskLaunch launch) {
    if (launch.mode == TaskLaunch::Mode::kReuse) {
      finishers_.Add([this, launch = std::move(launch)] { Materialise(launch); });
      return;
    }
    TaskReport failure;
    failure.attempt_id = launch.attempt_id;
    failure.started_ms = WallClockMs();
    absl::Status prepared = [&]() -> absl::Status {
      if (!launch.checkpoint_dir.empty() && !launch.checkpoint_root.empty()) {
        TF_ASSIGN_OR_RETURN(auto root, storage::OpenPosixRoot(launch.checkpoint_root));
        TF_RETURN_IF_ERROR(root->CreateFolders(launch.checkpoint_dir));
      } else if (!launch.checkpoint_dir.empty()) {
        // In the run's own folder in the state directory: no tier root.
        std::error_code error;
        fs::create_directories(launch.checkpoint_dir, error);
        if (error) return absl::InternalError(StrCat(launch.checkpoint_dir, ": ", error.message()));
      }
      for (const OutputLaunch& output : launch.outputs) {
        TF_ASSIGN_OR_RETURN(auto root, OutputRoot(output));
        // A crashed earlier try of the same attempt may have left a partial output.
        TF_RETURN_IF_ERROR(root->RemoveTree(output.staging_path));
        TF_RETURN_IF_ERROR(
            root->CreateFolders(fs::path(output.staging_path).parent_path().string()));
      }
      return absl::OkStatus();
    }();
    if (!prepared.ok()) {
      failure.message = StrCat("cannot prepare the attempt's folders: ", prepared.message());
      failure.finished_ms = WallClockMs();
      Report(std::move(failure));
      return;
    }
    int output[2];
    if (pipe2(output, O_CLOEXEC) != 0) {
      failure.message = StrCat("cannot make the attempt's output pipe: ", std::strerror(errno));
      failure.finished_ms = WallClockMs();
      Report(std::move(failure));
      return;
    }
    fcntl(output[0], F_SETFL, O_NONBLOCK);
    auto log = std::make_unique<LogCapture>(output[0], launch.log_path);
    SpawnOptions spawn;
    spawn.argv = launch.argv;
    // A shell script the scheduler found to be a plain word list comes with
    // its words in argv (common/shell_words.h).
    if (launch.argv.empty()) spawn.argv = {"/bin/sh", "-c", launch.shell};
    spawn.env = launch.env;
    // In the pool's own folder (a task's log folder is made only when it writes).
    const std::string data_wait_file = StrCat(data_wait_prefix_, launch.attempt_id, ".data-wait");
    spawn.env.emplace_back("TIERFLOW_DATA_WAIT_FILE", data_wait_file);
    spawn.working_dir = launch.working_dir;
    spawn.output_fd = output[1];
    absl::StatusOr<Subprocess> process = Subprocess::Spawn(spawn);
    if (!process.ok()) {
      // A program that is missing or not executable ends as a shell would
      // end it (exit 127 or 126), its message in the task's log.
      failure.message = std::string(process.status().message());
      if (const int code = SpawnErrorExitCode(process.status()); code >= 0) {
        failure.exit_code = code;
        const std::string line = StrCat("tierflow: ", failure.message, "\n");
        (void)!write(output[1], line.data(), line.size());
        close(output[1]);
        log->Drain(/*limit=*/0);
        log->Close();
        failure.log_bytes = log->bytes();
        failure.message = StrCat("exit ", code, ": ", failure.message);
      } else {
        close(output[1]);
      }
      failure.finished_ms = WallClockMs();
      Report(std::move(failure));
      return;
    }
    close(output[1]);  // the child has its copies
    const pid_t pid = process->pid();
    const int64_t attempt_id = launch.attempt_id;
    int pidfd = PidfdOpen(pid);
    if (pidfd < 0) {
      // Without a pidfd the loop could never see this child exit.
      failure.message =
          StrCat("cannot watch the task's process: pidfd_open: ", std::strerror(errno));
      process->Terminate(launch.kill_grace);
      failure.finished_ms = WallClockMs();
      Report(std::move(failure));
      return;
    }
    Running& task =
        running_
            .emplace(attempt_id, Running{TaskLaunch{}, std::move(*process), std::move(log), pidfd,
                                         failure.started_ms, false, false, data_wait_file})
            .first->second;
    blocked_[pid] = 0;
    if (launch.timeout) {
      deadlines_.emplace(clock_.Now() + *launch.timeout,
                         std::make_pair(attempt_id, DeadlineKind::kTimeout));
    }
    task.launch = std::move(launch);
    {
      std::lock_guard lock(pids_mu_);
      pids_.insert(pid);
    }
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = static_cast<uint64_t>(attempt_id);
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, pidfd, &event);
    event.data.u64 = static_cast<uint64_t>(attempt_id) | kLogTag;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, task.log->pipe(), &event);
    TaskReport started;
    started.attempt_id = attempt_id;
    started.outcome = TaskReport::Outcome::kStarted;
    started.pid = pid;
    started.started_ms = task.started_ms;
    Report(std::move(started));
  }

  // The task wrote: into its log, a bounded amount at a time.
  void DrainLog(int64_t attempt_id) {
    auto it = running_.find(attempt_id);
    if (it == running_.end() || !it->second.log || it->second.log->pipe() < 0) return;
    LogCapture& log = *it->second.log;
    if (!log.Drain(/*limit=*/16)) {
      log.Close();  // closing the only descriptor also drops it from the epoll set
    }
  }

  void Reap(int64_t attempt_id) {
    auto it = running_.find(attempt_id);
    if (it == running_.end()) return;
    // Read while the leader is a zombie: reaping it loses its /proc entry.
    const std::optional<ProcessIo> io = ReadProcessIo(it->second.process.pid());
    ExitStatus status;
    if (!it->second.process.TryWait(&status)) return;
    Running task = std::move(it->second);
    running_.erase(it);
    close(task.pidfd);  // the only descriptor: this also drops it from the epoll set
    // The leader is gone; stray members of its group (background jobs it
    // started) go with it, so nothing of the task outlives it.
    ::kill(-task.process.pid(), SIGKILL);
    {
      std::lock_guard lock(pids_mu_);
      pids_.erase(task.process.pid());
    }
    TaskReport report;
    if (io) {
      report.read_bytes = io->read_bytes;
      report.write_bytes = io->write_bytes;
    }
    report.data_wait_ms = TakeDataWait(task.data_wait_file);
    if (auto blocked = blocked_.find(task.process.pid()); blocked != blocked_.end()) {
      report.io_wait_ms = blocked->second * kSampleEvery.count();
      blocked_.erase(blocked);
    }
    if (task.log && task.log->pipe() >= 0) {
      // Everything the group wrote before it died is in the pipe.
      task.log->Drain(/*limit=*/1024);  // bounded: a writer may have escaped the group
      task.log->Close();
    }
    std::string log_note;
    if (task.log) {
      report.log_bytes = task.log->bytes();
      if (!task.log->error().empty()) log_note = StrCat("log incomplete: ", task.log->error());
    }
    report.attempt_id = attempt_id;
    report.pid = task.process.pid();
    report.started_ms = task.started_ms;
    if (status.signal != 0) {
      report.signal = status.signal;
    } else {
      report.exit_code = status.exit_code;
    }
    if (task.cancelled) {
      report.outcome = TaskReport::Outcome::kCancelled;
      report.message = StrCat("cancelled (", status.ToString(), ")");
    } else if (task.timed_out) {
      report.outcome = TaskReport::Outcome::kTimedOut;
      report.message = StrCat("timed out after ", FormatDuration(*task.launch.timeout), " (",
                              status.ToString(), ")");
    } else if (!status.ok()) {
      report.outcome = TaskReport::Outcome::kFailed;
      report.message = status.ToString();
    } else if (task.launch.outputs.empty()) {
      report.outcome = TaskReport::Outcome::kSucceeded;  // nothing to hash: no hand-off
    } else {
      report.message = log_note;  // kept unless an output fails
      finishers_.Add([this, launch = std::move(task.launch), report = std::move(report)]() mutable {
        Finish(launch, std::move(report));
      });
      return;
    }
    if (!log_note.empty()) {
      report.message = report.message.empty() ? log_note : StrCat(report.message, "; ", log_note);
    }
    RemoveStaging(task.launch);
    report.finished_ms = WallClockMs();
    Report(std::move(report));
  }

  static void RemoveStaging(const TaskLaunch& launch) {
    for (const OutputLaunch& output : launch.outputs) {
      absl::StatusOr<std::shared_ptr<const storage::TierRoot>> root = OutputRoot(output);
      if (!root.ok()) continue;
      (void)(*root)->RemoveTree(output.staging_path);
      // The attempt's folder, only if empty.
      (void)(*root)->Remove(fs::path(output.staging_path).parent_path().string());
    }
  }

  // On a finisher thread: every declared output must exist; hash each, then
  // publish it at its final path.
  void Finish(const TaskLaunch& launch, TaskReport report) {
    for (const OutputLaunch& output : launch.outputs) {
      absl::StatusOr<storage::ContentDigest> digest = storage::HashArtifact(output.staging_path);
      if (!digest.ok()) {
        report.outcome = TaskReport::Outcome::kFailed;
        report.message =
            digest.status().code() == absl::StatusCode::kNotFound
                ? StrCat("output '", output.name, "' missing: the command exited 0 but did not ",
                         "create $TIERFLOW_OUTPUT_", AsciiUpper(output.name), " (",
                         output.staging_path, ")")
                : StrCat("output '", output.name, "': ", digest.status().message());
        report.outputs.clear();
        RemoveStaging(launch);
        report.finished_ms = WallClockMs();
        Report(std::move(report));
        return;
      }
      report.outputs.push_back(
          {output.name, output.final_path, digest->hash, digest->bytes, digest->files});
    }
    for (const OutputLaunch& output : launch.outputs) {
      absl::StatusOr<std::shared_ptr<const storage::TierRoot>> root = OutputRoot(output);
      if (absl::Status status = root.ok()
                                    ? storage::PublishArtifact(**root, output.staging_path,
                                                               output.final_path, output.durable)
                                    : root.status();
          !status.ok()) {
        report.outcome = TaskReport::Outcome::kFailed;
        report.message = StrCat("output '", output.name, "': ", status.message());
        report.outputs.clear();
        break;
      }
    }
    if (report.outputs.size() == launch.outputs.size())
      report.outcome = TaskReport::Outcome::kSucceeded;
    RemoveStaging(launch);
    report.finished_ms = WallClockMs();
    Report(std::move(report));
  }

  // On a finisher thread: a cache hit. Links the earlier outputs into place
  // and hashes them again, so the engine can check they are unchanged.
  void Materialise(const TaskLaunch& launch) {
    TaskReport report;
    report.attempt_id = launch.attempt_id;
    report.started_ms = WallClockMs();
    report.outcome = TaskReport::Outcome::kSucceeded;
    for (const OutputLaunch& output : launch.outputs) {
      absl::StatusOr<std::shared_ptr<const storage::TierRoot>> root = OutputRoot(output);
      absl::Status status =
          root.ok() ? storage::LinkArtifact(output.reuse_from, **root, output.final_path)
                    : root.status();
      absl::StatusOr<storage::ContentDigest> digest =
          status.ok() ? storage::HashArtifact(output.final_path)
                      : absl::StatusOr<storage::ContentDigest>(status);
      if (!digest.ok()) {
        report.outcome = TaskReport::Outcome::kFailed;
        report.message = StrCat("cannot reuse output '", output.name, "' from ", output.reuse_from,
                                ": ", digest.status().message());
        report.outputs.clear();
        break;
      }
      report.outputs.push_back(
          {output.name, output.final_path, digest->hash, digest->bytes, digest->files});
    }
    report.finished_ms = WallClockMs();
    Report(std::move(report));
  }

  ReportCallback on_report_;
  const int epoll_fd_;
  const int wake_fd_;
  const Clock& clock_;
  std::optional<ClockListener> clock_listener_;
  std::thread thread_;

  std::mutex commands_mu_;
  std::deque<Command> commands_;  // guarded by commands_mu_

  std::mutex pids_mu_;
  std::unordered_set<pid_t> pids_;  // guarded by pids_mu_: groups KillAll reaches

  // Owned by the event thread.
  bool stopping_ = false;
  std::unordered_map<int64_t, Running> running_;
  fs::path data_wait_dir_;
  std::string data_wait_prefix_;                // data_wait_dir_ and a slash
  std::unordered_map<pid_t, int64_t> blocked_;  // by process group: samples in state D
  SteadyTime next_sample_{};
  std::multimap<SteadyTime, std::pair<int64_t, DeadlineKind>> deadlines_;

  JobQueue finishers_;  // declared last: joined first, while the rest is alive
};

}  // namespace

absl::StatusOr<std::unique_ptr<Executor>> StartLocalPool(Executor::ReportCallback on_report,
                                                         const LocalPoolOptions& options) {
  int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) return absl::InternalError(StrCat("epoll_create1: ", std::strerror(errno)));
  int wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0) {
    close(epoll_fd);
    return absl::InternalError(StrCat("eventfd: ", std::strerror(errno)));
  }
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = 0;
  epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &event);
  return std::unique_ptr<Executor>(new LocalPool(std::move(on_report), options, epoll_fd, wake_fd));
}

}  // namespace tierflow::worker
