#include "scheduler/gc.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/strings.h"
#include "scheduler/store.h"
#include "scheduler/testing/run_fixture.h"
#include "storage_adapters/posix.h"

namespace tierflow::scheduler {
namespace {
namespace fs = std::filesystem;
using std::chrono::milliseconds;

constexpr int64_t kHour = 3600 * 1000;
constexpr int64_t kDay = 24 * kHour;

GcRun Finished(const std::string& id, const std::string& pipeline, int64_t created) {
  GcRun run;
  run.id = id;
  run.pipeline = pipeline;
  run.state = RunState::kSucceeded;
  run.created_at = created;
  run.finished_at = created + 1000;
  return run;
}

GcOptions Rules(std::optional<int> keep_last, std::optional<int64_t> older_than_ms = {},
                bool dry_run = false) {
  GcOptions options;
  options.keep_last = keep_last;
  if (older_than_ms) options.older_than = milliseconds(*older_than_ms);
  options.dry_run = dry_run;
  return options;
}

const GcVerdict& VerdictOf(const std::vector<GcVerdict>& verdicts, const std::string& run) {
  for (const GcVerdict& verdict : verdicts) {
    if (verdict.run_id == run) return verdict;
  }
  static const GcVerdict kNone{.run_id = "none", .collect = false, .reason = "no verdict"};
  ADD_FAILURE() << "no verdict for " << run;
  return kNone;
}

TEST(GcAge, ParsesUnitsAndRejectsTheRest) {
  EXPECT_EQ(*ParseGcAge("7d"), milliseconds(7 * kDay));
  EXPECT_EQ(*ParseGcAge("12h"), milliseconds(12 * kHour));
  EXPECT_EQ(*ParseGcAge("30m"), milliseconds(30 * 60 * 1000));
  EXPECT_EQ(*ParseGcAge("45s"), milliseconds(45 * 1000));
  for (const char* bad : {"", "7", "d", "7w", "-1d", "1.5h", "7 d", "9999999999d"}) {
    absl::StatusOr<milliseconds> age = ParseGcAge(bad);
    ASSERT_FALSE(age.ok()) << bad;
    EXPECT_NE(age.status().message().find(StrCat("'", bad, "'")), std::string::npos)
        << age.status();
  }
}

TEST(GcDecision, KeepsTheNewestRunsOfEachPipeline) {
  const std::vector<GcRun> runs = {Finished("a-1", "a", 1), Finished("a-2", "a", 2),
                                   Finished("a-3", "a", 3), Finished("b-1", "b", 1)};
  const std::vector<GcVerdict> verdicts = DecideGc(runs, Rules(2), 10 * kDay);
  ASSERT_EQ(verdicts.size(), 4u);
  EXPECT_TRUE(VerdictOf(verdicts, "a-1").collect) << VerdictOf(verdicts, "a-1").reason;
  EXPECT_FALSE(VerdictOf(verdicts, "a-2").collect);
  EXPECT_FALSE(VerdictOf(verdicts, "a-3").collect);
  EXPECT_FALSE(VerdictOf(verdicts, "b-1").collect);  // the newest of its own pipeline
  EXPECT_EQ(VerdictOf(verdicts, "a-3").reason, "one of the 2 newest runs of a");
}

TEST(GcDecision, OlderThanCountsFromTheEndAndBothRulesMustAgree) {
  const int64_t now = 10 * kDay;
  const std::vector<GcRun> runs = {Finished("a-1", "a", now - 9 * kDay),
                                   Finished("a-2", "a", now - 8 * kDay),
                                   Finished("a-3", "a", now - kHour)};
  std::vector<GcVerdict> verdicts = DecideGc(runs, Rules(std::nullopt, kDay), now);
  EXPECT_TRUE(VerdictOf(verdicts, "a-1").collect);
  EXPECT_TRUE(VerdictOf(verdicts, "a-2").collect);
  EXPECT_FALSE(VerdictOf(verdicts, "a-3").collect);
  // a-2 is old enough but among the 2 newest: kept.
  verdicts = DecideGc(runs, Rules(2, kDay), now);
  EXPECT_TRUE(VerdictOf(verdicts, "a-1").collect);
  EXPECT_FALSE(VerdictOf(verdicts, "a-2").collect);
  EXPECT_FALSE(VerdictOf(verdicts, "a-3").collect);
}

TEST(GcDecision, NeverTakesUnfinishedDrivenOrCollectedRunsNorAPipelineWithALiveRun) {
  std::vector<GcRun> runs = {Finished("a-1", "a", 1), Finished("a-2", "a", 2),
                             Finished("b-1", "b", 1), Finished("b-2", "b", 2),
                             Finished("c-1", "c", 1)};
  runs[1].state = RunState::kRunning;  // a live run of pipeline a
  runs[2].engine_alive = true;         // a finished run an engine still holds
  runs[4].gc_state = "done";
  const std::vector<GcVerdict> verdicts = DecideGc(runs, Rules(0), 10 * kDay);
  ASSERT_EQ(verdicts.size(), 4u);  // c-1 was collected already
  EXPECT_FALSE(VerdictOf(verdicts, "a-1").collect);
  EXPECT_NE(VerdictOf(verdicts, "a-1").reason.find("run a-2 of pipeline a is not finished"),
            std::string::npos)
      << VerdictOf(verdicts, "a-1").reason;
  EXPECT_EQ(VerdictOf(verdicts, "a-2").reason, "not finished");
  EXPECT_EQ(VerdictOf(verdicts, "b-1").reason, "an engine still drives it");
  EXPECT_TRUE(VerdictOf(verdicts, "b-2").collect);
}

TEST(GcReferences, FoldersHoldWhatIsUnderThem) {
  const std::set<std::string> referenced = {"/t/runs/r/artifacts/clean/clean"};
  EXPECT_TRUE(IsReferenced(referenced, "/t/runs/r/artifacts/clean/clean"));
  EXPECT_TRUE(IsReferenced(referenced, "/t/runs/r/artifacts/clean/clean/part-1"));
  EXPECT_FALSE(IsReferenced(referenced, "/t/runs/r/artifacts/clean/cleaner"));
  EXPECT_FALSE(IsReferenced(referenced, "/t/runs/r/artifacts/clean"));
}

class GcStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir();
    auto fixture = testing::WriteRunFixture(dir_, testing::DeadPid());
    ASSERT_TRUE(fixture.ok()) << fixture.status();
    db_path_ = fixture->db_path;
    // The first run's artifacts on its (implicit) tier, the state folder.
    for (const auto& [path, bytes] :
         std::vector<std::pair<std::string, size_t>>{{"ingest/raw/0", 100},
                                                     {"ingest/raw/1", 200},
                                                     {"clean/clean", 300},
                                                     {"train/model", 400},
                                                     {"publish/report", 500}}) {
      const fs::path file = Artifact("quickstart-1a2b3c", path);
      fs::create_directories(file.parent_path());
      std::ofstream(file, std::ios::binary) << std::string(bytes, 'x');
    }
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path Artifact(const std::string& run, const std::string& path) const {
    return fs::path(dir_) / "runs" / run / "artifacts" / path;
  }
  std::string Query(const std::string& sql) {
    auto db = OpenStore(db_path_);
    EXPECT_TRUE(db.ok()) << db.status();
    auto statement = (*db)->Prepare(sql);
    EXPECT_TRUE(statement.ok()) << statement.status();
    auto row = statement->Step();
    return row.ok() && *row ? statement->Text(0) : "";
  }
  void Execute(const std::string& sql) {
    auto db = OpenStore(db_path_);
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)->Execute(sql).ok());
  }
  uint64_t LogBytes(const std::string& run) const {
    uint64_t bytes = 0;
    for (const auto& entry : fs::recursive_directory_iterator(fs::path(dir_) / "runs" / run)) {
      if (entry.is_regular_file() && entry.path().string().find("/logs/") != std::string::npos) {
        bytes += entry.file_size();
      }
    }
    return bytes;
  }

  std::string dir_;
  std::string db_path_;
};

TEST_F(GcStoreTest, AnUnfinishedRunKeepsItsPipelinesRuns) {
  auto report = CollectGarbage(db_path_, Rules(0), storage::OpenPosixTier);
  ASSERT_TRUE(report.ok()) << report.status();
  for (const GcVerdict& verdict : report->verdicts) EXPECT_FALSE(verdict.collect) << verdict.run_id;
  EXPECT_TRUE(fs::exists(Artifact("quickstart-1a2b3c", "ingest/raw/0")));
  EXPECT_EQ(Query("SELECT count(*) FROM gc_runs"), "0");
}

TEST_F(GcStoreTest, DeletesAnOldRunButWhatAKeptRunsCacheEntryReuses) {
  Execute("UPDATE runs SET state = 'failed' WHERE id = 'quickstart-c0ffee'");
  const uint64_t logs = LogBytes("quickstart-1a2b3c");
  ASSERT_GT(logs, 0u);
  // Dry run first: the same report, nothing changed.
  auto dry = CollectGarbage(db_path_, Rules(2, std::nullopt, true), storage::OpenPosixTier);
  ASSERT_TRUE(dry.ok()) << dry.status();
  EXPECT_TRUE(VerdictOf(dry->verdicts, "quickstart-1a2b3c").collect);
  EXPECT_TRUE(fs::exists(Artifact("quickstart-1a2b3c", "ingest/raw/0")));
  EXPECT_EQ(Query("SELECT count(*) FROM gc_runs"), "0");

  auto report = CollectGarbage(db_path_, Rules(2), storage::OpenPosixTier);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(VerdictOf(report->verdicts, "quickstart-1a2b3c").collect);
  EXPECT_FALSE(VerdictOf(report->verdicts, "quickstart-3f9a1c").collect);
  EXPECT_FALSE(VerdictOf(report->verdicts, "quickstart-c0ffee").collect);
  EXPECT_TRUE(report->problems.empty());
  // Every file but clean/clean (quickstart-3f9a1c's clean reused it), logs included.
  EXPECT_EQ(report->bytes.at("local"), 100u + 200 + 400 + 500 + logs);
  EXPECT_EQ(dry->bytes, report->bytes);
  EXPECT_FALSE(fs::exists(Artifact("quickstart-1a2b3c", "ingest/raw/0")));
  EXPECT_FALSE(fs::exists(Artifact("quickstart-1a2b3c", "publish/report")));
  EXPECT_TRUE(fs::exists(Artifact("quickstart-1a2b3c", "clean/clean")));
  EXPECT_TRUE(fs::exists(fs::path(dir_) / "runs" / "quickstart-3f9a1c"));
  EXPECT_EQ(Query("SELECT state FROM gc_runs WHERE run_id = 'quickstart-1a2b3c'"), "done");
  EXPECT_EQ(Query("SELECT group_concat(x) FROM (SELECT a.id || ':' || c.state AS x FROM "
                  "artifact_copies c JOIN artifacts a ON a.id = c.artifact_id WHERE "
                  "a.run_id = 'quickstart-1a2b3c' ORDER BY a.id)"),
            "1:evicted,2:evicted,3:present,4:evicted,5:evicted");
  // The run row stays, for lineage; a second gc has nothing to do.
  EXPECT_EQ(Query("SELECT state FROM runs WHERE id = 'quickstart-1a2b3c'"), "succeeded");
  auto again = CollectGarbage(db_path_, Rules(2), storage::OpenPosixTier);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->bytes.empty());
}

TEST_F(GcStoreTest, ASecondGcFinishesWhatAStoppedOneStarted) {
  Execute("UPDATE runs SET state = 'failed' WHERE id = 'quickstart-c0ffee'");
  // What a gc killed after recording its intent leaves.
  Execute(
      "INSERT INTO gc_runs(run_id, state, reason, started_at) VALUES ('quickstart-1a2b3c', "
      "'deleting', 'test', 1)");
  auto report = CollectGarbage(db_path_, Rules(3), storage::OpenPosixTier);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->finished, std::vector<std::string>{"quickstart-1a2b3c"});
  EXPECT_FALSE(fs::exists(Artifact("quickstart-1a2b3c", "train/model")));
  EXPECT_TRUE(fs::exists(Artifact("quickstart-1a2b3c", "clean/clean")));
  EXPECT_EQ(Query("SELECT state FROM gc_runs WHERE run_id = 'quickstart-1a2b3c'"), "done");
}

}  // namespace
}  // namespace tierflow::scheduler
