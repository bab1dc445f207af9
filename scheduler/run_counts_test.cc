#include "scheduler/run_counts.h"

#include <gtest/gtest.h>

#include "scheduler/engine.h"

namespace tierflow::scheduler {
namespace {

RunCounts Counts(uint32_t succeeded, uint32_t failed, uint32_t upstream_failed,
                 uint32_t cancelled) {
  RunCounts counts;
  counts.succeeded = succeeded;
  counts.failed = failed;
  counts.upstream_failed = upstream_failed;
  counts.cancelled = cancelled;
  counts.total = succeeded + failed + upstream_failed + cancelled;
  return counts;
}

struct FinalCase {
  const char* name;
  RunCounts counts;
  bool cancelling = false;
  std::vector<std::string> write_back_failures;
  std::vector<std::string> cleanup_failures;
  RunState state;
  std::string message;
};

TEST(RunCountsTest, FinalStateAndMessage) {
  const std::string kKept =
      "; the outputs are kept where they were written: finish the write-back with tierflow "
      "resume r1";
  const FinalCase cases[] = {
      {"all succeeded", Counts(3, 0, 0, 0), false, {}, {}, RunState::kSucceeded, ""},
      {"a task failed",
       Counts(1, 1, 2, 0),
       false,
       {},
       {},
       RunState::kFailed,
       "1 failed, 2 upstream_failed"},
      {"only upstream_failed",
       Counts(1, 0, 1, 0),
       false,
       {},
       {},
       RunState::kFailed,
       "0 failed, 1 upstream_failed"},
      {"a task cancelled", Counts(2, 0, 0, 1), false, {}, {}, RunState::kCancelled, ""},
      {"cancel under way, nothing cancelled yet",
       Counts(2, 0, 0, 0),
       true,
       {},
       {},
       RunState::kCancelled,
       ""},
      {"cancelled wins over failed", Counts(0, 1, 0, 1), false, {}, {}, RunState::kCancelled, ""},
      {"write-back failed",
       Counts(2, 0, 0, 0),
       false,
       {"a.out to bulk: full"},
       {},
       RunState::kFailed,
       "a.out to bulk: full" + kKept},
      {"write-backs failed after a task failed",
       Counts(1, 1, 0, 0),
       false,
       {"a.out: full", "b.out: full"},
       {},
       RunState::kFailed,
       "1 failed, 0 upstream_failed; a.out: full; b.out: full" + kKept},
      {"write-back failed in a cancelled run: resumed anyway",
       Counts(1, 0, 0, 1),
       false,
       {"a.out: full"},
       {},
       RunState::kCancelled,
       ""},
      {"cleanup failed",
       Counts(2, 0, 0, 0),
       false,
       {},
       {"staging: busy"},
       RunState::kFailed,
       "staging: busy"},
      {"cleanup failed in a cancelled run",
       Counts(0, 0, 0, 2),
       false,
       {},
       {"staging: busy"},
       RunState::kCancelled,
       "staging: busy"},
      {"everything failed",
       Counts(0, 1, 0, 0),
       false,
       {"a.out: full"},
       {"x: busy", "y: busy"},
       RunState::kFailed,
       "1 failed, 0 upstream_failed; a.out: full" + kKept + "; x: busy; y: busy"},
  };
  for (const FinalCase& c : cases) {
    EXPECT_EQ(FinalRunState(c.counts, c.cancelling, !c.write_back_failures.empty(),
                            !c.cleanup_failures.empty()),
              c.state)
        << c.name;
    EXPECT_EQ(
        FinalRunMessage(c.counts, c.cancelling, c.write_back_failures, c.cleanup_failures, "r1"),
        c.message)
        << c.name;
  }
}

TEST(RunCountsTest, CountTaskMovesOneCounterPerState) {
  RunCounts counts;
  counts.total = 2;
  CountTask(counts, TaskState::kPending, +2);
  CountTask(counts, TaskState::kPending, -1);
  CountTask(counts, TaskState::kRunning, +1);
  EXPECT_EQ(counts.pending, 1u);
  EXPECT_EQ(counts.running, 1u);
  CountTask(counts, TaskState::kRunning, -1);
  CountTask(counts, TaskState::kUpstreamFailed, +1);
  CountTask(counts, TaskState::kPending, -1);
  CountTask(counts, TaskState::kCancelled, +1);
  EXPECT_EQ(counts.running, 0u);
  EXPECT_EQ(counts.upstream_failed, 1u);
  EXPECT_EQ(counts.cancelled, 1u);
  EXPECT_EQ(counts.done(), 2u);
}

}  // namespace
}  // namespace tierflow::scheduler
