// The live display's frame (cli/live_display.h BuildFrame): what a terminal
// of a given size gets, without a terminal.
#include "cli/live_display.h"

#include <gtest/gtest.h>

#include <regex>

namespace tierflow::cli {
namespace {

api::RunProgress ManyStages(int stages) {
  api::RunProgress p;
  p.run_id = "demo-3f9a1c";
  p.pipeline = "demo";
  for (int i = 0; i < stages; ++i) {
    api::StageProgress s;
    s.stage = "stage_with_a_rather_long_name_" + std::to_string(i);
    s.kind = "foreach";
    s.counts.total = 100;
    s.counts.succeeded = 40;
    s.counts.failed = 1;
    s.counts.running = 4;
    s.counts.pending = 55;
    p.stages.push_back(s);
    p.counts.total += 100;
    p.counts.succeeded += 40;
    p.counts.failed += 1;
    p.counts.running += 4;
    p.counts.pending += 55;
  }
  for (int i = 0; i < 5; ++i) p.running.push_back({"shard[" + std::to_string(i) + "]", 1000});
  p.data_waits_total = 7;
  p.data_waits = {"train[0]", "train[1]", "train[2]"};
  return p;
}

FrameInput Input(int columns, int rows, bool color) {
  FrameInput in;
  in.progress = ManyStages(30);
  in.now_ms = 5000;
  in.elapsed = std::chrono::seconds(75);
  in.eta = std::chrono::seconds(90);
  in.columns = columns;
  in.rows = rows;
  in.color = color;
  return in;
}

TEST(LiveDisplayFrameTest, FitsTheTerminalAndCutsTheStageList) {
  for (bool color : {false, true}) {
    for (auto [columns, rows] : {std::pair{100, 30}, {60, 15}, {40, 8}}) {
      std::vector<std::string> lines = BuildFrame(Input(columns, rows, color));
      EXPECT_LE(lines.size(), static_cast<size_t>(rows - 2)) << columns << "x" << rows;
      for (const std::string& line : lines) {
        EXPECT_LT(VisibleWidth(line), static_cast<size_t>(columns)) << line;
      }
      bool cut = false;
      for (const std::string& line : lines) cut |= line.find("more stages") != std::string::npos;
      EXPECT_TRUE(cut) << "30 stages never fit in " << rows << " rows";
    }
  }
}

TEST(LiveDisplayFrameTest, HeaderThenOverallBarThenStagesRunningAndWaits) {
  std::vector<std::string> lines = BuildFrame(Input(120, 60, false));
  ASSERT_GE(lines.size(), 3u);
  EXPECT_EQ(lines[0], "run demo-3f9a1c · demo · 3000 tasks");
  EXPECT_TRUE(std::regex_search(
      lines[1],
      std::regex(
          R"(^[#!>.]{10,40} 1200/3000 succeeded, 120 running, 1650 waiting, 30 failed  1:15  ETA 1:30$)")))
      << lines[1];
  // A failure is never invisible in a bar, even one of 30 in 3000.
  EXPECT_NE(lines[1].find('!'), std::string::npos) << lines[1];
  int stages = 0;
  for (const std::string& line : lines) stages += line.rfind("  stage_with", 0) == 0;
  EXPECT_EQ(stages, 30);
  int running = 0;
  for (const std::string& line : lines) running += line.find("▸ shard[") != std::string::npos;
  EXPECT_EQ(running, 3);
  bool waits = false;
  for (const std::string& line : lines) {
    waits |= line == "  waiting for data: 7 tasks (train[0], train[1], train[2], …)";
  }
  EXPECT_TRUE(waits);
}

TEST(LiveDisplayFrameTest, NoEscapeCodesWithoutColour) {
  for (const std::string& line : BuildFrame(Input(100, 30, false))) {
    EXPECT_EQ(line.find('\033'), std::string::npos) << line;
  }
  bool painted = false;
  for (const std::string& line : BuildFrame(Input(100, 30, true))) {
    painted |= line.find("\033[") != std::string::npos;
  }
  EXPECT_TRUE(painted);
}

TEST(LiveDisplayFrameTest, FitWidthCountsCodePointsNotBytesOrEscapes) {
  EXPECT_EQ(VisibleWidth("\033[31m██\033[0m ab"), 5u);
  std::string cut = FitWidth("\033[31mabcdefgh\033[0m", 5);
  EXPECT_EQ(VisibleWidth(cut), 5u);
  EXPECT_EQ(cut, "\033[31mabcd…\033[0m");
  EXPECT_EQ(FitWidth("short", 10), "short");
}

}  // namespace
}  // namespace tierflow::cli
