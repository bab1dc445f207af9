#include "worker/job_node_side.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace tierflow::worker {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

EnvLookup Env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto found = vars.find(name);
    if (found == vars.end()) return std::nullopt;
    return found->second;
  };
}

TEST(ExpandTierRoot, ReplacesBothFormsFromTheJobsEnvironment) {
  auto root = ExpandTierRoot("nvme", "/scratch/${SLURM_JOB_ID}/$SLURMD_NODENAME/t",
                             Env({{"SLURM_JOB_ID", "42"}, {"SLURMD_NODENAME", "n1"}}));
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_EQ(*root, "/scratch/42/n1/t");
  EXPECT_EQ(*ExpandTierRoot("ram", "/dev/shm/tf", Env({})), "/dev/shm/tf");
  EXPECT_EQ(*ExpandTierRoot("t", "$TMPDIR/x", Env({{"TMPDIR", "/tmp/job7"}})), "/tmp/job7/x");
}

TEST(ExpandTierRoot, AnUnsetVariableNamesTheTierAndTheVariable) {
  auto root = ExpandTierRoot("nvme", "/nodes/$SLURMD_NODENAME/local", Env({}));
  ASSERT_FALSE(root.ok());
  EXPECT_THAT(root.status().message(), HasSubstr("node tier 'nvme'"));
  EXPECT_THAT(root.status().message(), HasSubstr("$SLURMD_NODENAME, which is not set"));
  EXPECT_FALSE(ExpandTierRoot("t", "/a/$EMPTY", Env({{"EMPTY", ""}})).ok());
}

TEST(ExpandTierRoot, RefusesWhatIsNotAVariableOrNotAbsolute) {
  EXPECT_THAT(ExpandTierRoot("t", "/a/${X", Env({{"X", "1"}})).status().message(),
              HasSubstr("unclosed"));
  EXPECT_THAT(ExpandTierRoot("t", "/a/$(id)", Env({})).status().message(),
              HasSubstr("not followed by a variable name"));
  EXPECT_THAT(ExpandTierRoot("t", "$D/x", Env({{"D", "rel"}})).status().message(),
              HasSubstr("not an absolute path"));
}

TEST(JobScopedRoot, OnlyTheJobsOwnVariables) {
  EXPECT_TRUE(JobScopedRoot("$TMPDIR/t"));
  EXPECT_TRUE(JobScopedRoot("/s/${SLURM_JOB_ID}/t"));
  EXPECT_TRUE(JobScopedRoot("/s/$SLURM_JOB_ID"));
  EXPECT_FALSE(JobScopedRoot("/s/$SLURM_JOB_IDX/t"));
  EXPECT_FALSE(JobScopedRoot("/nodes/$SLURMD_NODENAME/local"));
}

class JobNodeSideTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char templ[] = "/tmp/job_node_side_XXXXXX";
    dir_ = mkdtemp(templ);
    fs::create_directories(dir_ / "bulk" / "runs/r1/artifacts/p");
    std::ofstream(dir_ / "bulk" / kKey) << "data";
  }
  void TearDown() override { fs::remove_all(dir_); }

  TaskLaunch Reader(const std::string& root) const {
    TaskLaunch launch;
    launch.attempt_id = 5;
    launch.env = {{"TIERFLOW_INPUT_DATA", (dir_ / "bulk" / kKey).string()}};
    launch.stage_in = {{"nvme", kKey, (dir_ / "bulk").string(), "xxh3:1", 4, false}};
    launch.node_inputs = {{"TIERFLOW_INPUT_DATA", "nvme", kKey}};
    launch.node_tier_roots = {{"nvme", root}};
    return launch;
  }

  static constexpr char kKey[] = "runs/r1/artifacts/p/data";
  fs::path dir_;
};

TEST_F(JobNodeSideTest, StagesOntoTheExpandedRootAndTheNextJobThereReusesIt) {
  const std::string root = (dir_ / "nodes/$SLURMD_NODENAME/local").string();
  const auto env = Env({{"SLURMD_NODENAME", "n1"}});
  const fs::path copy = dir_ / "nodes/n1/local" / kKey;
  {
    TaskLaunch launch = Reader(root);
    JobNodeSide side(launch, env);
    side.Prepare(launch);
    EXPECT_EQ(launch.env[0].second, copy.string());
    TaskReport started;
    side.Started(started);
    EXPECT_EQ(started.worker, "n1");
    ASSERT_EQ(started.node_copies.size(), 1u);
    EXPECT_EQ(started.node_copies[0].error, "");
    EXPECT_FALSE(started.node_copies[0].reused);
    TaskReport end;
    end.attempt_id = 5;
    side.Ended(end);
    EXPECT_EQ(end.worker, "n1");
  }
  EXPECT_TRUE(fs::exists(copy));  // kept for later readers on the node
  // Nothing beside it: a foreach gather folder holds only the items.
  int beside = 0;
  for (const auto& entry : fs::directory_iterator(copy.parent_path()))
    beside += !entry.is_directory();
  EXPECT_EQ(beside, 1);
  TaskLaunch launch = Reader(root);
  JobNodeSide side(launch, env);
  side.Prepare(launch);
  TaskReport started;
  side.Started(started);
  ASSERT_EQ(started.node_copies.size(), 1u);
  EXPECT_TRUE(started.node_copies[0].reused);
  EXPECT_EQ(launch.env[0].second, copy.string());

  // Evicted: exactly the copy and its record; the root stays.
  ASSERT_TRUE(EvictNodeCopy((dir_ / "nodes/n1/local").string(), kKey).ok());
  EXPECT_FALSE(fs::exists(copy));
  EXPECT_FALSE(fs::exists(dir_ / "nodes/n1/local/.tierflow-copies" / kKey));
  EXPECT_FALSE(fs::exists(dir_ / "nodes/n1/local/.tierflow-copies/runs/r1"));
  EXPECT_TRUE(fs::exists(dir_ / "nodes/n1/local/runs"));
  EXPECT_TRUE(fs::exists(dir_ / "nodes/n1/local"));
  EXPECT_FALSE(EvictNodeCopy((dir_ / "nodes/n1/local").string(), "../../bulk/runs").ok());
  EXPECT_TRUE(fs::exists(dir_ / "bulk" / kKey));
}

TEST_F(JobNodeSideTest, AnUnsetVariableIsACopyErrorAndTheTaskReadsInPlace) {
  TaskLaunch launch = Reader((dir_ / "nodes/$SLURMD_NODENAME/local").string());
  JobNodeSide side(launch, Env({}));
  side.Prepare(launch);
  EXPECT_EQ(launch.env[0].second, (dir_ / "bulk" / kKey).string());
  TaskReport started;
  side.Started(started);
  ASSERT_EQ(started.node_copies.size(), 1u);
  EXPECT_THAT(started.node_copies[0].error, HasSubstr("$SLURMD_NODENAME, which is not set"));
}

TEST_F(JobNodeSideTest, AJobScopedRootsCopiesGoWithTheJob) {
  TaskLaunch launch = Reader((dir_ / "jobs/$SLURM_JOB_ID").string());
  JobNodeSide side(launch, Env({{"SLURM_JOB_ID", "77"}}));
  side.Prepare(launch);
  EXPECT_TRUE(fs::exists(dir_ / "jobs/77" / kKey));
  TaskReport end;
  end.attempt_id = 5;
  side.Ended(end);
  EXPECT_FALSE(fs::exists(dir_ / "jobs/77" / kKey));
}

TEST_F(JobNodeSideTest, AnEvictionListDeletesEachCopyOnItsExpandedRoot) {
  const fs::path copy = dir_ / "nodes/n2/local" / kKey;
  fs::create_directories(copy.parent_path());
  std::ofstream(copy) << "x";
  const fs::path list = dir_ / "evict.list";
  std::ofstream(list) << EvictionList(
      {{"nvme", (dir_ / "nodes/$SLURMD_NODENAME/local").string(), kKey}});
  ASSERT_TRUE(EvictNodeCopies(list.string(), Env({{"SLURMD_NODENAME", "n2"}})).ok());
  EXPECT_FALSE(fs::exists(copy));
  absl::Status unset = EvictNodeCopies(list.string(), Env({}));
  EXPECT_THAT(unset.message(), HasSubstr("node tier 'nvme'"));
}

}  // namespace
}  // namespace tierflow::worker
