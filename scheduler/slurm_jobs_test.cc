#include "scheduler/slurm_jobs.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>

namespace tierflow::scheduler::slurm {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Outcome = TaskReport::Outcome;

TaskLaunch Launch() {
  TaskLaunch launch;
  launch.attempt_id = 7;
  launch.run_id = "r-1";
  launch.env = {{"TIERFLOW_STAGE", "train"}};
  return launch;
}

bool Has(const SbatchPlan& plan, const std::string& arg) {
  return std::find(plan.args.begin(), plan.args.end(), arg) != plan.args.end();
}

TEST(SlurmJobsTest, SbatchArgsMapResourcesEachValueItsOwnArgument) {
  TaskLaunch launch = Launch();
  launch.cpus = 1.5;
  launch.memory = 256 * 1024 * 1024 + 1;
  launch.gpus = 2;
  launch.timeout = std::chrono::seconds(61);
  launch.kill_grace = std::chrono::seconds(10);
  launch.labels = {{"partition", "gpu"}, {"ssd", "true"}, {"arch", "a100"}};
  SbatchPlan plan = SbatchArgs(
      launch, {7},
      {.partition = "debug", .account = "lab", .extra = {"--qos=high"}, .array_throttle = 0},
      "/jobs/job-%j.out");
  EXPECT_TRUE(Has(plan, "--parsable"));
  EXPECT_TRUE(Has(plan, "--no-requeue"));
  EXPECT_TRUE(Has(plan, "--job-name=tierflow-r-1"));
  EXPECT_TRUE(Has(plan, "--comment=tierflow:7"));
  EXPECT_TRUE(Has(plan, "--output=/jobs/job-%j.out"));
  EXPECT_THAT(std::find(plan.args.begin(), plan.args.end(), "-c")[1], "2");  // 1.5 rounded up
  EXPECT_TRUE(Has(plan, "--mem=257M"));                                      // MiB, rounded up
  EXPECT_TRUE(Has(plan, "--gres=gpu:2"));
  // 61 s + 10 s grace → 2 minutes, plus one minute of grace.
  EXPECT_THAT(std::find(plan.args.begin(), plan.args.end(), "-t")[1], "3");
  EXPECT_TRUE(Has(plan, "--partition=gpu")) << "the stage's label wins over --slurm-partition";
  EXPECT_FALSE(Has(plan, "--partition=debug"));
  EXPECT_TRUE(Has(plan, "--constraint=a100&ssd"));
  EXPECT_TRUE(Has(plan, "--account=lab"));
  EXPECT_TRUE(Has(plan, "--qos=high"));
  EXPECT_FALSE(Has(plan, "--array=0-0"));
  EXPECT_GE(plan.reasons.size(), 10u);
}

TEST(SlurmJobsTest, SbatchArgsWithoutResourcesAskOneCpuAndNoLimit) {
  SbatchPlan plan = SbatchArgs(Launch(), {7}, {}, "log");
  EXPECT_THAT(std::find(plan.args.begin(), plan.args.end(), "-c")[1], "1");
  for (const std::string& arg : plan.args) {
    EXPECT_EQ(arg.find("--mem"), std::string::npos) << arg;
    EXPECT_NE(arg, "-t");
    EXPECT_EQ(arg.find("--partition"), std::string::npos) << arg;
  }
}

TEST(SlurmJobsTest, SeveralAttemptsGoAsOneArrayWithThrottle) {
  SbatchPlan plan =
      SbatchArgs(Launch(), {7, 8, 9},
                 {.partition = "", .account = "", .extra = {}, .array_throttle = 2}, "log-%A_%a");
  EXPECT_TRUE(Has(plan, "--array=0-2%2"));
  EXPECT_TRUE(Has(plan, "--comment=tierflow:7,8,9"));
}

TEST(SlurmJobsTest, BatchKeySeparatesStagesAndResources) {
  TaskLaunch a = Launch(), b = Launch();
  b.attempt_id = 8;
  b.task_id = "train[1]";
  EXPECT_EQ(BatchKey(a), BatchKey(b));
  b.gpus = 1;
  EXPECT_NE(BatchKey(a), BatchKey(b));
  b = Launch();
  b.env = {{"TIERFLOW_STAGE", "eval"}};
  EXPECT_NE(BatchKey(a), BatchKey(b));
  b = Launch();
  b.timeout = std::chrono::seconds(5);
  EXPECT_NE(BatchKey(a), BatchKey(b));
  b = Launch();
  b.labels = {{"ssd", "true"}};
  EXPECT_NE(BatchKey(a), BatchKey(b));
}

TEST(SlurmJobsTest, CommentRoundTripsAndIgnoresOthers) {
  EXPECT_THAT(AttemptsOfComment(Comment({3, 14, 15})), ElementsAre(3, 14, 15));
  EXPECT_THAT(AttemptsOfComment("someone else's job"), IsEmpty());
  EXPECT_THAT(AttemptsOfComment("tierflow:3,x"), IsEmpty());
}

TEST(SlurmJobsTest, JobScriptQuotesEveryValue) {
  std::string script = JobScript("/opt/tier flow/bin's/tierflow", "/jobs/$HOME", {42}, "");
  EXPECT_THAT(script, HasSubstr("#!/bin/sh\n"));
  EXPECT_THAT(script, HasSubstr("attempt=42\n"));
  EXPECT_THAT(script, HasSubstr("exec '/opt/tier flow/bin'\\''s/tierflow' exec-task --launch "
                                "'/jobs/$HOME'\"/attempt-$attempt.launch\" --report "
                                "'/jobs/$HOME'\"/attempt-$attempt.report\""));
  std::string array = JobScript("/bin/tierflow", "/jobs", {1, 2}, "/jobs/batch-1.list");
  EXPECT_THAT(array, HasSubstr("sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" '/jobs/batch-1.list'"));
  EXPECT_EQ(ListFile({1, 2}), "1\n2\n");
  EXPECT_EQ(ShellQuote("a'b"), "'a'\\''b'");
}

TEST(SlurmJobsTest, ParsesSbatchParsableOutput) {
  EXPECT_EQ(ParseSbatchOutput("123\n"), "123");
  EXPECT_EQ(ParseSbatchOutput("123;cluster\n"), "123");
  EXPECT_EQ(ParseSbatchOutput("sbatch: error: nope"), std::nullopt);
  EXPECT_EQ(ParseSbatchOutput(""), std::nullopt);
  EXPECT_EQ(HandleOf("123", 0, 1), "123");
  EXPECT_EQ(HandleOf("123", 4, 5), "123_4");
}

// Recorded from scripts/slurm.sh's cluster (Slurm 22.05): `squeue --array`
// gives one line per element; without --array, a pending range.
TEST(SlurmJobsTest, ParsesSqueueElementsAndPendingRanges) {
  std::vector<JobRecord> jobs = ParseSqueue(
      "1_0|RUNNING|n1|tierflow:5,6,7\n"
      "1_[1-2%1]|PENDING||tierflow:5,6,7\n"
      "4|PENDING||tierflow:9\n"
      "5_[1,3-4]|PENDING||x\n");
  ASSERT_EQ(jobs.size(), 7u);
  EXPECT_EQ(jobs[0].handle, "1_0");
  EXPECT_EQ(jobs[0].state, "RUNNING");
  EXPECT_EQ(jobs[0].nodes, "n1");
  EXPECT_EQ(jobs[0].comment, "tierflow:5,6,7");
  EXPECT_EQ(jobs[1].handle, "1_1");
  EXPECT_EQ(jobs[2].handle, "1_2");
  EXPECT_EQ(jobs[2].state, "PENDING");
  EXPECT_EQ(jobs[3].handle, "4");
  EXPECT_EQ(jobs[4].handle, "5_1");
  EXPECT_EQ(jobs[5].handle, "5_3");
  EXPECT_EQ(jobs[6].handle, "5_4");
}

// A line recorded from the test cluster's jobcomp/filetxt file.
TEST(SlurmJobsTest, ParsesJobcompLines) {
  std::vector<JobRecord> jobs = ParseJobcomp(
      "JobId=2 UserId=root(0) GroupId=root(0) Name=tierflow-r1 JobState=COMPLETED "
      "Partition=debug TimeLimit=UNLIMITED StartTime=2026-12-07T08:49:33 "
      "EndTime=2026-12-07T08:49:34 NodeList=n1 NodeCnt=1 ProcCnt=1 WorkDir=/tmp/slurmdev "
      "ReservationName= Tres=cpu=1,mem=1G,node=1,billing=1 Account= QOS= WcKey= Cluster=unknown "
      "SubmitTime=2026-12-07T08:49:31 EligibleTime=2026-12-07T08:49:33 ArrayJobId=1 "
      "ArrayTaskId=0 DerivedExitCode=0:0 ExitCode=0:0 \n"
      "JobId=9 UserId=root(0) GroupId=root(0) Name=tierflow-r1 JobState=NODE_FAIL "
      "NodeList=n2 ArrayJobId=0 ArrayTaskId=4294967294 ExitCode=0:0\n");
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].handle, "1_0");
  EXPECT_EQ(jobs[0].state, "COMPLETED");
  EXPECT_EQ(jobs[0].nodes, "n1");
  EXPECT_EQ(jobs[0].exit_code, "0:0");
  EXPECT_EQ(jobs[1].handle, "0_4294967294") << "as Slurm writes a plain job's array fields";
}

// Recorded-style `sacct --parsable2 --noheader --format=JobID,State,NodeList,ExitCode`
// (accounting is off on the test cluster: the parser is tested here only).
TEST(SlurmJobsTest, ParsesSacctSkippingSteps) {
  std::vector<JobRecord> jobs = ParseSacct(
      "12|OUT_OF_MEMORY|n1|0:125\n"
      "12.batch|OUT_OF_MEMORY|n1|0:125\n"
      "13_2|CANCELLED by 0|n2|0:15\n");
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].handle, "12");
  EXPECT_EQ(jobs[0].state, "OUT_OF_MEMORY");
  EXPECT_EQ(jobs[1].handle, "13_2");
  EXPECT_EQ(jobs[1].state, "CANCELLED");
}

TEST(SlurmJobsTest, FindsTheJobcompFileInScontrolShowConfig) {
  EXPECT_EQ(JobcompFileOf("JobCompLoc              = /tmp/s/jobcomp.txt\n"
                          "JobCompType             = jobcomp/filetxt\n"),
            "/tmp/s/jobcomp.txt");
  EXPECT_EQ(JobcompFileOf("JobCompLoc = /x\nJobCompType = jobcomp/none\n"), std::nullopt);
}

// OUT_OF_MEMORY cannot be produced on this machine's Slurm (no cgroups):
// its mapping, like the others, is tested on recorded state words.
TEST(SlurmJobsTest, MapsSlurmStatesOntoOutcomesWithSlurmsWord) {
  auto fate = [](const std::string& state, bool cancel = false) {
    return FateOf(
        JobRecord{
            .handle = "12_3", .state = state, .nodes = "n2", .comment = "", .exit_code = "0:9"},
        cancel);
  };
  for (const char* state : {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED"}) {
    EXPECT_TRUE(fate(state).in_flight) << state;
  }
  struct Case {
    std::string state;
    bool cancel;
    Outcome outcome;
  };
  for (const Case& c :
       {Case{"NODE_FAIL", false, Outcome::kLost}, Case{"PREEMPTED", false, Outcome::kLost},
        Case{"BOOT_FAIL", false, Outcome::kLost}, Case{"COMPLETED", false, Outcome::kLost},
        Case{"TIMEOUT", false, Outcome::kTimedOut}, Case{"DEADLINE", false, Outcome::kTimedOut},
        Case{"OUT_OF_MEMORY", false, Outcome::kFailed}, Case{"FAILED", false, Outcome::kFailed},
        Case{"CANCELLED", false, Outcome::kFailed}, Case{"CANCELLED", true, Outcome::kCancelled}}) {
    Fate f = fate(c.state, c.cancel);
    EXPECT_FALSE(f.in_flight) << c.state;
    EXPECT_EQ(f.outcome, c.outcome) << c.state;
    EXPECT_THAT(f.message, HasSubstr("Slurm " + c.state + ": job 12_3")) << c.state;
  }
  EXPECT_THAT(fate("NODE_FAIL").message, HasSubstr("not the task's fault"));
  EXPECT_THAT(fate("OUT_OF_MEMORY").message, HasSubstr("--mem"));
  EXPECT_THAT(fate("CANCELLED").message, HasSubstr("outside tierflow"));
  EXPECT_TRUE(EndedBySlurm("NODE_FAIL"));
  EXPECT_TRUE(EndedBySlurm("OUT_OF_MEMORY"));
  EXPECT_FALSE(EndedBySlurm("CANCELLED")) << "an outside scancel: the task's own report stands";
  EXPECT_FALSE(EndedBySlurm("COMPLETED"));
}

// --- Packing ------------------------------------------------------------------

TEST(SlurmJobsTest, ItemsPerJobTheStagesOwnSettingWins) {
  TaskLaunch launch = Launch();
  launch.slurm.items_per_job = 5;
  launch.expected_duration = std::chrono::milliseconds(1);
  Packing packing = ItemsPerJob(launch);
  EXPECT_EQ(packing.items_per_job, 5u);
  EXPECT_THAT(packing.reason, HasSubstr("items_per_job: 5"));
}

TEST(SlurmJobsTest, ItemsPerJobFromTheMedianRecordedTimeClamped) {
  TaskLaunch launch = Launch();
  launch.expected_duration = std::chrono::milliseconds(2500);  // 10 s / 2.5 s
  Packing packing = ItemsPerJob(launch);
  EXPECT_EQ(packing.items_per_job, 4u);
  EXPECT_THAT(packing.reason, HasSubstr("median recorded task time 2s500ms: 4 item(s) a job"));
  launch.expected_duration = std::chrono::milliseconds(3400);  // floor(2.94)
  EXPECT_EQ(ItemsPerJob(launch).items_per_job, 2u);
  launch.expected_duration = std::chrono::seconds(30);  // longer than the target: alone
  EXPECT_EQ(ItemsPerJob(launch).items_per_job, 1u);
  launch.expected_duration = std::chrono::milliseconds(20);  // 500, clamped
  EXPECT_EQ(ItemsPerJob(launch).items_per_job, kMaxPack);
  launch.expected_duration = std::chrono::milliseconds(0);  // instant: clamped, no division by 0
  EXPECT_EQ(ItemsPerJob(launch).items_per_job, kMaxPack);
}

TEST(SlurmJobsTest, ItemsPerJobWithoutHistoryIsOne) {
  Packing packing = ItemsPerJob(Launch());
  EXPECT_EQ(packing.items_per_job, 1u);
  EXPECT_THAT(packing.reason, HasSubstr("no recorded task times"));
}

TEST(SlurmJobsTest, PackedArrayHasOneElementPerKItemsAndSumsTheTimeLimit) {
  TaskLaunch launch = Launch();
  launch.timeout = std::chrono::seconds(50);
  launch.kill_grace = std::chrono::seconds(10);
  launch.slurm.options = {"--qos=short"};
  const std::vector<int64_t> attempts = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  SbatchPlan plan =
      SbatchArgs(launch, attempts,
                 {.partition = "", .account = "", .extra = {"--exclusive"}, .array_throttle = 0},
                 "log", Packing{.items_per_job = 5, .reason = "r"});
  EXPECT_TRUE(Has(plan, "--array=0-2"));  // 5 + 5 + 2
  EXPECT_TRUE(Has(plan, "--comment=tierflow:1,2,3,4,5,6,7,8,9,10,11,12/5"));
  // 5 items x 60 s = 5 minutes, plus one of grace.
  EXPECT_THAT(std::find(plan.args.begin(), plan.args.end(), "-t")[1], "6");
  // One item's resources: the job runs one at a time.
  EXPECT_THAT(std::find(plan.args.begin(), plan.args.end(), "-c")[1], "1");
  // The stage's own options come after the run's.
  auto run_option = std::find(plan.args.begin(), plan.args.end(), "--exclusive");
  auto stage_option = std::find(plan.args.begin(), plan.args.end(), "--qos=short");
  ASSERT_NE(stage_option, plan.args.end());
  EXPECT_LT(run_option, stage_option);
  EXPECT_THAT(plan.reasons, ::testing::Contains(HasSubstr("packing: r")));

  // A batch of at most k items is one plain job.
  SbatchPlan plain =
      SbatchArgs(launch, {1, 2, 3}, {}, "log", Packing{.items_per_job = 5, .reason = "r"});
  for (const std::string& arg : plain.args) EXPECT_EQ(arg.find("--array"), std::string::npos);
  EXPECT_THAT(std::find(plain.args.begin(), plain.args.end(), "-t")[1], "4");  // 3 x 60 s + 1
}

TEST(SlurmJobsTest, PackedHandlesNameTheJobOrElementOfEachAttempt) {
  EXPECT_EQ(HandleOf("9", 0, 12, 5), "9_0");
  EXPECT_EQ(HandleOf("9", 4, 12, 5), "9_0");
  EXPECT_EQ(HandleOf("9", 5, 12, 5), "9_1");
  EXPECT_EQ(HandleOf("9", 11, 12, 5), "9_2");
  EXPECT_EQ(HandleOf("9", 2, 5, 5), "9");  // one job
  EXPECT_EQ(HandleOf("9", 2, 3, 1), "9_2");
  EXPECT_EQ(ItemsPerJobOfComment(Comment({1, 2, 3}, 2)), 2u);
  EXPECT_THAT(AttemptsOfComment(Comment({1, 2, 3}, 2)), ElementsAre(1, 2, 3));
  EXPECT_EQ(ItemsPerJobOfComment(Comment({1, 2, 3})), 1u);
  EXPECT_EQ(ItemsPerJobOfComment("someone else's/5"), 1u);
}

TEST(SlurmJobsTest, PackedJobScriptRunsItsSliceOfTheList) {
  std::string script = JobScript("/bin/tierflow", "/jobs", {1, 2, 3}, "/jobs/batch-1.list", 2);
  EXPECT_THAT(script, HasSubstr("first=$(( ${SLURM_ARRAY_TASK_ID:-0} * 2 ))\n"));
  EXPECT_THAT(script, HasSubstr("exec '/bin/tierflow' exec-task --dir '/jobs' --list "
                                "'/jobs/batch-1.list' --first \"$first\" --count 2\n"));
  // One attempt needs no list, whatever the packing.
  EXPECT_THAT(JobScript("/bin/tierflow", "/jobs", {1}, "", 2), HasSubstr("attempt=1\n"));
}

}  // namespace
}  // namespace tierflow::scheduler::slurm
