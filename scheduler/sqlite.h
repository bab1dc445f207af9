// A thin RAII layer over the SQLite C API: a connection, prepared
// statements with typed bind/column calls that turn SQLite errors into
// absl::Status naming the database file and the statement, and one
// transaction type (every BEGIN goes through Transaction). A Database is used by one thread
// at a time (the owner's); open a second Database for another thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "absl/status/statusor.h"

struct sqlite3;
struct sqlite3_stmt;

namespace tierflow::scheduler {

class Statement;
class ReusedStatement;

class Database {
 public:
  enum class Mode { kReadWrite, kReadOnly };

  // Opens (kReadWrite: creating it and its parent folders) the database at
  // `path` in WAL mode with foreign keys on and a busy timeout, so readers in
  // other processes (`tierflow show`) never block the engine.
  static absl::StatusOr<std::unique_ptr<Database>> Open(const std::string& path,
                                                        Mode mode = Mode::kReadWrite);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  const std::string& path() const { return path_; }
  sqlite3* handle() const { return db_; }

  // Runs one or more statements without results (DDL, pragmas). For
  // BEGIN/COMMIT use Transaction.
  absl::Status Execute(std::string_view sql);
  absl::StatusOr<Statement> Prepare(std::string_view sql);
  // The statement for `sql`, prepared on first use and kept for the
  // connection's life: for SQL run again and again (per task, per event),
  // where preparing costs more than running. It comes reset, bindings
  // cleared; the ReusedStatement resets it again when it goes, so a row it
  // was left on holds no read snapshot. One ReusedStatement of the same SQL
  // at a time (not reentrant).
  absl::StatusOr<ReusedStatement> Reuse(std::string_view sql);
  int64_t LastInsertId() const;
  // Rows changed by the last INSERT/UPDATE/DELETE.
  int Changes() const;

  // How a writer got the write lock (BeginWrite): tries, and the time spent.
  struct WriteWait {
    int tries = 1;
    std::chrono::milliseconds waited{0};
  };
  // BEGIN IMMEDIATE for the engine, which must not give up at the first
  // busy timeout: a write lock that another process holds (a long `sqlite3`
  // session, a backup) is waited out, each try waiting the busy timeout,
  // with capped exponential backoff and equal jitter (`random`, uniform in
  // [0, 1)) between tries, for up to WriteRetryBudget() in all. Any other
  // error (a full disk, an I/O error) returns at once. Unavailable once the
  // budget is spent, saying how long it tried.
  absl::StatusOr<WriteWait> BeginWrite(const std::function<double()>& random);
  // COMMIT, retried the same way while the database is busy.
  absl::Status CommitWrite(const std::function<double()>& random);
  // How long a writer keeps trying for the write lock: 120 s, or
  // $TIERFLOW_DB_RETRY_SECONDS. Each try waits at most the busy timeout:
  // 10 s, or half the budget if that is shorter.
  static std::chrono::milliseconds WriteRetryBudget();

  // An error for the last failed call, naming the database and `what`.
  absl::Status Error(std::string_view what) const;

  // For the one busy writer: WAL checkpoints (copying the log back into the
  // database, with its fsyncs) leave the committing thread for a thread and
  // connection of their own, started once a commit leaves the WAL at `pages`
  // or more. PASSIVE: they never block this writer or any reader.
  absl::Status CheckpointInBackground(int pages = 1000);

 private:
  class Checkpointer;
  Database(sqlite3* db, std::string path);
  sqlite3* db_;
  std::string path_;
  std::unique_ptr<Checkpointer> checkpointer_;
  std::unordered_map<std::string, std::unique_ptr<Statement>> reused_;  // Reuse()
};

// A prepared statement. Bind indices are 1-based as in SQLite; column
// indices 0-based. Reset() keeps the bindings' slots for the next use.
class Statement {
 public:
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  Statement& Bind(int index, int64_t value);
  Statement& Bind(int index, std::string_view value);
  Statement& Bind(int index, const char* value) { return Bind(index, std::string_view(value)); }
  Statement& Bind(int index, const std::string& value) {
    return Bind(index, std::string_view(value));
  }
  Statement& Bind(int index, double value);
  Statement& BindNull(int index);
  template <typename T>
  Statement& Bind(int index, const std::optional<T>& value) {
    return value ? Bind(index, *value) : BindNull(index);
  }

  // Advances: true when a row is available, false when done.
  absl::StatusOr<bool> Step();
  // Runs a statement that returns no rows to completion, then resets it.
  absl::Status Run();
  void Reset();

  bool IsNull(int column) const;
  int64_t Int(int column) const;
  double Double(int column) const;
  std::string Text(int column) const;
  std::optional<int64_t> OptionalInt(int column) const;

 private:
  friend class Database;
  Statement(const Database* db, sqlite3_stmt* statement) : db_(db), statement_(statement) {}
  const Database* db_;
  sqlite3_stmt* statement_;
};

// Database::Reuse's statement, reset when it goes.
class ReusedStatement {
 public:
  explicit ReusedStatement(Statement& statement) : statement_(&statement) {}
  ReusedStatement(ReusedStatement&& other) noexcept
      : statement_(std::exchange(other.statement_, nullptr)) {}
  ReusedStatement& operator=(ReusedStatement&&) = delete;
  ReusedStatement(const ReusedStatement&) = delete;
  ReusedStatement& operator=(const ReusedStatement&) = delete;
  ~ReusedStatement() {
    if (statement_ != nullptr) statement_->Reset();
  }
  Statement& operator*() const { return *statement_; }
  Statement* operator->() const { return statement_; }

 private:
  Statement* statement_;
};

// One transaction on a Database: begun by Begin or BeginWrite, rolled back
// when destroyed uncommitted (an early return, an error), so no caller
// writes BEGIN/ROLLBACK by hand and none leaves a transaction open. Moves,
// never copies; used by the thread that owns the Database.
class Transaction {
 public:
  enum class Kind {
    kDeferred,   // BEGIN: a read snapshot, the write lock on the first write
    kImmediate,  // BEGIN IMMEDIATE: the write lock now, or Unavailable
  };
  // One try: Unavailable (busy) when another connection holds the lock.
  static absl::StatusOr<Transaction> Begin(Database& db, Kind kind = Kind::kImmediate);
  // Database::BeginWrite's waiting (for the engine); Commit then retries
  // while busy (Database::CommitWrite). `wait`, if set, says how long the
  // lock took.
  static absl::StatusOr<Transaction> BeginWrite(Database& db, std::function<double()> random,
                                                Database::WriteWait* wait = nullptr);

  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&& other) noexcept;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();

  // COMMIT. On failure the transaction is rolled back (by the destructor,
  // or now by Rollback).
  absl::Status Commit();
  // ROLLBACK now; a no-op once committed or rolled back.
  void Rollback();
  bool open() const { return db_ != nullptr; }

 private:
  Transaction(Database* db, std::function<double()> random) : db_(db), random_(std::move(random)) {}
  Database* db_;                    // null once committed or rolled back
  std::function<double()> random_;  // set: COMMIT retries while busy
};

}  // namespace tierflow::scheduler
