#include "scheduler/plan.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tierflow::scheduler {
namespace {

// Pipelines are built in code so plan tests do not depend on the YAML loader.
dag::Stage MakeStage(const std::string& name, dag::StageKind kind,
                     std::vector<std::string> needs = {}) {
  dag::Stage stage;
  stage.name = name;
  stage.kind = kind;
  stage.io = dag::DefaultIoProfile(kind);
  stage.needs = std::move(needs);
  stage.run.argv = {"true"};
  return stage;
}

// ingest[a], ingest[b] -> clean -> train, plus an independent report.
dag::Pipeline ThreeLayerPipeline() {
  dag::Pipeline pipeline;
  pipeline.file = "p.yaml";
  pipeline.name = "p";
  pipeline.description = "three layers";

  dag::Param shards;
  shards.name = "shards";
  shards.type = dag::ParamType::kInt;
  shards.value = "2";
  shards.overridden = true;
  pipeline.params.push_back(shards);
  dag::Param regions;
  regions.name = "regions";
  regions.type = dag::ParamType::kList;
  regions.items = {"eu", "us"};
  pipeline.params.push_back(regions);

  dag::Stage ingest = MakeStage("ingest", dag::StageKind::kIngest);
  ingest.foreach = std::vector<std::string>{"a", "b"};
  ingest.run.argv = {"ingest.py", "--shard={{ item }}", "--of", "{{ params.shards }}"};
  ingest.outputs.push_back({"raw", 64 << 20, std::nullopt, {}});
  ingest.cache = false;
  pipeline.stages.push_back(ingest);

  dag::Stage report = MakeStage("report", dag::StageKind::kGeneric);
  report.run.argv.clear();
  report.run.shell = "echo \"$TIERFLOW_PARAM_SHARDS\"";
  pipeline.stages.push_back(report);

  dag::Stage train = MakeStage("train", dag::StageKind::kTrain, {"clean"});
  train.resources = {4, 8ull << 30, 1, {}};
  train.retries.limit = 2;
  train.timeout = std::chrono::hours(2);
  train.tier = "nvme";
  train.checkpoints = {true, 2, "s3"};
  train.outputs.push_back({"model", 0, Durability::kArchive, {}});
  train.outputs.push_back({"log", 0, std::nullopt, {}});
  pipeline.stages.push_back(train);

  dag::Stage clean = MakeStage("clean", dag::StageKind::kClean);
  clean.inputs.push_back({"raw", "ingest", "raw", false, false, {}});
  pipeline.stages.push_back(clean);
  return pipeline;
}

std::vector<std::string> TaskIds(const PlanLayer& layer) {
  std::vector<std::string> ids;
  for (const PlannedTask& task : layer.tasks) ids.push_back(task.id);
  return ids;
}

class BuildPlanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pipeline_ = ThreeLayerPipeline();
    auto graph = dag::TaskGraph::Build(pipeline_);
    ASSERT_TRUE(graph.ok()) << graph.status();
    plan_ = BuildPlan(*graph);
  }
  const PlannedTask& Task(uint32_t layer, uint32_t index) {
    return plan_.layers.at(layer).tasks.at(index);
  }

  dag::Pipeline pipeline_;
  Plan plan_;
};

TEST_F(BuildPlanTest, CountsStagesTasksAndLayers) {
  EXPECT_EQ(plan_.file, "p.yaml");
  EXPECT_EQ(plan_.pipeline, "p");
  EXPECT_EQ(plan_.description, "three layers");
  EXPECT_EQ(plan_.stage_count, 4u);
  EXPECT_EQ(plan_.task_count, 5u);
  EXPECT_EQ(plan_.layers.size(), 3u);
}

TEST_F(BuildPlanTest, OrdersLayersByDependencyAndStagesByFileOrder) {
  ASSERT_EQ(plan_.layers.size(), 3u);
  for (uint32_t l = 0; l < plan_.layers.size(); ++l) EXPECT_EQ(plan_.layers[l].index, l);
  EXPECT_EQ(plan_.layers[0].stages, (std::vector<std::string>{"ingest", "report"}));
  EXPECT_EQ(TaskIds(plan_.layers[0]),
            (std::vector<std::string>{"ingest[a]", "ingest[b]", "report"}));
  EXPECT_EQ(TaskIds(plan_.layers[1]), (std::vector<std::string>{"clean"}));
  EXPECT_EQ(TaskIds(plan_.layers[2]), (std::vector<std::string>{"train"}));
  EXPECT_EQ(Task(2, 0).layer, 2u);
}

TEST_F(BuildPlanTest, ExpandsForeachItemsWithResolvedArgv) {
  const PlannedTask& b = Task(0, 1);
  EXPECT_EQ(b.stage, "ingest");
  EXPECT_EQ(b.kind, dag::StageKind::kIngest);
  ASSERT_TRUE(b.item.has_value());
  EXPECT_EQ(*b.item, "b");
  EXPECT_EQ(b.item_index, 1u);
  EXPECT_EQ(b.argv, (std::vector<std::string>{"ingest.py", "--shard=b", "--of", "2"}));
  EXPECT_TRUE(b.shell.empty());
  EXPECT_FALSE(b.cache);
  EXPECT_FALSE(Task(0, 2).item.has_value());
}

TEST_F(BuildPlanTest, KeepsShellCommandsUnchanged) {
  const PlannedTask& report = Task(0, 2);
  EXPECT_TRUE(report.argv.empty());
  EXPECT_EQ(report.shell, "echo \"$TIERFLOW_PARAM_SHARDS\"");
}

TEST_F(BuildPlanTest, CopiesStageSettingsOntoTasks) {
  const PlannedTask& train = Task(2, 0);
  EXPECT_EQ(train.io, dag::DefaultIoProfile(dag::StageKind::kTrain));
  EXPECT_EQ(train.resources.cpus, 4);
  EXPECT_EQ(train.resources.memory, 8ull << 30);
  EXPECT_EQ(train.resources.gpus, 1u);
  EXPECT_EQ(train.retries.limit, 2u);
  ASSERT_TRUE(train.timeout.has_value());
  EXPECT_EQ(*train.timeout, std::chrono::hours(2));
  EXPECT_EQ(train.tier, "nvme");
  EXPECT_TRUE(train.checkpoints.enabled);
  EXPECT_EQ(train.checkpoints.keep, 2u);
  EXPECT_EQ(train.checkpoints.tier, "s3");
  EXPECT_TRUE(train.cache);
}

TEST_F(BuildPlanTest, ListsDependenciesFromNeedsAndInputs) {
  EXPECT_EQ(Task(1, 0).dependencies, (std::vector<std::string>{"ingest"}));
  EXPECT_EQ(Task(2, 0).dependencies, (std::vector<std::string>{"clean"}));
  EXPECT_TRUE(Task(0, 0).dependencies.empty());
}

TEST_F(BuildPlanTest, OutputDurabilityFallsBackToTheStageProfile) {
  const PlannedTask& train = Task(2, 0);
  ASSERT_EQ(train.outputs.size(), 2u);
  EXPECT_EQ(train.outputs[0].name, "model");
  EXPECT_EQ(train.outputs[0].durability, Durability::kArchive);
  EXPECT_EQ(train.outputs[1].durability, train.io.durability);
  EXPECT_EQ(Task(0, 0).outputs.at(0).size_hint, 64u << 20);
}

TEST_F(BuildPlanTest, CarriesParamsWithListsJoined) {
  ASSERT_EQ(plan_.params.size(), 2u);
  EXPECT_EQ(plan_.params[0].name, "shards");
  EXPECT_EQ(plan_.params[0].value, "2");
  EXPECT_TRUE(plan_.params[0].overridden);
  EXPECT_EQ(plan_.params[1].type, dag::ParamType::kList);
  EXPECT_EQ(plan_.params[1].value, "eu,us");
  EXPECT_EQ(plan_.params[1].items, (std::vector<std::string>{"eu", "us"}));
  EXPECT_FALSE(plan_.params[1].overridden);
}

TEST_F(BuildPlanTest, CriticalPathIsTheLongestChain) {
  EXPECT_EQ(plan_.critical_path, (std::vector<std::string>{"ingest", "clean", "train"}));
}

TEST(BuildPlanScaleTest, ExpandsALargeForeachIntoOneLayer) {
  dag::Pipeline pipeline;
  pipeline.name = "big";
  dag::Stage stage = MakeStage("shard", dag::StageKind::kFeature);
  std::vector<std::string> items;
  for (int i = 0; i < 10000; ++i) items.push_back(std::to_string(i));
  stage.foreach = items;
  stage.run.argv = {"f", "{{ item }}"};
  pipeline.stages.push_back(stage);
  auto graph = dag::TaskGraph::Build(pipeline);
  ASSERT_TRUE(graph.ok()) << graph.status();
  Plan plan = BuildPlan(*graph);
  ASSERT_EQ(plan.layers.size(), 1u);
  ASSERT_EQ(plan.layers[0].tasks.size(), 10000u);
  EXPECT_EQ(plan.layers[0].tasks[9999].id, "shard[9999]");
  EXPECT_EQ(plan.layers[0].tasks[9999].argv.back(), "9999");
}

TEST(BuildPlanMappingTest, AMappedStageShowsWhatItMapsOverAndItsItemWiseInputs) {
  dag::Pipeline pipeline;
  pipeline.name = "mapped";
  dag::Stage ingest = MakeStage("ingest", dag::StageKind::kIngest);
  ingest.foreach = std::vector<std::string>{"a", "b"};
  ingest.outputs.push_back({"raw", 0, std::nullopt, {}});
  pipeline.stages.push_back(ingest);
  dag::Stage clean = MakeStage("clean", dag::StageKind::kClean);
  clean.foreach = ingest.foreach;
  clean.foreach_over = "ingest";
  clean.inputs.push_back(
      {.name = "raw", .stage = "ingest", .output = "raw", .each = true, .location = {}});
  pipeline.stages.push_back(clean);
  auto graph = dag::TaskGraph::Build(pipeline);
  ASSERT_TRUE(graph.ok()) << graph.status();
  Plan plan = BuildPlan(*graph);
  ASSERT_EQ(plan.layers.size(), 2u);
  ASSERT_EQ(plan.layers[1].tasks.size(), 2u);
  for (const PlannedTask& task : plan.layers[1].tasks) {
    EXPECT_EQ(task.foreach_over, "ingest") << task.id;
    ASSERT_EQ(task.inputs.size(), 1u);
    EXPECT_TRUE(task.inputs[0].each) << task.id;
  }
  EXPECT_EQ(plan.layers[0].tasks[0].foreach_over, "");
}

TEST(PlanTest, DynamicStageHasNoTasksAndSaysWhereItsItemsComeFrom) {
  dag::Pipeline pipeline;
  pipeline.file = "d.yaml";
  pipeline.name = "d";
  dag::Stage list = MakeStage("list", dag::StageKind::kGeneric);
  list.outputs.push_back({"shards", 0, std::nullopt, {}});
  pipeline.stages.push_back(list);
  dag::Stage process = MakeStage("process", dag::StageKind::kGeneric);
  process.foreach_from = dag::DynamicItems{
      .stage = "list", .output = "shards", .format = dag::ItemListFormat::kJson, .location = {}};
  process.dynamic = true;
  pipeline.stages.push_back(process);
  dag::Stage merge = MakeStage("merge", dag::StageKind::kGeneric, {"process"});
  pipeline.stages.push_back(merge);

  absl::StatusOr<dag::TaskGraph> graph = dag::TaskGraph::Build(pipeline);
  ASSERT_TRUE(graph.ok()) << graph.status();
  const Plan plan = BuildPlan(*graph);
  EXPECT_EQ(plan.task_count, 2u);  // list and merge: process's are not known yet
  ASSERT_EQ(plan.layers.size(), 3u);
  EXPECT_EQ(plan.layers[1].stages, std::vector<std::string>{"process"});
  EXPECT_TRUE(plan.layers[1].tasks.empty());
  ASSERT_EQ(plan.layers[1].dynamic.size(), 1u);
  EXPECT_EQ(plan.layers[1].dynamic[0].stage, "process");
  EXPECT_EQ(plan.layers[1].dynamic[0].from, "list.shards");
  EXPECT_EQ(plan.layers[1].dynamic[0].format, "json");
  EXPECT_EQ(plan.layers[2].tasks.size(), 1u);
}

}  // namespace
}  // namespace tierflow::scheduler
