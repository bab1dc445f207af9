#include "scheduler/stage_times.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "common/strings.h"
#include "scheduler/store.h"
#include "scheduler/testing/run_fixture.h"

namespace tierflow::scheduler {
namespace {

using testing::kT0;

class StageTimesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir();
    auto fixture = testing::WriteRunFixture(dir_, testing::DeadPid());
    ASSERT_TRUE(fixture.ok()) << fixture.status();
    auto db = OpenStore(fixture->db_path);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
  }
  void TearDown() override {
    db_.reset();
    std::filesystem::remove_all(dir_);
  }

  // One more attempt of quickstart-3f9a1c's train, `ms` long.
  void AddTrainAttempt(int64_t number, const char* state, int64_t ms, bool reused) {
    auto insert = db_->Prepare(
        "INSERT INTO attempts(run_id, task_id, number, state, worker, command, cached_from, "
        "started_at, finished_at, log_path) VALUES ('quickstart-3f9a1c', 'train', ?, ?, 'local', "
        "'{}', ?, ?, ?, '')");
    ASSERT_TRUE(insert.ok()) << insert.status();
    const int64_t start = kT0 + 7200 * 1000 + number * 1000;
    insert->Bind(1, number).Bind(2, state).Bind(5, start + ms).Bind(4, start);
    if (reused) {
      insert->Bind(3, int64_t{4});
    } else {
      insert->BindNull(3);
    }
    ASSERT_TRUE(insert->Run().ok());
  }

  std::string dir_;
  std::unique_ptr<Database> db_;
};

// The fixture's train ran 10 s (first run) and 30 s (second run).
TEST_F(StageTimesTest, MedianOfEarlierSucceededAttemptsThatRan) {
  AddTrainAttempt(2, "succeeded", 2000, false);
  AddTrainAttempt(3, "succeeded", 4000, false);
  AddTrainAttempt(4, "failed", 500, false);     // did not succeed: not counted
  AddTrainAttempt(5, "timed_out", 500, false);  // likewise
  AddTrainAttempt(6, "cached", 100, true);      // reused: nothing ran
  AddTrainAttempt(7, "succeeded", 100, true);   // reused from attempt 4
  auto medians = MedianStageTimes(*db_, "quickstart", "quickstart-c0ffee");
  ASSERT_TRUE(medians.ok()) << medians.status();
  // 2, 4, 10, 30 s: the lower median.
  EXPECT_EQ(medians->at("train"), std::chrono::seconds(4));
  EXPECT_EQ(medians->at("ingest"), std::chrono::seconds(10));
  // The second run's clean reused the first's: only the first's counts.
  EXPECT_EQ(medians->at("clean"), std::chrono::seconds(10));
  EXPECT_EQ(medians->at("publish"), std::chrono::seconds(10));
}

// On Slurm the recorded start and end include the job's queueing: the
// command's own run time, where its executor measured it, counts instead.
TEST_F(StageTimesTest, PrefersTheRunTimeTheExecutorMeasured) {
  AddTrainAttempt(2, "succeeded", 60000, false);  // a minute from dispatch to end
  AddTrainAttempt(3, "succeeded", 60000, false);
  AddTrainAttempt(4, "succeeded", 60000, false);
  ASSERT_TRUE(db_->Execute("UPDATE attempts SET ran_ms = 50 WHERE run_id = 'quickstart-3f9a1c' "
                           "AND task_id = 'train' AND number >= 2")
                  .ok());
  auto medians = MedianStageTimes(*db_, "quickstart", "quickstart-c0ffee");
  ASSERT_TRUE(medians.ok()) << medians.status();
  // 50 ms, 50 ms, 50 ms, 10 s, 30 s: not a minute.
  EXPECT_EQ(medians->at("train"), std::chrono::milliseconds(50));
}

TEST_F(StageTimesTest, LeavesOutTheRunItselfAndOtherPipelines) {
  auto medians = MedianStageTimes(*db_, "quickstart", "quickstart-3f9a1c");
  ASSERT_TRUE(medians.ok()) << medians.status();
  EXPECT_EQ(medians->at("train"), std::chrono::seconds(10));  // not the 30 s of 3f9a1c
  auto other = MedianStageTimes(*db_, "digits", "");
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_TRUE(other->empty());
}

}  // namespace
}  // namespace tierflow::scheduler
