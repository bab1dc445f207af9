#include "scheduler/turn_loop.h"

#include <utility>

namespace tierflow::scheduler::internal {

void TurnLoop::Reset() {
  std::lock_guard lock(mu_);
  reports_.clear();
  move_results_.clear();
  urgent_reports_ = 0;
  woken_ = false;
  rearm_ = false;
  turn_status_ = absl::OkStatus();
  drive_wake_.reset();
}

void TurnLoop::EndRun() {
  std::lock_guard lock(mu_);
  cancel_requested_ = false;
}

absl::Status TurnLoop::Drive(std::unique_lock<std::mutex>& turn) {
  // The first turn dispatches the initial tasks.
  turn_status_ = TakeTurn(/*cancel_now=*/false);
  inline_turns_ = true;
  bool cancel_seen = false;
  while (WaitForWork(turn, cancel_seen)) {
  }
  inline_turns_ = false;  // from here on, reports are left alone
  return turn_status_;
}

void TurnLoop::OnReport(TaskReport report) {
  const bool urgent = IsFinal(report.outcome);
  {
    std::lock_guard lock(mu_);
    reports_.push_back(std::move(report));
    if (urgent) ++urgent_reports_;
    // A start long after its launch (a batch scheduler's job) may find
    // Drive asleep with no deadline, or a far one (a retry in an hour): it
    // brings the deadline to kStartedFlush away.
    if (!urgent && !rearm_ && drive_sleeping_ &&
        (!drive_sleeps_until_ || *drive_sleeps_until_ > clock_.Now() + kStartedFlush)) {
      rearm_ = true;
      cv_.notify_one();
    }
  }
  if (!urgent) return;
  bool wake_drive = true;
  {
    std::unique_lock turn(turn_mu_, std::try_to_lock);
    if (turn.owns_lock() && inline_turns_ && turn_status_.ok()) {
      turn_status_ = TakeTurn(/*cancel_now=*/false);
      // Drive sleeps until drive_wake_: wake it only when it has to look.
      const TurnOutlook outlook = body_.Outlook();
      wake_drive = !turn_status_.ok() || outlook.tasks_done || (outlook.launched && !drive_wake_) ||
                   (outlook.next_retry && (!drive_wake_ || *outlook.next_retry < *drive_wake_));
    }
  }
  if (wake_drive) Wake();
}

void TurnLoop::QueueReport(TaskReport report) {
  {
    std::lock_guard lock(mu_);
    reports_.push_back(std::move(report));
    ++urgent_reports_;
    woken_ = true;
  }
  cv_.notify_one();
}

void TurnLoop::OnMoveResult(MoveResult result) {
  {
    std::lock_guard lock(mu_);
    move_results_.push_back(std::move(result));
    ++urgent_reports_;
    woken_ = true;
  }
  cv_.notify_one();
}

void TurnLoop::Wake() {
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  cv_.notify_one();
}

void TurnLoop::Cancel() {
  {
    std::lock_guard lock(mu_);
    cancel_requested_ = true;
  }
  cv_.notify_one();
}

// Sleeps without `turn` until the next retry is due, a checkpoint poll, or
// (while starts wait to be recorded) kStartedFlush at most, unless woken.
bool TurnLoop::WaitForWork(std::unique_lock<std::mutex>& turn, bool& cancel_seen) {
  TurnOutlook outlook = body_.Outlook();
  if (!turn_status_.ok() || outlook.finished) return false;
  std::optional<SteadyTime> wake = outlook.next_retry;
  if (outlook.next_poll && (!wake || *outlook.next_poll < *wake)) wake = outlook.next_poll;
  bool starts_waiting = outlook.launched;
  {
    std::lock_guard lock(mu_);
    starts_waiting = starts_waiting || !reports_.empty();
  }
  if (starts_waiting) {
    SteadyTime flush = clock_.Now() + kStartedFlush;
    if (!wake || flush < *wake) wake = flush;
  }
  drive_wake_ = wake;
  turn.unlock();
  bool cancel_now = false;
  bool pending = false;
  bool rearm_only = false;
  {
    std::unique_lock lock(mu_);
    auto has_work = [&] {
      return woken_ || urgent_reports_ > 0 || (cancel_requested_ && !cancel_seen);
    };
    drive_sleeping_ = true;
    drive_sleeps_until_ = wake;
    auto wakes = [&] { return has_work() || rearm_; };
    if (wake) {
      // At most that long in real time: a clock that jumps wakes it first.
      cv_.wait_for(lock, *wake - clock_.Now(), wakes);
    } else {
      cv_.wait(lock, wakes);
    }
    drive_sleeping_ = false;
    rearm_only = rearm_ && !has_work();
    rearm_ = false;
    woken_ = false;
    if (cancel_requested_ && !cancel_seen) cancel_seen = cancel_now = true;
  }
  turn.lock();
  if (rearm_only) return true;  // sleeps again, until kStartedFlush at most
  outlook = body_.Outlook();
  if (!turn_status_.ok() || outlook.finished) return false;
  {
    std::lock_guard lock(mu_);
    pending = !reports_.empty() || !move_results_.empty();
  }
  pending = pending || outlook.events_waiting;
  const SteadyTime now = clock_.Now();
  if (pending || cancel_now || (outlook.next_retry && *outlook.next_retry <= now) ||
      (outlook.next_poll && *outlook.next_poll <= now)) {
    turn_status_ = TakeTurn(cancel_now);
  }
  return true;
}

absl::Status TurnLoop::TakeTurn(bool cancel_now) {
  std::deque<TaskReport> reports;
  std::deque<MoveResult> moves;
  {
    std::lock_guard lock(mu_);
    reports.swap(reports_);
    moves.swap(move_results_);
    urgent_reports_ = 0;
  }
  return body_.Turn(reports, moves, cancel_now);
}

}  // namespace tierflow::scheduler::internal
