#include "worker/worker_state.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "worker/node_tiers.h"
#include "worker/subprocess.h"

namespace tierflow::worker {
namespace {

namespace fs = std::filesystem;

class WorkerStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tierflow-worker-state-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A task as a worker runs it: `sleep 60` in a process group of its own.
  static Subprocess Task() {
    SpawnOptions spawn;
    spawn.argv = {"sleep", "60"};
    absl::StatusOr<Subprocess> process = Subprocess::Spawn(spawn);
    EXPECT_TRUE(process.ok()) << process.status();
    return std::move(*process);
  }
  // Waits (at most 10 s) for `process` to end; true if it was SIGKILLed.
  static bool KilledSoon(Subprocess& process) {
    ExitStatus status;
    for (int i = 0; i < 1000; ++i) {
      if (process.TryWait(&status)) return status.signal == SIGKILL;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  std::string state_dir() const { return (dir_ / "state").string(); }

  fs::path dir_;
};

TEST_F(WorkerStateTest, SuccessorKillsThePredecessorsRecordedTask) {
  Subprocess task = Task();
  {
    auto state = WorkerState::Open(state_dir(), "c1", "w1");
    ASSERT_TRUE(state.ok()) << state.status();
    (*state)->TaskStarted(7, task.pid());
  }  // the worker dies (its lock goes with it; the file stays)
  auto successor = WorkerState::Open(state_dir(), "c1", "w1");
  ASSERT_TRUE(successor.ok()) << successor.status();
  ASSERT_EQ((*successor)->Tasks().size(), 1u);
  EXPECT_EQ((*successor)->Tasks()[0].attempt_id, 7);
  EXPECT_EQ((*successor)->Tasks()[0].pgid, task.pid());
  EXPECT_EQ((*successor)->KillRecordedTasks(), 1);
  EXPECT_TRUE(KilledSoon(task));
  EXPECT_TRUE((*successor)->Tasks().empty());
}

TEST_F(WorkerStateTest, AnotherClusterOrNameFindsNothing) {
  Subprocess task = Task();
  {
    auto state = WorkerState::Open(state_dir(), "c1", "w1");
    ASSERT_TRUE(state.ok()) << state.status();
    (*state)->TaskStarted(7, task.pid());
  }
  for (auto [cluster, name] : {std::pair{"c2", "w1"}, std::pair{"c1", "w2"}}) {
    auto other = WorkerState::Open(state_dir(), cluster, name);
    ASSERT_TRUE(other.ok()) << other.status();
    EXPECT_TRUE((*other)->Tasks().empty()) << cluster << " " << name;
    EXPECT_EQ((*other)->KillRecordedTasks(), 0);
  }
  ExitStatus status;
  EXPECT_FALSE(task.TryWait(&status)) << "another cluster's worker killed the task";
}

TEST_F(WorkerStateTest, APidNowUsedByANewerProcessIsLeftAlone) {
  Subprocess task = Task();
  const uint64_t ticks = ProcessStartTicks(task.pid());
  ASSERT_GT(ticks, 0u);
  {
    auto state = WorkerState::Open(state_dir(), "c1", "w1");
    ASSERT_TRUE(state.ok()) << state.status();
    (*state)->TaskStarted(7, task.pid());
  }
  // The record as if its task had ended unseen and the pid gone to this
  // (later) process: another start time.
  const std::string path = (fs::path(state_dir()) / "c1.w1.json").string();
  std::stringstream text;
  text << std::ifstream(path).rdbuf();
  std::string record = text.str();
  const std::string recorded = "\"start_ticks\": " + std::to_string(ticks);
  ASSERT_NE(record.find(recorded), std::string::npos) << record;
  record.replace(record.find(recorded), recorded.size(),
                 "\"start_ticks\": " + std::to_string(ticks - 1));
  std::ofstream(path, std::ios::trunc) << record;
  auto successor = WorkerState::Open(state_dir(), "c1", "w1");
  ASSERT_TRUE(successor.ok()) << successor.status();
  ASSERT_EQ((*successor)->Tasks().size(), 1u);
  EXPECT_EQ((*successor)->KillRecordedTasks(), 0);
  ExitStatus status;
  EXPECT_FALSE(task.TryWait(&status)) << "a process that is not the recorded task was killed";
}

TEST_F(WorkerStateTest, ASecondLiveWorkerOfTheNameIsRefused) {
  auto first = WorkerState::Open(state_dir(), "c1", "w1");
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = WorkerState::Open(state_dir(), "c1", "w1");
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(absl::IsAlreadyExists(second.status())) << second.status();
  EXPECT_NE(second.status().message().find("a worker named w1 of this cluster runs on this host "
                                           "already (pid " +
                                           std::to_string(::getpid())),
            std::string::npos)
      << second.status();
  first->reset();
  EXPECT_TRUE(WorkerState::Open(state_dir(), "c1", "w1").ok());
}

TEST_F(WorkerStateTest, NamesAreSafeInFileNames) {
  auto state = WorkerState::Open(state_dir(), "c1", "../../x/y");
  ASSERT_TRUE(state.ok()) << state.status();
  (*state)->FolderMade({"/nowhere", "runs/r/artifacts/t/o"});
  EXPECT_EQ(fs::path((*state)->path()).parent_path(), fs::path(state_dir()));
  EXPECT_TRUE(fs::exists((*state)->path()));
}

TEST_F(WorkerStateTest, ClearDeletesOnlyTheRecordedFolders) {
  const fs::path root = dir_ / "nvme";
  const std::string mine = "runs/r1-aaaaaa/artifacts/make/data";
  const std::string theirs = "runs/r2-bbbbbb/artifacts/make/data";
  for (const std::string& key : {mine, theirs}) {
    fs::create_directories(root / key);
    std::ofstream(root / key / "part") << key;
  }
  {
    auto state = WorkerState::Open(state_dir(), "c1", "w1");
    ASSERT_TRUE(state.ok()) << state.status();
    (*state)->FolderMade({root.string(), mine});
  }
  auto successor = WorkerState::Open(state_dir(), "c1", "w1");
  ASSERT_TRUE(successor.ok()) << successor.status();
  ASSERT_EQ((*successor)->Folders().size(), 1u);
  NodeTiers tiers({{"nvme", root.string()}});
  ASSERT_TRUE(tiers.Clear((*successor)->Folders()).ok());
  EXPECT_FALSE(fs::exists(root / "runs/r1-aaaaaa")) << "empty folders above it stay";
  EXPECT_TRUE(fs::exists(root / theirs / "part")) << "another worker's copy was deleted";
  EXPECT_TRUE(fs::exists(root / "runs"));
  (*successor)->ForgetFolders();
  EXPECT_FALSE(fs::exists((*successor)->path())) << "an empty record leaves no file";
}

TEST_F(WorkerStateTest, RemoveLeavesNothing) {
  auto state = WorkerState::Open(state_dir(), "c1", "w1");
  ASSERT_TRUE(state.ok()) << state.status();
  (*state)->TaskStarted(3, ::getpid());
  (*state)->TaskEnded(3);
  (*state)->FolderMade({"/nowhere", "runs/r/artifacts/t/o"});
  (*state)->Remove();
  EXPECT_TRUE(fs::is_empty(state_dir()));
}

}  // namespace
}  // namespace tierflow::worker
