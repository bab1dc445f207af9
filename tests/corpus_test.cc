// The pipeline corpus in tests/pipelines: every valid/*.yaml loads without a
// diagnostic, and every invalid/*.yaml produces exactly the lines of its
// sibling *.expected, labelled with the path relative to tests/pipelines
// (what `tierflow validate` prints when run from there).
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "dag/graph.h"
#include "dag/loader.h"

namespace tierflow::dag {
namespace {

namespace fs = std::filesystem;

// ctest sets TIERFLOW_SOURCE_DIR; test discovery at build time does not,
// so fall back to the folder CMake compiled in (not __FILE__: with ccache's
// CCACHE_BASEDIR that is a relative path, which discovery resolved from the
// wrong folder and so found no corpus, registering none of its cases).
fs::path CorpusDir() {
  if (const char* source = std::getenv("TIERFLOW_SOURCE_DIR"); source != nullptr && *source) {
    return fs::path(source) / "tests" / "pipelines";
  }
  return TIERFLOW_CORPUS_DIR;
}

// Paths relative to the corpus dir, such as "invalid/cycle.yaml", sorted.
std::vector<std::string> CorpusFiles(const std::string& subdir, const std::string& extension) {
  std::vector<std::string> files;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(CorpusDir() / subdir, error)) {
    if (entry.is_regular_file() && entry.path().extension() == extension) {
      files.push_back(subdir + "/" + entry.path().filename().string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The diagnostics as `tierflow validate` prints them, one per line.
std::string LoadAndReport(const std::string& relative_path) {
  std::vector<Diagnostic> diagnostics;
  auto pipeline = LoadPipelineText(ReadFile(CorpusDir() / relative_path), relative_path,
                                   LoadOptions{}, &diagnostics);
  std::string report;
  for (const Diagnostic& diagnostic : diagnostics) report += diagnostic.ToString() + "\n";
  if (!pipeline.ok() && diagnostics.empty()) report = std::string(pipeline.status().message());
  return report;
}

// "invalid/cycle_inputs.yaml" -> "cycle_inputs"; gtest names allow only
// letters, digits and '_'.
std::string TestName(const testing::TestParamInfo<std::string>& info) {
  std::string name = fs::path(info.param).stem().string();
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

class ValidPipelineTest : public testing::TestWithParam<std::string> {};

TEST_P(ValidPipelineTest, LoadsWithoutDiagnosticsAndPlans) {
  EXPECT_EQ(LoadAndReport(GetParam()), "");
  auto pipeline = LoadPipelineFile((CorpusDir() / GetParam()).string());
  ASSERT_TRUE(pipeline.ok()) << pipeline.status();
  auto graph = TaskGraph::Build(*pipeline);
  EXPECT_TRUE(graph.ok()) << graph.status();
}

INSTANTIATE_TEST_SUITE_P(Corpus, ValidPipelineTest,
                         testing::ValuesIn(CorpusFiles("valid", ".yaml")), TestName);

class InvalidPipelineTest : public testing::TestWithParam<std::string> {};

TEST_P(InvalidPipelineTest, ReportsExactlyTheExpectedDiagnostics) {
  fs::path expected_path = CorpusDir() / GetParam();
  expected_path.replace_extension(".expected");
  ASSERT_TRUE(fs::exists(expected_path)) << "missing " << expected_path;
  EXPECT_EQ(LoadAndReport(GetParam()), ReadFile(expected_path));
}

INSTANTIATE_TEST_SUITE_P(Corpus, InvalidPipelineTest,
                         testing::ValuesIn(CorpusFiles("invalid", ".yaml")), TestName);

TEST(CorpusTest, EveryExpectationHasItsPipeline) {
  for (const std::string& expected : CorpusFiles("invalid", ".expected")) {
    fs::path pipeline = CorpusDir() / expected;
    pipeline.replace_extension(".yaml");
    EXPECT_TRUE(fs::exists(pipeline)) << expected << " has no pipeline beside it";
  }
}

TEST(CorpusTest, CoversEnoughCases) {
  EXPECT_GE(CorpusFiles("valid", ".yaml").size(), 5u) << "corpus dir: " << CorpusDir();
  EXPECT_GE(CorpusFiles("invalid", ".yaml").size(), 25u) << "corpus dir: " << CorpusDir();
}

}  // namespace
}  // namespace tierflow::dag
