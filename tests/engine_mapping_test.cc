// Item-wise mapping in the engine, on real shell tasks: a mapped stage's
// task starts once its own upstream item succeeded, reads only that item's
// artifact, and when an item fails only that item's chain (and any gather
// of every item) is upstream_failed. Resume keeps the items that succeeded.
// Waits in the tasks are bounded, and a wait that runs out fails its task.
#include "tests/engine/engine_fixture.h"

namespace tierflow::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

// ingest[a] finishes only once clean[b] has started: possible only when
// clean[b] waits for ingest[b] alone, not for the whole ingest stage.
TEST_F(EngineTest, MappedTaskStartsWhenItsOwnItemSucceeded) {
  WritePipeline(R"x(name: itemwise
stages:
  ingest:
    foreach: [a, b]
    run: |
      if [ "$TIERFLOW_ITEM" = a ]; then
        i=0
        while [ ! -f clean_b.started ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
        [ -f clean_b.started ] || { echo "clean[b] never started" >&2; exit 1; }
      fi
      echo "raw-$TIERFLOW_ITEM" > "$TIERFLOW_OUTPUT_RAW"
    outputs: [raw]
  clean:
    foreach: {over: ingest}
    inputs: {raw: ingest.raw}
    run: |
      [ "$TIERFLOW_ITEM" = b ] && touch clean_b.started
      [ -f "$TIERFLOW_INPUT_RAW" ] || { echo "input is not one file" >&2; exit 1; }
      cat "$TIERFLOW_INPUT_RAW" > "$TIERFLOW_OUTPUT_OUT"
    outputs: [out]
)x");
  absl::StatusOr<RunResult> result = Run();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->state, RunState::kSucceeded);
  EXPECT_EQ(result->counts.succeeded, 4u);
  // clean[b] began before ingest[a] ended.
  const std::vector<Row> clean_b = Attempts(result->run_id, "clean[b]");
  const std::vector<Row> ingest_a = Attempts(result->run_id, "ingest[a]");
  ASSERT_EQ(clean_b.size(), 1u);
  ASSERT_EQ(ingest_a.size(), 1u);
  EXPECT_LE(std::stoll(clean_b[0][2]), std::stoll(ingest_a[0][3]));
  // Each item read its own artifact only.
  const fs::path artifacts = RunDir(result->run_id) / "artifacts" / "clean" / "out";
  EXPECT_EQ(ReadFile(artifacts / "a"), "raw-a\n");
  EXPECT_EQ(ReadFile(artifacts / "b"), "raw-b\n");
}

// (`>>ran`, not `>> ran`: a word of a script that names a file is part of
// the cache key, and `ran` changes with every task.)
constexpr std::string_view kChain = R"x(name: chain
stages:
  ingest:
    foreach: [a, b, c]
    run: |
      echo "ingest $TIERFLOW_ITEM" >>ran
      [ "$TIERFLOW_ITEM" != b ] || [ -f fixed ] || exit 7
      echo "$TIERFLOW_ITEM" > "$TIERFLOW_OUTPUT_RAW"
    outputs: [raw]
  clean:
    inputs: {raw: {from: ingest.raw, each: true}}
    run: |
      echo "clean $TIERFLOW_ITEM" >>ran
      printf '%s-clean' "$(cat "$TIERFLOW_INPUT_RAW")" > "$TIERFLOW_OUTPUT_OUT"
    outputs: [out]
  feature:
    foreach: {over: clean}
    inputs:
      clean: clean.out
      every_raw: {from: ingest.raw, each: false}
    run: |
      echo "feature $TIERFLOW_ITEM" >>ran
      printf '%s-feature-%s' "$(cat "$TIERFLOW_INPUT_CLEAN")" \
        "$(ls "$TIERFLOW_INPUT_EVERY_RAW" | wc -l | tr -d ' ')" > "$TIERFLOW_OUTPUT_OUT"
    outputs: [out]
  clean_report:
    inputs: {cleaned: clean.out}
    run: echo report >>ran; ls "$TIERFLOW_INPUT_CLEANED" > "$TIERFLOW_OUTPUT_OUT"
    outputs: [out]
)x";

TEST_F(EngineTest, OneFailedItemFailsOnlyItsChainAndTheGathersOfItsStage) {
  WritePipeline(std::string(kChain));
  absl::StatusOr<RunResult> result = Run();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->state, RunState::kFailed);
  std::map<std::string, std::string> states = TaskStates(result->run_id);
  EXPECT_EQ(states["ingest[a]"], "succeeded");
  EXPECT_EQ(states["ingest[b]"], "failed");
  EXPECT_EQ(states["ingest[c]"], "succeeded");
  // b's chain only.
  EXPECT_EQ(states["clean[a]"], "succeeded");
  EXPECT_EQ(states["clean[b]"], "upstream_failed");
  EXPECT_EQ(states["clean[c]"], "succeeded");
  // feature gathers every ingest item (each: false): all of it fails.
  EXPECT_EQ(states["feature[a]"], "upstream_failed");
  EXPECT_EQ(states["feature[b]"], "upstream_failed");
  EXPECT_EQ(states["feature[c]"], "upstream_failed");
  // A gather of clean needs every item.
  EXPECT_EQ(states["clean_report"], "upstream_failed");
  EXPECT_THAT(QueryValue(Db(), "SELECT message FROM tasks WHERE id = 'clean[b]'"),
              HasSubstr("upstream task ingest[b] failed"));
  std::vector<std::string> ran = ReadLines(dir_ / "ran");
  EXPECT_THAT(ran, UnorderedElementsAre("ingest a", "ingest b", "ingest c", "clean a", "clean c"));
}

TEST_F(EngineTest, ItemChainsRunPerItemAndResumeKeepsTheItemsThatSucceeded) {
  WritePipeline(std::string(kChain));
  absl::StatusOr<RunResult> first = Run();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->state, RunState::kFailed);
  WriteFile(dir_ / "fixed", "");

  std::shared_ptr<scheduler::Engine> engine = api::MakeEmbeddedEngine(Options());
  const std::string run_id = first->run_id;
  absl::StatusOr<RunResult> resumed =
      Drive(engine, [run_id](scheduler::Engine& e) { return e.Resume(run_id); });
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->state, RunState::kSucceeded);
  // Items a and c of ingest and clean ran once, in the first run only.
  std::map<std::string, int> counts = CountLines(dir_ / "ran");
  EXPECT_EQ(counts["ingest a"], 1);
  EXPECT_EQ(counts["ingest b"], 2);
  EXPECT_EQ(counts["ingest c"], 1);
  EXPECT_EQ(counts["clean a"], 1);
  EXPECT_EQ(counts["clean b"], 1);
  EXPECT_EQ(counts["clean c"], 1);
  EXPECT_EQ(counts["feature a"], 1);
  EXPECT_EQ(counts["report"], 1);
  EXPECT_EQ(QueryValue(Db(), "SELECT count(*) FROM attempts WHERE task_id = 'clean[a]'"), "1");
  // Three stages per item, each reading its own item; the gathers see all.
  const fs::path artifacts = RunDir(run_id) / "artifacts";
  for (const std::string item : {"a", "b", "c"}) {
    EXPECT_EQ(ReadFile(artifacts / "feature" / "out" / item), item + "-clean-feature-3") << item;
  }
  EXPECT_THAT(ReadLines(artifacts / "clean_report" / "out"), ElementsAre("a", "b", "c"));

  // A second run reuses every item from the cache.
  absl::StatusOr<RunResult> again = Run();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->state, RunState::kSucceeded);
  std::map<std::string, std::string> states = TaskStates(again->run_id);
  for (const std::string item : {"a", "b", "c"}) {
    EXPECT_EQ(states["clean[" + item + "]"], "cached") << item;
    EXPECT_EQ(states["feature[" + item + "]"], "cached") << item;
  }
}

}  // namespace
}  // namespace tierflow::testing
