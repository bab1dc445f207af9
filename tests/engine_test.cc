// The run engine in process (api::MakeEmbeddedEngine: the scheduler's
// engine on the local worker pool) driving pipelines of real shell tasks.
// Each test writes its pipeline into a temporary folder, keeps the store at
// TMP/.tierflow/tierflow.db, and checks both the returned RunResult and what
// the store recorded. Waits are bounded only to detect hangs. Backoffs and
// timeouts run on a FakeClock where the test moves time; one timeout test
// (TermIgnoringTaskIsKilledAfterGrace) keeps the system clock end to end.
#include "scheduler/engine.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "api/embedded.h"
#include "api/run_service.h"
#include "common/clock.h"
#include "scheduler/store.h"
#include "storage_adapters/local_artifact.h"
#include "tests/engine/engine_testing.h"

namespace tierflow {
namespace {

using scheduler::EngineOptions;
using scheduler::RunRequest;
using scheduler::RunResult;
using scheduler::RunState;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;
using namespace tierflow::testing;  // NOLINT: the test helpers

constexpr auto kHangLimit = std::chrono::seconds(30);

// Records every task transition; lets a test wait for one.
class RecordingObserver final : public scheduler::RunObserver {
 public:
  void OnRunStarted(const std::string&, bool, const scheduler::RunCounts&) override {}
  void OnTaskEvent(const scheduler::TaskEvent& event, const scheduler::RunCounts&) override {
    {
      std::lock_guard lock(mu_);
      events_.push_back(event);
    }
    cv_.notify_all();
  }
  bool WaitForState(const std::string& task, scheduler::TaskState state,
                    std::chrono::milliseconds limit = kHangLimit) {
    return WaitForAttempt(task, state, 0, limit);
  }
  // `attempt` 0: any attempt.
  bool WaitForAttempt(const std::string& task, scheduler::TaskState state, uint32_t attempt,
                      std::chrono::milliseconds limit = kHangLimit) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, limit, [&] {
      return std::any_of(events_.begin(), events_.end(), [&](const scheduler::TaskEvent& e) {
        return e.task_id == task && e.state == state && (attempt == 0 || e.attempt == attempt);
      });
    });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<scheduler::TaskEvent> events_;
};

class EngineTest : public ::testing::Test {
 protected:
  std::string Pipeline() const { return dir_ / "pipeline.yaml"; }
  std::string Db() const { return (dir_.path() / ".tierflow" / "tierflow.db").string(); }
  fs::path RunDir(const std::string& run_id) const {
    return dir_.path() / ".tierflow" / "runs" / run_id;
  }

  EngineOptions Options() const {
    EngineOptions options;
    options.db_path = Db();
    options.slots = 2;
    options.kill_grace = std::chrono::milliseconds(200);
    return options;
  }

  // Runs `call` (Run or Resume of `engine`) on a thread of its own. An
  // engine that has not returned after `limit` is cancelled, then killed;
  // one that still hangs is left behind (its thread detached, the engine
  // leaked on purpose) so the test fails instead of hanging.
  static absl::StatusOr<RunResult> Drive(
      std::shared_ptr<scheduler::Engine> engine,
      std::function<absl::StatusOr<RunResult>(scheduler::Engine&)> call,
      std::chrono::seconds limit = kHangLimit) {
    auto promise = std::make_shared<std::promise<absl::StatusOr<RunResult>>>();
    std::future<absl::StatusOr<RunResult>> future = promise->get_future();
    std::thread thread([engine, call, promise] { promise->set_value(call(*engine)); });
    if (future.wait_for(limit) != std::future_status::ready) {
      ADD_FAILURE() << "the engine did not finish within " << limit.count() << " s: cancelling it";
      engine->Cancel();
      engine->KillNow();
      if (future.wait_for(std::chrono::seconds(2)) != std::future_status::ready) {
        thread.detach();
        return absl::DeadlineExceededError("the engine hangs, even after Cancel and KillNow");
      }
    }
    thread.join();
    return future.get();
  }

  absl::StatusOr<RunResult> RunWith(EngineOptions options,
                                    std::map<std::string, std::string> params = {}) {
    std::shared_ptr<scheduler::Engine> engine = api::MakeEmbeddedEngine(std::move(options));
    RunRequest request;
    request.file = Pipeline();
    request.params = std::move(params);
    return Drive(engine, [request](scheduler::Engine& e) { return e.Run(request); });
  }
  absl::StatusOr<RunResult> Run(std::map<std::string, std::string> params = {}) {
    return RunWith(Options(), std::move(params));
  }

  // A run of Pipeline() observed by `observer`, driven on a thread of its
  // own while the test acts on it through `engine`.
  struct Background {
    std::shared_ptr<scheduler::Engine> engine;
    std::future<absl::StatusOr<RunResult>> result;
  };
  Background RunInBackground(RecordingObserver& observer) {
    return RunInBackground(observer, Options());
  }
  Background RunInBackground(RecordingObserver& observer, EngineOptions options) {
    options.observer = &observer;
    Background run;
    run.engine = api::MakeEmbeddedEngine(options);
    RunRequest request;
    request.file = Pipeline();
    run.result = std::async(std::launch::async, [engine = run.engine, request] {
      return Drive(engine, [request](scheduler::Engine& e) { return e.Run(request); });
    });
    return run;
  }

  void WritePipeline(const std::string& yaml) { WriteFile(Pipeline(), yaml); }

  // task id -> state of every task of `run_id`.
  std::map<std::string, std::string> TaskStates(const std::string& run_id) const {
    std::map<std::string, std::string> states;
    for (const Row& row :
         Query(Db(), "SELECT id, state FROM tasks WHERE run_id = '" + run_id + "'")) {
      if (row.size() == 2) states[row[0]] = row[1];
    }
    return states;
  }

  // (number, state, started_at, finished_at, message, id) of a task's attempts, in order.
  std::vector<Row> Attempts(const std::string& run_id, const std::string& task) const {
    return Query(Db(),
                 "SELECT number, state, started_at, finished_at, message, id, signal, pid "
                 "FROM attempts WHERE run_id = '" +
                     run_id + "' AND task_id = '" + task + "' ORDER BY number");
  }

  std::string AttemptId(const std::string& run_id, const std::string& task) const {
    return QueryValue(Db(), "SELECT id FROM attempts WHERE run_id = '" + run_id +
                                "' AND task_id = '" + task + "' ORDER BY number DESC LIMIT 1");
  }

  TempDir dir_;
};

// Counts how often each word occurs in a file of one word per line.
std::map<std::string, int> CountLines(const fs::path& path) {
  std::map<std::string, int> counts;
  for (const std::string& line : ReadLines(path)) ++counts[line];
  return counts;
}

// KEY=VALUE lines (as `env` prints them) as a map.
std::map<std::string, std::string> ParseEnv(const fs::path& path) {
  std::map<std::string, std::string> env;
  for (const std::string& line : ReadLines(path)) {
    size_t eq = line.find('=');
    if (eq != std::string::npos) env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return env;
}

TEST_F(EngineTest, RetriesWithBackoffUntilSuccess) {
  // Fails on its first two attempts; 50ms backoff, factor 2: retry 1 waits
  // in [25, 50] ms, retry 2 in [50, 100] ms. Jitter pinned at its minimum.
  WritePipeline(R"x(name: retry
stages:
  flaky:
    run: |
      echo "$TIERFLOW_ATTEMPT" >> attempts.seen
      n=$(cat count 2>/dev/null || echo 0)
      n=$((n + 1))
      echo $n > count
      [ $n -ge 3 ]
    retries: {limit: 3, backoff: 50ms}
)x");
  EngineOptions options = Options();
  options.random = [] { return 0.0; };
  absl::StatusOr<RunResult> result = RunWith(options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->state, RunState::kSucceeded);
  EXPECT_EQ(result->counts.succeeded, 1u);

  std::vector<Row> attempts = Attempts(result->run_id, "flaky");
  ASSERT_EQ(attempts.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(attempts[i][0], std::to_string(i + 1));
  EXPECT_EQ(attempts[0][1], "failed");
  EXPECT_EQ(attempts[1][1], "failed");
  EXPECT_EQ(attempts[2][1], "succeeded");
  EXPECT_THAT(attempts[0][4], HasSubstr("exit 1"));
  // The gap before retry n is at least its delay, which is at least half
  // of min(backoff * factor^(n-1), max_backoff).
  const int64_t gap1 = std::stoll(attempts[1][2]) - std::stoll(attempts[0][3]);
  const int64_t gap2 = std::stoll(attempts[2][2]) - std::stoll(attempts[1][3]);
  EXPECT_GE(gap1, 25) << "retry 1 came too early";
  EXPECT_GE(gap2, 50) << "retry 2 came too early";
  EXPECT_EQ(QueryValue(Db(), "SELECT attempts FROM tasks WHERE id = 'flaky'"), "3");
  // The delays the engine chose, as it reported them.
  EXPECT_EQ(QueryValue(Db(),
                       "SELECT count(*) FROM events WHERE kind = 'retrying' AND message "
                       "LIKE '%retry 1 of 3 in 25ms%'"),
            "1");
  EXPECT_EQ(QueryValue(Db(),
                       "SELECT count(*) FROM events WHERE kind = 'retrying' AND message "
                       "LIKE '%retry 2 of 3 in 50ms%'"),
            "1");
  // Each attempt saw its own number.
  EXPECT_THAT(ReadLines(dir_ / "attempts.seen"), ElementsAre("1", "2", "3"));
}

TEST_F(EngineTest, RetriesExhaustedFailsTaskAndDownstreamButNotIndependentBranch) {
  WritePipeline(R"x(name: exhausted
stages:
  a:
    run: exit 3
    retries: {limit: 1, backoff: 10ms}
  b:
    needs: [a]
    run: echo b >> ran
  c:
    needs: [b]
    run: echo c >> ran
  d:
    run: echo d >> ran
)x");
  absl::StatusOr<RunResult> result = Run();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->state, RunState::kFailed);
  EXPECT_EQ(result->counts.failed, 1u);
  EXPECT_EQ(result->counts.upstream_failed, 2u);
  EXPECT_EQ(result->counts.succeeded, 1u);
  ASSERT_EQ(result->failures.size(), 1u);
  EXPECT_EQ(result->failures[0].task_id, "a");
  EXPECT_EQ(result->failures[0].state, scheduler::TaskState::kFailed);
  EXPECT_THAT(result->failures[0].message, HasSubstr("exit 3"));

  std::map<std::string, std::string> states = TaskStates(result->run_id);
  EXPECT_EQ(states["a"], "failed");
  EXPECT_EQ(states["b"], "upstream_failed");
  EXPECT_EQ(states["c"], "upstream_failed");
  EXPECT_EQ(states["d"], "succeeded");
  std::vector<Row> attempts = Attempts(result->run_id, "a");
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[0][1], "failed");
  EXPECT_EQ(attempts[1][1], "failed");
  for (const std::string task : {"b", "c"}) {
    EXPECT_THAT(QueryValue(Db(), "SELECT message FROM tasks WHERE id = '" + task + "'"),
                HasSubstr("upstream task a failed"))
        << task;
    EXPECT_TRUE(Attempts(result->run_id, task).empty()) << task << " must never run";
  }
  EXPECT_THAT(ReadLines(dir_ / "ran"), ElementsAre("d"));
  EXPECT_EQ(QueryValue(Db(), "SELECT state FROM runs"), "failed");
  EXPECT_EQ(QueryValue(Db(), "SELECT engine_pid IS NULL FROM runs"), "1");
}

TEST_F(EngineTest, TimeoutKillsWholeProcessGroup) {
  // On a fake clock: the task is killed when the clock passes its
  // timeout, not when 300 ms of real time have.
  WritePipeline(R"x(name: timeout
stages:
  slow:
    run: echo $$ > leader.pid; sleep 300 & echo $! > bg.pid; sleep 300
    timeout: 300ms
)x");
  FakeClock clock;
  EngineOptions options = Options();
  options.clock = &clock;
  RecordingObserver observer;
  auto [engine, result] = RunInBackground(observer, options);
  ASSERT_TRUE(WaitFor([&] { return ReadPid(dir_ / "bg.pid") > 0; }))
      << "the task did not record its background pid";
  const pid_t leader = ReadPid(dir_ / "leader.pid");
  const pid_t background = ReadPid(dir_ / "bg.pid");
  // Three times its timeout in real time, and the clock not moved.
  EXPECT_FALSE(
      observer.WaitForState("slow", scheduler::TaskState::kFailed, std::chrono::milliseconds(900)))
      << "timed out on real time";
  EXPECT_FALSE(ProcessGone(leader));
  clock.Advance(std::chrono::milliseconds(299));
  EXPECT_FALSE(
      observer.WaitForState("slow", scheduler::TaskState::kFailed, std::chrono::milliseconds(300)))
      << "timed out before its timeout";
  clock.Advance(std::chrono::milliseconds(1));
  absl::StatusOr<RunResult> run = result.get();
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->state, RunState::kFailed);
  ASSERT_EQ(run->failures.size(), 1u);
  EXPECT_THAT(run->failures[0].message, HasSubstr("timed out after 300ms"));

  std::vector<Row> attempts = Attempts(run->run_id, "slow");
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0][1], "timed_out");
  EXPECT_THAT(attempts[0][4], HasSubstr("timed out"));
  EXPECT_EQ(attempts[0][7], std::to_string(leader));
  EXPECT_TRUE(ProcessGone(leader));
  // Killed with its group; an orphan may wait a moment for init to reap it.
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(background); }, std::chrono::seconds(5)))
      << "the background sleep (pid " << background << ") outlived the timed-out task";
  if (!ProcessGone(background)) ::kill(background, SIGKILL);
}

TEST_F(EngineTest, RetryRunsWhenTheClockPassesItsBackoff) {
  // backoff 1h (under max_backoff), jitter pinned near its top: the
  // retry is due 59m58.2s after the failure, on the engine's clock.
  WritePipeline(R"x(name: backoff
stages:
  flaky:
    run: |
      n=$(cat count 2>/dev/null || echo 0)
      echo $((n + 1)) > count
      [ $n -ge 1 ]
    retries: {limit: 3, backoff: 1h, max_backoff: 2h}
)x");
  FakeClock clock;
  EngineOptions options = Options();
  options.clock = &clock;
  options.random = [] { return 0.999; };
  RecordingObserver observer;
  auto [engine, result] = RunInBackground(observer, options);
  ASSERT_TRUE(observer.WaitForState("flaky", scheduler::TaskState::kRetrying));
  clock.Advance(std::chrono::minutes(59));
  EXPECT_FALSE(observer.WaitForAttempt("flaky", scheduler::TaskState::kRunning, 2,
                                       std::chrono::milliseconds(300)))
      << "retried before its backoff";
  clock.Advance(std::chrono::minutes(1));
  EXPECT_TRUE(observer.WaitForAttempt("flaky", scheduler::TaskState::kRunning, 2));
  absl::StatusOr<RunResult> run = result.get();
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->state, RunState::kSucceeded);
  std::vector<Row> attempts = Attempts(run->run_id, "flaky");
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[0][1], "failed");
  EXPECT_EQ(attempts[1][1], "succeeded");
}

TEST_F(EngineTest, TermIgnoringTaskIsKilledAfterGrace) {
  // The system clock, end to end: a real timeout, then the real grace.
  WritePipeline(R"x(name: stubborn
stages:
  stubborn:
    run: trap '' TERM; echo $$ > stubborn.pid; sleep 300
    timeout: 300ms
)x");
  absl::StatusOr<RunResult> result = Run();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->state, RunState::kFailed);
  std::vector<Row> attempts = Attempts(result->run_id, "stubborn");
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0][1], "timed_out");
  EXPECT_EQ(attempts[0][6], std::to_string(SIGKILL)) << "TERM is ignored: only KILL ends it";
  EXPECT_THAT(attempts[0][4], HasSubstr("SIGKILL"));
  EXPECT_TRUE(ProcessGone(ReadPid(dir_ / "stubborn.pid")));
}

TEST_F(EngineTest, CancelStopsRunningTasksAndRecordsCancelled) {
  WritePipeline(R"x(name: cancel
stages:
  long:
    run: echo $$ > long.pid; exec sleep 300
  after:
    needs: [long]
    run: echo after >> ran
)x");
  RecordingObserver observer;
  auto [engine, result] = RunInBackground(observer);
  ASSERT_TRUE(observer.WaitForState("long", scheduler::TaskState::kRunning));
  ASSERT_TRUE(WaitFor([&] { return ReadPid(dir_ / "long.pid") > 0; }));
  const pid_t pid = ReadPid(dir_ / "long.pid");
  engine->Cancel();
  absl::StatusOr<RunResult> run = result.get();
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->state, RunState::kCancelled);
  EXPECT_EQ(run->counts.cancelled, 2u);
  std::map<std::string, std::string> states = TaskStates(run->run_id);
  EXPECT_EQ(states["long"], "cancelled");
  EXPECT_EQ(states["after"], "cancelled");
  std::vector<Row> attempts = Attempts(run->run_id, "long");
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0][1], "cancelled");
  EXPECT_NE(attempts[0][3], "NULL") << "a cancelled attempt has a finish time";
  EXPECT_TRUE(Attempts(run->run_id, "after").empty());
  EXPECT_EQ(QueryValue(Db(), "SELECT state || ' ' || cancel_requested FROM runs"), "cancelled 1");
  EXPECT_TRUE(ProcessGone(pid)) << "the cancelled task (pid " << pid << ") still runs";
  EXPECT_FALSE(fs::exists(dir_ / "ran"));
}

TEST_F(EngineTest, MissingOutputFailsTaskWithClearMessage) {
  WritePipeline(R"x(name: missing
stages:
  train:
    run: echo forgot to write the model
    outputs: [model]
)x");
  absl::StatusOr<RunResult> result = Run();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->state, RunState::kFailed);
  ASSERT_EQ(result->failures.size(), 1u);
  EXPECT_THAT(result->failures[0].message, HasSubstr("output 'model' missing"));
  EXPECT_THAT(result->failures[0].message, HasSubstr("TIERFLOW_OUTPUT_MODEL"));
  std::vector<Row> attempts = Attempts(result->run_id, "train");
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0][1], "failed");
  EXPECT_THAT(attempts[0][4], HasSubstr("output 'model' missing"));
  EXPECT_EQ(QueryValue(Db(), "SELECT count(*) FROM artifacts"), "0");
  // The log the failure points at holds the command's output.
  EXPECT_THAT(ReadFile(result->failures[0].log_path), HasSubstr("forgot to write the model"));
}

TEST_F(EngineTest, OutputsAreHashedSizedAndPublishedAtomically) {
  // The task also checks that nothing is at its outputs' final paths while
  // it runs: outputs are published only after it exits.
  const std::string state = (dir_.path() / ".tierflow").string();
  WritePipeline(R"x(name: outputs
stages:
  make:
    env: {STATE: ")x" +
                state + R"x("}
    run: |
      printf hello > "$TIERFLOW_OUTPUT_FILE"
      mkdir -p "$TIERFLOW_OUTPUT_TREE/sub"
      printf a > "$TIERFLOW_OUTPUT_TREE/a"
      printf bcd > "$TIERFLOW_OUTPUT_TREE/sub/b"
      final="$STATE/runs/$TIERFLOW_RUN_ID/artifacts/make"
      if [ -e "$final/file" ] || [ -e "$final/tree" ]; then echo present; else echo absent; fi > seen
    outputs: [file, tree]
  use:
    inputs: {file: make.file, tree: make.tree}
    run: cat "$TIERFLOW_INPUT_FILE" "$TIERFLOW_INPUT_TREE/sub/b" > used
)x");
  absl::StatusOr<RunResult> result = Run();
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->state, RunState::kSucceeded);
  EXPECT_EQ(ReadFile(dir_ / "seen"), "absent\n");
  EXPECT_EQ(ReadFile(dir_ / "used"), "hellobcd");

  const fs::path artifacts = RunDir(result->run_id) / "artifacts" / "make";
  std::vector<Row> rows =
      Query(Db(),
            "SELECT a.name, a.bytes, a.files, a.content_hash, c.uri, c.content_hash, c.bytes, "
            "c.role, c.state, a.attempt_id FROM artifacts a JOIN artifact_copies c ON "
            "c.artifact_id = a.id ORDER BY a.name");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0][0], "file");
  EXPECT_EQ(rows[0][1], "5");
  EXPECT_EQ(rows[0][2], "1");
  EXPECT_EQ(rows[0][4], (artifacts / "file").string());
  EXPECT_EQ(rows[1][0], "tree");
  EXPECT_EQ(rows[1][1], "4");
  EXPECT_EQ(rows[1][2], "2");
  EXPECT_EQ(rows[1][4], (artifacts / "tree").string());
  for (const Row& row : rows) {
    absl::StatusOr<storage::ContentDigest> digest = storage::HashArtifact(row[4]);
    ASSERT_TRUE(digest.ok()) << digest.status();
    EXPECT_EQ(row[3], digest->hash) << row[0];
    EXPECT_EQ(row[1], std::to_string(digest->bytes)) << row[0];
    EXPECT_EQ(row[2], std::to_string(digest->files)) << row[0];
    EXPECT_EQ(row[5], digest->hash) << row[0];
    EXPECT_EQ(row[6], row[1]) << row[0];
    EXPECT_EQ(row[7], "home");
    EXPECT_EQ(row[8], "present");
    EXPECT_EQ(row[9], AttemptId(result->run_id, "make"));
  }
  EXPECT_EQ(ReadFile(artifacts / "file"), "hello");
  // Nothing is left in staging.
  const fs::path staging = RunDir(result->run_id) / "staging";
  EXPECT_TRUE(!fs::exists(staging) || fs::is_empty(staging)) << staging;
}

TEST_F(EngineTest, TaskContractEnvironment) {
  WritePipeline(R"x(name: contract
params:
  x: 1
  regions: [eu, us]
stages:
  fan:
    foreach: [red, green, blue]
    run: env > "$TIERFLOW_OUTPUT_DUMP"
    outputs: [dump]
  single:
    run: printf single > "$TIERFLOW_OUTPUT_ONE"
    outputs: [one]
  gather:
    inputs: {parts: fan.dump, one: single.one}
    env: {EXTRA: hello}
    run: |
      env > gather.env
      pwd -P > gather.pwd
      ls "$TIERFLOW_INPUT_PARTS" > gather.ls
      [ -d "$(dirname "$TIERFLOW_OUTPUT_RESULT")" ] && printf done > "$TIERFLOW_OUTPUT_RESULT"
    outputs: [result]
)x");
  absl::StatusOr<RunResult> result = Run({{"x", "42"}});
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->state, RunState::kSucceeded);

  std::map<std::string, std::string> env = ParseEnv(dir_ / "gather.env");
  EXPECT_EQ(env["TIERFLOW_RUN_ID"], result->run_id);
  EXPECT_EQ(env["TIERFLOW_TASK_ID"], "gather");
  EXPECT_EQ(env["TIERFLOW_STAGE"], "gather");
  EXPECT_EQ(env["TIERFLOW_STAGE_KIND"], "generic");
  EXPECT_EQ(env["TIERFLOW_PIPELINE"], "contract");
  EXPECT_EQ(env["TIERFLOW_ATTEMPT"], "1");
  EXPECT_EQ(env["TIERFLOW_PARAM_X"], "42") << "the --param override";
  EXPECT_EQ(env["TIERFLOW_PARAM_REGIONS"], "eu,us");
  EXPECT_EQ(env["EXTRA"], "hello");
  EXPECT_EQ(env.count("TIERFLOW_ITEM"), 0u) << "gather is no foreach stage";
  // A plain input is the producer's artifact.
  EXPECT_EQ(env["TIERFLOW_INPUT_ONE"],
            QueryValue(Db(),
                       "SELECT c.uri FROM artifacts a JOIN artifact_copies c ON "
                       "c.artifact_id = a.id WHERE a.task_id = 'single'"));
  EXPECT_EQ(ReadFile(env["TIERFLOW_INPUT_ONE"]), "single");
  // A gather is a folder with one entry per item, named by the item.
  EXPECT_THAT(ReadLines(dir_ / "gather.ls"), ElementsAre("blue", "green", "red"));
  const std::vector<std::string> items = {"red", "green", "blue"};
  for (size_t i = 0; i < items.size(); ++i) {
    std::map<std::string, std::string> item_env =
        ParseEnv(fs::path(env["TIERFLOW_INPUT_PARTS"]) / items[i]);
    EXPECT_EQ(item_env["TIERFLOW_ITEM"], items[i]);
    EXPECT_EQ(item_env["TIERFLOW_ITEM_INDEX"], std::to_string(i));
    EXPECT_EQ(item_env["TIERFLOW_TASK_ID"], "fan[" + items[i] + "]");
    EXPECT_EQ(item_env["TIERFLOW_PARAM_X"], "42");
    EXPECT_EQ(item_env["TIERFLOW_OUTPUT_DUMP"].empty(), false);
  }
  // The output path ends in the output's name; what was written there is
  // the published artifact.
  EXPECT_EQ(fs::path(env["TIERFLOW_OUTPUT_RESULT"]).filename(), "result");
  EXPECT_EQ(ReadFile(RunDir(result->run_id) / "artifacts" / "gather" / "result"), "done");
  // The working folder is the pipeline file's.
  EXPECT_EQ(ReadFile(dir_ / "gather.pwd"), dir_.path().string() + "\n");
}

TEST_F(EngineTest, CacheHitAndMiss) {
  WriteFile(dir_ / "first.sh", R"x(echo first >> executions
printf 'first %s\n' "$TIERFLOW_PARAM_P" > "$TIERFLOW_OUTPUT_OUT"
)x");
  WriteFile(dir_ / "second.sh", R"x(echo second >> executions
cat "$TIERFLOW_INPUT_IN" > "$TIERFLOW_OUTPUT_OUT"
echo second >> "$TIERFLOW_OUTPUT_OUT"
)x");
  WritePipeline(R"x(name: caching
params:
  p: 1
stages:
  first:
    run: [sh, first.sh]
    outputs: [out]
  second:
    inputs: {in: first.out}
    run: [sh, second.sh]
    outputs: [out]
  always:
    cache: false
    run: echo always >> executions
)x");
  auto executions = [&] { return CountLines(dir_ / "executions"); };
  using Counts = std::map<std::string, int>;

  // 1: everything runs.
  absl::StatusOr<RunResult> run1 = Run();
  ASSERT_TRUE(run1.ok()) << run1.status();
  ASSERT_EQ(run1->state, RunState::kSucceeded);
  EXPECT_EQ(executions(), (Counts{{"first", 1}, {"second", 1}, {"always", 1}}));

  // 2: the same again: reused, nothing executed but the uncached stage.
  absl::StatusOr<RunResult> run2 = Run();
  ASSERT_TRUE(run2.ok()) << run2.status();
  ASSERT_EQ(run2->state, RunState::kSucceeded);
  EXPECT_EQ(run2->counts.cached, 2u);
  EXPECT_EQ(executions(), (Counts{{"first", 1}, {"second", 1}, {"always", 2}}));
  std::map<std::string, std::string> states = TaskStates(run2->run_id);
  EXPECT_EQ(states["first"], "cached");
  EXPECT_EQ(states["second"], "cached");
  EXPECT_EQ(states["always"], "succeeded");
  for (const std::string task : {"first", "second"}) {
    std::vector<Row> attempts = Attempts(run2->run_id, task);
    ASSERT_EQ(attempts.size(), 1u) << task;
    EXPECT_EQ(attempts[0][1], "cached") << task;
    EXPECT_EQ(QueryValue(Db(), "SELECT cached_from FROM attempts WHERE id = " + attempts[0][5]),
              AttemptId(run1->run_id, task))
        << task;
    // Lineage is written as for a run: the cached attempt produced its output.
    EXPECT_EQ(QueryValue(Db(),
                         "SELECT count(*) FROM lineage_edges e JOIN artifacts a ON a.id = "
                         "e.artifact_id WHERE e.direction = 'produced' AND e.attempt_id = " +
                             attempts[0][5] + " AND a.run_id = '" + run2->run_id + "'"),
              "1")
        << task;
  }
  EXPECT_EQ(QueryValue(Db(),
                       "SELECT count(*) FROM lineage_edges e JOIN artifacts a ON a.id = "
                       "e.artifact_id WHERE e.direction = 'consumed' AND e.attempt_id = " +
                           AttemptId(run2->run_id, "second") +
                           " AND a.task_id = 'first' "
                           "AND a.run_id = '" +
                           run2->run_id + "'"),
            "1");
  EXPECT_EQ(ReadFile(RunDir(run2->run_id) / "artifacts" / "second" / "out"), "first 1\nsecond\n");

  // 3: another param value: both miss.
  absl::StatusOr<RunResult> run3 = Run({{"p", "2"}});
  ASSERT_TRUE(run3.ok()) << run3.status();
  EXPECT_EQ(run3->counts.cached, 0u);
  EXPECT_EQ(executions(), (Counts{{"first", 2}, {"second", 2}, {"always", 3}}));

  // 4: first.sh edited (same output): first misses, second (same input
  // content) still hits.
  WriteFile(dir_ / "first.sh", ReadFile(dir_ / "first.sh") + "# edited\n");
  absl::StatusOr<RunResult> run4 = Run();
  ASSERT_TRUE(run4.ok()) << run4.status();
  states = TaskStates(run4->run_id);
  EXPECT_EQ(states["first"], "succeeded");
  EXPECT_EQ(states["second"], "cached");
  EXPECT_EQ(executions(), (Counts{{"first", 3}, {"second", 2}, {"always", 4}}));

  // 5: second's earlier outputs deleted (every copy): second misses.
  std::error_code error;
  for (const fs::directory_entry& run :
       fs::directory_iterator(dir_.path() / ".tierflow" / "runs")) {
    fs::remove(run.path() / "artifacts" / "second" / "out", error);
  }
  absl::StatusOr<RunResult> run5 = Run();
  ASSERT_TRUE(run5.ok()) << run5.status();
  ASSERT_EQ(run5->state, RunState::kSucceeded);
  states = TaskStates(run5->run_id);
  EXPECT_EQ(states["first"], "cached");
  EXPECT_EQ(states["second"], "succeeded");
  EXPECT_EQ(executions(), (Counts{{"first", 3}, {"second", 3}, {"always", 5}}));

  // 6: use_cache = false: everything runs.
  EngineOptions no_cache = Options();
  no_cache.use_cache = false;
  absl::StatusOr<RunResult> run6 = RunWith(no_cache);
  ASSERT_TRUE(run6.ok()) << run6.status();
  EXPECT_EQ(run6->counts.cached, 0u);
  EXPECT_EQ(run6->counts.succeeded, 3u);
  EXPECT_EQ(executions(), (Counts{{"first", 4}, {"second", 4}, {"always", 6}}));
}

TEST_F(EngineTest, CachedOutputChangedInPlaceIsNoHit) {
  // Same size, different bytes: only the re-hash of the reused output can
  // tell; the task must run rather than reuse the changed content.
  WritePipeline(R"x(name: tamper
stages:
  make:
    env: {COUNTER: executions}
    run: echo make >> "$COUNTER"; printf original > "$TIERFLOW_OUTPUT_OUT"
    outputs: [out]
)x");
  absl::StatusOr<RunResult> run1 = Run();
  ASSERT_TRUE(run1.ok()) << run1.status();
  ASSERT_EQ(run1->state, RunState::kSucceeded);
  absl::StatusOr<RunResult> run2 = Run();
  ASSERT_TRUE(run2.ok()) << run2.status();
  ASSERT_EQ(TaskStates(run2->run_id)["make"], "cached") << "no hit to begin with";
  // Every copy replaced by a new file of the same size (never written
  // through the hard links).
  for (const fs::directory_entry& run :
       fs::directory_iterator(dir_.path() / ".tierflow" / "runs")) {
    const fs::path out = run.path() / "artifacts" / "make" / "out";
    fs::remove(out);
    WriteFile(out, "tampered");
  }
  absl::StatusOr<RunResult> run3 = Run();
  ASSERT_TRUE(run3.ok()) << run3.status();
  ASSERT_EQ(run3->state, RunState::kSucceeded);
  EXPECT_EQ(TaskStates(run3->run_id)["make"], "succeeded");
  EXPECT_EQ(ReadFile(RunDir(run3->run_id) / "artifacts" / "make" / "out"), "original");
  EXPECT_THAT(ReadLines(dir_ / "executions"), ElementsAre("make", "make"));
  std::vector<Row> attempts = Attempts(run3->run_id, "make");
  ASSERT_FALSE(attempts.empty());
  EXPECT_EQ(attempts.back()[1], "succeeded");
  EXPECT_EQ(
      QueryValue(Db(), "SELECT content_hash FROM artifacts WHERE run_id = '" + run3->run_id + "'"),
      QueryValue(Db(), "SELECT content_hash FROM artifacts WHERE run_id = '" + run1->run_id + "'"));
}

TEST_F(EngineTest, LineageEdgesForGather) {
  WritePipeline(R"x(name: lineage
stages:
  produce:
    foreach: {range: [0, 3]}
    run: printf '%s' "$TIERFLOW_ITEM" > "$TIERFLOW_OUTPUT_PART"
    outputs: [part]
  consume:
    inputs: {parts: produce.part}
    run: cat "$TIERFLOW_INPUT_PARTS"/0 "$TIERFLOW_INPUT_PARTS"/1 "$TIERFLOW_INPUT_PARTS"/2 > "$TIERFLOW_OUTPUT_ALL"
    outputs: [all]
)x");
  absl::StatusOr<RunResult> result = Run();
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->state, RunState::kSucceeded);
  const std::string run = result->run_id;
  EXPECT_EQ(ReadFile(RunDir(run) / "artifacts" / "consume" / "all"), "012");

  std::set<std::string> part_artifacts;
  for (const std::string item : {"0", "1", "2"}) {
    const std::string task = "produce[" + item + "]";
    const std::string attempt = AttemptId(run, task);
    std::vector<Row> produced =
        Query(Db(),
              "SELECT e.artifact_id, e.name, a.task_id FROM lineage_edges e JOIN artifacts "
              "a ON a.id = e.artifact_id WHERE e.direction = 'produced' AND e.attempt_id = " +
                  attempt);
    ASSERT_EQ(produced.size(), 1u) << task;
    EXPECT_EQ(produced[0][1], "part");
    EXPECT_EQ(produced[0][2], task);
    part_artifacts.insert(produced[0][0]);
    EXPECT_EQ(QueryValue(Db(),
                         "SELECT count(*) FROM lineage_edges WHERE direction = 'consumed' "
                         "AND attempt_id = " +
                             attempt),
              "0");
  }
  ASSERT_EQ(part_artifacts.size(), 3u);
  const std::string consumer = AttemptId(run, "consume");
  std::set<std::string> consumed;
  for (const Row& row : Query(Db(),
                              "SELECT artifact_id, name FROM lineage_edges WHERE direction "
                              "= 'consumed' AND attempt_id = " +
                                  consumer)) {
    consumed.insert(row[0]);
    EXPECT_EQ(row[1], "parts");
  }
  EXPECT_EQ(consumed, part_artifacts);
  EXPECT_EQ(QueryValue(Db(),
                       "SELECT count(*) FROM lineage_edges WHERE direction = 'consumed' AND "
                       "attempt_id = " +
                           consumer),
            "3");
  EXPECT_EQ(QueryValue(Db(),
                       "SELECT count(*) FROM lineage_edges WHERE direction = 'produced' AND "
                       "attempt_id = " +
                           consumer),
            "1");
}

TEST_F(EngineTest, SlotLimitIsRespected) {
  fs::create_directories(dir_.path() / "spans");
  WritePipeline(R"x(name: slots
stages:
  work:
    foreach: {range: [0, 6]}
    run: |
      date +%s%N > "spans/$TIERFLOW_ITEM.start"
      sleep 0.2
      date +%s%N > "spans/$TIERFLOW_ITEM.end"
)x");
  absl::StatusOr<RunResult> result = Run();  // slots: 2
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->state, RunState::kSucceeded);
  // What the tasks measured lies inside what the engine held a slot for.
  std::vector<std::pair<int64_t, int>> edges;  // time, +1 start / -1 end
  for (int i = 0; i < 6; ++i) {
    const std::string start = ReadFile(dir_.path() / "spans" / (std::to_string(i) + ".start"));
    const std::string end = ReadFile(dir_.path() / "spans" / (std::to_string(i) + ".end"));
    ASSERT_FALSE(start.empty() || end.empty()) << "task " << i << " did not record its span";
    edges.emplace_back(std::stoll(start), +1);
    edges.emplace_back(std::stoll(end), -1);
  }
  std::sort(edges.begin(), edges.end());  // at equal times, ends (-1) first
  int running = 0;
  int most = 0;
  for (const auto& [time, delta] : edges) {
    running += delta;
    most = std::max(most, running);
  }
  EXPECT_LE(most, 2) << "more tasks ran at once than slots";
  EXPECT_EQ(QueryValue(Db(), "SELECT slots FROM runs"), "2");
}

TEST_F(EngineTest, BadPipelineChangesNothing) {
  WritePipeline("name: bad\nstages:\n  a:\n    rn: [\"true\"]\n");
  absl::StatusOr<RunResult> result = Run();
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
  EXPECT_THAT(std::string(result.status().message()), HasSubstr(Pipeline() + ":4:5:"));
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("rn"));
  // No store was created (or, if one was, it holds no run).
  if (fs::exists(Db())) {
    EXPECT_EQ(QueryValue(Db(), "SELECT count(*) FROM runs"), "0");
  } else {
    EXPECT_FALSE(fs::exists(dir_.path() / ".tierflow" / "runs"));
  }
}

TEST_F(EngineTest, OneEngineDrivesTwoRunsInSequence) {
  // Nothing in engine.h limits an Engine to one run: a second Run on the
  // same object must start a fresh run, not inherit the first one's state.
  WritePipeline(R"x(name: twice
stages:
  a:
    run: echo a >> ran
  b:
    needs: [a]
    run: echo b >> ran
)x");
  std::shared_ptr<scheduler::Engine> engine = api::MakeEmbeddedEngine(Options());
  RunRequest request;
  request.file = Pipeline();
  auto run = [request](scheduler::Engine& e) { return e.Run(request); };
  absl::StatusOr<RunResult> first = Drive(engine, run);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->state, RunState::kSucceeded);
  // Both runs take milliseconds: a few seconds is a hang.
  absl::StatusOr<RunResult> second = Drive(engine, run, std::chrono::seconds(5));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_NE(second->run_id, first->run_id);
  EXPECT_EQ(second->state, RunState::kSucceeded);
  EXPECT_EQ(QueryValue(Db(), "SELECT group_concat(number) FROM attempts WHERE run_id = '" +
                                 second->run_id + "'"),
            "1,1");
}

TEST_F(EngineTest, LongestChainRunsFirstThenPlanOrder) {
  // One slot. x is first in the file but a heads the longest chain, so a
  // runs first, then b (chain of 2) before x; x and c tie, x is earlier in
  // plan order.
  WritePipeline(R"x(name: order
stages:
  x:
    run: echo x >> order
  a:
    run: echo a >> order
  b:
    needs: [a]
    run: echo b >> order
  c:
    needs: [b]
    run: echo c >> order
)x");
  EngineOptions options = Options();
  options.slots = 1;
  absl::StatusOr<RunResult> result = RunWith(options);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->state, RunState::kSucceeded);
  EXPECT_THAT(ReadLines(dir_ / "order"), ElementsAre("a", "b", "x", "c"));
}

TEST_F(EngineTest, MissingProgramFailsTaskNamingIt) {
  WritePipeline(R"x(name: noprogram
stages:
  a:
    run: [no-such-program-for-tierflow, --flag]
)x");
  absl::StatusOr<RunResult> result = Run();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->state, RunState::kFailed);
  ASSERT_EQ(result->failures.size(), 1u);
  EXPECT_THAT(result->failures[0].message, HasSubstr("no-such-program-for-tierflow"));
  std::vector<Row> attempts = Attempts(result->run_id, "a");
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0][1], "failed");
  EXPECT_NE(attempts[0][3], "NULL");
}

TEST_F(EngineTest, CheckpointDirExistsAndIsKeptAcrossRetries) {
  // docs/running.md: TIERFLOW_CHECKPOINT_DIR is "a folder kept across the
  // task's attempts"; the first attempt checkpoints and fails, the retry
  // finds the checkpoint.
  WritePipeline(R"x(name: checkpoints
stages:
  train:
    checkpoints: true
    retries: {limit: 1, backoff: 10ms}
    run: |
      if [ -d "$TIERFLOW_CHECKPOINT_DIR" ]; then echo yes; else echo no; fi >> dir_existed
      if [ -f "$TIERFLOW_CHECKPOINT_DIR/epoch-1" ]; then echo "$TIERFLOW_ATTEMPT" > resumed; exit 0; fi
      mkdir -p "$TIERFLOW_CHECKPOINT_DIR" && echo state > "$TIERFLOW_CHECKPOINT_DIR/epoch-1"
      exit 1
)x");
  absl::StatusOr<RunResult> result = Run();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->state, RunState::kSucceeded);
  EXPECT_EQ(ReadFile(dir_ / "resumed"), "2\n");
  EXPECT_THAT(ReadLines(dir_ / "dir_existed"), ElementsAre("yes", "yes"))
      << "the engine does not create TIERFLOW_CHECKPOINT_DIR before the first attempt";
  EXPECT_TRUE(fs::exists(RunDir(result->run_id) / "checkpoints" / "train" / "epoch-1"));
}

TEST_F(EngineTest, CancelDuringBackoffEndsRunAtOnce) {
  // The retry waits an hour; a cancel must not wait for it.
  WritePipeline(R"x(name: backoff
stages:
  flaky:
    run: exit 1
    retries: {limit: 3, backoff: 1h}
)x");
  RecordingObserver observer;
  auto [engine, result] = RunInBackground(observer);
  ASSERT_TRUE(observer.WaitForState("flaky", scheduler::TaskState::kRetrying));
  engine->Cancel();
  absl::StatusOr<RunResult> run = result.get();
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->state, RunState::kCancelled);
  EXPECT_EQ(TaskStates(run->run_id)["flaky"], "cancelled");
  EXPECT_EQ(Attempts(run->run_id, "flaky").size(), 1u);
}

TEST_F(EngineTest, ResumeOfFailedRunRerunsOnlyWhatDidNotSucceed) {
  WritePipeline(R"x(name: fix
stages:
  a:
    run: echo a >> ran; printf a > "$TIERFLOW_OUTPUT_OUT"
    outputs: [out]
  b:
    inputs: {in: a.out}
    run: echo b >> ran; [ -f fixed ] && cat "$TIERFLOW_INPUT_IN" > "$TIERFLOW_OUTPUT_OUT"
    outputs: [out]
  c:
    inputs: {in: b.out}
    run: echo c >> ran; cat "$TIERFLOW_INPUT_IN" > "$TIERFLOW_OUTPUT_OUT"
    outputs: [out]
)x");
  absl::StatusOr<RunResult> first = Run();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->state, RunState::kFailed);
  WriteFile(dir_ / "fixed", "");

  std::shared_ptr<scheduler::Engine> engine = api::MakeEmbeddedEngine(Options());
  const std::string run_id = first->run_id;
  absl::StatusOr<RunResult> resumed =
      Drive(engine, [run_id](scheduler::Engine& e) { return e.Resume(run_id); });
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->run_id, run_id);
  EXPECT_EQ(resumed->state, RunState::kSucceeded);
  EXPECT_THAT(ReadLines(dir_ / "ran"), ElementsAre("a", "b", "b", "c"));
  EXPECT_EQ(QueryValue(Db(),
                       "SELECT group_concat(task_id || ':' || number || ':' || state) FROM "
                       "(SELECT * FROM attempts ORDER BY task_id, number)"),
            "a:1:succeeded,b:1:failed,b:2:succeeded,c:1:succeeded");
  EXPECT_EQ(QueryValue(Db(), "SELECT state FROM runs"), "succeeded");
  EXPECT_EQ(ReadFile(RunDir(run_id) / "artifacts" / "c" / "out"), "a");
}

TEST_F(EngineTest, CachedTreeOutputIsLinkedAndRehashed) {
  WritePipeline(R"x(name: tree
stages:
  make:
    env: {COUNTER: executions}
    run: |
      echo make >> "$COUNTER"
      mkdir -p "$TIERFLOW_OUTPUT_TREE/deep/er"
      printf one > "$TIERFLOW_OUTPUT_TREE/one"
      printf two > "$TIERFLOW_OUTPUT_TREE/deep/er/two"
    outputs: [tree]
)x");
  absl::StatusOr<RunResult> run1 = Run();
  ASSERT_TRUE(run1.ok()) << run1.status();
  absl::StatusOr<RunResult> run2 = Run();
  ASSERT_TRUE(run2.ok()) << run2.status();
  ASSERT_EQ(run2->state, RunState::kSucceeded);
  EXPECT_EQ(TaskStates(run2->run_id)["make"], "cached");
  EXPECT_THAT(ReadLines(dir_ / "executions"), ElementsAre("make"));
  const fs::path tree = RunDir(run2->run_id) / "artifacts" / "make" / "tree";
  EXPECT_EQ(ReadFile(tree / "deep" / "er" / "two"), "two");
  absl::StatusOr<storage::ContentDigest> digest = storage::HashArtifact(tree.string());
  ASSERT_TRUE(digest.ok()) << digest.status();
  EXPECT_EQ(QueryValue(Db(), "SELECT group_concat(DISTINCT content_hash) FROM artifacts"),
            digest->hash);
  EXPECT_EQ(QueryValue(Db(), "SELECT files || ' ' || bytes FROM artifacts WHERE run_id = '" +
                                 run2->run_id + "'"),
            "2 6");
}

TEST_F(EngineTest, CancelRunNeverTakesALiveEngineForDead) {
  // An engine drives the run (it holds runs/RUN/lock) from a process not
  // named tierflow* (this test). scheduler::CancelRun must not decide that
  // nobody drives the run and write the run's end itself while the engine
  // goes on writing it.
  WritePipeline(R"x(name: embedded
stages:
  long:
    run: echo $$ > long.pid; exec sleep 300
)x");
  RecordingObserver observer;
  auto [engine, result] = RunInBackground(observer);
  ASSERT_TRUE(observer.WaitForState("long", scheduler::TaskState::kRunning));
  ASSERT_TRUE(WaitFor([&] { return ReadPid(dir_ / "long.pid") > 0; }));
  const std::string run_id = QueryValue(Db(), "SELECT id FROM runs");
  // The task's start is committed with the next turn, or at the latest
  // shortly after its launch: nothing else happens here, so only that
  // deadline can record its pid while it runs.
  const std::string pid = std::to_string(ReadPid(dir_ / "long.pid"));
  EXPECT_TRUE(WaitFor([&] { return QueryValue(Db(), "SELECT pid FROM attempts") == pid; }))
      << "the attempt's pid is " << QueryValue(Db(), "SELECT pid FROM attempts")
      << " while its process " << pid << " runs";

  absl::StatusOr<std::string> cancel = scheduler::CancelRun(Db(), run_id);
  if (cancel.ok()) {
    EXPECT_THAT(*cancel, ::testing::Not(HasSubstr("no live engine")))
        << "CancelRun took the live engine for dead";
  }
  engine->Cancel();
  absl::StatusOr<RunResult> run = result.get();
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->state, RunState::kCancelled) << "the run's end was written by two parties";
  EXPECT_EQ(QueryValue(Db(), "SELECT state FROM runs"), scheduler::RunStateName(run->state));
  EXPECT_EQ(QueryValue(Db(), "SELECT group_concat(state) FROM attempts"), "cancelled");
}

TEST_F(EngineTest, LogsKeepAllOutputAndSilentAttemptsMakeNoFile) {
  // loud writes far more than a pipe holds, on stdout and stderr; quiet
  // writes nothing; escape leaves a process in a session of its own that
  // keeps the output pipe open: its task must still end when its shell does.
  WritePipeline(R"x(name: logs
stages:
  loud:
    run: head -c 300000 /dev/zero | tr '\0' a; echo; echo to-stderr >&2
  quiet:
    run: ["true"]
  escape:
    run: setsid sh -c 'echo $$ > escaped.pid; exec sleep 300' & echo started; sleep 0.2
)x");
  absl::StatusOr<RunResult> result = Run();
  const pid_t escaped = ReadPid(dir_ / "escaped.pid");
  if (escaped > 0) ::kill(escaped, SIGKILL);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->state, RunState::kSucceeded);
  auto attempt = [&](const std::string& task) {
    return Query(Db(), "SELECT log_path, log_bytes FROM attempts WHERE task_id = '" + task + "'")
        .at(0);
  };
  const Row loud = attempt("loud");
  const std::string text = ReadFile(loud[0]);
  EXPECT_EQ(text.size(), 300000u + 1 + 10);
  EXPECT_EQ(text.find_first_not_of('a'), 300000u);
  EXPECT_EQ(text.substr(300000), "\nto-stderr\n");
  EXPECT_EQ(loud[1], std::to_string(text.size()));

  const Row quiet = attempt("quiet");
  EXPECT_EQ(quiet[1], "0");
  EXPECT_FALSE(fs::exists(quiet[0])) << "an attempt that wrote nothing left " << quiet[0];
  api::LogRequest request;
  request.db = Db();
  request.run = result->run_id;
  request.task = "quiet";
  std::ostringstream out, notes;
  EXPECT_TRUE(api::WriteLog(request, out, notes).ok());
  EXPECT_EQ(out.str(), "");
  EXPECT_THAT(notes.str(), HasSubstr("quiet attempt 1 wrote nothing"));

  const Row escape = attempt("escape");
  EXPECT_EQ(ReadFile(escape[0]), "started\n");
  EXPECT_EQ(escape[1], "8");
}

TEST_F(EngineTest, ResumeThatRerunsAProducerKeepsTheLineageOfBothAttempts) {
  // a succeeds, b fails; a's output is then deleted, so resume runs a again
  // (its second attempt writes other bytes). Lineage must still say what
  // each attempt produced and consumed: a produced edge points at an
  // artifact made by that attempt, with the hash of what it made.
  WritePipeline(R"x(name: rerun
stages:
  a:
    run: printf "made by attempt $TIERFLOW_ATTEMPT" > "$TIERFLOW_OUTPUT_OUT"
    outputs: [out]
  b:
    inputs: {in: a.out}
    run: cat "$TIERFLOW_INPUT_IN" >> consumed; echo >> consumed; [ -f fixed ]
)x");
  absl::StatusOr<RunResult> first = Run();
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->state, RunState::kFailed);
  const std::string run_id = first->run_id;
  const std::string first_hash = QueryValue(Db(), "SELECT content_hash FROM artifacts");
  fs::remove(RunDir(run_id) / "artifacts" / "a" / "out");
  WriteFile(dir_ / "fixed", "");

  std::shared_ptr<scheduler::Engine> engine = api::MakeEmbeddedEngine(Options());
  absl::StatusOr<RunResult> resumed =
      Drive(engine, [run_id](scheduler::Engine& e) { return e.Resume(run_id); });
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  ASSERT_EQ(resumed->state, RunState::kSucceeded);
  EXPECT_THAT(ReadLines(dir_ / "consumed"), ElementsAre("made by attempt 1", "made by attempt 2"));

  // Who produced what.
  for (const Row& edge :
       Query(Db(),
             "SELECT e.attempt_id, a.attempt_id, a.content_hash FROM lineage_edges e JOIN "
             "artifacts a ON a.id = e.artifact_id WHERE e.direction = 'produced'")) {
    EXPECT_EQ(edge[0], edge[1]) << "attempt " << edge[0]
                                << "'s produced edge points at an artifact made by attempt "
                                << edge[1];
  }
  // a's first attempt made the bytes b's first attempt read.
  EXPECT_EQ(QueryValue(Db(),
                       "SELECT a.content_hash FROM lineage_edges e JOIN artifacts a ON "
                       "a.id = e.artifact_id JOIN attempts t ON t.id = e.attempt_id WHERE "
                       "t.task_id = 'b' AND t.number = 1 AND e.direction = 'consumed'"),
            first_hash)
      << "b's first attempt is recorded as having read bytes that did not exist yet";
}

// Time on data, per attempt: what the task's helpers waited (appended to
// TIERFLOW_DATA_WAIT_FILE), and what its processes read and wrote
// (/proc/PID/io of the task, its children included).
TEST_F(EngineTest, RecordsWhatEachAttemptWaitedForDataAndWhatItReadAndWrote) {
  WritePipeline(R"x(name: wait
stages:
  make:
    run: 'head -c 3000000 /dev/zero > "$TIERFLOW_OUTPUT_DATA"'
    outputs: [data]
  use:
    inputs: {data: make.data}
    run: |
      cat "$TIERFLOW_INPUT_DATA" > /dev/null
      echo "0.25 data 0" >> "$TIERFLOW_DATA_WAIT_FILE"
      echo "0.5 data 1" >> "$TIERFLOW_DATA_WAIT_FILE"
)x");
  absl::StatusOr<RunResult> result = RunWith(Options());
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->state, RunState::kSucceeded);
  std::vector<Row> rows = Query(Db(),
                                "SELECT task_id, data_wait_ms, read_bytes, write_bytes, "
                                "input_wait_ms, reads_json FROM attempts WHERE run_id = '" +
                                    result->run_id + "' ORDER BY task_id");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0][0], "make");
  EXPECT_EQ(rows[0][1], "0");
  EXPECT_GE(std::stoll(rows[0][3]), 3000000);  // head wrote the output
  EXPECT_EQ(rows[0][5], "NULL");               // no inputs
  EXPECT_EQ(rows[1][0], "use");
  EXPECT_EQ(rows[1][1], "750");
  EXPECT_GE(std::stoll(rows[1][2]), 3000000);  // cat read the input
  EXPECT_EQ(rows[1][4], "0");
  EXPECT_EQ(rows[1][5], R"([{"bytes":3000000,"input":"data","tier":"local"}])");
}

}  // namespace
}  // namespace tierflow
