// Runs the real `tierflow` binary's inspection commands (runs, show, logs,
// lineage) against a state store written by SQL (scheduler/testing/
// run_fixture.h) and checks what users see: stdout, stderr, exit codes.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/testing/child_process.h"
#include "scheduler/sqlite.h"
#include "scheduler/store.h"
#include "scheduler/testing/run_fixture.h"

namespace tierflow {
namespace {

using Json = nlohmann::json;

using Output = testing::ChildResult;  // exit_code -1 when killed or not started

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// `tierflow ARGS` with `env` (NAME=VALUE) added to this environment, from
// which TIERFLOW_DB is removed, so a developer's setting cannot leak in.
testing::ChildSpec Tierflow(const std::vector<std::string>& args,
                            std::vector<std::string> env = {}) {
  env.emplace_back("TZ=UTC");
  return {TIERFLOW_BIN, args, "", std::move(env), {"TIERFLOW_DB"}};
}

Output RunTierflow(const std::vector<std::string>& args, std::vector<std::string> env = {}) {
  return testing::RunChild(Tierflow(args, std::move(env)));
}

class InspectCliTest : public ::testing::Test {
 protected:
  void SetUp() override { Write(scheduler::testing::DeadPid()); }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void Write(int64_t engine_pid) {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
    dir_ = scheduler::testing::MakeTempDir();
    auto fixture = scheduler::testing::WriteRunFixture(dir_, engine_pid);
    ASSERT_TRUE(fixture.ok()) << fixture.status();
    fixture_ = *fixture;
  }

  // `args` with --db pointing at the fixture.
  Output RunOnFixture(std::vector<std::string> args) {
    args.push_back("--db");
    args.push_back(fixture_.db_path);
    return RunTierflow(args);
  }

  std::string dir_;
  scheduler::testing::RunFixture fixture_;
};

TEST_F(InspectCliTest, RunsListsNewestFirstAndSaysHowToResumeAGoneEngine) {
  Output run = RunOnFixture({"runs"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.err, "");
  const size_t newest = run.out.find("quickstart-c0ffee  quickstart  running (engine gone)");
  const size_t failed = run.out.find("quickstart-3f9a1c  quickstart  failed ");
  const size_t oldest = run.out.find("quickstart-1a2b3c  quickstart  succeeded ");
  ASSERT_NE(newest, std::string::npos) << run.out;
  ASSERT_NE(failed, std::string::npos) << run.out;
  ASSERT_NE(oldest, std::string::npos) << run.out;
  EXPECT_LT(newest, failed);
  EXPECT_LT(failed, oldest);
  // A failed run counts its failed tasks apart: never "6/6".
  EXPECT_TRUE(Contains(run.out, "4/6    2       2024-05-01 13:00:00  1m35s\n")) << run.out;
  EXPECT_TRUE(Contains(run.out, "resume with: tierflow resume quickstart-c0ffee\n")) << run.out;
}

TEST_F(InspectCliTest, RunsJsonFiltersByStateAndReportsDeadEngine) {
  Output all = RunOnFixture({"runs", "--output", "json"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  Json json = Json::parse(all.out);
  ASSERT_EQ(json["runs"].size(), 3u);
  EXPECT_EQ(json["runs"][0]["id"], "quickstart-c0ffee");
  EXPECT_EQ(json["runs"][0]["engine_alive"], false);
  EXPECT_EQ(json["runs"][1]["tasks"]["failed"], 1);

  Output failed = RunOnFixture({"runs", "--state", "failed", "-o", "json"});
  ASSERT_EQ(failed.exit_code, 0) << failed.err;
  Json only = Json::parse(failed.out);
  ASSERT_EQ(only["runs"].size(), 1u);
  EXPECT_EQ(only["runs"][0]["id"], "quickstart-3f9a1c");
}

TEST_F(InspectCliTest, RunningRunWithLiveEngineIsNotFlagged) {
  scheduler::testing::FakeEngine engine;
  ASSERT_GT(engine.pid(), 0);
  Write(engine.pid());
  Output run = RunOnFixture({"runs", "--limit", "1", "-o", "json"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  Json json = Json::parse(run.out);
  EXPECT_EQ(json["runs"][0]["engine_alive"], true);
  EXPECT_EQ(json["total"], 3);
}

TEST_F(InspectCliTest, DatabaseComesFromTheEnvironmentWithoutDb) {
  Output run = RunTierflow({"show", "quickstart-1a2b3c"}, {"TIERFLOW_DB=" + fixture_.db_path});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_TRUE(Contains(run.out, "run       quickstart-1a2b3c\n")) << run.out;
}

TEST_F(InspectCliTest, MissingDatabaseExitsOneNamingThePath) {
  const std::string missing = dir_ + "/no/such.db";
  Output run = RunTierflow({"runs", "--db", missing});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.out, "");
  EXPECT_TRUE(Contains(run.err, "no tierflow database at " + missing)) << run.err;
}

TEST_F(InspectCliTest, UnknownRunExitsOneWithSuggestion) {
  Output run = RunOnFixture({"show", "quickstart-3f9a1d"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.out, "");
  EXPECT_EQ(run.err, "no run 'quickstart-3f9a1d' in " + fixture_.db_path +
                         " (did you mean 'quickstart-3f9a1c'?); list runs with: tierflow runs\n");
}

TEST_F(InspectCliTest, ShowLastPrintsTheNewestRunWithItsTasks) {
  Output run = RunOnFixture({"show", "last"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out.rfind("run       quickstart-c0ffee\n", 0), 0u) << run.out;
  EXPECT_TRUE(Contains(run.out, "resume with: tierflow resume quickstart-c0ffee")) << run.out;
  EXPECT_TRUE(Contains(run.out, "ingest[1]  ingest      queued   0         -     -\n")) << run.out;
}

TEST_F(InspectCliTest, ShowListsAttemptsOfRetriedTasksAndOutputs) {
  Output run = RunOnFixture({"show", "quickstart-3f9a1c"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_TRUE(Contains(run.out,
                       "  attempt 2              timed_out                  SIGTERM  30s  "
                       "     timed out after 30s (killed by SIGTERM)\n"))
      << run.out;
  EXPECT_TRUE(Contains(run.out, "train/model    4 KiB   xxh3:ffffffffffff  local:")) << run.out;
  EXPECT_TRUE(Contains(run.out, "why publish failed: tierflow logs quickstart-3f9a1c publish\n"))
      << run.out;
  Output json = RunOnFixture({"show", "quickstart-3f9a1c", "--output", "json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_EQ(Json::parse(json.out)["tasks"][2]["attempts"][0]["cached_from"], 3);
}

TEST_F(InspectCliTest, UsageErrorsExitTwo) {
  const std::vector<std::vector<std::string>> cases = {
      {"show"},
      {"runs", "--output", "yaml"},
      {"runs", "--limit", "-1"},
      {"runs", "--state", "sleeping"},
      {"logs", "last", "train", "--failed"},
      {"logs", "last", "--stage", "train", "--scheduler", "127.0.0.1:1"},
      {"logs", "last", "train", "--attempt", "0"},
      {"lineage", "quickstart-3f9a1c", "--upstream"},
      {"lineage", "quickstart-3f9a1c", "--depth", "2"},
      {"lineage", "quickstart-3f9a1c/train"},
      {"lineage", "#x"},
      {"lineage", "last", "--output", "svg"},
  };
  for (const std::vector<std::string>& args : cases) {
    Output run = RunOnFixture(args);
    EXPECT_EQ(run.exit_code, 2) << args[0] << " " << (args.size() > 1 ? args[1] : "") << ": "
                                << run.err;
    EXPECT_EQ(run.out, "");
    EXPECT_TRUE(Contains(run.err, "--help")) << run.err;
  }
}

TEST_F(InspectCliTest, LogsPrintsLatestOrNumberedAttempt) {
  Output latest = RunOnFixture({"logs", "quickstart-3f9a1c", "publish"});
  EXPECT_EQ(latest.exit_code, 0) << latest.err;
  EXPECT_EQ(latest.out, "publishing model (attempt 2)\n");
  Output first = RunOnFixture({"logs", "quickstart-3f9a1c", "publish", "--attempt", "1"});
  EXPECT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(first.out, "publishing model\nupload refused: HTTP 403\n");
  Output missing = RunOnFixture({"logs", "quickstart-3f9a1c", "publish", "--attempt", "3"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.err,
            "task publish of run quickstart-3f9a1c has no attempt 3 (attempts 1 to 2)\n");
}

TEST_F(InspectCliTest, LogsOfUnknownTaskExitsOneWithSuggestion) {
  Output run = RunOnFixture({"logs", "quickstart-3f9a1c", "trian"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.out, "");
  EXPECT_EQ(run.err,
            "no task 'trian' in run quickstart-3f9a1c (did you mean 'train'?); list its tasks "
            "with: tierflow show quickstart-3f9a1c\n");
}

TEST_F(InspectCliTest, LineageOfAnArtifactCrossesIntoTheReusedRun) {
  Output text = RunOnFixture({"lineage", "quickstart-3f9a1c/train/model", "--upstream"});
  EXPECT_EQ(text.exit_code, 0) << text.err;
  EXPECT_EQ(text.out.rfind("quickstart-3f9a1c/train/model #9  4 KiB  xxh3:ffffffffffff", 0), 0u)
      << text.out;
  EXPECT_TRUE(Contains(text.out,
                       "\n        reused outputs of quickstart-1a2b3c/clean attempt 1 "
                       "(succeeded)\n"))
      << text.out;
  EXPECT_FALSE(Contains(text.out, "downstream")) << text.out;

  Output json = RunOnFixture({"lineage", "#9", "--upstream", "--depth", "1", "-o", "json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  Json graph = Json::parse(json.out);
  EXPECT_EQ(graph["root"], "artifact:9");
  EXPECT_EQ(graph["nodes"].size(), 3u);
  EXPECT_EQ(graph["edges"].size(), 2u);

  Output dot = RunOnFixture({"lineage", "last", "--output", "dot"});
  EXPECT_EQ(dot.exit_code, 0) << dot.err;
  EXPECT_EQ(dot.out.rfind("digraph lineage {\n", 0), 0u) << dot.out;
}

TEST_F(InspectCliTest, LineageOfUnknownArtifactExitsOne) {
  Output run = RunOnFixture({"lineage", "quickstart-3f9a1c/train/modle"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_TRUE(Contains(run.err, "has no output 'modle' (did you mean 'model'?)")) << run.err;
}

TEST_F(InspectCliTest, FollowPrintsAppendedLinesUntilTheAttemptSucceeds) {
  scheduler::testing::FakeEngine engine;
  ASSERT_GT(engine.pid(), 0);
  Write(engine.pid());
  auto writer = scheduler::OpenStore(fixture_.db_path);
  ASSERT_TRUE(writer.ok()) << writer.status();
  std::ofstream(fixture_.running_log, std::ios::app) << "line 1\n";

  auto follow = testing::ChildProcess::Start(
      Tierflow({"logs", "-f", "last", "ingest[0]", "--db", fixture_.db_path}));
  ASSERT_TRUE(follow.ok()) << follow.status();
  ASSERT_TRUE(
      (*follow)->ReadUntil([](const Output& output) { return Contains(output.out, "line 1\n"); },
                           std::chrono::seconds(30)))
      << (*follow)->output().err;
  ASSERT_EQ((*follow)->output().out, "line 1\n") << (*follow)->output().err;

  // The task goes on writing, then ends; tierflow must print every line
  // and return once the attempt is recorded succeeded.
  std::thread task([&] {
    for (int i = 2; i <= 5; ++i) {
      std::ofstream(fixture_.running_log, std::ios::app) << "line " << i << "\n";
    }
    absl::Status status = (*writer)->Execute(
        "BEGIN; UPDATE attempts SET state = 'succeeded', exit_code = 0 WHERE id = 14; UPDATE "
        "tasks SET state = 'succeeded' WHERE run_id = 'quickstart-c0ffee' AND id = "
        "'ingest[0]'; COMMIT");
    EXPECT_TRUE(status.ok()) << status;
  });
  Output done = (*follow)->Wait(std::chrono::seconds(30));
  task.join();
  EXPECT_EQ(done.exit_code, 0) << done.err;
  EXPECT_EQ(done.out, "line 1\nline 2\nline 3\nline 4\nline 5\n");
  EXPECT_EQ(done.err, "");
}

}  // namespace
}  // namespace tierflow
