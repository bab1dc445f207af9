#include "scheduler/watch_queries.h"

#include <gtest/gtest.h>

#include "scheduler/run_queries.h"
#include "scheduler/testing/run_fixture.h"

namespace tierflow::scheduler {
namespace {

// The light read says of every task what the full detail says of it.
TEST(WatchQueriesTest, AgreesWithTheRunDetail) {
  const std::string dir = testing::MakeTempDir();
  absl::StatusOr<testing::RunFixture> fixture = testing::WriteRunFixture(dir, 1);
  ASSERT_TRUE(fixture.ok()) << fixture.status();
  absl::StatusOr<std::unique_ptr<Database>> db = OpenStore(fixture->db_path);
  ASSERT_TRUE(db.ok()) << db.status();
  for (const std::string run : {"quickstart-1a2b3c", "quickstart-3f9a1c", "quickstart-c0ffee"}) {
    absl::StatusOr<RunDetail> detail = GetRunDetail(**db, run, testing::kT0);
    ASSERT_TRUE(detail.ok()) << detail.status();
    absl::StatusOr<std::vector<WatchedTask>> watched = ReadWatchedTasks(**db, run);
    ASSERT_TRUE(watched.ok()) << watched.status();
    ASSERT_EQ(watched->size(), detail->tasks.size()) << run;
    for (size_t i = 0; i < watched->size(); ++i) {
      const TaskRow& row = detail->tasks[i];
      const WatchedTask& task = (*watched)[i];
      EXPECT_EQ(task.id, row.id) << run;
      EXPECT_EQ(task.state, row.state) << run << " " << row.id;
      EXPECT_EQ(task.attempts, row.attempt_count) << run << " " << row.id;
      EXPECT_EQ(task.worker, row.attempts.empty() ? "" : row.attempts.back().worker)
          << run << " " << row.id;
      EXPECT_EQ(task.message, row.message) << run << " " << row.id;
    }
  }
  // publish of the failed run: two attempts, the latest's worker.
  absl::StatusOr<std::vector<WatchedTask>> failed = ReadWatchedTasks(**db, "quickstart-3f9a1c");
  ASSERT_TRUE(failed.ok());
  bool found = false;
  for (const WatchedTask& task : *failed) {
    if (task.id != "publish") continue;
    found = true;
    EXPECT_EQ(task.attempts, 2);
    EXPECT_EQ(task.state, TaskState::kFailed);
  }
  EXPECT_TRUE(found);
}

TEST(WatchQueriesTest, UnknownRunHasNoTasks) {
  const std::string dir = testing::MakeTempDir();
  absl::StatusOr<testing::RunFixture> fixture = testing::WriteRunFixture(dir, 1);
  ASSERT_TRUE(fixture.ok()) << fixture.status();
  absl::StatusOr<std::unique_ptr<Database>> db = OpenStore(fixture->db_path);
  ASSERT_TRUE(db.ok()) << db.status();
  absl::StatusOr<std::vector<WatchedTask>> watched = ReadWatchedTasks(**db, "no-such-run");
  ASSERT_TRUE(watched.ok()) << watched.status();
  EXPECT_TRUE(watched->empty());
}

}  // namespace
}  // namespace tierflow::scheduler
