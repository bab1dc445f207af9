#include "worker/subprocess.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "worker/task_stats.h"

namespace tierflow::worker {
namespace {

namespace fs = std::filesystem;

class SubprocessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tierflow-subprocess-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Read(const fs::path& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  // True while `pid` exists and is not a zombie.
  static bool Alive(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    if (!stat) return false;
    std::string line;
    std::getline(stat, line);
    size_t close = line.rfind(')');
    return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
  }

  fs::path dir_;
};

TEST_F(SubprocessTest, RunsArgvWithoutShellAndCapturesOutputAndEnvironment) {
  SpawnOptions options;
  options.argv = {"sh", "-c", "echo \"$1|$TIERFLOW_X\"; echo err >&2; exit 3", "sh", "a b;$(x)"};
  options.env = {{"TIERFLOW_X", "value with spaces"}};
  options.stdout_path = dir_ / "out";
  options.stderr_path = dir_ / "err";
  auto process = Subprocess::Spawn(options);
  ASSERT_TRUE(process.ok()) << process.status();
  ExitStatus status = process->Wait();
  EXPECT_EQ(status.exit_code, 3);
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(status.ToString(), "exit 3");
  EXPECT_EQ(Read(dir_ / "out"), "a b;$(x)|value with spaces\n");
  EXPECT_EQ(Read(dir_ / "err"), "err\n");
}

TEST_F(SubprocessTest, RunsInItsOwnProcessGroupAndWorkingDirectory) {
  SpawnOptions options;
  options.argv = {"sh", "-c", "cut -d' ' -f5 /proc/$$/stat; pwd"};
  options.working_dir = dir_;
  options.stdout_path = dir_ / "out";
  auto process = Subprocess::Spawn(options);
  ASSERT_TRUE(process.ok());
  ASSERT_TRUE(process->Wait().ok());
  EXPECT_EQ(Read(dir_ / "out"),
            std::to_string(process->pid()) + "\n" + fs::canonical(dir_).string() + "\n");
}

TEST_F(SubprocessTest, MissingProgramIsAClearError) {
  SpawnOptions options;
  options.argv = {"tierflow-no-such-program"};
  options.env = {{"PATH", "/usr/bin:/bin"}};
  auto process = Subprocess::Spawn(options);
  ASSERT_FALSE(process.ok());
  EXPECT_EQ(std::string(process.status().message()),
            "cannot start 'tierflow-no-such-program': no such program on PATH=/usr/bin:/bin");
  options.argv = {(dir_ / "not-here").string()};
  process = Subprocess::Spawn(options);
  ASSERT_FALSE(process.ok());
  EXPECT_EQ(std::string(process.status().message()),
            "cannot start '" + (dir_ / "not-here").string() + "': No such file or directory");
  // A shell gives 127 for both.
  EXPECT_EQ(SpawnErrorExitCode(process.status()), 127);
}

TEST_F(SubprocessTest, StartFailuresMapToTheShellsExitCodes) {
  SpawnOptions options;
  options.env = {{"PATH", "/usr/bin:/bin"}};
  options.argv = {"tierflow-no-such-program"};
  EXPECT_EQ(SpawnErrorExitCode(Subprocess::Spawn(options).status()), 127);
  std::ofstream(dir_ / "plain.txt") << "not a program\n";
  options.argv = {(dir_ / "plain.txt").string()};
  auto process = Subprocess::Spawn(options);
  ASSERT_FALSE(process.ok());
  EXPECT_EQ(SpawnErrorExitCode(process.status()), 126) << process.status();
  // A working folder that is missing is not a missing program.
  options.argv = {"true"};
  options.working_dir = (dir_ / "no-such-folder").string();
  process = Subprocess::Spawn(options);
  ASSERT_FALSE(process.ok());
  EXPECT_EQ(SpawnErrorExitCode(process.status()), -1) << process.status();
}

TEST_F(SubprocessTest, AnExecutableWithoutAShebangRunsAsAShellScript) {
  const fs::path script = dir_ / "script";
  std::ofstream(script) << "echo \"args: $*\" > \"$OUT\"\n";
  fs::permissions(script, fs::perms::owner_all);
  SpawnOptions options;
  options.argv = {script.string(), "one", "two"};
  options.env = {{"OUT", (dir_ / "out").string()}};
  auto process = Subprocess::Spawn(options);
  ASSERT_TRUE(process.ok()) << process.status();
  EXPECT_TRUE(process->Wait().ok());
  EXPECT_EQ(Read(dir_ / "out"), "args: one two\n");
}

TEST_F(SubprocessTest, PwdNamesTheWorkingFolderAndOverridesWin) {
  SpawnOptions options;
  options.argv = {"sh", "-c", "echo \"$PWD $A\" > out"};
  options.working_dir = dir_.string();
  options.env = {{"A", "first"}, {"A", "last"}};
  auto process = Subprocess::Spawn(options);
  ASSERT_TRUE(process.ok()) << process.status();
  EXPECT_TRUE(process->Wait().ok());
  EXPECT_EQ(Read(dir_ / "out"), dir_.string() + " last\n");
  // The parent's environment, changed after an earlier spawn, is seen.
  ::setenv("TIERFLOW_SUBPROCESS_TEST", "changed", 1);
  options.argv = {"sh", "-c", "echo \"$TIERFLOW_SUBPROCESS_TEST\" > out"};
  process = Subprocess::Spawn(options);
  ASSERT_TRUE(process.ok()) << process.status();
  EXPECT_TRUE(process->Wait().ok());
  ::unsetenv("TIERFLOW_SUBPROCESS_TEST");
  EXPECT_EQ(Read(dir_ / "out"), "changed\n");
}

TEST_F(SubprocessTest, TaskProcessesFindsDescendantsOfTheLeader) {
  SpawnOptions options;
  // The leader starts a child that starts a grandchild; all sleep.
  options.argv = {"sh", "-c", "sh -c 'sleep 30 & wait' & wait"};
  auto process = Subprocess::Spawn(options);
  ASSERT_TRUE(process.ok()) << process.status();
  std::optional<std::vector<pid_t>> found;
  for (int i = 0; i < 500; ++i) {
    found = TaskProcesses(process->pid());
    ASSERT_TRUE(found.has_value());
    if (found->size() >= 3) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(found->size(), 3u) << "the leader, its child and its grandchild";
  EXPECT_EQ(found->front(), process->pid());
  process->Terminate(std::chrono::milliseconds(100));
}

TEST_F(SubprocessTest, LooksProgramsUpOnTheChildsPath) {
  // A task that sets PATH finds its programs there, as its shell would,
  // even when a program of the same name comes first on tierflow's PATH.
  const fs::path bin = dir_ / "bin";
  fs::create_directories(bin);
  {
    std::ofstream script(bin / "true");
    script << "#!/bin/sh\necho from-task-path\n";
  }
  fs::permissions(bin / "true", fs::perms::owner_all);
  for (int round = 0; round < 2; ++round) {  // the second from the lookup cache
    SpawnOptions options;
    options.argv = {"true"};
    options.env = {{"PATH", bin.string() + ":/usr/bin:/bin"}};
    options.stdout_path = (dir_ / "out").string();
    auto process = Subprocess::Spawn(options);
    ASSERT_TRUE(process.ok()) << process.status();
    EXPECT_TRUE(process->Wait().ok());
    EXPECT_EQ(Read(dir_ / "out"), "from-task-path\n");
  }
}

TEST_F(SubprocessTest, TerminateKillsTheWholeGroupIncludingBackgroundChildren) {
  SpawnOptions options;
  // The shell ignores TERM, so the grace period runs out and KILL is needed;
  // its background child would survive a signal sent to the leader alone.
  options.argv = {"sh", "-c", "trap '' TERM; sleep 300 & echo $! > child; wait"};
  options.working_dir = dir_;
  auto process = Subprocess::Spawn(options);
  ASSERT_TRUE(process.ok());
  pid_t child = 0;
  for (int i = 0; i < 2000 && child == 0; ++i) {  // hang guard only
    std::ifstream in(dir_ / "child");
    if (!(in >> child)) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_GT(child, 0);
  ASSERT_TRUE(Alive(child));
  ExitStatus status = process->Terminate(std::chrono::milliseconds(100));
  EXPECT_EQ(status.signal, SIGKILL);
  EXPECT_EQ(status.ToString(), "killed by SIGKILL");
  for (int i = 0; i < 2000 && Alive(child); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_FALSE(Alive(child));
}

TEST_F(SubprocessTest, TerminateUsesTermFirst) {
  SpawnOptions options;
  options.argv = {"sleep", "300"};
  auto process = Subprocess::Spawn(options);
  ASSERT_TRUE(process.ok());
  ExitStatus status;
  EXPECT_FALSE(process->TryWait(&status));
  status = process->Terminate(std::chrono::seconds(30));
  EXPECT_EQ(status.signal, SIGTERM);
}

}  // namespace
}  // namespace tierflow::worker
