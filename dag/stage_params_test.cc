// Which params a stage sees and is keyed by (docs/pipeline-format.md
// "Params"): those its run and env reference, those it declares, or all.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dag/graph.h"
#include "dag/loader.h"

namespace tierflow::dag {
namespace {

using Names = std::vector<std::string>;

std::string Report(std::string_view yaml) {
  auto pipeline = LoadPipelineText(yaml, "p.yaml", {});
  return pipeline.ok() ? "" : std::string(pipeline.status().message());
}

Pipeline MustLoad(std::string_view yaml) {
  auto pipeline = LoadPipelineText(yaml, "p.yaml", {});
  EXPECT_TRUE(pipeline.ok()) << pipeline.status();
  return pipeline.ok() ? *std::move(pipeline) : Pipeline{};
}

const Stage& StageNamed(const Pipeline& p, std::string_view name) {
  int s = p.FindStage(name);
  EXPECT_GE(s, 0) << name;
  return p.stages[s < 0 ? 0 : s];
}

constexpr char kParams[] = R"(name: p
params:
  lr: 0.1
  epochs: 3
  regions: [eu, us]
  seed: 7
stages:
)";

TEST(StageParamsTest, AStageWithoutParamsKeySeesWhatItsRunAndEnvReference) {
  Pipeline p = MustLoad(std::string(kParams) + R"x(
  shell:
    run: 'train --lr "$TIERFLOW_PARAM_LR" --epochs ${TIERFLOW_PARAM_EPOCHS:-1}'
  argv:
    run: ["train", "--seed={{ params.seed }}", "$TIERFLOW_PARAM_REGIONS"]
  env_value:
    run: ["train"]
    env: {SEED: "{{ params.seed }}", LR: "${TIERFLOW_PARAM_LR}"}
  python:
    run: 'python3 -c "import os; print(os.environ[\"TIERFLOW_PARAM_EPOCHS\"])"'
  none:
    run: 'echo $TIERFLOW_PARAM_LRX $XTIERFLOW_PARAM_LR $TIERFLOW_PARAM_lr'
  foreach_only:
    foreach: "{{ params.regions }}"
    run: ["ingest", "{{ item }}"]
)x");
  for (const Stage& stage : p.stages) {
    EXPECT_EQ(stage.param_scope, ParamScope::kReferenced) << stage.name;
  }
  // In the pipeline's order, whatever the order of the references.
  EXPECT_EQ(StageNamed(p, "shell").params, (Names{"lr", "epochs"}));
  EXPECT_EQ(StageNamed(p, "argv").params, (Names{"regions", "seed"}));
  EXPECT_EQ(StageNamed(p, "env_value").params, (Names{"lr", "seed"}));
  EXPECT_EQ(StageNamed(p, "python").params, Names{"epochs"});
  // Other variables that merely contain the name, and a spelling that is
  // not the variable's (it is upper case), are no reference.
  EXPECT_EQ(StageNamed(p, "none").params, Names{});
  // foreach is resolved by the loader: its items, not the env, carry it.
  EXPECT_EQ(StageNamed(p, "foreach_only").params, Names{});
}

TEST(StageParamsTest, DeclaredParamsJoinTheReferencedOnes) {
  Pipeline p = MustLoad(std::string(kParams) + R"x(
  train:
    run: 'python3 train.py --lr "$TIERFLOW_PARAM_LR"'
    params: [seed, epochs]
  empty:
    run: ["true"]
    params: []
)x");
  const Stage& train = StageNamed(p, "train");
  EXPECT_EQ(train.param_scope, ParamScope::kDeclared);
  EXPECT_EQ(train.params, (Names{"lr", "epochs", "seed"}));
  EXPECT_EQ(StageNamed(p, "empty").param_scope, ParamScope::kDeclared);
  EXPECT_EQ(StageNamed(p, "empty").params, Names{});
}

TEST(StageParamsTest, AllGivesEveryParam) {
  Pipeline p = MustLoad(std::string(kParams) + R"x(
  train:
    run: ["true"]
    params: all
)x");
  EXPECT_EQ(p.stages[0].param_scope, ParamScope::kAll);
  EXPECT_EQ(p.stages[0].params, (Names{"lr", "epochs", "regions", "seed"}));
}

TEST(StageParamsTest, TheTaskEnvironmentHoldsOnlyTheStagesParams) {
  Pipeline p = MustLoad(std::string(kParams) + R"x(
  train:
    run: 'python3 train.py'
    params: [epochs]
    env: {LR: "$TIERFLOW_PARAM_LR"}
)x");
  auto graph = TaskGraph::Build(p);
  ASSERT_TRUE(graph.ok()) << graph.status();
  using Var = std::pair<std::string, std::string>;
  EXPECT_EQ(graph->TaskEnvironment(graph->tasks()[0]),
            (std::vector<Var>{{"TIERFLOW_PARAM_LR", "0.1"},
                              {"TIERFLOW_PARAM_EPOCHS", "3"},
                              {"LR", "$TIERFLOW_PARAM_LR"}}));
  EXPECT_EQ(graph->WithheldParams(graph->tasks()[0]), (Names{"regions", "seed"}));
}

TEST(StageParamsTest, ReportsUnknownRepeatedAndMistypedParams) {
  EXPECT_EQ(Report(std::string(kParams) + R"x(
  train:
    run: ["true"]
    params: [lr, epoch, lr]
  evaluate:
    run: ["true"]
    params: every
  report:
    run: ["true"]
    params: [[lr]]
)x"),
            "p.yaml:11:18: stages.train.params[1]: unknown param 'epoch' in params (did you "
            "mean 'epochs'?)\n"
            "p.yaml:11:25: stages.train.params[2]: duplicate param 'lr' (first at line 11)\n"
            "p.yaml:14:13: stages.evaluate.params: expected a list of param names or 'all', got "
            "'every'\n"
            "p.yaml:17:14: stages.report.params[0]: expected a param name, got a list");
}

}  // namespace
}  // namespace tierflow::dag
