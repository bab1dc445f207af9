// The real `tierflow` binary (TIERFLOW_BIN) driving runs as a separate
// process that the tests kill -9, cancel from another process, or interrupt
// with SIGINT; what survives is checked in the store (SQLite), on disk and
// in a journal every task appends to. Every process a test starts carries a
// marker variable in its environment, by which the test finds and kills
// whatever is left (by pid) when it ends.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/testing/child_process.h"
#include "scheduler/store.h"
#include "tests/engine/engine_testing.h"

namespace tierflow {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace tierflow::testing;  // NOLINT: the test helpers

constexpr auto kHangLimit = std::chrono::seconds(30);
constexpr int kTimedOut = -1000;

// One task script for every stage: journals "<task> <attempt>", then, for a
// stage with HOLD set, on its first attempt only, records its pid and sleeps
// long (the task the tests interrupt); then works a little and writes its
// output.
constexpr char kTaskScript[] = R"x(echo "$TIERFLOW_TASK_ID $TIERFLOW_ATTEMPT" >> journal
if [ -n "$HOLD" ] && [ "$TIERFLOW_ATTEMPT" = 1 ]; then
  echo $$ > held.pid
  sleep 60
fi
sleep 0.3
echo "$TIERFLOW_TASK_ID" > "$TIERFLOW_OUTPUT_OUT"
)x";

class CrashResumeTest : public ::testing::Test {
 protected:
  ~CrashResumeTest() override {
    // Whatever a test left running (engines, task groups), by pid.
    // The engines themselves are killed and reaped with children_.
    for (pid_t pid : ProcessesWithEnv(Marker())) ::kill(pid, SIGKILL);
  }

  std::string Marker() const { return "TIERFLOW_TEST_MARKER=" + dir_.path().string(); }
  std::string Pipeline() const { return dir_ / "pipeline.yaml"; }
  std::string Db() const { return dir_ / "state/tierflow.db"; }

  void WritePipeline(const std::string& yaml) {
    WriteFile(Pipeline(), yaml);
    WriteFile(dir_ / "task.sh", kTaskScript);
  }

  // Starts `tierflow ARGS` with stdout and stderr in files named `name`.out
  // and .err in the test folder. Returns its pid.
  pid_t Start(const std::string& name, const std::vector<std::string>& args) {
    absl::StatusOr<std::unique_ptr<ChildProcess>> child = ChildProcess::Start(
        {TIERFLOW_BIN, args, "", {Marker()}, {}, dir_ / (name + ".out"), dir_ / (name + ".err")});
    EXPECT_TRUE(child.ok()) << child.status();
    if (!child.ok()) return -1;
    const pid_t pid = (*child)->pid();
    children_[pid] = std::move(*child);
    return pid;
  }

  // Waits for `pid` to exit: its exit code, -SIGNAL when a signal killed
  // it, or kTimedOut (after killing it, failing the test) when it took
  // longer than `limit`.
  int Wait(pid_t pid, std::chrono::milliseconds limit = kHangLimit) {
    auto found = children_.find(pid);
    if (found == children_.end()) {
      ADD_FAILURE() << "no child process " << pid << " to wait for";
      return kTimedOut;
    }
    const ChildResult result = found->second->Wait(limit);
    children_.erase(found);
    if (result.timed_out) return kTimedOut;
    return result.signal != 0 ? -result.signal : result.exit_code;
  }

  struct Result {
    int exit_code;
    std::string out;
    std::string err;
  };
  Result RunToEnd(const std::string& name, const std::vector<std::string>& args) {
    int code = Wait(Start(name, args));
    return {code, ReadFile(dir_ / (name + ".out")), ReadFile(dir_ / (name + ".err"))};
  }

  std::string Sql(const std::string& sql) const { return QueryValue(Db(), sql); }

  // Waits until the store has a run and `sql` (about it) yields "1".
  bool WaitForStore(const std::string& sql) {
    return WaitFor([&] { return Sql(sql) == "1"; }, kHangLimit);
  }
  std::string RunId() const { return Sql("SELECT id FROM runs"); }

  // Starts `tierflow run` on the pipeline and waits until `task` runs its
  // held first attempt (its pid recorded). Returns the engine's pid.
  pid_t StartAndWaitForHeld(const std::string& task, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"run", Pipeline(), "--db", Db(), "--progress", "plain"};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_t engine = Start("run", args);
    EXPECT_TRUE(WaitForStore("SELECT count(*) FROM attempts WHERE task_id = '" + task +
                             "' AND state = 'running' AND pid IS NOT NULL"))
        << ReadFile(dir_ / "run.err");
    EXPECT_TRUE(WaitFor([&] { return ReadPid(dir_ / "held.pid") > 0; }, kHangLimit));
    return engine;
  }

  // A kill -9 of the engine, reaped.
  void KillNine(pid_t engine) {
    ::kill(engine, SIGKILL);
    EXPECT_EQ(Wait(engine), -SIGKILL);
  }

  // `pipeline` (kHeldAndWaiting) killed -9 while `hold` runs, with an
  // attempt of `after` in `state` as a dead engine leaves one it launched
  // without recording its start (`running`), or one reusing cached outputs
  // (`cached`, not finished).
  void KillWithAnAttemptOfAfter(const char* pipeline, const std::string& state) {
    WritePipeline(pipeline);
    KillNine(StartAndWaitForHeld("hold"));
    absl::StatusOr<std::unique_ptr<scheduler::Database>> db = scheduler::OpenStore(Db());
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)
                    ->Execute("UPDATE tasks SET state = 'running', attempts = 1 WHERE id = "
                              "'after'; INSERT INTO attempts(run_id, task_id, number, state, "
                              "command, started_at, log_path, worker) SELECT run_id, 'after', "
                              "1, '" +
                              state +
                              "', command, started_at, '', 'local' FROM "
                              "attempts WHERE task_id = 'hold'")
                    .ok());
  }

  std::map<std::string, int> JournalCounts() const {
    std::map<std::string, int> counts;
    for (const std::string& line : ReadLines(dir_ / "journal")) {
      ++counts[line.substr(0, line.find(' '))];
    }
    return counts;
  }

  TempDir dir_;
  std::map<pid_t, std::unique_ptr<ChildProcess>> children_;  // started, not yet waited for
};

// a -> {b, c} -> d -> {e, f} -> g -> h; c holds on its first attempt.
constexpr char kDiamond[] = R"x(name: crash
stages:
  a:
    run: [sh, task.sh]
    outputs: [out]
  b:
    inputs: {in: a.out}
    run: [sh, task.sh]
    outputs: [out]
  c:
    inputs: {in: a.out}
    env: {HOLD: "1"}
    run: [sh, task.sh]
    outputs: [out]
  d:
    inputs: {x: b.out, y: c.out}
    run: [sh, task.sh]
    outputs: [out]
  e:
    inputs: {in: d.out}
    run: [sh, task.sh]
    outputs: [out]
  f:
    inputs: {in: d.out}
    run: [sh, task.sh]
    outputs: [out]
  g:
    inputs: {x: e.out, y: f.out}
    run: [sh, task.sh]
    outputs: [out]
  h:
    inputs: {in: g.out}
    run: [sh, task.sh]
    outputs: [out]
)x";

TEST_F(CrashResumeTest, KillNineMidRunThenResumeFinishesWithoutRerunningSucceededTasks) {
  WritePipeline(kDiamond);
  pid_t engine = StartAndWaitForHeld("c", {"--slots", "2"});
  ASSERT_TRUE(WaitForStore("SELECT count(*) >= 2 FROM tasks WHERE state = 'succeeded'"));
  KillNine(engine);
  const std::string run = RunId();

  // The store as the kill left it.
  std::set<std::string> done_before;
  for (const Row& row : Query(Db(), "SELECT id FROM tasks WHERE state = 'succeeded'")) {
    done_before.insert(row[0]);
  }
  EXPECT_EQ(done_before, (std::set<std::string>{"a", "b"}));
  std::vector<Row> interrupted =
      Query(Db(), "SELECT id, task_id FROM attempts WHERE state = 'running'");
  ASSERT_EQ(interrupted.size(), 1u);
  EXPECT_EQ(interrupted[0][1], "c");
  EXPECT_EQ(Sql("SELECT state FROM runs"), "running");
  // Documented behaviour: a task runs in its own process group, so it
  // outlives its engine's kill -9; resume kills it.
  const pid_t held = ReadPid(dir_ / "held.pid");
  EXPECT_FALSE(ProcessGone(held)) << "the interrupted task died with its engine";

  // `last` names the newest run, this one.
  Result resume = RunToEnd("resume", {"resume", "last", "--db", Db()});
  ASSERT_EQ(resume.exit_code, 0) << resume.out << resume.err;
  EXPECT_THAT(resume.out, HasSubstr("resuming run " + run + ": 8 tasks, 2 already done"));
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(held); }, std::chrono::seconds(5)))
      << "resume left the old run's task (pid " << held << ") running";

  EXPECT_EQ(Sql("SELECT state || ' ' || (engine_pid IS NULL) FROM runs"), "succeeded 1");
  EXPECT_EQ(Sql("SELECT count(*) FROM tasks WHERE state = 'succeeded'"), "8");
  EXPECT_EQ(Sql("SELECT count(*) FROM (SELECT task_id FROM attempts WHERE state = 'succeeded' "
                "GROUP BY task_id HAVING count(*) = 1)"),
            "8")
      << "exactly one succeeded attempt per task";
  for (const std::string& task : done_before) {
    EXPECT_EQ(Sql("SELECT count(*) FROM attempts WHERE task_id = '" + task + "'"), "1") << task;
  }
  EXPECT_EQ(Sql("SELECT state FROM attempts WHERE id = " + interrupted[0][0]), "lost");
  EXPECT_EQ(Sql("SELECT group_concat(state || ':' || number) FROM (SELECT * FROM attempts WHERE "
                "task_id = 'c' ORDER BY number)"),
            "lost:1,succeeded:2");
  // Every artifact's home copy is on disk and is what was recorded.
  std::vector<Row> copies = Query(Db(),
                                  "SELECT a.task_id, c.uri FROM artifacts a JOIN "
                                  "artifact_copies c ON c.artifact_id = a.id");
  EXPECT_EQ(copies.size(), 8u);
  for (const Row& copy : copies) {
    EXPECT_EQ(ReadFile(copy[1]), copy[0] + "\n") << copy[1];
  }
  // The journal: no task that had succeeded ran again; c ran twice.
  std::map<std::string, int> journal = JournalCounts();
  for (const std::string& task : done_before) EXPECT_EQ(journal[task], 1) << task;
  EXPECT_EQ(journal["c"], 2);
  for (const std::string task : {"d", "e", "f", "g", "h"}) EXPECT_EQ(journal[task], 1) << task;
}

// make writes a tree of 3000 files on `fast`; its home is `bulk` (durable:
// each file fsynced), so the write-back takes a while, and the engine is
// killed during it.
TEST_F(CrashResumeTest, KillNineDuringAWriteBackThenResumeFinishesItWithoutRerunningTheProducer) {
  WriteFile(Pipeline(), R"(name: writeback
stages:
  make:
    kind: ingest
    run: |
      echo "make $TIERFLOW_ATTEMPT" >> journal
      mkdir -p "$TIERFLOW_OUTPUT_TREE"
      i=0
      while [ $i -lt 3000 ]; do echo $i > "$TIERFLOW_OUTPUT_TREE/$i"; i=$((i + 1)); done
    outputs: {tree: 12KiB}
  use:
    inputs: {tree: make.tree}
    run: 'echo "use $TIERFLOW_ATTEMPT" >> journal; ls "$TIERFLOW_INPUT_TREE" | wc -l > "$TIERFLOW_OUTPUT_COUNT"'
    outputs: [count]
)");
  WriteFile(dir_ / "tiers.yaml", R"(tiers:
  fast:
    adapter: posix
    root: fast
    profile: {seq_read_mb_s: 2000, seq_write_mb_s: 2000, rand_read_iops: 100000, latency_us: 50}
  bulk:
    adapter: posix
    root: bulk
    scope: cluster
    durability: durable
    profile: {seq_read_mb_s: 100, seq_write_mb_s: 100, rand_read_iops: 100, latency_us: 20000}
)");
  pid_t engine = Start("run", {"run", Pipeline(), "--db", Db(), "--tiers", dir_ / "tiers.yaml",
                               "--progress", "plain"});
  ASSERT_TRUE(
      WaitForStore("SELECT count(*) FROM artifact_copies WHERE tier = 'bulk' AND state "
                   "= 'copying'"))
      << ReadFile(dir_ / "run.err");
  KillNine(engine);
  EXPECT_EQ(Sql("SELECT state FROM tasks WHERE id = 'make'"), "succeeded");
  EXPECT_EQ(Sql("SELECT state FROM runs"), "running");

  Result resume = RunToEnd("resume", {"resume", "last", "--db", Db()});
  ASSERT_EQ(resume.exit_code, 0) << resume.out << resume.err;
  EXPECT_EQ(Sql("SELECT state FROM runs"), "succeeded");
  // make ran once: its output, safe on fast, was only written back again.
  EXPECT_EQ(JournalCounts()["make"], 1);
  EXPECT_EQ(Sql("SELECT count(*) FROM attempts WHERE task_id = 'make'"), "1");
  EXPECT_EQ(Sql("SELECT group_concat(state || ':' || coalesce(message, ''), ' | ') FROM (SELECT "
                "* FROM artifact_copies WHERE tier = 'bulk' ORDER BY id)"),
            "failed:the engine stopped during this copy | present:" +
                Sql("SELECT message FROM artifact_copies WHERE tier = 'bulk' AND state = "
                    "'present'"));
  const std::string run = RunId();
  const fs::path tree = dir_.path() / "bulk" / "runs" / run / "artifacts" / "make" / "tree";
  EXPECT_EQ(std::distance(fs::directory_iterator(tree), fs::directory_iterator()), 3000);
  EXPECT_EQ(ReadFile(tree / "2999"), "2999\n");
  // use read it where it was written; that copy went once the home was whole.
  EXPECT_EQ(ReadFile(dir_.path() / "fast" / "runs" / run / "artifacts" / "use" / "count"),
            "3000\n");
  EXPECT_EQ(Sql("SELECT state FROM artifact_copies WHERE tier = 'fast' AND artifact_id = (SELECT "
                "id FROM artifacts WHERE task_id = 'make')"),
            "evicted");
  EXPECT_FALSE(fs::exists(dir_.path() / "fast" / "runs" / run / "artifacts" / "make" / "tree"));
}

TEST_F(CrashResumeTest, RunResumeFlagFinishesKilledRunAndSucceededRunCannotResume) {
  WritePipeline(R"x(name: small
stages:
  a:
    run: [sh, task.sh]
    outputs: [out]
  b:
    inputs: {in: a.out}
    env: {HOLD: "1"}
    run: [sh, task.sh]
    outputs: [out]
)x");
  KillNine(StartAndWaitForHeld("b"));
  const std::string run = RunId();

  Result resume = RunToEnd("resume", {"run", "--resume", run, "--db", Db()});
  ASSERT_EQ(resume.exit_code, 0) << resume.out << resume.err;
  EXPECT_EQ(Sql("SELECT state FROM runs"), "succeeded");
  EXPECT_EQ(Sql("SELECT count(*) FROM attempts WHERE task_id = 'a'"), "1");
  EXPECT_EQ(Sql("SELECT group_concat(state) FROM (SELECT state FROM attempts WHERE task_id = 'b' "
                "ORDER BY number)"),
            "lost,succeeded");
  EXPECT_THAT(ReadLines(dir_ / "journal"), ElementsAre("a 1", "b 1", "b 2"));

  Result again = RunToEnd("again", {"resume", run, "--db", Db()});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.err, HasSubstr("already succeeded"));
  EXPECT_THAT(ReadLines(dir_ / "journal"), ElementsAre("a 1", "b 1", "b 2"));
}

// One task held long, one waiting for it.
constexpr char kHeldAndWaiting[] = R"x(name: live
stages:
  hold:
    env: {HOLD: "1"}
    run: [sh, task.sh]
    outputs: [out]
  after:
    inputs: {in: hold.out}
    run: [sh, task.sh]
    outputs: [out]
)x";

TEST_F(CrashResumeTest, SecondEngineOnSameRunIsRefused) {
  WritePipeline(kHeldAndWaiting);
  pid_t engine = StartAndWaitForHeld("hold");
  const std::string run = RunId();

  Result second = RunToEnd("second", {"resume", run, "--db", Db()});
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_THAT(second.err, HasSubstr("runs/" + run + "/lock is locked"));
  EXPECT_THAT(second.err, HasSubstr("another tierflow process"));
  // The live run was left alone: its task still runs, nothing was lost.
  EXPECT_FALSE(ProcessGone(ReadPid(dir_ / "held.pid")));
  EXPECT_EQ(Sql("SELECT group_concat(state) FROM attempts"), "running");
  EXPECT_EQ(Sql("SELECT engine_pid FROM runs"), std::to_string(engine));

  ::kill(engine, SIGTERM);
  EXPECT_EQ(Wait(engine), 130);
}

TEST_F(CrashResumeTest, CancelCommandStopsLiveRun) {
  WritePipeline(kHeldAndWaiting);
  pid_t engine = StartAndWaitForHeld("hold", {"--kill-grace", "1"});
  const std::string run = RunId();
  const pid_t held = ReadPid(dir_ / "held.pid");

  Result cancel = RunToEnd("cancel", {"cancel", run, "--db", Db()});
  EXPECT_EQ(cancel.exit_code, 0) << cancel.err;
  EXPECT_THAT(cancel.out, HasSubstr("cancel requested"));
  EXPECT_EQ(Wait(engine), 130) << ReadFile(dir_ / "run.err");
  EXPECT_EQ(Sql("SELECT state || ' ' || cancel_requested || ' ' || (engine_pid IS NULL) FROM runs"),
            "cancelled 1 1");
  EXPECT_EQ(Sql("SELECT group_concat(id || '=' || state) FROM (SELECT * FROM tasks ORDER BY id)"),
            "after=cancelled,hold=cancelled");
  EXPECT_EQ(Sql("SELECT group_concat(state) FROM attempts"), "cancelled");
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(held); }, std::chrono::seconds(5)));
}

TEST_F(CrashResumeTest, CancelOfRunWhoseEngineWasKilledRecordsItCancelled) {
  WritePipeline(kHeldAndWaiting);
  KillNine(StartAndWaitForHeld("hold"));
  const std::string run = RunId();
  const pid_t held = ReadPid(dir_ / "held.pid");

  Result cancel = RunToEnd("cancel", {"cancel", run, "--db", Db()});
  EXPECT_EQ(cancel.exit_code, 0) << cancel.err;
  EXPECT_THAT(cancel.out, HasSubstr("no live engine"));
  EXPECT_EQ(Sql("SELECT state || ' ' || (engine_pid IS NULL) FROM runs"), "cancelled 1");
  EXPECT_EQ(Sql("SELECT group_concat(id || '=' || state) FROM (SELECT * FROM tasks ORDER BY id)"),
            "after=cancelled,hold=cancelled");
  EXPECT_EQ(Sql("SELECT group_concat(state) FROM attempts"), "lost");
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(held); }, std::chrono::seconds(5)))
      << "the dead engine's task (pid " << held << ") was not killed";
  // Cancelling it again is an error that says why.
  Result again = RunToEnd("again", {"cancel", run, "--db", Db()});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.err, HasSubstr("not running"));
  // A cancelled run can be finished.
  // `last` names the newest run, this one.
  Result resume = RunToEnd("resume", {"resume", "last", "--db", Db()});
  EXPECT_EQ(resume.exit_code, 0) << resume.out << resume.err;
  EXPECT_EQ(Sql("SELECT state FROM runs"), "succeeded");
  EXPECT_EQ(Sql("SELECT group_concat(task_id || ':' || number || ':' || state) FROM (SELECT * "
                "FROM attempts ORDER BY task_id, number)"),
            "after:1:succeeded,hold:1:lost,hold:2:succeeded");
}

// An attempt whose start was never recorded (no pid: queued for a worker,
// leased, or launched an instant before the engine died) is not `lost`
// "while this attempt ran": resume records it `not_started`, saying so.
// The store is edited by hand for that attempt: in embedded mode its window
// (launch to the recorded start) is too short to kill the engine in.
TEST_F(CrashResumeTest, ResumeRecordsAnAttemptThatNeverStartedAsNotStarted) {
  ASSERT_NO_FATAL_FAILURE(KillWithAnAttemptOfAfter(kHeldAndWaiting, "running"));
  Result resume = RunToEnd("resume", {"resume", "last", "--db", Db()});
  EXPECT_EQ(resume.exit_code, 0) << resume.out << resume.err;
  EXPECT_EQ(Sql("SELECT group_concat(task_id || ':' || number || ':' || state, ' ') FROM (SELECT "
                "* FROM attempts ORDER BY task_id, number)"),
            "after:1:not_started after:2:succeeded hold:1:lost hold:2:succeeded");
  EXPECT_EQ(Sql("SELECT message FROM attempts WHERE task_id = 'after' AND number = 1"),
            "the engine stopped before this attempt was recorded as started");
  EXPECT_EQ(Sql("SELECT message FROM attempts WHERE task_id = 'hold' AND number = 1"),
            "the engine stopped while this attempt ran");
  Result show = RunToEnd("show", {"show", "last", "--attempts", "--db", Db()});
  EXPECT_EQ(show.exit_code, 0) << show.err;
  EXPECT_THAT(show.out, HasSubstr("not_started"));
}

// A reuse of cached outputs cut off by the crash (recorded `cached` at its
// launch, never finished) is no success: resume records it lost, and the
// task has exactly one attempt that counts (found by the chaos campaign:
// two runs, the server killed while the second reused the first's outputs).
TEST_F(CrashResumeTest, ResumeEndsAReuseTheCrashCutOff) {
  ASSERT_NO_FATAL_FAILURE(KillWithAnAttemptOfAfter(kHeldAndWaiting, "cached"));
  Result resume = RunToEnd("resume", {"resume", "last", "--db", Db()});
  EXPECT_EQ(resume.exit_code, 0) << resume.out << resume.err;
  EXPECT_EQ(Sql("SELECT group_concat(task_id || ':' || number || ':' || state, ' ') FROM (SELECT "
                "* FROM attempts ORDER BY task_id, number)"),
            "after:1:lost after:2:succeeded hold:1:lost hold:2:succeeded");
  EXPECT_EQ(Sql("SELECT message FROM attempts WHERE task_id = 'after' AND number = 1"),
            "the engine stopped while this attempt reused cached outputs");
  EXPECT_EQ(Sql("SELECT count(*) FROM attempts WHERE finished_at IS NULL"), "0");
}

// A state no tierflow writes is refused where it is read, naming it.
TEST_F(CrashResumeTest, AnUnknownAttemptStateIsAnErrorNotAGuess) {
  WritePipeline(kHeldAndWaiting);
  KillNine(StartAndWaitForHeld("hold"));
  {
    absl::StatusOr<std::unique_ptr<scheduler::Database>> db = scheduler::OpenStore(Db());
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)->Execute("UPDATE attempts SET state = 'exploded'").ok());
  }
  Result show = RunToEnd("show", {"show", "last", "--db", Db()});
  EXPECT_EQ(show.exit_code, 1) << show.out;
  EXPECT_THAT(show.err, HasSubstr("attempt 1 of task hold in run " + RunId() +
                                  ": unknown attempt state 'exploded'"));
  // Kill what the dead engine left: the held task.
  Result cancel = RunToEnd("cancel", {"cancel", "last", "--db", Db()});
  EXPECT_EQ(cancel.exit_code, 0) << cancel.err;
}

TEST_F(CrashResumeTest, CancelOfDeadRunNeverSignalsAnotherRunsEngine) {
  // Run A's engine is killed; its recorded pid then belongs to another
  // tierflow process (pid reuse, simulated by writing B's engine pid into
  // A's row): B's engine, driving run B. `tierflow cancel A` must cancel A
  // and leave B alone. B is stopped meanwhile, so a SIGTERM sent to it stays
  // pending where the test can see it.
  WritePipeline(kHeldAndWaiting);
  KillNine(StartAndWaitForHeld("hold"));
  const std::string run_a = RunId();
  WriteFile(dir_ / "pipeline-b.yaml", R"x(name: other
stages:
  other:
    run: exec sleep 60
)x");
  pid_t engine_b =
      Start("run-b", {"run", dir_ / "pipeline-b.yaml", "--db", Db(), "--progress", "plain"});
  ASSERT_TRUE(
      WaitForStore("SELECT count(*) FROM attempts WHERE task_id = 'other' AND state = 'running'"));
  const std::string run_b = Sql("SELECT id FROM runs WHERE id != '" + run_a + "'");
  ASSERT_EQ(::kill(engine_b, SIGSTOP), 0);
  {
    absl::StatusOr<std::unique_ptr<scheduler::Database>> db = scheduler::OpenStore(Db());
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)
                    ->Execute("UPDATE runs SET engine_pid = " + std::to_string(engine_b) +
                              " WHERE id = '" + run_a + "'")
                    .ok());
  }

  Result cancel = RunToEnd("cancel", {"cancel", run_a, "--db", Db()});
  EXPECT_EQ(cancel.exit_code, 0) << cancel.err;
  EXPECT_EQ(Sql("SELECT state FROM runs WHERE id = '" + run_a + "'"), "cancelled") << cancel.out;
  // No SIGTERM (bit 15) pending for B's engine.
  std::string pending;
  for (const std::string& line : ReadLines("/proc/" + std::to_string(engine_b) + "/status")) {
    if (line.rfind("ShdPnd:", 0) == 0) pending = line.substr(7);
  }
  const unsigned long long mask = std::stoull(pending, nullptr, 16);
  EXPECT_EQ(mask & (1ull << (SIGTERM - 1)), 0u)
      << "`tierflow cancel " << run_a << "` sent SIGTERM to the engine of run " << run_b;

  // Let B go on; stop it with one SIGTERM (the stray one, if it is pending).
  ::kill(engine_b, SIGCONT);
  if ((mask & (1ull << (SIGTERM - 1))) == 0) ::kill(engine_b, SIGTERM);
  EXPECT_EQ(Wait(engine_b), 130);
}

TEST_F(CrashResumeTest, SigintOnceCancelsGracefully) {
  WritePipeline(kHeldAndWaiting);
  pid_t engine = StartAndWaitForHeld("hold", {"--kill-grace", "5"});
  const pid_t held = ReadPid(dir_ / "held.pid");
  ::kill(engine, SIGINT);
  EXPECT_EQ(Wait(engine), 130);
  EXPECT_THAT(ReadFile(dir_ / "run.err"), HasSubstr("cancelling"));
  EXPECT_EQ(Sql("SELECT state FROM runs"), "cancelled");
  EXPECT_EQ(Sql("SELECT group_concat(state) FROM attempts"), "cancelled");
  EXPECT_EQ(Sql("SELECT count(*) FROM tasks WHERE state = 'cancelled'"), "2");
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(held); }, std::chrono::seconds(5)));
}

TEST_F(CrashResumeTest, SigintTwiceExitsAtOnce) {
  // The task ignores TERM and the kill grace is a minute: only the second
  // SIGINT (KILL to every task, exit) ends the run before that.
  WritePipeline(R"x(name: stubborn
stages:
  hold:
    run: trap '' TERM; echo $$ > held.pid; sleep 60
)x");
  pid_t engine = StartAndWaitForHeld("hold", {"--kill-grace", "60"});
  const pid_t held = ReadPid(dir_ / "held.pid");
  ::kill(engine, SIGINT);
  // The first SIGINT reached the engine, which committed the cancel and
  // sent TERM, which the task ignores.
  ASSERT_TRUE(WaitForStore("SELECT cancel_requested FROM runs"));
  EXPECT_FALSE(ProcessGone(held));
  ::kill(engine, SIGINT);
  EXPECT_EQ(Wait(engine, std::chrono::seconds(10)), 130)
      << "the second SIGINT did not end tierflow promptly";
  EXPECT_THAT(ReadFile(dir_ / "run.err"), HasSubstr("killed every task"));
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(held); }, std::chrono::seconds(5)))
      << "the task (pid " << held << ") survived the second SIGINT";
  // The run can still be finished: its engine is gone, nothing was recorded
  // as finished that was not.
  EXPECT_EQ(Sql("SELECT state FROM runs"), "running");
}

// Dynamic fan-out: list writes three items; each item's first attempt
// holds (HOLD), so the engine is killed while expanded tasks run.
constexpr char kDynamic[] = R"x(name: dyncrash
stages:
  list:
    run: printf 'a\nb\nc\n' > "$TIERFLOW_OUTPUT_OUT"
    outputs: [out]
  process:
    foreach: {from: list.out}
    env: {HOLD: "1"}
    run: [sh, task.sh]
    outputs: [out]
  gather:
    inputs: {all: process.out}
    run: [sh, task.sh]
    outputs: [out]
)x";

TEST_F(CrashResumeTest, KillNineWhileExpandedTasksRunThenResumeRunsEachItemOnce) {
  WritePipeline(kDynamic);
  pid_t engine = StartAndWaitForHeld("process[a]", {"--slots", "4"});
  ASSERT_TRUE(
      WaitForStore("SELECT count(*) = 3 FROM attempts WHERE task_id LIKE 'process[%' AND "
                   "state = 'running' AND pid IS NOT NULL"));
  KillNine(engine);
  const std::string run = RunId();
  EXPECT_EQ(Sql("SELECT count(*) FROM tasks WHERE stage = 'process'"), "3");
  EXPECT_EQ(Sql("SELECT count(*) FROM events WHERE kind = 'stage_expanded'"), "1");
  // The list changes on disk: a resume must not read it again.
  ASSERT_EQ(Sql("SELECT count(*) FROM artifact_copies c JOIN artifacts a ON a.id = "
                "c.artifact_id WHERE a.task_id = 'list'"),
            "1");
  WriteFile(Sql("SELECT c.uri FROM artifact_copies c JOIN artifacts a ON a.id = c.artifact_id "
                "WHERE a.task_id = 'list'"),
            "x\ny\n");

  Result resume = RunToEnd("resume", {"resume", run, "--db", Db()});
  ASSERT_EQ(resume.exit_code, 0) << resume.out << resume.err;
  EXPECT_EQ(Sql("SELECT state FROM runs"), "succeeded");
  EXPECT_EQ(Sql("SELECT group_concat(id, ',') FROM (SELECT id FROM tasks ORDER BY id)"),
            "gather,list,process[a],process[b],process[c]")
      << "no task row lost, added or doubled";
  EXPECT_EQ(Sql("SELECT count(*) FROM tasks WHERE state = 'succeeded'"), "5");
  EXPECT_EQ(Sql("SELECT count(*) FROM (SELECT task_id FROM attempts WHERE state = 'succeeded' "
                "GROUP BY task_id HAVING count(*) = 1)"),
            "5")
      << "exactly one succeeded attempt per task";
  EXPECT_EQ(Sql("SELECT count(*) FROM attempts WHERE task_id = 'list'"), "1");
  EXPECT_EQ(Sql("SELECT count(*) FROM events WHERE kind = 'stage_expanded'"), "1")
      << "expanded once, not again on resume";
  const std::map<std::string, int> journal = JournalCounts();
  EXPECT_EQ(journal.at("process[a]"), 2);  // the held attempt, then its rerun
  EXPECT_EQ(journal.at("process[b]"), 2);
  EXPECT_EQ(journal.at("process[c]"), 2);
  EXPECT_EQ(journal.at("gather"), 1);
  EXPECT_EQ(journal.count("process[x]"), 0u);
}

}  // namespace
}  // namespace tierflow
