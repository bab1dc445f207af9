#include "scheduler/run_supervisor.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

namespace tierflow::scheduler {
namespace {

using Driven = std::map<std::string, DrivenRun>;

std::vector<std::string> Ids(const std::vector<RunToResume>& resume) {
  std::vector<std::string> ids;
  for (const RunToResume& run : resume) ids.push_back(run.run_id);
  return ids;
}

TEST(RunSupervisorTest, ARunDrivenByThisServerIsNeverResumed) {
  RunSupervisor supervisor;
  const Driven driven = {{"r1", DrivenRun{.ended = false}}};
  for (int check = 0; check < 3; ++check) {
    EXPECT_TRUE(supervisor.Check({"r1"}, driven).empty()) << "check " << check;
    EXPECT_TRUE(supervisor.suspects().empty()) << "check " << check;
  }
}

TEST(RunSupervisorTest, AnUndrivenRunSeenOnceIsOnlyASuspect) {
  RunSupervisor supervisor;
  EXPECT_TRUE(supervisor.Check({"r1"}, {}).empty());
  EXPECT_EQ(supervisor.suspects(), std::set<std::string>{"r1"});
  // Driven by the next check (it was being submitted): never resumed.
  EXPECT_TRUE(supervisor.Check({"r1"}, {{"r1", DrivenRun{}}}).empty());
  EXPECT_TRUE(supervisor.suspects().empty());
}

TEST(RunSupervisorTest, AnUndrivenRunSeenTwiceIsResumedBecauseNoEngineDroveIt) {
  RunSupervisor supervisor;
  ASSERT_TRUE(supervisor.Check({"r1", "r2"}, {{"r2", DrivenRun{}}}).empty());
  std::vector<RunToResume> resume = supervisor.Check({"r1", "r2"}, {{"r2", DrivenRun{}}});
  ASSERT_EQ(Ids(resume), std::vector<std::string>{"r1"});
  EXPECT_EQ(resume[0].why, "no engine of this server drove it");
}

TEST(RunSupervisorTest, AnEngineThatEndedWellLeavesARunUndriven) {
  RunSupervisor supervisor;
  const Driven driven = {{"r1", DrivenRun{.ended = true}}};
  ASSERT_TRUE(supervisor.Check({"r1"}, driven).empty());
  std::vector<RunToResume> resume = supervisor.Check({"r1"}, driven);
  ASSERT_EQ(Ids(resume), std::vector<std::string>{"r1"});
  EXPECT_EQ(resume[0].why, "no engine of this server drove it");
}

TEST(RunSupervisorTest, TheReasonNamesTheErrorItsEngineStoppedOn) {
  RunSupervisor supervisor;
  const Driven driven = {{"r1", DrivenRun{.ended = true, .error = "database is locked"}}};
  ASSERT_TRUE(supervisor.Check({"r1"}, driven).empty());
  std::vector<RunToResume> resume = supervisor.Check({"r1"}, driven);
  ASSERT_EQ(Ids(resume), std::vector<std::string>{"r1"});
  EXPECT_EQ(resume[0].why, "its engine stopped: database is locked");
}

TEST(RunSupervisorTest, RunsAreResumedInTheStoresOrder) {
  RunSupervisor supervisor;
  const std::vector<std::string> running = {"r3", "r1", "r2"};
  ASSERT_TRUE(supervisor.Check(running, {}).empty());
  EXPECT_EQ(Ids(supervisor.Check(running, {})), running);
}

TEST(RunSupervisorTest, ARunNoLongerRunningIsForgotten) {
  RunSupervisor supervisor;
  ASSERT_TRUE(supervisor.Check({"r1"}, {}).empty());
  ASSERT_TRUE(supervisor.Check({}, {}).empty());  // it finished meanwhile
  EXPECT_TRUE(supervisor.suspects().empty());
  EXPECT_TRUE(supervisor.Check({"r1"}, {}).empty()) << "seen once since: only a suspect";
}

TEST(RunSupervisorTest, AResumedRunIsSeenTwiceAgainBeforeAnotherResume) {
  RunSupervisor supervisor;
  ASSERT_TRUE(supervisor.Check({"r1"}, {}).empty());
  ASSERT_EQ(supervisor.Check({"r1"}, {}).size(), 1u);
  supervisor.Resumed("r1");
  EXPECT_TRUE(supervisor.suspects().empty());
  // Its new engine stopped at once: a suspect first, as any run.
  const Driven driven = {{"r1", DrivenRun{.ended = true, .error = "disk full"}}};
  EXPECT_TRUE(supervisor.Check({"r1"}, driven).empty());
  EXPECT_EQ(Ids(supervisor.Check({"r1"}, driven)), std::vector<std::string>{"r1"});
}

TEST(RunSupervisorTest, AFailedResumeIsRetriedAtTheNextCheckAndItsErrorToldOnce) {
  RunSupervisor supervisor;
  ASSERT_TRUE(supervisor.Check({"r1"}, {}).empty());
  ASSERT_EQ(Ids(supervisor.Check({"r1"}, {})), std::vector<std::string>{"r1"});
  EXPECT_TRUE(supervisor.ResumeFailed("r1", "the store is locked"));

  ASSERT_EQ(Ids(supervisor.Check({"r1"}, {})), std::vector<std::string>{"r1"})
      << "not retried at the next check";
  EXPECT_FALSE(supervisor.ResumeFailed("r1", "the store is locked")) << "the same error told twice";

  ASSERT_EQ(Ids(supervisor.Check({"r1"}, {})), std::vector<std::string>{"r1"});
  EXPECT_TRUE(supervisor.ResumeFailed("r1", "another process drives it")) << "a new error untold";

  ASSERT_EQ(Ids(supervisor.Check({"r1"}, {})), std::vector<std::string>{"r1"});
  supervisor.Resumed("r1");
  EXPECT_TRUE(supervisor.suspects().empty());
}

TEST(RunSupervisorTest, AnErrorIsToldAgainAfterTheRunWasResumed) {
  RunSupervisor supervisor;
  ASSERT_TRUE(supervisor.Check({"r1"}, {}).empty());
  ASSERT_EQ(supervisor.Check({"r1"}, {}).size(), 1u);
  EXPECT_TRUE(supervisor.ResumeFailed("r1", "the store is locked"));
  ASSERT_EQ(supervisor.Check({"r1"}, {}).size(), 1u);
  supervisor.Resumed("r1");
  ASSERT_TRUE(supervisor.Check({"r1"}, {}).empty());
  ASSERT_EQ(supervisor.Check({"r1"}, {}).size(), 1u);
  EXPECT_TRUE(supervisor.ResumeFailed("r1", "the store is locked"));
}

}  // namespace
}  // namespace tierflow::scheduler
