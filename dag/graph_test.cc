#include "dag/graph.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace tierflow::dag {
namespace {

// Builds pipelines in code so graph tests do not depend on the YAML loader.
class PipelineBuilder {
 public:
  PipelineBuilder& Stage(const std::string& name, std::vector<std::string> needs = {}) {
    dag::Stage stage;
    stage.name = name;
    stage.needs = std::move(needs);
    stage.run.argv = {"true"};
    pipeline_.stages.push_back(std::move(stage));
    return *this;
  }
  PipelineBuilder& Input(const std::string& from_stage, const std::string& output) {
    InputRef ref;
    ref.name = output;
    ref.stage = from_stage;
    ref.output = output;
    pipeline_.stages.back().inputs.push_back(ref);
    return *this;
  }
  PipelineBuilder& Foreach(std::vector<std::string> items) {
    pipeline_.stages.back().foreach = std::move(items);
    return *this;
  }
  PipelineBuilder& Param(const std::string& name, const std::string& value) {
    dag::Param param;
    param.name = name;
    param.value = value;
    pipeline_.params.push_back(param);
    return *this;
  }
  dag::Pipeline Build() {
    pipeline_.file = "test.yaml";
    pipeline_.name = "test";
    return pipeline_;
  }

 private:
  dag::Pipeline pipeline_;
};

std::vector<std::string> StageNames(const Pipeline& pipeline, std::span<const uint32_t> ids) {
  std::vector<std::string> names;
  for (uint32_t id : ids) names.push_back(pipeline.stages[id].name);
  return names;
}

TEST(FindCyclesTest, ReportsFullCyclePathStartingAtFirstDefinedStage) {
  Pipeline p =
      PipelineBuilder().Stage("ok").Stage("a", {"c"}).Stage("b", {"a"}).Stage("c", {"b"}).Build();
  std::vector<Cycle> cycles = FindCycles(p);
  ASSERT_EQ(cycles.size(), 1u);
  EXPECT_EQ(cycles[0], (Cycle{"a", "b", "c", "a"}));
}

TEST(FindCyclesTest, ReportsSelfDependencyAndSeparateCyclesOncePerGroup) {
  Pipeline p = PipelineBuilder()
                   .Stage("self", {"self"})
                   .Stage("x", {"y"})
                   .Stage("y", {"x"})
                   .Stage("z", {"y"})
                   .Build();
  std::vector<Cycle> cycles = FindCycles(p);
  ASSERT_EQ(cycles.size(), 2u);
  EXPECT_EQ(cycles[0], (Cycle{"self", "self"}));
  EXPECT_EQ(cycles[1], (Cycle{"x", "y", "x"}));
}

TEST(FindCyclesTest, FindsCyclesThroughInputReferences) {
  Pipeline p = PipelineBuilder().Stage("a").Input("b", "out").Stage("b").Input("a", "out").Build();
  ASSERT_EQ(FindCycles(p).size(), 1u);
  EXPECT_EQ(FindCycles(p)[0], (Cycle{"a", "b", "a"}));
}

TEST(FindCyclesTest, IgnoresUnknownStagesAndAcyclicGraphs) {
  Pipeline p = PipelineBuilder().Stage("a", {"missing"}).Stage("b", {"a"}).Build();
  EXPECT_TRUE(FindCycles(p).empty());
}

TEST(TaskGraphTest, BuildFailsOnCycleNamingIt) {
  Pipeline p = PipelineBuilder().Stage("a", {"b"}).Stage("b", {"a"}).Build();
  auto graph = TaskGraph::Build(p);
  ASSERT_FALSE(graph.ok());
  EXPECT_EQ(graph.status().message(), "test.yaml: dependency cycle: a -> b -> a");
}

TEST(TaskGraphTest, LayersFollowTheDeepestParent) {
  // a -> b -> d, a -> c, c -> d; e alone.
  Pipeline p = PipelineBuilder()
                   .Stage("d", {"b", "c"})
                   .Stage("b", {"a"})
                   .Stage("a")
                   .Stage("c")
                   .Input("a", "out")
                   .Stage("e")
                   .Build();
  auto graph = TaskGraph::Build(p);
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->LayerCount(), 3u);
  auto layers = graph->StageLayers();
  ASSERT_EQ(layers.size(), 3u);
  EXPECT_EQ(StageNames(p, layers[0]), (std::vector<std::string>{"a", "e"}));
  EXPECT_EQ(StageNames(p, layers[1]), (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(StageNames(p, layers[2]), (std::vector<std::string>{"d"}));
  EXPECT_EQ(StageNames(p, graph->StageParents(0)), (std::vector<std::string>{"b", "c"}));
}

TEST(TaskGraphTest, ParentsAndChildrenAreInStageOrderWithoutRepeats) {
  // c names a twice (needs and input) and its parents out of order.
  Pipeline p = PipelineBuilder()
                   .Stage("a")
                   .Stage("b")
                   .Stage("c", {"b", "a", "missing"})
                   .Input("a", "out")
                   .Stage("d", {"a"})
                   .Build();
  auto graph = TaskGraph::Build(p);
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(StageNames(p, graph->StageParents(2)), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(StageNames(p, graph->StageChildren(0)), (std::vector<std::string>{"c", "d"}));
  EXPECT_TRUE(graph->StageParents(0).empty());
  EXPECT_TRUE(graph->StageChildren(3).empty());
}

TEST(TaskGraphTest, BuildFailsOnACycleBehindAcyclicStages) {
  Pipeline p = PipelineBuilder()
                   .Stage("root")
                   .Stage("x", {"root", "z"})
                   .Stage("y", {"x"})
                   .Stage("z", {"y"})
                   .Stage("leaf", {"z"})
                   .Build();
  auto graph = TaskGraph::Build(p);
  ASSERT_FALSE(graph.ok());
  EXPECT_EQ(graph.status().message(), "test.yaml: dependency cycle: x -> y -> z -> x");
  Pipeline self = PipelineBuilder().Stage("a").Stage("b", {"a", "b"}).Build();
  EXPECT_EQ(TaskGraph::Build(self).status().message(), "test.yaml: dependency cycle: b -> b");
}

TEST(TaskGraphTest, ExpandsForeachIntoContiguousTasksWithItemIds) {
  Pipeline p = PipelineBuilder()
                   .Stage("shard")
                   .Foreach({"eu", "us", "ap"})
                   .Stage("merge")
                   .Input("shard", "out")
                   .Build();
  auto graph = TaskGraph::Build(p);
  ASSERT_TRUE(graph.ok());
  ASSERT_EQ(graph->tasks().size(), 4u);
  std::vector<std::string> ids;
  for (const Task& t : graph->tasks()) ids.push_back(graph->TaskId(t));
  EXPECT_EQ(ids, (std::vector<std::string>{"shard[eu]", "shard[us]", "shard[ap]", "merge"}));
  EXPECT_EQ(graph->FirstTask(1), 3u);
  // The gather: merge waits for the whole shard stage.
  EXPECT_EQ(std::vector<uint32_t>(graph->StageParents(1).begin(), graph->StageParents(1).end()),
            (std::vector<uint32_t>{0}));
}

TEST(TaskGraphTest, CriticalPathIsTheLongestChainByDefault) {
  Pipeline p = PipelineBuilder()
                   .Stage("a")
                   .Stage("b", {"a"})
                   .Stage("c", {"b"})
                   .Stage("side", {"a"})
                   .Stage("end", {"c", "side"})
                   .Build();
  auto graph = TaskGraph::Build(p);
  ASSERT_TRUE(graph.ok());
  auto path = graph->ComputeCriticalPath();
  EXPECT_EQ(StageNames(p, path.stages), (std::vector<std::string>{"a", "b", "c", "end"}));
  EXPECT_EQ(path.weight, 4);
}

TEST(TaskGraphTest, CriticalPathFollowsStageWeights) {
  Pipeline p = PipelineBuilder()
                   .Stage("a")
                   .Stage("b", {"a"})
                   .Stage("c", {"b"})
                   .Stage("slow", {"a"})
                   .Stage("end", {"c", "slow"})
                   .Build();
  auto graph = TaskGraph::Build(p);
  ASSERT_TRUE(graph.ok());
  auto path = graph->ComputeCriticalPath([&](uint32_t s) { return s == 3 ? 10.0 : 1.0; });
  EXPECT_EQ(StageNames(p, path.stages), (std::vector<std::string>{"a", "slow", "end"}));
  EXPECT_EQ(path.weight, 12);
}

TEST(TaskGraphTest, ResolvesTemplatesInsideSingleArguments) {
  Pipeline p =
      PipelineBuilder().Param("lr", "0.5 ; rm -rf /").Stage("train").Foreach({"a b"}).Build();
  p.stages[0].run.argv = {"train", "--lr={{ params.lr }}", "{{item}}", "{{ item }}-x"};
  auto graph = TaskGraph::Build(p);
  ASSERT_TRUE(graph.ok());
  EXPECT_EQ(graph->ResolveArgv(graph->tasks()[0]),
            (std::vector<std::string>{"train", "--lr=0.5 ; rm -rf /", "a b", "a b-x"}));
}

TEST(TaskGraphTest, TaskEnvironmentCarriesParamsItemAndDeclaredEnv) {
  Pipeline p = PipelineBuilder().Param("epochs", "3").Stage("train").Foreach({"x", "y"}).Build();
  Param regions;
  regions.name = "regions";
  regions.type = ParamType::kList;
  regions.items = {"eu", "us"};
  p.params.push_back(regions);
  p.stages[0].env["OMP_NUM_THREADS"] = "4";
  p.stages[0].params = {"epochs", "regions"};
  auto graph = TaskGraph::Build(p);
  ASSERT_TRUE(graph.ok());
  auto env = graph->TaskEnvironment(graph->tasks()[1]);
  using Var = std::pair<std::string, std::string>;
  EXPECT_EQ(env, (std::vector<Var>{{"TIERFLOW_PARAM_EPOCHS", "3"},
                                   {"TIERFLOW_PARAM_REGIONS", "eu,us"},
                                   {"TIERFLOW_ITEM", "y"},
                                   {"TIERFLOW_ITEM_INDEX", "1"},
                                   {"OMP_NUM_THREADS", "4"}}));
  EXPECT_TRUE(graph->WithheldParams(graph->tasks()[1]).empty());
}

TEST(TaskGraphTest, TaskEnvironmentHoldsOnlyTheStagesParamsAndWithholdsTheRest) {
  Pipeline p = PipelineBuilder()
                   .Param("lr", "0.1")
                   .Param("epochs", "3")
                   .Param("seed", "7")
                   .Stage("train")
                   .Stage("report")
                   .Build();
  p.stages[0].params = {"lr", "seed"};
  auto graph = TaskGraph::Build(p);
  ASSERT_TRUE(graph.ok());
  using Var = std::pair<std::string, std::string>;
  EXPECT_EQ(graph->TaskEnvironment(graph->tasks()[0]),
            (std::vector<Var>{{"TIERFLOW_PARAM_LR", "0.1"}, {"TIERFLOW_PARAM_SEED", "7"}}));
  EXPECT_EQ(graph->WithheldParams(graph->tasks()[0]), std::vector<std::string>{"epochs"});
  EXPECT_TRUE(graph->TaskEnvironment(graph->tasks()[1]).empty());
  EXPECT_EQ(graph->WithheldParams(graph->tasks()[1]),
            (std::vector<std::string>{"lr", "epochs", "seed"}));
}

}  // namespace
}  // namespace tierflow::dag
