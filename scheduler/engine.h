// The run engine: drives one run of a pipeline to its end. It owns the
// task state machine (engine.cc); the units beside it each do one job for
// the run it drives: TurnLoop (what other threads hand in, and when and
// where a turn runs), the ready queue (readiness), run_counts (the counts
// and the run's final state), RunWriter (every store write), TaskCache,
// Replicas (copies, streaming, eviction), Checkpoints, resume, attempt
// (launches and reports), run_lock (the run's lock and cancel). Each turn
// applies everything that arrived, commits the resulting transitions to
// the store in one transaction, and only then acts on them (launches
// tasks, submits copies, cancels attempts). A crash or kill at any moment
// therefore loses no finished work: Resume picks up from the store.
//
// Threading (scheduler/turn_loop.h). One turn runs at a time, under
// TurnLoop's turn lock, and a turn owns all run and task state (the run
// model, the units, the ready queue, timers and counts; none of it has a
// lock of its own). Turns run on the thread that called Run or Resume
// ("Drive's thread") or, inline, on the executor's thread that reports a
// task's end, when no turn is under way (a try-lock on the turn lock): a
// task's end is then applied, committed and its successors launched
// without waking Drive's thread, which keeps the per-task overhead low;
// the inline turn wakes Drive's thread only when it has to look (the run
// is over, a start to record, a retry due before Drive's next look). What
// other threads tell the engine goes through TurnLoop's mutex: executor
// reports, the mover's results, remote tiers' retries (TierEvents, its own
// lock, then a wake-up) and Cancel() (also called by the cancel file's
// watcher thread); each wakes Drive's thread through a condition variable,
// and the next turn takes everything queued. A task's start report (its
// pid, for `show`) waits for the next turn, at most
// TurnLoop::kStartedFlush (100 ms): it needs no commit of its own.
// executor_mu_ guards only the executor pointer, for KillNow from a
// signal-handling thread. The RunObserver is called inside turns, so on
// either kind of thread, one call at a time.
//
// Semantics (docs/running.md is the user-facing description):
// - readiness by counting unfinished parent stages, never by rescanning
//   (item-wise parents of a mapped stage are counted per item);
// - at most `slots` tasks run at once, tasks on the longest remaining chain
//   of stages first, then in plan order;
// - a failed attempt is retried up to the stage's retry limit after an
//   exponential backoff with jitter; timeouts kill the whole process group;
// - a task that fails for good marks every task downstream of it
//   upstream_failed (of a mapped stage, only those with its item), while
//   independent branches go on;
// - a task whose cache key (command, params, item, declared env, content of
//   its inputs and of the script files its argv names) matches an earlier
//   successful attempt whose outputs still exist reuses those outputs;
// - Cancel() stops launching, terminates running tasks (TERM, then KILL
//   after the grace) and records them cancelled.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/task.h"
#include "common/units.h"
#include "scheduler/lineage_events.h"
#include "scheduler/local_resources.h"
#include "scheduler/placement.h"
#include "scheduler/run_lock.h"  // CancelRun, EngineAlive
#include "scheduler/store.h"     // RunState, TaskState
#include "storage_adapters/adapter.h"

namespace tierflow::scheduler {

// Task counts by state.
struct RunCounts {
  uint32_t total = 0;
  uint32_t pending = 0;
  uint32_t queued = 0;
  uint32_t running = 0;
  uint32_t retrying = 0;
  uint32_t succeeded = 0;
  uint32_t cached = 0;
  uint32_t failed = 0;
  uint32_t upstream_failed = 0;
  uint32_t cancelled = 0;
  uint32_t done() const { return succeeded + cached + failed + upstream_failed + cancelled; }
};

// One transition of one task, as the observer sees it.
struct TaskEvent {
  int64_t time_ms = 0;
  std::string task_id;
  TaskState state = TaskState::kPending;
  uint32_t attempt = 0;
  std::string message;   // failure reason, retry delay, cache source
  Duration duration{0};  // of the attempt, when it finished
  std::string log_path;
};

// Watches a run, e.g. to draw progress. Called after the transitions are
// committed, inside the engine's turn: on Drive's thread or an executor's
// reporting thread (see "Threading"), never two calls at once; must return
// quickly.
class RunObserver {
 public:
  virtual ~RunObserver() = default;
  virtual void OnRunStarted(const std::string& run_id, bool resumed, const RunCounts& counts) = 0;
  virtual void OnTaskEvent(const TaskEvent& event, const RunCounts& counts) = 0;
};

struct StageSummary {
  std::string stage;
  std::string kind;
  uint32_t tasks = 0;
  uint32_t succeeded = 0;
  uint32_t cached = 0;
  uint32_t failed = 0;
  uint32_t upstream_failed = 0;
  uint32_t cancelled = 0;
  Duration busy{0};  // sum of the durations of this run's attempts
};

struct FailedTask {
  std::string task_id;
  TaskState state = TaskState::kFailed;
  std::string message;
  std::string log_path;
};

struct RunResult {
  std::string run_id;
  RunState state = RunState::kRunning;
  RunCounts counts;
  std::vector<StageSummary> stages;  // in file order
  std::vector<FailedTask> failures;  // failed and timed-out tasks, plan order
  Duration elapsed{0};
  std::string db_path;
  // Copies to a home that failed (a full tier, say): the run fails with
  // them, its outputs kept where they were written (runs.message says so).
  std::vector<std::string> write_back_failures;
};

struct EngineOptions {
  std::string db_path;  // the store; artifacts, logs and staging go beside it
  int slots = 0;        // tasks at once; 0 = number of CPUs
  Duration kill_grace = std::chrono::seconds(10);
  bool use_cache = true;  // false: run every task (`--no-cache`)
  RunObserver* observer = nullptr;
  // Uniform in [0, 1): the retry jitter. Default: a random source.
  std::function<double()> random;
  // What retry backoffs, checkpoint polls and the flush of start reports
  // are timed on (wall times recorded in the store stay the system's);
  // MakeEmbeddedEngine gives the local pool the same clock for timeouts.
  const Clock* clock = &SystemClock();
  // Runs tasks; default: the local worker pool (set by the caller, which
  // links the worker; the scheduler does not).
  std::function<absl::StatusOr<std::unique_ptr<Executor>>(Executor::ReportCallback)> make_executor;
  // The storage tiers a new run is placed on, with what placement knows of
  // them (api::PlacementTiers). Each output is written on its write tier,
  // written back to its home, and copied to each consumer's working tier
  // as soon as it is complete; working copies go when their last consumer
  // ends (docs/tiers.md). Empty: one posix tier `local` at the store's
  // folder that every task writes and reads (no copies). A resumed run
  // keeps the tiers it was started with.
  std::vector<PlacementTier> tiers;
  // Opens a tier's adapter; default: posix tiers only.
  std::function<absl::StatusOr<std::unique_ptr<storage::Adapter>>(const storage::TierConfig&)>
      open_tier;
  int transfer_threads = 4;  // copies between tiers at once
  // Cluster mode: node tiers (scope node) are each worker's own. Placement
  // keeps homes and write tiers on cluster tiers; an input placed on a
  // node tier is copied there by the worker that runs its reader, before
  // it starts (TaskLaunch::stage_in), kept there for the next reader on
  // that worker, and deleted (Executor::EvictNodeCopy) after the last.
  bool node_tiers_on_workers = false;
  // The worker an attempt is recorded on until its executor reports who
  // ran it: "local" in embedded mode; "" in cluster mode (not leased yet).
  std::string worker = "local";
  // A resumed run's leftover tasks (a dead engine's) are killed through
  // their recorded pids when a local pool ran them (the server resuming a
  // killed `tierflow run` on its database included). Embedded mode (true)
  // also searches this host's processes for the run's TIERFLOW_RUN_ID when
  // an attempt was launched without its pid recorded yet. Cluster mode
  // (false): tasks on workers are stopped by their workers; this host's
  // processes are never searched.
  bool kill_leftovers_on_host = true;
  // The executor's name when its attempts outlive the engine ("slurm"),
  // recorded with a new run: a resume with another executor is refused
  // before anything changes (the attempts may still run where they were
  // started). "": the local pool, or a server's workers.
  std::string executor;
  // Its options as recorded with a new run (runs.executor_options; Slurm:
  // scheduler/slurm_tracking.h SubmitOptionsJson). A resume given other
  // options than the recorded ones is refused before anything changes,
  // naming both; a run recorded without options (schema 11) takes any.
  std::string executor_options;
  // The local pool's budget (scheduler/local_resources.h): a task starts
  // only when its `resources:` fit beside what runs, with GPU devices of its
  // own; a pipeline with a stage that could never fit is refused before
  // anything is recorded. Unset: not counted (Slurm, cluster workers, which
  // have resource models of their own).
  std::optional<LocalBudget> local_budget;
  // `run --rerun STAGE` (repeatable): a new run's tasks of these stages run
  // even when the cache has their outputs (the event says "forced"); with
  // `rerun_downstream`, every stage downstream of them too. An unknown
  // stage fails the run before anything is recorded (ForcedStages).
  std::vector<std::string> rerun;
  bool rerun_downstream = false;
  // A resume whose pipeline file changed the command, params or env of an
  // unfinished task is refused (StaleUnfinishedTasks); true resumes with the
  // stored definition all the same (`resume --force`).
  bool resume_force = false;
  // Set when an OpenLineage endpoint is configured (TIERFLOW_OPENLINEAGE_URL,
  // read by api/): each state change's events go to the store's outbox in its
  // transaction (scheduler/lineage_outbox.h). Unset: nothing is written there.
  std::optional<lineage::ExportSettings> lineage_outbox;
};

struct RunRequest {
  std::string file;                           // the pipeline YAML
  std::map<std::string, std::string> params;  // --param overrides
  // The YAML text itself (a pipeline submitted to a server): then `file`
  // only names it and its folder is where tasks run.
  std::optional<std::string> yaml;
  // Cluster mode: `tierflow submit --priority`, recorded with the run.
  int priority = 0;
};

class Engine {
 public:
  explicit Engine(EngineOptions options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Starts a new run and drives it to its end. Errors are for runs that
  // could not start (bad pipeline, store unwritable); a run that starts
  // ends in a RunResult whatever its tasks do.
  absl::StatusOr<RunResult> Run(const RunRequest& request);
  // Finishes an earlier run: tasks that succeeded (and whose outputs still
  // exist) are kept, everything else runs again; attempts that were running
  // when the engine died are recorded `lost` and their leftover processes
  // killed. `run` is a run id or `last`. Fails if another engine is driving
  // the run. One Run or Resume at a time per Engine, any number in sequence.
  absl::StatusOr<RunResult> Resume(const std::string& run);

  // Thread-safe, async-signal-unsafe (call from a signal-handling thread).
  // First call: graceful cancel. KillNow: KILL every running task's group.
  void Cancel();
  void KillNow();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tierflow::scheduler
