// The run engine's state machine (engine.h), declared for the files that
// define its parts: engine.cc (set-up, driving, turns, transitions,
// reports) and engine_dispatch.cc (launching attempts: the launch, the
// cache decision, the attempt's record, restores, re-attaching). Internal
// to scheduler/.
//
// Thread-safety: engine.h, "Threading".
#pragma once

#include <algorithm>
#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "scheduler/attempt.h"
#include "scheduler/checkpoints.h"
#include "scheduler/engine.h"
#include "scheduler/internal/run_model.h"
#include "scheduler/local_resources.h"
#include "scheduler/readiness.h"
#include "scheduler/replicas.h"
#include "scheduler/run_start.h"
#include "scheduler/task_cache.h"
#include "scheduler/turn_loop.h"

namespace tierflow::scheduler {

class Engine::Impl : public internal::TaskHooks, public internal::TurnBody {
 public:
  explicit Impl(EngineOptions options)
      : options_(std::move(options)),
        clock_(options_.clock != nullptr ? *options_.clock : SystemClock()),
        loop_(*this, clock_) {
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

  void Cancel() { loop_.Cancel(); }
  void KillNow() {
    std::lock_guard lock(executor_mu_);
    if (executor_) executor_->KillAll();
  }

  // internal::TaskHooks: replicas and checkpoints, inside a turn.
  void InputsReady(uint32_t task) override { ready_.Push(task); }
  absl::Status InputFailed(uint32_t task, const std::string& message) override {
    TF_RETURN_IF_ERROR(SetTaskState(task, TaskState::kFailed, message));
    return FailDownstream(task);
  }
  void RestoreEnded(uint32_t task, const std::string& failure) override {
    // What the failed reuse reports (its source is missing) says less.
    if (!failure.empty()) restore_failures_[task] = failure;
    auto waiting = waiting_launches_.find(task);
    if (waiting != waiting_launches_.end() && --waiting->second.restores == 0) {
      to_launch_.push_back(std::move(waiting->second.launch));
      waiting_launches_.erase(waiting);
    }
  }

 private:
  // --- set-up
  absl::Status BeginRun();
  void EndRun();
  internal::EngineLinks Links() {
    return {*this, [this](MoveResult result) { loop_.OnMoveResult(std::move(result)); },
            [this] { loop_.Wake(); }};
  }
  RunWriter& writer() { return *units_->writer; }
  internal::TaskCache& cache() { return *units_->cache; }
  internal::Replicas& replicas() { return *units_->replicas; }
  internal::Checkpoints& checkpoints() { return *units_->checkpoints; }

  // --- driving
  absl::StatusOr<RunResult> Drive(bool resumed);
  absl::Status StartDriving(bool resumed);
  absl::StatusOr<RunResult> StopOnError(absl::Status status);
  absl::StatusOr<RunResult> FinishDriving();

  // --- the turn (internal::TurnBody): TurnLoop decides when and where
  // it runs.
  absl::Status Turn(std::deque<TaskReport>& reports, std::deque<MoveResult>& moves,
                    bool cancel_now) override;
  internal::TurnOutlook Outlook() const override;
  absl::Status ApplyTurn(std::deque<TaskReport>& reports, std::deque<MoveResult>& moves,
                         bool cancel_now);
  void ActOnCommittedTurn();
  absl::Status ScheduleKept();
  absl::Status StartReadyTasks();
  absl::Status ApplyMoveResult(const MoveResult& result);
  absl::Status ApplyReport(TaskReport& report);
  absl::Status ApplyStart(uint32_t task, const TaskReport& report);
  absl::Status RecordAttemptEnd(uint32_t task, TaskReport& report, int64_t now);
  absl::Status RecordOutputs(uint32_t task, const TaskReport& report, int64_t now);
  absl::Status ApplyEnd(uint32_t task, const TaskReport& report, Duration duration);
  absl::Status Dispatch(uint32_t task, const internal::LocalResources::Grant* grant = nullptr);
  internal::LaunchInputs BuildLaunch(uint32_t task, TaskLaunch& launch,
                                     internal::Env& contract_env);
  absl::Status ReattachAttempts();
  absl::Status StartExecutor();
  absl::Status RecordAttempt(uint32_t task, TaskLaunch& launch,
                             const std::optional<internal::TaskCache::Hit>& hit,
                             const internal::LaunchInputs& inputs,
                             std::optional<std::string> cache_ingredients);
  int StartRestores(uint32_t task, TaskLaunch& launch, const internal::TaskCache::Hit& hit,
                    const std::string& staging);
  absl::Status FailDownstream(uint32_t task);
  absl::Status ExpandAfter(uint32_t task);
  absl::Status SetTaskState(uint32_t task, TaskState state, const std::string& message,
                            Duration duration = Duration(0));
  absl::Status CancelAll();
  bool Finished() const {
    return counts_.done() == counts_.total && units_->moves.in_flight() == 0;
  }

  void Emit(uint32_t task, std::string message, Duration duration = Duration(0));
  absl::Status FinishRun(RunState state, const std::string& message);
  RunResult MakeResult(RunState state) const;
  absl::Status RecordTierEvents();

  EngineOptions options_;
  const Clock& clock_;                // retries, checkpoint polls, the start flush
  std::atomic<bool> driving_{false};  // Run or Resume in progress
  // What other threads hand in, and where turns run; declared first of
  // the run's members so that it outlives the threads that call it.
  internal::TurnLoop loop_;

  // The run's state: owned by whichever thread runs the turn (its lock
  // held, TurnLoop), or by Drive's thread before the first turn and after
  // the last.
  internal::RunModel run_;
  std::unique_ptr<internal::RunUnits> units_;  // made anew for each run
  SteadyTime started_;
  std::unique_ptr<Mover> mover_;
  std::unordered_map<int64_t, uint32_t> attempt_task_;

  internal::ReadyQueue ready_{run_};
  std::multimap<SteadyTime, uint32_t> retry_timers_;
  std::optional<internal::LocalResources> local_;  // options_.local_budget's, for this run
  RunCounts counts_;
  bool cancelling_ = false;
  bool schedule_kept_ = false;     // the first turn of a resume schedules kept outputs
  std::vector<bool> writes_list_;  // by stage: a dynamic stage's list is its output
  // What a turn decided, acted on once it is committed.
  std::vector<TaskLaunch> to_launch_;
  std::vector<int64_t> to_cancel_;
  std::vector<std::pair<TaskLaunch, std::string>> to_reattach_;  // with its handle
  std::vector<TaskEvent> pending_events_;
  bool launched_ = false;              // the last turn launched tasks
  std::unordered_set<int64_t> ended_;  // attempts whose end this turn applies
  // Launches that wait for restores (cached outputs, a checkpoint).
  struct WaitingLaunch {
    TaskLaunch launch;
    int restores = 0;  // still being copied
  };
  std::unordered_map<uint32_t, WaitingLaunch> waiting_launches_;  // by task
  std::unordered_map<uint32_t, std::string> restore_failures_;    // by task: why
  std::mutex executor_mu_;
  std::unique_ptr<Executor> executor_;  // guarded by executor_mu_ for KillNow
};

}  // namespace tierflow::scheduler
