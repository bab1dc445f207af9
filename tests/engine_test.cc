// The run engine in process (api::MakeEmbeddedEngine: the scheduler's
// engine on the local worker pool) driving pipelines of real shell tasks:
// retries, timeouts, cancel, outputs, the task contract, slots and logs.
// Each test writes its pipeline into a temporary folder, keeps the store at
// TMP/.tierflow/tierflow.db, and checks both the returned RunResult and what
// the store recorded. Waits are bounded only to detect hangs. Backoffs and
// timeouts run on a FakeClock where the test moves time; one timeout test
// (TermIgnoringTaskIsKilledAfterGrace) keeps the system clock end to end.
// The cache, resume and lineage are in engine_lineage_test.cc.
#include "tests/engine/engine_fixture.h"

namespace tierflow::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

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
    params: [x]
    outputs: [dump]
  single:
    run: printf single > "$TIERFLOW_OUTPUT_ONE"
    outputs: [one]
  gather:
    inputs: {parts: fan.dump, one: single.one}
    params: all
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
  EXPECT_EQ(env.count("TIERFLOW_WITHHELD_PARAMS"), 1u);
  EXPECT_EQ(env["TIERFLOW_WITHHELD_PARAMS"], "") << "params: all withholds none";
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
    EXPECT_EQ(item_env.count("TIERFLOW_PARAM_REGIONS"), 0u) << "fan declares only x";
    EXPECT_EQ(item_env["TIERFLOW_WITHHELD_PARAMS"], "regions");
    EXPECT_EQ(item_env["TIERFLOW_OUTPUT_DUMP"].empty(), false);
  }
  // The output path ends in the output's name; what was written there is
  // the published artifact.
  EXPECT_EQ(fs::path(env["TIERFLOW_OUTPUT_RESULT"]).filename(), "result");
  EXPECT_EQ(ReadFile(RunDir(result->run_id) / "artifacts" / "gather" / "result"), "done");
  // The working folder is the pipeline file's.
  EXPECT_EQ(ReadFile(dir_ / "gather.pwd"), dir_.path().string() + "\n");
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

}  // namespace
}  // namespace tierflow::testing
