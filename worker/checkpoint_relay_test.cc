#include "worker/checkpoint_relay.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

namespace tierflow::worker {
namespace {

namespace fs = std::filesystem;

constexpr char kKey[] = "runs/r1/checkpoints/train";

void Write(const fs::path& path, const std::string& data) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << data;
}

std::string Read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Waits (hang detection only) until `path` exists.
bool Eventually(const fs::path& path) {
  for (int i = 0; i < 500; ++i) {
    if (fs::exists(path)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

class CheckpointRelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "tierflow-relay-test.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    node_ = dir_ / "nvme" / kKey;
    cluster_ = dir_ / "shared" / kKey;
  }
  void TearDown() override { fs::remove_all(dir_); }

  TaskLaunch Launch(int keep = 2) const {
    TaskLaunch launch;
    launch.attempt_id = 7;
    launch.checkpoint_dir = cluster_.string();
    launch.env = {{"A", "b"}, {"TIERFLOW_CHECKPOINT_DIR", cluster_.string()}};
    launch.checkpoint_relay = CheckpointRelay{"nvme", kKey, keep};
    return launch;
  }
  // What a task does: the folder's files, then the marker.
  static void Commit(const fs::path& dir, int step, const std::string& data) {
    const std::string name = "step-0000000" + std::to_string(step);
    Write(dir / name / "state.bin", data);
    Write(dir / (name + ".committed"), "{\"step\": " + std::to_string(step) + "}\n");
  }
  static std::string Env(const TaskLaunch& launch, const std::string& name) {
    for (const auto& [k, v] : launch.env) {
      if (k == name) return v;
    }
    return "";
  }

  fs::path dir_, node_, cluster_;
};

TEST_F(CheckpointRelayTest, RelaysEachCommitKeepsTheNewestOnTheNodeAndCleansUpAtTheEnd) {
  CheckpointRelays relays({{"nvme", (dir_ / "nvme").string()}});
  relays.SetIntervalForTesting(std::chrono::milliseconds(20));
  TaskLaunch launch = Launch(/*keep=*/2);
  TaskReport report;
  relays.Start(launch, report);
  EXPECT_EQ(report.checkpoint_node_error, "");
  EXPECT_EQ(report.checkpoint_node_dir, node_.string());
  EXPECT_EQ(launch.checkpoint_dir, node_.string());
  EXPECT_EQ(Env(launch, "TIERFLOW_CHECKPOINT_DIR"), node_.string());
  EXPECT_EQ(Env(launch, "A"), "b");
  EXPECT_TRUE(report.node_copies.empty());  // nothing to restore

  Commit(node_, 1, "one");
  ASSERT_TRUE(Eventually(cluster_ / "step-00000001.committed"));
  EXPECT_EQ(Read(cluster_ / "step-00000001" / "state.bin"), "one");
  EXPECT_EQ(Read(cluster_ / "step-00000001.committed"), "{\"step\": 1}\n");

  Write(node_ / "step-00000002" / "state.bin", "two, not committed yet");
  Commit(node_, 3, "three");
  ASSERT_TRUE(Eventually(cluster_ / "step-00000003.committed"));
  EXPECT_FALSE(fs::exists(cluster_ / "step-00000002")) << "an uncommitted folder was relayed";
  Write(node_ / "step-00000002.committed", "{\"step\": 2}\n");
  ASSERT_TRUE(Eventually(cluster_ / "step-00000002.committed"));
  EXPECT_EQ(Read(cluster_ / "step-00000002" / "state.bin"), "two, not committed yet");
  // keep 2: the node holds the newest two; the cluster folder all three
  // (the scheduler keeps that one).
  for (int i = 0; i < 500 && fs::exists(node_ / "step-00000001"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_FALSE(fs::exists(node_ / "step-00000001"));
  EXPECT_FALSE(fs::exists(node_ / "step-00000001.committed"));
  EXPECT_TRUE(fs::exists(node_ / "step-00000003.committed"));
  EXPECT_TRUE(fs::exists(cluster_ / "step-00000001.committed"));

  // Committed just before the end: relayed before Ended returns.
  Commit(node_, 4, "four");
  relays.Ended(7);
  EXPECT_EQ(Read(cluster_ / "step-00000004" / "state.bin"), "four");
  EXPECT_TRUE(fs::exists(cluster_ / "step-00000004.committed"));
  EXPECT_FALSE(fs::exists(node_));
  relays.Ended(7);  // twice: nothing
}

TEST_F(CheckpointRelayTest, ARetryStartsWithTheNewestCheckpointOfTheClusterFolder) {
  Commit(cluster_, 1, "one");
  Commit(cluster_, 2, "two");
  Write(cluster_ / "step-00000003" / "state.bin", "half");  // never committed
  Write(node_ / "step-00000002" / "state.bin", "stale");    // left without a marker
  CheckpointRelays relays({{"nvme", (dir_ / "nvme").string()}});
  relays.SetIntervalForTesting(std::chrono::milliseconds(20));
  TaskLaunch launch = Launch();
  TaskReport report;
  relays.Start(launch, report);
  ASSERT_EQ(report.checkpoint_node_error, "");
  EXPECT_EQ(Read(node_ / "step-00000002" / "state.bin"), "two");
  EXPECT_TRUE(fs::exists(node_ / "step-00000002.committed"));
  EXPECT_FALSE(fs::exists(node_ / "step-00000001"));
  EXPECT_FALSE(fs::exists(node_ / "step-00000003"));
  ASSERT_EQ(report.node_copies.size(), 1u);
  EXPECT_EQ(report.node_copies[0].tier, "nvme");
  EXPECT_EQ(report.node_copies[0].key, std::string(kKey) + "/step-00000002");
  EXPECT_EQ(report.node_copies[0].bytes, 3u + 12u);  // "two" and its marker
  EXPECT_EQ(report.node_copies[0].error, "");
  // The task goes on from there.
  Commit(node_, 5, "five");
  relays.Ended(7);
  EXPECT_EQ(Read(cluster_ / "step-00000005" / "state.bin"), "five");
  EXPECT_EQ(Read(cluster_ / "step-00000002" / "state.bin"), "two");
}

TEST_F(CheckpointRelayTest, AWorkerWithoutTheTierLetsTheTaskWriteInTheClusterFolder) {
  CheckpointRelays relays({{"ram", (dir_ / "ram").string()}});
  TaskLaunch launch = Launch();
  TaskReport report;
  relays.Start(launch, report);
  EXPECT_EQ(report.checkpoint_node_error,
            "this worker has no node tier 'nvme' (tierflow worker --tier nvme=PATH)");
  EXPECT_EQ(report.checkpoint_node_dir, "");
  EXPECT_EQ(launch.checkpoint_dir, cluster_.string());
  EXPECT_EQ(Env(launch, "TIERFLOW_CHECKPOINT_DIR"), cluster_.string());
  relays.Ended(7);  // not relayed: nothing to do
}

TEST_F(CheckpointRelayTest, AClusterFolderNotAtTheKeyIsRefused) {
  CheckpointRelays relays({{"nvme", (dir_ / "nvme").string()}});
  TaskLaunch launch = Launch();
  launch.checkpoint_dir = (dir_ / "elsewhere").string();
  TaskReport report;
  relays.Start(launch, report);
  EXPECT_NE(report.checkpoint_node_error.find("is not at runs/r1/checkpoints/train"),
            std::string::npos)
      << report.checkpoint_node_error;
  EXPECT_EQ(launch.checkpoint_dir, (dir_ / "elsewhere").string());
  EXPECT_FALSE(fs::exists(node_));
}

}  // namespace
}  // namespace tierflow::worker
