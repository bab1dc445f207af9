#include "api/run_failures.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "scheduler/testing/run_fixture.h"

namespace tierflow::api {
namespace {

using Lines = std::vector<std::string>;

class RunFailuresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = scheduler::testing::MakeTempDir();
    auto fixture = scheduler::testing::WriteRunFixture(dir_, scheduler::testing::DeadPid());
    ASSERT_TRUE(fixture.ok()) << fixture.status();
    fixture_ = *fixture;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string File(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  std::string dir_;
  scheduler::testing::RunFixture fixture_;
};

// The fixture's failed run: publish failed twice, the second time killed by
// signal 15 (timed out); notify is upstream_failed, which is not listed.
TEST_F(RunFailuresTest, ListsEachFailedTaskWithItsLatestAttemptAndLogTail) {
  absl::StatusOr<FailureList> list =
      ListFailures(fixture_.db_path, "quickstart-3f9a1c", {.db_flag = "/data/a b.db"});
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->run_id, "quickstart-3f9a1c");
  EXPECT_EQ(list->total, 1u);
  ASSERT_EQ(list->failures.size(), 1u);
  const FailureReport& publish = list->failures[0];
  EXPECT_EQ(publish.task.id, "publish");
  ASSERT_EQ(publish.task.attempts.size(), 1u);
  EXPECT_EQ(publish.task.attempts[0].number, 2);
  EXPECT_EQ(publish.task.attempts[0].signal, 15);
  // Its log as the fixture wrote it: one line.
  std::ifstream log(publish.task.attempts[0].log_path);
  std::string line;
  ASSERT_TRUE(std::getline(log, line));
  EXPECT_EQ(publish.log_tail, Lines{line});
  EXPECT_FALSE(publish.log_cut);
  EXPECT_EQ(publish.logs_command, "tierflow logs quickstart-3f9a1c publish --db '/data/a b.db'");

  std::ostringstream json;
  RenderFailuresJson(*list, json);
  nlohmann::json parsed = nlohmann::json::parse(json.str());
  EXPECT_EQ(parsed["total"], 1);
  EXPECT_EQ(parsed["failures"][0]["task_id"], "publish");
  EXPECT_EQ(parsed["failures"][0]["attempt"], 2);
  EXPECT_EQ(parsed["failures"][0]["signal"], 15);
  EXPECT_EQ(parsed["failures"][0]["log_tail"][0], line);
}

TEST_F(RunFailuresTest, ARunWithoutFailuresAndAnUnknownRun) {
  absl::StatusOr<FailureList> none = ListFailures(fixture_.db_path, "quickstart-1a2b3c", {});
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->total, 0u);
  EXPECT_TRUE(none->failures.empty());
  absl::StatusOr<FailureList> unknown = ListFailures(fixture_.db_path, "quickstart-3f9a1d", {});
  EXPECT_TRUE(absl::IsNotFound(unknown.status())) << unknown.status();
  EXPECT_NE(unknown.status().message().find("quickstart-3f9a1c"), std::string::npos)
      << unknown.status();  // did you mean
}

TEST_F(RunFailuresTest, ALogThatIsGoneIsSaid) {
  absl::StatusOr<FailureList> list = ListFailures(fixture_.db_path, "quickstart-3f9a1c", {});
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->failures.size(), 1u);
  std::filesystem::remove(list->failures[0].task.attempts[0].log_path);
  list = ListFailures(fixture_.db_path, "quickstart-3f9a1c", {});
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_TRUE(list->failures[0].log_tail.empty());
  EXPECT_EQ(list->failures[0].log_note.rfind("its log is gone: cannot read the log ", 0), 0u)
      << list->failures[0].log_note;
}

TEST_F(RunFailuresTest, LogTailTakesTheLastLinesAndSaysWhatWasCut) {
  std::string text;
  for (int i = 1; i <= 100; ++i) text += "line " + std::to_string(i) + "\n";
  const std::string path = File("log", text);
  bool cut = false;
  absl::StatusOr<Lines> tail = ReadLogTail(path, 3, 8192, &cut);
  ASSERT_TRUE(tail.ok()) << tail.status();
  EXPECT_EQ(*tail, (Lines{"line 98", "line 99", "line 100"}));
  EXPECT_TRUE(cut);
  // Fewer bytes than the lines asked for: the partial first line is dropped.
  tail = ReadLogTail(path, 10, 20, &cut);
  ASSERT_TRUE(tail.ok()) << tail.status();
  EXPECT_EQ(*tail, (Lines{"line 99", "line 100"}));
  EXPECT_TRUE(cut);
  // The whole of a short log: not cut; CRs and a missing last newline are fine.
  tail = ReadLogTail(File("short", "a\r\nb"), 10, 8192, &cut);
  ASSERT_TRUE(tail.ok()) << tail.status();
  EXPECT_EQ(*tail, (Lines{"a", "b"}));
  EXPECT_FALSE(cut);
}

TEST_F(RunFailuresTest, LogTailCannotDriveTheTerminal) {
  bool cut = false;
  absl::StatusOr<Lines> tail =
      ReadLogTail(File("esc", "\033[2J\033]0;title\007ok\n"), 10, 8192, &cut);
  ASSERT_TRUE(tail.ok()) << tail.status();
  ASSERT_EQ(tail->size(), 1u);
  EXPECT_EQ((*tail)[0].find('\033'), std::string::npos) << (*tail)[0];
  EXPECT_EQ((*tail)[0].find('\007'), std::string::npos) << (*tail)[0];
  EXPECT_NE((*tail)[0].find("ok"), std::string::npos);
  EXPECT_TRUE(absl::IsNotFound(ReadLogTail(dir_ + "/none", 10, 100, &cut).status()));
}

}  // namespace
}  // namespace tierflow::api
