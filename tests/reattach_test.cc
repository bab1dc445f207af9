// The executor seam for attempts that outlive the engine (common/task.h
// "Attempts that outlive the engine"), end to end: the engine runs on
// tests/engine/detached_executor.h, whose attempts are real `tierflow
// exec-task` processes in sessions of their own, as a batch scheduler's
// jobs would be. The engine is killed with SIGKILL mid-run (it runs in a
// forked child of the test), and a new engine resumes the run: an attempt
// still running is re-attached, not submitted again; one that finished
// while no engine watched is picked up from its report; one whose process
// vanished without a report is lost and runs again, its retries untouched.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/testing/child_process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/engine.h"
#include "tests/engine/detached_executor.h"
#include "tests/engine/engine_testing.h"
#include "worker/exec_task.h"

namespace tierflow::testing {
namespace {

using ::testing::HasSubstr;

// Each item waits for its gate file, then writes its output.
constexpr char kPipeline[] = R"x(name: reattach
params:
  gates: ""
stages:
  work:
    foreach: [x, y, z]
    run: |
      echo $$ > "$TIERFLOW_PARAM_GATES/$TIERFLOW_ITEM.pid"
      while [ ! -e "$TIERFLOW_PARAM_GATES/$TIERFLOW_ITEM.open" ]; do sleep 0.02; done
      echo "$TIERFLOW_ITEM" > "$TIERFLOW_OUTPUT_OUT"
    outputs: [out]
  gather:
    inputs: {parts: work.out}
    run: cat "$TIERFLOW_INPUT_PARTS"/* > "$TIERFLOW_OUTPUT_ALL"
    outputs: [all]
)x";

class ReattachTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(Jobs());
    fs::create_directories(Gates());
    WriteFile(dir_ / "pipeline.yaml", kPipeline);
  }
  // A test that failed midway leaves no attempt running: each exec-task
  // it started (by its recorded pid, while it still runs this test's
  // launch) kills its task at once, then goes.
  void TearDown() override {
    for (const std::string& line : ReadLines(fs::path(Jobs()) / "submissions.log")) {
      const std::string attempt = line.substr(0, line.find(' '));
      const pid_t pid = static_cast<pid_t>(std::stol(line.substr(line.find(' ') + 1)));
      const std::string launch = worker::JobFiles::In(Jobs(), std::stoll(attempt)).launch;
      if (ReadFile("/proc/" + std::to_string(pid) + "/cmdline").find(launch) == std::string::npos) {
        continue;
      }
      kill(pid, SIGUSR1);
      WaitFor([&] { return ProcessGone(pid); }, std::chrono::seconds(10));
      kill(pid, SIGKILL);
    }
  }
  std::string Db() const { return (dir_.path() / ".tierflow" / "tierflow.db").string(); }
  std::string Jobs() const { return dir_ / "jobs"; }
  std::string Gates() const { return dir_ / "gates"; }
  void Open(const std::string& item) const { WriteFile(fs::path(Gates()) / (item + ".open"), ""); }
  std::string Sql(const std::string& sql) const { return QueryValue(Db(), sql); }

  scheduler::EngineOptions Options() const {
    scheduler::EngineOptions options;
    options.db_path = Db();
    options.slots = 4;
    options.kill_grace = std::chrono::milliseconds(200);
    options.executor = "detached";
    options.make_executor =
        [jobs = Jobs()](
            Executor::ReportCallback on_report) -> absl::StatusOr<std::unique_ptr<Executor>> {
      return std::make_unique<DetachedExecutor>(jobs, TIERFLOW_BIN, std::move(on_report));
    };
    return options;
  }
  scheduler::RunRequest Request() const {
    scheduler::RunRequest request;
    request.file = dir_ / "pipeline.yaml";
    request.params = {{"gates", Gates()}};
    return request;
  }

  // Attempt id -> how many processes the executor started for it.
  std::map<std::string, int> Submissions() const {
    std::map<std::string, int> counts;
    for (const std::string& line : ReadLines(fs::path(Jobs()) / "submissions.log")) {
      ++counts[line.substr(0, line.find(' '))];
    }
    return counts;
  }

  TempDir dir_;
};

TEST_F(ReattachTest, KilledEngineResumesByReattachingNotResubmitting) {
  // The engine that will be killed runs in a child of its own, forked
  // before this process starts any thread.
  pid_t engine = fork();
  ASSERT_GE(engine, 0);
  if (engine == 0) {
    scheduler::Engine doomed(Options());
    (void)doomed.Run(Request());
    _exit(3);  // never reached while the gates are shut
  }
  // Every item's attempt submitted with its handle recorded, and running.
  const bool all_running = WaitFor(
      [&] {
        return fs::exists(Db()) &&
               QueryValue(Db(),
                          "SELECT count(*) FROM attempts WHERE task_id LIKE 'work[%' AND "
                          "handle LIKE 'pid:%' AND pid IS NOT NULL") == "3";
      },
      std::chrono::seconds(60));
  if (!all_running) kill(engine, SIGKILL);
  ASSERT_TRUE(all_running) << "the three attempts never ran with their handles recorded";
  for (const char* item : {"x", "y", "z"}) {
    ASSERT_TRUE(
        WaitFor([&] { return fs::exists(fs::path(Gates()) / (std::string(item) + ".pid")); },
                std::chrono::seconds(30)))
        << item;
  }
  kill(engine, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(engine, &status, 0), engine);
  ASSERT_TRUE(WIFSIGNALED(status));

  const std::string run = Sql("SELECT id FROM runs");
  std::map<std::string, std::string> attempt_of;  // item -> attempt id
  std::map<std::string, std::string> handle_of;
  for (const Row& row : Query(Db(), "SELECT task_id, id, handle FROM attempts")) {
    attempt_of[row[0]] = row[1];
    handle_of[row[0]] = row[2];
  }
  ASSERT_EQ(attempt_of.size(), 3u);

  // While no engine watches: x finishes, y's process vanishes without a
  // report, z keeps running.
  Open("x");
  const worker::JobFiles x_files = worker::JobFiles::In(Jobs(), std::stoll(attempt_of["work[x]"]));
  ASSERT_TRUE(WaitFor([&] { return fs::exists(x_files.report); }, std::chrono::seconds(30)))
      << "x's exec-task never wrote its report";
  const pid_t y_exec = static_cast<pid_t>(std::stol(handle_of["work[y]"].substr(4)));
  const pid_t y_task = ReadPid(fs::path(Gates()) / "y.pid");
  kill(y_exec, SIGKILL);
  kill(-y_task, SIGKILL);
  ASSERT_TRUE(WaitFor([&] { return ProcessGone(y_exec) && ProcessGone(y_task); },
                      std::chrono::seconds(10)));
  Open("y");  // its next attempt runs through

  // z is opened once the new engine has taken it back.
  std::thread opener([&] {
    if (WaitFor([&] { return Sql("SELECT count(*) FROM events WHERE kind = 'reattached'") == "3"; },
                std::chrono::seconds(60))) {
      Open("z");
    }
  });
  // A resume on another executor is refused, and changes nothing: the
  // attempts may still run where they were started.
  const std::string attempts_before = Sql("SELECT group_concat(id || state, ',') FROM attempts");
  {
    scheduler::EngineOptions local = Options();
    local.executor = "";
    scheduler::Engine wrong(std::move(local));
    absl::StatusOr<scheduler::RunResult> refused = wrong.Resume(run);
    ASSERT_FALSE(refused.ok());
    EXPECT_THAT(std::string(refused.status().message()),
                HasSubstr("was started with --executor detached: resume it with the same, not "
                          "the local executor; nothing was changed"));
  }
  EXPECT_EQ(Sql("SELECT group_concat(id || state, ',') FROM attempts"), attempts_before);
  EXPECT_EQ(Sql("SELECT count(*) FROM events WHERE kind = 'run_resumed'"), "0");
  EXPECT_EQ(Sql("SELECT executor FROM runs"), "detached");
  scheduler::Engine engine2(Options());
  absl::StatusOr<scheduler::RunResult> result = engine2.Resume(run);
  Open("z");  // whatever happened, nothing waits on the gate any more
  opener.join();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(Sql("SELECT state FROM runs"), "succeeded");

  // Exactly one succeeded attempt per task; x and z the same attempts as
  // before the kill; y lost, then a second attempt.
  EXPECT_EQ(Sql("SELECT count(*) FROM (SELECT task_id FROM attempts WHERE state = 'succeeded' "
                "GROUP BY task_id HAVING count(*) = 1)"),
            "4");
  EXPECT_EQ(Sql("SELECT count(*) FROM tasks WHERE state = 'succeeded'"), "4");
  for (const char* task : {"work[x]", "work[z]"}) {
    EXPECT_EQ(Sql(std::string("SELECT group_concat(id || ':' || state) FROM attempts WHERE "
                              "task_id = '") +
                  task + "'"),
              attempt_of[task] + ":succeeded")
        << task;
  }
  EXPECT_EQ(Sql("SELECT group_concat(state || ':' || number) FROM (SELECT * FROM attempts WHERE "
                "task_id = 'work[y]' ORDER BY number)"),
            "lost:1,succeeded:2");
  EXPECT_THAT(Sql("SELECT message FROM attempts WHERE task_id = 'work[y]' AND number = 1"),
              HasSubstr("its executor cannot find " + handle_of["work[y]"]));
  // Outputs of re-attached attempts are recorded as theirs, with lineage.
  for (const char* item : {"x", "z"}) {
    const std::string task = std::string("work[") + item + "]";
    EXPECT_EQ(Sql("SELECT count(*) FROM artifacts WHERE task_id = '" + task +
                  "' AND attempt_id = " + attempt_of[task] + " AND content_hash LIKE 'xxh3:%'"),
              "1")
        << task;
  }
  EXPECT_EQ(ReadFile(Sql("SELECT c.uri FROM artifacts a JOIN artifact_copies c ON "
                         "c.artifact_id = a.id WHERE a.task_id = 'gather'")),
            "x\ny\nz\n");
  // Nothing was submitted twice: one process per attempt, one attempt per
  // process, and every attempt recorded with its handle.
  std::map<std::string, int> submitted = Submissions();
  EXPECT_EQ(submitted.size(), 5u);
  for (const auto& [attempt, count] : submitted) EXPECT_EQ(count, 1) << "attempt " << attempt;
  EXPECT_EQ(Sql("SELECT count(*) FROM attempts"), "5");
  EXPECT_EQ(Sql("SELECT count(*) FROM attempts WHERE handle LIKE 'pid:%'"), "5");
}

// The job side's own errors name what is wrong, and run nothing.
TEST_F(ReattachTest, ExecTaskRefusesAMissingLaunchAndAnUnwritableReportFolder) {
  ChildResult missing =
      RunChild({TIERFLOW_BIN,
                {"exec-task", "--launch", dir_ / "nope.launch", "--report", dir_ / "nope.report"}});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_THAT(missing.err, HasSubstr(dir_ / "nope.launch"));

  TaskLaunch launch;
  launch.attempt_id = 7;
  launch.run_id = "r";
  launch.task_id = "t";
  launch.shell = "touch " + (dir_ / "ran");
  launch.working_dir = dir_.path().string();
  launch.log_path = dir_ / "t.log";
  const std::string launch_path = dir_ / "t.launch";
  ASSERT_TRUE(worker::WriteLaunchFile(launch_path, launch).ok());
  ChildResult unwritable = RunChild(
      {TIERFLOW_BIN, {"exec-task", "--launch", launch_path, "--report", dir_ / "no/such/r"}});
  EXPECT_NE(unwritable.exit_code, 0);
  EXPECT_THAT(unwritable.err, HasSubstr(dir_ / "no/such/r"));
  EXPECT_FALSE(fs::exists(dir_ / "ran")) << "the command ran without anywhere to report";

  // And with a folder to report to, it runs and reports.
  ChildResult ran =
      RunChild({TIERFLOW_BIN, {"exec-task", "--launch", launch_path, "--report", dir_ / "t.r"}});
  EXPECT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_TRUE(fs::exists(dir_ / "ran"));
  absl::StatusOr<std::optional<TaskReport>> report = worker::ReadReportFile(dir_ / "t.r");
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_TRUE(report->has_value());
  EXPECT_EQ((*report)->attempt_id, 7);
  EXPECT_EQ((*report)->outcome, TaskReport::Outcome::kSucceeded);
  EXPECT_TRUE(fs::exists(dir_ / "t.r.started"));

  // A file that is not a report is an error naming it, not a report.
  WriteFile(dir_ / "junk", "not a report");
  absl::StatusOr<std::optional<TaskReport>> junk = worker::ReadReportFile(dir_ / "junk");
  EXPECT_FALSE(junk.ok());
  EXPECT_THAT(std::string(junk.status().message()), HasSubstr(dir_ / "junk"));
}

}  // namespace
}  // namespace tierflow::testing
