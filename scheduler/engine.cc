#include "scheduler/engine.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <queue>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_join.h"
#include "common/metrics.h"
#include "common/processes.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/units.h"
#include "dag/graph.h"
#include "dag/loader.h"
#include "nlohmann/json.hpp"
#include "scheduler/mover.h"
#include "scheduler/plan.h"
#include "scheduler/placement_record.h"
#include "scheduler/run_queries.h"
#include "scheduler/sqlite.h"
#include "scheduler/store.h"
#include "storage_adapters/local_artifact.h"
#include "storage_adapters/posix.h"
#include "storage_adapters/remote_store.h"

namespace tierflow::scheduler {
namespace fs = std::filesystem;
namespace {

using SteadyTime = std::chrono::steady_clock::time_point;
using json = nlohmann::json;

// A foreach item as one path component: the item itself when it is a safe
// file name, else its index for every item of the stage (so names never
// collide).
std::vector<std::string> ItemComponents(const dag::Stage& stage) {
  std::vector<std::string> names;
  if (!stage.foreach) return names;
  bool safe = true;
  for (const std::string& item : *stage.foreach) {
    safe = safe && !item.empty() && item.size() <= 128 && item != "." && item != ".." &&
           item[0] != '.' && std::all_of(item.begin(), item.end(), [](char c) {
             return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
           });
  }
  for (size_t i = 0; i < stage.foreach->size(); ++i) {
    names.push_back(safe ? (*stage.foreach)[i] : StrCat("item-", std::to_string(i)));
  }
  return names;
}

// Retry n (1-based) waits min(backoff * factor^(n-1), max_backoff), of which
// the second half is jitter ("equal jitter"), so retries of many tasks that
// failed together spread out instead of hammering a recovering service.
Duration RetryDelay(const dag::RetryPolicy& policy, uint32_t retry, double random) {
  double base = static_cast<double>(policy.backoff.count()) *
                std::pow(policy.factor, static_cast<double>(retry - 1));
  base = std::min(base, static_cast<double>(policy.max_backoff.count()));
  return Duration(static_cast<int64_t>(base / 2 + random * base / 2));
}

// Holds an exclusive lock on a run (runs/RUN/lock) for as long as a process
// drives or cancels it. flock: the kernel releases it when the process dies,
// even by kill -9, so "the lock is free" means "nobody drives this run". The
// holder writes "pid host" into the file, for messages only.
class RunLock {
 public:
  // FailedPrecondition when another open file description holds the lock.
  static absl::StatusOr<RunLock> Acquire(const fs::path& run_dir, const std::string& run_id) {
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
  // "pid host" of the process that last took the lock of `run_dir`.
  static std::string Holder(const fs::path& run_dir) {
    std::ifstream in(run_dir / "lock");
    std::string holder;
    std::getline(in, holder);
    return holder;
  }
  RunLock(RunLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  RunLock& operator=(RunLock&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  ~RunLock() {
    if (fd_ >= 0) close(fd_);
  }

 private:
  explicit RunLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// `tierflow cancel` of a driven run creates this file in the run folder; the
// engine driving the run watches for it.
constexpr char kCancelFile[] = "cancel";

// Calls a callback once a file exists: right away if it already does, else
// (on the watcher's thread) when it is created or moved into place. One
// inotify instance and thread serve the whole process and are never closed:
// closing an inotify instance waits for an RCU grace period (10-20 ms),
// which every run would pay on its way out. Nothing polls.
class FileWatcher {
 public:
  // Unregisters when destroyed; the callback is not running then and will
  // not run again.
  class Watch {
   public:
    Watch(FileWatcher* watcher, uint64_t id) : watcher_(watcher), id_(id) {}
    ~Watch() {
      if (watcher_ != nullptr) watcher_->Remove(id_);
    }
    Watch(const Watch&) = delete;
    Watch& operator=(const Watch&) = delete;

   private:
    FileWatcher* watcher_;
    uint64_t id_;
  };

  static absl::StatusOr<FileWatcher*> Get() {
    static absl::StatusOr<FileWatcher*> watcher = Make();  // kept for the process's life
    return watcher;
  }

  absl::StatusOr<std::unique_ptr<Watch>> Add(const fs::path& file,
                                             std::function<void()> on_create) {
    std::lock_guard lock(mu_);
    const int wd = inotify_add_watch(inotify_, file.parent_path().c_str(), IN_CREATE | IN_MOVED_TO);
    if (wd < 0) {
      return absl::InternalError(StrCat("cannot watch ", file.parent_path().string(),
                                        " for cancel requests: ", std::strerror(errno)));
    }
    std::error_code error;
    if (fs::exists(file, error)) {
      on_create();
      if (!Watching(wd)) inotify_rm_watch(inotify_, wd);
      return std::make_unique<Watch>(nullptr, 0);
    }
    const uint64_t id = ++last_id_;
    entries_.emplace(id, Entry{wd, file.filename().string(), std::move(on_create)});
    return std::make_unique<Watch>(this, id);
  }

 private:
  struct Entry {
    int wd;
    std::string name;
    std::function<void()> on_create;
  };

  static absl::StatusOr<FileWatcher*> Make() {
    int fd = inotify_init1(IN_CLOEXEC);
    if (fd < 0) {
      return absl::InternalError(
          StrCat("cannot watch for cancel requests: inotify_init1: ", std::strerror(errno)));
    }
    auto* watcher = new FileWatcher(fd);
    std::thread([watcher] { watcher->Run(); }).detach();
    return watcher;
  }
  explicit FileWatcher(int inotify) : inotify_(inotify) {}

  bool Watching(int wd) const {
    for (const auto& [id, entry] : entries_) {
      if (entry.wd == wd) return true;
    }
    return false;
  }

  void Remove(uint64_t id) {
    std::lock_guard lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    const int wd = it->second.wd;
    entries_.erase(it);
    if (!Watching(wd)) inotify_rm_watch(inotify_, wd);
  }

  void Run() {
    alignas(inotify_event) char buffer[4096];
    for (;;) {
      ssize_t n = read(inotify_, buffer, sizeof buffer);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        return;
      }
      std::lock_guard lock(mu_);
      for (ssize_t at = 0; at < n;) {
        const auto* event = reinterpret_cast<const inotify_event*>(buffer + at);
        at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
        if (event->len == 0) continue;
        for (auto it = entries_.begin(); it != entries_.end();) {
          if (it->second.wd == event->wd && it->second.name == event->name) {
            it->second.on_create();  // under mu_: Remove waits for it
            it = entries_.erase(it);
          } else {
            ++it;
          }
        }
      }
    }
  }

  const int inotify_;
  std::mutex mu_;
  uint64_t last_id_ = 0;               // guarded by mu_
  std::map<uint64_t, Entry> entries_;  // guarded by mu_
};

// Kills what is left of a dead engine's tasks on this host. Tasks run in
// process groups of their own, so a killed engine's children survive it.
// They are found through what was recorded: the pid (its group's leader) of
// each attempt still `running` that a local pool ran (a worker name but no
// worker id: a server's attempts have neither until leased), killed only while that process still carries the run's
// TIERFLOW_RUN_ID. An attempt launched an instant before the engine died
// may have no pid recorded yet; only then, and only when `may_scan_host`
// (an embedded engine: the tasks of this run on this host are its own), are
// the host's processes searched for the run's TIERFLOW_RUN_ID. A server
// never scans: its workers stop their own tasks.
absl::StatusOr<int> KillLeftoverTasks(Database& db, const std::string& run_id,
                                      bool may_scan_host) {
  const std::string marker = StrCat("TIERFLOW_RUN_ID=", run_id);
  TF_ASSIGN_OR_RETURN(Statement find,
                      db.Prepare("SELECT pid FROM attempts WHERE run_id = ? AND state = ? AND "
                                 "coalesce(worker_id, '') = '' AND coalesce(worker, '') != ''"));
  find.Bind(1, run_id).Bind(2, AttemptStateName(AttemptState::kRunning));
  int killed = 0;
  bool unrecorded = false;
  while (true) {
    TF_ASSIGN_OR_RETURN(bool row, find.Step());
    if (!row) break;
    if (find.IsNull(0)) {
      unrecorded = true;
    } else if (KillGroupIfMarked(static_cast<pid_t>(find.Int(0)), marker)) {
      ++killed;
    }
  }
  if (unrecorded && may_scan_host) killed += KillProcessesWithEnv(marker);
  return killed;
}

// Ends the attempts of `run_id` its stopped engine left `running`, inside
// the caller's transaction: `lost` for those whose process was recorded as
// started (a pid), `not_started` for the rest (queued for a worker, leased,
// or launched an instant before the stop, before their start was recorded).
absl::Status EndInterruptedAttempts(Database& db, const std::string& run_id, int64_t now) {
  // A reuse of cached outputs is recorded `cached` when it is launched and
  // finished when its executor reports: one without finished_at was cut
  // off, and is no success (the task reuses or runs again).
  TF_ASSIGN_OR_RETURN(
      Statement end,
      db.Prepare("UPDATE attempts SET finished_at = ?1, state = CASE WHEN state = ?8 THEN ?4 "
                 "WHEN pid IS NULL THEN ?3 ELSE ?4 END, message = CASE WHEN state = ?8 THEN ?9 "
                 "WHEN pid IS NULL THEN ?5 ELSE ?6 END WHERE run_id = ?2 AND (state = ?7 OR "
                 "(state = ?8 AND finished_at IS NULL))"));
  end.Bind(1, now)
      .Bind(2, run_id)
      .Bind(3, AttemptStateName(AttemptState::kNotStarted))
      .Bind(4, AttemptStateName(AttemptState::kLost))
      .Bind(5, "the engine stopped before this attempt was recorded as started")
      .Bind(6, "the engine stopped while this attempt ran")
      .Bind(7, AttemptStateName(AttemptState::kRunning))
      .Bind(8, AttemptStateName(AttemptState::kCached))
      .Bind(9, "the engine stopped while this attempt reused cached outputs");
  return end.Run();
}

struct ArtifactRec {
  int64_t id = 0;
  std::string path;
  std::string hash;
  uint64_t bytes = 0;
};

// Where one output of a task lives: its home and write tiers (indexes into
// the engine's tiers) and, per tier, its copy there and how many unfinished
// tasks read it there.
// kStreaming: a streamed copy under way whose first files are there.
enum class CopyState : uint8_t { kNone, kCopying, kStreaming, kPresent };
struct OutputPlace {
  uint8_t home = 0;
  uint8_t write = 0;
  std::vector<CopyState> copies;  // by tier
  std::vector<int64_t> copy_ids;  // the artifact_copies row of each copy
  std::vector<uint32_t> readers;  // by tier
  uint32_t consumers = 0;         // tasks that read it, finished or not
  uint64_t dirty = 0;             // bit per tier: a copy there failed or was cut off
  uint64_t stream_tiers = 0;      // bit per tier: a reader there streams it (`stream: true`)

  // A new artifact replaces the one these copies held: they are no copies
  // of it, and what they left on their tiers must go before it is copied
  // there (same keys).
  void ForgetCopies() {
    for (size_t x = 0; x < copies.size(); ++x) {
      if (copies[x] != CopyState::kNone) dirty |= uint64_t{1} << x;
    }
    std::fill(copies.begin(), copies.end(), CopyState::kNone);
    std::fill(copy_ids.begin(), copy_ids.end(), 0);
  }
};

inline constexpr uint8_t kNoTier = 255;

// A volatile output's home (on a volatile tier: RAM) is released once every
// task of the run that reads it has ended: the copy state and its reason.
// The artifact then exists nowhere; a resume whose tasks need it runs its
// producer again, and the cache never reuses it (it has no present copy).
inline constexpr std::string_view kReleasedCopy = "released";
inline constexpr const char* kReleasedWhy =
    "volatile: released after its last reader ended; recomputed when needed again";

// An artifact a task reads, on the tier it reads it from.
struct Need {
  uint32_t task = 0;  // the producer
  uint8_t output = 0;
  uint8_t tier = 0;
  // Cluster mode: the node tier its worker copies it onto from `tier`
  // first (EngineOptions::node_tiers_on_workers); kNoTier: none.
  uint8_t node_tier = kNoTier;
  // `stream: true`: the reader may start once the first files of its copy
  // on `tier` are there.
  bool stream = false;
};

struct TaskRec {
  uint32_t stage = 0;
  uint32_t item = 0;
  uint32_t seq = 0;
  std::string id;
  std::string_view state = task_state::kPending;
  uint32_t attempts = 0;  // recorded attempts, across resumes
  uint32_t failures = 0;  // failed attempts since this engine started
  int64_t attempt_id = 0;
  int64_t attempt_started_ms = 0;
  int64_t data_wait_since_ms = 0;  // ready, waiting for copies of its inputs since
  bool reusing = false;            // the current attempt is a cache reuse
  bool no_cache = false;           // a reuse went wrong: run it for real
  std::string cache_key;
  std::string log_path;
  std::string message;                       // of the latest transition
  std::vector<ArtifactRec> outputs;          // by the stage's output index, once done
  std::vector<std::string> expected_hashes;  // of a reuse, to check
  int64_t cached_from = 0;
  std::vector<OutputPlace> places;        // by the stage's output index
  std::vector<Need> needs;                // every artifact it reads, where
  std::vector<uint8_t> input_tiers;       // by the stage's input index: where it reads it
  std::vector<uint8_t> node_input_tiers;  // by input index: the node tier (kNoTier: none)
};

struct StageRec {
  std::string name;
  uint32_t unfinished = 0;       // tasks not succeeded or cached
  uint32_t waiting_parents = 0;  // parent stages with unfinished tasks
  uint32_t bottom_level = 0;     // longest chain of stages from here to a sink
  std::vector<std::string> item_components;
  Duration busy{0};
};

bool IsDone(std::string_view state) {
  return state == task_state::kSucceeded || state == task_state::kCached;
}
bool IsTerminal(std::string_view state) {
  return IsDone(state) || state == task_state::kFailed || state == task_state::kUpstreamFailed ||
         state == task_state::kCancelled;
}

std::string_view CanonicalTaskState(const std::string& text) {
  for (std::string_view state :
       {task_state::kPending, task_state::kQueued, task_state::kRunning, task_state::kRetrying,
        task_state::kSucceeded, task_state::kCached, task_state::kFailed,
        task_state::kUpstreamFailed, task_state::kCancelled}) {
    if (text == state) return state;
  }
  return task_state::kPending;
}

}  // namespace

class Engine::Impl {
 public:
  explicit Impl(EngineOptions options) : options_(std::move(options)) {
    if (options_.slots <= 0) {
      options_.slots = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    }
    if (!options_.random) {
      options_.random = [rng = std::mt19937_64(std::random_device{}())]() mutable {
        return std::uniform_real_distribution<double>(0, 1)(rng);
      };
    }
  }

  absl::StatusOr<RunResult> Run(const RunRequest& request);
  absl::StatusOr<RunResult> Resume(const std::string& run_id);

  void Cancel() {
    {
      std::lock_guard lock(mu_);
      cancel_requested_ = true;
    }
    cv_.notify_one();
  }
  void KillNow() {
    std::lock_guard lock(executor_mu_);
    if (executor_) executor_->KillAll();
  }

 private:
  // --- set-up
  absl::Status BeginRun();
  void EndRun();
  absl::Status OpenDatabase();
  absl::Status Prepare(const std::string& yaml, const std::string& file,
                       const std::map<std::string, std::string>& params);
  absl::Status CreateRun(const std::string& yaml, const std::map<std::string, std::string>& params,
                         int priority);
  absl::Status LoadRunForResume();
  absl::Status PrepareStatements();
  absl::StatusOr<RunResult> Drive(bool resumed);

  // --- the loop
  // A task's end is acted on at once: by this thread (the worker's), when
  // no turn is under way, which saves waking the engine's thread; else by
  // the turn under way's thread. A start (its pid, for `show`) waits for the
  // next turn, at most kStartedFlush after the launch: no commit of its own.
  void OnReport(TaskReport report) {
    const bool urgent = report.outcome != TaskReport::Outcome::kStarted;
    {
      std::lock_guard lock(mu_);
      reports_.push_back(std::move(report));
      if (urgent) ++urgent_reports_;
    }
    if (!urgent) return;
    bool wake_drive = true;
    {
      std::unique_lock turn(turn_mu_, std::try_to_lock);
      if (turn.owns_lock() && inline_turns_ && turn_status_.ok()) {
        turn_status_ = TakeTurn(/*cancel_now=*/false);
        // Drive sleeps until drive_wake_: wake it only when it has to look.
        wake_drive = !turn_status_.ok() || counts_.done() == counts_.total ||
                     (launched_ && !drive_wake_) ||
                     (!retry_timers_.empty() &&
                      (!drive_wake_ || retry_timers_.begin()->first < *drive_wake_));
      }
    }
    if (!wake_drive) return;
    {
      std::lock_guard lock(mu_);
      woken_ = true;
    }
    cv_.notify_one();
  }
  static constexpr Duration kStartedFlush = std::chrono::milliseconds(100);
  absl::Status TakeTurn(bool cancel_now);  // turn_mu_ held
  absl::Status Turn(std::deque<TaskReport>& reports, std::deque<MoveResult>& moves,
                    bool cancel_now);
  absl::Status ApplyReport(TaskReport& report);
  std::string FullTierNote(uint32_t task) const;
  absl::Status Dispatch(uint32_t task);
  absl::Status StageDone(uint32_t stage);
  absl::Status FailDownstream(uint32_t stage, const std::string& failed_task);
  absl::Status SetTaskState(uint32_t task, std::string_view state, const std::string& message,
                            Duration duration = Duration(0));
  absl::Status CancelAll();
  void Enqueue(uint32_t task);

  // --- data movement between tiers
  // The tiers of this run, each output's home and write tier, and each
  // task's needs, from placement. `stored` unset: a new run, on the
  // options' tiers; "": a run recorded without tiers (the implicit one);
  // else the JSON a run recorded (a resume).
  absl::Status SetUpTiers(const std::optional<std::string>& stored);
  // What SetUpTiers decided, recorded with the run (CreateRun).
  Placement placement_;
  std::vector<CheckpointPlacement> checkpoint_placement_;
  void CountReaders();
  // After `task` produced output `output` (or on resume, kept it): copies
  // to its home and to every tier where unfinished tasks read it.
  absl::Status ScheduleMoves(uint32_t task, size_t output);
  absl::Status StartCopy(uint32_t task, size_t output, uint8_t tier);
  // A streamed copy's job (StartCopy, for a tier a reader streams from).
  MoveJob StreamCopy(int64_t copy_id, uint8_t source, uint8_t tier, const std::string& key,
                     bool clear_first, const std::string& expected_hash);
  absl::Status WakeDataWaiters();
  // Every input of `task` is on the tier it reads it from; starts the
  // copies that are missing.
  absl::StatusOr<bool> DataReady(uint32_t task);
  absl::Status ApplyMove(const MoveResult& result);
  absl::Status MaybeEvict(uint32_t task, size_t output);
  absl::Status ReleaseNeeds(uint32_t task);
  absl::Status UpdateCopy(int64_t copy_id, std::string_view state, const std::string& message);
  // Records a copy of the current artifact of `task`.`output` on `tier`,
  // at `uri` (default: where it is on that tier).
  absl::StatusOr<int64_t> InsertCopy(uint32_t task, size_t output, uint8_t tier,
                                     std::string_view state, std::optional<uint8_t> source,
                                     const std::string& uri = "");
  // Cluster mode: a node tier, whose copies the workers make.
  bool OnWorkers(uint8_t tier) const {
    return options_.node_tiers_on_workers && tiers_[tier].config.scope == storage::Scope::kNode;
  }
  absl::Status EvictNodeCopies(uint32_t task, size_t output, uint8_t tier);
  absl::Status RecordNodeCopies(uint32_t task, const TaskReport& report);
  absl::Status RecordCheckpointDir(uint32_t task, const TaskReport& report);
  void OnMoveResult(MoveResult result) {
    {
      std::lock_guard lock(mu_);
      move_results_.push_back(std::move(result));
      ++urgent_reports_;
      woken_ = true;
    }
    cv_.notify_one();
  }
  bool Finished() const { return counts_.done() == counts_.total && moves_in_flight_ == 0; }

  // --- cache
  std::string CacheKey(uint32_t task, const std::vector<std::string>& argv,
                       const std::vector<std::pair<std::string, std::string>>& env,
                       const std::vector<std::pair<std::string, std::vector<uint32_t>>>& inputs);
  struct CacheHit {
    int64_t attempt_id = 0;
    std::vector<std::string> paths;   // by output index
    std::vector<std::string> hashes;  // by output index
    // By output index, for an output kept only on an object store: its
    // tier and key there (restored into staging before the reuse).
    std::vector<std::optional<std::pair<uint8_t, std::string>>> restore;
  };
  absl::StatusOr<std::optional<CacheHit>> FindCacheHit(uint32_t task, const std::string& key);

  // --- paths
  fs::path TaskDir(const fs::path& base, uint32_t task) const {
    const TaskRec& rec = tasks_[task];
    fs::path dir = base / stages_[rec.stage].name;
    if (pipeline_.stages[rec.stage].foreach) dir /= stages_[rec.stage].item_components[rec.item];
    return dir;
  }
  // Artifacts have the same key on every tier: runs/RUN/artifacts/STAGE/
  // OUTPUT, and /ITEM below it for a foreach stage's items.
  std::string GatherKey(uint32_t stage, size_t output) const {
    return StrCat("runs/", run_id_, "/artifacts/", stages_[stage].name, "/",
                  pipeline_.stages[stage].outputs[output].name);
  }
  std::string OutputKey(uint32_t task, size_t output) const {
    const TaskRec& rec = tasks_[task];
    std::string key = GatherKey(rec.stage, output);
    if (pipeline_.stages[rec.stage].foreach) {
      key = StrCat(key, "/", stages_[rec.stage].item_components[rec.item]);
    }
    return key;
  }
  // A path on a posix tier (write and working tiers are posix).
  std::string TierPath(uint8_t tier, const std::string& key) const {
    return (tiers_[tier].root / key).string();
  }
  // Where the task writes an output: its write tier.
  std::string OutputPath(uint32_t task, size_t output) const {
    return TierPath(tasks_[task].places[output].write, OutputKey(task, output));
  }
  // What consumer `task` sees for `stage.output` (its input `input`): the
  // artifact on its working tier, or for a foreach stage the folder that
  // gathers every item's artifact there.
  std::string InputPath(uint32_t task, size_t input, uint32_t stage, size_t output) const {
    const uint8_t tier = tasks_[task].input_tiers[input];
    if (pipeline_.stages[stage].foreach) return TierPath(tier, GatherKey(stage, output));
    return TierPath(tier, OutputKey(graph_->FirstTask(stage), output));
  }
  // Where `task` reads its inputs and how much of each: attempts.reads_json.
  std::string ReadsJson(uint32_t task) const {
    const dag::Stage& stage = pipeline_.stages[tasks_[task].stage];
    json reads = json::array();
    for (size_t i = 0; i < stage.inputs.size(); ++i) {
      const int producer = pipeline_.FindStage(stage.inputs[i].stage);
      const dag::Stage& from = pipeline_.stages[producer];
      size_t o = 0;
      while (o < from.outputs.size() && from.outputs[o].name != stage.inputs[i].output) ++o;
      uint64_t bytes = 0;
      const uint32_t first = graph_->FirstTask(producer);
      for (uint32_t k = 0; k < from.TaskCount() && o < from.outputs.size(); ++k) {
        bytes += tasks_[first + k].outputs[o].bytes;
      }
      const uint8_t node = tasks_[task].node_input_tiers[i];
      const uint8_t tier = node != kNoTier ? node : tasks_[task].input_tiers[i];
      reads.push_back(
          {{"input", stage.inputs[i].name}, {"tier", tiers_[tier].config.name}, {"bytes", bytes}});
    }
    return reads.dump();
  }
  std::string CopyUri(uint8_t tier, const std::string& key) const {
    const storage::TierConfig& config = tiers_[tier].config;
    if (tiers_[tier].posix) return TierPath(tier, key);
    return StrCat("s3://", config.bucket, "/", config.prefix.empty() ? "" : config.prefix + "/",
                  key);
  }

  void Emit(uint32_t task, std::string message, Duration duration = Duration(0)) {
    TaskEvent event;
    event.time_ms = WallClockMs();
    event.task_id = tasks_[task].id;
    event.state = std::string(tasks_[task].state);
    event.attempt = tasks_[task].attempts;
    event.message = std::move(message);
    event.duration = duration;
    event.log_path = tasks_[task].log_path;
    pending_events_.push_back(std::move(event));
  }
  void CountState(std::string_view state, int delta);
  absl::Status AddEvent(const std::string& task_id, int64_t attempt_id, std::string_view kind,
                        const std::string& message);
  absl::Status FinishRun(std::string_view state, const std::string& message);
  void RecordStopped(const std::string& why);
  RunResult MakeResult(std::string_view state) const;

  EngineOptions options_;
  std::unique_ptr<Database> db_;
  fs::path state_dir_;
  fs::path run_dir_;
  std::string run_id_;
  std::string working_dir_;
  std::optional<RunLock> lock_;

  dag::Pipeline pipeline_;
  std::optional<dag::TaskGraph> graph_;
  std::vector<TaskRec> tasks_;
  std::vector<StageRec> stages_;
  std::unordered_map<int64_t, uint32_t> attempt_task_;
  std::map<std::string, std::string> script_hashes_;  // path -> content hash

  struct ReadyOrder {
    const std::vector<TaskRec>* tasks;
    const std::vector<StageRec>* stages;
    bool operator()(uint32_t a, uint32_t b) const {  // true: a runs after b
      uint32_t la = (*stages)[(*tasks)[a].stage].bottom_level;
      uint32_t lb = (*stages)[(*tasks)[b].stage].bottom_level;
      if (la != lb) return la < lb;
      return (*tasks)[a].seq > (*tasks)[b].seq;
    }
  };
  std::priority_queue<uint32_t, std::vector<uint32_t>, ReadyOrder> ready_{
      ReadyOrder{&tasks_, &stages_}};
  std::vector<uint32_t> newly_ready_;  // to be marked queued if no slot takes them
  std::multimap<SteadyTime, uint32_t> retry_timers_;
  RunCounts counts_;
  bool cancelling_ = false;
  std::vector<TaskLaunch> to_launch_;
  std::unordered_set<int64_t> ended_;  // attempts whose end this turn applies
  bool launched_ = false;              // the last turn launched tasks
  std::vector<int64_t> to_cancel_;
  std::vector<TaskEvent> pending_events_;
  SteadyTime started_;
  std::atomic<bool> driving_{false};  // Run or Resume in progress

  // Prepared statements, made once per run.
  std::optional<Statement> insert_attempt_;
  std::optional<Statement> finish_attempt_;
  std::optional<Statement> set_attempt_pid_;
  std::optional<Statement> update_task_;
  std::optional<Statement> insert_artifact_;
  std::optional<Statement> overwrite_copies_;
  std::optional<Statement> insert_copy_;
  std::optional<Statement> insert_edge_;
  std::optional<Statement> insert_event_;
  std::optional<Statement> find_cached_;
  std::optional<Statement> cached_outputs_;
  std::optional<Statement> update_copy_;

  // Tiers and the copies between them.
  struct Tier {
    storage::TierConfig config;
    std::unique_ptr<storage::Adapter> adapter;
    bool posix = true;
    fs::path root;  // posix tiers
  };
  std::vector<Tier> tiers_;
  std::vector<PlacementTier> placement_tiers_;
  std::string tiers_json_;  // as recorded with the run; "" for the implicit tier
  struct Move {
    uint32_t task = 0;
    uint8_t output = 0;
    uint8_t tier = 0;
    MoveJob::Kind kind = MoveJob::Kind::kCopy;
    bool restore = false;  // a cached output restored into staging (id < 0)
    uint8_t source = 0;    // kCopy: the tier it is copied from
    // kRun: the checkpoints row it flushes (> 0) or removes (< 0), or 0:
    // a checkpoint restored for a retry (restore set).
    int64_t checkpoint = 0;
  };
  // Checkpoints: tasks write them on the fastest posix tier; each one the
  // task commits is flushed to its stage's durable tier while it runs.
  uint8_t checkpoint_tier_ = kNoTier;  // kNoTier: in the run's folder, never flushed
  // Cluster mode: the node tier workers write checkpoints on and copy them
  // from to checkpoint_tier_ (CheckpointRelay); kNoTier: none faster.
  uint8_t checkpoint_node_tier_ = kNoTier;
  std::vector<uint8_t> checkpoint_flush_;  // by stage: the durable tier, or kNoTier
  // Running tasks whose checkpoints are flushed: the names already seen.
  std::unordered_map<uint32_t, std::set<std::string>> checkpoint_watch_;
  SteadyTime next_checkpoint_poll_{};
  std::string CheckpointKey(uint32_t task) const {
    return TaskDir(fs::path("runs") / run_id_ / "checkpoints", task).string();
  }
  absl::Status SetUpCheckpoints();
  absl::Status WatchCheckpoints(uint32_t task, TaskLaunch& launch, int& restores);
  absl::Status PollCheckpoints(std::optional<uint32_t> only = std::nullopt);
  // `attempt`: the attempt that committed it (default: the task's current one).
  absl::Status FlushCheckpoint(uint32_t task, const std::string& name, int64_t attempt = 0);
  struct Unflushed {
    uint32_t task = 0;
    std::string name;
    int64_t attempt = 0;
  };
  std::vector<Unflushed> unflushed_;  // a resume: flushes the crash cut off
  absl::Status ApplyCheckpointMove(const Move& move, const MoveResult& result);
  absl::Status KeepCheckpoints(uint32_t task);
  // Every move under way is in moves_; a copy counts in /metrics too.
  void AddMove(int64_t id, Move move) {
    if (move.kind == MoveJob::Kind::kCopy) metrics::Engine().transfers_in_flight.Add(1);
    moves_[id] = move;
    ++moves_in_flight_;
  }
  // One COMMIT of the engine, timed for /metrics.
  absl::Status Commit() {
    metrics::ScopedTimer timer(metrics::Engine().sqlite_commit_seconds);
    return db_->CommitWrite(options_.random);
  }
  // BEGIN IMMEDIATE, waiting out another process's write lock (Database::
  // BeginWrite); a wait past the busy timeout is recorded as an event.
  absl::Status BeginWrite() {
    TF_ASSIGN_OR_RETURN(Database::WriteWait wait, db_->BeginWrite(options_.random));
    if (wait.tries == 1) return absl::OkStatus();
    return AddEvent("", 0, "database_busy",
                    StrCat("waited ", FormatDuration(wait.waited), " (", wait.tries,
                           " tries) for the database's write lock, which another process held"));
  }
  int64_t last_restore_id_ = 0;
  struct WaitingLaunch {
    TaskLaunch launch;
    int restores = 0;  // still being copied
  };
  std::unordered_map<uint32_t, WaitingLaunch> waiting_launches_;  // by task
  std::unordered_map<uint32_t, std::string> restore_failures_;    // by task: why
  // Remote tiers (s3): their retries and sweeps, told on transfer threads,
  // recorded as run events in the next turn; their transfers stop when
  // this is set (the run is cancelled or stops on an error).
  std::shared_ptr<std::atomic<bool>> transfers_cancelled_;
  std::atomic<bool> tier_retried_{false};  // a request to a remote tier was retried
  std::vector<std::pair<std::string, std::string>> tier_events_;  // guarded by mu_
  // Aborts the unfinished multipart uploads of this run on its remote
  // tiers (nothing writes there now); each sweep that found some, an event.
  void SweepUploads(std::string_view when);
  absl::Status RecordTierEvents();
  std::unordered_map<int64_t, Move> moves_;                       // by copy id: under way
  size_t moves_in_flight_ = 0;
  std::vector<MoveJob> to_move_;               // submitted after the turn's commit
  std::unordered_set<uint32_t> data_waiters_;  // ready tasks whose inputs are being copied
  std::vector<std::string> move_failures_;     // write-backs that failed: the run fails
  std::vector<std::string> unsafe_paths_;      // evictions refused (a symlink, a mount): too
  bool schedule_kept_ = false;                 // the first turn of a resume schedules kept outputs
  std::unique_ptr<Mover> mover_;
  // Streamed copies under way, by copy id: told when their readers end.
  struct StreamControl {
    std::atomic<bool> readers_done{false};
  };
  std::unordered_map<int64_t, std::shared_ptr<StreamControl>> streams_;
  static constexpr int64_t kStreamWindow = 8;   // files copied ahead of the reader
  static constexpr size_t kStreamParallel = 4;  // of them at once
  // Cluster mode: the workers' copies on node tiers, by (producer task,
  // output, node tier): which worker, and its artifact_copies row.
  std::map<std::tuple<uint32_t, uint8_t, uint8_t>, std::vector<std::pair<std::string, int64_t>>>
      node_copies_;
  struct NodeEviction {
    std::string worker;
    std::string tier;
    std::string key;
  };
  std::vector<NodeEviction> to_evict_on_workers_;  // told after the turn's commit
  // Checkpoint flushes under way: the content hash their job computes.
  std::unordered_map<int64_t, std::shared_ptr<storage::ContentDigest>> checkpoint_digests_;

  // Shared with other threads.
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<TaskReport> reports_;       // guarded by mu_
  std::deque<MoveResult> move_results_;  // guarded by mu_
  size_t urgent_reports_ = 0;            // guarded by mu_: reports_ that are not kStarted
  bool woken_ = false;                   // guarded by mu_: Drive has something to look at
  // Held while a turn runs and while Drive reads the engine's state: turns
  // run on Drive's thread or, inline, on a worker thread reporting.
  std::mutex turn_mu_;
  bool inline_turns_ = false;             // guarded by turn_mu_
  absl::Status turn_status_;              // guarded by turn_mu_: the first failed turn's
  std::optional<SteadyTime> drive_wake_;  // guarded by turn_mu_: Drive sleeps until then
  bool cancel_requested_ = false;         // guarded by mu_
  std::mutex executor_mu_;
  std::unique_ptr<Executor> executor_;  // guarded by executor_mu_ for KillNow
};

// ------------------------------------------------------------------ set-up

// An Engine drives one run at a time, any number in sequence: each starts
// from a clean slate.
absl::Status Engine::Impl::BeginRun() {
  if (driving_.exchange(true)) {
    return absl::FailedPreconditionError("this engine is already driving a run: one run at a time");
  }
  started_ = std::chrono::steady_clock::now();
  // Statements before the database they belong to.
  for (std::optional<Statement>* statement :
       {&insert_attempt_, &finish_attempt_, &set_attempt_pid_, &update_task_, &insert_artifact_,
        &overwrite_copies_, &insert_copy_, &insert_edge_, &insert_event_, &find_cached_,
        &cached_outputs_, &update_copy_}) {
    statement->reset();
  }
  mover_.reset();
  tiers_.clear();
  placement_tiers_.clear();
  tiers_json_.clear();
  moves_.clear();
  moves_in_flight_ = 0;
  last_restore_id_ = 0;
  streams_.clear();
  unflushed_.clear();
  checkpoint_watch_.clear();
  checkpoint_digests_.clear();
  waiting_launches_.clear();
  restore_failures_.clear();
  {
    std::lock_guard lock(mu_);
    tier_events_.clear();
  }
  to_move_.clear();
  data_waiters_.clear();
  move_failures_.clear();
  unsafe_paths_.clear();
  schedule_kept_ = false;
  db_.reset();
  lock_.reset();
  run_id_.clear();
  run_dir_.clear();
  graph_.reset();
  pipeline_ = dag::Pipeline{};
  tasks_.clear();
  stages_.clear();
  attempt_task_.clear();
  script_hashes_.clear();  // scripts may have been edited since the last run
  ready_ = decltype(ready_)(ReadyOrder{&tasks_, &stages_});
  newly_ready_.clear();
  retry_timers_.clear();
  counts_ = RunCounts{};
  cancelling_ = false;
  to_launch_.clear();
  launched_ = false;
  to_cancel_.clear();
  pending_events_.clear();
  std::lock_guard lock(mu_);
  reports_.clear();
  move_results_.clear();
  urgent_reports_ = 0;
  woken_ = false;
  turn_status_ = absl::OkStatus();
  drive_wake_.reset();
  return absl::OkStatus();
}

// A Cancel() that arrived while this run was driven ends with it; one that
// arrives between runs applies to the next.
void Engine::Impl::EndRun() {
  // Copies this engine counted as under way that never reported (a run
  // that ended on an error): no longer under way for /metrics.
  for (const auto& [id, move] : moves_) {
    if (move.kind == MoveJob::Kind::kCopy) metrics::Engine().transfers_in_flight.Add(-1);
  }
  moves_.clear();
  moves_in_flight_ = 0;
  {
    std::lock_guard lock(mu_);
    cancel_requested_ = false;
  }
  lock_.reset();  // the run is no longer driven: resume and cancel may take it
  driving_ = false;
}

absl::Status Engine::Impl::OpenDatabase() {
  TF_ASSIGN_OR_RETURN(db_, OpenStore(options_.db_path));
  TF_RETURN_IF_ERROR(db_->CheckpointInBackground());
  std::error_code error;
  state_dir_ = fs::absolute(fs::path(options_.db_path).parent_path(), error);
  return absl::OkStatus();
}

absl::Status Engine::Impl::Prepare(const std::string& yaml, const std::string& file,
                                   const std::map<std::string, std::string>& params) {
  dag::LoadOptions load;
  load.param_overrides = params;
  std::vector<Diagnostic> diagnostics;
  absl::StatusOr<dag::Pipeline> pipeline = dag::LoadPipelineText(yaml, file, load, &diagnostics);
  if (!pipeline.ok()) {
    if (diagnostics.empty()) return pipeline.status();
    SortDiagnostics(diagnostics);
    return DiagnosticsToStatus(diagnostics);
  }
  pipeline_ = std::move(*pipeline);
  TF_ASSIGN_OR_RETURN(dag::TaskGraph graph, dag::TaskGraph::Build(pipeline_));
  graph_.emplace(std::move(graph));

  const size_t stage_count = pipeline_.stages.size();
  stages_.resize(stage_count);
  for (uint32_t s = 0; s < stage_count; ++s) {
    stages_[s].name = pipeline_.stages[s].name;
    stages_[s].item_components = ItemComponents(pipeline_.stages[s]);
    stages_[s].unfinished = static_cast<uint32_t>(pipeline_.stages[s].TaskCount());
  }
  // Bottom levels, sinks first: layers order stages topologically.
  std::vector<std::vector<uint32_t>> layers = graph_->StageLayers();
  for (auto layer = layers.rbegin(); layer != layers.rend(); ++layer) {
    for (uint32_t s : *layer) {
      uint32_t level = 0;
      for (uint32_t child : graph_->StageChildren(s)) {
        level = std::max(level, stages_[child].bottom_level);
      }
      stages_[s].bottom_level = level + 1;
    }
  }
  // Tasks in plan order (layer by layer, stages in file order, items in
  // foreach order); seq is that order.
  tasks_.resize(graph_->tasks().size());
  uint32_t seq = 0;
  for (const std::vector<uint32_t>& layer : layers) {
    for (uint32_t s : layer) {
      uint32_t first = graph_->FirstTask(s);
      for (uint32_t i = 0; i < pipeline_.stages[s].TaskCount(); ++i) {
        TaskRec& rec = tasks_[first + i];
        rec.stage = s;
        rec.item = i;
        rec.seq = seq++;
        rec.id = graph_->TaskId(graph_->tasks()[first + i]);
        rec.outputs.resize(pipeline_.stages[s].outputs.size());
      }
    }
  }
  counts_ = RunCounts{};
  counts_.total = static_cast<uint32_t>(tasks_.size());
  counts_.pending = counts_.total;
  return absl::OkStatus();
}

// ------------------------------------------------------------------ tiers

namespace {}  // namespace

absl::Status Engine::Impl::SetUpTiers(const std::optional<std::string>& stored) {
  placement_ = {};
  checkpoint_placement_.clear();
  if (!stored) {
    placement_tiers_ = options_.tiers;
  } else if (!stored->empty()) {
    TF_ASSIGN_OR_RETURN(placement_tiers_, PlacementTiersFromJson(*stored));
  }
  std::optional<Placement> placement;
  if (placement_tiers_.empty()) {
    // The implicit tier: the store's folder, where tasks write and read.
    Tier tier;
    tier.config.name = "local";
    tier.config.adapter = "posix";
    tier.config.root = state_dir_.string();
    tier.root = state_dir_;
    TF_ASSIGN_OR_RETURN(tier.adapter, storage::OpenPosixTier(tier.config));
    tiers_.push_back(std::move(tier));
  } else {
    if (placement_tiers_.size() > 64) {
      return absl::InvalidArgumentError(
          StrCat(placement_tiers_.size(), " tiers: a run is placed on at most 64"));
    }
    // Placed before anything is recorded: when nothing fits, nothing changes.
    PlacementOptions placing;
    placing.node_tiers_hold_working_copies_only = options_.node_tiers_on_workers;
    const Plan plan = BuildPlan(*graph_);
    TF_ASSIGN_OR_RETURN(placement, PlaceArtifacts(plan, placement_tiers_, placing));
    TF_ASSIGN_OR_RETURN(checkpoint_placement_, PlaceCheckpoints(plan, placement_tiers_, placing));
    placement_ = *placement;
    tiers_json_ = PlacementTiersToJson(placement_tiers_);
    for (const PlacementTier& placed : placement_tiers_) {
      Tier tier;
      tier.config = placed.config;
      tier.posix = placed.config.adapter == "posix";
      tier.root = placed.config.root;
      if (options_.open_tier) {
        TF_ASSIGN_OR_RETURN(tier.adapter, options_.open_tier(placed.config));
      } else if (tier.posix) {
        TF_ASSIGN_OR_RETURN(tier.adapter, storage::OpenPosixTier(placed.config));
      } else {
        return absl::UnimplementedError(StrCat("tier ", placed.config.name, ": no adapter for '",
                                               placed.config.adapter, "' in this engine"));
      }
      tiers_.push_back(std::move(tier));
    }
  }
  // Remote tiers tell this run their retries, stop with it, and must answer
  // before anything starts (credentials, bucket): a run that cannot write
  // its outputs back should not run its tasks first.
  transfers_cancelled_ = std::make_shared<std::atomic<bool>>(false);
  tier_retried_ = false;
  for (Tier& tier : tiers_) {
    storage::RemoteStore* remote = tier.adapter->remote();
    if (remote == nullptr) continue;
    remote->Watch(
        [this](const storage::RetryNotice& notice) {
          metrics::Engine().storage_retries.With({notice.tier}).Increment();
          tier_retried_ = true;
          {
            std::lock_guard lock(mu_);
            tier_events_.emplace_back(
                "transfer_retry", StrCat("tier ", notice.tier, ": attempt ", notice.attempt,
                                         " failed, trying again in ", FormatDuration(notice.wait),
                                         ": ", notice.error));
            woken_ = true;
          }
          cv_.notify_one();
        },
        transfers_cancelled_);
    if (absl::Status reachable = remote->CheckReachable(); !reachable.ok()) {
      return absl::Status(reachable.code(),
                          StrCat(reachable.message(), "\nnothing was started: the run needs tier ",
                                 tier.config.name));
    }
  }
  const size_t tier_count = tiers_.size();
  auto tier_index = [&](const std::string& name) -> uint8_t {
    for (uint8_t i = 0; i < tier_count; ++i) {
      if (tiers_[i].config.name == name) return i;
    }
    return 0;
  };
  for (TaskRec& task : tasks_) {
    const dag::Stage& stage = pipeline_.stages[task.stage];
    task.places.assign(stage.outputs.size(), OutputPlace{});
    for (OutputPlace& place : task.places) {
      place.copies.assign(tier_count, CopyState::kNone);
      place.copy_ids.assign(tier_count, 0);
      place.readers.assign(tier_count, 0);
    }
    task.input_tiers.assign(stage.inputs.size(), 0);
    task.node_input_tiers.assign(stage.inputs.size(), kNoTier);
  }
  if (placement) {
    std::unordered_map<std::string_view, uint32_t> by_id;
    by_id.reserve(tasks_.size());
    for (uint32_t t = 0; t < tasks_.size(); ++t) by_id.emplace(tasks_[t].id, t);
    for (const OutputPlacement& out : placement->outputs) {
      auto found = by_id.find(out.task);
      if (found == by_id.end()) continue;
      TaskRec& task = tasks_[found->second];
      const dag::Stage& stage = pipeline_.stages[task.stage];
      for (size_t o = 0; o < stage.outputs.size(); ++o) {
        if (stage.outputs[o].name != out.output) continue;
        task.places[o].home = tier_index(out.home);
        task.places[o].write = tier_index(out.write_tier);
      }
    }
    // Where a consumer reads an input: by default where it is written.
    for (TaskRec& task : tasks_) {
      const dag::Stage& stage = pipeline_.stages[task.stage];
      for (size_t i = 0; i < stage.inputs.size(); ++i) {
        const int producer = pipeline_.FindStage(stage.inputs[i].stage);
        const dag::Stage& from = pipeline_.stages[producer];
        for (size_t o = 0; o < from.outputs.size(); ++o) {
          if (from.outputs[o].name == stage.inputs[i].output) {
            task.input_tiers[i] = tasks_[graph_->FirstTask(producer)].places[o].write;
          }
        }
      }
    }
    for (const InputPlacement& in : placement->inputs) {
      auto found = by_id.find(in.task);
      if (found == by_id.end()) continue;
      TaskRec& task = tasks_[found->second];
      const dag::Stage& stage = pipeline_.stages[task.stage];
      for (size_t i = 0; i < stage.inputs.size(); ++i) {
        if (stage.inputs[i].name != in.input) continue;
        const uint8_t working = tier_index(in.working);
        if (OnWorkers(working)) {
          // Its worker copies it there from where it is written, which
          // stays until it has read it (and is read in place meanwhile).
          task.node_input_tiers[i] = working;
          task.input_tiers[i] = tier_index(in.source);
        } else {
          task.input_tiers[i] = working;
        }
      }
    }
  }
  // Needs: every producer task's artifact of every input, on the tier the
  // input is read from (once, when two inputs name the same artifact there).
  for (uint32_t t = 0; t < tasks_.size(); ++t) {
    TaskRec& task = tasks_[t];
    const dag::Stage& stage = pipeline_.stages[task.stage];
    task.needs.clear();
    for (size_t i = 0; i < stage.inputs.size(); ++i) {
      const dag::InputRef& input = stage.inputs[i];
      bool repeated = false;
      for (size_t j = 0; j < i; ++j) {
        repeated = repeated || (stage.inputs[j].stage == input.stage &&
                                stage.inputs[j].output == input.output &&
                                task.input_tiers[j] == task.input_tiers[i] &&
                                task.node_input_tiers[j] == task.node_input_tiers[i]);
      }
      if (repeated) continue;
      const int producer = pipeline_.FindStage(input.stage);
      const dag::Stage& from = pipeline_.stages[producer];
      size_t o = 0;
      while (o < from.outputs.size() && from.outputs[o].name != input.output) ++o;
      const uint32_t first = graph_->FirstTask(producer);
      for (uint32_t k = 0; k < from.TaskCount(); ++k) {
        // Streaming is for one artifact (a tree of files), not a gather.
        const bool stream = input.stream && !from.foreach;
        task.needs.push_back({first + k, static_cast<uint8_t>(o), task.input_tiers[i],
                              task.node_input_tiers[i], stream});
        // (A copy onto a node tier is the worker's to stream.)
        if (stream && task.node_input_tiers[i] == kNoTier) {
          tasks_[first + k].places[o].stream_tiers |= uint64_t{1} << task.input_tiers[i];
        }
        ++tasks_[first + k].places[o].consumers;
      }
    }
  }
  TF_RETURN_IF_ERROR(SetUpCheckpoints());
  return absl::OkStatus();
}

void Engine::Impl::CountReaders() {
  for (const TaskRec& task : tasks_) {
    if (IsTerminal(task.state)) continue;
    for (const Need& need : task.needs) {
      std::vector<uint32_t>& readers = tasks_[need.task].places[need.output].readers;
      ++readers[need.tier];
      if (need.node_tier != kNoTier) ++readers[need.node_tier];
    }
  }
}

absl::StatusOr<int64_t> Engine::Impl::InsertCopy(uint32_t t, size_t o, uint8_t tier,
                                                 std::string_view state,
                                                 std::optional<uint8_t> source,
                                                 const std::string& uri) {
  const ArtifactRec& artifact = tasks_[t].outputs[o];
  insert_copy_->Bind(1, artifact.id)
      .Bind(2, tiers_[tier].config.name)
      .Bind(3, uri.empty() ? CopyUri(tier, OutputKey(t, o)) : uri)
      .Bind(4, tier == tasks_[t].places[o].home ? "home" : "working")
      .Bind(5, static_cast<int64_t>(artifact.bytes))
      .Bind(6, artifact.hash)
      .Bind(7, state)
      .Bind(8, WallClockMs());
  if (source) {
    insert_copy_->Bind(9, tiers_[*source].config.name);
  } else {
    insert_copy_->BindNull(9);
  }
  absl::StatusOr<bool> row = insert_copy_->Step();
  const int64_t id = row.ok() && *row ? insert_copy_->Int(0) : 0;
  insert_copy_->Reset();
  if (!row.ok()) return row.status();
  return id;
}

absl::Status Engine::Impl::UpdateCopy(int64_t copy_id, std::string_view state,
                                      const std::string& message) {
  update_copy_->Bind(1, state).Bind(2, WallClockMs()).Bind(3, message).Bind(4, copy_id);
  return update_copy_->Run();
}

absl::Status Engine::Impl::ScheduleMoves(uint32_t t, size_t o) {
  OutputPlace& place = tasks_[t].places[o];
  if (tasks_[t].outputs[o].id == 0) return absl::OkStatus();
  if (place.copies[place.home] == CopyState::kNone) TF_RETURN_IF_ERROR(StartCopy(t, o, place.home));
  for (uint8_t tier = 0; tier < tiers_.size(); ++tier) {
    if (place.readers[tier] > 0 && place.copies[tier] == CopyState::kNone && !OnWorkers(tier)) {
      TF_RETURN_IF_ERROR(StartCopy(t, o, tier));
    }
  }
  return MaybeEvict(t, o);
}

absl::Status Engine::Impl::StartCopy(uint32_t t, size_t o, uint8_t tier) {
  OutputPlace& place = tasks_[t].places[o];
  // From where it was written if it is still there, else any posix copy,
  // else its home.
  std::optional<uint8_t> source;
  if (place.copies[place.write] == CopyState::kPresent) source = place.write;
  for (uint8_t x = 0; x < tiers_.size() && !source; ++x) {
    if (place.copies[x] == CopyState::kPresent && tiers_[x].posix) source = x;
  }
  if (!source && place.copies[place.home] == CopyState::kPresent) source = place.home;
  if (!source) return absl::OkStatus();  // nothing to copy from yet
  TF_ASSIGN_OR_RETURN(const int64_t id, InsertCopy(t, o, tier, "copying", source));
  place.copies[tier] = CopyState::kCopying;
  place.copy_ids[tier] = id;
  AddMove(id, {t, static_cast<uint8_t>(o), tier, MoveJob::Kind::kCopy, false, *source});
  const std::string key = OutputKey(t, o);
  // Never on an archive: what is there stays, and the copy fails instead.
  const bool dirty =
      ((place.dirty >> tier) & 1) && tiers_[tier].config.durability != Durability::kArchive;
  place.dirty &= ~(uint64_t{1} << tier);  // the job clears it; a failure marks it again
  if (((place.stream_tiers >> tier) & 1) && tiers_[tier].posix) {
    to_move_.push_back(StreamCopy(id, *source, tier, key, dirty, tasks_[t].outputs[o].hash));
    return absl::OkStatus();
  }
  to_move_.push_back({MoveJob::Kind::kCopy,
                      id,
                      tiers_[*source].adapter.get(),
                      tiers_[tier].adapter.get(),
                      key,
                      tiers_[tier].posix ? TierPath(tier, key) : "",
                      dirty,
                      "",
                      {},
                      tasks_[t].outputs[o].hash});
  return absl::OkStatus();
}

// A streamed copy: the manifest (every file, in copy order) first, then
// the files one by one, each atomically, at most kStreamWindow files ahead
// of what its reader has opened (the helpers write that to the manifest's
// ".next" file). The engine hears once the first file is there.
MoveJob Engine::Impl::StreamCopy(int64_t id, uint8_t source, uint8_t tier, const std::string& key,
                                 bool clear_first, const std::string& expected_hash) {
  auto control = std::make_shared<StreamControl>();
  streams_[id] = control;
  MoveJob job;
  job.kind = MoveJob::Kind::kRun;
  job.copy_id = id;
  storage::Adapter* from = tiers_[source].adapter.get();
  storage::Adapter* to = tiers_[tier].adapter.get();
  storage::StreamOptions options;
  options.window = kStreamWindow;
  options.clear_first = clear_first;
  options.expected_hash = expected_hash;
  options.readers_done = std::shared_ptr<const std::atomic<bool>>(control, &control->readers_done);
  options.on_first = [this, id] {
    MoveResult result;
    result.kind = MoveJob::Kind::kRun;
    result.copy_id = id;
    result.started = true;
    OnMoveResult(std::move(result));
  };
  job.run = [from, to, key, path = TierPath(tier, key),
             options]() -> absl::StatusOr<storage::TransferResult> {
    return storage::StreamArtifact(*from, key, *to, path, options);
  };
  return job;
}

absl::StatusOr<bool> Engine::Impl::DataReady(uint32_t t) {
  bool ready = true;
  for (const Need& need : tasks_[t].needs) {
    const CopyState state = tasks_[need.task].places[need.output].copies[need.tier];
    if (state == CopyState::kPresent) continue;
    if (state == CopyState::kStreaming && need.stream) continue;
    ready = false;
    if (state == CopyState::kNone) TF_RETURN_IF_ERROR(StartCopy(need.task, need.output, need.tier));
  }
  return ready;
}

absl::Status Engine::Impl::ApplyMove(const MoveResult& result) {
  auto found = moves_.find(result.copy_id);
  if (found == moves_.end()) return absl::OkStatus();
  if (result.started) {
    // A streamed copy's first files are there: its readers may start.
    const Move& move = found->second;
    OutputPlace& place = tasks_[move.task].places[move.output];
    if (place.copies[move.tier] != CopyState::kCopying) return absl::OkStatus();
    place.copies[move.tier] = CopyState::kStreaming;
    return WakeDataWaiters();
  }
  streams_.erase(result.copy_id);
  const Move move = found->second;
  moves_.erase(found);
  --moves_in_flight_;
  if (move.kind == MoveJob::Kind::kRun) return ApplyCheckpointMove(move, result);
  if (move.kind == MoveJob::Kind::kCopy) {
    metrics::Engine().transfers_in_flight.Add(-1);
    if (result.status.ok()) {
      metrics::Engine().RecordTransfer(tiers_[move.source].config.name,
                                       tiers_[move.tier].config.name, result.moved.bytes,
                                       std::chrono::duration<double>(result.elapsed).count());
    }
  }
  const TaskRec& producer = tasks_[move.task];
  const std::string what =
      StrCat(producer.id, ".", pipeline_.stages[producer.stage].outputs[move.output].name);
  const std::string& tier = tiers_[move.tier].config.name;
  if (move.restore) {
    // Launched once every restore has ended; one that failed makes the
    // reuse fail in the worker (its source is missing), and the task runs.
    if (!result.status.ok()) {
      const std::string failure =
          StrCat("restoring the cached ", what, " to tier ", tier, ": ", result.status.message());
      TF_RETURN_IF_ERROR(AddEvent(producer.id, 0, "copy_failed", failure));
      // What the failed reuse reports (its source is missing) says less.
      restore_failures_[move.task] = failure;
    }
    auto waiting = waiting_launches_.find(move.task);
    if (waiting != waiting_launches_.end() && --waiting->second.restores == 0) {
      to_launch_.push_back(std::move(waiting->second.launch));
      waiting_launches_.erase(waiting);
    }
    return absl::OkStatus();
  }
  if (move.kind == MoveJob::Kind::kDelete) {
    if (result.status.ok()) return absl::OkStatus();
    const std::string message =
        StrCat("evicting ", what, " from tier ", tier, ": ", result.status.message());
    // A symlink or a mount where the copy was (docs/tiers.md "Path safety"):
    // someone tampered with the tier; the run fails with it.
    if (absl::IsFailedPrecondition(result.status)) unsafe_paths_.push_back(message);
    return AddEvent(producer.id, 0, "evict_failed", message);
  }
  OutputPlace& place = tasks_[move.task].places[move.output];
  if (result.status.ok()) {
    place.copies[move.tier] = CopyState::kPresent;
    const std::string done =
        StrCat(FormatSize(result.moved.bytes), " in ", FormatDuration(result.elapsed));
    TF_RETURN_IF_ERROR(UpdateCopy(result.copy_id, "present", done));
    TF_RETURN_IF_ERROR(
        AddEvent(producer.id, 0, "copied", StrCat(what, " to tier ", tier, ": ", done)));
    TF_RETURN_IF_ERROR(WakeDataWaiters());
    return MaybeEvict(move.task, move.output);
  }
  place.copies[move.tier] = CopyState::kNone;
  place.dirty |= uint64_t{1} << move.tier;
  const std::string message =
      StrCat("copying ", what, " to tier ", tier, " failed: ", result.status.message());
  TF_RETURN_IF_ERROR(UpdateCopy(result.copy_id, "failed", std::string(result.status.message())));
  TF_RETURN_IF_ERROR(AddEvent(producer.id, 0, "copy_failed", message));
  if (result.status.code() == absl::StatusCode::kCancelled) return absl::OkStatus();
  if (move.tier == place.home) {
    // The output is safe where it was written; the run cannot succeed
    // without its home copy, and a resume tries the write-back again.
    move_failures_.push_back(message);
    return absl::OkStatus();
  }
  // Its readers waiting for it cannot run.
  std::vector<uint32_t> failed;
  for (uint32_t waiter : data_waiters_) {
    for (const Need& need : tasks_[waiter].needs) {
      if (need.task == move.task && need.output == move.output && need.tier == move.tier) {
        failed.push_back(waiter);
        break;
      }
    }
  }
  for (uint32_t waiter : failed) {
    data_waiters_.erase(waiter);
    TF_RETURN_IF_ERROR(SetTaskState(waiter, task_state::kFailed, message));
    TF_RETURN_IF_ERROR(FailDownstream(tasks_[waiter].stage, tasks_[waiter].id));
  }
  return absl::OkStatus();
}

// Ready tasks that waited for copies of their inputs run once all are there.
absl::Status Engine::Impl::WakeDataWaiters() {
  for (auto it = data_waiters_.begin(); it != data_waiters_.end();) {
    TF_ASSIGN_OR_RETURN(bool ready, DataReady(*it));
    if (ready) {
      TF_RETURN_IF_ERROR(
          AddEvent(tasks_[*it].id, 0, "data_ready", "its inputs are on its working tiers"));
      ready_.push(*it);
      it = data_waiters_.erase(it);
    } else {
      ++it;
    }
  }
  return absl::OkStatus();
}

absl::Status Engine::Impl::MaybeEvict(uint32_t t, size_t o) {
  OutputPlace& place = tasks_[t].places[o];
  // Only copies beside a complete home copy, once nobody reads them; and a
  // home in RAM (volatile: scratch space) once every task that reads the
  // output has ended, after the other copies.
  if (place.copies[place.home] != CopyState::kPresent) return absl::OkStatus();
  // Nor while a copy is under way: it may be reading one of them (a
  // streamed copy for a long time); its end looks again.
  for (CopyState state : place.copies) {
    if (state == CopyState::kCopying || state == CopyState::kStreaming) return absl::OkStatus();
  }
  const bool scratch = tiers_[place.home].config.durability == Durability::kVolatile &&
                       place.consumers > 0 &&
                       std::all_of(place.readers.begin(), place.readers.end(),
                                   [](uint32_t readers) { return readers == 0; });
  uint8_t order[64];  // every tier but the home, then the home if it goes too
  size_t count = 0;
  for (uint8_t tier = 0; tier < tiers_.size(); ++tier) {
    if (tier != place.home) order[count++] = tier;
  }
  if (scratch) order[count++] = place.home;
  for (size_t i = 0; i < count; ++i) {
    const uint8_t tier = order[i];
    if (place.copies[tier] != CopyState::kPresent || place.readers[tier] > 0) continue;
    const int64_t id = place.copy_ids[tier];
    if (tier == place.home) {
      // The decision to release a volatile home, with its reason: the
      // artifact exists nowhere after this, and is recomputed when needed.
      const std::string what =
          StrCat(tasks_[t].id, ".", pipeline_.stages[tasks_[t].stage].outputs[o].name);
      TF_RETURN_IF_ERROR(UpdateCopy(id, kReleasedCopy, kReleasedWhy));
      TF_RETURN_IF_ERROR(
          AddEvent(tasks_[t].id, 0, "released",
                   StrCat(what, " on tier ", tiers_[tier].config.name, ": ", kReleasedWhy, " (",
                          place.consumers, place.consumers == 1 ? " reader" : " readers", ")")));
    } else {
      TF_RETURN_IF_ERROR(UpdateCopy(id, "evicted", "its last reader ended"));
    }
    place.copies[tier] = CopyState::kNone;
    AddMove(id, {t, static_cast<uint8_t>(o), tier, MoveJob::Kind::kDelete});
    const std::string key = OutputKey(t, o);
    to_move_.push_back({MoveJob::Kind::kDelete,
                        id,
                        nullptr,
                        tiers_[tier].adapter.get(),
                        key,
                        tiers_[tier].posix ? TierPath(tier, key) : "",
                        false,
                        "",
                        {}});
  }
  return absl::OkStatus();
}

absl::Status Engine::Impl::ReleaseNeeds(uint32_t t) {
  for (const Need& need : tasks_[t].needs) {
    std::vector<uint32_t>& readers = tasks_[need.task].places[need.output].readers;
    if (need.stream && readers[need.tier] == 1) {
      // Its last reader there ended: a streamed copy need not wait for it.
      auto stream = streams_.find(tasks_[need.task].places[need.output].copy_ids[need.tier]);
      if (stream != streams_.end()) stream->second->readers_done = true;
    }
    if (need.node_tier != kNoTier && readers[need.node_tier] > 0 &&
        --readers[need.node_tier] == 0) {
      TF_RETURN_IF_ERROR(EvictNodeCopies(need.task, need.output, need.node_tier));
    }
    if (readers[need.tier] == 0) continue;
    if (--readers[need.tier] == 0) TF_RETURN_IF_ERROR(MaybeEvict(need.task, need.output));
  }
  return absl::OkStatus();
}

// The workers' copies of an output on a node tier nobody reads there any
// more: recorded evicted now, deleted by the workers after the commit.
absl::Status Engine::Impl::EvictNodeCopies(uint32_t t, size_t o, uint8_t tier) {
  auto found = node_copies_.find({t, static_cast<uint8_t>(o), tier});
  if (found == node_copies_.end()) return absl::OkStatus();
  for (const auto& [worker, copy_id] : found->second) {
    TF_RETURN_IF_ERROR(UpdateCopy(copy_id, "evicted", "its last reader on this worker ended"));
    to_evict_on_workers_.push_back({worker, tiers_[tier].config.name, OutputKey(t, o)});
  }
  node_copies_.erase(found);
  return absl::OkStatus();
}

// Cluster mode: what a worker copied onto its node tiers for attempt `t`
// before it started, recorded as working copies of the artifacts (a copy
// it had already is recorded once, when made).
absl::Status Engine::Impl::RecordNodeCopies(uint32_t t, const TaskReport& report) {
  if (report.node_copies.empty()) return absl::OkStatus();
  // "TIER/KEY" of each artifact the task reads on a node tier (a gather:
  // one per item), made once per report.
  std::unordered_map<std::string, const Need*> staged;
  for (const Need& need : tasks_[t].needs) {
    if (need.node_tier == kNoTier) continue;
    staged.emplace(
        StrCat(tiers_[need.node_tier].config.name, "/", OutputKey(need.task, need.output)), &need);
  }
  for (const NodeCopyReport& copy : report.node_copies) {
    auto found = staged.find(StrCat(copy.tier, "/", copy.key));
    if (found == staged.end()) continue;
    const Need* need = found->second;
    const TaskRec& producer = tasks_[need->task];
    const std::string what =
        StrCat(producer.id, ".", pipeline_.stages[producer.stage].outputs[need->output].name);
    if (!copy.error.empty()) {
      TF_RETURN_IF_ERROR(
          AddEvent(tasks_[t].id, report.attempt_id, "copy_failed",
                   StrCat("copying ", what, " to tier ", copy.tier, " on ", report.worker,
                          " failed: ", copy.error, "; the task reads it in place")));
      continue;
    }
    std::vector<std::pair<std::string, int64_t>>& held =
        node_copies_[{need->task, need->output, need->node_tier}];
    if (copy.reused) {
      bool known = false;
      for (const auto& entry : held) known = known || entry.first == report.worker;
      if (known) continue;  // else: made for an attempt whose start was never recorded
    }
    TF_ASSIGN_OR_RETURN(const int64_t id,
                        InsertCopy(need->task, need->output, need->node_tier, "present", need->tier,
                                   StrCat(report.worker, ":", copy.path)));
    held.emplace_back(report.worker, id);
    TF_RETURN_IF_ERROR(AddEvent(
        tasks_[t].id, report.attempt_id, "copied",
        StrCat(what, " to tier ", copy.tier, " on ", report.worker, ": ", FormatSize(copy.bytes),
               " in ", FormatDuration(std::chrono::milliseconds(copy.elapsed_ms)),
               ", before the task started")));
  }
  return absl::OkStatus();
}

// Cluster mode: where attempt `report` writes its checkpoints (a node
// tier of its worker, or the cluster folder), as an event.
absl::Status Engine::Impl::RecordCheckpointDir(uint32_t t, const TaskReport& report) {
  if (checkpoint_node_tier_ == kNoTier || checkpoint_tier_ == kNoTier) return absl::OkStatus();
  if (report.checkpoint_node_dir.empty() && report.checkpoint_node_error.empty()) {
    return absl::OkStatus();
  }
  const std::string node = tiers_[checkpoint_node_tier_].config.name;
  const std::string cluster = tiers_[checkpoint_tier_].config.name;
  const uint8_t flush = checkpoint_flush_[tasks_[t].stage];
  const std::string then =
      flush == kNoTier ? "" : StrCat(", then flushed to tier ", tiers_[flush].config.name);
  std::string restored;
  for (const NodeCopyReport& copy : report.node_copies) {
    if (copy.tier != node || !copy.key.starts_with(CheckpointKey(t) + "/")) continue;
    restored = StrCat("; checkpoint ", copy.key.substr(CheckpointKey(t).size() + 1),
                      " put back there first (", FormatSize(copy.bytes), " in ",
                      FormatDuration(std::chrono::milliseconds(copy.elapsed_ms)), ")");
  }
  return AddEvent(
      tasks_[t].id, report.attempt_id, "checkpoint_dir",
      report.checkpoint_node_dir.empty()
          ? StrCat("checkpoints written on tier ", cluster, ", not on ", report.worker,
                   "'s node tier ", node, ": ", report.checkpoint_node_error)
          : StrCat("checkpoints written on ", report.worker, "'s node tier ", node, " (",
                   report.checkpoint_node_dir, "); each one committed is copied to tier ", cluster,
                   then, restored));
}

absl::Status Engine::Impl::PrepareStatements() {
  auto prepare = [&](std::optional<Statement>& slot, std::string_view sql) -> absl::Status {
    TF_ASSIGN_OR_RETURN(Statement statement, db_->Prepare(sql));
    slot.emplace(std::move(statement));
    return absl::OkStatus();
  };
  TF_RETURN_IF_ERROR(
      prepare(insert_attempt_,
              "INSERT INTO attempts(run_id, task_id, number, state, command, cache_key, "
              "cached_from, started_at, log_path, worker, input_wait_ms, reads_json) VALUES (?, "
              "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  TF_RETURN_IF_ERROR(prepare(finish_attempt_,
                             "UPDATE attempts SET state = ?, finished_at = ?, exit_code = ?, "
                             "signal = ?, message = ?, log_bytes = ?, pid = coalesce(?, pid), "
                             "worker = coalesce(?, worker), data_wait_ms = ?, io_wait_ms = ?, "
                             "read_bytes = ?, write_bytes = ?, "
                             "worker_id = coalesce(?14, worker_id) WHERE id = ?13"));
  TF_RETURN_IF_ERROR(prepare(set_attempt_pid_,
                             "UPDATE attempts SET pid = ?, worker = coalesce(?, worker), "
                             "input_wait_ms = coalesce(input_wait_ms, 0) + ?, "
                             "worker_id = coalesce(?5, worker_id) WHERE id = ?4"));
  TF_RETURN_IF_ERROR(
      prepare(update_task_,
              "UPDATE tasks SET state = ?, attempts = ?, cache_key = ?, message = ?, "
              "started_at = coalesce(started_at, ?), finished_at = ? WHERE run_id = ? AND id = ?"));
  TF_RETURN_IF_ERROR(prepare(insert_artifact_,
                             "INSERT INTO artifacts(run_id, task_id, name, attempt_id, "
                             "content_hash, bytes, files, created_at) VALUES (?, ?, ?, ?, ?, ?, "
                             "?, ?) RETURNING id"));
  // An attempt that runs a task again writes its outputs where the earlier
  // attempts' were: their copies no longer hold their bytes.
  // Keys are the same on every tier: every copy of an earlier artifact of
  // the output is overwritten or stale.
  TF_RETURN_IF_ERROR(prepare(overwrite_copies_,
                             "UPDATE artifact_copies SET state = 'overwritten' WHERE state IN "
                             "('present', 'copying') AND artifact_id IN (SELECT id FROM artifacts "
                             "WHERE run_id = ? AND task_id = ? AND name = ?)"));
  TF_RETURN_IF_ERROR(prepare(insert_copy_,
                             "INSERT INTO artifact_copies(artifact_id, tier, uri, role, bytes, "
                             "content_hash, state, created_at, source_tier) VALUES (?, ?, ?, ?, "
                             "?, ?, ?, ?, ?) RETURNING id"));
  TF_RETURN_IF_ERROR(prepare(update_copy_,
                             "UPDATE artifact_copies SET state = ?, finished_at = ?, message = ? "
                             "WHERE id = ?"));
  TF_RETURN_IF_ERROR(prepare(insert_edge_,
                             "INSERT INTO lineage_edges(attempt_id, artifact_id, direction, name, "
                             "created_at) VALUES (?, ?, ?, ?, ?)"));
  TF_RETURN_IF_ERROR(prepare(insert_event_,
                             "INSERT INTO events(run_id, task_id, attempt_id, time, kind, "
                             "message) VALUES (?, ?, ?, ?, ?, ?)"));
  TF_RETURN_IF_ERROR(prepare(find_cached_,
                             "SELECT id, coalesce(cached_from, id) FROM attempts WHERE cache_key "
                             "= ? AND state IN ('succeeded', 'cached') ORDER BY finished_at DESC "
                             "LIMIT 8"));
  TF_RETURN_IF_ERROR(prepare(cached_outputs_,
                             "SELECT a.name, a.content_hash, a.bytes, c.uri, c.tier FROM "
                             "artifacts a JOIN artifact_copies c ON c.artifact_id = a.id AND "
                             "c.state = 'present' WHERE a.attempt_id = ? ORDER BY substr(c.uri, "
                             "1, 1) = '/' DESC, c.role = 'home' DESC"));
  return absl::OkStatus();
}

absl::Status Engine::Impl::CreateRun(const std::string& yaml,
                                     const std::map<std::string, std::string>& params,
                                     int priority) {
  const int64_t now = WallClockMs();
  TF_RETURN_IF_ERROR(db_->Execute("BEGIN IMMEDIATE"));
  auto rollback = [&](absl::Status status) {
    (void)db_->Execute("ROLLBACK");
    return status;
  };
  const std::string yaml_hash = storage::HashBytes(yaml);
  {
    TF_ASSIGN_OR_RETURN(Statement insert,
                        db_->Prepare("INSERT OR IGNORE INTO pipelines(name, yaml_hash, yaml, file, "
                                     "created_at) VALUES (?, ?, ?, ?, ?)"));
    insert.Bind(1, pipeline_.name)
        .Bind(2, yaml_hash)
        .Bind(3, yaml)
        .Bind(4, pipeline_.file)
        .Bind(5, now);
    if (absl::Status status = insert.Run(); !status.ok()) return rollback(status);
  }
  TF_ASSIGN_OR_RETURN(Statement find, db_->Prepare("SELECT id FROM pipelines WHERE yaml_hash = ?"));
  find.Bind(1, yaml_hash);
  absl::StatusOr<bool> found = find.Step();
  if (!found.ok() || !*found)
    return rollback(found.ok() ? db_->Error("pipeline row") : found.status());
  const int64_t pipeline_id = find.Int(0);

  json params_json = json::object();
  for (const auto& [name, value] : params) params_json[name] = value;
  TF_ASSIGN_OR_RETURN(
      Statement insert_run,
      db_->Prepare(
          "INSERT INTO runs(id, pipeline_id, pipeline_name, file, working_dir, "
          "params_json, state, slots, created_at, started_at, engine_pid, engine_host, "
          "tiers_json, priority) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)"));
  std::mt19937_64 random(std::random_device{}());
  for (int tries = 0;; ++tries) {
    char suffix[8];
    snprintf(suffix, sizeof suffix, "%06x", static_cast<unsigned>(random() & 0xffffff));
    run_id_ = StrCat(pipeline_.name, "-", suffix);
    insert_run.Bind(1, run_id_)
        .Bind(2, pipeline_id)
        .Bind(3, pipeline_.name)
        .Bind(4, pipeline_.file)
        .Bind(5, working_dir_)
        .Bind(6, params_json.dump())
        .Bind(7, static_cast<int64_t>(options_.slots))
        .Bind(8, now)
        .Bind(9, now)
        .Bind(10, static_cast<int64_t>(getpid()))
        .Bind(11, HostName());
    if (tiers_json_.empty()) {
      insert_run.BindNull(12);
    } else {
      insert_run.Bind(12, tiers_json_);
    }
    insert_run.Bind(13, static_cast<int64_t>(priority));
    absl::Status status = insert_run.Run();
    if (status.ok()) break;
    if (status.code() != absl::StatusCode::kAlreadyExists || tries > 20) return rollback(status);
  }
  // Locked before anyone can see the run, so `tierflow cancel` never takes
  // it for a run without an engine.
  run_dir_ = state_dir_ / "runs" / run_id_;
  absl::StatusOr<RunLock> lock = RunLock::Acquire(run_dir_, run_id_);
  if (!lock.ok()) return rollback(lock.status());
  lock_.emplace(std::move(*lock));
  TF_ASSIGN_OR_RETURN(Statement insert_task,
                      db_->Prepare("INSERT INTO tasks(run_id, id, seq, stage, kind, item, "
                                   "item_index, layer, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
                                   "'pending')"));
  for (const TaskRec& task : tasks_) {
    const dag::Stage& stage = pipeline_.stages[task.stage];
    insert_task.Bind(1, run_id_)
        .Bind(2, task.id)
        .Bind(3, static_cast<int64_t>(task.seq))
        .Bind(4, stage.name)
        .Bind(5, dag::StageKindName(stage.kind))
        .Bind(7, static_cast<int64_t>(task.item))
        .Bind(8, static_cast<int64_t>(graph_->StageLayer(task.stage)));
    if (stage.foreach) {
      insert_task.Bind(6, (*stage.foreach)[task.item]);
    } else {
      insert_task.BindNull(6);
    }
    if (absl::Status status = insert_task.Run(); !status.ok()) return rollback(status);
  }
  if (absl::Status status = RecordPlacement(*db_, run_id_, placement_, checkpoint_placement_);
      !status.ok()) {
    return rollback(status);
  }
  if (absl::Status status = PrepareStatements(); !status.ok()) return rollback(status);
  if (absl::Status status = AddEvent("", 0, "run_started", StrCat(tasks_.size(), " tasks"));
      !status.ok()) {
    return rollback(status);
  }
  return Commit();
}

absl::StatusOr<RunResult> Engine::Impl::Run(const RunRequest& request) {
  TF_RETURN_IF_ERROR(BeginRun());
  absl::Cleanup end = [this] { EndRun(); };
  std::stringstream text;
  if (request.yaml) {
    text << *request.yaml;
  } else {
    std::ifstream in(request.file, std::ios::binary);
    if (!in) {
      return absl::NotFoundError(
          StrCat(request.file, ": cannot read the pipeline file: ", std::strerror(errno)));
    }
    text << in.rdbuf();
  }
  std::error_code error;
  fs::path file = fs::absolute(request.file, error);
  working_dir_ = file.parent_path().string();
  TF_RETURN_IF_ERROR(Prepare(text.str(), request.file, request.params));
  pipeline_.file = file.string();
  TF_RETURN_IF_ERROR(OpenDatabase());
  TF_RETURN_IF_ERROR(SetUpTiers(std::nullopt));
  TF_RETURN_IF_ERROR(CreateRun(text.str(), request.params, request.priority));
  return Drive(/*resumed=*/false);
}

absl::StatusOr<RunResult> Engine::Impl::Resume(const std::string& run) {
  TF_RETURN_IF_ERROR(BeginRun());
  absl::Cleanup end = [this] { EndRun(); };
  TF_RETURN_IF_ERROR(OpenDatabase());
  TF_ASSIGN_OR_RETURN(run_id_, ResolveRunId(*db_, run));
  TF_ASSIGN_OR_RETURN(
      Statement find,
      db_->Prepare("SELECT r.file, r.working_dir, r.params_json, r.state, p.yaml, r.tiers_json "
                   "FROM runs r JOIN pipelines p ON p.id = r.pipeline_id WHERE r.id = ?"));
  find.Bind(1, run_id_);
  TF_ASSIGN_OR_RETURN(bool found, find.Step());
  if (!found) return absl::NotFoundError(StrCat("run ", run_id_, " vanished from the store"));
  const std::string file = find.Text(0);
  working_dir_ = find.Text(1);
  const std::string state = find.Text(3);
  const std::string yaml = find.Text(4);
  // Runs recorded before tiers (NULL) keep the one implicit tier.
  const std::optional<std::string> stored_tiers =
      find.IsNull(5) ? std::nullopt : std::optional<std::string>(find.Text(5));
  std::map<std::string, std::string> params;
  json params_json = json::parse(find.Text(2), nullptr, /*allow_exceptions=*/false);
  if (params_json.is_object()) {
    for (const auto& [name, value] : params_json.items()) {
      if (value.is_string()) params[name] = value.get<std::string>();
    }
  }
  // Done with the row: a statement left on it keeps this connection's read
  // snapshot, and in WAL mode a connection on an old snapshot can never
  // take the write lock once another engine (a server resumes several)
  // has written: every turn of this run would fail SQLITE_BUSY_SNAPSHOT.
  find.Reset();
  if (state == run_state::kSucceeded) {
    return absl::FailedPreconditionError(
        StrCat("run ", run_id_, " already succeeded: nothing to resume"));
  }
  run_dir_ = state_dir_ / "runs" / run_id_;
  TF_ASSIGN_OR_RETURN(RunLock lock, RunLock::Acquire(run_dir_, run_id_));
  lock_.emplace(std::move(lock));
  // A cancel request addressed to an earlier engine of this run.
  std::error_code ignored;
  fs::remove(run_dir_ / kCancelFile, ignored);
  // The pipeline as it was when the run started: the file may have changed.
  TF_RETURN_IF_ERROR(Prepare(yaml, file, params));
  pipeline_.file = file;
  TF_RETURN_IF_ERROR(SetUpTiers(stored_tiers.value_or("")));
  TF_RETURN_IF_ERROR(KillLeftoverTasks(*db_, run_id_, options_.kill_leftovers_on_host).status());
  SweepUploads("left by an earlier engine of this run");
  TF_RETURN_IF_ERROR(LoadRunForResume());
  return Drive(/*resumed=*/true);
}

absl::Status Engine::Impl::LoadRunForResume() {
  std::unordered_map<std::string, uint32_t> by_id;
  by_id.reserve(tasks_.size());
  for (uint32_t t = 0; t < tasks_.size(); ++t) by_id.emplace(tasks_[t].id, t);
  TF_ASSIGN_OR_RETURN(Statement rows,
                      db_->Prepare("SELECT id, state, attempts, log_path_of_latest FROM ("
                                   "SELECT t.id, t.state, t.attempts, (SELECT log_path FROM "
                                   "attempts a WHERE a.run_id = t.run_id AND a.task_id = t.id "
                                   "ORDER BY number DESC LIMIT 1) AS log_path_of_latest FROM "
                                   "tasks t WHERE t.run_id = ?)"));
  rows.Bind(1, run_id_);
  for (;;) {
    TF_ASSIGN_OR_RETURN(bool row, rows.Step());
    if (!row) break;
    auto it = by_id.find(rows.Text(0));
    if (it == by_id.end()) continue;
    TaskRec& task = tasks_[it->second];
    task.state = CanonicalTaskState(rows.Text(1));
    task.attempts = static_cast<uint32_t>(rows.Int(2));
    task.log_path = rows.Text(3);
  }
  // Outputs of finished tasks, with their copies: a task none of whose
  // copies of an output is still there runs again.
  TF_ASSIGN_OR_RETURN(
      Statement outputs,
      db_->Prepare("SELECT a.task_id, a.name, a.id, a.content_hash, a.bytes, c.id, c.tier, c.uri, "
                   "c.state FROM artifacts a JOIN artifact_copies c ON c.artifact_id = a.id AND "
                   "c.state IN ('present', 'copying', 'released') WHERE a.run_id = ? ORDER BY "
                   "a.id, c.id"));
  outputs.Bind(1, run_id_);
  struct StaleCopy {
    int64_t id;
    std::string_view state;
    const char* why;
  };
  std::vector<StaleCopy> stale_copies;
  std::set<std::pair<uint32_t, size_t>> released;  // (task, output) of released volatile homes
  for (;;) {
    TF_ASSIGN_OR_RETURN(bool row, outputs.Step());
    if (!row) break;
    auto it = by_id.find(outputs.Text(0));
    if (it == by_id.end()) continue;
    const uint32_t t = it->second;
    TaskRec& task = tasks_[t];
    const dag::Stage& stage = pipeline_.stages[task.stage];
    const std::string name = outputs.Text(1);
    size_t o = 0;
    while (o < stage.outputs.size() && stage.outputs[o].name != name) ++o;
    if (o == stage.outputs.size()) continue;
    OutputPlace& place = task.places[o];
    if (task.outputs[o].id != outputs.Int(2)) {  // a newer artifact (rows come oldest first)
      task.outputs[o] = {outputs.Int(2), OutputPath(t, o), outputs.Text(3),
                         static_cast<uint64_t>(outputs.Int(4))};
      place.ForgetCopies();
      released.erase({t, o});
    }
    const int64_t copy_id = outputs.Int(5);
    uint8_t tier = 0;
    while (tier < tiers_.size() && tiers_[tier].config.name != outputs.Text(6)) ++tier;
    if (outputs.Text(8) == kReleasedCopy) {
      released.insert({t, o});  // needed again only if a task that reads it runs again
      continue;
    }
    if (outputs.Text(8) == "copying") {
      stale_copies.push_back({copy_id, "failed", "the engine stopped during this copy"});
      if (tier < tiers_.size()) place.dirty |= uint64_t{1} << tier;
      continue;
    }
    if (tier == tiers_.size()) continue;
    if (OnWorkers(tier)) {
      stale_copies.push_back({copy_id, "evicted",
                              "the server stopped; a worker clears its node tiers when it "
                              "connects again"});
      continue;
    }
    bool exists = false;
    if (tiers_[tier].posix) {
      std::error_code error;
      exists = fs::exists(outputs.Text(7), error);
    } else {
      TF_ASSIGN_OR_RETURN(exists, ArtifactExists(*tiers_[tier].adapter, OutputKey(t, o)));
    }
    if (!exists) {
      stale_copies.push_back({copy_id, "missing", "gone when the run resumed"});
      continue;
    }
    place.copies[tier] = CopyState::kPresent;
    place.copy_ids[tier] = copy_id;
  }
  TF_RETURN_IF_ERROR(PrepareStatements());

  TF_RETURN_IF_ERROR(db_->Execute("BEGIN IMMEDIATE"));
  const int64_t now = WallClockMs();
  // Attempts that were running when the engine died are lost, or never
  // started (EndInterruptedAttempts).
  TF_RETURN_IF_ERROR(EndInterruptedAttempts(*db_, run_id_, now));
  // Checkpoint flushes the crash cut off: flushed again when their task
  // runs again (WatchCheckpoints), or below for a task that had ended.
  TF_ASSIGN_OR_RETURN(Statement cut,
                      db_->Prepare("UPDATE checkpoints SET state = 'failed', message = 'the "
                                   "engine stopped during this flush' WHERE run_id = ? AND state "
                                   "= 'flushing' RETURNING task_id, name, attempt_id"));
  cut.Bind(1, run_id_);
  for (;;) {
    TF_ASSIGN_OR_RETURN(bool row, cut.Step());
    if (!row) break;
    auto found = by_id.find(cut.Text(0));
    if (found != by_id.end()) unflushed_.push_back({found->second, cut.Text(1), cut.Int(2)});
  }
  for (const StaleCopy& copy : stale_copies) {
    TF_RETURN_IF_ERROR(UpdateCopy(copy.id, copy.state, copy.why));
  }
  // Tasks kept: done, with a copy of each output. A released volatile
  // output counts as kept unless a task that reads it runs again; then its
  // producer runs again too (to a fixpoint: that producer's own released
  // inputs are needed in turn).
  std::vector<bool> keep(tasks_.size());
  for (uint32_t t = 0; t < tasks_.size(); ++t) {
    const TaskRec& task = tasks_[t];
    bool done = IsDone(task.state);
    for (size_t o = 0; done && o < task.outputs.size(); ++o) {
      const std::vector<CopyState>& copies = task.places[o].copies;
      if (std::find(copies.begin(), copies.end(), CopyState::kPresent) != copies.end()) continue;
      done = released.count({t, o}) > 0;
    }
    keep[t] = done;
  }
  for (bool changed = !released.empty(); changed;) {
    changed = false;
    for (uint32_t t = 0; t < tasks_.size(); ++t) {
      if (keep[t]) continue;
      for (const Need& need : tasks_[t].needs) {
        if (keep[need.task] && released.count({need.task, need.output}) > 0) {
          keep[need.task] = false;
          changed = true;
        }
      }
    }
  }
  uint32_t kept = 0;
  for (uint32_t t = 0; t < tasks_.size(); ++t) {
    TaskRec& task = tasks_[t];
    if (keep[t]) {
      ++kept;
      --stages_[task.stage].unfinished;
      continue;
    }
    if (task.state != task_state::kPending) {
      task.state = task_state::kPending;
      update_task_->Bind(1, task_state::kPending)
          .Bind(2, static_cast<int64_t>(task.attempts))
          .BindNull(3)
          .Bind(4, "")
          .BindNull(5)
          .BindNull(6)
          .Bind(7, run_id_)
          .Bind(8, task.id);
      TF_RETURN_IF_ERROR(update_task_->Run());
    }
    for (ArtifactRec& output : task.outputs) output = ArtifactRec{};
    for (OutputPlace& place : task.places) place.ForgetCopies();
  }
  TF_ASSIGN_OR_RETURN(Statement run,
                      db_->Prepare("UPDATE runs SET state = 'running', finished_at = NULL, "
                                   "engine_pid = ?, engine_host = ?, cancel_requested = 0, "
                                   "message = '' WHERE id = ?"));
  run.Bind(1, static_cast<int64_t>(getpid())).Bind(2, HostName()).Bind(3, run_id_);
  TF_RETURN_IF_ERROR(run.Run());
  TF_RETURN_IF_ERROR(AddEvent("", 0, "run_resumed",
                              StrCat(kept, " of ", tasks_.size(), " tasks kept from before")));
  TF_RETURN_IF_ERROR(Commit());
  counts_ = RunCounts{};
  counts_.total = static_cast<uint32_t>(tasks_.size());
  for (const TaskRec& task : tasks_) CountState(task.state, +1);
  return absl::OkStatus();
}

// ------------------------------------------------------------------ the loop

void Engine::Impl::CountState(std::string_view state, int delta) {
  uint32_t* counter = &counts_.pending;
  if (state == task_state::kQueued) counter = &counts_.queued;
  if (state == task_state::kRunning) counter = &counts_.running;
  if (state == task_state::kRetrying) counter = &counts_.retrying;
  if (state == task_state::kSucceeded) counter = &counts_.succeeded;
  if (state == task_state::kCached) counter = &counts_.cached;
  if (state == task_state::kFailed) counter = &counts_.failed;
  if (state == task_state::kUpstreamFailed) counter = &counts_.upstream_failed;
  if (state == task_state::kCancelled) counter = &counts_.cancelled;
  *counter = static_cast<uint32_t>(static_cast<int64_t>(*counter) + delta);
}

absl::Status Engine::Impl::AddEvent(const std::string& task_id, int64_t attempt_id,
                                    std::string_view kind, const std::string& message) {
  insert_event_->Bind(1, run_id_);
  if (task_id.empty()) {
    insert_event_->BindNull(2);
  } else {
    insert_event_->Bind(2, task_id);
  }
  if (attempt_id == 0) {
    insert_event_->BindNull(3);
  } else {
    insert_event_->Bind(3, attempt_id);
  }
  insert_event_->Bind(4, WallClockMs()).Bind(5, kind).Bind(6, message);
  return insert_event_->Run();
}

absl::Status Engine::Impl::SetTaskState(uint32_t t, std::string_view state,
                                        const std::string& message, Duration duration) {
  TaskRec& task = tasks_[t];
  const bool ends = !IsTerminal(task.state) && IsTerminal(state);
  CountState(task.state, -1);
  CountState(state, +1);
  task.state = state;
  task.message = message;
  const int64_t now = WallClockMs();
  update_task_->Bind(1, state)
      .Bind(2, static_cast<int64_t>(task.attempts))
      .Bind(4, message)
      .Bind(7, run_id_)
      .Bind(8, task.id);
  if (task.cache_key.empty()) {
    update_task_->BindNull(3);
  } else {
    update_task_->Bind(3, task.cache_key);
  }
  if (state == task_state::kRunning) {
    update_task_->Bind(5, now);
  } else {
    update_task_->BindNull(5);
  }
  if (IsTerminal(state)) {
    update_task_->Bind(6, now);
  } else {
    update_task_->BindNull(6);
  }
  TF_RETURN_IF_ERROR(update_task_->Run());
  // `queued` says only "ready, waiting for a slot": the task row holds it;
  // an event per ready task would double what the store writes for it.
  if (state != task_state::kQueued) {
    TF_RETURN_IF_ERROR(AddEvent(task.id, task.attempt_id, state, message));
  }
  Emit(t, message, duration);
  if (ends) TF_RETURN_IF_ERROR(ReleaseNeeds(t));
  return absl::OkStatus();
}

void Engine::Impl::Enqueue(uint32_t t) {
  ready_.push(t);
  newly_ready_.push_back(t);
}

absl::StatusOr<RunResult> Engine::Impl::Drive(bool resumed) {
  // Initial readiness: stages none of whose parents has unfinished tasks.
  for (uint32_t s = 0; s < stages_.size(); ++s) {
    for (uint32_t parent : graph_->StageParents(s)) {
      if (stages_[parent].unfinished > 0) ++stages_[s].waiting_parents;
    }
  }
  for (uint32_t t = 0; t < tasks_.size(); ++t) {
    if (tasks_[t].state == task_state::kPending && stages_[tasks_[t].stage].waiting_parents == 0) {
      Enqueue(t);
    }
  }
  CountReaders();
  schedule_kept_ = resumed;
  mover_ = std::make_unique<Mover>(options_.transfer_threads,
                                   [this](MoveResult result) { OnMoveResult(std::move(result)); });
  {
    std::lock_guard lock(executor_mu_);
    auto make = options_.make_executor;
    if (!make) return absl::FailedPreconditionError("no executor configured");
    TF_ASSIGN_OR_RETURN(executor_,
                        make([this](TaskReport report) { OnReport(std::move(report)); }));
  }
  // `tierflow cancel` from another process.
  TF_ASSIGN_OR_RETURN(FileWatcher * watcher, FileWatcher::Get());
  TF_ASSIGN_OR_RETURN(std::unique_ptr<FileWatcher::Watch> cancel_watch,
                      watcher->Add(run_dir_ / kCancelFile, [this] { Cancel(); }));
  if (options_.observer != nullptr) options_.observer->OnRunStarted(run_id_, resumed, counts_);

  std::unique_lock turn(turn_mu_);
  // The first turn dispatches the initial tasks.
  turn_status_ = TakeTurn(/*cancel_now=*/false);
  inline_turns_ = true;
  bool cancel_seen = false;
  while (turn_status_.ok() && !Finished()) {
    // Sleep until the next retry is due or, while starts wait to be
    // recorded, kStartedFlush at most.
    std::optional<SteadyTime> wake;
    if (!retry_timers_.empty()) wake = retry_timers_.begin()->first;
    if (!checkpoint_watch_.empty() && (!wake || next_checkpoint_poll_ < *wake)) {
      wake = next_checkpoint_poll_;
    }
    bool starts_waiting = launched_;
    {
      std::lock_guard lock(mu_);
      starts_waiting = starts_waiting || !reports_.empty();
    }
    if (starts_waiting) {
      SteadyTime flush = std::chrono::steady_clock::now() + kStartedFlush;
      if (!wake || flush < *wake) wake = flush;
    }
    drive_wake_ = wake;
    turn.unlock();
    bool cancel_now = false;
    {
      std::unique_lock lock(mu_);
      auto has_work = [&] {
        return woken_ || urgent_reports_ > 0 || (cancel_requested_ && !cancel_seen);
      };
      if (wake) {
        cv_.wait_until(lock, *wake, has_work);
      } else {
        cv_.wait(lock, has_work);
      }
      woken_ = false;
      if (cancel_requested_ && !cancel_seen) cancel_seen = cancel_now = true;
    }
    turn.lock();
    if (!turn_status_.ok() || Finished()) break;
    bool pending = false;
    {
      std::lock_guard lock(mu_);
      pending = !reports_.empty() || !move_results_.empty() || !tier_events_.empty();
    }
    // A turn only when it has something to do (an inline turn may have
    // done it meanwhile).
    const SteadyTime now = std::chrono::steady_clock::now();
    if (pending || cancel_now || (!retry_timers_.empty() && retry_timers_.begin()->first <= now) ||
        (!checkpoint_watch_.empty() && next_checkpoint_poll_ <= now)) {
      turn_status_ = TakeTurn(cancel_now);
    }
  }
  inline_turns_ = false;  // from here on, reports are left alone
  for (auto& [id, stream] : streams_) stream->readers_done = true;  // nobody reads any more
  absl::Status status = turn_status_;
  std::string_view final_state = run_state::kSucceeded;
  if (counts_.cancelled > 0 || cancelling_) {
    final_state = run_state::kCancelled;
  } else if (counts_.failed > 0 || counts_.upstream_failed > 0) {
    final_state = run_state::kFailed;
  }
  if (!status.ok()) {
    // The store failed past its retries (locked, full disk, ...): this
    // engine stops driving the run. It stops this run's attempts, each by
    // name (a cluster's workers run other runs' tasks too); the run stays
    // `running` in the store, resumable once the cause is fixed.
    std::unique_ptr<Executor> executor;
    {
      std::lock_guard lock(executor_mu_);
      executor = std::move(executor_);
    }
    if (executor) {
      for (const TaskRec& task : tasks_) {
        if (task.state == task_state::kRunning && task.attempt_id > 0) {
          executor->Cancel(task.attempt_id);
        }
      }
    }
    executor.reset();
    *transfers_cancelled_ = true;  // the mover's transfers stop now
    mover_.reset();
    const std::string why =
        StrCat(status.message(), "\nrun ", run_id_,
               " stopped; fix the cause and finish it with: tierflow resume ", run_id_);
    if (!absl::IsUnavailable(status)) RecordStopped(why);
    return absl::Status(status.code(), why);
  }
  {
    std::lock_guard lock(executor_mu_);
    executor_.reset();
  }
  mover_.reset();  // idle: every copy it was given has been applied
  // A write whose start was retried (its first reply lost) may have left an
  // upload behind; failed ones abort their own.
  if (tier_retried_ && !*transfers_cancelled_) SweepUploads("left by requests that were retried");
  // Nothing runs any more: staging holds only leftovers of failed attempts.
  // Through the tier's root: a symlink planted beneath it is never followed.
  std::vector<std::string> cleanup_failures = unsafe_paths_;
  for (const Tier& tier : tiers_) {
    const std::shared_ptr<const storage::TierRoot> root =
        tier.posix && tier.adapter ? storage::PosixTierRoot(*tier.adapter) : nullptr;
    if (root == nullptr) continue;
    absl::Status removed = root->RemoveTree(StrCat("runs/", run_id_, "/staging"));
    if (!removed.ok()) cleanup_failures.push_back(StrCat("cleaning up: ", removed.message()));
  }
  std::string message;
  if (final_state == run_state::kFailed) {
    message = StrCat(counts_.failed, " failed, ", counts_.upstream_failed, " upstream_failed");
  }
  if (!move_failures_.empty() && final_state != run_state::kCancelled) {
    final_state = run_state::kFailed;
    message =
        StrCat(message.empty() ? "" : StrCat(message, "; "), absl::StrJoin(move_failures_, "; "),
               "; the outputs are kept where they were written: finish the write-back with "
               "tierflow resume ",
               run_id_);
  }
  if (!cleanup_failures.empty()) {
    message =
        StrCat(message.empty() ? "" : StrCat(message, "; "), absl::StrJoin(cleanup_failures, "; "));
    if (final_state == run_state::kSucceeded) final_state = run_state::kFailed;
  }
  TF_RETURN_IF_ERROR(FinishRun(final_state, message));
  RunResult result = MakeResult(final_state);
  result.write_back_failures = move_failures_;
  return result;
}

// Best effort, one try: a store that is only busy cannot take it now
// (nobody else would write while the lock is held); one that failed
// otherwise may. `runs` and `show` then say the run has no engine.
void Engine::Impl::RecordStopped(const std::string& why) {
  (void)db_->Execute("ROLLBACK");  // a turn whose COMMIT failed left its transaction open
  if (db_->Execute("BEGIN IMMEDIATE").ok()) {
    absl::Status status = [&]() -> absl::Status {
      TF_ASSIGN_OR_RETURN(Statement update,
                          db_->Prepare("UPDATE runs SET engine_pid = NULL, message = ? WHERE id = "
                                       "? AND state = 'running'"));
      update.Bind(1, StrCat("its engine stopped: ", why)).Bind(2, run_id_);
      TF_RETURN_IF_ERROR(update.Run());
      return AddEvent("", 0, "engine_stopped", why);
    }();
    if (status.ok() && db_->Execute("COMMIT").ok()) return;
    (void)db_->Execute("ROLLBACK");
  }
}

void Engine::Impl::SweepUploads(std::string_view when) {
  for (const Tier& tier : tiers_) {
    storage::RemoteStore* remote = tier.adapter->remote();
    if (remote == nullptr) continue;
    absl::StatusOr<int> aborted = remote->AbortUnfinishedUploads(StrCat("runs/", run_id_, "/"));
    std::lock_guard lock(mu_);
    if (!aborted.ok()) {
      tier_events_.emplace_back(
          "uploads_sweep_failed",
          StrCat("tier ", tier.config.name,
                 ": cannot look for unfinished uploads of this run: ", aborted.status().message()));
    } else if (*aborted > 0) {
      tier_events_.emplace_back(
          "uploads_aborted",
          StrCat("tier ", tier.config.name, ": aborted ", *aborted, " unfinished multipart upload",
                 *aborted == 1 ? "" : "s", " of this run, ", when));
    }
  }
}

absl::Status Engine::Impl::RecordTierEvents() {
  std::vector<std::pair<std::string, std::string>> events;
  {
    std::lock_guard lock(mu_);
    events.swap(tier_events_);
  }
  for (const auto& [kind, message] : events) TF_RETURN_IF_ERROR(AddEvent("", 0, kind, message));
  return absl::OkStatus();
}

absl::Status Engine::Impl::FinishRun(std::string_view state, const std::string& message) {
  TF_RETURN_IF_ERROR(BeginWrite());
  TF_ASSIGN_OR_RETURN(Statement update,
                      db_->Prepare("UPDATE runs SET state = ?, finished_at = ?, engine_pid = NULL, "
                                   "message = ? WHERE id = ?"));
  update.Bind(1, state).Bind(2, WallClockMs()).Bind(3, message).Bind(4, run_id_);
  absl::Status status = update.Run();
  if (status.ok()) status = RecordTierEvents();
  if (status.ok()) status = AddEvent("", 0, StrCat("run_", state), message);
  if (!status.ok()) {
    (void)db_->Execute("ROLLBACK");
    return status;
  }
  return Commit();
}

RunResult Engine::Impl::MakeResult(std::string_view state) const {
  RunResult result;
  result.run_id = run_id_;
  result.state = std::string(state);
  result.counts = counts_;
  result.db_path = options_.db_path;
  result.elapsed =
      std::chrono::duration_cast<Duration>(std::chrono::steady_clock::now() - started_);
  for (uint32_t s = 0; s < stages_.size(); ++s) {
    StageSummary summary;
    summary.stage = stages_[s].name;
    summary.kind = std::string(dag::StageKindName(pipeline_.stages[s].kind));
    summary.busy = stages_[s].busy;
    result.stages.push_back(std::move(summary));
  }
  std::vector<uint32_t> order(tasks_.size());
  for (uint32_t t = 0; t < tasks_.size(); ++t) order[tasks_[t].seq] = t;
  for (uint32_t t : order) {
    const TaskRec& task = tasks_[t];
    StageSummary& summary = result.stages[task.stage];
    ++summary.tasks;
    if (task.state == task_state::kSucceeded) ++summary.succeeded;
    if (task.state == task_state::kCached) ++summary.cached;
    if (task.state == task_state::kFailed) ++summary.failed;
    if (task.state == task_state::kUpstreamFailed) ++summary.upstream_failed;
    if (task.state == task_state::kCancelled) ++summary.cancelled;
    if (task.state == task_state::kFailed) {
      result.failures.push_back({task.id, std::string(task.state), task.message, task.log_path});
    }
  }
  return result;
}

absl::Status Engine::Impl::TakeTurn(bool cancel_now) {
  std::deque<TaskReport> reports;
  std::deque<MoveResult> moves;
  {
    std::lock_guard lock(mu_);
    reports.swap(reports_);
    moves.swap(move_results_);
    urgent_reports_ = 0;
  }
  return Turn(reports, moves, cancel_now);
}

absl::Status Engine::Impl::Turn(std::deque<TaskReport>& reports, std::deque<MoveResult>& moves,
                                bool cancel_now) {
  metrics::ScopedTimer loop_timer(metrics::Engine().scheduler_loop_seconds);
  TF_RETURN_IF_ERROR(BeginWrite());
  absl::Status status;
  auto run_turn = [&]() -> absl::Status {
    TF_RETURN_IF_ERROR(RecordTierEvents());
    if (cancel_now) TF_RETURN_IF_ERROR(CancelAll());
    if (!checkpoint_watch_.empty() && next_checkpoint_poll_ <= std::chrono::steady_clock::now()) {
      TF_RETURN_IF_ERROR(PollCheckpoints());
      next_checkpoint_poll_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
    }
    if (schedule_kept_) {
      // A resume: outputs kept from before may still need their write-back
      // or copies for the tasks that will read them.
      schedule_kept_ = false;
      // Checkpoints of tasks that had ended whose flush the crash cut off
      // (a task that runs again flushes its own when it starts).
      for (const Unflushed& cut : unflushed_) {
        std::error_code error;
        if (IsDone(tasks_[cut.task].state) &&
            fs::exists(TierPath(checkpoint_tier_,
                                StrCat(CheckpointKey(cut.task), "/", cut.name, ".committed")),
                       error)) {
          TF_RETURN_IF_ERROR(FlushCheckpoint(cut.task, cut.name, cut.attempt));
        }
      }
      unflushed_.clear();
      for (uint32_t t = 0; t < tasks_.size(); ++t) {
        if (!IsDone(tasks_[t].state)) continue;
        for (size_t o = 0; o < tasks_[t].places.size(); ++o)
          TF_RETURN_IF_ERROR(ScheduleMoves(t, o));
      }
    }
    for (const MoveResult& move : moves) TF_RETURN_IF_ERROR(ApplyMove(move));
    // A start whose end is in the same batch needs no statement of its own:
    // the end records the pid too.
    ended_.clear();
    for (const TaskReport& report : reports) {
      if (report.outcome != TaskReport::Outcome::kStarted) ended_.insert(report.attempt_id);
    }
    for (TaskReport& report : reports) TF_RETURN_IF_ERROR(ApplyReport(report));
    const SteadyTime now = std::chrono::steady_clock::now();
    while (!retry_timers_.empty() && retry_timers_.begin()->first <= now) {
      uint32_t t = retry_timers_.begin()->second;
      retry_timers_.erase(retry_timers_.begin());
      if (tasks_[t].state != task_state::kRetrying) continue;
      TF_RETURN_IF_ERROR(SetTaskState(t, task_state::kQueued, ""));
      Enqueue(t);
    }
    while (!cancelling_ && !ready_.empty() &&
           counts_.running < static_cast<uint32_t>(options_.slots)) {
      uint32_t t = ready_.top();
      ready_.pop();
      // Its inputs are copied to its working tiers first (usually they are
      // there already: copies start when an artifact is complete).
      TF_ASSIGN_OR_RETURN(bool data_ready, DataReady(t));
      if (!data_ready) {
        if (data_waiters_.insert(t).second) {
          tasks_[t].data_wait_since_ms = WallClockMs();
          TF_RETURN_IF_ERROR(
              AddEvent(tasks_[t].id, 0, "data_wait", "waiting for copies of its inputs"));
        }
        continue;
      }
      TF_RETURN_IF_ERROR(Dispatch(t));
    }
    // What waits for a slot is `queued`, so users see it is ready.
    for (uint32_t t : newly_ready_) {
      if (tasks_[t].state == task_state::kPending) {
        TF_RETURN_IF_ERROR(SetTaskState(t, task_state::kQueued, ""));
      }
    }
    newly_ready_.clear();
    return absl::OkStatus();
  };
  status = run_turn();
  if (!status.ok()) {
    (void)db_->Execute("ROLLBACK");
    to_move_.clear();
    to_evict_on_workers_.clear();
    return status;
  }
  TF_RETURN_IF_ERROR(Commit());
  // Committed: now act on it.
  for (MoveJob& job : to_move_) mover_->Submit(std::move(job));
  to_move_.clear();
  launched_ = !to_launch_.empty();
  for (TaskLaunch& launch : to_launch_) executor_->Launch(std::move(launch));
  to_launch_.clear();
  for (int64_t attempt : to_cancel_) executor_->Cancel(attempt);
  to_cancel_.clear();
  for (const NodeEviction& evict : to_evict_on_workers_) {
    executor_->EvictNodeCopy(evict.worker, evict.tier, evict.key);
  }
  to_evict_on_workers_.clear();
  if (options_.observer != nullptr) {
    for (const TaskEvent& event : pending_events_) options_.observer->OnTaskEvent(event, counts_);
  }
  pending_events_.clear();
  return absl::OkStatus();
}

absl::Status Engine::Impl::CancelAll() {
  cancelling_ = true;
  TF_ASSIGN_OR_RETURN(Statement flag,
                      db_->Prepare("UPDATE runs SET cancel_requested = 1 WHERE id = ?"));
  flag.Bind(1, run_id_);
  TF_RETURN_IF_ERROR(flag.Run());
  TF_RETURN_IF_ERROR(AddEvent("", 0, "cancel_requested", ""));
  for (uint32_t t = 0; t < tasks_.size(); ++t) {
    std::string_view state = tasks_[t].state;
    if (state == task_state::kRunning) {
      to_cancel_.push_back(tasks_[t].attempt_id);
    } else if (!IsTerminal(state)) {
      TF_RETURN_IF_ERROR(SetTaskState(t, task_state::kCancelled, "the run was cancelled"));
    }
  }
  retry_timers_.clear();
  while (!ready_.empty()) ready_.pop();
  data_waiters_.clear();
  // Copies not begun are not needed any more (write-backs of finished
  // outputs resume with the run); those under way to or from a remote
  // store stop at once (they are made again on resume), others finish.
  *transfers_cancelled_ = true;
  mover_->DropQueued();
  return absl::OkStatus();
}

absl::Status Engine::Impl::Dispatch(uint32_t t) {
  TaskRec& task = tasks_[t];
  if (task.state != task_state::kPending && task.state != task_state::kQueued)
    return absl::OkStatus();
  const dag::Stage& stage = pipeline_.stages[task.stage];
  const dag::Task& graph_task = graph_->tasks()[t];
  const int64_t now = WallClockMs();

  TaskLaunch launch;
  launch.run_id = run_id_;
  launch.task_id = task.id;
  launch.attempt = ++task.attempts;
  launch.argv = graph_->ResolveArgv(graph_task);
  if (stage.run.is_shell()) launch.shell = stage.run.shell;
  launch.working_dir = working_dir_;
  launch.timeout = stage.timeout;
  launch.cpus = stage.resources.cpus;
  launch.memory = stage.resources.memory;
  launch.gpus = stage.resources.gpus;
  launch.labels = stage.resources.labels;
  launch.kill_grace = options_.kill_grace;
  const fs::path attempt_name = StrCat("attempt-", task.attempts);
  // logs/STAGE.attempt-N.log, logs/STAGE/ITEM.attempt-N.log: no folder per
  // task, which would cost an inode per task on the hot path.
  launch.log_path =
      StrCat(TaskDir(run_dir_ / "logs", t).string(), ".", attempt_name.string(), ".log");

  std::vector<std::pair<std::string, std::string>> contract_env =
      graph_->TaskEnvironment(graph_task);
  // Inputs: (name, producing tasks) for lineage and the cache key.
  std::vector<std::pair<std::string, std::vector<uint32_t>>> inputs;
  std::vector<std::tuple<std::string, int64_t>> consumed;  // name, artifact id
  for (size_t i = 0; i < stage.inputs.size(); ++i) {
    const dag::InputRef& input = stage.inputs[i];
    int producer = pipeline_.FindStage(input.stage);
    const dag::Stage& from = pipeline_.stages[producer];
    size_t output = 0;
    while (output < from.outputs.size() && from.outputs[output].name != input.output) ++output;
    std::vector<uint32_t> producers;
    uint32_t first = graph_->FirstTask(producer);
    for (uint32_t i = 0; i < from.TaskCount(); ++i) {
      producers.push_back(first + i);
      consumed.emplace_back(input.name, tasks_[first + i].outputs[output].id);
    }
    std::string path = InputPath(t, i, producer, output);
    std::string env = StrCat("TIERFLOW_INPUT_", AsciiUpper(input.name));
    // Still being copied: the task finds the files through the manifest.
    const uint8_t input_tier = task.input_tiers[i];
    if (input.stream && !from.foreach &&
        tasks_[first].places[output].copies[input_tier] == CopyState::kStreaming) {
      contract_env.emplace_back(StrCat("TIERFLOW_STREAM_", AsciiUpper(input.name)),
                                StrCat(path, storage::kStreamManifestSuffix));
    }
    if (const uint8_t node = task.node_input_tiers[i]; node != kNoTier) {
      launch.node_inputs.push_back(
          {env, tiers_[node].config.name,
           from.foreach ? GatherKey(producer, output) : OutputKey(first, output)});
    }
    contract_env.emplace_back(std::move(env), std::move(path));
    inputs.emplace_back(StrCat(input.name, "=", input.stage, ".", input.output),
                        std::move(producers));
  }
  for (const Need& need : task.needs) {
    if (need.node_tier == kNoTier) continue;
    const ArtifactRec& artifact = tasks_[need.task].outputs[need.output];
    launch.stage_in.push_back({tiers_[need.node_tier].config.name,
                               OutputKey(need.task, need.output), tiers_[need.tier].root.string(),
                               artifact.hash, artifact.bytes, need.stream});
  }
  // Staging beside the artifact, on its write tier: publishing is a rename.
  const std::string staging = StrCat("runs/", run_id_, "/staging/", TaskDir("", t).string(), "/",
                                     attempt_name.string(), "/");
  for (size_t o = 0; o < stage.outputs.size(); ++o) {
    OutputLaunch output;
    output.name = stage.outputs[o].name;
    output.staging_path = TierPath(task.places[o].write, staging + output.name);
    output.durable = tiers_[task.places[o].write].config.durability >= Durability::kDurable;
    output.final_path = OutputPath(t, o);
    output.tier_root = tiers_[task.places[o].write].root.string();
    contract_env.emplace_back(StrCat("TIERFLOW_OUTPUT_", AsciiUpper(output.name)),
                              output.staging_path);
    launch.outputs.push_back(std::move(output));
  }
  if (stage.checkpoints.enabled) {
    launch.checkpoint_dir = checkpoint_tier_ != kNoTier
                                ? TierPath(checkpoint_tier_, CheckpointKey(t))
                                : TaskDir(run_dir_ / "checkpoints", t).string();
    if (checkpoint_tier_ != kNoTier)
      launch.checkpoint_root = tiers_[checkpoint_tier_].root.string();
    contract_env.emplace_back("TIERFLOW_CHECKPOINT_DIR", launch.checkpoint_dir);
    if (checkpoint_node_tier_ != kNoTier) {
      launch.checkpoint_relay =
          CheckpointRelay{tiers_[checkpoint_node_tier_].config.name, CheckpointKey(t),
                          static_cast<int>(stage.checkpoints.keep)};
    }
  }
  // The cache key covers what the task sees, not where this run keeps things.
  task.cache_key.clear();
  task.reusing = false;
  task.cached_from = 0;
  std::optional<CacheHit> hit;
  if (stage.cache && options_.use_cache && !task.no_cache) {
    task.cache_key = CacheKey(t, launch.argv, contract_env, inputs);
    TF_ASSIGN_OR_RETURN(hit, FindCacheHit(t, task.cache_key));
  }
  launch.env = std::move(contract_env);
  launch.env.emplace_back("TIERFLOW_RUN_ID", run_id_);
  launch.env.emplace_back("TIERFLOW_TASK_ID", task.id);
  launch.env.emplace_back("TIERFLOW_STAGE", stage.name);
  launch.env.emplace_back("TIERFLOW_STAGE_KIND", std::string(dag::StageKindName(stage.kind)));
  launch.env.emplace_back("TIERFLOW_ATTEMPT", StrCat(task.attempts));
  launch.env.emplace_back("TIERFLOW_PIPELINE", pipeline_.name);

  if (hit) launch.log_path.clear();  // nothing runs, nothing logs
  task.log_path = launch.log_path;
  json command =
      stage.run.is_shell() ? json{{"shell", stage.run.shell}} : json{{"argv", launch.argv}};
  insert_attempt_->Bind(1, run_id_)
      .Bind(2, task.id)
      .Bind(3, static_cast<int64_t>(task.attempts))
      .Bind(4, hit ? attempt_state::kCached : attempt_state::kRunning)
      .Bind(5, command.dump())
      .Bind(8, now)
      .Bind(9, launch.log_path)
      .Bind(10, options_.worker)
      .Bind(11,
            task.data_wait_since_ms > 0 ? std::max<int64_t>(now - task.data_wait_since_ms, 0) : 0)
      .Bind(12, stage.inputs.empty() ? std::optional<std::string>() : ReadsJson(t));
  task.data_wait_since_ms = 0;
  if (task.cache_key.empty()) {
    insert_attempt_->BindNull(6);
  } else {
    insert_attempt_->Bind(6, task.cache_key);
  }
  if (hit) {
    insert_attempt_->Bind(7, hit->attempt_id);
  } else {
    insert_attempt_->BindNull(7);
  }
  TF_RETURN_IF_ERROR(insert_attempt_->Run());
  task.attempt_id = db_->LastInsertId();
  task.attempt_started_ms = now;
  launch.attempt_id = task.attempt_id;
  attempt_task_[task.attempt_id] = t;
  for (const auto& [name, artifact] : consumed) {
    insert_edge_->Bind(1, task.attempt_id)
        .Bind(2, artifact)
        .Bind(3, "consumed")
        .Bind(4, name)
        .Bind(5, now);
    TF_RETURN_IF_ERROR(insert_edge_->Run());
  }
  if (hit) {
    task.reusing = true;
    task.cached_from = hit->attempt_id;
    task.expected_hashes = hit->hashes;
    launch.mode = TaskLaunch::Mode::kReuse;
    for (size_t o = 0; o < launch.outputs.size(); ++o) launch.outputs[o].reuse_from = hit->paths[o];
  }
  TF_RETURN_IF_ERROR(SetTaskState(
      t, task_state::kRunning,
      hit ? StrCat("reusing the outputs of attempt #", hit->attempt_id) : std::string()));
  // Outputs kept only on an object store are copied into staging on their
  // write tier first; the reuse starts when every one is there.
  int restores = 0;
  for (size_t o = 0; hit && o < launch.outputs.size(); ++o) {
    if (!hit->restore[o]) continue;
    const auto& [tier, key] = *hit->restore[o];
    const uint8_t write = task.places[o].write;
    const std::string to_key = StrCat(staging, "restore/", launch.outputs[o].name);
    launch.outputs[o].reuse_from = TierPath(write, to_key);
    const int64_t id = --last_restore_id_;  // not a copy of any artifact of this run
    AddMove(id, {t, static_cast<uint8_t>(o), write, MoveJob::Kind::kCopy, /*restore=*/true, tier});
    to_move_.push_back({MoveJob::Kind::kCopy,
                        id,
                        tiers_[tier].adapter.get(),
                        tiers_[write].adapter.get(),
                        key,
                        TierPath(write, to_key),
                        /*clear_first=*/true,
                        to_key,
                        {},
                        hit->hashes[o]});
    ++restores;
  }
  if (!hit) TF_RETURN_IF_ERROR(WatchCheckpoints(t, launch, restores));
  if (restores > 0) {
    waiting_launches_[t] = {std::move(launch), restores};
    return absl::OkStatus();
  }
  to_launch_.push_back(std::move(launch));
  return absl::OkStatus();
}

// ------------------------------------------------------------ checkpoints

// Where tasks write checkpoints and where each stage's are flushed: as
// placement chose them (PlaceCheckpoints, in SetUpTiers); one write tier
// (and node tier) for the run, a flush tier per stage.
absl::Status Engine::Impl::SetUpCheckpoints() {
  checkpoint_tier_ = kNoTier;
  checkpoint_node_tier_ = kNoTier;
  checkpoint_flush_.assign(pipeline_.stages.size(), kNoTier);
  auto index = [&](const std::string& name) {  // "" (none): kNoTier
    for (uint8_t x = 0; x < tiers_.size(); ++x) {
      if (!name.empty() && tiers_[x].config.name == name) return x;
    }
    return kNoTier;
  };
  for (const CheckpointPlacement& placed : checkpoint_placement_) {
    checkpoint_tier_ = index(placed.write_tier);
    checkpoint_node_tier_ = index(placed.node_tier);
    checkpoint_flush_[pipeline_.FindStage(placed.stage)] = index(placed.flush_tier);
  }
  return absl::OkStatus();
}

// Before task `t` starts: its checkpoints are watched for commits, and
// (a retry, a resume) the latest one flushed is put back where the task
// looks for it when it is not there any more.
absl::Status Engine::Impl::WatchCheckpoints(uint32_t t, TaskLaunch& launch, int& restores) {
  const TaskRec& task = tasks_[t];
  const uint8_t flush = checkpoint_flush_.empty() ? kNoTier : checkpoint_flush_[task.stage];
  if (flush == kNoTier || launch.checkpoint_dir.empty()) return absl::OkStatus();
  std::set<std::string>& seen = checkpoint_watch_[t];
  seen.clear();
  TF_ASSIGN_OR_RETURN(Statement rows,
                      db_->Prepare("SELECT name, state FROM checkpoints WHERE run_id = ? AND "
                                   "task_id = ? ORDER BY step, id"));
  rows.Bind(1, run_id_).Bind(2, task.id);
  std::string latest;
  for (;;) {
    TF_ASSIGN_OR_RETURN(bool row, rows.Step());
    if (!row) break;
    // One whose flush failed (or was cut off by a crash: resume marks it
    // failed) is flushed again if the task's folder still has it.
    if (rows.Text(1) != "failed") seen.insert(rows.Text(0));
    if (rows.Text(1) == "present") latest = rows.Text(0);
  }
  std::error_code error;
  const fs::path dir(launch.checkpoint_dir);
  if (latest.empty() || fs::exists(dir / (latest + ".committed"), error)) return absl::OkStatus();
  const std::string key = StrCat(CheckpointKey(t), "/", latest);
  storage::Adapter* from = tiers_[flush].adapter.get();
  storage::Adapter* to = tiers_[checkpoint_tier_].adapter.get();
  const int64_t id = --last_restore_id_;
  AddMove(id, {t, 0, checkpoint_tier_, MoveJob::Kind::kRun, /*restore=*/true, flush, 0});
  MoveJob job;
  job.kind = MoveJob::Kind::kRun;
  job.copy_id = id;
  job.run = [from, to, key,
             path = (dir / latest).string()]() -> absl::StatusOr<storage::TransferResult> {
    // What a task that failed mid-write left, through the tier's root.
    if (const auto root = storage::PosixTierRoot(*to)) TF_RETURN_IF_ERROR(root->RemoveTree(path));
    return storage::CopyCheckpoint(*from, *to, key);
  };
  to_move_.push_back(std::move(job));
  ++restores;
  return AddEvent(task.id, 0, "checkpoint_restore",
                  StrCat("restoring checkpoint ", latest, " from tier ", tiers_[flush].config.name,
                         " before the task starts"));
}

// New commit markers of the watched tasks (all, or `only`), flushed.
absl::Status Engine::Impl::PollCheckpoints(std::optional<uint32_t> only) {
  for (auto& [t, seen] : checkpoint_watch_) {
    if (only && *only != t) continue;
    const fs::path dir = TierPath(checkpoint_tier_, CheckpointKey(t));
    std::error_code error;
    std::vector<std::string> names;
    for (fs::directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
      const std::string file = it->path().filename().string();
      constexpr std::string_view kMarker = ".committed";
      if (file.size() <= kMarker.size() || !file.ends_with(kMarker)) continue;
      const std::string name = file.substr(0, file.size() - kMarker.size());
      if (seen.count(name) == 0) names.push_back(name);
    }
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      seen.insert(name);
      TF_RETURN_IF_ERROR(FlushCheckpoint(t, name));
    }
  }
  return absl::OkStatus();
}

absl::Status Engine::Impl::FlushCheckpoint(uint32_t t, const std::string& name, int64_t attempt) {
  const TaskRec& task = tasks_[t];
  const uint8_t flush = checkpoint_flush_[task.stage];
  const std::string key = StrCat(CheckpointKey(t), "/", name);
  const std::string local = TierPath(checkpoint_tier_, key);
  std::optional<int64_t> step;
  const size_t digits = name.find_last_not_of("0123456789");
  if (digits + 1 < name.size() && name.size() - digits <= 18)
    step = std::stoll(name.substr(digits + 1));
  {
    std::ifstream marker(local + ".committed");
    json said = json::parse(marker, nullptr, /*allow_exceptions=*/false);
    if (said.is_object() && said.contains("step") && said["step"].is_number_integer()) {
      step = said["step"].get<int64_t>();
    }
  }
  TF_ASSIGN_OR_RETURN(Statement insert,
                      db_->Prepare("INSERT INTO checkpoints(run_id, task_id, attempt_id, name, "
                                   "step, local_uri, tier, uri, state, committed_at) VALUES (?, "
                                   "?, ?, ?, ?, ?, ?, ?, 'flushing', ?)"));
  insert.Bind(1, run_id_)
      .Bind(2, task.id)
      .Bind(3, attempt != 0 ? attempt : task.attempt_id)
      .Bind(4, name)
      .Bind(5, step)
      .Bind(6, local)
      .Bind(7, tiers_[flush].config.name)
      .Bind(8, CopyUri(flush, key))
      .Bind(9, WallClockMs());
  TF_RETURN_IF_ERROR(insert.Run());
  const int64_t row = db_->LastInsertId();
  storage::Adapter* from = tiers_[checkpoint_tier_].adapter.get();
  storage::Adapter* to = tiers_[flush].adapter.get();
  const int64_t id = --last_restore_id_;
  AddMove(id, {t, 0, flush, MoveJob::Kind::kRun, false, checkpoint_tier_, row});
  auto digest = std::make_shared<storage::ContentDigest>();
  MoveJob job;
  job.kind = MoveJob::Kind::kRun;
  job.copy_id = id;
  job.run = [from, to, key, local, digest]() -> absl::StatusOr<storage::TransferResult> {
    TF_ASSIGN_OR_RETURN(*digest, storage::HashArtifact(local));
    return storage::CopyCheckpoint(*from, *to, key);
  };
  checkpoint_digests_[row] = digest;
  to_move_.push_back(std::move(job));
  return AddEvent(task.id, task.attempt_id, "checkpoint",
                  StrCat("checkpoint ", name, " committed; flushing it to tier ",
                         tiers_[flush].config.name, " while the task runs"));
}

absl::Status Engine::Impl::ApplyCheckpointMove(const Move& move, const MoveResult& result) {
  const TaskRec& task = tasks_[move.task];
  if (move.restore) {
    if (!result.status.ok()) {
      TF_RETURN_IF_ERROR(AddEvent(task.id, 0, "checkpoint_restore_failed",
                                  StrCat("restoring its latest checkpoint failed: ",
                                         result.status.message(), "; it starts without it")));
    } else {
      TF_RETURN_IF_ERROR(
          AddEvent(task.id, task.attempt_id, "checkpoint_restored",
                   StrCat("its latest checkpoint restored: ", FormatSize(result.moved.bytes),
                          " in ", FormatDuration(result.elapsed))));
    }
    // The attempt waited for it before it could start.
    TF_ASSIGN_OR_RETURN(Statement waited,
                        db_->Prepare("UPDATE attempts SET input_wait_ms = coalesce(input_wait_ms, "
                                     "0) + ? WHERE id = ?"));
    waited.Bind(1, static_cast<int64_t>(result.elapsed.count())).Bind(2, task.attempt_id);
    TF_RETURN_IF_ERROR(waited.Run());
    auto waiting = waiting_launches_.find(move.task);
    if (waiting != waiting_launches_.end() && --waiting->second.restores == 0) {
      to_launch_.push_back(std::move(waiting->second.launch));
      waiting_launches_.erase(waiting);
    }
    return absl::OkStatus();
  }
  if (move.checkpoint < 0) return absl::OkStatus();  // a removal: recorded when decided
  auto digest = checkpoint_digests_.find(move.checkpoint);
  std::shared_ptr<storage::ContentDigest> content;
  if (digest != checkpoint_digests_.end()) {
    content = digest->second;
    checkpoint_digests_.erase(digest);
  }
  const int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(result.elapsed).count();
  TF_ASSIGN_OR_RETURN(Statement update,
                      db_->Prepare("UPDATE checkpoints SET state = ?, bytes = ?, files = ?, "
                                   "content_hash = ?, flushed_at = ?, flush_ms = ?, message = ? "
                                   "WHERE id = ? RETURNING name"));
  const bool ok = result.status.ok() && content;
  update.Bind(1, ok ? "present" : "failed")
      .Bind(2, ok ? std::optional<int64_t>(content->bytes) : std::nullopt)
      .Bind(3, ok ? std::optional<int64_t>(content->files) : std::nullopt)
      .Bind(4, ok ? std::optional<std::string>(content->hash) : std::nullopt)
      .Bind(5, WallClockMs())
      .Bind(6, ms)
      .Bind(7, ok ? std::string() : std::string(result.status.message()))
      .Bind(8, move.checkpoint);
  TF_ASSIGN_OR_RETURN(bool row, update.Step());
  const std::string name = row ? update.Text(0) : "";
  update.Reset();
  const std::string& tier = tiers_[move.tier].config.name;
  if (!ok) {
    return AddEvent(task.id, 0, "checkpoint_failed",
                    StrCat("flushing checkpoint ", name, " to tier ", tier,
                           " failed: ", result.status.message()));
  }
  TF_RETURN_IF_ERROR(AddEvent(
      task.id, 0, "checkpointed",
      StrCat("checkpoint ", name, " flushed to tier ", tier, ": ", FormatSize(content->bytes),
             " in ", FormatDuration(result.elapsed), ", ", content->hash)));
  return KeepCheckpoints(move.task);
}

// Only the newest `keep` flushed checkpoints of a task stay, on the durable
// tier and where the task wrote them.
absl::Status Engine::Impl::KeepCheckpoints(uint32_t t) {
  const TaskRec& task = tasks_[t];
  const uint32_t keep = std::max<uint32_t>(pipeline_.stages[task.stage].checkpoints.keep, 1);
  TF_ASSIGN_OR_RETURN(Statement rows,
                      db_->Prepare("SELECT id, name FROM checkpoints WHERE run_id = ? AND "
                                   "task_id = ? AND state = 'present' ORDER BY step DESC, id DESC "
                                   "LIMIT -1 OFFSET ?"));
  rows.Bind(1, run_id_).Bind(2, task.id).Bind(3, static_cast<int64_t>(keep));
  std::vector<std::pair<int64_t, std::string>> old;
  for (;;) {
    TF_ASSIGN_OR_RETURN(bool row, rows.Step());
    if (!row) break;
    old.emplace_back(rows.Int(0), rows.Text(1));
  }
  if (old.empty()) return absl::OkStatus();
  const uint8_t flush = checkpoint_flush_[task.stage];
  TF_ASSIGN_OR_RETURN(Statement gone,
                      db_->Prepare("UPDATE checkpoints SET state = 'deleted', message = ? "
                                   "WHERE id = ?"));
  for (const auto& [row, name] : old) {
    gone.Bind(1, StrCat("only the newest ", keep, " are kept")).Bind(2, row);
    TF_RETURN_IF_ERROR(gone.Run());
    const std::string key = StrCat(CheckpointKey(t), "/", name);
    storage::Adapter* durable = tiers_[flush].adapter.get();
    const std::string local = TierPath(checkpoint_tier_, key);
    // On a posix tier the folder goes too, not only the files in it.
    const std::string durable_path = tiers_[flush].posix ? TierPath(flush, key) : "";
    const std::shared_ptr<const storage::TierRoot> local_root =
        storage::PosixTierRoot(*tiers_[checkpoint_tier_].adapter);
    const int64_t id = --last_restore_id_;
    AddMove(id, {t, 0, flush, MoveJob::Kind::kRun, false, checkpoint_tier_, -row});
    MoveJob job;
    job.kind = MoveJob::Kind::kRun;
    job.copy_id = id;
    job.run = [durable, key, local, durable_path,
               local_root]() -> absl::StatusOr<storage::TransferResult> {
      // Through the tiers' roots: a symlink beneath them is never followed.
      if (local_root != nullptr) {
        // The marker first: no half checkpoint counts.
        TF_RETURN_IF_ERROR(local_root->Remove(local + ".committed"));
        TF_RETURN_IF_ERROR(local_root->RemoveTree(local));
      }
      TF_RETURN_IF_ERROR(durable->Delete(key + ".committed"));
      if (const auto root = storage::PosixTierRoot(*durable); root && !durable_path.empty()) {
        TF_RETURN_IF_ERROR(root->RemoveTree(durable_path));
        return storage::TransferResult{};
      }
      TF_RETURN_IF_ERROR(DeleteArtifact(*durable, key));
      return storage::TransferResult{};
    };
    to_move_.push_back(std::move(job));
  }
  return absl::OkStatus();
}

std::string Engine::Impl::CacheKey(
    uint32_t t, const std::vector<std::string>& argv,
    const std::vector<std::pair<std::string, std::string>>& env,
    const std::vector<std::pair<std::string, std::vector<uint32_t>>>& inputs) {
  const TaskRec& task = tasks_[t];
  const dag::Stage& stage = pipeline_.stages[task.stage];
  std::string key = "tierflow-cache-v1";
  auto add = [&](std::string_view field) {
    key += '\0';
    key += field;
  };
  add(pipeline_.name);
  add(task.id);
  if (stage.run.is_shell()) {
    add("shell");
    add(stage.run.shell);
  } else {
    add("argv");
    for (const std::string& arg : argv) add(arg);
  }
  // Script files the command names (python3 train.py): their content is
  // part of what the task does, so editing one invalidates the cache.
  std::vector<std::string> words = argv;
  if (stage.run.is_shell()) {
    std::istringstream split(stage.run.shell);
    for (std::string word; split >> word;) words.push_back(word);
  }
  for (const std::string& word : words) {
    if (word.empty() || word.size() > 4096) continue;
    fs::path path = fs::path(working_dir_) / word;
    auto known = script_hashes_.find(path.string());
    if (known == script_hashes_.end()) {
      std::error_code error;
      std::string hash;
      if (fs::is_regular_file(path, error)) {
        absl::StatusOr<storage::ContentDigest> digest = storage::HashArtifact(path.string());
        if (digest.ok()) hash = digest->hash;
      }
      known = script_hashes_.emplace(path.string(), hash).first;
    }
    if (!known->second.empty()) {
      add("script");
      add(word);
      add(known->second);
    }
  }
  // The environment without input/output paths (they name this run's
  // folders); inputs count by content below.
  std::vector<std::pair<std::string, std::string>> sorted;
  for (const auto& entry : env) {
    if (entry.first.rfind("TIERFLOW_INPUT_", 0) == 0 ||
        entry.first.rfind("TIERFLOW_OUTPUT_", 0) == 0 ||
        entry.first.rfind("TIERFLOW_STREAM_", 0) == 0 || entry.first == "TIERFLOW_CHECKPOINT_DIR") {
      continue;
    }
    sorted.push_back(entry);
  }
  std::sort(sorted.begin(), sorted.end());
  for (const auto& [name, value] : sorted) {
    add(name);
    add(value);
  }
  for (const auto& [name, producers] : inputs) {
    add("input");
    add(name);
    const dag::InputRef* ref = nullptr;
    for (const dag::InputRef& input : stage.inputs) {
      if (StrCat(input.name, "=", input.stage, ".", input.output) == name) ref = &input;
    }
    for (uint32_t producer : producers) {
      const dag::Stage& from = pipeline_.stages[tasks_[producer].stage];
      for (size_t o = 0; o < from.outputs.size(); ++o) {
        if (ref != nullptr && from.outputs[o].name == ref->output) {
          add(tasks_[producer].id);
          add(tasks_[producer].outputs[o].hash);
        }
      }
    }
  }
  for (const dag::OutputSpec& output : stage.outputs) {
    add("output");
    add(output.name);
  }
  return storage::HashBytes(key);
}

absl::StatusOr<std::optional<Engine::Impl::CacheHit>> Engine::Impl::FindCacheHit(
    uint32_t t, const std::string& key) {
  const dag::Stage& stage = pipeline_.stages[tasks_[t].stage];
  find_cached_->Bind(1, key);
  std::vector<std::pair<int64_t, int64_t>> candidates;  // attempt, original attempt
  for (;;) {
    absl::StatusOr<bool> row = find_cached_->Step();
    if (!row.ok()) {
      find_cached_->Reset();
      return row.status();
    }
    if (!*row) break;
    candidates.emplace_back(find_cached_->Int(0), find_cached_->Int(1));
  }
  find_cached_->Reset();
  for (const auto& [attempt, original] : candidates) {
    CacheHit hit;
    hit.attempt_id = original;
    hit.paths.resize(stage.outputs.size());
    hit.hashes.resize(stage.outputs.size());
    hit.restore.resize(stage.outputs.size());
    size_t present = 0;
    cached_outputs_->Bind(1, attempt);
    for (;;) {
      absl::StatusOr<bool> row = cached_outputs_->Step();
      if (!row.ok()) {
        cached_outputs_->Reset();
        return row.status();
      }
      if (!*row) break;
      const std::string name = cached_outputs_->Text(0);
      for (size_t o = 0; o < stage.outputs.size(); ++o) {
        if (stage.outputs[o].name != name || !hit.paths[o].empty() || hit.restore[o]) continue;
        std::error_code error;
        const std::string path = cached_outputs_->Text(3);
        if (path.empty() || path[0] != '/') {
          // On an object store of this run's tiers (posix copies come
          // first): restored from there. Whether it is still there shows
          // when it is copied; if not, the task runs.
          const std::string tier_name = cached_outputs_->Text(4);
          for (uint8_t x = 0; x < tiers_.size(); ++x) {
            if (tiers_[x].posix || tiers_[x].config.name != tier_name) continue;
            const std::string prefix = CopyUri(x, "");
            if (path.rfind(prefix, 0) != 0 || path.size() == prefix.size()) continue;
            hit.restore[o].emplace(x, path.substr(prefix.size()));
            hit.hashes[o] = cached_outputs_->Text(1);
            ++present;
          }
          continue;
        }
        fs::file_status status = fs::status(path, error);
        if (error || !fs::exists(status)) continue;
        if (fs::is_regular_file(status) &&
            fs::file_size(path, error) != static_cast<uintmax_t>(cached_outputs_->Int(2))) {
          continue;
        }
        hit.paths[o] = path;
        hit.hashes[o] = cached_outputs_->Text(1);
        ++present;
      }
    }
    cached_outputs_->Reset();
    if (present == stage.outputs.size()) return std::optional<CacheHit>(std::move(hit));
  }
  return std::optional<CacheHit>();
}

// A failed attempt that ran out of space: the tiers it writes on, named,
// with their free space. Told by its log ("No space left on device", the
// strerror of ENOSPC, in the last 64 KiB) or by a posix tier it writes its
// outputs or checkpoints on having less than 1 MiB free. "" otherwise.
std::string Engine::Impl::FullTierNote(uint32_t t) const {
  const TaskRec& task = tasks_[t];
  std::vector<uint8_t> written;
  for (const OutputPlace& place : task.places) written.push_back(place.write);
  if (pipeline_.stages[task.stage].checkpoints.enabled && checkpoint_tier_ != kNoTier) {
    written.push_back(checkpoint_tier_);
  }
  std::sort(written.begin(), written.end());
  written.erase(std::unique(written.begin(), written.end()), written.end());
  bool logged = false;
  if (int fd = task.log_path.empty() ? -1 : open(task.log_path.c_str(), O_RDONLY | O_CLOEXEC);
      fd >= 0) {
    constexpr off_t kTail = 64 << 10;
    const off_t size = lseek(fd, 0, SEEK_END);
    std::string tail(static_cast<size_t>(std::min(size, kTail)), '\0');
    const ssize_t got = pread(fd, tail.data(), tail.size(), size - static_cast<off_t>(tail.size()));
    close(fd);
    logged = got > 0 && tail.find(std::strerror(ENOSPC)) != std::string::npos;
  }
  std::vector<std::string> tiers;
  bool full = false;
  for (uint8_t x : written) {
    std::string text = StrCat("tier ", tiers_[x].config.name);
    struct statvfs info {};
    if (tiers_[x].posix && statvfs(tiers_[x].root.c_str(), &info) == 0) {
      const uint64_t free = static_cast<uint64_t>(info.f_bavail) * info.f_frsize;
      full = full || free < (uint64_t{1} << 20);
      text += StrCat(" (", FormatSize(static_cast<uint64_t>(info.f_blocks) * info.f_frsize), "; ",
                     FormatSize(free), " free after the attempt)");
    }
    tiers.push_back(std::move(text));
  }
  if (tiers.empty() || (!logged && !full)) return "";
  if (!logged) return StrCat("; it writes on ", absl::StrJoin(tiers, ", "), ": full");
  return StrCat("; its log says \"No space left on device\": it writes on ",
                absl::StrJoin(tiers, ", "));
}

absl::Status Engine::Impl::ApplyReport(TaskReport& report) {
  auto found = attempt_task_.find(report.attempt_id);
  if (found == attempt_task_.end()) return absl::OkStatus();  // not ours (any more)
  const uint32_t t = found->second;
  TaskRec& task = tasks_[t];
  if (task.attempt_id != report.attempt_id) return absl::OkStatus();  // a stale attempt
  if (report.outcome == TaskReport::Outcome::kStarted) {
    if (!report.message.empty()) {
      // Why it runs where it runs (cluster mode: the lease's reason).
      TF_RETURN_IF_ERROR(AddEvent(task.id, report.attempt_id, "placed", report.message));
    }
    TF_RETURN_IF_ERROR(RecordNodeCopies(t, report));
    TF_RETURN_IF_ERROR(RecordCheckpointDir(t, report));
    // The task waited for its worker to copy its inputs onto a node tier.
    int64_t staged_ms = 0;
    for (const NodeCopyReport& copy : report.node_copies) staged_ms += copy.elapsed_ms;
    if (ended_.count(report.attempt_id) > 0 && staged_ms == 0) return absl::OkStatus();
    set_attempt_pid_->Bind(1, static_cast<int64_t>(report.pid))
        .Bind(3, staged_ms)
        .Bind(4, report.attempt_id);
    if (report.worker.empty()) {
      set_attempt_pid_->BindNull(2);
    } else {
      set_attempt_pid_->Bind(2, report.worker);
    }
    if (report.worker_id.empty()) {
      set_attempt_pid_->BindNull(5);
    } else {
      set_attempt_pid_->Bind(5, report.worker_id);
    }
    return set_attempt_pid_->Run();
  }
  attempt_task_.erase(found);
  if (checkpoint_watch_.count(t) > 0) {
    // What it committed just before it ended, flushed too (a failed
    // attempt's latest checkpoint is where its retry starts).
    TF_RETURN_IF_ERROR(PollCheckpoints(t));
    checkpoint_watch_.erase(t);
  }
  const int64_t now = WallClockMs();
  const Duration duration(std::max<int64_t>(now - task.attempt_started_ms, 0));
  const dag::Stage& stage = pipeline_.stages[task.stage];

  // A reuse whose restore from an object store failed reports a missing
  // source: say why it is missing instead.
  if (auto restore = restore_failures_.find(t); restore != restore_failures_.end()) {
    if (task.reusing && report.outcome == TaskReport::Outcome::kFailed) {
      report.message = StrCat(restore->second, "; running the task");
    }
    if (report.outcome != TaskReport::Outcome::kStarted) restore_failures_.erase(restore);
  }
  // A reuse whose outputs changed since they were recorded is no hit: run
  // the task for real (not a failure of the task).
  if (task.reusing && report.outcome == TaskReport::Outcome::kSucceeded) {
    for (size_t o = 0; o < report.outputs.size(); ++o) {
      if (report.outputs[o].content_hash != task.expected_hashes[o]) {
        report.outcome = TaskReport::Outcome::kFailed;
        report.message = StrCat("cached output '", report.outputs[o].name,
                                "' changed since it was recorded; running the task");
      }
    }
    if (report.outcome != TaskReport::Outcome::kSucceeded) task.no_cache = true;
  }

  if (report.outcome == TaskReport::Outcome::kFailed && !task.reusing) {
    report.message += FullTierNote(t);
  }
  std::string_view attempt_outcome = attempt_state::kFailed;
  switch (report.outcome) {
    case TaskReport::Outcome::kSucceeded:
      attempt_outcome = task.reusing ? attempt_state::kCached : attempt_state::kSucceeded;
      break;
    case TaskReport::Outcome::kTimedOut:
      attempt_outcome = attempt_state::kTimedOut;
      break;
    case TaskReport::Outcome::kCancelled:
      attempt_outcome = attempt_state::kCancelled;
      break;
    case TaskReport::Outcome::kLost:
      attempt_outcome = attempt_state::kLost;
      break;
    default:
      break;
  }
  finish_attempt_->Bind(1, attempt_outcome)
      .Bind(2, now)
      .Bind(3,
            report.exit_code.has_value() ? std::optional<int64_t>(*report.exit_code) : std::nullopt)
      .Bind(4, report.signal.has_value() ? std::optional<int64_t>(*report.signal) : std::nullopt)
      .Bind(5, report.message)
      .Bind(6, task.reusing ? std::nullopt
                            : std::optional<int64_t>(static_cast<int64_t>(report.log_bytes)))
      .Bind(7, report.pid > 0 ? std::optional<int64_t>(report.pid) : std::nullopt)
      .Bind(13, report.attempt_id);
  // What the command did on data; nothing for a reuse (nothing ran) or an
  // attempt that never reported it (lost, cancelled before a worker took it).
  const bool measured = !task.reusing && report.pid > 0;
  auto measure = [&](int index, int64_t value) {
    if (measured) {
      finish_attempt_->Bind(index, value);
    } else {
      finish_attempt_->BindNull(index);
    }
  };
  measure(9, report.data_wait_ms);
  measure(10, report.io_wait_ms);
  measure(11, static_cast<int64_t>(report.read_bytes));
  measure(12, static_cast<int64_t>(report.write_bytes));
  if (report.worker.empty()) {
    finish_attempt_->BindNull(8);
  } else {
    finish_attempt_->Bind(8, report.worker);
  }
  if (report.worker_id.empty()) {
    finish_attempt_->BindNull(14);
  } else {
    finish_attempt_->Bind(14, report.worker_id);
  }
  TF_RETURN_IF_ERROR(finish_attempt_->Run());
  if (!task.reusing) stages_[task.stage].busy += duration;

  if (report.outcome == TaskReport::Outcome::kSucceeded) {
    for (size_t o = 0; o < report.outputs.size() && o < stage.outputs.size(); ++o) {
      const OutputReport& output = report.outputs[o];
      overwrite_copies_->Bind(1, run_id_).Bind(2, task.id).Bind(3, output.name);
      TF_RETURN_IF_ERROR(overwrite_copies_->Run());
      insert_artifact_->Bind(1, run_id_)
          .Bind(2, task.id)
          .Bind(3, output.name)
          .Bind(4, report.attempt_id)
          .Bind(5, output.content_hash)
          .Bind(6, static_cast<int64_t>(output.bytes))
          .Bind(7, static_cast<int64_t>(output.files))
          .Bind(8, now);
      TF_ASSIGN_OR_RETURN(bool row, insert_artifact_->Step());
      int64_t artifact_id = row ? insert_artifact_->Int(0) : 0;
      insert_artifact_->Reset();
      task.outputs[o] = {artifact_id, output.path, output.content_hash, output.bytes};
      OutputPlace& place = task.places[o];
      place.ForgetCopies();
      TF_ASSIGN_OR_RETURN(place.copy_ids[place.write],
                          InsertCopy(t, o, place.write, "present", std::nullopt));
      place.copies[place.write] = CopyState::kPresent;
      insert_edge_->Bind(1, report.attempt_id)
          .Bind(2, artifact_id)
          .Bind(3, "produced")
          .Bind(4, output.name)
          .Bind(5, now);
      TF_RETURN_IF_ERROR(insert_edge_->Run());
    }
    const bool reused = task.reusing;
    TF_RETURN_IF_ERROR(SetTaskState(
        t, reused ? task_state::kCached : task_state::kSucceeded,
        reused ? StrCat("reused the outputs of attempt #", task.cached_from) : std::string(),
        duration));
    for (size_t o = 0; o < report.outputs.size() && o < stage.outputs.size(); ++o) {
      TF_RETURN_IF_ERROR(ScheduleMoves(t, o));
    }
    if (--stages_[task.stage].unfinished == 0) TF_RETURN_IF_ERROR(StageDone(task.stage));
    return absl::OkStatus();
  }
  if (report.outcome == TaskReport::Outcome::kCancelled || cancelling_) {
    return SetTaskState(t, task_state::kCancelled, report.message, duration);
  }
  if (report.outcome == TaskReport::Outcome::kLost) {
    // Not the task's failure: it runs again at once, its retries untouched.
    TF_RETURN_IF_ERROR(SetTaskState(t, task_state::kQueued, report.message, duration));
    Enqueue(t);
    return absl::OkStatus();
  }
  if (task.reusing) {
    // A failed reuse: requeue as a real run at once.
    TF_RETURN_IF_ERROR(SetTaskState(t, task_state::kQueued, report.message, duration));
    task.no_cache = true;
    Enqueue(t);
    return absl::OkStatus();
  }
  ++task.failures;
  if (task.failures <= stage.retries.limit) {
    Duration delay = RetryDelay(stage.retries, task.failures, options_.random());
    retry_timers_.emplace(std::chrono::steady_clock::now() + delay, t);
    return SetTaskState(t, task_state::kRetrying,
                        StrCat(report.message, "; retry ", task.failures, " of ",
                               stage.retries.limit, " in ", FormatDuration(delay)),
                        duration);
  }
  TF_RETURN_IF_ERROR(SetTaskState(t, task_state::kFailed, report.message, duration));
  return FailDownstream(task.stage, task.id);
}

absl::Status Engine::Impl::StageDone(uint32_t stage) {
  for (uint32_t child : graph_->StageChildren(stage)) {
    if (--stages_[child].waiting_parents != 0) continue;
    uint32_t first = graph_->FirstTask(child);
    for (uint32_t i = 0; i < pipeline_.stages[child].TaskCount(); ++i) {
      if (tasks_[first + i].state == task_state::kPending) Enqueue(first + i);
    }
  }
  return absl::OkStatus();
}

absl::Status Engine::Impl::FailDownstream(uint32_t stage, const std::string& failed_task) {
  std::vector<uint32_t> queue(graph_->StageChildren(stage).begin(),
                              graph_->StageChildren(stage).end());
  std::vector<bool> seen(stages_.size(), false);
  const std::string message = StrCat("upstream task ", failed_task, " failed");
  while (!queue.empty()) {
    uint32_t s = queue.back();
    queue.pop_back();
    if (seen[s]) continue;
    seen[s] = true;
    uint32_t first = graph_->FirstTask(s);
    for (uint32_t i = 0; i < pipeline_.stages[s].TaskCount(); ++i) {
      if (!IsTerminal(tasks_[first + i].state)) {
        TF_RETURN_IF_ERROR(SetTaskState(first + i, task_state::kUpstreamFailed, message));
      }
    }
    for (uint32_t child : graph_->StageChildren(s)) queue.push_back(child);
  }
  return absl::OkStatus();
}

// ------------------------------------------------------------------ cancel

bool EngineAlive(int64_t pid, const std::string& host) {
  if (pid <= 0 || host != HostName()) return false;
  std::ifstream cmdline(StrCat("/proc/", pid, "/cmdline"), std::ios::binary);
  std::string argv0;
  if (!cmdline || !std::getline(cmdline, argv0, '\0')) return false;
  return fs::path(argv0).filename().string().rfind("tierflow", 0) == 0;
}

absl::StatusOr<std::string> CancelRun(const std::string& db_path, const std::string& run) {
  TF_ASSIGN_OR_RETURN(std::unique_ptr<Database> db, OpenStore(db_path));
  TF_ASSIGN_OR_RETURN(const std::string run_id, ResolveRunId(*db, run));
  auto not_running = [&]() -> absl::Status {
    TF_ASSIGN_OR_RETURN(Statement find, db->Prepare("SELECT state FROM runs WHERE id = ?"));
    find.Bind(1, run_id);
    TF_ASSIGN_OR_RETURN(bool found, find.Step());
    if (found && find.Text(0) == run_state::kRunning) return absl::OkStatus();
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
  TF_ASSIGN_OR_RETURN(const int killed, KillLeftoverTasks(*db, run_id, /*may_scan_host=*/true));
  const int64_t now = WallClockMs();
  TF_RETURN_IF_ERROR(db->Execute("BEGIN IMMEDIATE"));
  absl::Status status = [&]() -> absl::Status {
    TF_RETURN_IF_ERROR(not_running());  // an engine may have finished it meanwhile
    TF_RETURN_IF_ERROR(EndInterruptedAttempts(*db, run_id, now));
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
    return event.Run();
  }();
  if (!status.ok()) {
    (void)db->Execute("ROLLBACK");
    return status;
  }
  TF_RETURN_IF_ERROR(db->Execute("COMMIT"));
  return StrCat("run ", run_id, " had no live engine: recorded it cancelled",
                killed > 0 ? StrCat(" and killed ", killed, " leftover task(s)") : "");
}

// ------------------------------------------------------------------ Engine

Engine::Engine(EngineOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Engine::~Engine() = default;
absl::StatusOr<RunResult> Engine::Run(const RunRequest& request) { return impl_->Run(request); }
absl::StatusOr<RunResult> Engine::Resume(const std::string& run_id) {
  return impl_->Resume(run_id);
}
void Engine::Cancel() { impl_->Cancel(); }
void Engine::KillNow() { impl_->KillNow(); }

}  // namespace tierflow::scheduler
