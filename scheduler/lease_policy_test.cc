#include "scheduler/lease_policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tierflow::scheduler {
namespace {

using ::testing::HasSubstr;

LeaseWorker Worker(std::string name, int slots, int running = 0) {
  LeaseWorker worker;
  worker.name = std::move(name);
  worker.slots = slots;
  worker.running = running;
  worker.capacity = {static_cast<double>(slots), 16ull << 30, 0};
  return worker;
}

TaskLaunch Task() {
  TaskLaunch task;
  task.attempt_id = 1;
  task.cpus = 1;
  return task;
}

std::vector<const LeaseWorker*> All(const std::vector<LeaseWorker>& workers) {
  std::vector<const LeaseWorker*> out;
  for (const LeaseWorker& worker : workers) out.push_back(&worker);
  return out;
}

TEST(LeasePolicy, ChoosesTheWorkerWithTheMostFreeSlots) {
  std::vector<LeaseWorker> workers = {Worker("a", 4, 3), Worker("b", 4, 1), Worker("c", 2)};
  std::optional<LeaseChoice> choice = ChooseWorker(Task(), All(workers), {});
  ASSERT_TRUE(choice);
  EXPECT_EQ(workers[choice->index].name, "b");
  EXPECT_EQ(choice->reason, "leased to b, the worker with the most free slots (3)");
}

TEST(LeasePolicy, TiesGoToTheFirstWorker) {
  std::vector<LeaseWorker> workers = {Worker("a", 2), Worker("b", 2)};
  std::optional<LeaseChoice> choice = ChooseWorker(Task(), All(workers), {});
  ASSERT_TRUE(choice);
  EXPECT_EQ(workers[choice->index].name, "a");
}

TEST(LeasePolicy, LeasesOnlyToWorkersWithEveryLabel) {
  std::vector<LeaseWorker> workers = {Worker("a", 8), Worker("b", 1), Worker("c", 8)};
  workers[0].labels = {{"gpu", "a100"}};
  workers[1].labels = {{"gpu", "a100"}, {"zone", "x"}};
  workers[2].labels = {{"zone", "x"}};
  TaskLaunch task = Task();
  task.labels = {{"gpu", "a100"}, {"zone", "x"}};
  std::optional<LeaseChoice> choice = ChooseWorker(task, All(workers), {});
  ASSERT_TRUE(choice);
  EXPECT_EQ(workers[choice->index].name, "b");

  task.labels = {{"gpu", "h100"}};
  EXPECT_FALSE(ChooseWorker(task, All(workers), {}));
  EXPECT_EQ(WhyNoWorkerFits(task, All(workers)), "no connected worker has the labels gpu=h100");
}

TEST(LeasePolicy, CountsTheResourcesItsLeasedAttemptsUse) {
  std::vector<LeaseWorker> workers = {Worker("a", 4), Worker("b", 4)};
  workers[0].capacity = {4, 8ull << 30, 1};
  workers[1].capacity = {4, 8ull << 30, 1};
  workers[0].used = {3, 0, 0};  // 1 cpu left
  workers[1].used = {0, 0, 1};  // its gpu taken
  TaskLaunch task = Task();
  task.cpus = 2;
  task.gpus = 1;
  EXPECT_FALSE(ChooseWorker(task, All(workers), {}));
  EXPECT_THAT(WhyNoWorkerFits(task, All(workers)),
              HasSubstr("every worker that can run it is busy"));

  task.cpus = 1;
  std::optional<LeaseChoice> choice = ChooseWorker(task, All(workers), {});
  ASSERT_TRUE(choice);
  EXPECT_EQ(workers[choice->index].name, "a");

  task.memory = 9ull << 30;  // more than any worker has
  EXPECT_FALSE(ChooseWorker(task, All(workers), {}));
  EXPECT_THAT(WhyNoWorkerFits(task, All(workers)),
              HasSubstr("no connected worker has the resources it asks for (1 cpus, "));
}

TEST(LeasePolicy, ANoFreeSlotWorkerIsNeverChosen) {
  std::vector<LeaseWorker> workers = {Worker("a", 2, 2)};
  workers[0].held[HeldKey("nvme", "k")] = 1 << 20;
  TaskLaunch task = Task();
  task.stage_in = {{"nvme", "k", "/cluster", "h", 1 << 20, false}};
  EXPECT_FALSE(ChooseWorker(task, All(workers), {}));
  EXPECT_EQ(WhyNoWorkerFits(task, {}), "no worker is connected");
}

TEST(LeasePolicy, PrefersTheWorkerHoldingTheMostBytesOfItsInputs) {
  std::vector<LeaseWorker> workers = {Worker("a", 8), Worker("b", 2), Worker("c", 2)};
  for (LeaseWorker& worker : workers) worker.tiers = {{"nvme", "/nvme"}};
  workers[1].held[HeldKey("nvme", "small")] = 10;
  workers[1].held[HeldKey("nvme", "tiny")] = 1;
  workers[2].held[HeldKey("nvme", "big")] = 3 << 20;
  TaskLaunch task = Task();
  task.stage_in = {{"nvme", "small", "/c", "h1", 10, false},
                   {"nvme", "tiny", "/c", "h2", 1, false},
                   {"nvme", "big", "/c", "h3", 3 << 20, false}};
  std::optional<LeaseChoice> choice = ChooseWorker(task, All(workers), {});
  ASSERT_TRUE(choice);
  EXPECT_EQ(workers[choice->index].name, "c");
  EXPECT_EQ(choice->reason,
            "leased to c, whose node tiers hold 1 of the 3 artifacts it reads there (3 MiB)");
}

TEST(LeasePolicy, PrefersAWorkerWithTheNodeTiersItsInputsAreCopiedTo) {
  std::vector<LeaseWorker> workers = {Worker("a", 8), Worker("b", 2)};
  workers[1].tiers = {{"nvme", "/nvme"}};
  TaskLaunch task = Task();
  task.stage_in = {{"nvme", "k", "/c", "h", 10, false}};
  std::optional<LeaseChoice> choice = ChooseWorker(task, All(workers), {});
  ASSERT_TRUE(choice);
  EXPECT_EQ(workers[choice->index].name, "b");
  EXPECT_EQ(choice->reason, "leased to b, which has the node tiers its inputs are copied to");
}

TEST(LeasePolicy, ThenTheWorkerThatProducedMostOfItsInputs) {
  std::vector<LeaseWorker> workers = {Worker("a", 8), Worker("b", 2)};
  TaskLaunch task = Task();
  task.env = {
      {"TIERFLOW_INPUT_x", "/data/x"}, {"TIERFLOW_INPUT_y", "/data/y"}, {"OTHER", "/data/x"}};
  const ProducedOn produced_on = {{"/data/x", "b"}, {"/data/y", "a"}, {"/data", "a"}};
  // One each: the free slots decide.
  std::optional<LeaseChoice> choice = ChooseWorker(task, All(workers), produced_on);
  ASSERT_TRUE(choice);
  EXPECT_EQ(workers[choice->index].name, "a");
  EXPECT_EQ(choice->reason, "leased to a, which produced 1 of its 2 inputs");

  task.env.push_back({"TIERFLOW_INPUT_z", "/data/z"});
  choice = ChooseWorker(task, All(workers), {{"/data/x", "b"}, {"/data/z", "b"}});
  ASSERT_TRUE(choice);
  EXPECT_EQ(workers[choice->index].name, "b");
  EXPECT_EQ(choice->reason, "leased to b, which produced 2 of its 3 inputs");
}

}  // namespace
}  // namespace tierflow::scheduler
