// Item-wise mapping in the loader and the task graph: `foreach: {over:}`
// and `each` inputs give a stage its items and its inputs' item-wise
// reads, whatever the order of stages in the file; the graph then gives
// each task the producer tasks it reads.
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "dag/graph.h"
#include "dag/loader.h"

namespace tierflow::dag {
namespace {

Pipeline MustLoad(std::string_view yaml) {
  auto pipeline = LoadPipelineText(yaml, "p.yaml", LoadOptions{});
  EXPECT_TRUE(pipeline.ok()) << pipeline.status();
  return pipeline.ok() ? *std::move(pipeline) : Pipeline{};
}

std::string Report(std::string_view yaml) {
  auto pipeline = LoadPipelineText(yaml, "p.yaml", LoadOptions{});
  return pipeline.ok() ? "" : std::string(pipeline.status().message());
}

const Stage& StageNamed(const Pipeline& p, std::string_view name) {
  const int s = p.FindStage(name);
  EXPECT_GE(s, 0) << name;
  return p.stages[s < 0 ? 0 : s];
}

// A chain written downstream first: each stage still gets the items of
// the one it maps over, and its inputs from same-item stages are `each`.
constexpr std::string_view kChain = R"(name: chain
stages:
  feature:
    foreach: {over: clean}
    inputs:
      clean: clean.out
      raw_all: {from: ingest.raw, each: false}
      params: setup.out
    run: "true"
    outputs: [out]
  clean:
    inputs:
      raw: {from: ingest.raw, each: true}
    run: "true"
    outputs: [out]
  ingest:
    foreach: [north, south, east]
    run: "true"
    outputs: [raw]
  setup:
    run: "true"
    outputs: [out]
  report:
    inputs: {features: feature.out}
    run: "true"
)";

TEST(LoaderMappingTest, MappedStagesTakeTheItemsOfWhatTheyMapOverInAnyFileOrder) {
  Pipeline p = MustLoad(kChain);
  const std::vector<std::string> items = {"north", "south", "east"};
  const Stage& clean = StageNamed(p, "clean");
  ASSERT_TRUE(clean.foreach.has_value());
  EXPECT_EQ(*clean.foreach, items);
  EXPECT_EQ(clean.foreach_over, "ingest");
  EXPECT_TRUE(clean.inputs[0].each);
  const Stage& feature = StageNamed(p, "feature");
  ASSERT_TRUE(feature.foreach.has_value());
  EXPECT_EQ(*feature.foreach, items);
  EXPECT_EQ(feature.foreach_over, "clean");
  EXPECT_FALSE(feature.Dynamic());
  // From the stage mapped over: item-wise without saying so.
  EXPECT_TRUE(feature.inputs[0].each);
  // `each: false`: the whole set of a same-item stage.
  EXPECT_FALSE(feature.inputs[1].each);
  // A single-task stage is read whole.
  EXPECT_FALSE(feature.inputs[2].each);
  // Not mapped: a gather, today's behaviour.
  EXPECT_FALSE(StageNamed(p, "report").foreach.has_value());
  EXPECT_FALSE(StageNamed(p, "report").inputs[0].each);
}

TEST(LoaderMappingTest, GraphGivesEachTaskItsOwnItemOrTheWholeStage) {
  Pipeline p = MustLoad(kChain);
  auto graph = TaskGraph::Build(p);
  ASSERT_TRUE(graph.ok()) << graph.status();
  const uint32_t feature = static_cast<uint32_t>(p.FindStage("feature"));
  const uint32_t clean = static_cast<uint32_t>(p.FindStage("clean"));
  const uint32_t ingest = static_cast<uint32_t>(p.FindStage("ingest"));
  const uint32_t report = static_cast<uint32_t>(p.FindStage("report"));
  const uint32_t south = graph->FirstTask(feature) + 1;
  EXPECT_EQ(graph->TaskId(graph->tasks()[south]), "feature[south]");
  // clean.out item-wise: clean[south] only.
  auto own = graph->InputProducers(south, 0);
  EXPECT_EQ(own.first, graph->FirstTask(clean) + 1);
  EXPECT_EQ(own.count, 1u);
  // ingest.raw with each: false: all three items.
  auto all = graph->InputProducers(south, 1);
  EXPECT_EQ(all.first, graph->FirstTask(ingest));
  EXPECT_EQ(all.count, 3u);
  auto gathered = graph->InputProducers(graph->FirstTask(report), 0);
  EXPECT_EQ(gathered.first, graph->FirstTask(feature));
  EXPECT_EQ(gathered.count, 3u);
  // feature waits item by item for clean, but for the whole of ingest
  // (gathered) and setup.
  EXPECT_TRUE(graph->Mapped(feature));
  EXPECT_FALSE(graph->Mapped(report));
  const auto parents = graph->StageParents(feature);
  for (size_t k = 0; k < parents.size(); ++k) {
    EXPECT_EQ(graph->ParentItemWise(feature, k), parents[k] == clean) << p.stages[parents[k]].name;
  }
  const auto children = graph->StageChildren(clean);
  ASSERT_EQ(children.size(), 1u);
  EXPECT_TRUE(graph->ChildItemWise(clean, 0));
}

TEST(LoaderMappingTest, AStaticListWithTheSameItemsMayReadItemWise) {
  Pipeline p = MustLoad(R"(name: p
stages:
  ingest:
    foreach: [a, b]
    run: "true"
    outputs: [raw]
  clean:
    foreach: [a, b]
    inputs: {raw: {from: ingest.raw, each: true}}
    run: ["echo", "{{ item }}"]
)");
  const Stage& clean = StageNamed(p, "clean");
  EXPECT_TRUE(clean.inputs[0].each);
  EXPECT_EQ(clean.foreach_over, "ingest");
}

TEST(LoaderMappingTest, AnEachInputAloneMapsTheStageAndAllowsItem) {
  Pipeline p = MustLoad(R"(name: p
stages:
  ingest:
    foreach: {range: [0, 4]}
    run: "true"
    outputs: [raw]
  clean:
    inputs: {raw: {from: ingest.raw, each: true}}
    run: ["echo", "{{ item }}"]
)");
  const Stage& clean = StageNamed(p, "clean");
  ASSERT_TRUE(clean.foreach.has_value());
  EXPECT_EQ(*clean.foreach, (std::vector<std::string>{"0", "1", "2", "3"}));
  EXPECT_EQ(clean.foreach_over, "ingest");
}

TEST(LoaderMappingTest, ReportsMismatchedItemsNamingBothStagesAndTheItem) {
  EXPECT_EQ(Report(R"(name: p
stages:
  ingest:
    foreach: [a, b, c]
    run: "true"
    outputs: [raw]
  clean:
    foreach: [a, b]
    inputs: {raw: {from: ingest.raw, each: true}}
    run: "true"
)"),
            "p.yaml:9:44: stages.clean.inputs.raw.each: 'each: true' needs the same items on "
            "both sides: stages 'clean' and 'ingest' have different items: 'c' is an item of "
            "'ingest' but not of 'clean'");
}

TEST(LoaderMappingTest, ReportsOverAStageThatIsNotForeachAndACycleOfMappings) {
  EXPECT_EQ(Report(R"(name: p
stages:
  one:
    run: "true"
  two:
    foreach: {over: one}
    run: "true"
)"),
            "p.yaml:6:21: stages.two.foreach.over: stage 'one' is not a foreach stage: 'over' "
            "maps over the items of one");
  EXPECT_EQ(Report(R"(name: p
stages:
  ping:
    foreach: {over: pong}
    run: "true"
  pong:
    foreach: {over: ping}
    run: "true"
)"),
            "p.yaml:7:21: stages.pong.foreach.over: cycle of mappings: stage 'ping' is itself "
            "mapped, through 'over', over stage 'pong'");
}

TEST(LoaderMappingTest, AMappingOverABrokenForeachIsNotReportedTwice) {
  EXPECT_EQ(Report(R"(name: p
stages:
  ingest:
    foreach: []
    run: "true"
    outputs: [raw]
  clean:
    foreach: {over: ingest}
    inputs: {raw: {from: ingest.raw, each: true}}
    run: "true"
)"),
            "p.yaml:4:14: stages.ingest.foreach: no items: a foreach stage needs at least one");
}

}  // namespace
}  // namespace tierflow::dag
