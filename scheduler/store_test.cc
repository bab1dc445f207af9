#include "scheduler/store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

namespace tierflow::scheduler {
namespace {

std::string TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "tierflow-store.XXXXXX").string();
  return mkdtemp(pattern.data());
}

// Another connection holds the write lock past the busy timeout (1 s with
// a 2 s budget): BeginWrite tries again after a backoff and gets it once
// the holder lets go.
TEST(StoreTest, BeginWriteWaitsOutALockPastTheBusyTimeout) {
  setenv("TIERFLOW_DB_RETRY_SECONDS", "2", 1);
  std::string dir = TempDir();
  auto holder = Database::Open(dir + "/t.db");
  auto writer = Database::Open(dir + "/t.db");
  ASSERT_TRUE(holder.ok() && writer.ok());
  ASSERT_TRUE((*holder)->Execute("CREATE TABLE t(x)").ok());
  ASSERT_TRUE((*holder)->Execute("BEGIN IMMEDIATE").ok());
  std::thread release([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(1400));
    (void)(*holder)->Execute("COMMIT");
  });
  absl::StatusOr<Database::WriteWait> wait = (*writer)->BeginWrite([] { return 0.5; });
  release.join();
  ASSERT_TRUE(wait.ok()) << wait.status();
  EXPECT_GE(wait->tries, 2);
  EXPECT_GE(wait->waited, std::chrono::milliseconds(1300));
  EXPECT_TRUE((*writer)->Execute("INSERT INTO t VALUES (1)").ok());
  EXPECT_TRUE((*writer)->CommitWrite([] { return 0.5; }).ok());
  unsetenv("TIERFLOW_DB_RETRY_SECONDS");
  std::filesystem::remove_all(dir);
}

// Held past the whole budget: Unavailable, saying how long it tried.
TEST(StoreTest, BeginWriteGivesUpWhenTheBudgetIsSpent) {
  setenv("TIERFLOW_DB_RETRY_SECONDS", "1", 1);
  std::string dir = TempDir();
  auto holder = Database::Open(dir + "/t.db");
  auto writer = Database::Open(dir + "/t.db");
  ASSERT_TRUE(holder.ok() && writer.ok());
  ASSERT_TRUE((*holder)->Execute("BEGIN IMMEDIATE").ok());
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<Database::WriteWait> wait = (*writer)->BeginWrite([] { return 0.5; });
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(wait.ok());
  EXPECT_TRUE(absl::IsUnavailable(wait.status())) << wait.status();
  EXPECT_NE(wait.status().message().find("database is locked (tried "), std::string::npos)
      << wait.status();
  EXPECT_GE(took, std::chrono::milliseconds(900));
  EXPECT_LT(took, std::chrono::seconds(5));
  (void)(*holder)->Execute("ROLLBACK");
  unsetenv("TIERFLOW_DB_RETRY_SECONDS");
  std::filesystem::remove_all(dir);
}

int64_t CountRows(Database& db) {
  auto count = db.Prepare("SELECT count(*) FROM t");
  EXPECT_TRUE(count.ok() && count->Step().value_or(false));
  return count->Int(0);
}

// A transaction that goes out of scope uncommitted (an early return) is
// rolled back; a committed one stays; a second connection cannot begin an
// immediate one while the first is open.
TEST(StoreTest, TransactionRollsBackUnlessCommitted) {
  std::string dir = TempDir();
  auto db = Database::Open(dir + "/t.db");
  auto other = Database::Open(dir + "/t.db");
  ASSERT_TRUE(db.ok() && other.ok());
  ASSERT_TRUE((*db)->Execute("CREATE TABLE t(x); PRAGMA busy_timeout = 0").ok());
  ASSERT_TRUE((*other)->Execute("PRAGMA busy_timeout = 0").ok());
  {
    absl::StatusOr<Transaction> transaction = Transaction::Begin(**db);
    ASSERT_TRUE(transaction.ok()) << transaction.status();
    ASSERT_TRUE((*db)->Execute("INSERT INTO t VALUES (1)").ok());
    absl::StatusOr<Transaction> second = Transaction::Begin(**other);
    EXPECT_TRUE(absl::IsUnavailable(second.status())) << second.status();
  }
  EXPECT_EQ(CountRows(**db), 0);
  {
    absl::StatusOr<Transaction> transaction = Transaction::BeginWrite(**db, [] { return 0.5; });
    ASSERT_TRUE(transaction.ok()) << transaction.status();
    ASSERT_TRUE((*db)->Execute("INSERT INTO t VALUES (2)").ok());
    ASSERT_TRUE(transaction->Commit().ok());
    EXPECT_FALSE(transaction->open());
    EXPECT_FALSE(transaction->Commit().ok());  // once only
  }
  EXPECT_EQ(CountRows(**other), 1);
  std::filesystem::remove_all(dir);
}

// Every state word converts back to its state; anything else is an error
// naming the word, never a default.
TEST(StoreTest, StateWordsRoundTripAndUnknownWordsAreRejected) {
  for (TaskState state : {TaskState::kPending, TaskState::kQueued, TaskState::kRunning,
                          TaskState::kRetrying, TaskState::kSucceeded, TaskState::kCached,
                          TaskState::kFailed, TaskState::kUpstreamFailed, TaskState::kCancelled}) {
    EXPECT_EQ(ParseTaskState(TaskStateName(state)).value(), state);
  }
  for (RunState state :
       {RunState::kRunning, RunState::kSucceeded, RunState::kFailed, RunState::kCancelled}) {
    EXPECT_EQ(ParseRunState(RunStateName(state)).value(), state);
  }
  for (ArtifactCopyState state :
       {ArtifactCopyState::kCopying, ArtifactCopyState::kPresent, ArtifactCopyState::kEvicted,
        ArtifactCopyState::kReleased, ArtifactCopyState::kFailed, ArtifactCopyState::kMissing,
        ArtifactCopyState::kOverwritten}) {
    EXPECT_EQ(ParseCopyState(CopyStateName(state)).value(), state);
  }
  EXPECT_FALSE(ParseCopyState("archived").ok());
  absl::StatusOr<TaskState> unknown = ParseTaskState("paused");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().message(),
            "unknown task state 'paused' (a newer tierflow's?); the states are pending, queued, "
            "running, retrying, succeeded, cached, failed, upstream_failed, cancelled");
  EXPECT_FALSE(ParseRunState("").ok());
  EXPECT_FALSE(ParseAttemptState("Running").ok());
  EXPECT_TRUE(IsTerminal(TaskState::kUpstreamFailed));
  EXPECT_FALSE(IsTerminal(TaskState::kRetrying));
  EXPECT_TRUE(IsDone(TaskState::kCached));
}

// Failures print states as their words, not numbers.
TEST(StoreTest, StatesPrintAsTheirWords) {
  EXPECT_EQ(::testing::PrintToString(TaskState::kUpstreamFailed), "upstream_failed");
  EXPECT_EQ(::testing::PrintToString(RunState::kCancelled), "cancelled");
  EXPECT_EQ(::testing::PrintToString(AttemptState::kNotStarted), "not_started");
  EXPECT_EQ(::testing::PrintToString(ArtifactCopyState::kReleased), "released");
}

TEST(StoreTest, CreatesSchemaInWalModeAndReopens) {
  std::string dir = TempDir();
  std::string path = dir + "/nested/state/tierflow.db";
  {
    auto db = OpenStore(path);
    ASSERT_TRUE(db.ok()) << db.status();
    auto mode = (*db)->Prepare("PRAGMA journal_mode");
    ASSERT_TRUE(mode.ok());
    ASSERT_TRUE(*mode->Step());
    EXPECT_EQ(mode->Text(0), "wal");
    ASSERT_TRUE((*db)
                    ->Execute("INSERT INTO pipelines(name, yaml_hash, yaml, file, created_at) "
                              "VALUES ('p', 'h', 'name: p', '/p.yaml', 1)")
                    .ok());
  }
  auto again = OpenStore(path);
  ASSERT_TRUE(again.ok()) << again.status();
  auto count = (*again)->Prepare("SELECT count(*) FROM pipelines");
  ASSERT_TRUE(count.ok());
  ASSERT_TRUE(*count->Step());
  EXPECT_EQ(count->Int(0), 1);
  auto reader = OpenStoreReadOnly(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  std::filesystem::remove_all(dir);
}

TEST(StoreTest, RefusesNewerSchema) {
  std::string dir = TempDir();
  std::string path = dir + "/tierflow.db";
  {
    auto db = OpenStore(path);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Execute("PRAGMA user_version = 99").ok());
  }
  auto db = OpenStore(path);
  ASSERT_FALSE(db.ok());
  EXPECT_NE(db.status().message().find("schema version 99, newer than this tierflow"),
            std::string::npos)
      << db.status();
  std::filesystem::remove_all(dir);
}

TEST(StoreTest, ReadOnlyOpenOfMissingDatabaseNamesPath) {
  auto db = OpenStoreReadOnly("/nonexistent/tierflow.db");
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(db.status().message().find("/nonexistent/tierflow.db"), std::string::npos);
}

TEST(StoreTest, ConstraintViolationIsAnError) {
  std::string dir = TempDir();
  auto db = OpenStore(dir + "/tierflow.db");
  ASSERT_TRUE(db.ok());
  // attempts.run_id/task_id must name an existing task (foreign keys are on).
  absl::Status status = (*db)->Execute(
      "INSERT INTO attempts(run_id, task_id, number, state, worker, command, started_at, "
      "log_path) VALUES ('r', 't', 1, 'running', 'local', '{}', 1, '/l')");
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("FOREIGN KEY"), std::string::npos) << status;
  std::filesystem::remove_all(dir);
}

std::string QueryText(Database& db, const std::string& sql) {
  auto statement = db.Prepare(sql);
  if (!statement.ok()) return statement.status().ToString();
  auto row = statement->Step();
  if (!row.ok()) return row.status().ToString();
  return *row ? statement->Text(0) : "(no row)";
}

// A store schema 11 left (runs.executor, no options): opening it migrates
// it; the Slurm run keeps its executor and has no recorded options, so a
// resume takes any (scheduler/run_start.cc).
TEST(StoreTest, UpgradesSchemaElevenLeavingTheExecutorOptionsUnrecorded) {
  std::string dir = TempDir();
  std::string path = dir + "/tierflow.db";
  {
    auto db = Database::Open(path);
    ASSERT_TRUE(db.ok()) << db.status();
    for (int version = 1; version <= 11; ++version) {
      ASSERT_TRUE((*db)->Execute(SchemaMigration(version)).ok()) << version;
    }
    ASSERT_TRUE((*db)->Execute("PRAGMA user_version = 11").ok());
    ASSERT_TRUE((*db)
                    ->Execute(R"sql(
INSERT INTO pipelines VALUES (1, 'p', 'h', 'name: p', '/p.yaml', 1);
INSERT INTO runs(id, pipeline_id, pipeline_name, file, working_dir, params_json, state, slots,
                 created_at, executor) VALUES ('p-1', 1, 'p', '/p.yaml', '/', '{}', 'running', 1,
                 1, 'slurm');
)sql")
                    .ok());
  }
  auto db = OpenStore(path);
  ASSERT_TRUE(db.ok()) << db.status();
  EXPECT_EQ(QueryText(**db, "PRAGMA user_version"), std::to_string(kSchemaVersion));
  EXPECT_EQ(QueryText(**db,
                      "SELECT executor || ' ' || coalesce(executor_options, 'NULL') FROM runs "
                      "WHERE id = 'p-1'"),
            "slurm NULL");
  // 13: the command's own run time, unknown for attempts recorded before.
  EXPECT_EQ(QueryText(**db,
                      "SELECT count(*) FROM pragma_table_info('attempts') "
                      "WHERE name = 'ran_ms'"),
            "1");
  db->reset();
  std::filesystem::remove_all(dir);
}

TEST(StoreTest, UpgradesVersionOneKeepingLineageAndAllowsAnArtifactPerAttempt) {
  std::string dir = TempDir();
  std::string path = dir + "/tierflow.db";
  {
    // A store as tierflow with schema 1 left it: one run, one task whose
    // single attempt produced one artifact, with its copy and lineage edge.
    auto db = Database::Open(path);
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)->Execute(SchemaMigration(1)).ok());
    ASSERT_TRUE((*db)->Execute("PRAGMA user_version = 1").ok());
    ASSERT_TRUE((*db)
                    ->Execute(R"sql(
INSERT INTO pipelines VALUES (1, 'p', 'h', 'name: p', '/p.yaml', 1);
INSERT INTO runs(id, pipeline_id, pipeline_name, file, working_dir, params_json, state, slots,
                 created_at) VALUES ('p-1', 1, 'p', '/p.yaml', '/', '{}', 'failed', 1, 1);
INSERT INTO tasks(run_id, id, seq, stage, kind, layer, state) VALUES ('p-1', 'a', 0, 'a',
                  'generic', 0, 'succeeded');
INSERT INTO attempts(id, run_id, task_id, number, state, worker, command, started_at, log_path)
  VALUES (7, 'p-1', 'a', 1, 'succeeded', 'local', '{}', 1, '/l1'),
         (8, 'p-1', 'a', 2, 'succeeded', 'local', '{}', 2, '/l2');
INSERT INTO artifacts VALUES (42, 'p-1', 'a', 'out', 7, 'xxh3:1', 5, 1, 1);
INSERT INTO artifact_copies VALUES (1, 42, 'local', '/out', 'home', 5, 'xxh3:1', 'present', 1);
INSERT INTO lineage_edges VALUES (1, 7, 42, 'produced', 'out', 1);
)sql")
                    .ok());
    // Schema 1 kept one artifact per (run, task, output).
    EXPECT_FALSE((*db)
                     ->Execute("INSERT INTO artifacts VALUES (43, 'p-1', 'a', 'out', 8, 'xxh3:2', "
                               "6, 1, 2)")
                     .ok());
  }
  auto db = OpenStore(path);
  ASSERT_TRUE(db.ok()) << db.status();
  EXPECT_EQ(QueryText(**db, "PRAGMA user_version"), std::to_string(kSchemaVersion));
  EXPECT_EQ(QueryText(**db, "PRAGMA foreign_keys"), "1");
  EXPECT_EQ(QueryText(**db,
                      "SELECT a.id || ' ' || a.content_hash || ' ' || c.uri || ' ' || "
                      "e.attempt_id FROM artifacts a JOIN artifact_copies c ON c.artifact_id = "
                      "a.id JOIN lineage_edges e ON e.artifact_id = a.id"),
            "42 xxh3:1 /out 7");
  // Now the second attempt's output is a row of its own; the same attempt
  // still cannot record one output twice.
  EXPECT_TRUE(
      (*db)
          ->Execute("INSERT INTO artifacts VALUES (43, 'p-1', 'a', 'out', 8, 'xxh3:2', 6, 1, 2)")
          .ok());
  EXPECT_FALSE(
      (*db)
          ->Execute("INSERT INTO artifacts VALUES (44, 'p-1', 'a', 'out', 8, 'xxh3:3', 6, 1, 2)")
          .ok());
  // Foreign keys hold on the rebuilt table.
  EXPECT_FALSE(
      (*db)
          ->Execute("INSERT INTO artifact_copies VALUES (2, 999, 'local', '/x', 'home', 1, 'h', "
                    "'present', 1)")
          .ok());
  std::filesystem::remove_all(dir);
}

// The WAL header's checkpoint sequence number (SQLite file format, "WAL
// File Format": bytes 12-15, big-endian), which grows each time the WAL is
// restarted from its beginning after a complete checkpoint.
uint32_t WalCheckpointSequence(const std::string& wal) {
  std::ifstream in(wal, std::ios::binary);
  unsigned char header[16] = {};
  in.read(reinterpret_cast<char*>(header), sizeof header);
  return (uint32_t{header[12]} << 24) | (uint32_t{header[13]} << 16) | (uint32_t{header[14]} << 8) |
         uint32_t{header[15]};
}

TEST(StoreTest, BackgroundCheckpointsKeepTheWalShort) {
  // With automatic checkpoints replaced by the background thread, a writer
  // committing row after row (paced like a busy engine, a commit every half
  // millisecond) must still see its WAL checkpointed and reused: without
  // checkpoints these 1,000 commits leave a WAL of about 13 MB. After every
  // 100 commits the writer goes on committing until the WAL restarts (the
  // checkpointer has caught up; on a loaded machine that may take a while,
  // hence the wait, bounded only to detect a hang), so the bound below holds
  // however the two threads are scheduled.
  std::string dir = TempDir();
  std::string path = dir + "/tierflow.db";
  auto db = Database::Open(path);
  ASSERT_TRUE(db.ok()) << db.status();
  ASSERT_TRUE((*db)->CheckpointInBackground(/*pages=*/64).ok());
  ASSERT_TRUE((*db)->Execute("CREATE TABLE t (id INTEGER PRIMARY KEY, blob BLOB)").ok());
  auto insert = (*db)->Prepare("INSERT INTO t(blob) VALUES (zeroblob(4096))");
  ASSERT_TRUE(insert.ok());
  int64_t rows = 0;
  for (int batch = 0; batch < 10; ++batch) {
    for (int i = 0; i < 100; ++i, ++rows) {
      ASSERT_TRUE(insert->Run().ok());
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    const uint32_t before = WalCheckpointSequence(path + "-wal");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (WalCheckpointSequence(path + "-wal") == before) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the WAL never restarted";
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      ASSERT_TRUE(insert->Run().ok());
      ++rows;
    }
  }
  const auto wal = std::filesystem::file_size(path + "-wal");
  EXPECT_LT(wal, 6u << 20) << "the WAL grew to " << wal << " bytes";
  auto count = (*db)->Prepare("SELECT count(*) FROM t");
  ASSERT_TRUE(count.ok());
  ASSERT_TRUE(*count->Step());
  EXPECT_EQ(count->Int(0), rows);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tierflow::scheduler
