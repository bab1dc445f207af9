#include "api/plan_service.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace tierflow::api {
namespace {

using scheduler::PlanLayer;
using scheduler::PlannedOutput;
using scheduler::PlannedParam;
using scheduler::PlannedTask;

// A small plan built by hand, so rendering is tested apart from loading:
// ingest[0], ingest[1] -> train, with one overridden param.
Plan SmallPlan() {
  Plan plan;
  plan.file = "small.yaml";
  plan.pipeline = "small";
  plan.description = "two layers";
  plan.params.push_back({"shards", dag::ParamType::kInt, "2", {}, true});
  plan.params.push_back({"lr", dag::ParamType::kFloat, "0.5", {}, false});
  plan.params.push_back({"fast", dag::ParamType::kBool, "true", {}, false});
  plan.params.push_back({"regions", dag::ParamType::kList, "eu,us", {"eu", "us"}, false});
  plan.params.push_back({"model", dag::ParamType::kString, "res\"net", {}, false});
  plan.stage_count = 2;
  plan.task_count = 3;

  PlanLayer layer0;
  layer0.index = 0;
  layer0.stages = {"ingest"};
  for (uint32_t i = 0; i < 2; ++i) {
    PlannedTask task;
    task.id = "ingest[" + std::to_string(i) + "]";
    task.stage = "ingest";
    task.kind = dag::StageKind::kIngest;
    task.item = std::to_string(i);
    task.item_index = i;
    task.io = dag::DefaultIoProfile(dag::StageKind::kIngest);
    task.cache = false;
    task.argv = {"ingest.py", "--shard", std::to_string(i)};
    task.outputs.push_back(PlannedOutput{"raw", 64ull << 20, Durability::kDurable});
    layer0.tasks.push_back(task);
  }
  plan.layers.push_back(layer0);

  PlanLayer layer1;
  layer1.index = 1;
  layer1.stages = {"train"};
  PlannedTask train;
  train.id = "train";
  train.stage = "train";
  train.kind = dag::StageKind::kTrain;
  train.layer = 1;
  train.io = dag::DefaultIoProfile(dag::StageKind::kTrain);
  train.io.read_bytes = 10ull << 30;
  train.resources = {2.5, 4ull << 30, 1, {}};
  train.retries.limit = 3;
  train.timeout = std::chrono::minutes(150);
  train.tier = "nvme";
  train.dependencies = {"ingest"};
  train.param_scope = dag::ParamScope::kDeclared;
  train.params = {"lr", "fast"};
  train.shell = "python3 train.py\n";
  train.why_shell = "a control character (\\n) at offset 16";
  train.outputs.push_back(PlannedOutput{"model", 0, Durability::kDurable});
  layer1.tasks.push_back(train);
  plan.layers.push_back(layer1);

  plan.critical_path = {"ingest", "train"};
  return plan;
}

std::string Text(const Plan& plan) {
  std::ostringstream out;
  RenderPlanText(plan, out);
  return out.str();
}

nlohmann::json Json(const Plan& plan) {
  std::ostringstream out;
  RenderPlanJson(plan, out);
  return nlohmann::json::parse(out.str());
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(RenderPlanTextTest, StartsWithTotalsParamsAndCriticalPath) {
  std::vector<std::string> lines = Lines(Text(SmallPlan()));
  ASSERT_GE(lines.size(), 3u);
  EXPECT_EQ(lines[0], "pipeline small: 2 stages, 3 tasks, 2 layers");
  EXPECT_EQ(lines[1],
            "params: shards=2 (overridden), lr=0.5, fast=true, regions=eu,us, model=res\"net");
  EXPECT_EQ(lines[2], "critical path: ingest -> train (2 stages)");
}

TEST(RenderPlanTextTest, ShowsEachStagesParamsAndHowTheyWereChosen) {
  std::vector<std::string> lines = Lines(Text(SmallPlan()));
  ASSERT_GE(lines.size(), 6u);
  EXPECT_EQ(lines[3], "stage params:");
  EXPECT_EQ(lines[4], "  ingest  -  (referenced)");
  EXPECT_EQ(lines[5], "  train   lr, fast  (declared)");
}

TEST(RenderPlanTextTest, ListsEveryTaskInAlignedColumnsPerLayer) {
  std::vector<std::string> lines = Lines(Text(SmallPlan()));
  std::vector<std::string> expected = {
      "layer 0 (1 stage, 2 tasks)",
      "  TASK       KIND    READ  WRITE              BLOCK  PASSES  STREAMS  DURABILITY  NEEDS",
      "  ingest[0]  ingest  none  sequential 64 MiB  8 MiB  1       8        durable     -",
      "  ingest[1]  ingest  none  sequential 64 MiB  8 MiB  1       8        durable     -",
      "",
      "layer 1 (1 stage, 1 task)",
      "  TASK   KIND   READ           WRITE       BLOCK    PASSES  STREAMS  DURABILITY  NEEDS",
      "  train  train  random 10 GiB  sequential  256 KiB  10      8        durable     ingest",
  };
  // After the totals, params, critical path and the 3 lines of stage params.
  ASSERT_EQ(lines.size(), 7 + expected.size());
  EXPECT_EQ(lines[6], "");
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(lines[7 + i], expected[i]) << i;
}

TEST(RenderPlanTextTest, SingularCountsAndNoParamsLine) {
  Plan plan = SmallPlan();
  plan.params.clear();
  plan.stage_count = 1;
  plan.task_count = 1;
  plan.layers.erase(plan.layers.begin());
  plan.critical_path = {"train"};
  std::vector<std::string> lines = Lines(Text(plan));
  EXPECT_EQ(lines.at(0), "pipeline small: 1 stage, 1 task, 1 layer");
  EXPECT_EQ(lines.at(1), "critical path: train (1 stage)");
  EXPECT_EQ(lines.at(2), "") << "no stage params without params";
}

TEST(RenderPlanTextTest, DynamicStageIsExpandedAtRunTimeWithNoTaskCount) {
  Plan plan = SmallPlan();
  scheduler::PlanLayer& layer = plan.layers.emplace_back();
  layer.index = 2;
  layer.stages = {"process"};
  layer.dynamic.push_back(
      {.stage = "process", .from = "train.model", .format = "lines", .over = ""});
  const std::vector<std::string> lines = Lines(Text(plan));
  EXPECT_EQ(lines.back(), "  process  expanded at run time, from train.model");
  const nlohmann::json json = Json(plan);
  EXPECT_EQ(json["layers"][2]["dynamic"],
            nlohmann::json::parse(R"([{"stage": "process", "expanded": "at run time", "from":
                "train.model", "format": "lines", "over": null, "tasks": null}])"));
  EXPECT_EQ(json["layers"][2]["tasks"], nlohmann::json::array());
  EXPECT_EQ(json["layers"][0]["dynamic"], nlohmann::json::array());
}

TEST(RenderPlanJsonTest, HasTotalsParamsAndCriticalPath) {
  nlohmann::json json = Json(SmallPlan());
  EXPECT_EQ(json["pipeline"], "small");
  EXPECT_EQ(json["file"], "small.yaml");
  EXPECT_EQ(json["description"], "two layers");
  EXPECT_EQ(json["totals"], nlohmann::json::parse(R"({"stages":2,"tasks":3,"layers":2})"));
  EXPECT_EQ(json["critical_path"], nlohmann::json::parse(R"(["ingest","train"])"));
}

TEST(RenderPlanJsonTest, TypesParamValuesByTheirDeclaredType) {
  nlohmann::json params = Json(SmallPlan())["params"];
  ASSERT_EQ(params.size(), 5u);
  EXPECT_EQ(params[0],
            nlohmann::json::parse(R"({"name":"shards","type":"int","value":2,"overridden":true})"));
  EXPECT_EQ(params[1]["value"], 0.5);
  EXPECT_EQ(params[2]["value"], true);
  EXPECT_EQ(params[3]["value"], nlohmann::json::parse(R"(["eu","us"])"));
  EXPECT_EQ(params[4]["value"], "res\"net");
}

TEST(RenderPlanJsonTest, WritesEveryTaskFieldWithSizesInBytesAndDurationsInMs) {
  nlohmann::json layers = Json(SmallPlan())["layers"];
  ASSERT_EQ(layers.size(), 2u);
  EXPECT_EQ(layers[0]["layer"], 0);
  EXPECT_EQ(layers[0]["stages"], nlohmann::json::parse(R"(["ingest"])"));
  ASSERT_EQ(layers[0]["tasks"].size(), 2u);
  EXPECT_EQ(layers[0]["tasks"][1]["item"], "1");
  EXPECT_EQ(layers[0]["tasks"][1]["item_index"], 1);
  EXPECT_EQ(layers[0]["tasks"][1]["argv"], nlohmann::json::parse(R"(["ingest.py","--shard","1"])"));
  EXPECT_EQ(
      layers[0]["tasks"][1]["outputs"],
      nlohmann::json::parse(R"([{"name":"raw","size_bytes":67108864,"durability":"durable"}])"));

  const nlohmann::json expected_train = nlohmann::json::parse(R"({
    "id": "train", "stage": "train", "kind": "train", "layer": 1,
    "item": null, "item_index": 0, "foreach_over": null,
    "io": {"read": "random", "write": "sequential", "block_size_bytes": 262144,
           "read_bytes": 10737418240, "write_bytes": 0, "read_passes": 10, "streams": 8,
           "durability": "durable"},
    "resources": {"cpus": 2.5, "memory_bytes": 4294967296, "gpus": 1},
    "retries": {"limit": 3, "backoff_ms": 10000, "factor": 2.0, "max_backoff_ms": 600000},
    "timeout_ms": 9000000, "cache": true, "tier": "nvme",
    "checkpoints": {"enabled": false, "keep": 3, "tier": ""},
    "dependencies": ["ingest"], "param_scope": "declared", "params": ["lr", "fast"],
    "argv": [], "shell": "python3 train.py\n", "shell_exec": "sh",
    "why_shell": "a control character (\\n) at offset 16",
    "outputs": [{"name": "model", "size_bytes": 0, "durability": "durable"}]
  })");
  EXPECT_EQ(layers[1]["tasks"][0], expected_train) << layers[1]["tasks"][0].dump(2);
  EXPECT_EQ(layers[0]["tasks"][0]["timeout_ms"], nullptr);
}

TEST(RenderPlanJsonTest, EscapesStringsAndReplacesInvalidUtf8) {
  Plan plan = SmallPlan();
  plan.pipeline = "tab\there \"quoted\" back\\slash caf\xc3\xa9";
  plan.description = "bad \xff byte";
  nlohmann::json json = Json(plan);
  EXPECT_EQ(json["pipeline"], "tab\there \"quoted\" back\\slash caf\xc3\xa9");
  EXPECT_EQ(json["description"], "bad \xef\xbf\xbd byte");
}

// Loading goes through the real loader, from files written by the test.
class PlanServiceFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/plan_service_test.XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
  }
  void TearDown() override {
    for (const std::string& path : written_) std::remove(path.c_str());
    rmdir(dir_.c_str());
  }
  std::string Write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    written_.push_back(path);
    return path;
  }

  std::string dir_;
  std::vector<std::string> written_;
};

constexpr char kValidPipeline[] = R"(name: files
params:
  shards: 3
stages:
  ingest:
    kind: ingest
    foreach: {range: [0, "{{ params.shards }}"]}
    run: ["ingest.py", "{{ item }}"]
    outputs: [raw]
  train:
    kind: train
    inputs: {raw: ingest.raw}
    run: ["train.py"]
)";

TEST_F(PlanServiceFileTest, ValidateReportsCountsPerFileInOrder) {
  std::string good = Write("good.yaml", kValidPipeline);
  std::string missing = dir_ + "/missing.yaml";
  std::vector<FileValidation> results = ValidateFiles({good, missing});
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].file, good);
  EXPECT_TRUE(results[0].ok);
  EXPECT_EQ(results[0].stage_count, 2u);
  EXPECT_EQ(results[0].task_count, 4u);
  EXPECT_TRUE(results[0].diagnostics.empty());
  EXPECT_FALSE(results[1].ok);
  ASSERT_EQ(results[1].diagnostics.size(), 1u);
  EXPECT_NE(results[1].diagnostics[0].ToString().find(missing), std::string::npos)
      << results[1].diagnostics[0].ToString();
}

TEST_F(PlanServiceFileTest, ValidateAppliesParamOverrides) {
  std::string good = Write("good.yaml", kValidPipeline);
  std::vector<FileValidation> results = ValidateFiles({good}, {{"shards", "10"}});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].ok);
  EXPECT_EQ(results[0].task_count, 11u);

  results = ValidateFiles({good}, {{"shards", "ten"}});
  EXPECT_FALSE(results.at(0).ok);
  ASSERT_FALSE(results[0].diagnostics.empty());
  EXPECT_NE(results[0].diagnostics[0].ToString().find("shards"), std::string::npos);
}

TEST_F(PlanServiceFileTest, ValidateReportsLocatedDiagnostics) {
  std::string bad = Write("bad.yaml", "name: bad\nstages:\n  a:\n    kynd: clean\n    run: [x]\n");
  std::vector<FileValidation> results = ValidateFiles({bad});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].ok);
  ASSERT_FALSE(results[0].diagnostics.empty());
  const Diagnostic& first = results[0].diagnostics[0];
  EXPECT_EQ(first.file, bad);
  EXPECT_EQ(first.line, 4);
  EXPECT_EQ(first.field_path, "stages.a.kynd");
}

TEST_F(PlanServiceFileTest, PlanPipelineFileExpandsOverriddenParams) {
  std::string good = Write("good.yaml", kValidPipeline);
  absl::StatusOr<Plan> plan = PlanPipelineFile(good, {{"shards", "2"}});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->pipeline, "files");
  EXPECT_EQ(plan->task_count, 3u);
  ASSERT_EQ(plan->layers.size(), 2u);
  EXPECT_EQ(plan->layers[0].tasks.size(), 2u);
  EXPECT_EQ(plan->layers[0].tasks[1].argv, (std::vector<std::string>{"ingest.py", "1"}));
  ASSERT_EQ(plan->params.size(), 1u);
  EXPECT_TRUE(plan->params[0].overridden);
}

TEST_F(PlanServiceFileTest, PlanPipelineFileFailsNamingTheFile) {
  std::string missing = dir_ + "/missing.yaml";
  absl::StatusOr<Plan> plan = PlanPipelineFile(missing);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(plan.status().message().find(missing), absl::string_view::npos);

  std::string bad = Write("bad.yaml", "name: bad\nstages:\n  a:\n    kynd: clean\n    run: [x]\n");
  plan = PlanPipelineFile(bad);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(plan.status().message().find(bad + ":4:"), absl::string_view::npos) << plan.status();
}

}  // namespace
}  // namespace tierflow::api
