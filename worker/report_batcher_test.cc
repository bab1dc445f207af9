#include "worker/report_batcher.h"

#include <gtest/gtest.h>

#include <vector>

namespace tierflow::worker {
namespace {

TaskReport Report(int64_t attempt, TaskReport::Outcome outcome) {
  TaskReport report;
  report.attempt_id = attempt;
  report.outcome = outcome;
  return report;
}

// What each message sent carried: (attempt, outcome) per report, and
// whether it was a batch.
struct Sent {
  bool batch = false;
  std::vector<std::pair<int64_t, v1::TaskReport::Outcome>> reports;
};

class Recorder {
 public:
  ReportBatcher::Send Send() {
    return [this](const v1::WorkerMessage& message) {
      Sent sent;
      if (message.has_report()) {
        sent.reports.emplace_back(message.report().attempt_id(), message.report().outcome());
      } else {
        sent.batch = true;
        for (const v1::TaskReport& report : message.reports().reports()) {
          sent.reports.emplace_back(report.attempt_id(), report.outcome());
        }
      }
      messages.push_back(sent);
      return true;
    };
  }
  std::vector<Sent> messages;
};

using Outcome = TaskReport::Outcome;

TEST(ReportBatcherTest, StartTravelsWithItsEndInOneMessage) {
  Recorder sent;
  ReportBatcher batcher(sent.Send(), /*batches=*/true);
  batcher.Add(Report(7, Outcome::kStarted));
  EXPECT_TRUE(sent.messages.empty()) << "a start is held";
  batcher.Add(Report(7, Outcome::kSucceeded));
  ASSERT_EQ(sent.messages.size(), 1u);
  EXPECT_TRUE(sent.messages[0].batch);
  ASSERT_EQ(sent.messages[0].reports.size(), 2u);
  EXPECT_EQ(sent.messages[0].reports[0], std::pair(int64_t{7}, v1::TaskReport::STARTED));
  EXPECT_EQ(sent.messages[0].reports[1], std::pair(int64_t{7}, v1::TaskReport::SUCCEEDED));
}

TEST(ReportBatcherTest, ReportsOfSeveralAttemptsKeepTheirOrder) {
  Recorder sent;
  ReportBatcher batcher(sent.Send(), /*batches=*/true);
  batcher.Add(Report(1, Outcome::kStarted));
  batcher.Add(Report(2, Outcome::kStarted));
  batcher.Add(Report(3, Outcome::kStarted));
  batcher.Add(Report(2, Outcome::kFailed));
  ASSERT_EQ(sent.messages.size(), 1u);
  const std::vector<std::pair<int64_t, v1::TaskReport::Outcome>> expected = {
      {1, v1::TaskReport::STARTED},
      {2, v1::TaskReport::STARTED},
      {3, v1::TaskReport::STARTED},
      {2, v1::TaskReport::FAILED}};
  EXPECT_EQ(sent.messages[0].reports, expected);
  // A final report with nothing held goes alone, at once.
  batcher.Add(Report(1, Outcome::kCancelled));
  ASSERT_EQ(sent.messages.size(), 2u);
  ASSERT_EQ(sent.messages[1].reports.size(), 1u);
  EXPECT_EQ(sent.messages[1].reports[0], std::pair(int64_t{1}, v1::TaskReport::CANCELLED));
}

TEST(ReportBatcherTest, FlushSendsTheHeldStarts) {
  Recorder sent;
  ReportBatcher batcher(sent.Send(), /*batches=*/true);
  batcher.Flush();
  EXPECT_TRUE(sent.messages.empty()) << "nothing held, nothing sent";
  batcher.Add(Report(4, Outcome::kStarted));
  batcher.Add(Report(5, Outcome::kStarted));
  batcher.Flush();
  ASSERT_EQ(sent.messages.size(), 1u);
  ASSERT_EQ(sent.messages[0].reports.size(), 2u);
  EXPECT_EQ(sent.messages[0].reports[0].first, 4);
  EXPECT_EQ(sent.messages[0].reports[1].first, 5);
  batcher.Flush();
  EXPECT_EQ(sent.messages.size(), 1u) << "the starts were sent once";
}

TEST(ReportBatcherTest, ServerWithoutBatchesGetsEachReportAloneAtOnce) {
  Recorder sent;
  ReportBatcher batcher(sent.Send(), /*batches=*/false);
  batcher.Add(Report(9, Outcome::kStarted));
  batcher.Add(Report(9, Outcome::kTimedOut));
  ASSERT_EQ(sent.messages.size(), 2u);
  for (const Sent& message : sent.messages) {
    EXPECT_FALSE(message.batch);
    EXPECT_EQ(message.reports.size(), 1u);
  }
  EXPECT_EQ(sent.messages[0].reports[0].second, v1::TaskReport::STARTED);
  EXPECT_EQ(sent.messages[1].reports[0].second, v1::TaskReport::TIMED_OUT);
}

}  // namespace
}  // namespace tierflow::worker
