// The run engine's cache, resume and lineage, in process on real shell
// tasks (the fixture: tests/engine/engine_fixture.h): hits and misses,
// outputs changed in place, gathered inputs' edges, a resume that reruns
// only what did not succeed, and what each attempt waited for and read.
#include "tests/engine/engine_fixture.h"

namespace tierflow::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

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
    params: [p]  # first.sh reads it: no reference in run
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
}  // namespace tierflow::testing
