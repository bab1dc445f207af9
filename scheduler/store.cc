#include "scheduler/store.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <ostream>
#include <utility>
#include <vector>

#include "common/processes.h"
#include "common/status.h"
#include "common/strings.h"

namespace tierflow::scheduler {
namespace fs = std::filesystem;
namespace {

// Migration N brings the schema from version N-1 to N. Append only: a
// released migration is never edited.
constexpr std::string_view kMigrations[] = {
    // 1: the first schema.
    R"sql(
CREATE TABLE pipelines (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  yaml_hash TEXT NOT NULL UNIQUE,  -- XXH3-128 of the YAML text, hex
  yaml TEXT NOT NULL,
  file TEXT NOT NULL,              -- absolute path it was first read from
  created_at INTEGER NOT NULL
);
CREATE TABLE runs (
  id TEXT PRIMARY KEY,             -- "<pipeline>-<6 hex>"
  pipeline_id INTEGER NOT NULL REFERENCES pipelines(id),
  pipeline_name TEXT NOT NULL,
  file TEXT NOT NULL,              -- absolute path of the pipeline file
  working_dir TEXT NOT NULL,       -- the tasks' working directory
  params_json TEXT NOT NULL,       -- {"name": "value"}: the --param overrides
  state TEXT NOT NULL,
  slots INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  started_at INTEGER,
  finished_at INTEGER,
  engine_pid INTEGER,              -- the process driving it, while running
  engine_host TEXT,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  message TEXT NOT NULL DEFAULT ''
);
CREATE INDEX runs_by_created ON runs(created_at);
CREATE TABLE tasks (
  run_id TEXT NOT NULL REFERENCES runs(id),
  id TEXT NOT NULL,                -- "stage" or "stage[item]"
  seq INTEGER NOT NULL,            -- plan order: layer by layer
  stage TEXT NOT NULL,
  kind TEXT NOT NULL,
  item TEXT,
  item_index INTEGER NOT NULL DEFAULT 0,
  layer INTEGER NOT NULL,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  cache_key TEXT,
  started_at INTEGER,
  finished_at INTEGER,
  message TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (run_id, id)
) WITHOUT ROWID;
CREATE TABLE attempts (
  id INTEGER PRIMARY KEY,
  run_id TEXT NOT NULL,
  task_id TEXT NOT NULL,
  number INTEGER NOT NULL,         -- 1, 2, ... per task, across resumes
  state TEXT NOT NULL,
  worker TEXT NOT NULL,            -- "local" in embedded mode
  pid INTEGER,                     -- process group leader while running
  command TEXT NOT NULL,           -- JSON: {"argv": [...]} or {"shell": "..."}
  cache_key TEXT,
  cached_from INTEGER REFERENCES attempts(id),
  started_at INTEGER NOT NULL,
  finished_at INTEGER,
  exit_code INTEGER,
  signal INTEGER,
  message TEXT NOT NULL DEFAULT '',
  log_path TEXT NOT NULL,          -- stdout and stderr of the attempt
  UNIQUE (run_id, task_id, number),
  FOREIGN KEY (run_id, task_id) REFERENCES tasks(run_id, id)
);
CREATE INDEX attempts_by_cache_key ON attempts(cache_key);
CREATE TABLE artifacts (
  id INTEGER PRIMARY KEY,
  run_id TEXT NOT NULL,
  task_id TEXT NOT NULL,
  name TEXT NOT NULL,              -- the output name
  attempt_id INTEGER NOT NULL REFERENCES attempts(id),  -- the attempt that made it (or reused it)
  content_hash TEXT NOT NULL,      -- "xxh3:<32 hex>" over the file, or the tree
  bytes INTEGER NOT NULL,
  files INTEGER NOT NULL,          -- 1 for a file, the file count of a tree
  created_at INTEGER NOT NULL,
  UNIQUE (run_id, task_id, name)
);
CREATE INDEX artifacts_by_hash ON artifacts(content_hash);
CREATE TABLE artifact_copies (
  id INTEGER PRIMARY KEY,
  artifact_id INTEGER NOT NULL REFERENCES artifacts(id),
  tier TEXT NOT NULL,
  uri TEXT NOT NULL,               -- a path for posix tiers, s3://bucket/key for s3
  role TEXT NOT NULL,              -- home | working
  bytes INTEGER NOT NULL,
  content_hash TEXT NOT NULL,
  state TEXT NOT NULL,             -- present | evicted
  created_at INTEGER NOT NULL
);
CREATE INDEX copies_by_artifact ON artifact_copies(artifact_id);
CREATE TABLE lineage_edges (
  id INTEGER PRIMARY KEY,
  attempt_id INTEGER NOT NULL REFERENCES attempts(id),
  artifact_id INTEGER NOT NULL REFERENCES artifacts(id),
  direction TEXT NOT NULL CHECK (direction IN ('consumed', 'produced')),
  name TEXT NOT NULL,              -- the input or output name in the stage
  created_at INTEGER NOT NULL
);
CREATE INDEX lineage_by_artifact ON lineage_edges(artifact_id, direction);
CREATE INDEX lineage_by_attempt ON lineage_edges(attempt_id, direction);
CREATE TABLE events (
  id INTEGER PRIMARY KEY,
  run_id TEXT NOT NULL,
  task_id TEXT,
  attempt_id INTEGER,
  time INTEGER NOT NULL,
  kind TEXT NOT NULL,
  message TEXT NOT NULL
);
CREATE INDEX events_by_run ON events(run_id, id);
)sql",
    // 2: one artifact row per producing attempt (a task that runs again on
    // resume adds rows instead of overwriting the lineage of the first);
    // cache reuses found by the attempt they reused; log sizes.
    R"sql(
CREATE TABLE artifacts_v2 (
  id INTEGER PRIMARY KEY,
  run_id TEXT NOT NULL,
  task_id TEXT NOT NULL,
  name TEXT NOT NULL,              -- the output name
  attempt_id INTEGER NOT NULL REFERENCES attempts(id),  -- the attempt that made it (or reused it)
  content_hash TEXT NOT NULL,      -- "xxh3:<32 hex>" over the file, or the tree
  bytes INTEGER NOT NULL,
  files INTEGER NOT NULL,          -- 1 for a file, the file count of a tree
  created_at INTEGER NOT NULL,
  UNIQUE (attempt_id, name)
);
INSERT INTO artifacts_v2(id, run_id, task_id, name, attempt_id, content_hash, bytes, files,
                         created_at)
  SELECT id, run_id, task_id, name, attempt_id, content_hash, bytes, files, created_at
  FROM artifacts;
DROP TABLE artifacts;
ALTER TABLE artifacts_v2 RENAME TO artifacts;
CREATE INDEX artifacts_by_hash ON artifacts(content_hash);
CREATE INDEX artifacts_by_task ON artifacts(run_id, task_id, name, id);
-- Partial indexes: an attempt costs no index writes it does not need.
CREATE INDEX attempts_by_cached_from ON attempts(cached_from) WHERE cached_from IS NOT NULL;
DROP INDEX attempts_by_cache_key;
CREATE INDEX attempts_by_cache_key ON attempts(cache_key) WHERE state IN ('succeeded', 'cached');
-- Bytes the attempt wrote to its log; the file exists only when > 0. NULL:
-- not known (running, or recorded before this column).
ALTER TABLE attempts ADD COLUMN log_bytes INTEGER;
)sql",
    // 3: what `tierflow tiers probe` measured, one row per tier and probe.
    R"sql(
CREATE TABLE tier_profiles (
  id INTEGER PRIMARY KEY,
  tier TEXT NOT NULL,
  location TEXT NOT NULL,          -- the root or s3://bucket/prefix it measured
  measured_at INTEGER NOT NULL,
  seq_read_mb_s REAL NOT NULL,     -- MB = 10^6 bytes
  seq_write_mb_s REAL NOT NULL,
  rand_read_iops REAL NOT NULL,    -- 4 KiB reads, one at a time
  latency_us REAL NOT NULL,        -- one 4 KiB read, opening the object
  create_us REAL NOT NULL,         -- one 4 KiB object written and committed
  stat_us REAL NOT NULL,
  bytes_tested INTEGER NOT NULL,
  elapsed_ms INTEGER NOT NULL
);
CREATE INDEX tier_profiles_by_tier ON tier_profiles(tier, measured_at);
)sql",
    // 4: data movement between tiers. A run keeps the tiers it was placed on
    // (resume places it on the same ones); a copy is recorded before it is
    // made (state 'copying'), with where it came from and how it ended.
    R"sql(
ALTER TABLE runs ADD COLUMN tiers_json TEXT;  -- NULL: the engine's one implicit tier
ALTER TABLE artifact_copies ADD COLUMN source_tier TEXT;  -- NULL: written there by its task
ALTER TABLE artifact_copies ADD COLUMN finished_at INTEGER;  -- present, failed or evicted at
ALTER TABLE artifact_copies ADD COLUMN message TEXT;
CREATE INDEX copies_by_state ON artifact_copies(state) WHERE state = 'copying';
)sql",
    // 5: a run's priority (cluster mode), kept for a server that restarts.
    R"sql(
ALTER TABLE runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;  -- higher runs first
)sql",
    // 6: how an attempt spent its time on data. Before it started: waiting
    // for copies of its inputs (ms). While it ran: what its task helpers
    // waited for data (ms), the time its processes were seen blocked on
    // I/O (ms), and the bytes they read and wrote. Where it read its
    // inputs: [{"input", "tier", "bytes"}] (its working tiers).
    R"sql(
ALTER TABLE attempts ADD COLUMN input_wait_ms INTEGER;
ALTER TABLE attempts ADD COLUMN data_wait_ms INTEGER;
ALTER TABLE attempts ADD COLUMN io_wait_ms INTEGER;
ALTER TABLE attempts ADD COLUMN read_bytes INTEGER;
ALTER TABLE attempts ADD COLUMN write_bytes INTEGER;
ALTER TABLE attempts ADD COLUMN reads_json TEXT;
)sql",
    // 7: checkpoints a task committed under TIERFLOW_CHECKPOINT_DIR (a fast
    // tier), each flushed to a durable tier while the task ran, the last
    // `keep` of them kept; a retry starts from the latest one flushed.
    R"sql(
CREATE TABLE checkpoints (
  id INTEGER PRIMARY KEY,
  run_id TEXT NOT NULL,
  task_id TEXT NOT NULL,
  attempt_id INTEGER NOT NULL REFERENCES attempts(id),
  name TEXT NOT NULL,              -- its folder under TIERFLOW_CHECKPOINT_DIR (step-00000003)
  step INTEGER,                    -- from its commit marker, or its name
  local_uri TEXT NOT NULL,         -- where the task wrote it
  tier TEXT NOT NULL,              -- the durable tier it is flushed to
  uri TEXT NOT NULL,
  bytes INTEGER,
  files INTEGER,
  content_hash TEXT,               -- "xxh3:<32 hex>" over the folder, once flushed
  state TEXT NOT NULL,             -- flushing | present | failed | deleted
  committed_at INTEGER NOT NULL,   -- when the engine saw the commit marker
  flushed_at INTEGER,
  flush_ms INTEGER,
  message TEXT NOT NULL DEFAULT ''
);
CREATE INDEX checkpoints_by_task ON checkpoints(run_id, task_id, step);
)sql",
    // 8: cluster mode: which worker ran an attempt. A server issues each
    // worker an id when it registers (its cluster's id, its name, a random
    // part): `worker` keeps the name for people, `worker_id` tells apart
    // two workers of one name (two registrations, two clusters). A
    // cluster's id is made once per store by its server.
    R"sql(
ALTER TABLE attempts ADD COLUMN worker_id TEXT;  -- NULL: embedded mode, or not leased yet
CREATE TABLE cluster (
  id TEXT NOT NULL,                -- 16 hex, random
  created_at INTEGER NOT NULL
);
)sql",
    // 9: the placement decisions of a run, written once when it starts
    // (scheduler/placement_record.h): each output's home, each input's
    // working tier, each checkpointing stage's tiers, with the estimates in
    // detail_json and the reason; and one 'run' row that says the run
    // recorded them (a run without one predates this table). A decision
    // every task of a stage shares (a foreach's items) is one row, under the
    // stage. The key is the one lookup, a task's rows and its stage's, and
    // makes a repeated write harmless.
    R"sql(
CREATE TABLE placements (
  run_id TEXT NOT NULL REFERENCES runs(id),
  task_id TEXT NOT NULL,           -- the task, or its stage (shared, checkpoint); 'run': ''
  kind TEXT NOT NULL CHECK (kind IN ('run', 'output', 'input', 'checkpoint')),
  name TEXT NOT NULL,              -- the output or input name; '' for the others
  seq INTEGER NOT NULL,            -- the order the engine placed them in
  tier TEXT NOT NULL,              -- output: home; input: read from; checkpoint: written on
  detail_json TEXT NOT NULL,       -- the rest of the decision and its estimates
  reason TEXT NOT NULL,
  PRIMARY KEY (run_id, task_id, kind, name)
) WITHOUT ROWID;
)sql",
    // 10: the executor's durable name for an attempt (a Slurm job id),
    // recorded when the executor reports it (kSubmitted, kStarted): an
    // engine that resumes the run hands it back to the executor, which
    // re-attaches instead of running the attempt again (common/task.h).
    R"sql(
ALTER TABLE attempts ADD COLUMN handle TEXT;  -- NULL: none (local pool, workers)
)sql",
    // 11: the executor a run was started on (EngineOptions::executor,
    // "slurm"); a resume on another one is refused before anything changes,
    // because its attempts may still be running there.
    R"sql(
ALTER TABLE runs ADD COLUMN executor TEXT;  -- NULL: the local pool, or a server's workers
)sql",
    // 12: the executor's options a run was started with
    // (EngineOptions::executor_options: for Slurm, the JSON of its partition,
    // account, extra sbatch arguments and array throttle), so a resume or a
    // server restart submits as the run started; other options are refused.
    R"sql(
ALTER TABLE runs ADD COLUMN executor_options TEXT;  -- NULL: none recorded (schema 11's runs)
)sql",
    // 13: how long the command ran, as its executor measured it (the
    // report's own start and end): started_at and finished_at are when the
    // engine recorded them, which on Slurm includes the job's queueing and
    // the polling. The Slurm packing rule sizes jobs by it
    // (scheduler/stage_times.h).
    R"sql(
ALTER TABLE attempts ADD COLUMN ran_ms INTEGER;  -- NULL: nothing ran, or not measured
)sql",
    // 14: what each attempt's cache key was made of (CacheIngredients as
    // JSON), so that a later miss can say why (scheduler/cache_explain.h);
    // and the newest success of a task id, which that compares with.
    R"sql(
ALTER TABLE attempts ADD COLUMN cache_ingredients TEXT;  -- NULL: not looked up, or before 14
CREATE INDEX attempts_by_task_success ON attempts(task_id, finished_at)
  WHERE state IN ('succeeded', 'cached');
)sql",
    // 15: `tierflow gc` (scheduler/gc.h): a run whose data gc took keeps its
    // rows (lineage of what existed); this row says so. 'deleting' is
    // recorded, with its copies evicted, before anything is deleted; 'done'
    // once its data is gone, with the bytes freed per tier.
    R"sql(
CREATE TABLE gc_runs (
  run_id TEXT PRIMARY KEY REFERENCES runs(id),
  state TEXT NOT NULL CHECK (state IN ('deleting', 'done')),
  reason TEXT NOT NULL,            -- why gc took it (keep-last, older-than)
  started_at INTEGER NOT NULL,
  finished_at INTEGER,
  bytes_json TEXT                  -- {"tier": bytes freed}, once done
) WITHOUT ROWID;
)sql",
    // 16: OpenLineage events waiting for, or done with, delivery
    // (scheduler/lineage_outbox.h): written in the transaction of the state
    // change they describe, sent in seq order by the one sender that holds
    // the lease row.
    R"sql(
CREATE TABLE lineage_outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- the order of delivery
  run_id TEXT NOT NULL,
  attempt_id INTEGER,                     -- NULL: an event of the run
  event_type TEXT NOT NULL,               -- START, RUNNING, COMPLETE, FAIL, ABORT
  event_ms INTEGER NOT NULL,              -- the time the store recorded for the change
  body TEXT NOT NULL,                     -- the exact bytes sent
  state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'rejected')),
  tries INTEGER NOT NULL DEFAULT 0,
  next_try_at INTEGER NOT NULL DEFAULT 0,
  delivered_at INTEGER,
  answer TEXT                             -- the endpoint's answer to a rejection
);
CREATE INDEX lineage_outbox_pending ON lineage_outbox(seq) WHERE state = 'pending';
CREATE INDEX lineage_outbox_delivered ON lineage_outbox(delivered_at) WHERE state = 'delivered';
CREATE INDEX lineage_outbox_rejected ON lineage_outbox(seq) WHERE state = 'rejected';
CREATE TABLE lineage_sender_lease (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  owner TEXT NOT NULL,                    -- HOST:PID:RANDOM of the sending process
  expires_at INTEGER NOT NULL             -- renewed while it sends
);
)sql",
};
static_assert(std::size(kMigrations) == kSchemaVersion);

absl::StatusOr<int> UserVersion(Database& db) {
  TF_ASSIGN_OR_RETURN(Statement statement, db.Prepare("PRAGMA user_version"));
  TF_ASSIGN_OR_RETURN(bool row, statement.Step());
  return row ? static_cast<int>(statement.Int(0)) : 0;
}

absl::Status CheckVersion(const Database& db, int version) {
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(
        StrCat("database ", db.path(), " has schema version ", std::to_string(version),
               ", newer than this tierflow understands (", std::to_string(kSchemaVersion),
               "): use a newer tierflow"));
  }
  return absl::OkStatus();
}

}  // namespace

namespace {
constexpr std::pair<RunState, std::string_view> kRunStates[] = {
    {RunState::kRunning, run_state::kRunning},
    {RunState::kSucceeded, run_state::kSucceeded},
    {RunState::kFailed, run_state::kFailed},
    {RunState::kCancelled, run_state::kCancelled},
};
constexpr std::pair<TaskState, std::string_view> kTaskStates[] = {
    {TaskState::kPending, task_state::kPending},
    {TaskState::kQueued, task_state::kQueued},
    {TaskState::kRunning, task_state::kRunning},
    {TaskState::kRetrying, task_state::kRetrying},
    {TaskState::kSucceeded, task_state::kSucceeded},
    {TaskState::kCached, task_state::kCached},
    {TaskState::kFailed, task_state::kFailed},
    {TaskState::kUpstreamFailed, task_state::kUpstreamFailed},
    {TaskState::kCancelled, task_state::kCancelled},
};
constexpr std::pair<AttemptState, std::string_view> kAttemptStates[] = {
    {AttemptState::kRunning, attempt_state::kRunning},
    {AttemptState::kSucceeded, attempt_state::kSucceeded},
    {AttemptState::kFailed, attempt_state::kFailed},
    {AttemptState::kTimedOut, attempt_state::kTimedOut},
    {AttemptState::kCancelled, attempt_state::kCancelled},
    {AttemptState::kLost, attempt_state::kLost},
    {AttemptState::kNotStarted, attempt_state::kNotStarted},
    {AttemptState::kCached, attempt_state::kCached},
};
constexpr std::pair<ArtifactCopyState, std::string_view> kCopyStates[] = {
    {ArtifactCopyState::kCopying, copy_state::kCopying},
    {ArtifactCopyState::kPresent, copy_state::kPresent},
    {ArtifactCopyState::kEvicted, copy_state::kEvicted},
    {ArtifactCopyState::kReleased, copy_state::kReleased},
    {ArtifactCopyState::kFailed, copy_state::kFailed},
    {ArtifactCopyState::kMissing, copy_state::kMissing},
    {ArtifactCopyState::kOverwritten, copy_state::kOverwritten},
};

template <typename State, size_t N>
std::string_view NameOf(const std::pair<State, std::string_view> (&table)[N], State state) {
  for (const auto& [known, name] : table) {
    if (known == state) return name;
  }
  return "?";  // unreachable: every enumerator is in its table
}

template <typename State, size_t N>
absl::StatusOr<State> Parse(const std::pair<State, std::string_view> (&table)[N],
                            std::string_view what, std::string_view text) {
  std::string names;
  for (const auto& [state, name] : table) {
    if (name == text) return state;
    names += StrCat(names.empty() ? "" : ", ", name);
  }
  return absl::InvalidArgumentError(StrCat("unknown ", what, " state '", text,
                                           "' (a newer tierflow's?); the states are ", names));
}
}  // namespace

std::string_view RunStateName(RunState state) { return NameOf(kRunStates, state); }
absl::StatusOr<RunState> ParseRunState(std::string_view text) {
  return Parse(kRunStates, "run", text);
}
std::string_view TaskStateName(TaskState state) { return NameOf(kTaskStates, state); }
absl::StatusOr<TaskState> ParseTaskState(std::string_view text) {
  return Parse(kTaskStates, "task", text);
}
std::string_view AttemptStateName(AttemptState state) { return NameOf(kAttemptStates, state); }
absl::StatusOr<AttemptState> ParseAttemptState(std::string_view text) {
  return Parse(kAttemptStates, "attempt", text);
}
std::string_view CopyStateName(ArtifactCopyState state) { return NameOf(kCopyStates, state); }
absl::StatusOr<ArtifactCopyState> ParseCopyState(std::string_view text) {
  return Parse(kCopyStates, "copy", text);
}
std::ostream& operator<<(std::ostream& out, RunState state) { return out << RunStateName(state); }
std::ostream& operator<<(std::ostream& out, TaskState state) { return out << TaskStateName(state); }
std::ostream& operator<<(std::ostream& out, AttemptState state) {
  return out << AttemptStateName(state);
}
std::ostream& operator<<(std::ostream& out, ArtifactCopyState state) {
  return out << CopyStateName(state);
}

bool IsTerminal(TaskState state) {
  return IsDone(state) || state == TaskState::kFailed || state == TaskState::kUpstreamFailed ||
         state == TaskState::kCancelled;
}

std::string_view SchemaMigration(int version) { return kMigrations[version - 1]; }

namespace {

// Brings `db` from its user_version to kSchemaVersion.
absl::Status Migrate(Database& db) {
  // One transaction: IMMEDIATE so that two processes opening an old
  // database at once cannot both migrate it. Foreign keys are off while
  // tables are rebuilt (they cannot change inside a transaction) and checked
  // before the commit, as SQLite's ALTER TABLE documentation prescribes.
  TF_RETURN_IF_ERROR(db.Execute("PRAGMA foreign_keys=OFF"));
  absl::Status status = [&]() -> absl::Status {
    TF_ASSIGN_OR_RETURN(Transaction transaction, Transaction::Begin(db));
    TF_ASSIGN_OR_RETURN(int version, UserVersion(db));  // re-read under the lock
    TF_RETURN_IF_ERROR(CheckVersion(db, version));
    for (; version < kSchemaVersion; ++version) {
      TF_RETURN_IF_ERROR(db.Execute(kMigrations[version]));
      TF_RETURN_IF_ERROR(db.Execute(StrCat("PRAGMA user_version = ", std::to_string(version + 1))));
    }
    TF_ASSIGN_OR_RETURN(Statement check, db.Prepare("PRAGMA foreign_key_check"));
    TF_ASSIGN_OR_RETURN(bool violation, check.Step());
    if (violation) {
      return absl::DataLossError(StrCat("database ", db.path(), ": table ", check.Text(0),
                                        " breaks a foreign key after the upgrade to schema ",
                                        std::to_string(kSchemaVersion), "; nothing was changed"));
    }
    return transaction.Commit();
  }();
  TF_RETURN_IF_ERROR(db.Execute("PRAGMA foreign_keys=ON"));
  return status;
}

// A new database is made whole (WAL mode, every migration) under a name of
// this process's own beside `path`, then linked into place: link(2) fails
// with EEXIST when another process was first, and ours is dropped. So no
// process ever opens a database that another is still creating: two first
// runs at once used to fail the loser with "schema version 0" (a reader of
// the empty file) or "database is locked" (the switch to WAL).
absl::Status CreateStoreOnce(const std::string& path) {
  std::error_code error;
  if (fs::exists(path, error)) return absl::OkStatus();
  const std::string temp = StrCat(path, ".creating-", HostName(), "-", getpid());
  auto remove_temp = [&temp] {
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
      std::error_code ignored;
      fs::remove(temp + suffix, ignored);
    }
  };
  remove_temp();  // left by a process of the same pid that crashed here
  {
    TF_ASSIGN_OR_RETURN(std::unique_ptr<Database> db, Database::Open(temp));
    absl::Status status = Migrate(*db);
    if (!status.ok()) {
      db.reset();
      remove_temp();
      return status;
    }
  }  // closed: the last connection folds the WAL into the file and removes it
  const int linked = link(temp.c_str(), path.c_str());
  const int link_errno = errno;
  remove_temp();
  if (linked != 0 && link_errno != EEXIST) {
    return absl::FailedPreconditionError(StrCat("cannot create database ", path, ": link from ",
                                                temp, ": ", std::strerror(link_errno)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Database>> OpenStore(const std::string& path) {
  TF_RETURN_IF_ERROR(CreateStoreOnce(path));
  TF_ASSIGN_OR_RETURN(std::unique_ptr<Database> db, Database::Open(path));
  TF_ASSIGN_OR_RETURN(int version, UserVersion(*db));
  TF_RETURN_IF_ERROR(CheckVersion(*db, version));
  if (version == kSchemaVersion) return db;
  TF_RETURN_IF_ERROR(Migrate(*db));
  return db;
}

absl::StatusOr<std::unique_ptr<Database>> OpenStoreReadOnly(const std::string& path, int oldest) {
  TF_ASSIGN_OR_RETURN(std::unique_ptr<Database> db,
                      Database::Open(path, Database::Mode::kReadOnly));
  TF_ASSIGN_OR_RETURN(int version, UserVersion(*db));
  TF_RETURN_IF_ERROR(CheckVersion(*db, version));
  if (version == 0) {  // an empty file: no tierflow tables yet
    return absl::NotFoundError(StrCat("database ", path,
                                      " is empty (schema version 0: no tierflow tables yet); any ",
                                      "`tierflow run` on it creates them"));
  }
  if (version < std::min(oldest, kSchemaVersion)) {
    return absl::FailedPreconditionError(
        StrCat("database ", path, " has schema version ", std::to_string(version),
               "; run any `tierflow run` once to upgrade it to ", std::to_string(kSchemaVersion)));
  }
  return db;
}

std::string ResolveDatabasePath(const std::string& db_flag) {
  if (!db_flag.empty()) return db_flag;
  if (const char* env = std::getenv("TIERFLOW_DB"); env != nullptr && *env != '\0') return env;
  return (std::filesystem::path(kDefaultStateDir) / kDatabaseFile).string();
}

}  // namespace tierflow::scheduler
