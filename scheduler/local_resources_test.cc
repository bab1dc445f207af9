#include "scheduler/local_resources.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tierflow::scheduler {
namespace {

using internal::LocalResources;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr uint64_t kGiB = uint64_t{1} << 30;

dag::Resources Need(double cpus, uint64_t memory = 0, uint32_t gpus = 0) {
  dag::Resources need;
  need.cpus = cpus;
  need.memory = memory;
  need.gpus = gpus;
  return need;
}

LocalBudget Budget(double cpus, uint64_t memory, std::vector<std::string> gpus) {
  LocalBudget budget;
  budget.cpus = cpus;
  budget.memory = memory;
  budget.gpus = std::move(gpus);
  return budget;
}

MachineFacts Machine(unsigned cores, uint64_t memory) {
  MachineFacts machine;
  machine.cores = cores;
  machine.memory = memory;
  return machine;
}

BudgetFlags Flags(int slots, double cpus = 0, uint64_t memory = 0,
                  std::optional<uint32_t> gpus = std::nullopt) {
  BudgetFlags flags;
  flags.slots = slots;
  flags.cpus = cpus;
  flags.memory = memory;
  flags.gpus = gpus;
  return flags;
}

TEST(LocalBudgetTest, CpusAreTheLargerOfCoresAndSlots) {
  EXPECT_EQ(MakeLocalBudget(Machine(4, kGiB), Flags(16)).cpus, 16);
  EXPECT_EQ(MakeLocalBudget(Machine(4, kGiB), Flags(2)).cpus, 4);
  EXPECT_EQ(MakeLocalBudget(Machine(4, kGiB), {}).cpus, 4);
  EXPECT_EQ(MakeLocalBudget(Machine(4, kGiB), Flags(16, 2)).cpus, 2);
}

TEST(LocalBudgetTest, MemoryIsTheRamUnlessGiven) {
  EXPECT_EQ(MakeLocalBudget(Machine(4, 8 * kGiB), {}).memory, 8 * kGiB);
  EXPECT_EQ(MakeLocalBudget(Machine(4, 8 * kGiB), Flags(0, 0, kGiB)).memory, kGiB);
}

TEST(LocalBudgetTest, GpusComeFromCudaVisibleDevicesAsListed) {
  MachineFacts machine = Machine(4, kGiB);
  machine.cuda_visible_devices = "3, 5";
  machine.nvidia_smi_gpus = 8;  // not asked when the variable is set; ignored if it were
  LocalBudget budget = MakeLocalBudget(machine, {});
  EXPECT_THAT(budget.gpus, ElementsAre("3", "5"));
  EXPECT_EQ(budget.gpus_from, "CUDA_VISIBLE_DEVICES");
  machine.cuda_visible_devices = "";
  EXPECT_THAT(MakeLocalBudget(machine, {}).gpus, IsEmpty());
}

TEST(LocalBudgetTest, GpusFromNvidiaSmiThenNoneAndTheFlagOverrides) {
  MachineFacts machine = Machine(4, kGiB);
  EXPECT_THAT(MakeLocalBudget(machine, {}).gpus, IsEmpty());
  machine.nvidia_smi_gpus = 2;
  EXPECT_THAT(MakeLocalBudget(machine, {}).gpus, ElementsAre("0", "1"));
  machine.cuda_visible_devices = "7";
  EXPECT_THAT(MakeLocalBudget(machine, Flags(0, 0, 0, 3)).gpus, ElementsAre("0", "1", "2"));
  EXPECT_THAT(MakeLocalBudget(machine, Flags(0, 0, 0, 0)).gpus, IsEmpty());
}

TEST(LocalBudgetTest, StageThatCanNeverFitIsRefusedNamingStageAndResource) {
  dag::Pipeline pipeline;
  pipeline.file = "p.yaml";
  pipeline.stages.resize(2);
  pipeline.stages[0].name = "prep";
  pipeline.stages[1].name = "train";
  pipeline.stages[1].location.line = 9;
  pipeline.stages[1].resources.gpus = 2;
  LocalBudget budget = Budget(4, kGiB, {});
  budget.gpus_from = "no CUDA_VISIBLE_DEVICES, no nvidia-smi";
  absl::Status status = CheckStagesFit(budget, pipeline);
  EXPECT_TRUE(absl::IsInvalidArgument(status));
  EXPECT_EQ(status.message(),
            "p.yaml:9: stage 'train' needs 2 GPUs; this machine offers 0 (no "
            "CUDA_VISIBLE_DEVICES, no nvidia-smi; set CUDA_VISIBLE_DEVICES or --gpus)");
  pipeline.stages[1].resources = Need(8);
  EXPECT_THAT(CheckStagesFit(budget, pipeline).message(),
              HasSubstr("stage 'train' needs 8 cpus; this machine offers 4"));
  pipeline.stages[1].resources = Need(1, 2 * kGiB);
  EXPECT_THAT(CheckStagesFit(budget, pipeline).message(),
              HasSubstr("stage 'train' needs 2 GiB of memory; this machine offers 1 GiB"));
  pipeline.stages[1].resources = Need(4, kGiB);
  EXPECT_TRUE(CheckStagesFit(budget, pipeline).ok());
}

TEST(LocalResourcesTest, TaskRunsOnlyWhenItFitsBesideWhatRuns) {
  LocalResources local(Budget(2, 4 * kGiB, {}));
  EXPECT_TRUE(local.TryTake(0, Need(2)));
  EXPECT_FALSE(local.TryTake(1, Need(2)));
  local.Release(0);
  EXPECT_TRUE(local.TryTake(1, Need(2)));
}

TEST(LocalResourcesTest, FractionalCpusShareACore) {
  LocalResources local(Budget(1, kGiB, {}));
  EXPECT_TRUE(local.TryTake(0, Need(0.5)));
  EXPECT_TRUE(local.TryTake(1, Need(0.5)));
  EXPECT_FALSE(local.TryTake(2, Need(0.5)));
}

TEST(LocalResourcesTest, MemoryIsABudgetAndUndeclaredMemoryUsesNone) {
  LocalResources local(Budget(8, 4 * kGiB, {}));
  EXPECT_TRUE(local.TryTake(0, Need(1, 3 * kGiB)));
  EXPECT_FALSE(local.TryTake(1, Need(1, 2 * kGiB)));
  EXPECT_TRUE(local.TryTake(2, Need(1)));  // reserved task 1 waits for memory only
  local.Release(0);
  EXPECT_TRUE(local.TryTake(1, Need(1, 2 * kGiB)));
}

TEST(LocalResourcesTest, EachGpuTaskGetsDevicesOfItsOwn) {
  LocalResources local(Budget(8, kGiB, {"3", "5"}));
  auto first = local.TryTake(0, Need(1, 0, 1));
  auto second = local.TryTake(1, Need(1, 0, 1));
  ASSERT_TRUE(first && second);
  EXPECT_THAT(first->gpus, ElementsAre("3"));
  EXPECT_THAT(second->gpus, ElementsAre("5"));
  EXPECT_EQ(first->reason, "cpus 1 of 8, memory none declared of 1 GiB, gpu 3 (of 3,5)");
  EXPECT_EQ(local.VisibleDevices(*second), "5");
  EXPECT_FALSE(local.TryTake(2, Need(1, 0, 1)));
  local.Release(0);
  auto third = local.TryTake(2, Need(1, 0, 1));
  ASSERT_TRUE(third);
  EXPECT_THAT(third->gpus, ElementsAre("3"));
}

TEST(LocalResourcesTest, TaskWithoutGpusSeesNoneOnAMachineWithSome) {
  LocalResources with(Budget(8, kGiB, {"0"}));
  auto grant = with.TryTake(0, Need(1));
  ASSERT_TRUE(grant);
  EXPECT_EQ(with.VisibleDevices(*grant), "");
  LocalResources without(Budget(8, kGiB, {}));
  grant = without.TryTake(0, Need(1));
  ASSERT_TRUE(grant);
  EXPECT_EQ(without.VisibleDevices(*grant), std::nullopt);
}

TEST(LocalResourcesTest, ReservedTaskIsNotStarvedBySmallOnes) {
  LocalResources local(Budget(4, kGiB, {}));
  ASSERT_TRUE(local.TryTake(0, Need(1)));
  ASSERT_TRUE(local.TryTake(1, Need(1)));
  EXPECT_FALSE(local.TryTake(2, Need(4)));  // reserves
  EXPECT_EQ(local.reserved(), 2u);
  // Two cpus are free, but the reserved task waits for them: a stream of
  // small tasks never takes them.
  EXPECT_FALSE(local.TryTake(3, Need(1)));
  local.Release(0);
  EXPECT_FALSE(local.TryTake(4, Need(1)));
  local.Release(1);
  EXPECT_TRUE(local.TryTake(2, Need(4)));
  EXPECT_EQ(local.reserved(), std::nullopt);
}

TEST(LocalResourcesTest, SmallTasksNotTouchingWhatTheReservedWaitsForGoOn) {
  LocalResources local(Budget(8, kGiB, {"0", "1"}));
  ASSERT_TRUE(local.TryTake(0, Need(1, 0, 1)));
  EXPECT_FALSE(local.TryTake(1, Need(1, 0, 2)));  // reserves, short of a GPU
  // A cpu task leaves room for the reserved one's cpu: it runs.
  EXPECT_TRUE(local.TryTake(2, Need(1)));
  // A GPU task would take the GPU the reserved one waits for.
  EXPECT_FALSE(local.TryTake(3, Need(1, 0, 1)));
  local.Release(0);
  auto grant = local.TryTake(1, Need(1, 0, 2));
  ASSERT_TRUE(grant);
  EXPECT_THAT(grant->gpus, ElementsAre("0", "1"));
}

TEST(LocalResourcesTest, DroppedReservationFreesTheWay) {
  LocalResources local(Budget(2, kGiB, {}));
  ASSERT_TRUE(local.TryTake(0, Need(1)));
  EXPECT_FALSE(local.TryTake(1, Need(2)));
  EXPECT_FALSE(local.TryTake(2, Need(1)));
  local.DropReservation();
  EXPECT_TRUE(local.TryTake(2, Need(1)));
}

TEST(LocalResourcesTest, ReleaseOfATaskHoldingNothingChangesNothing) {
  LocalResources local(Budget(1, kGiB, {}));
  ASSERT_TRUE(local.TryTake(0, Need(1)));
  local.Release(7);
  EXPECT_FALSE(local.TryTake(1, Need(1)));
  local.Release(0);
  local.Release(0);
  EXPECT_TRUE(local.TryTake(1, Need(1)));
  EXPECT_FALSE(local.TryTake(2, Need(0.5)));
}

TEST(LocalResourcesTest, SetVisibleDevicesReplacesADeclaredOne) {
  TaskLaunch launch;
  launch.env = {{"CUDA_VISIBLE_DEVICES", "0"}, {"A", "b"}};
  internal::SetVisibleDevices(std::string("5"), launch);
  EXPECT_THAT(launch.env,
              ElementsAre(std::pair<std::string, std::string>("A", "b"),
                          std::pair<std::string, std::string>("CUDA_VISIBLE_DEVICES", "5")));
  internal::SetVisibleDevices(std::nullopt, launch);
  EXPECT_EQ(launch.env.size(), 2u);
}

}  // namespace
}  // namespace tierflow::scheduler
