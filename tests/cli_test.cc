// Runs the real `tierflow` binary as a subprocess on the fixtures in
// tests/cli/ and checks what users see: stdout, stderr and the exit code.
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "common/testing/child_process.h"

namespace tierflow {
namespace {

struct RunResult {
  int exit_code = -1;  // -1 when killed or not started
  std::string out;
  std::string err;
};

std::string Fixture(const std::string& name) {
  return std::string(TIERFLOW_CLI_FIXTURES) + "/" + name;
}

// Runs tierflow with `args`, reading both pipes until it exits; a run that
// takes longer than `limit` is killed by its pid, fails the test and gives
// exit -1.
RunResult RunTierflow(const std::vector<std::string>& args,
                      std::chrono::seconds limit = std::chrono::seconds(60)) {
  testing::ChildResult run = testing::RunChild({TIERFLOW_BIN, args}, limit);
  return {run.exit_code, std::move(run.out), std::move(run.err)};
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(CliValidateTest, ValidFilesPrintOkLinesAndExitZero) {
  std::string valid = Fixture("valid.yaml");
  std::string second = Fixture("second.yaml");
  RunResult run = RunTierflow({"validate", valid, second});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, valid + ": ok (3 stages, 4 tasks)\n" + second + ": ok (1 stage, 1 task)\n");
  EXPECT_EQ(run.err, "");
}

TEST(CliValidateTest, InvalidFileExitsOneWithLocatedDiagnosticOnStderr) {
  std::string valid = Fixture("valid.yaml");
  std::string invalid = Fixture("invalid.yaml");
  RunResult run = RunTierflow({"validate", valid, invalid});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.out, valid + ": ok (3 stages, 4 tasks)\n");
  EXPECT_TRUE(Contains(run.err, invalid + ":5:5: stages.clean.kynd: unknown key 'kynd'"))
      << run.err;
}

TEST(CliValidateTest, MissingFileExitsOneNamingThePath) {
  std::string missing = Fixture("does-not-exist.yaml");
  RunResult run = RunTierflow({"validate", missing});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.out, "");
  EXPECT_TRUE(Contains(run.err, missing)) << run.err;
}

TEST(CliValidateTest, ParamOverrideChangesTheTaskCount) {
  std::string valid = Fixture("valid.yaml");
  RunResult run = RunTierflow({"validate", valid, "--param", "shards=5"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, valid + ": ok (3 stages, 7 tasks)\n");
}

TEST(CliUsageTest, NoArgumentsIsAUsageError) {
  RunResult run = RunTierflow({});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_TRUE(Contains(run.err, "A subcommand is required")) << run.err;
  EXPECT_TRUE(Contains(run.err, "Run with --help for more information.")) << run.err;
}

TEST(CliUsageTest, ValidateWithoutFilesIsAUsageError) {
  RunResult run = RunTierflow({"validate"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_TRUE(Contains(run.err, "Run with --help for more information.")) << run.err;
}

TEST(CliUsageTest, UnknownFlagIsAUsageError) {
  RunResult run = RunTierflow({"validate", "--bogus", Fixture("valid.yaml")});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_TRUE(Contains(run.err, "--bogus")) << run.err;
  EXPECT_EQ(run.out, "");
}

TEST(CliUsageTest, UnknownCommandIsAUsageErrorWithDidYouMean) {
  RunResult run = RunTierflow({"valdate", Fixture("valid.yaml")});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_TRUE(Contains(run.err, "unknown command 'valdate' (did you mean 'validate'?)")) << run.err;
  EXPECT_TRUE(Contains(run.err, "Run with --help for more information.")) << run.err;
}

TEST(CliUsageTest, UnknownOutputFormatIsAUsageError) {
  RunResult run = RunTierflow({"plan", Fixture("valid.yaml"), "--output", "yaml"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_TRUE(Contains(run.err, "--output")) << run.err;
}

TEST(CliUsageTest, ParamWithoutEqualsIsAUsageErrorNamingTheArgument) {
  for (const char* command : {"plan", "validate"}) {
    RunResult run = RunTierflow({command, Fixture("valid.yaml"), "--param", "shards"});
    EXPECT_EQ(run.exit_code, 2) << command;
    EXPECT_TRUE(Contains(run.err, "'shards' is not NAME=VALUE")) << run.err;
    EXPECT_EQ(run.out, "");
  }
}

TEST(CliUsageTest, VersionPrintsTheVersion) {
  RunResult run = RunTierflow({"--version"});
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_EQ(run.out, "tierflow 0.1.0\n");
}

TEST(CliUsageTest, EveryCommandHasHelpWithAnExample) {
  for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
           {"--help"}, {"validate", "--help"}, {"plan", "--help"}}) {
    RunResult run = RunTierflow(args);
    EXPECT_EQ(run.exit_code, 0) << args[0];
    EXPECT_TRUE(Contains(run.out, "Example:\n  tierflow ")) << run.out;
  }
  EXPECT_TRUE(Contains(RunTierflow({"plan", "--help"}).out, "--output"));
}

TEST(CliPlanTest, TextListsLayersInDependencyOrder) {
  RunResult run = RunTierflow({"plan", Fixture("valid.yaml")});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_TRUE(Contains(run.out, "pipeline cli-valid: 3 stages, 4 tasks, 3 layers\n")) << run.out;
  EXPECT_TRUE(Contains(run.out, "critical path: ingest -> clean -> train (3 stages)\n"));
  size_t layer0 = run.out.find("layer 0");
  size_t ingest = run.out.find("  ingest[1]  ingest");
  size_t layer1 = run.out.find("layer 1");
  size_t clean = run.out.find("  clean  clean");
  size_t layer2 = run.out.find("layer 2");
  size_t train = run.out.find("  train  train");
  ASSERT_NE(train, std::string::npos) << run.out;
  EXPECT_LT(layer0, ingest);
  EXPECT_LT(ingest, layer1);
  EXPECT_LT(layer1, clean);
  EXPECT_LT(clean, layer2);
  EXPECT_LT(layer2, train);
}

TEST(CliPlanTest, JsonParsesWithTheRightCounts) {
  RunResult run = RunTierflow({"plan", Fixture("valid.yaml"), "--output", "json"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  nlohmann::json plan = nlohmann::json::parse(run.out);
  EXPECT_EQ(plan["pipeline"], "cli-valid");
  EXPECT_EQ(plan["totals"]["stages"], 3);
  EXPECT_EQ(plan["totals"]["tasks"], 4);
  EXPECT_EQ(plan["totals"]["layers"], 3);
  ASSERT_EQ(plan["layers"].size(), 3u);
  EXPECT_EQ(plan["layers"][0]["tasks"].size(), 2u);
  const nlohmann::json& train = plan["layers"][2]["tasks"][0];
  EXPECT_EQ(train["id"], "train");
  EXPECT_EQ(train["timeout_ms"], 9000000);
  EXPECT_EQ(train["argv"], nlohmann::json::parse(R"(["python3","train.py","--epochs","3"])"));
}

TEST(CliPlanTest, ParamOverrideReachesThePlan) {
  RunResult run = RunTierflow(
      {"plan", Fixture("valid.yaml"), "--param", "shards=3", "--param", "epochs=7", "-o", "json"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  nlohmann::json plan = nlohmann::json::parse(run.out);
  EXPECT_EQ(plan["totals"]["tasks"], 5);
  EXPECT_EQ(plan["layers"][0]["tasks"][2]["id"], "ingest[2]");
  EXPECT_EQ(plan["layers"][2]["tasks"][0]["argv"][3], "7");
  EXPECT_EQ(plan["params"][0],
            nlohmann::json::parse(R"({"name":"shards","type":"int","value":3,"overridden":true})"));
}

TEST(CliPlanTest, UnknownParamExitsOneWithDidYouMean) {
  RunResult run = RunTierflow({"plan", Fixture("valid.yaml"), "--param", "shard=3"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_TRUE(Contains(run.err, "shard")) << run.err;
  EXPECT_EQ(run.out, "");
}

TEST(CliPlanTest, BadParamValueExitsOneNamingTheParam) {
  RunResult run = RunTierflow({"plan", Fixture("valid.yaml"), "--param", "shards=three"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_TRUE(Contains(run.err, "shards")) << run.err;
  EXPECT_EQ(run.out, "");
}

TEST(CliPlanTest, InvalidFileExitsOneWithDiagnostics) {
  std::string invalid = Fixture("invalid.yaml");
  RunResult run = RunTierflow({"plan", invalid});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_TRUE(Contains(run.err, invalid + ":5:5: stages.clean.kynd")) << run.err;
  EXPECT_EQ(run.out, "");
}

TEST(CliPlanTest, MissingFileExitsOneNamingThePath) {
  std::string missing = Fixture("does-not-exist.yaml");
  RunResult run = RunTierflow({"plan", missing});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_TRUE(Contains(run.err, missing)) << run.err;
}

}  // namespace
}  // namespace tierflow
