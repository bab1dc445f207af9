// Dynamic fan-out in the engine (`foreach: {from: STAGE.OUTPUT}`, scheduler/
// dynamic_expansion.h) on real shell tasks: a task writes a list, the
// engine adds one task per item when it succeeds, a gather after them sees
// every item; JSON lists; bad lists fail the stage naming the task, the
// file and the line; the expansion's record in the store; lineage from each
// item to the list; the cache per item. Resume after kill -9 is in
// crash_resume_test.cc.
#include "common/strings.h"
#include "scheduler/dynamic_expansion.h"
#include "tests/engine/engine_fixture.h"

namespace tierflow::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class DynamicFanOutTest : public EngineTest {
 protected:
  // list writes `items.txt` (a file of the test folder) as its list;
  // process runs once per item and writes the item; gather counts them.
  void WriteListPipeline(const std::string& format, bool list_cache = true) {
    WritePipeline(StrCat(R"x(name: dyn
stages:
  list:
    run: cat items.txt > "$TIERFLOW_OUTPUT_SHARDS"
    outputs: [shards]
    cache: )x",
                         list_cache ? "true" : "false", R"x(
  process:
    foreach: {from: list.shards, format: )x",
                         format, R"x(}
    run: |
      echo "$TIERFLOW_ITEM" >> ran
      echo "item $TIERFLOW_ITEM" > "$TIERFLOW_OUTPUT_OUT"
    outputs: [out]
  gather:
    inputs: {all: process.out}
    run: ls "$TIERFLOW_INPUT_ALL" | sort > gathered
)x"));
  }
};

TEST_F(DynamicFanOutTest, ProducerListFansOutAndGatherSeesEveryItem) {
  WriteListPipeline("lines");
  WriteFile(dir_ / "items.txt", "north\nsouth\neast\n\n");
  absl::StatusOr<RunResult> result = Run();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->state, RunState::kSucceeded);
  EXPECT_EQ(result->counts.total, 5u);
  EXPECT_EQ(result->counts.succeeded, 5u);
  const std::map<std::string, std::string> states = TaskStates(result->run_id);
  EXPECT_EQ(states.size(), 5u);
  EXPECT_EQ(states.at("process[north]"), "succeeded");
  EXPECT_EQ(states.at("process[south]"), "succeeded");
  EXPECT_EQ(states.at("process[east]"), "succeeded");
  // Each item once; the gather after all of them.
  EXPECT_EQ(CountLines(dir_ / "ran"),
            (std::map<std::string, int>{{"east", 1}, {"north", 1}, {"south", 1}}));
  EXPECT_THAT(ReadLines(dir_ / "gathered"), ElementsAre("east", "north", "south"));
  // Rows in list order, with their items and indexes.
  EXPECT_EQ(QueryValue(Db(),
                       "SELECT group_concat(item || ':' || item_index, ',') FROM (SELECT item, "
                       "item_index FROM tasks WHERE stage = 'process' ORDER BY item_index)"),
            "north:0,south:1,east:2");
  // The expansion's record: which stage, from which artifact, how many.
  const std::string list_artifact =
      QueryValue(Db(), "SELECT id FROM artifacts WHERE task_id = 'list' AND name = 'shards'");
  EXPECT_EQ(
      QueryValue(Db(), "SELECT message FROM events WHERE kind = 'stage_expanded'"),
      StrCat("stage 'process' expanded into 3 tasks from list.shards (artifact #", list_artifact,
             ", ", QueryValue(Db(), "SELECT content_hash FROM artifacts WHERE task_id = 'list'"),
             ")"));
  // Lineage: every item's attempt consumed the list.
  EXPECT_EQ(QueryValue(Db(),
                       "SELECT count(DISTINCT a.task_id) FROM lineage_edges e JOIN attempts a ON "
                       "a.id = e.attempt_id WHERE e.direction = 'consumed' AND e.name = "
                       "'foreach' AND e.artifact_id = " +
                           list_artifact + " AND a.task_id LIKE 'process[%'"),
            "3");
}

TEST_F(DynamicFanOutTest, JsonListOfScalarsFansOut) {
  WriteListPipeline("json");
  WriteFile(dir_ / "items.txt", R"(["a-1", 7, true, 2.5])");
  absl::StatusOr<RunResult> result = Run();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->state, RunState::kSucceeded);
  const std::map<std::string, std::string> states = TaskStates(result->run_id);
  EXPECT_EQ(states.at("process[a-1]"), "succeeded");
  EXPECT_EQ(states.at("process[7]"), "succeeded");
  EXPECT_EQ(states.at("process[true]"), "succeeded");
  EXPECT_EQ(states.at("process[2.5]"), "succeeded");
  EXPECT_EQ(ReadLines(dir_ / "gathered").size(), 4u);
}

struct BadList {
  const char* name;
  const char* format;
  std::string text;
  const char* error;
};

class DynamicBadListTest : public DynamicFanOutTest,
                           public ::testing::WithParamInterface<BadList> {};

TEST_P(DynamicBadListTest, FailsTheStageNamingTaskFileAndLine) {
  const BadList& bad = GetParam();
  WriteListPipeline(bad.format);
  WriteFile(dir_ / "items.txt", bad.text);
  absl::StatusOr<RunResult> result = Run();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->state, RunState::kFailed);
  const std::map<std::string, std::string> states = TaskStates(result->run_id);
  EXPECT_EQ(states.at("list"), "succeeded");
  EXPECT_EQ(states.at("process"), "failed");
  EXPECT_EQ(states.at("gather"), "upstream_failed");
  EXPECT_EQ(states.size(), 3u) << "no item's task may be recorded";
  EXPECT_FALSE(fs::exists(dir_ / "ran")) << "no item ran";
  const std::string message = QueryValue(Db(), "SELECT message FROM tasks WHERE id = 'process'");
  EXPECT_THAT(message, HasSubstr("the list list.shards ("));
  EXPECT_THAT(message, HasSubstr("written by task 'list' cannot be expanded: "));
  EXPECT_THAT(message, HasSubstr(bad.error));
  ASSERT_EQ(result->failures.size(), 1u);
  EXPECT_EQ(result->failures[0].task_id, "process");
}

std::string ManyLines(size_t n) {
  std::string text;
  for (size_t i = 0; i < n; ++i) text += StrCat(i, "\n");
  return text;
}

INSTANTIATE_TEST_SUITE_P(
    Lists, DynamicBadListTest,
    ::testing::Values(
        BadList{"duplicate", "lines", "a\nb\na\n",
                "line 3: duplicate item 'a' (first at line 1): task ids must be unique"},
        BadList{"empty_line", "lines", "a\n\nb\n", "line 2: an empty item: items name tasks"},
        BadList{"no_items", "lines", "\n\n", "no items: a foreach stage needs at least one"},
        BadList{"too_many", "lines", ManyLines(1'000'001),
                "1000001 items: a foreach stage may have at most 1000000"},
        BadList{"bad_json", "json", "[\"a\", ",
                "not valid JSON: expected an array of strings, numbers or bools"},
        BadList{"json_object_item", "json", R"(["a", {"b": 1}])",
                "element 1: expected a string, number or bool, got an object"},
        BadList{"json_duplicate", "json", R"(["a", "b", "b"])",
                "element 2: duplicate item 'b' (first at element 1)"}),
    [](const ::testing::TestParamInfo<BadList>& info) { return std::string(info.param.name); });

TEST_F(DynamicFanOutTest, SecondRunReusesEveryItemAndRunsOnlyANewOne) {
  WriteListPipeline("lines", /*list_cache=*/false);
  WriteFile(dir_ / "items.txt", "a\nb\n");
  absl::StatusOr<RunResult> first = Run();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->state, RunState::kSucceeded);
  fs::remove(dir_ / "ran");

  WriteFile(dir_ / "items.txt", "a\nb\nc\n");
  absl::StatusOr<RunResult> second = Run();
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->state, RunState::kSucceeded);
  const std::map<std::string, std::string> states = TaskStates(second->run_id);
  EXPECT_EQ(states.at("process[a]"), "cached");
  EXPECT_EQ(states.at("process[b]"), "cached");
  EXPECT_EQ(states.at("process[c]"), "succeeded");
  EXPECT_THAT(ReadLines(dir_ / "ran"), ElementsAre("c"));
  // The gather's input changed (one more item): it runs, and sees all three.
  EXPECT_EQ(states.at("gather"), "succeeded");
  EXPECT_THAT(ReadLines(dir_ / "gathered"), ElementsAre("a", "b", "c"));
}

TEST(ItemListTest, LinesSkipOnlyTrailingBlankLinesAndAcceptCrlf) {
  scheduler::internal::ItemList list =
      scheduler::internal::ParseItemList("x\r\ny\r\n\r\n", dag::ItemListFormat::kLines);
  EXPECT_EQ(list.error, "");
  EXPECT_THAT(list.items, ElementsAre("x", "y"));
  list = scheduler::internal::ParseItemList("x\n\ty\n", dag::ItemListFormat::kLines);
  EXPECT_EQ(list.error, "line 2: item '\\ty' holds a control character: items name tasks");
  EXPECT_TRUE(list.items.empty());
}

// A map over a dynamic stage (`foreach: {over: process}`) expands with it,
// each item waiting for its own: one item failing fails only its chain,
// and the gather after the map.
TEST_F(DynamicFanOutTest, MapOverADynamicStageRunsPerItemAndFailsOnlyItsChain) {
  WritePipeline(R"x(name: dynmap
stages:
  list:
    run: cat items.txt > "$TIERFLOW_OUTPUT_SHARDS"
    outputs: [shards]
  process:
    foreach: {from: list.shards}
    run: |
      test "$TIERFLOW_ITEM" != bad || exit 3
      echo "item $TIERFLOW_ITEM" > "$TIERFLOW_OUTPUT_OUT"
    outputs: [out]
  post:
    foreach: {over: process}
    inputs: {one: process.out}
    run: |
      echo "$TIERFLOW_ITEM" >> posted
      cp "$TIERFLOW_INPUT_ONE" "$TIERFLOW_OUTPUT_OUT"
    outputs: [out]
  gather:
    inputs: {all: post.out}
    run: ls "$TIERFLOW_INPUT_ALL" > gathered
)x");
  WriteFile(dir_ / "items.txt", "a\nbad\nc\n");
  absl::StatusOr<RunResult> result = Run();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->state, RunState::kFailed);
  const std::map<std::string, std::string> states = TaskStates(result->run_id);
  EXPECT_EQ(states.at("process[a]"), "succeeded");
  EXPECT_EQ(states.at("process[bad]"), "failed");
  EXPECT_EQ(states.at("post[a]"), "succeeded");
  EXPECT_EQ(states.at("post[c]"), "succeeded");
  EXPECT_EQ(states.at("post[bad]"), "upstream_failed");
  EXPECT_EQ(states.at("gather"), "upstream_failed");
  EXPECT_EQ(states.size(), 8u);
  // Each mapped item read its own item's output only.
  EXPECT_EQ(CountLines(dir_ / "posted"), (std::map<std::string, int>{{"a", 1}, {"c", 1}}));
}

// A bad list fails the dynamic stage, the map over it (which never got
// items) and the gather after that: the run ends instead of waiting.
TEST_F(DynamicFanOutTest, BadListFailsTheMapOverItAndWhatFollows) {
  WritePipeline(R"x(name: dynmapbad
stages:
  list:
    run: printf 'a\na\n' > "$TIERFLOW_OUTPUT_SHARDS"
    outputs: [shards]
  process:
    foreach: {from: list.shards}
    run: echo "$TIERFLOW_ITEM" > "$TIERFLOW_OUTPUT_OUT"
    outputs: [out]
  post:
    foreach: {over: process}
    inputs: {one: process.out}
    run: cp "$TIERFLOW_INPUT_ONE" "$TIERFLOW_OUTPUT_OUT"
    outputs: [out]
  gather:
    inputs: {all: post.out}
    run: ls "$TIERFLOW_INPUT_ALL"
)x");
  absl::StatusOr<RunResult> result = Run();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->state, RunState::kFailed);
  const std::map<std::string, std::string> states = TaskStates(result->run_id);
  EXPECT_EQ(states.at("process"), "failed");
  EXPECT_EQ(states.at("gather"), "upstream_failed");
  EXPECT_EQ(states.count("post"), 0u) << "a map over a stage without items has no task";
}

// A resume rebuilds the map over a dynamic stage from the recorded rows:
// the items that succeeded are kept, the failed item's chain runs, and the
// expansion is not made again.
TEST_F(DynamicFanOutTest, ResumeKeepsTheMapOverADynamicStageAndRunsOnlyTheFailedChain) {
  WritePipeline(R"x(name: dynmapresume
stages:
  list:
    run: printf 'a\nb\nc\n' > "$TIERFLOW_OUTPUT_SHARDS"
    outputs: [shards]
  process:
    foreach: {from: list.shards}
    run: echo "$TIERFLOW_ITEM" > "$TIERFLOW_OUTPUT_OUT"
    outputs: [out]
  post:
    foreach: {over: process}
    inputs: {one: process.out}
    run: |
      echo "$TIERFLOW_ITEM" >> posted
      test "$TIERFLOW_ITEM" != b || test -e fixed || exit 3
      cp "$TIERFLOW_INPUT_ONE" "$TIERFLOW_OUTPUT_OUT"
    outputs: [out]
  gather:
    inputs: {all: post.out}
    run: cat "$TIERFLOW_INPUT_ALL"/* | sort | tr -d '\n' > gathered
)x");
  absl::StatusOr<RunResult> first = Run();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->state, RunState::kFailed);
  EXPECT_EQ(TaskStates(first->run_id).at("post[b]"), "failed");
  WriteFile(dir_ / "fixed", "");

  std::shared_ptr<scheduler::Engine> engine = api::MakeEmbeddedEngine(Options());
  const std::string run_id = first->run_id;
  absl::StatusOr<RunResult> resumed =
      Drive(engine, [run_id](scheduler::Engine& e) { return e.Resume(run_id); });
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->state, RunState::kSucceeded);
  EXPECT_EQ(CountLines(dir_ / "posted"),
            (std::map<std::string, int>{{"a", 1}, {"b", 2}, {"c", 1}}));
  EXPECT_EQ(ReadLines(dir_ / "gathered"), std::vector<std::string>{"abc"});
  EXPECT_EQ(QueryValue(Db(), "SELECT count(*) FROM tasks WHERE run_id = '" + run_id + "'"), "8");
  EXPECT_EQ(QueryValue(Db(), "SELECT count(*) FROM events WHERE kind = 'stage_expanded'"), "2")
      << "process and post, expanded once";
}

// A list output that is a folder is refused as such, not read as no items.
TEST_F(DynamicFanOutTest, AListThatIsAFolderFailsSayingSo) {
  WritePipeline(R"x(name: dynfolder
stages:
  list:
    run: mkdir -p "$TIERFLOW_OUTPUT_SHARDS" && echo a > "$TIERFLOW_OUTPUT_SHARDS/x"
    outputs: [shards]
  process:
    foreach: {from: list.shards}
    run: echo "$TIERFLOW_ITEM"
)x");
  absl::StatusOr<RunResult> result = Run();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->state, RunState::kFailed);
  EXPECT_THAT(QueryValue(Db(), "SELECT message FROM tasks WHERE id = 'process'"),
              HasSubstr("written by task 'list' cannot be expanded: it is a folder: a list is "
                        "one file"));
}

}  // namespace
}  // namespace tierflow::testing
