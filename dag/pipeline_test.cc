#include "dag/pipeline.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tierflow::dag {
namespace {

TEST(StageKindTest, NamesRoundTripInPipelineOrder) {
  EXPECT_EQ(StageKindNames(), (std::vector<std::string>{"ingest", "clean", "feature", "stage",
                                                        "train", "checkpoint", "generic"}));
  for (const std::string& name : StageKindNames()) {
    std::optional<StageKind> kind = ParseStageKind(name);
    ASSERT_TRUE(kind.has_value()) << name;
    EXPECT_EQ(StageKindName(*kind), name);
  }
}

TEST(StageKindTest, ParsesOnlyExactLowerCaseNames) {
  EXPECT_EQ(ParseStageKind("train"), StageKind::kTrain);
  EXPECT_EQ(ParseStageKind("Train"), std::nullopt);
  EXPECT_EQ(ParseStageKind("trian"), std::nullopt);
  EXPECT_EQ(ParseStageKind(""), std::nullopt);
}

TEST(AccessPatternTest, NamesRoundTrip) {
  for (AccessPattern pattern :
       {AccessPattern::kNone, AccessPattern::kSequential, AccessPattern::kRandom}) {
    EXPECT_EQ(ParseAccessPattern(AccessPatternName(pattern)), pattern);
  }
  EXPECT_EQ(AccessPatternName(AccessPattern::kSequential), "sequential");
  EXPECT_EQ(ParseAccessPattern("seq"), std::nullopt);
}

TEST(ParamTypeTest, NamesMatchTheFormat) {
  EXPECT_EQ(ParamTypeName(ParamType::kString), "string");
  EXPECT_EQ(ParamTypeName(ParamType::kInt), "int");
  EXPECT_EQ(ParamTypeName(ParamType::kFloat), "float");
  EXPECT_EQ(ParamTypeName(ParamType::kBool), "bool");
  EXPECT_EQ(ParamTypeName(ParamType::kList), "list");
}

// The "Defaults per kind" table of docs/pipeline-format.md, row by row.
TEST(DefaultIoProfileTest, MatchesTheTableInTheDocs) {
  constexpr uint64_t kKiB = 1024, kMiB = 1024 * 1024;
  using enum AccessPattern;
  struct Row {
    StageKind kind;
    AccessPattern read, write;
    uint64_t block;
    uint32_t passes, streams;
    Durability durability;
  };
  const Row rows[] = {
      {StageKind::kIngest, kNone, kSequential, 8 * kMiB, 1, 8, Durability::kDurable},
      {StageKind::kClean, kRandom, kSequential, 64 * kKiB, 1, 4, Durability::kNode},
      {StageKind::kFeature, kSequential, kSequential, 4 * kMiB, 1, 16, Durability::kNode},
      {StageKind::kStage, kSequential, kSequential, 1 * kMiB, 1, 4, Durability::kVolatile},
      {StageKind::kTrain, kRandom, kSequential, 256 * kKiB, 10, 8, Durability::kDurable},
      {StageKind::kCheckpoint, kSequential, kSequential, 16 * kMiB, 1, 4, Durability::kDurable},
      {StageKind::kGeneric, kSequential, kSequential, 1 * kMiB, 1, 1, Durability::kNode},
  };
  for (const Row& row : rows) {
    IoProfile expected;
    expected.read = row.read;
    expected.write = row.write;
    expected.block_size = row.block;
    expected.read_passes = row.passes;
    expected.streams = row.streams;
    expected.durability = row.durability;
    EXPECT_EQ(DefaultIoProfile(row.kind), expected) << StageKindName(row.kind);
  }
}

TEST(DefaultIoProfileTest, LeavesExpectedBytesUnknown) {
  for (const std::string& name : StageKindNames()) {
    IoProfile io = DefaultIoProfile(*ParseStageKind(name));
    EXPECT_EQ(io.read_bytes, 0u) << name;
    EXPECT_EQ(io.write_bytes, 0u) << name;
  }
}

InputRef Input(const std::string& stage) {
  InputRef input;
  input.name = stage + "_in";
  input.stage = stage;
  input.output = "out";
  return input;
}

TEST(StageTest, DependenciesAreNeedsThenInputsInFirstMentionOrderWithoutRepeats) {
  Stage stage;
  stage.needs = {"b", "a", "b"};
  stage.inputs = {Input("c"), Input("a"), Input("d"), Input("c")};
  EXPECT_EQ(stage.Dependencies(), (std::vector<std::string>{"b", "a", "c", "d"}));
}

TEST(StageTest, DependenciesOfAWideGatherKeepOrderAndDropRepeats) {
  Stage stage;
  std::vector<std::string> expected;
  // std::string("s").append(...) rather than "s" + std::to_string(i): GCC 12
  // at -O3 reports a false -Wrestrict on the latter.
  auto name = [](int i) { return std::string("s").append(std::to_string(i)); };
  for (int i = 0; i < 5000; ++i) {
    stage.needs.push_back(name(i));
    expected.push_back(name(i));
  }
  for (int i = 0; i < 5000; i += 2) stage.inputs.push_back(Input(name(i)));
  stage.inputs.push_back(Input("extra"));
  expected.push_back("extra");
  EXPECT_EQ(stage.Dependencies(), expected);
}

TEST(StageTest, TaskCountIsOnePerForeachItem) {
  Stage stage;
  EXPECT_EQ(stage.TaskCount(), 1u);
  stage.foreach = std::vector<std::string>{"eu", "us", "ap"};
  EXPECT_EQ(stage.TaskCount(), 3u);
}

TEST(PipelineTest, FindsStagesByIndexAndParamsByName) {
  Pipeline pipeline;
  pipeline.stages.resize(3);
  pipeline.stages[0].name = "ingest";
  pipeline.stages[1].name = "clean";
  pipeline.stages[2].name = "train";
  Param epochs;
  epochs.name = "epochs";
  epochs.value = "3";
  pipeline.params.push_back(epochs);

  EXPECT_EQ(pipeline.FindStage("clean"), 1);
  EXPECT_EQ(pipeline.FindStage("train"), 2);
  EXPECT_EQ(pipeline.FindStage("Clean"), -1);
  ASSERT_NE(pipeline.FindParam("epochs"), nullptr);
  EXPECT_EQ(pipeline.FindParam("epochs")->value, "3");
  EXPECT_EQ(pipeline.FindParam("epoch"), nullptr);
}

}  // namespace
}  // namespace tierflow::dag
