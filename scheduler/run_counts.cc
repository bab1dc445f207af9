#include "scheduler/run_counts.h"

#include "absl/strings/str_join.h"
#include "common/strings.h"
#include "scheduler/engine.h"
#include "scheduler/store.h"

namespace tierflow::scheduler {
namespace {

// The state the tasks alone give the run.
RunState TasksState(const RunCounts& counts, bool cancelling) {
  if (counts.cancelled > 0 || cancelling) return RunState::kCancelled;
  if (counts.failed > 0 || counts.upstream_failed > 0) return RunState::kFailed;
  return RunState::kSucceeded;
}

// `message`, then `more` after a "; " when both say something.
std::string Append(std::string message, const std::string& more) {
  return message.empty() ? more : StrCat(message, "; ", more);
}

}  // namespace

void CountTask(RunCounts& counts, TaskState state, int delta) {
  uint32_t* const counters[] = {&counts.pending,   &counts.queued,
                                &counts.running,   &counts.retrying,
                                &counts.succeeded, &counts.cached,
                                &counts.failed,    &counts.upstream_failed,
                                &counts.cancelled};  // in TaskState's order
  uint32_t& counter = *counters[static_cast<size_t>(state)];
  counter = static_cast<uint32_t>(static_cast<int64_t>(counter) + delta);
}

RunState FinalRunState(const RunCounts& counts, bool cancelling, bool write_back_failed,
                       bool cleanup_failed) {
  const RunState state = TasksState(counts, cancelling);
  if (state == RunState::kCancelled) return state;
  return write_back_failed || cleanup_failed ? RunState::kFailed : state;
}

std::string FinalRunMessage(const RunCounts& counts, bool cancelling,
                            const std::vector<std::string>& write_back_failures,
                            const std::vector<std::string>& cleanup_failures,
                            const std::string& run_id) {
  const RunState state = TasksState(counts, cancelling);
  std::string message;
  if (state == RunState::kFailed) {
    message = StrCat(counts.failed, " failed, ", counts.upstream_failed, " upstream_failed");
  }
  if (!write_back_failures.empty() && state != RunState::kCancelled) {
    message = Append(message, StrCat(absl::StrJoin(write_back_failures, "; "),
                                     "; the outputs are kept where they were written: finish the "
                                     "write-back with tierflow resume ",
                                     run_id));
  }
  if (!cleanup_failures.empty()) message = Append(message, absl::StrJoin(cleanup_failures, "; "));
  return message;
}

}  // namespace tierflow::scheduler
