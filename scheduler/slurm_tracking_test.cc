#include "scheduler/slurm_tracking.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tierflow::scheduler::slurm {
namespace {

using std::chrono::milliseconds;
using ::testing::HasSubstr;

TEST(SlurmTrackingTest, PollsAtMinWhileJobsChangeAndBacksOffDoublingToMax) {
  const PollOptions options{.min = milliseconds(200), .max = milliseconds(1000)};
  PollDecision first = NextPoll(milliseconds(0), false, options);
  EXPECT_EQ(first.interval, milliseconds(200));
  milliseconds interval = first.interval;
  std::vector<int64_t> seen;
  for (int round = 0; round < 5; ++round) {
    PollDecision next = NextPoll(interval, /*changed=*/false, options);
    interval = next.interval;
    seen.push_back(interval.count());
  }
  EXPECT_THAT(seen, ::testing::ElementsAre(400, 800, 1000, 1000, 1000));
  EXPECT_THAT(NextPoll(milliseconds(400), false, options).reason, HasSubstr("backing off"));
  EXPECT_THAT(NextPoll(milliseconds(1000), false, options).reason, HasSubstr("longest"));
  PollDecision reset = NextPoll(milliseconds(1000), /*changed=*/true, options);
  EXPECT_EQ(reset.interval, milliseconds(200));
  EXPECT_THAT(reset.reason, HasSubstr("changed"));
}

TEST(SlurmTrackingTest, DefaultPollIsAFewSecondsBackingOffToAMinute) {
  const PollOptions options;
  milliseconds interval = NextPoll(milliseconds(0), false, options).interval;
  EXPECT_EQ(interval, milliseconds(2000));
  for (int round = 0; round < 10; ++round) interval = NextPoll(interval, false, options).interval;
  EXPECT_EQ(interval, milliseconds(60000));
}

// Recorded `scontrol show config` lines: the test cluster's (accounting
// off) and a site's with slurmdbd.
TEST(SlurmTrackingTest, TracksWithSacctOnlyWhereAccountingIsOn) {
  TrackingChoice off = TrackWithSacct(
      "AccountingStorageHost   = localhost\n"
      "AccountingStorageType   = accounting_storage/none\n"
      "JobCompType             = jobcomp/filetxt\n",
      true);
  EXPECT_FALSE(off.sacct);
  EXPECT_THAT(off.reason, HasSubstr("accounting is off"));
  TrackingChoice on = TrackWithSacct(
      "AccountingStorageHost   = dbd1\n"
      "AccountingStorageType   = accounting_storage/slurmdbd\n",
      true);
  EXPECT_TRUE(on.sacct);
  EXPECT_THAT(on.reason, HasSubstr("accounting_storage/slurmdbd"));
  EXPECT_FALSE(
      TrackWithSacct("AccountingStorageType = accounting_storage/slurmdbd\n", false).sacct);
  EXPECT_FALSE(TrackWithSacct("JobCompType = jobcomp/none\n", true).sacct);
}

TEST(SlurmTrackingTest, SacctTrackingAsksOnceByTheRunsJobName) {
  std::vector<std::string> args = SacctTrackArgs(JobName("r-1"));
  EXPECT_THAT(args, ::testing::Contains("--name=tierflow-r-1"));
  EXPECT_THAT(args, ::testing::Contains("--format=JobID,State,NodeList,ExitCode"));
}

// Recorded `sacct --parsable2 --noheader --name=... --format=JobID,State,
// NodeList,ExitCode` output (accounting is off on the test cluster: this
// path is tested on recorded lines only).
TEST(SlurmTrackingTest, SacctRecordsOfARunMapOntoFates) {
  std::vector<JobRecord> jobs = TrackedJobs(
      "40|RUNNING|n1|0:0\n"
      "40.batch|RUNNING|n1|0:0\n"
      "41_[2-3%1]|PENDING|None assigned|0:0\n"
      "41_0|COMPLETED|n2|0:0\n"
      "41_0.batch|COMPLETED|n2|0:0\n"
      "41_1|OUT_OF_MEMORY|n2|0:125\n"
      "42|NODE_FAIL|n2|0:0\n"
      "43|CANCELLED by 0|n1|0:15\n");
  std::vector<std::string> handles;
  for (const JobRecord& job : jobs) handles.push_back(job.handle);
  EXPECT_THAT(handles, ::testing::ElementsAre("40", "41_2", "41_3", "41_0", "41_1", "42", "43"));
  auto fate = [&](size_t i, bool cancel = false) { return FateOf(jobs[i], cancel); };
  EXPECT_TRUE(fate(0).in_flight);
  EXPECT_TRUE(fate(1).in_flight);
  EXPECT_TRUE(fate(2).in_flight);
  EXPECT_FALSE(fate(4).in_flight);
  EXPECT_EQ(fate(4).outcome, TaskReport::Outcome::kFailed);
  EXPECT_THAT(fate(4).message, HasSubstr("OUT_OF_MEMORY"));
  EXPECT_EQ(fate(5).outcome, TaskReport::Outcome::kLost);
  EXPECT_EQ(fate(6, /*cancel=*/true).outcome, TaskReport::Outcome::kCancelled);
}

TEST(SlurmTrackingTest, ParsesPollOptions) {
  absl::StatusOr<PollOptions> both = ParsePollOptions("0.2s,1s");
  ASSERT_TRUE(both.ok()) << both.status();
  EXPECT_EQ(both->min, milliseconds(200));
  EXPECT_EQ(both->max, milliseconds(1000));
  absl::StatusOr<PollOptions> min_only = ParsePollOptions("5s");
  ASSERT_TRUE(min_only.ok()) << min_only.status();
  EXPECT_EQ(min_only->max, milliseconds(60000));
  EXPECT_EQ(ParsePollOptions("2m")->max, milliseconds(120000));
  EXPECT_THAT(std::string(ParsePollOptions("2s,1s").status().message()),
              HasSubstr("MAX at least MIN"));
  EXPECT_THAT(std::string(ParsePollOptions("0s").status().message()), HasSubstr("above 0"));
  EXPECT_THAT(std::string(ParsePollOptions("soon").status().message()),
              HasSubstr("--slurm-poll 'soon': invalid duration"));
}

TEST(SlurmTrackingTest, SubmitOptionsRoundTripThroughTheirRecordedJson) {
  SubmitOptions options{.partition = "gpu",
                        .account = "lab",
                        .extra = {"--nice=1", "--qos=high"},
                        .array_throttle = 4};
  absl::StatusOr<SubmitOptions> back = ParseSubmitOptionsJson(SubmitOptionsJson(options));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->partition, "gpu");
  EXPECT_EQ(back->account, "lab");
  EXPECT_THAT(back->extra, ::testing::ElementsAre("--nice=1", "--qos=high"));
  EXPECT_EQ(back->array_throttle, 4);
  EXPECT_EQ(DescribeSubmitOptions(*back),
            "--slurm-partition gpu --slurm-account lab --slurm-option=--nice=1 "
            "--slurm-option=--qos=high --slurm-array-throttle 4");
  EXPECT_EQ(DescribeSubmitOptions(SubmitOptions()), "no --slurm-* options");
  EXPECT_THAT(std::string(ParseSubmitOptionsJson("{\"color\":1}").status().message()),
              HasSubstr("not what this tierflow records"));
}

}  // namespace
}  // namespace tierflow::scheduler::slurm
