#include "scheduler/engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "absl/cleanup/cleanup.h"
#include "common/file_watcher.h"
#include "common/metrics.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/units.h"
#include "nlohmann/json.hpp"
#include "scheduler/attempt.h"
#include "scheduler/checkpoints.h"
#include "scheduler/dynamic_expansion.h"
#include "scheduler/internal/engine_impl.h"
#include "scheduler/internal/run_model.h"
#include "scheduler/mover.h"
#include "scheduler/readiness.h"
#include "scheduler/remote_tiers.h"
#include "scheduler/replicas.h"
#include "scheduler/resume.h"
#include "scheduler/run_counts.h"
#include "scheduler/run_lock.h"
#include "scheduler/run_queries.h"
#include "scheduler/run_start.h"
#include "scheduler/run_writer.h"
#include "scheduler/sqlite.h"
#include "scheduler/store.h"
#include "scheduler/task_cache.h"
#include "scheduler/turn_loop.h"
#include "storage_adapters/posix.h"

namespace tierflow::scheduler {
using internal::ArtifactRec;
using internal::CopyState;
using internal::kNoTier;
using internal::Move;
using internal::MovePurpose;
using internal::Need;
using internal::OutputPlace;
using internal::StageRec;
using internal::TaskRec;
using internal::Tier;

namespace {

using json = nlohmann::json;

// Retry n (1-based) waits min(backoff * factor^(n-1), max_backoff), of which
// the second half is jitter ("equal jitter"), so retries of many tasks that
// failed together spread out instead of hammering a recovering service.
Duration RetryDelay(const dag::RetryPolicy& policy, uint32_t retry, double random) {
  double base = static_cast<double>(policy.backoff.count()) *
                std::pow(policy.factor, static_cast<double>(retry - 1));
  base = std::min(base, static_cast<double>(policy.max_backoff.count()));
  return Duration(static_cast<int64_t>(base / 2 + random * base / 2));
}

}  // namespace

// ------------------------------------------------------------------ set-up

// An Engine drives one run at a time, any number in sequence: each starts
// from a clean slate.
absl::Status Engine::Impl::BeginRun() {
  if (driving_.exchange(true)) {
    return absl::FailedPreconditionError("this engine is already driving a run: one run at a time");
  }
  started_ = std::chrono::steady_clock::now();
  // The mover's threads first: they use the tiers and the units.
  mover_.reset();
  run_ = internal::RunModel{};
  units_ = std::make_unique<internal::RunUnits>();
  run_.node_tiers_on_workers = options_.node_tiers_on_workers;
  attempt_task_.clear();
  waiting_launches_.clear();
  restore_failures_.clear();
  schedule_kept_ = false;
  ready_.Clear();
  retry_timers_.clear();
  local_.reset();
  if (options_.local_budget) local_.emplace(*options_.local_budget);
  counts_ = RunCounts{};
  cancelling_ = false;
  to_launch_.clear();
  launched_ = false;
  to_cancel_.clear();
  to_reattach_.clear();
  pending_events_.clear();
  loop_.Reset();
  return absl::OkStatus();
}

// A Cancel() that arrived while this run was driven ends with it; one that
// arrives between runs applies to the next.
void Engine::Impl::EndRun() {
  // Copies this engine counted as under way that never reported (a run
  // that ended on an error): no longer under way for /metrics.
  if (units_) units_->moves.Clear();
  {
    std::lock_guard lock(executor_mu_);
    executor_.reset();  // a run that could not start
  }
  loop_.EndRun();
  // The run is no longer driven: resume and cancel may take it.
  if (units_) units_->lock.reset();
  driving_ = false;
}

absl::StatusOr<RunResult> Engine::Impl::Run(const RunRequest& request) {
  TF_RETURN_IF_ERROR(BeginRun());
  absl::Cleanup end = [this] { EndRun(); };
  TF_RETURN_IF_ERROR(StartExecutor());
  TF_RETURN_IF_ERROR(internal::StartNewRun(options_, request, Links(), run_, *units_));
  return Drive(/*resumed=*/false);
}

absl::StatusOr<RunResult> Engine::Impl::Resume(const std::string& run) {
  TF_RETURN_IF_ERROR(BeginRun());
  absl::Cleanup end = [this] { EndRun(); };
  // First: whether the executor re-attaches decides what happens to the
  // attempts the run's last engine left running.
  TF_RETURN_IF_ERROR(StartExecutor());
  TF_RETURN_IF_ERROR(
      internal::TakeOverRun(options_, run, executor_->Reattaches(), Links(), run_, *units_));
  return Drive(/*resumed=*/true);
}

// ------------------------------------------------------------------ driving

absl::StatusOr<RunResult> Engine::Impl::Drive(bool resumed) {
  TF_RETURN_IF_ERROR(StartDriving(resumed));
  // `tierflow cancel` from another process.
  TF_ASSIGN_OR_RETURN(FileWatcher * watcher, FileWatcher::Get());
  absl::StatusOr<std::unique_ptr<FileWatcher::Watch>> cancel_watch =
      watcher->Add(run_.run_dir / kCancelFile, [this] { Cancel(); });
  if (!cancel_watch.ok()) {
    return absl::Status(cancel_watch.status().code(),
                        StrCat(cancel_watch.status().message(), " (for cancel requests)"));
  }
  if (options_.observer != nullptr) {
    options_.observer->OnRunStarted(run_.run_id, resumed, counts_);
  }

  std::unique_lock turn = loop_.LockTurns();
  const absl::Status status = loop_.Drive(turn);
  replicas().StopStreams();
  if (!status.ok()) return StopOnError(status);
  return FinishDriving();
}

// Initial readiness, and the mover.
absl::Status Engine::Impl::StartDriving(bool resumed) {
  counts_ = RunCounts{};
  counts_.total = static_cast<uint32_t>(run_.tasks.size());
  for (const TaskRec& task : run_.tasks) CountTask(counts_, task.state, +1);
  writes_list_.assign(run_.pipeline.stages.size(), false);
  for (const dag::Stage& stage : run_.pipeline.stages) {
    if (stage.foreach_from) {
      if (const int from = run_.pipeline.FindStage(stage.foreach_from->stage); from >= 0) {
        writes_list_[from] = true;
      }
    }
  }
  ready_.Start();
  replicas().CountReaders();
  schedule_kept_ = resumed;
  mover_ = std::make_unique<Mover>(options_.transfer_threads, [this](MoveResult result) {
    loop_.OnMoveResult(std::move(result));
  });
  return absl::OkStatus();
}

// Before the run is loaded; nothing is launched until the first turn.
absl::Status Engine::Impl::StartExecutor() {
  std::lock_guard lock(executor_mu_);
  auto make = options_.make_executor;
  if (!make) return absl::FailedPreconditionError("no executor configured");
  TF_ASSIGN_OR_RETURN(executor_,
                      make([this](TaskReport report) { loop_.OnReport(std::move(report)); }));
  return absl::OkStatus();
}

// The store failed past its retries (locked, full disk, ...): this engine
// stops driving the run. It stops this run's attempts, each by name (a
// cluster's workers run other runs' tasks too); the run stays `running` in
// the store, resumable once the cause is fixed.
absl::StatusOr<RunResult> Engine::Impl::StopOnError(absl::Status status) {
  std::unique_ptr<Executor> executor;
  {
    std::lock_guard lock(executor_mu_);
    executor = std::move(executor_);
  }
  if (executor) {
    for (const TaskRec& task : run_.tasks) {
      if (task.state == TaskState::kRunning && task.attempt_id > 0) {
        executor->Cancel(task.attempt_id);
      }
    }
  }
  executor.reset();
  *units_->transfers_cancelled = true;  // the mover's transfers stop now
  mover_.reset();
  const std::string why =
      StrCat(status.message(), "\nrun ", run_.run_id,
             " stopped; fix the cause and finish it with: tierflow resume ", run_.run_id);
  if (!absl::IsUnavailable(status)) writer().RecordStopped(why);
  return absl::Status(status.code(), why);
}

absl::StatusOr<RunResult> Engine::Impl::FinishDriving() {
  {
    std::lock_guard lock(executor_mu_);
    executor_.reset();
  }
  mover_.reset();  // idle: every copy it was given has been applied
  // A write whose start was retried (its first reply lost) may have left an
  // upload behind; failed ones abort their own.
  if (units_->tier_retried && !*units_->transfers_cancelled) {
    internal::SweepUploads(run_, units_->tier_events, "left by requests that were retried");
  }
  std::vector<std::string> cleanup_failures = replicas().unsafe_paths();
  for (std::string& failure : internal::RemoveStaging(run_)) {
    cleanup_failures.push_back(std::move(failure));
  }
  const std::vector<std::string>& move_failures = replicas().write_back_failures();
  const RunState final_state =
      FinalRunState(counts_, cancelling_, !move_failures.empty(), !cleanup_failures.empty());
  const std::string message =
      FinalRunMessage(counts_, cancelling_, move_failures, cleanup_failures, run_.run_id);
  TF_RETURN_IF_ERROR(FinishRun(final_state, message));
  RunResult result = MakeResult(final_state);
  result.write_back_failures = move_failures;
  return result;
}

absl::Status Engine::Impl::RecordTierEvents() {
  for (const auto& [kind, message] : units_->tier_events.Take()) {
    TF_RETURN_IF_ERROR(writer().AddEvent("", 0, kind, message));
  }
  return absl::OkStatus();
}

absl::Status Engine::Impl::FinishRun(RunState state, const std::string& message) {
  TF_ASSIGN_OR_RETURN(Transaction transaction, writer().Begin());
  TF_RETURN_IF_ERROR(writer().FinishRun(RunStateName(state), message));
  TF_RETURN_IF_ERROR(RecordTierEvents());
  TF_RETURN_IF_ERROR(writer().AddEvent("", 0, StrCat("run_", RunStateName(state)), message));
  return writer().Commit(transaction);
}

RunResult Engine::Impl::MakeResult(RunState state) const {
  RunResult result;
  internal::SummarizeRun(run_, result);
  result.state = state;
  result.counts = counts_;
  result.db_path = options_.db_path;
  result.elapsed =
      std::chrono::duration_cast<Duration>(std::chrono::steady_clock::now() - started_);
  return result;
}

// ------------------------------------------------------------------ turns

internal::TurnOutlook Engine::Impl::Outlook() const {
  internal::TurnOutlook outlook;
  outlook.finished = Finished();
  outlook.tasks_done = counts_.done() == counts_.total;
  outlook.launched = launched_;
  outlook.events_waiting = !units_->tier_events.empty();
  if (!retry_timers_.empty()) outlook.next_retry = retry_timers_.begin()->first;
  if (units_->checkpoints->polling()) outlook.next_poll = units_->checkpoints->next_poll();
  return outlook;
}

// One transaction: everything that arrived is applied and committed, and
// only then acted on. A turn that fails is rolled back and decides nothing.
absl::Status Engine::Impl::Turn(std::deque<TaskReport>& reports, std::deque<MoveResult>& moves,
                                bool cancel_now) {
  metrics::ScopedTimer loop_timer(metrics::Engine().scheduler_loop_seconds);
  TF_ASSIGN_OR_RETURN(Transaction transaction, writer().Begin());
  if (absl::Status status = ApplyTurn(reports, moves, cancel_now); !status.ok()) {
    units_->moves.jobs().clear();
    replicas().evictions_on_workers().clear();
    return status;
  }
  TF_RETURN_IF_ERROR(writer().Commit(transaction));
  ActOnCommittedTurn();
  return absl::OkStatus();
}

absl::Status Engine::Impl::ApplyTurn(std::deque<TaskReport>& reports, std::deque<MoveResult>& moves,
                                     bool cancel_now) {
  TF_RETURN_IF_ERROR(RecordTierEvents());
  if (cancel_now) TF_RETURN_IF_ERROR(CancelAll());
  if (checkpoints().PollDue(clock_.Now())) {
    TF_RETURN_IF_ERROR(checkpoints().Poll(clock_));
  }
  if (schedule_kept_) TF_RETURN_IF_ERROR(ScheduleKept());
  if (!run_.reattach.empty()) TF_RETURN_IF_ERROR(ReattachAttempts());
  for (const MoveResult& move : moves) TF_RETURN_IF_ERROR(ApplyMoveResult(move));
  // A start whose end is in the same batch needs no statement of its own:
  // the end records the pid too.
  ended_.clear();
  for (const TaskReport& report : reports) {
    if (IsFinal(report.outcome)) ended_.insert(report.attempt_id);
  }
  for (TaskReport& report : reports) TF_RETURN_IF_ERROR(ApplyReport(report));
  const SteadyTime now = clock_.Now();
  while (!retry_timers_.empty() && retry_timers_.begin()->first <= now) {
    uint32_t t = retry_timers_.begin()->second;
    retry_timers_.erase(retry_timers_.begin());
    if (run_.tasks[t].state != TaskState::kRetrying) continue;
    TF_RETURN_IF_ERROR(SetTaskState(t, TaskState::kQueued, ""));
    ready_.Enqueue(t);
  }
  TF_RETURN_IF_ERROR(StartReadyTasks());
  // What waits for a slot is `queued`, so users see it is ready.
  for (uint32_t t : ready_.newly_ready()) {
    if (run_.tasks[t].state == TaskState::kPending) {
      TF_RETURN_IF_ERROR(SetTaskState(t, TaskState::kQueued, ""));
    }
  }
  ready_.newly_ready().clear();
  return absl::OkStatus();
}

// Committed: the moves, launches, cancels and evictions the turn decided,
// and its events to the observer.
void Engine::Impl::ActOnCommittedTurn() {
  for (MoveJob& job : units_->moves.jobs()) mover_->Submit(std::move(job));
  units_->moves.jobs().clear();
  launched_ = !to_launch_.empty();
  for (TaskLaunch& launch : to_launch_) executor_->Launch(std::move(launch));
  to_launch_.clear();
  for (int64_t attempt : to_cancel_) executor_->Cancel(attempt);
  to_cancel_.clear();
  for (auto& [launch, handle] : to_reattach_) {
    if (executor_->Reattach(launch, handle)) continue;
    TaskReport lost;
    lost.attempt_id = launch.attempt_id;
    lost.outcome = TaskReport::Outcome::kLost;
    lost.message = StrCat("the engine stopped while this attempt ran, and its executor cannot find",
                          handle.empty() ? std::string(" it") : StrCat(" ", handle),
                          " any more: it runs again");
    loop_.QueueReport(std::move(lost));
  }
  to_reattach_.clear();
  for (const internal::Replicas::NodeEviction& evict : replicas().evictions_on_workers()) {
    executor_->EvictNodeCopy(evict.worker, evict.tier, evict.key);
  }
  replicas().evictions_on_workers().clear();
  if (options_.observer != nullptr) {
    for (const TaskEvent& event : pending_events_) options_.observer->OnTaskEvent(event, counts_);
  }
  pending_events_.clear();
}

// A resume's first turn: outputs kept from before may still need their
// write-back or copies for the tasks that will read them, and checkpoints
// their flush.
absl::Status Engine::Impl::ScheduleKept() {
  schedule_kept_ = false;
  TF_RETURN_IF_ERROR(checkpoints().FlushCutOff());
  for (uint32_t t = 0; t < run_.tasks.size(); ++t) {
    if (!IsDone(run_.tasks[t].state)) continue;
    for (size_t o = 0; o < run_.tasks[t].places.size(); ++o) {
      TF_RETURN_IF_ERROR(replicas().ScheduleMoves(t, o));
    }
    // A list kept from before whose stage was not expanded yet.
    if (writes_list_[run_.tasks[t].stage]) TF_RETURN_IF_ERROR(ExpandAfter(t));
  }
  return absl::OkStatus();
}

// Ready tasks into free slots, longest remaining chain first. Their inputs
// are copied to their working tiers first (usually they are there
// already: copies start when an artifact is complete). With a local
// budget, a task starts only when its resources fit (LocalResources says
// which wait); those that wait go back to the queue.
// How many ready tasks that do not fit the local budget a pass skips
// before it stops looking for one that does.
constexpr size_t kBackfillDepth = 256;

absl::Status Engine::Impl::StartReadyTasks() {
  std::vector<uint32_t> not_fitting;
  absl::Cleanup requeue = [&] {
    for (uint32_t t : not_fitting) ready_.Push(t);
  };
  // Each pass reserves for the first task, in the queue's order, that does not fit.
  if (local_) local_->DropReservation();
  while (!cancelling_ && !ready_.empty() &&
         counts_.running < static_cast<uint32_t>(options_.slots)) {
    const uint32_t t = ready_.Pop();
    TF_ASSIGN_OR_RETURN(bool data_ready, replicas().DataReady(t));
    if (!data_ready) {
      if (replicas().WaitForData(t)) {
        run_.tasks[t].data_wait_since_ms = WallClockMs();
        TF_RETURN_IF_ERROR(writer().AddEvent(run_.tasks[t].id, 0, "data_wait",
                                             "waiting for copies of its inputs"));
      }
      continue;
    }
    std::optional<internal::LocalResources::Grant> grant;
    if (local_) {
      grant = local_->TryTake(t, run_.pipeline.stages[run_.tasks[t].stage].resources);
      if (!grant) {
        not_fitting.push_back(t);
        // Backfill looks this far past what does not fit: a budget that is
        // full must not cost a pass over every ready task in every turn.
        if (not_fitting.size() >= kBackfillDepth) break;
        continue;
      }
    }
    TF_RETURN_IF_ERROR(Dispatch(t, grant ? &*grant : nullptr));
    // Nothing runs for a reuse (or a task no longer ready): it holds nothing.
    if (local_ && (run_.tasks[t].reusing || run_.tasks[t].state != TaskState::kRunning)) {
      local_->Release(t);
    }
  }
  return absl::OkStatus();
}

absl::Status Engine::Impl::ApplyMoveResult(const MoveResult& result) {
  const Move* found = units_->moves.Find(result.copy_id);
  if (found == nullptr) return absl::OkStatus();
  if (result.started) return replicas().StreamStarted(*found);
  const Move move = units_->moves.Take(result.copy_id);
  switch (move.purpose) {
    case MovePurpose::kFlushCheckpoint:
    case MovePurpose::kRemoveCheckpoint:
    case MovePurpose::kRestoreCheckpoint:
      return checkpoints().ApplyMove(move, result);
    default:
      return replicas().ApplyMove(result.copy_id, move, result);
  }
}

absl::Status Engine::Impl::CancelAll() {
  cancelling_ = true;
  TF_RETURN_IF_ERROR(writer().RequestCancel());
  TF_RETURN_IF_ERROR(writer().AddEvent("", 0, "cancel_requested", ""));
  for (uint32_t t = 0; t < run_.tasks.size(); ++t) {
    const TaskState state = run_.tasks[t].state;
    if (state == TaskState::kRunning) {
      to_cancel_.push_back(run_.tasks[t].attempt_id);
    } else if (!IsTerminal(state)) {
      TF_RETURN_IF_ERROR(SetTaskState(t, TaskState::kCancelled, "the run was cancelled"));
    }
  }
  retry_timers_.clear();
  ready_.Clear();
  replicas().ForgetDataWaiters();
  // Copies not begun are not needed any more (write-backs of finished
  // outputs resume with the run); those under way to or from a remote
  // store stop at once (they are made again on resume), others finish.
  *units_->transfers_cancelled = true;
  mover_->DropQueued();
  return absl::OkStatus();
}

// ------------------------------------------------------ the state machine

void Engine::Impl::Emit(uint32_t t, std::string message, Duration duration) {
  const TaskRec& task = run_.tasks[t];
  TaskEvent event;
  event.time_ms = WallClockMs();
  event.task_id = task.id;
  event.state = task.state;
  event.attempt = task.attempts;
  event.message = std::move(message);
  event.duration = duration;
  event.log_path = task.log_path;
  pending_events_.push_back(std::move(event));
}

absl::Status Engine::Impl::SetTaskState(uint32_t t, TaskState state, const std::string& message,
                                        Duration duration) {
  TaskRec& task = run_.tasks[t];
  const bool ends = !IsTerminal(task.state) && IsTerminal(state);
  CountTask(counts_, task.state, -1);
  CountTask(counts_, state, +1);
  task.state = state;
  task.message = message;
  TF_RETURN_IF_ERROR(
      writer().UpdateTask(task.id, state, task.attempts, task.cache_key, message, WallClockMs()));
  // `queued` says only "ready, waiting for a slot": the task row holds it;
  // an event per ready task would double what the store writes for it.
  if (state != TaskState::kQueued) {
    TF_RETURN_IF_ERROR(writer().AddEvent(task.id, task.attempt_id, TaskStateName(state), message));
  }
  Emit(t, message, duration);
  if (state == TaskState::kSucceeded || state == TaskState::kCached) {
    // Read again only for failures (the run's summary): a run of a million
    // tasks keeps no million log paths.
    std::string().swap(task.log_path);
  }
  if (ends) TF_RETURN_IF_ERROR(replicas().ReleaseNeeds(t));
  return absl::OkStatus();
}

absl::Status Engine::Impl::FailDownstream(uint32_t task) {
  const std::string message = StrCat("upstream task ", run_.tasks[task].id, " failed");
  // Item-wise readers fail item by item (only the failed item's chain).
  for (uint32_t t : internal::DownstreamTasks(run_, task)) {
    if (!IsTerminal(run_.tasks[t].state)) {
      TF_RETURN_IF_ERROR(SetTaskState(t, TaskState::kUpstreamFailed, message));
    }
  }
  return absl::OkStatus();
}

// Task `t` wrote a dynamic stage's list: the stage's tasks are added
// (scheduler/dynamic_expansion.h), counted, and ready once no other parent
// stage holds them; a bad list fails the stage's one task instead.
absl::Status Engine::Impl::ExpandAfter(uint32_t t) {
  TF_ASSIGN_OR_RETURN(internal::ExpansionOutcome outcome, internal::ExpandAfter(run_, writer(), t));
  for (const internal::Expansion& expansion : outcome.expanded) {
    counts_.total += expansion.count;
    counts_.pending += expansion.count;
    run_.stages[expansion.stage].unfinished = expansion.count;
  }
  // Once every stage of the expansion has its tasks: a map over the
  // dynamic stage waits for its own items.
  for (const internal::Expansion& expansion : outcome.expanded) {
    ready_.StageExpanded(expansion.stage);
  }
  for (const internal::ExpansionOutcome::Failure& failure : outcome.failed) {
    ++counts_.total;
    ++counts_.pending;
    TF_RETURN_IF_ERROR(SetTaskState(failure.task, TaskState::kFailed, failure.message));
    TF_RETURN_IF_ERROR(FailDownstream(failure.task));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- reports

absl::Status Engine::Impl::ApplyReport(TaskReport& report) {
  auto found = attempt_task_.find(report.attempt_id);
  if (found == attempt_task_.end()) return absl::OkStatus();  // not ours (any more)
  const uint32_t t = found->second;
  TaskRec& task = run_.tasks[t];
  if (task.attempt_id != report.attempt_id) return absl::OkStatus();  // a stale attempt
  if (report.outcome == TaskReport::Outcome::kSubmitted) {
    // How the executor submitted it (the Slurm executor: the packing rule's reason).
    if (!report.message.empty()) {
      TF_RETURN_IF_ERROR(
          writer().AddEvent(task.id, report.attempt_id, "submitted", report.message));
    }
    return writer().RecordHandle(report.attempt_id, report.handle);
  }
  if (report.outcome == TaskReport::Outcome::kStarted) return ApplyStart(t, report);
  attempt_task_.erase(found);
  if (local_) local_->Release(t);  // every end: success, failure, timeout, cancel, lost
  TF_RETURN_IF_ERROR(checkpoints().AttemptEnded(t));
  const int64_t now = WallClockMs();
  const Duration duration(std::max<int64_t>(now - task.attempt_started_ms, 0));
  TF_RETURN_IF_ERROR(RecordAttemptEnd(t, report, now));
  if (!task.reusing) run_.stages[task.stage].busy += duration;
  if (report.outcome == TaskReport::Outcome::kSucceeded) {
    TF_RETURN_IF_ERROR(RecordOutputs(t, report, now));
  }
  return ApplyEnd(t, report, duration);
}

// Its process started: where and why (cluster mode), what its worker
// copied first, and its pid, for `show`.
absl::Status Engine::Impl::ApplyStart(uint32_t t, const TaskReport& report) {
  const TaskRec& task = run_.tasks[t];
  if (!report.message.empty()) {
    // Why it runs where it runs (cluster mode: the lease's reason).
    TF_RETURN_IF_ERROR(writer().AddEvent(task.id, report.attempt_id, "placed", report.message));
  }
  TF_RETURN_IF_ERROR(replicas().RecordNodeCopies(t, report));
  TF_RETURN_IF_ERROR(checkpoints().RecordDir(t, report));
  // The task waited for its worker to copy its inputs onto a node tier.
  int64_t staged_ms = 0;
  for (const NodeCopyReport& copy : report.node_copies) staged_ms += copy.elapsed_ms;
  if (!report.handle.empty()) {
    TF_RETURN_IF_ERROR(writer().RecordHandle(report.attempt_id, report.handle));
  }
  if (ended_.count(report.attempt_id) > 0 && staged_ms == 0) return absl::OkStatus();
  return writer().AttemptStarted(report.attempt_id, report.pid, report.worker, report.worker_id,
                                 staged_ms);
}

// The attempt's row, with what the report says; a reuse that did not
// reuse is turned into a failure first.
absl::Status Engine::Impl::RecordAttemptEnd(uint32_t t, TaskReport& report, int64_t now) {
  TaskRec& task = run_.tasks[t];
  // A reuse whose restore from an object store failed reports a missing
  // source: say why it is missing instead.
  if (auto restore = restore_failures_.find(t); restore != restore_failures_.end()) {
    if (task.reusing && report.outcome == TaskReport::Outcome::kFailed) {
      report.message = StrCat(restore->second, "; running the task");
    }
    restore_failures_.erase(restore);
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
    report.message += internal::FullTierNote(run_, t, checkpoints().tier());
  }
  AttemptEnd end;
  end.attempt_id = report.attempt_id;
  end.state = internal::AttemptOutcome(report.outcome, task.reusing);
  end.finished_at = now;
  if (report.exit_code) end.exit_code = *report.exit_code;
  if (report.signal) end.signal = *report.signal;
  end.message = report.message;
  if (!task.reusing) end.log_bytes = static_cast<int64_t>(report.log_bytes);
  if (report.pid > 0) end.pid = report.pid;
  end.worker = report.worker;
  end.worker_id = report.worker_id;
  // What the command did on data; nothing for a reuse (nothing ran) or an
  // attempt that never reported it (lost, cancelled before a worker took it).
  if (!task.reusing && report.pid > 0) {
    end.data_wait_ms = report.data_wait_ms;
    end.io_wait_ms = report.io_wait_ms;
    end.read_bytes = static_cast<int64_t>(report.read_bytes);
    end.write_bytes = static_cast<int64_t>(report.write_bytes);
    if (report.started_ms > 0 && report.finished_ms >= report.started_ms) {
      end.ran_ms = report.finished_ms - report.started_ms;
    }
  }
  return writer().FinishAttempt(end);
}

// A successful attempt's outputs: new artifacts, present on their write
// tier, with their lineage.
absl::Status Engine::Impl::RecordOutputs(uint32_t t, const TaskReport& report, int64_t now) {
  TaskRec& task = run_.tasks[t];
  const size_t outputs = run_.pipeline.stages[task.stage].outputs.size();
  for (size_t o = 0; o < report.outputs.size() && o < outputs; ++o) {
    const OutputReport& output = report.outputs[o];
    TF_ASSIGN_OR_RETURN(
        const int64_t artifact_id,
        writer().RecordArtifact(task.id, output.name, report.attempt_id, output.content_hash,
                                output.bytes, output.files, now));
    task.outputs[o] = ArtifactRec{
        .id = artifact_id, .path = output.path, .hash = output.content_hash, .bytes = output.bytes};
    TF_RETURN_IF_ERROR(replicas().OutputWritten(t, o));
    TF_RETURN_IF_ERROR(
        writer().AddEdge(report.attempt_id, artifact_id, "produced", output.name, now));
  }
  return absl::OkStatus();
}

// The task's next state after its attempt ended.
absl::Status Engine::Impl::ApplyEnd(uint32_t t, const TaskReport& report, Duration duration) {
  TaskRec& task = run_.tasks[t];
  const dag::Stage& stage = run_.pipeline.stages[task.stage];
  if (report.outcome == TaskReport::Outcome::kSucceeded) {
    const bool reused = task.reusing;
    TF_RETURN_IF_ERROR(SetTaskState(
        t, reused ? TaskState::kCached : TaskState::kSucceeded,
        reused ? StrCat("reused the outputs of attempt #", task.cached_from) : std::string(),
        duration));
    for (size_t o = 0; o < report.outputs.size() && o < stage.outputs.size(); ++o) {
      TF_RETURN_IF_ERROR(replicas().ScheduleMoves(t, o));
    }
    // (An expansion adds tasks: `task` is not to be used after it.)
    const uint32_t s = task.stage;
    if (writes_list_[s]) TF_RETURN_IF_ERROR(ExpandAfter(t));
    ready_.TaskDone(t);
    if (--run_.stages[s].unfinished == 0) ready_.StageDone(s);
    return absl::OkStatus();
  }
  if (report.outcome == TaskReport::Outcome::kCancelled || cancelling_) {
    return SetTaskState(t, TaskState::kCancelled, report.message, duration);
  }
  if (report.outcome == TaskReport::Outcome::kLost || task.reusing) {
    // Lost: not the task's failure, it runs again at once, its retries
    // untouched. A failed reuse: it runs for real at once.
    TF_RETURN_IF_ERROR(SetTaskState(t, TaskState::kQueued, report.message, duration));
    if (report.outcome != TaskReport::Outcome::kLost) task.no_cache = true;
    ready_.Enqueue(t);
    return absl::OkStatus();
  }
  ++task.failures;
  if (task.failures <= stage.retries.limit) {
    Duration delay = RetryDelay(stage.retries, task.failures, options_.random());
    retry_timers_.emplace(clock_.Now() + delay, t);
    return SetTaskState(t, TaskState::kRetrying,
                        StrCat(report.message, "; retry ", task.failures, " of ",
                               stage.retries.limit, " in ", FormatDuration(delay)),
                        duration);
  }
  TF_RETURN_IF_ERROR(SetTaskState(t, TaskState::kFailed, report.message, duration));
  return FailDownstream(t);
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
