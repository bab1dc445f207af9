#include "scheduler/progress_queries.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "scheduler/store.h"
#include "scheduler/testing/run_fixture.h"

namespace tierflow::scheduler {
namespace {

using testing::kT0;

class ProgressQueriesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir();
    auto fixture = testing::WriteRunFixture(dir_, testing::DeadPid());
    ASSERT_TRUE(fixture.ok()) << fixture.status();
    fixture_ = *fixture;
    auto db = OpenStoreReadOnly(fixture_.db_path);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
  }
  void TearDown() override {
    db_.reset();
    writer_.reset();
    std::filesystem::remove_all(dir_);
  }
  Database& Writer() {
    if (!writer_) writer_ = *OpenStore(fixture_.db_path);
    return *writer_;
  }
  std::string dir_;
  testing::RunFixture fixture_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<Database> writer_;
};

TEST_F(ProgressQueriesTest, CountsEachStageOnceInPlanOrderWithTheRunsState) {
  auto progress = GetRunProgress(*db_, "quickstart-3f9a1c", {});
  ASSERT_TRUE(progress.ok()) << progress.status();
  EXPECT_EQ(progress->state, RunState::kFailed);
  EXPECT_EQ(progress->pipeline, "quickstart");
  EXPECT_EQ(progress->counts.total, 6u);
  EXPECT_EQ(progress->counts.failed, 1u);
  EXPECT_EQ(progress->counts.upstream_failed, 1u);
  EXPECT_EQ(progress->counts.cached, 1u);
  ASSERT_EQ(progress->stages.size(), 5u);  // ingest's two items are one stage
  EXPECT_EQ(progress->stages[0].stage, "ingest");
  EXPECT_EQ(progress->stages[0].counts.total, 2u);
  EXPECT_EQ(progress->stages[0].counts.succeeded, 2u);
  EXPECT_EQ(progress->stages[1].stage, "clean");
  EXPECT_EQ(progress->stages[1].counts.cached, 1u);
  EXPECT_EQ(progress->stages[3].stage, "publish");
  EXPECT_EQ(progress->stages[3].counts.failed, 1u);
  EXPECT_EQ(progress->stages[4].stage, "notify");
  EXPECT_EQ(progress->stages[4].counts.upstream_failed, 1u);
  EXPECT_TRUE(progress->running.empty());
}

TEST_F(ProgressQueriesTest, ListsRunningTasksAndTheEngineOfALiveRun) {
  auto progress = GetRunProgress(*db_, "quickstart-c0ffee", {});
  ASSERT_TRUE(progress.ok()) << progress.status();
  EXPECT_EQ(progress->state, RunState::kRunning);
  EXPECT_EQ(progress->engine, EngineStatus::kGone);  // DeadPid
  ASSERT_EQ(progress->running.size(), 1u);
  EXPECT_EQ(progress->running[0].task_id, "ingest[0]");
  EXPECT_GT(progress->running[0].started_at_ms, kT0);
}

TEST_F(ProgressQueriesTest, ADataWaitLastsUntilDataReady) {
  const std::string run = "quickstart-c0ffee";
  ASSERT_TRUE(Writer()
                  .Execute("UPDATE tasks SET state = 'queued' WHERE run_id = 'quickstart-c0ffee' "
                           "AND id = 'ingest[1]'; INSERT INTO events(run_id, task_id, time, kind, "
                           "message) VALUES ('quickstart-c0ffee', 'ingest[1]', 1, 'data_wait', "
                           "'waiting')")
                  .ok());
  auto waiting = GetRunProgress(*db_, run, {});
  ASSERT_TRUE(waiting.ok()) << waiting.status();
  EXPECT_EQ(waiting->data_waits_total, 1u);
  ASSERT_EQ(waiting->data_waits.size(), 1u);
  EXPECT_EQ(waiting->data_waits[0], "ingest[1]");
  ASSERT_TRUE(Writer()
                  .Execute("INSERT INTO events(run_id, task_id, time, kind, message) VALUES "
                           "('quickstart-c0ffee', 'ingest[1]', 2, 'data_ready', 'ready')")
                  .ok());
  auto ready = GetRunProgress(*db_, run, {});
  ASSERT_TRUE(ready.ok()) << ready.status();
  EXPECT_EQ(ready->data_waits_total, 0u);
}

TEST_F(ProgressQueriesTest, CopiesInFlightAreTheRunsCopyingCopies) {
  // Artifact 9 is quickstart-3f9a1c's train/model.
  ASSERT_TRUE(Writer()
                  .Execute("INSERT INTO artifact_copies(artifact_id, tier, uri, role, bytes, "
                           "content_hash, state, created_at) VALUES (9, 'bulk', '/x', 'home', "
                           "4096, '', 'copying', 5)")
                  .ok());
  auto progress = GetRunProgress(*db_, "quickstart-3f9a1c", {});
  ASSERT_TRUE(progress.ok()) << progress.status();
  EXPECT_EQ(progress->copies_total, 1u);
  ASSERT_EQ(progress->copies.size(), 1u);
  EXPECT_EQ(progress->copies[0].task_id, "train");
  EXPECT_EQ(progress->copies[0].output, "model");
  EXPECT_EQ(progress->copies[0].tier, "bulk");
  EXPECT_EQ(progress->copies[0].bytes, 4096);
  auto other = GetRunProgress(*db_, "quickstart-1a2b3c", {});
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(other->copies_total, 0u);
}

TEST_F(ProgressQueriesTest, UnknownRunIsNotFound) {
  auto progress = GetRunProgress(*db_, "nosuch", {});
  EXPECT_EQ(progress.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace tierflow::scheduler
