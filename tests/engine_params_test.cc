// A stage sees, and is keyed by, only the params it uses (docs/pipeline-
// format.md "Params"), in process on real shell tasks (the fixture:
// tests/engine/engine_fixture.h): changing `epochs` reruns train and what
// follows it, and nothing upstream; a param no stage uses reruns nothing;
// `params: all` keeps every param in the key.
#include "tests/engine/engine_fixture.h"

namespace tierflow::testing {
namespace {

using Counts = std::map<std::string, int>;
using States = std::map<std::string, std::string>;

TEST_F(EngineTest, ChangingAParamRerunsOnlyTheStagesThatUseItAndWhatFollows) {
  // train.sh reads epochs itself, which the loader cannot see: train
  // declares it. lr it references in its argv.
  WriteFile(dir_ / "train.sh", R"x(echo train >> executions
{ cat "$TIERFLOW_INPUT_FEATURES"; echo "lr=$1 epochs=$TIERFLOW_PARAM_EPOCHS"; } > "$TIERFLOW_OUTPUT_MODEL"
)x");
  WritePipeline(R"x(name: params_cache
params:
  lr: 0.1
  epochs: 3
  unused: a
stages:
  ingest:
    run: echo ingest >> executions; echo "raw $(env | grep -c '^TIERFLOW_PARAM_')" > "$TIERFLOW_OUTPUT_RAW"
    outputs: [raw]
  feature:
    inputs: {raw: ingest.raw}
    run: echo feature >> executions; cat "$TIERFLOW_INPUT_RAW" > "$TIERFLOW_OUTPUT_FEATURES"
    outputs: [features]
  train:
    inputs: {features: feature.features}
    run: [sh, train.sh, "{{ params.lr }}"]
    params: [epochs]
    outputs: [model]
  evaluate:
    inputs: {model: train.model}
    run: echo evaluate >> executions; cat "$TIERFLOW_INPUT_MODEL" > "$TIERFLOW_OUTPUT_SCORE"
    outputs: [score]
  report:
    needs: [ingest]
    params: all
    run: echo report >> executions; env | grep '^TIERFLOW_PARAM_' | sort > "$TIERFLOW_OUTPUT_ALL"
    outputs: [all]
)x");
  auto executions = [&] { return CountLines(dir_ / "executions"); };

  absl::StatusOr<RunResult> run1 = Run();
  ASSERT_TRUE(run1.ok()) << run1.status();
  ASSERT_EQ(run1->state, RunState::kSucceeded);
  EXPECT_EQ(executions(),
            (Counts{{"ingest", 1}, {"feature", 1}, {"train", 1}, {"evaluate", 1}, {"report", 1}}));
  const fs::path artifacts1 = RunDir(run1->run_id) / "artifacts";
  EXPECT_EQ(ReadFile(artifacts1 / "ingest" / "raw"), "raw 0\n")
      << "ingest uses no param: none is in its environment";
  EXPECT_EQ(ReadFile(artifacts1 / "evaluate" / "score"), "raw 0\nlr=0.1 epochs=3\n");
  EXPECT_EQ(ReadFile(artifacts1 / "report" / "all"),
            "TIERFLOW_PARAM_EPOCHS=3\nTIERFLOW_PARAM_LR=0.1\nTIERFLOW_PARAM_UNUSED=a\n");

  // epochs changed: train and evaluate (its input changed) run, and report
  // (params: all); ingest and feature are reused.
  absl::StatusOr<RunResult> run2 = Run({{"epochs", "5"}});
  ASSERT_TRUE(run2.ok()) << run2.status();
  ASSERT_EQ(run2->state, RunState::kSucceeded);
  EXPECT_EQ(TaskStates(run2->run_id), (States{{"ingest", "cached"},
                                              {"feature", "cached"},
                                              {"train", "succeeded"},
                                              {"evaluate", "succeeded"},
                                              {"report", "succeeded"}}));
  EXPECT_EQ(executions(),
            (Counts{{"ingest", 1}, {"feature", 1}, {"train", 2}, {"evaluate", 2}, {"report", 2}}));
  EXPECT_EQ(ReadFile(RunDir(run2->run_id) / "artifacts" / "evaluate" / "score"),
            "raw 0\nlr=0.1 epochs=5\n");

  // A param no stage uses but report (params: all): only report runs.
  absl::StatusOr<RunResult> run3 = Run({{"epochs", "5"}, {"unused", "b"}});
  ASSERT_TRUE(run3.ok()) << run3.status();
  ASSERT_EQ(run3->state, RunState::kSucceeded);
  EXPECT_EQ(TaskStates(run3->run_id), (States{{"ingest", "cached"},
                                              {"feature", "cached"},
                                              {"train", "cached"},
                                              {"evaluate", "cached"},
                                              {"report", "succeeded"}}));
  EXPECT_EQ(executions(),
            (Counts{{"ingest", 1}, {"feature", 1}, {"train", 2}, {"evaluate", 2}, {"report", 3}}));

  // lr changed: train references it in its argv, so train and evaluate run.
  absl::StatusOr<RunResult> run4 = Run({{"epochs", "5"}, {"unused", "b"}, {"lr", "0.2"}});
  ASSERT_TRUE(run4.ok()) << run4.status();
  EXPECT_EQ(TaskStates(run4->run_id)["feature"], "cached");
  EXPECT_EQ(TaskStates(run4->run_id)["train"], "succeeded");
  EXPECT_EQ(TaskStates(run4->run_id)["evaluate"], "succeeded");
}

TEST_F(EngineTest, AParamNoStageUsesRerunsNothing) {
  WritePipeline(R"x(name: params_unused
params:
  lr: 0.1
  note: first
stages:
  make:
    run: echo make >> executions; echo "$TIERFLOW_PARAM_LR" > "$TIERFLOW_OUTPUT_OUT"
    outputs: [out]
  use:
    inputs: {in: make.out}
    run: echo use >> executions; cat "$TIERFLOW_INPUT_IN" > "$TIERFLOW_OUTPUT_OUT"
    outputs: [out]
)x");
  absl::StatusOr<RunResult> run1 = Run();
  ASSERT_TRUE(run1.ok()) << run1.status();
  ASSERT_EQ(run1->state, RunState::kSucceeded);
  absl::StatusOr<RunResult> run2 = Run({{"note", "second"}});
  ASSERT_TRUE(run2.ok()) << run2.status();
  ASSERT_EQ(run2->state, RunState::kSucceeded);
  EXPECT_EQ(TaskStates(run2->run_id), (States{{"make", "cached"}, {"use", "cached"}}));
  EXPECT_EQ(CountLines(dir_ / "executions"), (Counts{{"make", 1}, {"use", 1}}));
}

}  // namespace
}  // namespace tierflow::testing
