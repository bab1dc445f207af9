// The store layer behind api/'s views (api_queries.h) on the shared run
// fixture (testing/run_fixture.h), with rows added by SQL where the fixture
// has none (events, profiles, measured waits) and states no tierflow writes.
#include "scheduler/api_queries.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>

#include "common/strings.h"
#include "scheduler/store.h"
#include "scheduler/testing/run_fixture.h"

namespace tierflow::scheduler {
namespace {

using testing::kT0;

constexpr char kFailedRun[] = "quickstart-3f9a1c";
constexpr char kRunningRun[] = "quickstart-c0ffee";

class ApiQueriesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir();
    absl::StatusOr<testing::RunFixture> fixture =
        testing::WriteRunFixture(dir_, testing::DeadPid());
    ASSERT_TRUE(fixture.ok()) << fixture.status();
    fixture_ = *fixture;
    absl::StatusOr<std::unique_ptr<Database>> db = OpenStore(fixture_.db_path);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
  }
  void TearDown() override {
    db_.reset();
    std::filesystem::remove_all(dir_);
  }

  void Sql(const std::string& sql) { ASSERT_TRUE(db_->Execute(sql).ok()) << sql; }

  std::string dir_;
  testing::RunFixture fixture_;
  std::unique_ptr<Database> db_;
};

TEST_F(ApiQueriesTest, GraphTasksComeInPlanOrderWithStatesAndLatestWorker) {
  absl::StatusOr<std::vector<GraphTask>> tasks = ListGraphTasks(*db_, kFailedRun);
  ASSERT_TRUE(tasks.ok()) << tasks.status();
  ASSERT_EQ(tasks->size(), 6u);
  EXPECT_EQ((*tasks)[0].id, "ingest[0]");
  EXPECT_EQ((*tasks)[1].id, "ingest[1]");
  EXPECT_EQ((*tasks)[1].item, "1");
  EXPECT_EQ((*tasks)[1].state, TaskState::kSucceeded);
  EXPECT_EQ((*tasks)[1].attempt_count, 2);
  EXPECT_EQ((*tasks)[1].worker, "local");
  EXPECT_EQ((*tasks)[2].state, TaskState::kCached);
  EXPECT_EQ((*tasks)[4].state, TaskState::kFailed);
  EXPECT_EQ((*tasks)[5].id, "notify");
  EXPECT_EQ((*tasks)[5].state, TaskState::kUpstreamFailed);
  EXPECT_FALSE((*tasks)[5].worker.has_value());  // it never ran
  EXPECT_FALSE((*tasks)[5].started_at_ms.has_value());
}

TEST_F(ApiQueriesTest, UnknownTaskStateIsAnErrorNamingItNotADefault) {
  Sql("UPDATE tasks SET state = 'paused' WHERE run_id = 'quickstart-c0ffee' AND id = 'clean'");
  absl::StatusOr<std::vector<GraphTask>> tasks = ListGraphTasks(*db_, kRunningRun);
  ASSERT_FALSE(tasks.ok());
  EXPECT_EQ(tasks.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(tasks.status().message().find("'paused'"), std::string_view::npos) << tasks.status();
  EXPECT_NE(tasks.status().message().find("task clean of run quickstart-c0ffee"),
            std::string_view::npos)
      << tasks.status();

  absl::StatusOr<RunningTaskStates> running = ListRunningTaskStates(*db_);
  ASSERT_FALSE(running.ok());
  EXPECT_NE(running.status().message().find("'paused'"), std::string_view::npos)
      << running.status();

  absl::StatusOr<StoreStats> stats = ReadStoreStats(*db_);
  ASSERT_FALSE(stats.ok());
  EXPECT_NE(stats.status().message().find("'paused'"), std::string_view::npos) << stats.status();
}

TEST_F(ApiQueriesTest, UnknownRunStateFailsTheStoreStats) {
  Sql("UPDATE runs SET state = 'hibernating' WHERE id = 'quickstart-1a2b3c'");
  absl::StatusOr<StoreStats> stats = ReadStoreStats(*db_);
  ASSERT_FALSE(stats.ok());
  EXPECT_NE(stats.status().message().find("'hibernating'"), std::string_view::npos)
      << stats.status();
}

TEST_F(ApiQueriesTest, StoredPipelineHasTheYamlAndTheParamOverrides) {
  absl::StatusOr<StoredPipeline> stored = GetStoredPipeline(*db_, kFailedRun);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->yaml, "name: quickstart");
  EXPECT_EQ(stored->file, dir_ + "/pipeline.yaml");
  EXPECT_EQ(stored->params, (std::map<std::string, std::string>{{"epochs", "3"}}));
  EXPECT_FALSE(stored->tiers_json.has_value());

  absl::StatusOr<StoredPipeline> missing = GetStoredPipeline(*db_, "nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nope"), std::string_view::npos);
}

TEST_F(ApiQueriesTest, EventsOfATaskWorkerChoicesAndTheFeedsRows) {
  absl::StatusOr<int64_t> none = LatestEventId(*db_);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(*none, 0);
  Sql(
      StrCat("INSERT INTO events(id, run_id, task_id, attempt_id, time, kind, message) VALUES "
             "(1, 'quickstart-3f9a1c', NULL, NULL, ",
             kT0,
             ", 'started', 'run started'), "
             "(2, 'quickstart-3f9a1c', 'train', 11, ",
             kT0 + 1,
             ", 'placed', 'most free slots'), "
             "(3, 'quickstart-3f9a1c', 'train', 11, ",
             kT0 + 2,
             ", 'succeeded', ''), "
             "(4, 'quickstart-3f9a1c', 'train', 99, ",
             kT0 + 3, ", 'placed', 'gone attempt')"));

  absl::StatusOr<std::vector<EventRow>> events = ListTaskEvents(*db_, kFailedRun, "train");
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 3u);
  EXPECT_EQ((*events)[0].id, 2);
  EXPECT_EQ((*events)[1].kind, "succeeded");
  EXPECT_EQ((*events)[1].attempt_id, 11);

  absl::StatusOr<std::vector<WorkerChoice>> choices = ListWorkerChoices(*db_, kFailedRun, "train");
  ASSERT_TRUE(choices.ok()) << choices.status();
  ASSERT_EQ(choices->size(), 2u);
  EXPECT_EQ((*choices)[0].attempt_number, 1);
  EXPECT_EQ((*choices)[0].reason, "most free slots");
  EXPECT_EQ((*choices)[1].attempt_id, 99);
  EXPECT_FALSE((*choices)[1].attempt_number.has_value());  // no such attempt row

  absl::StatusOr<std::vector<EventRow>> after = ListEventsAfter(*db_, 1, 2);
  ASSERT_TRUE(after.ok()) << after.status();
  ASSERT_EQ(after->size(), 2u);  // the limit
  EXPECT_EQ((*after)[0].id, 2);
  EXPECT_EQ((*after)[1].id, 3);
  absl::StatusOr<std::vector<EventRow>> run_event = ListEventsAfter(*db_, 0, 1);
  ASSERT_TRUE(run_event.ok()) << run_event.status();
  ASSERT_EQ(run_event->size(), 1u);
  EXPECT_EQ((*run_event)[0].task_id, "");  // an event of the run itself

  absl::StatusOr<int64_t> newest = LatestEventId(*db_);
  ASSERT_TRUE(newest.ok()) << newest.status();
  EXPECT_EQ(*newest, 4);
}

TEST_F(ApiQueriesTest, RunningTaskStatesCoverOnlyRunningRuns) {
  absl::StatusOr<RunningTaskStates> states = ListRunningTaskStates(*db_);
  ASSERT_TRUE(states.ok()) << states.status();
  ASSERT_EQ(states->size(), 1u);
  const auto& tasks = states->at(kRunningRun);
  EXPECT_EQ(tasks.size(), 6u);
  EXPECT_EQ(tasks.at("ingest[0]"), TaskState::kRunning);
  EXPECT_EQ(tasks.at("ingest[1]"), TaskState::kQueued);
  EXPECT_EQ(tasks.at("notify"), TaskState::kPending);
}

TEST_F(ApiQueriesTest, BytesATaskWroteAndReadByTier) {
  // train of the failed run made model (4096 bytes): its home on local and
  // a working copy on nvme, neither copied from another tier.
  absl::StatusOr<std::map<std::string, int64_t>> written =
      TaskWrittenBytes(*db_, kFailedRun, "train");
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(*written, (std::map<std::string, int64_t>{{"local", 4096}, {"nvme", 4096}}));

  absl::StatusOr<std::vector<InputRead>> reads = TaskInputReads(*db_, kFailedRun, "train");
  ASSERT_TRUE(reads.ok()) << reads.status();
  ASSERT_EQ(reads->size(), 1u);
  EXPECT_EQ((*reads)[0].input, "clean");
  EXPECT_EQ((*reads)[0].bytes, 65536);
  EXPECT_EQ((*reads)[0].first_tier, "local");

  // A cached attempt ran nothing: it read and wrote nothing.
  absl::StatusOr<std::vector<InputRead>> cached = TaskInputReads(*db_, kFailedRun, "clean");
  ASSERT_TRUE(cached.ok()) << cached.status();
  EXPECT_TRUE(cached->empty());
}

TEST_F(ApiQueriesTest, MeasuredDataWaitsReplaceDerivedOnes) {
  absl::StatusOr<bool> measured = DataWaitMeasured(*db_, kFailedRun, "train");
  ASSERT_TRUE(measured.ok()) << measured.status();
  EXPECT_FALSE(*measured);
  Sql("UPDATE attempts SET input_wait_ms = 1500, data_wait_ms = 500 WHERE id = 11");
  measured = DataWaitMeasured(*db_, kFailedRun, "train");
  ASSERT_TRUE(measured.ok()) << measured.status();
  EXPECT_TRUE(*measured);

  absl::StatusOr<std::map<TaskKey, double>> waits = DataWaitSeconds(*db_, kFailedRun);
  ASSERT_TRUE(waits.ok()) << waits.status();
  ASSERT_EQ(waits->count({kFailedRun, "train"}), 1u);
  EXPECT_DOUBLE_EQ(waits->at({kFailedRun, "train"}), 2.0);
  for (const auto& [key, seconds] : *waits) EXPECT_EQ(key.first, kFailedRun);

  absl::StatusOr<std::map<TaskKey, double>> every = DataWaitSeconds(*db_, "");
  ASSERT_TRUE(every.ok()) << every.status();
  EXPECT_DOUBLE_EQ(every->at({kFailedRun, "train"}), 2.0);
}

TEST_F(ApiQueriesTest, PresentCopiesByTierLeaveOutEvictedOnes) {
  absl::StatusOr<std::map<std::string, TierUsage>> usage = PresentCopiesByTier(*db_);
  ASSERT_TRUE(usage.ok()) << usage.status();
  ASSERT_EQ(usage->size(), 1u);  // nvme's one copy is evicted
  EXPECT_EQ(usage->at("local").copies, 9);
  EXPECT_EQ(usage->at("local").bytes, 2 * (16384 + 16384 + 65536 + 4096) + 512);
}

TEST_F(ApiQueriesTest, NewestTierProfileOfEachTierIsTheLastRecorded) {
  TierProfileRow old_probe;
  old_probe.tier = "nvme";
  old_probe.location = "/mnt/nvme";
  old_probe.measured_at_ms = kT0;
  old_probe.profile = {100, 50, 1000, 80};
  TierProfileRow new_probe = old_probe;
  new_probe.measured_at_ms = kT0 + 1000;
  new_probe.profile = {2000, 1500, 90000, 20};
  new_probe.create_us = 35;
  new_probe.stat_us = 2.5;
  new_probe.bytes_tested = 1 << 20;
  new_probe.elapsed_ms = 700;
  TierProfileRow other = old_probe;
  other.tier = "local";
  ASSERT_TRUE(RecordTierProfile(*db_, new_probe).ok());
  ASSERT_TRUE(RecordTierProfile(*db_, old_probe).ok());  // older, recorded later
  ASSERT_TRUE(RecordTierProfile(*db_, other).ok());

  absl::StatusOr<std::map<std::string, TierProfileRow>> newest = NewestTierProfiles(*db_);
  ASSERT_TRUE(newest.ok()) << newest.status();
  ASSERT_EQ(newest->size(), 2u);
  const TierProfileRow& nvme = newest->at("nvme");
  EXPECT_EQ(nvme.measured_at_ms, kT0 + 1000);
  EXPECT_DOUBLE_EQ(nvme.profile.seq_read_mb_s, 2000);
  EXPECT_DOUBLE_EQ(nvme.profile.latency_us, 20);
  EXPECT_DOUBLE_EQ(nvme.create_us, 35);
  EXPECT_DOUBLE_EQ(nvme.stat_us, 2.5);
  EXPECT_EQ(nvme.bytes_tested, 1 << 20);
  EXPECT_EQ(nvme.elapsed_ms, 700);
  EXPECT_EQ(nvme.location, "/mnt/nvme");
  EXPECT_EQ(newest->at("local").measured_at_ms, kT0);
}

TEST_F(ApiQueriesTest, StoreStatsCountRunsTasksQueueAndCopies) {
  absl::StatusOr<StoreStats> stats = ReadStoreStats(*db_);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->runs,
            (std::map<RunState, int64_t>{
                {RunState::kRunning, 1}, {RunState::kSucceeded, 1}, {RunState::kFailed, 1}}));
  EXPECT_EQ(stats->queue_depth, 1);  // ingest[1] of the running run
  int64_t tasks = 0;
  int64_t upstream_failed = 0;
  for (const StoreStats::TaskCount& count : stats->tasks) {
    tasks += count.count;
    if (count.state == TaskState::kUpstreamFailed) upstream_failed += count.count;
  }
  EXPECT_EQ(tasks, 18);
  EXPECT_EQ(upstream_failed, 1);
  // Finished attempts that ran: 6 + 6 of the first two runs (the cached
  // clean and the running ingest[0] are left out).
  EXPECT_EQ(stats->attempt_times.size(), 12u);
  int64_t written = 0;
  for (const StoreStats::CopiedBytes& copy : stats->copied) {
    EXPECT_FALSE(copy.source_tier.has_value());
    if (copy.tier == "local") written += copy.bytes;
  }
  EXPECT_EQ(written, 2 * (16384 + 16384 + 65536 + 4096) + 512);
  EXPECT_TRUE(stats->transfers.empty());  // nothing was copied between tiers
}

// A store's cluster id is made once: the first server's fresh id stays,
// whatever id a later server would have made.
TEST_F(ApiQueriesTest, ClusterIdIsMadeOnceAndKept) {
  absl::StatusOr<std::string> first = EnsureClusterId(*db_, "aaaa0000aaaa0000");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, "aaaa0000aaaa0000");
  absl::StatusOr<std::string> again = EnsureClusterId(*db_, "bbbb1111bbbb1111");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, "aaaa0000aaaa0000");
}

TEST_F(ApiQueriesTest, SupervisedResumeIsRecordedAsARunEvent) {
  ASSERT_TRUE(RecordRunSupervised(*db_, kFailedRun, "its engine stopped: disk full").ok());
  absl::StatusOr<Statement> read =
      db_->Prepare("SELECT message FROM events WHERE run_id = ? AND kind = 'run_supervised'");
  ASSERT_TRUE(read.ok()) << read.status();
  read->Bind(1, kFailedRun);
  ASSERT_TRUE(read->Step().value_or(false));
  EXPECT_EQ(read->Text(0), "the server resumed it: its engine stopped: disk full");
  EXPECT_FALSE(read->Step().value_or(true));
}

}  // namespace
}  // namespace tierflow::scheduler
