// The engine's hand-off between threads (engine.h, "Threading"): what
// other threads tell a run (executor reports, the mover's results, cancel
// requests, wake-ups) is queued here under one mutex, and the next turn
// takes all of it. Turns run one at a time under the turn lock: on Drive's
// thread, or inline on an executor's thread that reports a task's end when
// no turn is under way (a try-lock), which saves waking Drive's thread;
// Drive's thread sleeps until the run's next timer, a start to record (at
// most kStartedFlush after a launch, or after the start arrives when it
// comes later: a batch scheduler's job), or a wake-up, and is woken by an
// inline turn only when it has to look. Timers are on the engine's clock
// (EngineOptions::clock): a FakeClock that is advanced wakes Drive's
// thread. What a turn does is the engine's (TurnBody); this unit only
// decides when and where one runs.
//
// Thread-safety: OnReport, OnMoveResult, Wake and Cancel from any thread;
// the rest from Drive's thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>

#include "absl/status/status.h"
#include "common/clock.h"
#include "common/task.h"
#include "scheduler/mover.h"

namespace tierflow::scheduler::internal {

// What the run waits for between turns, as its state machine knows it.
struct TurnOutlook {
  bool finished = false;        // no turn is needed any more
  bool tasks_done = false;      // every task has ended (moves may be under way)
  bool launched = false;        // the last turn launched tasks: their starts are to be recorded
  bool events_waiting = false;  // remote tiers' events are queued
  std::optional<SteadyTime> next_retry;
  std::optional<SteadyTime> next_poll;  // of checkpoints, while some are watched
};

// The turn itself: the engine's task state machine. Called with the turn
// lock held, on whichever thread runs the turn.
class TurnBody {
 public:
  virtual ~TurnBody() = default;
  // Applies everything that arrived, commits it, acts on it.
  virtual absl::Status Turn(std::deque<TaskReport>& reports, std::deque<MoveResult>& moves,
                            bool cancel_now) = 0;
  virtual TurnOutlook Outlook() const = 0;
};

class TurnLoop {
 public:
  // A task's start (its pid, for `show`) needs no turn of its own: it is
  // recorded by the next one, at most this long after its launch.
  static constexpr std::chrono::milliseconds kStartedFlush{100};

  // `body` and `clock` outlive the loop.
  TurnLoop(TurnBody& body, const Clock& clock) : body_(body), clock_(clock) {}

  // A new run: nothing queued, no turn failed. A Cancel() that arrived
  // between runs is kept for this one.
  void Reset();
  // The run ended: a Cancel() that arrived while it was driven ends with it.
  void EndRun();

  // Drive's thread: the turn lock, held while it reads the run's state.
  std::unique_lock<std::mutex> LockTurns() { return std::unique_lock(turn_mu_); }
  // Drive's thread, `turn` held: takes the first turn, then sleeps and
  // turns until the run is finished or a turn fails, with inline turns
  // allowed meanwhile; returns the first failed turn's status. `turn` is
  // held on return: the run's state is Drive's again, and reports that
  // arrive from then on are left queued.
  absl::Status Drive(std::unique_lock<std::mutex>& turn);

  // An executor's thread. A task's end is acted on at once: in a turn on
  // this thread when no turn is under way, else by a turn on Drive's
  // thread, woken. A start waits for the next turn (kStartedFlush).
  void OnReport(TaskReport report);
  // Inside a turn: a final report of the engine's own (an attempt its
  // executor could not re-attach to), applied by the next turn.
  void QueueReport(TaskReport report);
  // A mover thread's result (or a streamed copy's first files); the next
  // turn, on Drive's thread, applies it.
  void OnMoveResult(MoveResult result);
  // Any thread: Drive has something to look at.
  void Wake();
  void Cancel();

 private:
  // Sleeps until there is something to do, then takes a turn if there is
  // anything to do (an inline turn may have done it meanwhile); false when
  // the run is over. Called and returns with `turn` held.
  bool WaitForWork(std::unique_lock<std::mutex>& turn, bool& cancel_seen);
  absl::Status TakeTurn(bool cancel_now);  // turn_mu_ held

  TurnBody& body_;
  const Clock& clock_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<TaskReport> reports_;                // guarded by mu_
  std::deque<MoveResult> move_results_;           // guarded by mu_
  size_t urgent_reports_ = 0;                     // guarded by mu_: final reports in reports_
  bool woken_ = false;                            // guarded by mu_: Drive has something to look at
  bool cancel_requested_ = false;                 // guarded by mu_
  bool drive_sleeping_ = false;                   // guarded by mu_
  std::optional<SteadyTime> drive_sleeps_until_;  // guarded by mu_: none: until woken
  bool rearm_ = false;  // guarded by mu_: a start came; Drive's deadline is too far
  // Held while a turn runs and while Drive reads the run's state.
  std::mutex turn_mu_;
  bool inline_turns_ = false;             // guarded by turn_mu_
  absl::Status turn_status_;              // guarded by turn_mu_: the first failed turn's
  std::optional<SteadyTime> drive_wake_;  // guarded by turn_mu_: Drive sleeps until then
  // Drive looks again when the clock jumps (a FakeClock advanced).
  ClockListener clock_listener_{clock_, [this] { Wake(); }};
};

}  // namespace tierflow::scheduler::internal
