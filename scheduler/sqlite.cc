#include "scheduler/sqlite.h"

#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include "common/status.h"
#include "common/strings.h"

namespace tierflow::scheduler {

class Database::Checkpointer {
 public:
  Checkpointer(std::unique_ptr<Database> connection, int pages)
      : connection_(std::move(connection)), pages_(pages), thread_([this] { Run(); }) {}
  ~Checkpointer() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

  // sqlite3_wal_hook: called after each commit with the WAL's size.
  static int OnCommit(void* self, sqlite3*, const char*, int pages) {
    auto* checkpointer = static_cast<Checkpointer*>(self);
    if (pages >= checkpointer->pages_) {
      {
        std::lock_guard lock(checkpointer->mu_);
        checkpointer->requested_ = true;
      }
      checkpointer->cv_.notify_one();
    }
    return SQLITE_OK;
  }

 private:
  void Run() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return stop_ || requested_; });
      if (stop_) return;
      requested_ = false;
      lock.unlock();
      // A failure (busy, say) leaves the WAL longer; the next request retries.
      sqlite3_wal_checkpoint_v2(connection_->handle(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr,
                                nullptr);
      lock.lock();
    }
  }

  std::unique_ptr<Database> connection_;
  const int pages_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool requested_ = false;
  bool stop_ = false;
  std::thread thread_;  // last: starts once the rest is ready
};

Database::Database(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}

absl::Status Database::CheckpointInBackground(int pages) {
  TF_ASSIGN_OR_RETURN(std::unique_ptr<Database> connection, Open(path_));
  sqlite3_wal_hook(db_, nullptr, nullptr);  // no checkpoint may use the old one
  checkpointer_ = std::make_unique<Checkpointer>(std::move(connection), pages);
  // Replaces the automatic checkpoints, which run in the committing thread.
  sqlite3_wal_hook(db_, &Checkpointer::OnCommit, checkpointer_.get());
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Database>> Database::Open(const std::string& path, Mode mode) {
  int flags = SQLITE_OPEN_NOMUTEX;
  if (mode == Mode::kReadWrite) {
    flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    std::filesystem::path parent = std::filesystem::path(path).parent_path();
    std::error_code error;
    if (!parent.empty()) std::filesystem::create_directories(parent, error);
    if (error) {
      return absl::FailedPreconditionError(
          StrCat("cannot create the state folder ", parent.string(), ": ", error.message()));
    }
  } else {
    flags |= SQLITE_OPEN_READONLY;
    if (!std::filesystem::exists(path)) {
      return absl::NotFoundError(
          StrCat("no tierflow database at ", path, " (run a pipeline first, or pass --db PATH)"));
    }
  }
  sqlite3* handle = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &handle, flags, nullptr);
  std::unique_ptr<Database> db(new Database(handle, path));
  if (rc != SQLITE_OK) {
    return absl::FailedPreconditionError(
        StrCat("cannot open database ", path, ": ",
               handle != nullptr ? sqlite3_errmsg(handle) : sqlite3_errstr(rc)));
  }
  sqlite3_extended_result_codes(handle, 1);
  // Readers and the engine share the file: wait for a lock rather than fail.
  sqlite3_busy_timeout(handle,
                       static_cast<int>(std::min<int64_t>(10000, WriteRetryBudget().count() / 2)));
  if (mode == Mode::kReadWrite) {
    // WAL: readers never block the writer. synchronous=NORMAL: a commit
    // survives a crash or kill of the process (the WAL is in the OS page
    // cache); only a power loss can take the last commits, which FULL would
    // keep at one fsync per commit (TIERFLOW_SQLITE_SYNC=full).
    const char* sync = std::getenv("TIERFLOW_SQLITE_SYNC");
    // journal_size_limit: the WAL file is cut back to 64 MiB when a
    // checkpoint resets it, instead of keeping the largest size a busy
    // stretch gave it (a million-task run left hundreds of MiB).
    std::string pragmas =
        "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON; PRAGMA journal_size_limit=67108864;";
    pragmas += (sync != nullptr && std::string_view(sync) == "full") ? "PRAGMA synchronous=FULL;"
                                                                     : "PRAGMA synchronous=NORMAL;";
    if (absl::Status status = db->Execute(pragmas); !status.ok()) return status;
  } else {
    if (absl::Status status = db->Execute("PRAGMA foreign_keys=ON;"); !status.ok()) return status;
  }
  return db;
}

Database::~Database() {
  reused_.clear();  // finalized before the connection closes
  if (checkpointer_) sqlite3_wal_hook(db_, nullptr, nullptr);
  checkpointer_.reset();  // its connection closes before this one
  sqlite3_close_v2(db_);
}

absl::Status Database::Error(std::string_view what) const {
  int code = sqlite3_errcode(db_);
  std::string message = StrCat("database ", path_, ": ", what, ": ", sqlite3_errmsg(db_));
  if (code == SQLITE_BUSY_SNAPSHOT) {
    // Waiting cannot help: this connection's read snapshot is older than
    // the database's (a statement left on a row keeps it).
    return absl::InternalError(StrCat(message, " (this connection still reads an older snapshot)"));
  }
  switch (code & 0xff) {
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(StrCat(message, " (the disk holding it is full)"));
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(message);
    case SQLITE_CONSTRAINT:
      return absl::AlreadyExistsError(message);
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_CANTOPEN:
      return absl::PermissionDeniedError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::Status Database::Execute(std::string_view sql) {
  std::string text(sql);
  char* error = nullptr;
  if (sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    sqlite3_free(error);
    return Error(text.substr(0, text.find_first_of("(;\n")));
  }
  return absl::OkStatus();
}

std::chrono::milliseconds Database::WriteRetryBudget() {
  const char* text = std::getenv("TIERFLOW_DB_RETRY_SECONDS");
  char* end = nullptr;
  const double seconds = text != nullptr ? std::strtod(text, &end) : 0;
  if (text == nullptr || end == text || *end != '\0' || !(seconds > 0)) {
    return std::chrono::milliseconds(120000);
  }
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

namespace {

// Retries `step` while it fails Unavailable (busy, locked) and the budget
// lasts. Between tries: 250 ms doubling up to 5 s, of which the second half
// is jitter ("equal jitter"), so writers that were blocked together do not
// all come back at once.
absl::StatusOr<Database::WriteWait> RetryWhileBusy(const std::function<absl::Status()>& step,
                                                   const std::function<double()>& random) {
  using std::chrono::milliseconds;
  const auto start = std::chrono::steady_clock::now();
  const milliseconds budget = Database::WriteRetryBudget();
  Database::WriteWait wait;
  for (;; ++wait.tries) {
    absl::Status status = step();
    wait.waited =
        std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start);
    if (status.ok()) return wait;
    if (!absl::IsUnavailable(status)) return status;
    double base = 250.0 * std::pow(2.0, std::min(wait.tries - 1, 10));
    base = std::min(base, 5000.0);
    const milliseconds delay(static_cast<int64_t>(base / 2 + random() * base / 2));
    if (wait.waited + delay >= budget) {
      return absl::UnavailableError(StrCat(status.message(), " (tried ", wait.tries, " times over ",
                                           wait.waited.count() / 1000, " s)"));
    }
    std::this_thread::sleep_for(delay);
  }
}

}  // namespace

absl::StatusOr<Database::WriteWait> Database::BeginWrite(const std::function<double()>& random) {
  return RetryWhileBusy([this] { return Execute("BEGIN IMMEDIATE"); }, random);
}

absl::Status Database::CommitWrite(const std::function<double()>& random) {
  return RetryWhileBusy([this] { return Execute("COMMIT"); }, random).status();
}

absl::StatusOr<Transaction> Transaction::Begin(Database& db, Kind kind) {
  TF_RETURN_IF_ERROR(db.Execute(kind == Kind::kImmediate ? "BEGIN IMMEDIATE" : "BEGIN"));
  return Transaction(&db, nullptr);
}

absl::StatusOr<Transaction> Transaction::BeginWrite(Database& db, std::function<double()> random,
                                                    Database::WriteWait* wait) {
  TF_ASSIGN_OR_RETURN(Database::WriteWait waited, db.BeginWrite(random));
  if (wait != nullptr) *wait = waited;
  return Transaction(&db, std::move(random));
}

Transaction::Transaction(Transaction&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)), random_(std::move(other.random_)) {}

Transaction& Transaction::operator=(Transaction&& other) noexcept {
  if (this != &other) {
    Rollback();
    db_ = std::exchange(other.db_, nullptr);
    random_ = std::move(other.random_);
  }
  return *this;
}

Transaction::~Transaction() { Rollback(); }

absl::Status Transaction::Commit() {
  if (db_ == nullptr) return absl::FailedPreconditionError("the transaction is no longer open");
  absl::Status status = random_ ? db_->CommitWrite(random_) : db_->Execute("COMMIT");
  if (!status.ok()) {
    Rollback();
    return status;
  }
  db_ = nullptr;
  return absl::OkStatus();
}

void Transaction::Rollback() {
  if (db_ == nullptr) return;
  // Fails only when SQLite already rolled back (some I/O errors do): then
  // there is nothing left to undo.
  (void)std::exchange(db_, nullptr)->Execute("ROLLBACK");
}

absl::StatusOr<Statement> Database::Prepare(std::string_view sql) {
  sqlite3_stmt* statement = nullptr;
  if (sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                         &statement, nullptr) != SQLITE_OK) {
    return Error(StrCat("preparing '", sql.substr(0, 60), "'"));
  }
  return Statement(this, statement);
}

absl::StatusOr<ReusedStatement> Database::Reuse(std::string_view sql) {
  std::unique_ptr<Statement>& kept = reused_[std::string(sql)];
  if (kept == nullptr) {
    absl::StatusOr<Statement> prepared = Prepare(sql);
    if (!prepared.ok()) {
      reused_.erase(std::string(sql));
      return prepared.status();
    }
    kept = std::make_unique<Statement>(std::move(*prepared));
  }
  kept->Reset();
  return ReusedStatement(*kept);
}

int64_t Database::LastInsertId() const { return sqlite3_last_insert_rowid(db_); }
int Database::Changes() const { return sqlite3_changes(db_); }

Statement::Statement(Statement&& other) noexcept : db_(other.db_), statement_(other.statement_) {
  other.statement_ = nullptr;
}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(statement_);
    db_ = other.db_;
    statement_ = other.statement_;
    other.statement_ = nullptr;
  }
  return *this;
}

Statement::~Statement() { sqlite3_finalize(statement_); }

Statement& Statement::Bind(int index, int64_t value) {
  sqlite3_bind_int64(statement_, index, value);
  return *this;
}

Statement& Statement::Bind(int index, std::string_view value) {
  sqlite3_bind_text64(statement_, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  return *this;
}

Statement& Statement::Bind(int index, double value) {
  sqlite3_bind_double(statement_, index, value);
  return *this;
}

Statement& Statement::BindNull(int index) {
  sqlite3_bind_null(statement_, index);
  return *this;
}

absl::StatusOr<bool> Statement::Step() {
  int rc = sqlite3_step(statement_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  absl::Status error =
      db_->Error(StrCat("running '", std::string_view(sqlite3_sql(statement_)).substr(0, 60), "'"));
  sqlite3_reset(statement_);
  return error;
}

absl::Status Statement::Run() {
  absl::StatusOr<bool> row = Step();
  sqlite3_reset(statement_);
  return row.status();
}

void Statement::Reset() {
  sqlite3_reset(statement_);
  sqlite3_clear_bindings(statement_);
}

bool Statement::IsNull(int column) const {
  return sqlite3_column_type(statement_, column) == SQLITE_NULL;
}
int64_t Statement::Int(int column) const { return sqlite3_column_int64(statement_, column); }
double Statement::Double(int column) const { return sqlite3_column_double(statement_, column); }
std::string Statement::Text(int column) const {
  const unsigned char* text = sqlite3_column_text(statement_, column);
  if (text == nullptr) return "";
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<size_t>(sqlite3_column_bytes(statement_, column)));
}
std::optional<int64_t> Statement::OptionalInt(int column) const {
  if (IsNull(column)) return std::nullopt;
  return Int(column);
}

}  // namespace tierflow::scheduler
