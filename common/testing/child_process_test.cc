// The tests' child-process runner: what it reports of a process that exits,
// is killed or hangs, and what it hands the process (arguments, argv[0],
// environment, files).
#include "common/testing/child_process.h"

#include <gmock/gmock.h>
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace tierflow::testing {
namespace {

using ::testing::HasSubstr;

TEST(ChildProcessTest, RunToTheEndGivesExitCodeAndBothOutputs) {
  ChildResult run = RunChild({"sh", {"-c", "echo out; echo err >&2; exit 3"}});
  EXPECT_EQ(run.exit_code, 3);
  EXPECT_EQ(run.signal, 0);
  EXPECT_FALSE(run.timed_out);
  EXPECT_EQ(run.out, "out\n");
  EXPECT_EQ(run.err, "err\n");
}

TEST(ChildProcessTest, AHangFailsTheTestAndIsKilled) {
  ChildResult run;
  EXPECT_NONFATAL_FAILURE(run = RunChild({"sleep", {"30"}}, std::chrono::milliseconds(200)),
                          "did not end within 200 ms");
  EXPECT_TRUE(run.timed_out);
  EXPECT_EQ(run.exit_code, -1);
}

TEST(ChildProcessTest, AProgramThatCannotStartIsAnErrorNamingIt) {
  absl::StatusOr<std::unique_ptr<ChildProcess>> child =
      ChildProcess::Start({"/nonexistent/tierflow-no-such-program"});
  ASSERT_FALSE(child.ok());
  EXPECT_THAT(child.status().message(),
              HasSubstr("cannot run /nonexistent/tierflow-no-such-program: No such file"));
}

TEST(ChildProcessTest, StopsByPidAndReportsTheSignal) {
  absl::StatusOr<std::unique_ptr<ChildProcess>> child =
      ChildProcess::Start({"sh", {"-c", "echo ready; exec sleep 30"}});
  ASSERT_TRUE(child.ok()) << child.status();
  ASSERT_TRUE((*child)->ReadUntil([](const ChildResult& r) { return r.out == "ready\n"; },
                                  std::chrono::seconds(10)));
  (*child)->Signal(SIGTERM);
  const ChildResult run = (*child)->Wait(std::chrono::seconds(10));
  EXPECT_EQ(run.signal, SIGTERM);
  EXPECT_EQ(run.exit_code, -1);
}

TEST(ChildProcessTest, ADestroyedChildIsKilledAndReaped) {
  pid_t pid = -1;
  {
    absl::StatusOr<std::unique_ptr<ChildProcess>> child = ChildProcess::Start({"sleep", {"30"}});
    ASSERT_TRUE(child.ok()) << child.status();
    pid = (*child)->pid();
    ASSERT_EQ(kill(pid, 0), 0);
  }
  EXPECT_NE(kill(pid, 0), 0) << "pid " << pid << " is still there";
}

TEST(ChildProcessTest, HandsOverArgv0EnvironmentAndFiles) {
  setenv("TIERFLOW_CHILD_TEST_GONE", "here", 1);
  char pattern[] = "/tmp/tierflow-child.XXXXXX";
  ASSERT_NE(mkdtemp(pattern), nullptr);
  const std::filesystem::path dir = pattern;
  ChildSpec spec{"sh",
                 {"-c", "echo \"$0 $ADDED ${TIERFLOW_CHILD_TEST_GONE:-unset}\"; echo e >&2"},
                 "named",
                 {"ADDED=yes"},
                 {"TIERFLOW_CHILD_TEST_GONE"},
                 (dir / "out").string(),
                 (dir / "err").string()};
  const ChildResult run = RunChild(spec);
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_EQ(run.out, "") << "written to the file, not captured";
  std::stringstream out, err;
  out << std::ifstream(dir / "out").rdbuf();
  err << std::ifstream(dir / "err").rdbuf();
  EXPECT_EQ(out.str(), "named yes unset\n");
  EXPECT_EQ(err.str(), "e\n");
  unsetenv("TIERFLOW_CHILD_TEST_GONE");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tierflow::testing
