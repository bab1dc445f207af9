// The state store: one SQLite database (WAL) holding pipelines, runs, tasks,
// attempts, artifacts, artifact copies, lineage edges, events and each
// run's placement decisions. The engine writes it (one writer); the CLI and
// the UI read it, from other processes too. Every state transition is
// committed before the engine acts on it, so a crash at any moment loses no
// finished work and no lineage.
//
// The schema (kSchemaVersion, migrations in store.cc) is the contract
// between the writer and every reader:
//
//   pipelines(id, name, yaml_hash UNIQUE, yaml, file, created_at)
//   runs(id TEXT PK, pipeline_id, pipeline_name, file, working_dir,
//        params_json, state, slots, created_at, started_at, finished_at,
//        engine_pid, engine_host, cancel_requested, message, tiers_json,
//        priority)
//   tasks(run_id, id, seq, stage, kind, item, item_index, layer, state,
//         attempts, cache_key, started_at, finished_at, message)
//   attempts(id PK, run_id, task_id, number, state, worker, pid, command,
//            cache_key, cached_from, started_at, finished_at, exit_code,
//            signal, message, log_path, log_bytes, input_wait_ms,
//            data_wait_ms, io_wait_ms, read_bytes, write_bytes, reads_json,
//            worker_id): the log file exists only once the attempt wrote
//            (log_bytes > 0)
//   artifacts(id PK, run_id, task_id, name, attempt_id, content_hash, bytes,
//             files, created_at): one row per output of each successful
//             attempt, UNIQUE(attempt_id, name); a task that ran again
//             (resume) has several per name, the newest (highest id) current
//   artifact_copies(id PK, artifact_id, tier, uri, role, bytes,
//                   content_hash, state, created_at, source_tier,
//                   finished_at, message): state present, or
//                   overwritten once a newer artifact took its uri
//   lineage_edges(id PK, attempt_id, artifact_id, direction, name, created_at)
//   events(id PK, run_id, task_id, attempt_id, time, kind, message)
//   tier_profiles(id PK, tier, location, measured_at, seq_read_mb_s,
//                 seq_write_mb_s, rand_read_iops, latency_us, create_us,
//                 stat_us, bytes_tested, elapsed_ms): `tierflow tiers probe`
//   checkpoints(id PK, run_id, task_id, attempt_id, name, step, local_uri,
//               tier, uri, bytes, files, content_hash, state, committed_at,
//               flushed_at, flush_ms, message)
//   cluster(id, created_at)
//   placements(run_id, task_id, kind, name, seq, tier, detail_json, reason;
//              PK run_id, task_id, kind, name): the run's placement
//              decisions, written at its start, one row for what a
//              stage's tasks share (placement_record.h)
//   gc_runs(run_id PK, state, reason, started_at, finished_at, bytes_json):
//              runs whose data `tierflow gc` took (scheduler/gc.h)
//
// Times are milliseconds since the Unix epoch (UTC). States are the words
// below, stored as text so that `sqlite3 .tierflow/tierflow.db` reads well.
#pragma once

#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "scheduler/sqlite.h"

namespace tierflow::scheduler {

inline constexpr int kSchemaVersion = 16;

// The SQL of migration `version` (1..kSchemaVersion), which brings the
// schema from version-1 to version. For upgrade tests.
std::string_view SchemaMigration(int version);

// The default state folder and database of embedded mode, relative to the
// working directory: `.tierflow/tierflow.db`.
inline constexpr std::string_view kDefaultStateDir = ".tierflow";
inline constexpr std::string_view kDatabaseFile = "tierflow.db";

// Run states: running -> succeeded | failed | cancelled. A run whose engine
// died stays `running` in the table until it is resumed; readers tell it
// apart by its engine_pid no longer being alive (RunEngineAlive).
enum class RunState { kRunning, kSucceeded, kFailed, kCancelled };
namespace run_state {
inline constexpr std::string_view kRunning = "running";
inline constexpr std::string_view kSucceeded = "succeeded";
inline constexpr std::string_view kFailed = "failed";
inline constexpr std::string_view kCancelled = "cancelled";
}  // namespace run_state

// Task states. pending: waiting for its parents; queued: ready, waiting for
// a slot; running; retrying: a failed attempt waits out its backoff;
// succeeded; cached: an earlier attempt's outputs were reused; failed (no
// retries left); upstream_failed: a task it depends on failed; cancelled.
enum class TaskState {
  kPending,
  kQueued,
  kRunning,
  kRetrying,
  kSucceeded,
  kCached,
  kFailed,
  kUpstreamFailed,
  kCancelled,
};
namespace task_state {
inline constexpr std::string_view kPending = "pending";
inline constexpr std::string_view kQueued = "queued";
inline constexpr std::string_view kRunning = "running";
inline constexpr std::string_view kRetrying = "retrying";
inline constexpr std::string_view kSucceeded = "succeeded";
inline constexpr std::string_view kCached = "cached";
inline constexpr std::string_view kFailed = "failed";
inline constexpr std::string_view kUpstreamFailed = "upstream_failed";
inline constexpr std::string_view kCancelled = "cancelled";
}  // namespace task_state

// Attempt states. running: launched (its process may not have started
// yet: the pid is recorded when it has); lost: it had started, and its
// engine or worker was lost while it ran; not_started: its engine stopped
// before its start was recorded (it was queued for a worker, leased, or
// launched an instant before), set on resume or cancel; cached: the attempt
// reused `cached_from`'s outputs.
enum class AttemptState {
  kRunning,
  kSucceeded,
  kFailed,
  kTimedOut,
  kCancelled,
  kLost,
  kNotStarted,
  kCached,
};
namespace attempt_state {
inline constexpr std::string_view kRunning = "running";
inline constexpr std::string_view kSucceeded = "succeeded";
inline constexpr std::string_view kFailed = "failed";
inline constexpr std::string_view kTimedOut = "timed_out";
inline constexpr std::string_view kCancelled = "cancelled";
inline constexpr std::string_view kLost = "lost";
inline constexpr std::string_view kNotStarted = "not_started";
inline constexpr std::string_view kCached = "cached";
}  // namespace attempt_state

// Artifact copy states (artifact_copies.state). copying: recorded before
// the copy is made; present; evicted: a working copy deleted once its last
// reader ended; released: a volatile home let go once its last reader
// ended (the artifact is recomputed when needed again); failed; missing:
// gone when the run resumed; overwritten: a newer artifact of the same
// output took its uri. (internal::CopyState is the engine's own view of a
// copy while it drives a run.)
enum class ArtifactCopyState {
  kCopying,
  kPresent,
  kEvicted,
  kReleased,
  kFailed,
  kMissing,
  kOverwritten,
};
namespace copy_state {
inline constexpr std::string_view kCopying = "copying";
inline constexpr std::string_view kPresent = "present";
inline constexpr std::string_view kEvicted = "evicted";
inline constexpr std::string_view kReleased = "released";
inline constexpr std::string_view kFailed = "failed";
inline constexpr std::string_view kMissing = "missing";
inline constexpr std::string_view kOverwritten = "overwritten";
}  // namespace copy_state

// The word stored for a state (runs.state, tasks.state, attempts.state,
// artifact_copies.state), and the one conversion back: InvalidArgument,
// naming the word and the known ones, for any other text (a database
// written by a newer tierflow, or edited by hand). Unknown text is never
// mapped to a default.
std::string_view RunStateName(RunState state);
absl::StatusOr<RunState> ParseRunState(std::string_view text);
std::string_view TaskStateName(TaskState state);
absl::StatusOr<TaskState> ParseTaskState(std::string_view text);
std::string_view AttemptStateName(AttemptState state);
absl::StatusOr<AttemptState> ParseAttemptState(std::string_view text);
std::string_view CopyStateName(ArtifactCopyState state);
absl::StatusOr<ArtifactCopyState> ParseCopyState(std::string_view text);
// Writes the word (for messages and gtest's failure output).
std::ostream& operator<<(std::ostream& out, RunState state);
std::ostream& operator<<(std::ostream& out, TaskState state);
std::ostream& operator<<(std::ostream& out, AttemptState state);
std::ostream& operator<<(std::ostream& out, ArtifactCopyState state);
// A task that will not run again in this run: succeeded, cached, failed,
// upstream_failed or cancelled. Done: succeeded or cached.
bool IsTerminal(TaskState state);
inline bool IsDone(TaskState state) {
  return state == TaskState::kSucceeded || state == TaskState::kCached;
}

// Opens the database at `path` and brings its schema to kSchemaVersion
// (creating it when new). A database written by a newer tierflow is refused
// with an error naming both versions.
absl::StatusOr<std::unique_ptr<Database>> OpenStore(const std::string& path);

// Opens an existing database for reading only (CLI inspection commands,
// the UI). NotFound, naming the path, when there is none or it is empty
// (schema 0). One older than `oldest` (schema version) is refused, saying
// how to upgrade it: a reader of tables that older versions have too may
// accept them.
absl::StatusOr<std::unique_ptr<Database>> OpenStoreReadOnly(const std::string& path,
                                                            int oldest = kSchemaVersion);

// The database path: `db_flag` if given, else $TIERFLOW_DB, else
// `.tierflow/tierflow.db` under the working directory.
std::string ResolveDatabasePath(const std::string& db_flag);

}  // namespace tierflow::scheduler
