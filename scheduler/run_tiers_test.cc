// What a run keeps where (run_tiers.h) on the shared run fixture
// (testing/run_fixture.h), with checkpoints, a recorded tier list and states
// no tierflow writes added by SQL.
#include "scheduler/run_tiers.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>

#include "scheduler/run_queries.h"
#include "scheduler/store.h"
#include "scheduler/testing/run_fixture.h"

namespace tierflow::scheduler {
namespace {

constexpr char kFailedRun[] = "quickstart-3f9a1c";

class RunTiersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir();
    absl::StatusOr<testing::RunFixture> fixture =
        testing::WriteRunFixture(dir_, testing::DeadPid());
    ASSERT_TRUE(fixture.ok()) << fixture.status();
    absl::StatusOr<std::unique_ptr<Database>> db = OpenStore(fixture->db_path);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
  }
  void TearDown() override {
    db_.reset();
    std::filesystem::remove_all(dir_);
  }

  void Sql(const std::string& sql) { ASSERT_TRUE(db_->Execute(sql).ok()) << sql; }

  // A checkpoint of train (attempt 11) in the failed run.
  void Checkpoint(int step, const std::string& tier, const std::string& state, int64_t bytes) {
    Sql("INSERT INTO checkpoints(run_id, task_id, attempt_id, name, step, local_uri, tier, uri, "
        "bytes, files, content_hash, state, committed_at, flushed_at, flush_ms, message) VALUES "
        "('quickstart-3f9a1c', 'train', 11, 'step-" +
        std::to_string(step) + "', " + std::to_string(step) + ", '/fast/step', '" + tier +
        "', '/durable/step', " + std::to_string(bytes) + ", 2, 'xxh3:00', '" + state + "', " +
        std::to_string(1000 + step) + ", " + std::to_string(1010 + step) + ", 7, '')");
  }

  std::string dir_;
  std::unique_ptr<Database> db_;
};

TEST_F(RunTiersTest, ARunWithoutRecordedTiersUsedTheImplicitOneInTheStateFolder) {
  absl::StatusOr<std::vector<storage::TierConfig>> tiers =
      RecordedRunTiers(*db_, kFailedRun, "/state");
  ASSERT_TRUE(tiers.ok()) << tiers.status();
  ASSERT_EQ(tiers->size(), 1u);
  EXPECT_EQ((*tiers)[0].name, "local");
  EXPECT_EQ((*tiers)[0].adapter, "posix");
  EXPECT_EQ((*tiers)[0].root, "/state");
}

TEST_F(RunTiersTest, UsageCountsPresentHomesEvictedCopiesAndFlushedCheckpointsPerTier) {
  Checkpoint(1, "bulk", "deleted", 50);
  Checkpoint(2, "bulk", "present", 100);
  Checkpoint(3, "bulk", "present", 120);
  Checkpoint(4, "bulk", "flushing", 130);
  absl::StatusOr<std::vector<RunTierUse>> uses = RunTierUsage(*db_, kFailedRun, "/state");
  ASSERT_TRUE(uses.ok()) << uses.status();
  ASSERT_EQ(uses->size(), 3u);
  const RunTierUse& local = (*uses)[0];  // the recorded tiers first
  EXPECT_EQ(local.name, "local");
  EXPECT_TRUE(local.recorded);
  EXPECT_EQ(local.location, "/state");
  EXPECT_EQ(local.outputs, 4);  // ingest[0], ingest[1], clean, train
  EXPECT_EQ(local.home_bytes, 16384 + 16384 + 65536 + 4096);
  EXPECT_EQ(local.copies, 0);
  EXPECT_EQ(local.bytes, local.home_bytes);
  // Then the tiers only copies name, then those only checkpoints name.
  const RunTierUse& bulk = (*uses)[2];
  EXPECT_EQ(bulk.name, "bulk");
  EXPECT_FALSE(bulk.recorded);
  EXPECT_EQ(bulk.checkpoints, 2);  // present only
  EXPECT_EQ(bulk.checkpoint_bytes, 220);
  EXPECT_EQ(bulk.bytes, 220);
  const RunTierUse& nvme = (*uses)[1];
  EXPECT_EQ(nvme.name, "nvme");
  EXPECT_EQ(nvme.evicted, 1);
  EXPECT_EQ(nvme.copies, 0);
  EXPECT_EQ(nvme.working_bytes, 0);
}

TEST_F(RunTiersTest, PresentWorkingCopiesCountApartFromHomes) {
  Sql("UPDATE artifact_copies SET state = 'present' WHERE tier = 'nvme'");
  absl::StatusOr<std::vector<RunTierUse>> uses = RunTierUsage(*db_, kFailedRun, "/state");
  ASSERT_TRUE(uses.ok()) << uses.status();
  ASSERT_EQ(uses->size(), 2u);
  EXPECT_EQ((*uses)[1].name, "nvme");
  EXPECT_EQ((*uses)[1].copies, 1);
  EXPECT_EQ((*uses)[1].working_bytes, 4096);
  EXPECT_EQ((*uses)[1].outputs, 0);
}

TEST_F(RunTiersTest, AnUnknownCopyStateIsDataLossNotADefault) {
  Sql("UPDATE artifact_copies SET state = 'teleported' WHERE tier = 'nvme'");
  absl::StatusOr<std::vector<RunTierUse>> uses = RunTierUsage(*db_, kFailedRun, "/state");
  ASSERT_FALSE(uses.ok());
  EXPECT_EQ(uses.status().code(), absl::StatusCode::kDataLoss) << uses.status();
  EXPECT_NE(uses.status().message().find("teleported"), std::string::npos) << uses.status();
}

TEST_F(RunTiersTest, AMissingRunIsNotFound) {
  absl::StatusOr<std::vector<RunTierUse>> uses = RunTierUsage(*db_, "nope", "/state");
  ASSERT_FALSE(uses.ok());
  EXPECT_EQ(uses.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(RunTiersTest, CheckpointsComeByStepWithEveryColumn) {
  Checkpoint(3, "bulk", "present", 120);
  Checkpoint(1, "bulk", "deleted", 50);
  absl::StatusOr<std::vector<CheckpointRow>> list = ListRunCheckpoints(*db_, kFailedRun);
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].step, 1);
  EXPECT_EQ((*list)[0].state, "deleted");
  const CheckpointRow& last = (*list)[1];
  EXPECT_EQ(last.task_id, "train");
  EXPECT_EQ(last.attempt, 1);  // attempt 11 is train's first
  EXPECT_EQ(last.local_uri, "/fast/step");
  EXPECT_EQ(last.tier, "bulk");
  EXPECT_EQ(last.files, 2);
  EXPECT_EQ(last.committed_at_ms, 1003);
  EXPECT_EQ(last.flushed_at_ms, 1013);
  EXPECT_EQ(last.flush_ms, 7);
  EXPECT_TRUE(ListRunCheckpoints(*db_, "quickstart-1a2b3c")->empty());
}

}  // namespace
}  // namespace tierflow::scheduler
