#include "api/run_service.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <streambuf>
#include <string>
#include <thread>

#include "api/run_status.h"
#include "scheduler/store.h"
#include "scheduler/testing/run_fixture.h"

namespace tierflow::api {
namespace {

using scheduler::ArtifactRow;
using scheduler::AttemptRow;
using scheduler::CopyRow;
using scheduler::EngineStatus;
using scheduler::LineageEdge;
using scheduler::LineageNode;
using scheduler::RunSummary;
using scheduler::TaskRow;
using scheduler::testing::kT0;
using Json = nlohmann::json;
using Type = LineageNode::Type;

template <typename Text>
::testing::AssertionResult Contains(const Text& text, std::string_view part) {
  if (std::string_view(text.data(), text.size()).find(part) != std::string_view::npos) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

// Text renderings print local times: pin the zone.
class UtcEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    setenv("TZ", "UTC", 1);
    tzset();
  }
};
const auto* const kUtc = ::testing::AddGlobalTestEnvironment(new UtcEnvironment);

RunSummary Summary(const std::string& id, const std::string& state, int64_t created) {
  RunSummary run;
  run.id = id;
  run.pipeline = "demo";
  run.file = "/p/demo.yaml";
  run.working_dir = "/p";
  run.state = scheduler::ParseRunState(state).value();
  run.slots = 2;
  run.created_at_ms = created;
  run.started_at_ms = created;
  return run;
}

RunList SmallList() {
  RunList list;
  RunSummary gone = Summary("demo-c0ffee", "running", kT0 + 7200000);
  gone.engine = EngineStatus::kGone;
  gone.engine_pid = 4321;
  gone.engine_host = "here";
  gone.counts.total = 3;
  gone.counts.succeeded = 1;
  gone.counts.running = 1;
  gone.counts.pending = 1;
  RunSummary elsewhere = Summary("demo-0ther0", "running", kT0 + 3600000);
  elsewhere.engine = EngineStatus::kOtherHost;
  elsewhere.engine_host = "node7";
  elsewhere.counts.total = 3;
  elsewhere.counts.running = 3;
  RunSummary failed = Summary("demo-1a2b3c", "failed", kT0);
  failed.finished_at_ms = kT0 + 95000;
  failed.duration_ms = 95000;
  failed.params = {{"epochs", "3"}};
  failed.counts.total = 3;
  failed.counts.succeeded = 1;
  failed.counts.failed = 1;
  failed.counts.upstream_failed = 1;
  list.runs = {gone, elsewhere, failed};
  list.total = 4;
  return list;
}

TEST(RenderRunsTest, TextTableMarksGoneEngineAndTruncation) {
  std::ostringstream out;
  RenderRunsText(SmallList(), out);
  EXPECT_EQ(out.str(),
            "RUN          PIPELINE  STATE                  TASKS  FAILED  STARTED              "
            "DURATION\n"
            "demo-c0ffee  demo      running (engine gone)  1/3    0       2024-05-01 14:00:00  -\n"
            "demo-0ther0  demo      running (on node7)     0/3    0       2024-05-01 13:00:00  -\n"
            "demo-1a2b3c  demo      failed                 1/3    2       2024-05-01 12:00:00  "
            "1m35s\n"
            "\n"
            "demo-c0ffee: its tierflow process (pid 4321) is gone; resume with: tierflow resume "
            "demo-c0ffee\n"
            "showing 3 of 4 runs (--limit 0 shows all)\n");
}

TEST(RenderRunsTest, PaintedStatesKeepTheColumnsOfThePlainTable) {
  // A painter as the CLI's, with SGR codes around the state.
  const StatePainter paint = [](std::string_view state, std::string_view text) {
    const std::string code = state == "failed" ? "1;31" : state == "running" ? "34" : "0";
    return "\033[" + code + "m" + std::string(text) + "\033[0m";
  };
  std::ostringstream plain;
  RenderRunsText(SmallList(), plain);
  std::ostringstream painted;
  RenderRunsText(SmallList(), paint, painted);
  EXPECT_NE(painted.str().find("\033[1;31mfailed\033[0m"), std::string::npos) << painted.str();
  // A gone engine reads as a failure; the failed count is painted too.
  EXPECT_NE(painted.str().find("\033[1;31mrunning (engine gone)\033[0m"), std::string::npos);
  EXPECT_NE(painted.str().find("\033[1;31m2\033[0m"), std::string::npos);
  std::string stripped;
  const std::string text = painted.str();
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\033') {
      i = text.find('m', i);
      continue;
    }
    stripped += text[i];
  }
  EXPECT_EQ(stripped, plain.str());
}

TEST(RenderRunsTest, EmptyListSaysSo) {
  std::ostringstream out;
  RenderRunsText(RunList{}, out);
  EXPECT_EQ(out.str(), "no runs\n");
}

TEST(RenderRunsTest, JsonTellsWhetherTheEngineIsAlive) {
  std::ostringstream out;
  RenderRunsJson(SmallList(), out);
  Json json = Json::parse(out.str());
  EXPECT_EQ(json["total"], 4);
  ASSERT_EQ(json["runs"].size(), 3u);
  const Json& gone = json["runs"][0];
  EXPECT_EQ(gone["id"], "demo-c0ffee");
  EXPECT_EQ(gone["state"], "running");
  EXPECT_EQ(gone["engine"], "gone");
  EXPECT_EQ(gone["engine_alive"], false);
  EXPECT_EQ(gone["engine_pid"], 4321);
  EXPECT_TRUE(gone["duration_ms"].is_null());
  EXPECT_EQ(gone["tasks"]["done"], 1);
  EXPECT_EQ(gone["tasks"]["total"], 3);
  EXPECT_TRUE(json["runs"][1]["engine_alive"].is_null());
  const Json& failed = json["runs"][2];
  EXPECT_EQ(failed["engine_alive"], false);
  EXPECT_EQ(failed["duration_ms"], 95000);
  EXPECT_EQ(failed["finished_at_ms"], kT0 + 95000);
  EXPECT_EQ(failed["params"], Json({{"epochs", "3"}}));
  EXPECT_EQ(failed["tasks"]["upstream_failed"], 1);
}

AttemptRow Attempt(int64_t id, const std::string& task, int64_t number, const std::string& state,
                   int64_t started, std::optional<int64_t> finished) {
  AttemptRow attempt;
  attempt.id = id;
  attempt.run_id = "demo-1a2b3c";
  attempt.task_id = task;
  attempt.number = number;
  attempt.state = scheduler::ParseAttemptState(state).value();
  attempt.worker = "local";
  attempt.command = R"({"argv": ["python3", "x.py"]})";
  attempt.started_at_ms = started;
  attempt.finished_at_ms = finished;
  attempt.log_path =
      "/p/.tierflow/runs/demo-1a2b3c/logs/" + task + "/attempt-" + std::to_string(number) + ".log";
  return attempt;
}

ArtifactRow Artifact(int64_t id, const std::string& task, const std::string& name, int64_t bytes,
                     int64_t files) {
  ArtifactRow artifact;
  artifact.id = id;
  artifact.run_id = "demo-1a2b3c";
  artifact.task_id = task;
  artifact.name = name;
  artifact.content_hash = "xxh3:0123456789abcdef0123456789abcdef";
  artifact.bytes = bytes;
  artifact.files = files;
  CopyRow home;
  home.tier = "local";
  home.uri = "/p/.tierflow/runs/demo-1a2b3c/artifacts/" + task + "/" + name;
  home.role = "home";
  home.state = scheduler::ArtifactCopyState::kPresent;
  artifact.copies.push_back(home);
  return artifact;
}

// demo-1a2b3c: prep (cached from an earlier run), train (failed once, then
// killed by SIGKILL), report upstream_failed.
RunDetail SmallDetail() {
  RunDetail detail;
  detail.run = SmallList().runs[2];
  detail.run.message = "1 failed, 1 upstream_failed";

  TaskRow prep;
  prep.id = "prep";
  prep.stage = "prep";
  prep.kind = "clean";
  prep.state = scheduler::TaskState::kCached;
  prep.attempt_count = 1;
  prep.started_at_ms = kT0;
  prep.finished_at_ms = kT0 + 1000;
  prep.message = "reused the outputs of attempt #2";
  AttemptRow cached = Attempt(7, "prep", 1, "cached", kT0, kT0 + 1000);
  cached.cached_from = 2;
  cached.cached_from_run = "demo-000001";
  cached.cached_from_task = "prep";
  cached.cached_from_number = 1;
  cached.log_path = "";
  prep.attempts.push_back(cached);
  prep.outputs.push_back(Artifact(5, "prep", "data", 3 << 20, 12));

  TaskRow train;
  train.id = "train";
  train.stage = "train";
  train.kind = "train";
  train.state = scheduler::TaskState::kFailed;
  train.attempt_count = 2;
  train.started_at_ms = kT0 + 1000;
  train.finished_at_ms = kT0 + 95000;
  train.message = "killed by SIGKILL";
  AttemptRow first = Attempt(8, "train", 1, "failed", kT0 + 1000, kT0 + 31000);
  first.exit_code = 3;
  first.message = "exit 3";
  AttemptRow second = Attempt(9, "train", 2, "failed", kT0 + 35000, kT0 + 95000);
  second.signal = 9;
  second.message = "killed by SIGKILL";
  train.attempts = {first, second};

  TaskRow report;
  report.id = "report\x1b[31m";  // an escape sequence must not reach the terminal
  report.stage = "report";
  report.kind = "checkpoint";
  report.state = scheduler::TaskState::kUpstreamFailed;
  report.finished_at_ms = kT0 + 95000;
  report.message = "upstream task train failed";
  detail.tasks = {prep, train, report};
  return detail;
}

TEST(RenderRunTest, TextShowsHeaderTasksAttemptsAndOutputs) {
  std::ostringstream out;
  RenderRunText(SmallDetail(), /*all_attempts=*/false, out);
  EXPECT_EQ(out.str(),
            "run       demo-1a2b3c\n"
            "pipeline  demo\n"
            "file      /p/demo.yaml\n"
            "state     failed\n"
            "message   1 failed, 1 upstream_failed\n"
            "params    epochs=3\n"
            "created   2024-05-01 12:00:00\n"
            "started   2024-05-01 12:00:00\n"
            "finished  2024-05-01 12:01:35\n"
            "duration  1m35s\n"
            "tasks     3 tasks: 1 succeeded, 1 failed, 1 upstream_failed\n"
            "\n"
            "TASK            KIND        STATE            ATTEMPTS  EXIT     DURATION  MESSAGE\n"
            "prep            clean       cached           1         -        1s        reused "
            "the outputs of attempt #2\n"
            "train           train       failed           2         SIGKILL  1m34s     killed "
            "by SIGKILL\n"
            "  attempt 1                 failed                     3        30s       exit 3\n"
            "  attempt 2                 failed                     SIGKILL  1m        killed "
            "by SIGKILL\n"
            "report\\x1b[31m  checkpoint  upstream_failed  0         -        -         upstream "
            "task train failed\n"
            "\n"
            "OUTPUT     SIZE               HASH               COPIES\n"
            "prep/data  3 MiB in 12 files  xxh3:0123456789ab  "
            "local:/p/.tierflow/runs/demo-1a2b3c/artifacts/prep/data\n"
            "\n"
            "why train failed: tierflow logs demo-1a2b3c train\n");
}

TEST(RenderRunTest, AllAttemptsListsSingleAttemptsAndWhatACachedOneReused) {
  std::ostringstream out;
  RenderRunText(SmallDetail(), /*all_attempts=*/true, out);
  EXPECT_TRUE(Contains(out.str(),
                       "  attempt 1                 cached                     -        1s       "
                       " reused demo-000001/prep attempt 1 (#2)\n"));
}

TEST(RenderRunTest, JsonHasEveryAttemptWithExitAndReuse) {
  std::ostringstream out;
  RenderRunJson(SmallDetail(), out);
  Json json = Json::parse(out.str());
  EXPECT_EQ(json["run"]["id"], "demo-1a2b3c");
  ASSERT_EQ(json["tasks"].size(), 3u);
  const Json& prep = json["tasks"][0];
  EXPECT_EQ(prep["state"], "cached");
  EXPECT_EQ(prep["attempts"][0]["cached_from"], 2);
  EXPECT_EQ(prep["attempts"][0]["cached_from_ref"],
            Json({{"run_id", "demo-000001"}, {"task_id", "prep"}, {"number", 1}}));
  EXPECT_TRUE(prep["attempts"][0]["log_path"].is_null());
  EXPECT_EQ(prep["outputs"][0]["ref"], "demo-1a2b3c/prep/data");
  EXPECT_EQ(prep["outputs"][0]["bytes"], 3 << 20);
  EXPECT_EQ(prep["outputs"][0]["files"], 12);
  EXPECT_EQ(prep["outputs"][0]["copies"][0]["tier"], "local");
  const Json& train = json["tasks"][1];
  EXPECT_EQ(train["attempt_count"], 2);
  EXPECT_EQ(train["duration_ms"], 94000);
  EXPECT_EQ(train["attempts"][0]["exit_code"], 3);
  EXPECT_TRUE(train["attempts"][0]["signal"].is_null());
  EXPECT_EQ(train["attempts"][1]["signal"], 9);
  EXPECT_EQ(train["attempts"][1]["duration_ms"], 60000);
  EXPECT_EQ(train["attempts"][1]["command"]["argv"][0], "python3");
  EXPECT_EQ(json["tasks"][2]["id"], "report\x1b[31m");
  EXPECT_TRUE(json["tasks"][2]["item"].is_null());
}

// in -> prep -> mid -> train -> model, with a hostile task name on train.
LineageGraph SmallGraph(const std::string& train_task) {
  LineageGraph graph;
  graph.run_id = "demo-1a2b3c";
  graph.root = 2;
  graph.direction = LineageDirection::kBoth;
  graph.artifacts[1] = Artifact(1, "prep", "mid", 1024, 1);
  graph.artifacts[2] = Artifact(2, train_task, "model", 2048, 1);
  graph.artifacts[3] = Artifact(3, "eval", "score", 10, 1);
  graph.artifacts[1].run_id = "demo-000001";
  graph.attempts[4] = Attempt(4, "prep", 1, "succeeded", kT0, kT0 + 1);
  graph.attempts[4].run_id = "demo-000001";
  graph.attempts[5] = Attempt(5, train_task, 2, "failed", kT0, kT0 + 1);
  graph.attempts[6] = Attempt(6, "eval", 1, "succeeded", kT0, kT0 + 1);
  auto node = [](Type type, int64_t id) { return LineageNode{type, id}; };
  graph.edges = {
      {LineageEdge::Kind::kProduced, node(Type::kAttempt, 5), node(Type::kArtifact, 2), "model"},
      {LineageEdge::Kind::kConsumed, node(Type::kArtifact, 1), node(Type::kAttempt, 5), "in\"put"},
      {LineageEdge::Kind::kProduced, node(Type::kAttempt, 4), node(Type::kArtifact, 1), "mid"},
      {LineageEdge::Kind::kConsumed, node(Type::kArtifact, 2), node(Type::kAttempt, 6), "model"},
      {LineageEdge::Kind::kProduced, node(Type::kAttempt, 6), node(Type::kArtifact, 3), "score"},
  };
  return graph;
}

TEST(RenderLineageTest, TextIsAnIndentedTreeBothWays) {
  std::ostringstream out;
  RenderLineageText(SmallGraph("train"), out);
  const std::string copy = "  local:/p/.tierflow/runs/demo-1a2b3c/artifacts/";
  EXPECT_EQ(out.str(), "demo-1a2b3c/train/model #2  2 KiB  xxh3:0123456789ab" + copy +
                           "train/model\n" +
                           "upstream\n"
                           "  produced by train attempt 2 (failed)\n"
                           "    consumed demo-000001/prep/mid #1  1 KiB  xxh3:0123456789ab" +
                           copy + "prep/mid\n" +
                           "      produced by demo-000001/prep attempt 1 (succeeded)\n"
                           "downstream\n"
                           "  consumed by eval attempt 1 (succeeded)\n"
                           "    produced eval/score #3  10 B  xxh3:0123456789ab" +
                           copy + "eval/score\n");
}

TEST(RenderLineageTest, TextSaysWhenADirectionIsEmpty) {
  LineageGraph graph = SmallGraph("train");
  graph.direction = LineageDirection::kDownstream;
  graph.root = 3;
  std::ostringstream out;
  RenderLineageText(graph, out);
  EXPECT_TRUE(Contains(out.str(), "\ndownstream\n  (none)\n")) << out.str();
  EXPECT_FALSE(Contains(out.str(), "upstream\n"));
}

TEST(RenderLineageTest, JsonListsNodesAndEdgesWithStableIds) {
  std::ostringstream out;
  RenderLineageJson(SmallGraph("train"), out);
  Json json = Json::parse(out.str());
  EXPECT_EQ(json["run_id"], "demo-1a2b3c");
  EXPECT_EQ(json["root"], "artifact:2");
  EXPECT_EQ(json["direction"], "both");
  ASSERT_EQ(json["nodes"].size(), 6u);
  EXPECT_EQ(json["nodes"][0]["id"], "artifact:1");
  EXPECT_EQ(json["nodes"][0]["type"], "artifact");
  EXPECT_EQ(json["nodes"][0]["artifact_id"], 1);
  EXPECT_EQ(json["nodes"][0]["ref"], "demo-000001/prep/mid");
  EXPECT_EQ(json["nodes"][0]["copies"][0]["role"], "home");
  EXPECT_EQ(json["nodes"][4]["id"], "attempt:5");
  EXPECT_EQ(json["nodes"][4]["type"], "attempt");
  EXPECT_EQ(json["nodes"][4]["state"], "failed");
  ASSERT_EQ(json["edges"].size(), 5u);
  EXPECT_EQ(json["edges"][1], Json({{"from", "artifact:1"},
                                    {"to", "attempt:5"},
                                    {"kind", "consumed"},
                                    {"name", "in\"put"}}));
}

// Runs Graphviz's `dot` on `graph`; its exit status and SVG.
std::pair<int, std::string> RunDot(const std::string& graph, const std::string& dir) {
  const std::string input = dir + "/graph.dot";
  const std::string output = dir + "/graph.svg";
  std::ofstream(input) << graph;
  const std::string command = "dot -Tsvg -o '" + output + "' '" + input + "' 2>&1";
  const int status = std::system(command.c_str());
  std::ifstream in(output);
  std::stringstream svg;
  svg << in.rdbuf();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, svg.str()};
}

TEST(RenderLineageTest, DotQuotesAndEscapesHostileNames) {
  std::ostringstream out;
  RenderLineageDot(SmallGraph("a\"b<c>\nd\\e"), out);
  const std::string dot = out.str();
  EXPECT_TRUE(Contains(dot, "digraph lineage {\n"));
  EXPECT_TRUE(Contains(dot, "label=\"a\\\"b<c>\\nd\\\\e/model\\n2 KiB xxh3:0123456789ab\"")) << dot;
  EXPECT_TRUE(Contains(dot, "\"artifact:1\" -> \"attempt:5\" [label=\"in\\\"put\"];")) << dot;
  EXPECT_TRUE(Contains(dot, "color=red")) << dot;
  // Every line is one statement: no raw newline from a name split a label.
  std::istringstream lines(dot);
  for (std::string line; std::getline(lines, line);) {
    EXPECT_TRUE(line == "digraph lineage {" || line == "}" || (!line.empty() && line.back() == ';'))
        << line;
  }
  // Graphviz renders it (scripts/bootstrap.sh installs it).
  ASSERT_EQ(std::system("command -v dot > /dev/null 2>&1"), 0) << "Graphviz dot is not installed";
  const std::string dir = scheduler::testing::MakeTempDir();
  auto [status, svg] = RunDot(dot, dir);
  EXPECT_EQ(status, 0);
  EXPECT_TRUE(Contains(svg, "a&quot;b&lt;c&gt;")) << svg;
  std::filesystem::remove_all(dir);
}

TEST(RenderLineageTest, DotReplacesInvalidUtf8) {
  std::ostringstream out;
  RenderLineageDot(SmallGraph(std::string("bad\xff\xc3", 5)), out);
  EXPECT_TRUE(Contains(out.str(), "bad\xef\xbf\xbd\xef\xbf\xbd/model")) << out.str();
}

// ---------------------------------------------------- calls on the store

class RunServiceStoreTest : public ::testing::Test {
 protected:
  void Write(int64_t engine_pid) {
    dir_ = scheduler::testing::MakeTempDir();
    auto fixture = scheduler::testing::WriteRunFixture(dir_, engine_pid);
    ASSERT_TRUE(fixture.ok()) << fixture.status();
    fixture_ = *fixture;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string dir_;
  scheduler::testing::RunFixture fixture_;
};

TEST_F(RunServiceStoreTest, ShowLastIsTheNewestRun) {
  Write(scheduler::testing::DeadPid());
  auto detail = ShowRun(fixture_.db_path, "last");
  ASSERT_TRUE(detail.ok()) << detail.status();
  EXPECT_EQ(detail->run.id, "quickstart-c0ffee");
  EXPECT_EQ(detail->run.engine, EngineStatus::kGone);
  EXPECT_EQ(detail->tasks.size(), 6u);
}

TEST_F(RunServiceStoreTest, MissingDatabaseIsNamed) {
  Write(scheduler::testing::DeadPid());
  auto list = ListRuns(dir_ + "/nowhere.db", {});
  ASSERT_FALSE(list.ok());
  EXPECT_EQ(list.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Contains(list.status().message(), dir_ + "/nowhere.db"));
}

TEST_F(RunServiceStoreTest, LineageOfARunRefusesDirectionsButAnArtifactWalks) {
  Write(scheduler::testing::DeadPid());
  auto refused = GetLineage(fixture_.db_path, "quickstart-3f9a1c", LineageDirection::kUpstream);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  auto malformed = GetLineage(fixture_.db_path, "quickstart-3f9a1c/train");
  ASSERT_FALSE(malformed.ok());
  EXPECT_EQ(malformed.status().code(), absl::StatusCode::kInvalidArgument);
  auto walk =
      GetLineage(fixture_.db_path, "quickstart-3f9a1c/train/model", LineageDirection::kUpstream, 1);
  ASSERT_TRUE(walk.ok()) << walk.status();
  EXPECT_EQ(walk->root, 9);
  EXPECT_EQ(walk->artifacts.size(), 2u);
  auto run = GetLineage(fixture_.db_path, "quickstart-3f9a1c");
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->run_id, "quickstart-3f9a1c");
  EXPECT_FALSE(run->root.has_value());
}

TEST_F(RunServiceStoreTest, LogOfLatestOrNumberedAttempt) {
  Write(scheduler::testing::DeadPid());
  std::ostringstream out;
  std::ostringstream notes;
  ASSERT_TRUE(
      WriteLog({.db = fixture_.db_path, .run = "quickstart-3f9a1c", .task = "publish"}, out, notes)
          .ok());
  EXPECT_EQ(out.str(), "publishing model (attempt 2)\n");
  out.str("");
  ASSERT_TRUE(
      WriteLog(
          {.db = fixture_.db_path, .run = "quickstart-3f9a1c", .task = "publish", .attempt = 1},
          out, notes)
          .ok());
  EXPECT_EQ(out.str(), "publishing model\nupload refused: HTTP 403\n");
  EXPECT_EQ(notes.str(), "");
}

TEST_F(RunServiceStoreTest, LogOfCachedTaskIsThatOfTheAttemptItReused) {
  Write(scheduler::testing::DeadPid());
  std::ostringstream out;
  std::ostringstream notes;
  ASSERT_TRUE(
      WriteLog({.db = fixture_.db_path, .run = "quickstart-3f9a1c", .task = "clean"}, out, notes)
          .ok());
  EXPECT_EQ(out.str(), "clean attempt 1\n");
  EXPECT_EQ(notes.str(),
            "clean attempt 1 of run quickstart-3f9a1c ran nothing: it reused the outputs of "
            "quickstart-1a2b3c/clean attempt 1 (#3), whose log follows\n");
}

TEST_F(RunServiceStoreTest, LogOfUnknownTaskSuggestsOne) {
  Write(scheduler::testing::DeadPid());
  std::ostringstream out;
  std::ostringstream notes;
  absl::Status status =
      WriteLog({.db = fixture_.db_path, .run = "quickstart-3f9a1c", .task = "pubish"}, out, notes);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Contains(status.message(),
                       "no task 'pubish' in run quickstart-3f9a1c (did you "
                       "mean 'publish'?)"));
}

TEST_F(RunServiceStoreTest, RunLogsPrefixEveryLineWithItsTask) {
  Write(0);
  std::ostringstream out;
  std::ostringstream notes;
  const StatePainter paint = [](std::string_view state, std::string_view text) {
    return "<" + std::string(state) + ">" + std::string(text) + "</>";
  };
  ASSERT_TRUE(
      WriteRunLogs({.db = fixture_.db_path, .run = "quickstart-3f9a1c", .task = "", .paint = paint},
                   out, notes)
          .ok());
  // Padded to the widest id (ingest[0]); the colour is the task's state's.
  // A cached task's lines are those of the attempt it reused.
  EXPECT_EQ(out.str(),
            "<succeeded>ingest[0]</> | ingest[0] attempt 1\n"
            "<succeeded>ingest[1]</> | ingest[1] attempt 2\n"
            "<cached>clean</>     | clean attempt 1\n"
            "<succeeded>train</>     | train attempt 1\n"
            "<failed>publish</>   | publishing model (attempt 2)\n");
  EXPECT_TRUE(
      Contains(notes.str(), "notify: never ran (upstream_failed: upstream task publish failed)\n"))
      << notes.str();

  std::ostringstream failed;
  ASSERT_TRUE(
      WriteRunLogs(
          {.db = fixture_.db_path, .run = "quickstart-3f9a1c", .task = "", .failed_only = true},
          failed, notes)
          .ok());
  EXPECT_EQ(failed.str(), "publish   | publishing model (attempt 2)\n");

  std::ostringstream ingest;
  ASSERT_TRUE(
      WriteRunLogs(
          {.db = fixture_.db_path, .run = "quickstart-3f9a1c", .task = "", .stages = {"ingest"}},
          ingest, notes)
          .ok());
  EXPECT_EQ(ingest.str(), "ingest[0] | ingest[0] attempt 1\ningest[1] | ingest[1] attempt 2\n");

  absl::Status unknown = WriteRunLogs(
      {.db = fixture_.db_path, .run = "quickstart-3f9a1c", .task = "", .stages = {"ingets"}},
      ingest, notes);
  EXPECT_EQ(unknown.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(unknown.message(),
            "run quickstart-3f9a1c has no stage 'ingets' (did you mean 'ingest'?)");
}

TEST_F(RunServiceStoreTest, FollowingATaskThatCannotStartSaysWhy) {
  Write(0);  // quickstart-c0ffee's engine is gone
  auto follow = [&](const std::string& run, const std::string& task) {
    std::ostringstream out;
    std::ostringstream notes;
    absl::Status status =
        WriteLog({.db = fixture_.db_path, .run = run, .task = task, .follow = true}, out, notes);
    EXPECT_EQ(out.str(), "");
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
    return std::string(status.message());
  };
  EXPECT_EQ(follow("quickstart-3f9a1c", "notify"),
            "notify will not run: upstream task publish failed");
  EXPECT_EQ(follow("quickstart-c0ffee", "train"),
            "train has not started and will not while run quickstart-c0ffee has no engine: its "
            "tierflow process is gone (resume with: tierflow resume quickstart-c0ffee)");
  auto db = scheduler::OpenStore(fixture_.db_path);
  ASSERT_TRUE(db.ok()) << db.status();
  ASSERT_TRUE(
      (*db)->Execute("UPDATE runs SET state = 'failed' WHERE id = 'quickstart-c0ffee'").ok());
  EXPECT_EQ(follow("quickstart-c0ffee", "train"),
            "train will not run: run quickstart-c0ffee ended (failed) without running it");
  ASSERT_TRUE((*db)
                  ->Execute("UPDATE tasks SET state = 'cancelled', message = 'the run was "
                            "cancelled' WHERE run_id = 'quickstart-c0ffee' AND id = 'train'")
                  .ok());
  EXPECT_EQ(follow("quickstart-c0ffee", "train"),
            "train will not run: it was cancelled: the run was cancelled");
}

TEST_F(RunServiceStoreTest, StatusShowsTheEngineStagesRunningAndFailedTasks) {
  Write(0);  // quickstart-c0ffee's engine is gone
  auto live = ShowRun(fixture_.db_path, "quickstart-c0ffee");
  ASSERT_TRUE(live.ok()) << live.status();
  std::ostringstream text;
  RenderStatusText(*live, live->run.created_at_ms + 65000, StatePainter(), text);
  EXPECT_TRUE(Contains(text.str(),
                       "run quickstart-c0ffee (quickstart): running\n"
                       "engine: gone (pid 0); resume with: tierflow resume quickstart-c0ffee\n"
                       "tasks: 6 tasks: 1 running, 1 queued, 4 pending\n"))
      << text.str();
  EXPECT_TRUE(Contains(text.str(), "ingest   2      0     1        1        0       0\n"))
      << text.str();
  EXPECT_TRUE(
      Contains(text.str(), "running:\n  TASK       ATTEMPT  FOR\n  ingest[0]  1        1m5s\n"))
      << text.str();

  auto failed = ShowRun(fixture_.db_path, "quickstart-3f9a1c");
  ASSERT_TRUE(failed.ok()) << failed.status();
  std::ostringstream json_text;
  RenderStatusJson(*failed, json_text);
  const Json json = Json::parse(json_text.str());
  EXPECT_EQ(json["state"], "failed");
  EXPECT_EQ(json["engine"], "not_running");
  ASSERT_EQ(json["failed"].size(), 2u) << json.dump(2);
  EXPECT_EQ(json["failed"][0]["task_id"], "publish");
  EXPECT_EQ(json["failed"][0]["message"], "timed out after 30s (killed by SIGTERM)");
  EXPECT_EQ(json["failed"][1]["state"], "upstream_failed");
  EXPECT_EQ(json["stages"].size(), 5u);
  EXPECT_EQ(json["stages"][0]["stage"], "ingest");
  EXPECT_EQ(json["stages"][0]["succeeded"], 2);
}

TEST_F(RunServiceStoreTest, LogThatIsGoneIsAnErrorNamingIt) {
  Write(scheduler::testing::DeadPid());
  const std::string log = dir_ + "/runs/quickstart-3f9a1c/logs/train.attempt-1.log";
  std::filesystem::remove(log);
  std::ostringstream out;
  std::ostringstream notes;
  absl::Status status =
      WriteLog({.db = fixture_.db_path, .run = "quickstart-3f9a1c", .task = "train"}, out, notes);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Contains(status.message(), log));
}

TEST_F(RunServiceStoreTest, FollowStopsAtOnceWhenTheEngineIsGone) {
  Write(scheduler::testing::DeadPid());
  std::ofstream(fixture_.running_log) << "half a line";
  std::ostringstream out;
  std::ostringstream notes;
  absl::Status status = WriteLog(
      {.db = fixture_.db_path, .run = "last", .task = "ingest[0]", .follow = true}, out, notes);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(out.str(), "half a line");
  EXPECT_EQ(notes.str(),
            "the engine of run quickstart-c0ffee is gone; stopped following (resume with: "
            "tierflow resume quickstart-c0ffee)\n");
}

// An ostream whose text another thread can wait for.
class WatchedBuffer : public std::streambuf {
 public:
  // Waits up to 30 s (a hang, not a timing assumption) for `part`.
  bool WaitFor(const std::string& part) {
    std::unique_lock lock(mu_);
    return changed_.wait_for(lock, std::chrono::seconds(30),
                             [&] { return text_.find(part) != std::string::npos; });
  }
  std::string text() {
    std::lock_guard lock(mu_);
    return text_;
  }

 protected:
  int_type overflow(int_type c) override {
    if (c != traits_type::eof()) {
      char ch = traits_type::to_char_type(c);
      xsputn(&ch, 1);
    }
    return traits_type::not_eof(c);
  }
  std::streamsize xsputn(const char* data, std::streamsize n) override {
    {
      std::lock_guard lock(mu_);
      text_.append(data, static_cast<size_t>(n));
    }
    changed_.notify_all();
    return n;
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  std::string text_;
};

void Append(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::app) << text;
}

TEST_F(RunServiceStoreTest, FollowGoesOnToTheRetryUntilTheTaskIsDone) {
  scheduler::testing::FakeEngine engine;
  ASSERT_GT(engine.pid(), 0);
  Write(engine.pid());
  auto db = scheduler::OpenStore(fixture_.db_path);
  ASSERT_TRUE(db.ok()) << db.status();
  Append(fixture_.running_log, "a1 line 1\n");

  WatchedBuffer out_buffer;
  std::ostream out(&out_buffer);
  std::ostringstream notes;
  std::promise<absl::Status> done;
  std::thread follower([&] {
    done.set_value(WriteLog({.db = fixture_.db_path,
                             .run = "quickstart-c0ffee",
                             .task = "ingest[0]",
                             .follow = true,
                             .recheck = std::chrono::milliseconds(50)},
                            out, notes));
  });
  ASSERT_TRUE(out_buffer.WaitFor("a1 line 1\n"));
  Append(fixture_.running_log, "a1 line 2\n");
  ASSERT_TRUE(out_buffer.WaitFor("a1 line 2\n"));

  // Attempt 1 fails; the engine retries: attempt 2's row first, its log after.
  std::string second_log = fixture_.running_log;
  second_log.replace(second_log.rfind("attempt-1"), 9, "attempt-2");
  ASSERT_TRUE((*db)
                  ->Execute("UPDATE attempts SET state = 'failed', exit_code = 1 WHERE id = 14; "
                            "UPDATE tasks SET state = 'retrying' WHERE run_id = "
                            "'quickstart-c0ffee' AND id = 'ingest[0]'")
                  .ok());
  ASSERT_TRUE((*db)
                  ->Execute("INSERT INTO attempts(id, run_id, task_id, number, state, worker, "
                            "command, started_at, log_path) VALUES (15, 'quickstart-c0ffee', "
                            "'ingest[0]', 2, 'running', 'local', '{}', 1, '" +
                            second_log +
                            "'); UPDATE tasks SET state = 'running', attempts = 2 WHERE run_id "
                            "= 'quickstart-c0ffee' AND id = 'ingest[0]'")
                  .ok());
  Append(second_log, "a2 line 1\n");
  ASSERT_TRUE(out_buffer.WaitFor("a2 line 1\n"));
  Append(second_log, "a2 line 2\n");
  ASSERT_TRUE((*db)
                  ->Execute("UPDATE attempts SET state = 'succeeded', exit_code = 0 WHERE id = "
                            "15; UPDATE tasks SET state = 'succeeded' WHERE run_id = "
                            "'quickstart-c0ffee' AND id = 'ingest[0]'")
                  .ok());

  std::future<absl::Status> result = done.get_future();
  if (result.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
    ADD_FAILURE() << "follow did not end with the task";
    // Unblock it: a run that is no longer running ends any follow.
    (void)(*db)->Execute("UPDATE runs SET state = 'failed' WHERE id = 'quickstart-c0ffee'");
  }
  follower.join();
  EXPECT_TRUE(result.get().ok());
  EXPECT_EQ(out_buffer.text(), "a1 line 1\na1 line 2\na2 line 1\na2 line 2\n");
  EXPECT_TRUE(Contains(notes.str(), "--- ingest[0] attempt 2 (")) << notes.str();
}

// A task that waited more than 5% of its time on data gets an advisor line
// naming the tier it read the most from; one below 5% does not.
TEST(RenderRunTest, DataWaitsAndTheAdvisor) {
  RunDetail detail = SmallDetail();
  scheduler::AttemptRow& slow = detail.tasks[1].attempts.back();  // train: 1m, attempt 2
  slow.input_wait_ms = 2000;
  slow.data_wait_ms = 10000;
  slow.io_wait_ms = 400;
  slow.read_bytes = int64_t{3} << 30;
  slow.write_bytes = 1024;
  slow.reads = {{"shards", "bulk", int64_t{3} << 30}, {"labels", "ram", 1000}};
  scheduler::AttemptRow& fast = detail.tasks[0].attempts.back();  // prep: 1s
  fast.input_wait_ms = 0;
  fast.data_wait_ms = 10;
  std::ostringstream text;
  RenderRunText(detail, /*all_attempts=*/false, text);
  EXPECT_TRUE(Contains(text.str(),
                       "DATA   WAITED  OF ITS TIME  BLOCKED ON I/O  READ   WRITTEN  "
                       "READ FROM\n"))
      << text.str();
  EXPECT_TRUE(Contains(text.str(),
                       "train  12s     19%          400ms           3 GiB  1 KiB    "
                       "shards on bulk, labels on ram\n"))
      << text.str();
  EXPECT_TRUE(Contains(text.str(),
                       "advisor: train waited 12s on data, 19% of its 1m2s, reading "
                       "shards (3 GiB) from tier bulk: "))
      << text.str();
  EXPECT_FALSE(Contains(text.str(), "advisor: prep")) << text.str();

  std::ostringstream json_text;
  RenderRunJson(detail, json_text);
  Json json = Json::parse(json_text.str());
  ASSERT_EQ(json["advice"].size(), 1u);
  EXPECT_TRUE(Contains(json["advice"][0].get<std::string>(), "train waited 12s")) << json["advice"];
  EXPECT_EQ(json["tasks"][1]["attempts"][1]["data_wait_ms"], 10000);
  EXPECT_EQ(json["tasks"][1]["attempts"][1]["reads"][0],
            Json({{"input", "shards"}, {"tier", "bulk"}, {"bytes", int64_t{3} << 30}}));
}

// Checkpoints a task committed: a table in the text, an array in JSON.
TEST(RenderRunTest, Checkpoints) {
  RunDetail detail = SmallDetail();
  scheduler::CheckpointRow flushed;
  flushed.task_id = "train";
  flushed.attempt_id = 7;
  flushed.name = "step-00000002";
  flushed.step = 2;
  flushed.local_uri = "/dev/shm/x/step-00000002";
  flushed.tier = "bulk";
  flushed.uri = "s3://b/runs/demo/checkpoints/train/step-00000002";
  flushed.bytes = 3 << 20;
  flushed.content_hash = "xxh3:0123456789abcdef0123456789abcdef";
  flushed.state = "present";
  flushed.flush_ms = 1500;
  scheduler::CheckpointRow failed = flushed;
  failed.name = "step-00000003";
  failed.step = 3;
  failed.bytes.reset();
  failed.content_hash.clear();
  failed.state = "failed";
  failed.message = "tier bulk: 503";
  detail.checkpoints = {flushed, failed};
  std::ostringstream text;
  RenderRunText(detail, /*all_attempts=*/false, text);
  EXPECT_TRUE(Contains(text.str(),
                       "CHECKPOINT           STEP  STATE    SIZE   FLUSHED TO  FLUSH    HASH\n"
                       "train/step-00000002  2     present  3 MiB  bulk        1s500ms  "
                       "xxh3:0123456789ab\n"
                       "train/step-00000003  3     failed   -      bulk        1s500ms  -\n"))
      << text.str();
  std::ostringstream json_text;
  RenderRunJson(detail, json_text);
  Json json = Json::parse(json_text.str());
  ASSERT_EQ(json["checkpoints"].size(), 2u);
  EXPECT_EQ(json["checkpoints"][0]["step"], 2);
  EXPECT_EQ(json["checkpoints"][0]["bytes"], 3 << 20);
  EXPECT_EQ(json["checkpoints"][1]["state"], "failed");
  EXPECT_EQ(json["checkpoints"][1]["content_hash"], nullptr);
  EXPECT_EQ(json["checkpoints"][1]["message"], "tier bulk: 503");
}

}  // namespace
}  // namespace tierflow::api
