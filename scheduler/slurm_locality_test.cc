#include "scheduler/slurm_locality.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "scheduler/lease_policy.h"

namespace tierflow::scheduler::slurm {
namespace {

using ::testing::HasSubstr;

TaskLaunch Reader(std::vector<std::string> keys) {
  TaskLaunch task;
  for (std::string& key : keys) task.stage_in.push_back({"nvme", key, "/bulk", "h", 100, false});
  return task;
}

TEST(SlurmLocality, NoStageInsNoPreferenceAndNoReason) {
  NodeHoldings held = {{"n1", {{HeldKey("nvme", "a"), 100}}}};
  NodeChoice choice = PreferredNode(TaskLaunch(), held);
  EXPECT_EQ(choice.node, "");
  EXPECT_EQ(choice.reason, "");
}

TEST(SlurmLocality, NobodyHoldsItSlurmChooses) {
  NodeHoldings held = {{"n1", {{HeldKey("nvme", "other"), 100}}}};
  NodeChoice choice = PreferredNode(Reader({"a"}), held);
  EXPECT_EQ(choice.node, "");
  EXPECT_THAT(choice.reason, HasSubstr("no node holds a copy"));
}

TEST(SlurmLocality, PrefersTheNodeHoldingTheMostBytes) {
  NodeHoldings held = {{"n1", {{HeldKey("nvme", "a"), 10}}},
                       {"n2", {{HeldKey("nvme", "b"), 5000}}}};
  NodeChoice choice = PreferredNode(Reader({"a", "b"}), held);
  EXPECT_EQ(choice.node, "n2");
  EXPECT_THAT(choice.reason, HasSubstr("--nodelist=n2: its node tiers hold 1 of the 2 artifacts"));
}

TEST(SlurmLocality, TiesGoToTheFirstNodeByName) {
  NodeHoldings held = {{"n2", {{HeldKey("nvme", "a"), 10}}}, {"n1", {{HeldKey("nvme", "a"), 10}}}};
  EXPECT_EQ(PreferredNode(Reader({"a"}), held).node, "n1");
}

TEST(SlurmLocality, ATierOfAnotherNameIsNotTheCopy) {
  NodeHoldings held = {{"n1", {{HeldKey("ram", "a"), 10}}}};
  EXPECT_EQ(PreferredNode(Reader({"a"}), held).node, "");
}

TEST(SlurmLocality, BatchesOfDifferentNodesNeverMix) {
  TaskLaunch task = Reader({"a"});
  EXPECT_NE(BatchKey(task, "n1"), BatchKey(task, "n2"));
  EXPECT_NE(BatchKey(task, "n1"), BatchKey(task));
  EXPECT_EQ(BatchKey(task, ""), BatchKey(task));
}

TEST(SlurmLocality, SbatchAsksForTheNodeWithItsReason) {
  TaskLaunch task = Reader({"a"});
  task.run_id = "r1";
  SbatchPlan plan =
      SbatchArgs(task, {7}, SubmitOptions(), "/j/job-%j.out", {}, "n2", "--nodelist=n2: because");
  EXPECT_THAT(plan.args, ::testing::Contains("--nodelist=n2"));
  EXPECT_THAT(plan.reasons, ::testing::Contains("--nodelist=n2: because"));
  EXPECT_THAT(SbatchArgs(task, {7}, SubmitOptions(), "/j/o").args,
              ::testing::Not(::testing::Contains(::testing::HasSubstr("--nodelist"))));
}

TEST(SlurmLocality, EvictionJobRunsOnTheNodeUnderTheRunsName) {
  SubmitOptions options;
  options.partition = "debug";
  std::vector<std::string> args = EvictionSbatchArgs("r1", "n1", options, "/j/evict-%j.out");
  EXPECT_THAT(args, ::testing::Contains("--nodelist=n1"));
  EXPECT_THAT(args, ::testing::Contains("--job-name=tierflow-r1"));
  EXPECT_THAT(args, ::testing::Contains("--no-requeue"));
  EXPECT_THAT(args, ::testing::Contains("--partition=debug"));
  // Not an attempt's comment: never taken for one at a re-attach.
  EXPECT_TRUE(AttemptsOfComment(kEvictionComment).empty());
  EXPECT_EQ(EvictionScript("/bin/tier flow", "/j/e.list"),
            "#!/bin/sh\n# tierflow: delete node copies nobody on this node reads any more\n"
            "exec '/bin/tier flow' node-evict --list '/j/e.list'\n");
}

}  // namespace
}  // namespace tierflow::scheduler::slurm
