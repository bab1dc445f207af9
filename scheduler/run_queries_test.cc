#include "scheduler/run_queries.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include "scheduler/store.h"
#include "scheduler/testing/run_fixture.h"

namespace tierflow::scheduler {
namespace {

using testing::kT0;
using Type = LineageNode::Type;

// `text` is a std::string_view or absl::string_view (Status::message()).
template <typename Text>
::testing::AssertionResult Contains(const Text& text, std::string_view part) {
  if (std::string_view(text.data(), text.size()).find(part) != std::string_view::npos) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

constexpr int64_t kNow = kT0 + 3 * 3600 * 1000;

class RunQueriesTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(testing::DeadPid()); }
  void TearDown() override {
    db_.reset();
    writer_.reset();
    std::filesystem::remove_all(dir_);
  }

  void Open(int64_t engine_pid) {
    dir_ = testing::MakeTempDir();
    auto fixture = testing::WriteRunFixture(dir_, engine_pid);
    ASSERT_TRUE(fixture.ok()) << fixture.status();
    fixture_ = *fixture;
    auto db = OpenStoreReadOnly(fixture_.db_path);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
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

std::set<int64_t> Ids(const auto& map) {
  std::set<int64_t> ids;
  for (const auto& [id, row] : map) ids.insert(id);
  return ids;
}

bool HasEdge(const LineageGraph& graph, LineageEdge::Kind kind, Type from_type, int64_t from,
             Type to_type, int64_t to) {
  for (const LineageEdge& edge : graph.edges) {
    if (edge.kind == kind && edge.from == LineageNode{from_type, from} &&
        edge.to == LineageNode{to_type, to}) {
      return true;
    }
  }
  return false;
}

TEST_F(RunQueriesTest, ListsRunsNewestFirstWithTaskCounts) {
  auto list = ListRuns(*db_, {}, kNow);
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->runs.size(), 3u);
  EXPECT_EQ(list->total, 3);
  EXPECT_EQ(list->runs[0].id, "quickstart-c0ffee");
  EXPECT_EQ(list->runs[1].id, "quickstart-3f9a1c");
  EXPECT_EQ(list->runs[2].id, "quickstart-1a2b3c");
  const RunSummary& failed = list->runs[1];
  EXPECT_EQ(failed.state, RunState::kFailed);
  EXPECT_EQ(failed.counts.total, 6u);
  EXPECT_EQ(failed.counts.succeeded, 3u);
  EXPECT_EQ(failed.counts.cached, 1u);
  EXPECT_EQ(failed.counts.failed, 1u);
  EXPECT_EQ(failed.counts.upstream_failed, 1u);
  EXPECT_EQ(failed.counts.done(), 6u);
  EXPECT_EQ(failed.duration_ms, 95000);
  EXPECT_EQ(failed.engine, EngineStatus::kNotRunning);
  EXPECT_EQ(failed.params, (std::map<std::string, std::string>{{"epochs", "3"}}));
  EXPECT_EQ(list->runs[2].duration_ms, 65000);
}

TEST_F(RunQueriesTest, FiltersByStateAndLimitsButCountsEveryMatch) {
  auto failed = ListRuns(*db_, {.limit = 0, .state = RunState::kFailed}, kNow);
  ASSERT_TRUE(failed.ok()) << failed.status();
  ASSERT_EQ(failed->runs.size(), 1u);
  EXPECT_EQ(failed->runs[0].id, "quickstart-3f9a1c");
  auto two = ListRuns(*db_, {.limit = 2, .state = std::nullopt}, kNow);
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(two->runs.size(), 2u);
  EXPECT_EQ(two->total, 3);
}

TEST_F(RunQueriesTest, RunningRunWhoseEngineDiedIsGoneWithNoDuration) {
  auto run = GetRunSummary(*db_, "quickstart-c0ffee", kNow);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->state, RunState::kRunning);
  EXPECT_EQ(run->engine, EngineStatus::kGone);
  EXPECT_FALSE(run->duration_ms.has_value());
  EXPECT_EQ(run->counts.running, 1u);
  EXPECT_EQ(run->counts.queued, 1u);
  EXPECT_EQ(run->counts.pending, 4u);
}

// The engine's pid is alive but nothing holds the run's lock: that process
// no longer drives the run (a server whose engine for it stopped).
TEST_F(RunQueriesTest, LiveEngineThatNoLongerHoldsTheRunLockIsGone) {
  testing::FakeEngine engine;
  ASSERT_GT(engine.pid(), 0);
  TearDown();
  Open(engine.pid());
  const std::filesystem::path run_dir =
      std::filesystem::path(fixture_.db_path).parent_path() / "runs" / "quickstart-c0ffee";
  std::filesystem::create_directories(run_dir);
  const std::string lock_path = (run_dir / "lock").string();
  int fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  auto run = GetRunSummary(*db_, "quickstart-c0ffee", kNow);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->engine, EngineStatus::kGone);
  // Held (as the engine that drives the run holds it): alive.
  ASSERT_EQ(flock(fd, LOCK_EX | LOCK_NB), 0);
  run = GetRunSummary(*db_, "quickstart-c0ffee", kNow);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->engine, EngineStatus::kAlive);
  close(fd);
}

TEST_F(RunQueriesTest, RunningRunWithLiveTierflowEngineIsAliveAndTimedToNow) {
  testing::FakeEngine engine;
  ASSERT_GT(engine.pid(), 0);
  TearDown();
  Open(engine.pid());
  auto run = GetRunSummary(*db_, "quickstart-c0ffee", kNow);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->engine, EngineStatus::kAlive);
  EXPECT_EQ(run->duration_ms, kNow - (kT0 + 2 * 3600 * 1000));
}

TEST_F(RunQueriesTest, LiveProcessThatIsNotTierflowIsNoEngine) {
  EXPECT_EQ(ProbeEngine(RunState::kRunning, getpid(), ""), EngineStatus::kGone);
  EXPECT_EQ(ProbeEngine(RunState::kRunning, std::nullopt, ""), EngineStatus::kGone);
  EXPECT_EQ(ProbeEngine(RunState::kFailed, getpid(), ""), EngineStatus::kNotRunning);
}

TEST_F(RunQueriesTest, EngineOnAnotherHostCannotBeJudged) {
  ASSERT_TRUE(Writer()
                  .Execute("UPDATE runs SET engine_host = 'elsewhere.example' WHERE id = "
                           "'quickstart-c0ffee'")
                  .ok());
  auto status = GetRunStatus(*db_, "quickstart-c0ffee");
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->engine, EngineStatus::kOtherHost);
}

TEST_F(RunQueriesTest, ReaderSeesLaterCommitsOfTheWriter) {
  auto before = GetRunStatus(*db_, "quickstart-c0ffee");
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_EQ(before->state, RunState::kRunning);
  ASSERT_TRUE(
      Writer().Execute("UPDATE runs SET state = 'cancelled' WHERE id = 'quickstart-c0ffee'").ok());
  auto after = GetRunStatus(*db_, "quickstart-c0ffee");
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->state, RunState::kCancelled);
  EXPECT_EQ(after->engine, EngineStatus::kNotRunning);
}

TEST_F(RunQueriesTest, LastAndLatestNameTheNewestRun) {
  EXPECT_EQ(*ResolveRunId(*db_, "last"), "quickstart-c0ffee");
  EXPECT_EQ(*ResolveRunId(*db_, "latest"), "quickstart-c0ffee");
  EXPECT_EQ(*ResolveRunId(*db_, "quickstart-1a2b3c"), "quickstart-1a2b3c");
}

TEST_F(RunQueriesTest, UnknownTaskStateIsAnErrorNamingItNotPending) {
  ASSERT_TRUE(Writer()
                  .Execute("UPDATE tasks SET state = 'paused' WHERE run_id = "
                           "'quickstart-3f9a1c' AND id = 'train'")
                  .ok());
  auto detail = GetRunDetail(*db_, "quickstart-3f9a1c", kNow);
  ASSERT_FALSE(detail.ok());
  EXPECT_EQ(detail.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(detail.status().message(), "'paused'"));
  // The task counts of a summary read the same column: no silent bucket.
  auto summary = GetRunSummary(*db_, "quickstart-3f9a1c", kNow);
  ASSERT_FALSE(summary.ok());
  EXPECT_TRUE(Contains(summary.status().message(), "'paused'"));
  EXPECT_TRUE(Contains(summary.status().message(), "quickstart-3f9a1c"));
  auto task = FindTask(*db_, "quickstart-3f9a1c", "train");
  ASSERT_FALSE(task.ok());
  EXPECT_TRUE(Contains(task.status().message(), "task train of run quickstart-3f9a1c"));
}

TEST_F(RunQueriesTest, UnknownRunStateIsAnErrorNamingTheRun) {
  ASSERT_TRUE(Writer()
                  .Execute("UPDATE runs SET state = 'hibernating' WHERE id = 'quickstart-1a2b3c'")
                  .ok());
  auto list = ListRuns(*db_, {}, kNow);
  ASSERT_FALSE(list.ok());
  EXPECT_EQ(list.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(list.status().message(), "run quickstart-1a2b3c"));
  EXPECT_TRUE(Contains(list.status().message(), "'hibernating'"));
  auto status = GetRunStatus(*db_, "quickstart-1a2b3c");
  ASSERT_FALSE(status.ok());
  EXPECT_TRUE(Contains(status.status().message(), "'hibernating'"));
}

TEST_F(RunQueriesTest, UnknownCopyStateIsAnErrorNamingTheCopy) {
  ASSERT_TRUE(
      Writer().Execute("UPDATE artifact_copies SET state = 'archived' WHERE tier = 'nvme'").ok());
  auto detail = GetRunDetail(*db_, "quickstart-3f9a1c", kNow);
  ASSERT_FALSE(detail.ok());
  EXPECT_EQ(detail.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(detail.status().message(), "'archived'")) << detail.status();
  EXPECT_TRUE(
      Contains(detail.status().message(), "(nvme:/mnt/nvme/cache/quickstart-3f9a1c/train/model)"))
      << detail.status();
  // Lineage reads the same rows.
  auto model = ResolveArtifact(*db_, *ParseArtifactRef("quickstart-3f9a1c/train/model"));
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(RunQueriesTest, UnknownRunNamesIdAndDatabaseWithSuggestion) {
  auto id = ResolveRunId(*db_, "quickstart-3f9a1d");
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(id.status().message(),
            "no run 'quickstart-3f9a1d' in " + fixture_.db_path +
                " (did you mean 'quickstart-3f9a1c'?); list runs with: tierflow runs");
  auto summary = GetRunSummary(*db_, "nothing-like-it", kNow);
  ASSERT_FALSE(summary.ok());
  EXPECT_TRUE(Contains(summary.status().message(), "no run 'nothing-like-it' in "));
  EXPECT_FALSE(Contains(summary.status().message(), "did you mean"));
}

TEST(RunQueriesEmptyTest, LastInEmptyDatabaseSaysThereAreNoRuns) {
  std::string dir = testing::MakeTempDir();
  auto db = OpenStore(dir + "/tierflow.db");
  ASSERT_TRUE(db.ok());
  auto id = ResolveRunId(**db, "last");
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Contains(id.status().message(), "no runs in " + dir + "/tierflow.db"));
  std::filesystem::remove_all(dir);
}

TEST_F(RunQueriesTest, RunDetailHasTasksInPlanOrderWithAttemptsAndOutputs) {
  auto detail = GetRunDetail(*db_, "quickstart-3f9a1c", kNow);
  ASSERT_TRUE(detail.ok()) << detail.status();
  std::vector<std::string> ids;
  for (const TaskRow& task : detail->tasks) ids.push_back(task.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"ingest[0]", "ingest[1]", "clean", "train", "publish",
                                           "notify"}));
  const TaskRow& ingest = detail->tasks[1];
  EXPECT_EQ(ingest.item, "1");
  ASSERT_EQ(ingest.attempts.size(), 2u);
  EXPECT_EQ(ingest.attempts[0].state, AttemptState::kFailed);
  EXPECT_EQ(ingest.attempts[0].exit_code, 1);
  EXPECT_EQ(ingest.attempts[1].state, AttemptState::kSucceeded);
  ASSERT_EQ(ingest.outputs.size(), 1u);
  EXPECT_EQ(ingest.outputs[0].Ref(), "quickstart-3f9a1c/ingest[1]/raw");

  const TaskRow& clean = detail->tasks[2];
  ASSERT_EQ(clean.attempts.size(), 1u);
  EXPECT_EQ(clean.attempts[0].cached_from, 3);
  EXPECT_EQ(clean.attempts[0].cached_from_run, "quickstart-1a2b3c");
  EXPECT_EQ(clean.attempts[0].cached_from_task, "clean");
  EXPECT_EQ(clean.attempts[0].cached_from_number, 1);
  EXPECT_EQ(clean.attempts[0].log_path, "");

  const TaskRow& train = detail->tasks[3];
  ASSERT_EQ(train.outputs.size(), 1u);
  ASSERT_EQ(train.outputs[0].copies.size(), 2u);
  EXPECT_EQ(train.outputs[0].copies[0].role, "home");
  EXPECT_EQ(train.outputs[0].copies[1].tier, "nvme");
  EXPECT_EQ(train.outputs[0].copies[1].state, ArtifactCopyState::kEvicted);

  const TaskRow& publish = detail->tasks[4];
  EXPECT_EQ(publish.state, TaskState::kFailed);
  EXPECT_EQ(publish.message, "timed out after 30s (killed by SIGTERM)");
  ASSERT_EQ(publish.attempts.size(), 2u);
  EXPECT_EQ(publish.attempts[1].state, AttemptState::kTimedOut);
  EXPECT_EQ(publish.attempts[1].signal, 15);
  EXPECT_FALSE(publish.attempts[1].exit_code.has_value());
  EXPECT_TRUE(detail->tasks[5].attempts.empty());
}

TEST_F(RunQueriesTest, UnknownTaskSuggestsTheClosestTaskOfTheRun) {
  auto task = FindTask(*db_, "quickstart-3f9a1c", "trian");
  ASSERT_FALSE(task.ok());
  EXPECT_EQ(task.status().message(),
            "no task 'trian' in run quickstart-3f9a1c (did you mean 'train'?); list its tasks "
            "with: tierflow show quickstart-3f9a1c");
}

TEST_F(RunQueriesTest, ForeachStageNameListsItsTasks) {
  auto task = FindTask(*db_, "quickstart-3f9a1c", "ingest");
  ASSERT_FALSE(task.ok());
  EXPECT_EQ(task.status().message(),
            "no task 'ingest' in run quickstart-3f9a1c: stage 'ingest' has 2 foreach tasks "
            "(ingest[0], ingest[1]); name one of them");
}

TEST_F(RunQueriesTest, FindsLatestOrNumberedAttemptAndSaysWhichExist) {
  auto latest = FindAttempt(*db_, "quickstart-3f9a1c", "publish");
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(latest->id, 13);
  EXPECT_EQ(latest->number, 2);
  auto first = FindAttempt(*db_, "quickstart-3f9a1c", "publish", 1);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->id, 12);
  auto missing = FindAttempt(*db_, "quickstart-3f9a1c", "publish", 5);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(),
            "task publish of run quickstart-3f9a1c has no attempt 5 (attempts 1 to 2)");
  auto none = FindAttempt(*db_, "quickstart-3f9a1c", "notify");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().message(),
            "task notify of run quickstart-3f9a1c has no attempts yet (it is upstream_failed)");
}

TEST(ArtifactRefTest, ParsesRunTaskOutputAndIds) {
  auto plain = ParseArtifactRef("quickstart-3f9a1c/train/model");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->run, "quickstart-3f9a1c");
  EXPECT_EQ(plain->task, "train");
  EXPECT_EQ(plain->output, "model");
  // A foreach item may hold '/': the task is everything between the first
  // and the last '/'.
  auto item = ParseArtifactRef("last/ingest[s3://b/k]/raw");
  ASSERT_TRUE(item.ok()) << item.status();
  EXPECT_EQ(item->run, "last");
  EXPECT_EQ(item->task, "ingest[s3://b/k]");
  EXPECT_EQ(item->output, "raw");
  auto id = ParseArtifactRef("#12");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->id, 12);
  EXPECT_TRUE(IsArtifactRef("#3"));
  EXPECT_TRUE(IsArtifactRef("r/t/o"));
  EXPECT_FALSE(IsArtifactRef("quickstart-3f9a1c"));
}

TEST(ArtifactRefTest, RejectsMalformedRefsSayingWhy) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "it needs two '/'"},
      {"quickstart-3f9a1c", "it needs two '/'"},
      {"quickstart-3f9a1c/train", "it needs two '/'"},
      {"/train/model", "the run is empty"},
      {"run//model", "the task is empty"},
      {"run/train/", "the output is empty"},
      {"#", "no id after '#'"},
      {"#x1", "must be a positive number"},
      {"#0", "must be a positive number"},
      {"#-1", "must be a positive number"},
      {"#12a", "must be a positive number"},
      {"#99999999999999999999", "too large"},
  };
  for (const auto& [text, why] : cases) {
    auto ref = ParseArtifactRef(text);
    ASSERT_FALSE(ref.ok()) << text;
    EXPECT_EQ(ref.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_TRUE(Contains(ref.status().message(), why)) << text;
    EXPECT_TRUE(Contains(ref.status().message(), "write RUN/TASK/OUTPUT")) << text;
  }
}

TEST_F(RunQueriesTest, ResolvesArtifactRefsAndExplainsMisses) {
  auto model = ResolveArtifact(*db_, *ParseArtifactRef("quickstart-3f9a1c/train/model"));
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->id, 9);
  EXPECT_EQ(model->copies.size(), 2u);
  auto by_id = ResolveArtifact(*db_, *ParseArtifactRef("#4"));
  ASSERT_TRUE(by_id.ok()) << by_id.status();
  EXPECT_EQ(by_id->Ref(), "quickstart-1a2b3c/train/model");

  auto typo = ResolveArtifact(*db_, *ParseArtifactRef("quickstart-3f9a1c/train/modle"));
  ASSERT_FALSE(typo.ok());
  EXPECT_EQ(typo.status().message(),
            "task train of run quickstart-3f9a1c has no output 'modle' (did you mean 'model'?); "
            "its outputs: model");
  auto nothing = ResolveArtifact(*db_, *ParseArtifactRef("quickstart-3f9a1c/notify/x"));
  ASSERT_FALSE(nothing.ok());
  EXPECT_EQ(nothing.status().message(),
            "task notify of run quickstart-3f9a1c has no recorded outputs (it is "
            "upstream_failed)");
  auto bad_task = ResolveArtifact(*db_, *ParseArtifactRef("quickstart-3f9a1c/trian/model"));
  ASSERT_FALSE(bad_task.ok());
  EXPECT_TRUE(Contains(bad_task.status().message(), "did you mean 'train'"));
  auto bad_run = ResolveArtifact(*db_, *ParseArtifactRef("quickstart-3f9a1d/train/model"));
  ASSERT_FALSE(bad_run.ok());
  EXPECT_TRUE(Contains(bad_run.status().message(), "did you mean 'quickstart-3f9a1c'"));
  auto no_id = ResolveArtifact(*db_, *ParseArtifactRef("#999"));
  ASSERT_FALSE(no_id.ok());
  EXPECT_EQ(no_id.status().message(), "no artifact #999 in " + fixture_.db_path);
}

TEST_F(RunQueriesTest, UpstreamWalkCrossesIntoTheRunWhoseOutputsWereReused) {
  auto graph = ArtifactLineage(*db_, 9, LineageDirection::kUpstream, std::nullopt);
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->run_id, "quickstart-3f9a1c");
  EXPECT_EQ(Ids(graph->artifacts), (std::set<int64_t>{1, 2, 6, 7, 8, 9}));
  EXPECT_EQ(Ids(graph->attempts), (std::set<int64_t>{1, 2, 3, 7, 9, 10, 11}));
  EXPECT_TRUE(
      HasEdge(*graph, LineageEdge::Kind::kProduced, Type::kAttempt, 11, Type::kArtifact, 9));
  EXPECT_TRUE(
      HasEdge(*graph, LineageEdge::Kind::kConsumed, Type::kArtifact, 8, Type::kAttempt, 11));
  EXPECT_TRUE(HasEdge(*graph, LineageEdge::Kind::kReused, Type::kAttempt, 3, Type::kAttempt, 10));
  EXPECT_TRUE(HasEdge(*graph, LineageEdge::Kind::kConsumed, Type::kArtifact, 1, Type::kAttempt, 3));
  EXPECT_EQ(graph->edges.size(), 12u);
}

TEST_F(RunQueriesTest, DepthBoundsTheWalkInTaskSteps) {
  auto one = ArtifactLineage(*db_, 9, LineageDirection::kUpstream, 1);
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(Ids(one->artifacts), (std::set<int64_t>{8, 9}));
  EXPECT_EQ(Ids(one->attempts), (std::set<int64_t>{11}));
  auto two = ArtifactLineage(*db_, 9, LineageDirection::kUpstream, 2);
  ASSERT_TRUE(two.ok()) << two.status();
  // The reuse edge is no extra step: the reused attempt's inputs are as
  // far from the model as the cached attempt's own.
  EXPECT_EQ(Ids(two->artifacts), (std::set<int64_t>{1, 2, 6, 7, 8, 9}));
  EXPECT_EQ(Ids(two->attempts), (std::set<int64_t>{3, 10, 11}));
  auto zero = ArtifactLineage(*db_, 9, LineageDirection::kBoth, 0);
  ASSERT_TRUE(zero.ok()) << zero.status();
  EXPECT_EQ(Ids(zero->artifacts), (std::set<int64_t>{9}));
  EXPECT_TRUE(zero->attempts.empty());
  EXPECT_TRUE(zero->edges.empty());
}

TEST_F(RunQueriesTest, DownstreamWalkFollowsReuseIntoLaterRuns) {
  auto graph = ArtifactLineage(*db_, 1, LineageDirection::kDownstream, std::nullopt);
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(Ids(graph->artifacts), (std::set<int64_t>{1, 3, 4, 5, 8, 9}));
  EXPECT_EQ(Ids(graph->attempts), (std::set<int64_t>{3, 4, 5, 6, 10, 11, 12, 13}));
  EXPECT_TRUE(HasEdge(*graph, LineageEdge::Kind::kReused, Type::kAttempt, 3, Type::kAttempt, 10));
  EXPECT_TRUE(
      HasEdge(*graph, LineageEdge::Kind::kConsumed, Type::kArtifact, 9, Type::kAttempt, 13));

  auto one = ArtifactLineage(*db_, 1, LineageDirection::kDownstream, 1);
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(Ids(one->artifacts), (std::set<int64_t>{1, 3, 8}));
  EXPECT_EQ(Ids(one->attempts), (std::set<int64_t>{3, 10}));
}

TEST_F(RunQueriesTest, BothDirectionsJoinTheTwoWalks) {
  auto graph = ArtifactLineage(*db_, 8, LineageDirection::kBoth, 1);
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(Ids(graph->artifacts), (std::set<int64_t>{1, 2, 6, 7, 8, 9}));
  EXPECT_EQ(Ids(graph->attempts), (std::set<int64_t>{3, 10, 11}));
}

TEST_F(RunQueriesTest, RunLineageHoldsItsAttemptsArtifactsAndReuse) {
  auto graph = RunLineage(*db_, "quickstart-3f9a1c");
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->run_id, "quickstart-3f9a1c");
  EXPECT_FALSE(graph->root.has_value());
  EXPECT_EQ(Ids(graph->artifacts), (std::set<int64_t>{6, 7, 8, 9}));
  // The failed ingest[1] attempt (#8) touched no artifact; #3 is the first
  // run's clean, reused by #10.
  EXPECT_EQ(Ids(graph->attempts), (std::set<int64_t>{3, 7, 9, 10, 11, 12, 13}));
  EXPECT_TRUE(HasEdge(*graph, LineageEdge::Kind::kReused, Type::kAttempt, 3, Type::kAttempt, 10));
  EXPECT_EQ(graph->edges.size(), 10u);
  auto missing = RunLineage(*db_, "nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace tierflow::scheduler
