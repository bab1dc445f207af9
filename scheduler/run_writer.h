// RunWriter: every write the engine makes to the store for the run it
// drives, behind named calls (tasks, attempts, artifacts and their copies,
// lineage edges, events, the run's row, checkpoints), on statements
// prepared once per run. Writes go inside a transaction that the caller
// holds (Begin, or BeginOnce for the run's first and resume writes), and
// nothing is acted on before Commit: see engine.h.
//
// Thread-safety: used only by the thread that runs the engine's turn
// (engine.h, "Threading"), which owns the Database.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "scheduler/lineage_outbox.h"
#include "scheduler/placement.h"
#include "scheduler/sqlite.h"
#include "scheduler/store.h"

namespace tierflow::scheduler {

// An attempt as it is launched.
struct AttemptStart {
  std::string task_id;
  uint32_t number = 0;
  AttemptState state = AttemptState::kRunning;  // or kCached: a reuse
  std::string command;                          // JSON: {"argv": [...]} or {"shell": ...}
  std::string cache_key;                        // "": none
  std::optional<int64_t> cached_from;           // a reuse: the attempt reused
  int64_t started_at = 0;
  std::string log_path;
  std::string worker;
  int64_t input_wait_ms = 0;
  std::optional<std::string> reads_json;
  std::optional<std::string> cache_ingredients;  // CacheIngredients JSON: what cache_key hashed
};

// An attempt's end, as its executor reported it.
struct AttemptEnd {
  int64_t attempt_id = 0;
  AttemptState state = AttemptState::kFailed;
  int64_t finished_at = 0;
  std::optional<int64_t> exit_code;
  std::optional<int64_t> signal;
  std::string message;
  std::optional<int64_t> log_bytes;
  std::optional<int64_t> pid;
  std::string worker;     // "": keep the recorded one
  std::string worker_id;  // "": keep the recorded one
  // What the command did on data; unset when nothing ran or it never said.
  std::optional<int64_t> data_wait_ms, io_wait_ms, read_bytes, write_bytes;
  // How long the command ran, by its executor's clock (attempts.ran_ms).
  std::optional<int64_t> ran_ms;
};

// A copy of an artifact on a tier (artifact_copies).
struct NewCopy {
  int64_t artifact_id = 0;
  std::string tier;
  std::string uri;
  bool home = false;  // role: home, else working
  uint64_t bytes = 0;
  std::string hash;
  std::string_view state;  // copying, present
  std::optional<std::string> source_tier;
};

// The run's row, as a new run records it.
struct NewRun {
  std::string pipeline_name;
  std::string file;
  std::string yaml;
  std::string working_dir;
  std::map<std::string, std::string> params;
  int64_t slots = 0;
  std::string tiers_json;  // "": the implicit tier (NULL)
  int priority = 0;
  std::string executor;          // EngineOptions::executor ("": NULL)
  std::string executor_options;  // EngineOptions::executor_options ("": NULL)
};

// A task row of a new run.
struct NewTask {
  std::string id;
  uint32_t seq = 0;
  std::string stage;
  std::string_view kind;
  std::optional<std::string> item;
  uint32_t item_index = 0;
  uint32_t layer = 0;
};

// A checkpoint whose flush to its durable tier begins.
struct NewCheckpoint {
  std::string task_id;
  int64_t attempt_id = 0;
  std::string name;
  std::optional<int64_t> step;
  std::string local_uri;
  std::string tier;
  std::string uri;
};

// A flush of a checkpoint cut off by a stopped engine.
struct CutOffFlush {
  std::string task_id;
  std::string name;
  int64_t attempt_id = 0;
};

class RunWriter {
 public:
  // `random` (uniform in [0, 1)) jitters the waits for the write lock.
  RunWriter(Database& db, std::function<double()> random) : db_(db), random_(std::move(random)) {}

  // Prepares the run's statements; `run_id` is the run every call writes.
  absl::Status Prepare(const std::string& run_id);
  const std::string& run_id() const { return run_id_; }

  // A turn's transaction: BEGIN IMMEDIATE, waiting out another process's
  // write lock (Database::BeginWrite); a wait past the busy timeout is
  // recorded as a database_busy event. Commit retries while busy.
  absl::StatusOr<Transaction> Begin();
  // One try for the write lock (a run's creation, a resume's set-up).
  absl::StatusOr<Transaction> BeginOnce();
  // COMMIT, timed for /metrics (sqlite_commit_seconds). With the outbox on,
  // the transaction's OpenLineage events are rendered and inserted first.
  absl::Status Commit(Transaction& transaction);

  // OpenLineage events for the run's and its attempts' state changes go to
  // the outbox (lineage_outbox.h) with each transaction that makes them:
  // only when an endpoint is configured (EngineOptions::lineage_outbox).
  void EnableOutbox(lineage::ExportSettings settings) { outbox_.emplace(std::move(settings)); }
  // Attempts a resume ended for the dead engine (EndInterruptedAttempts):
  // their end events.
  void QueueAttemptEnd(int64_t attempt_id, AttemptState state, int64_t at);

  // --- a new run (before Prepare: it makes the run id)
  // The pipeline's row (once per YAML text) and the run's: its id is
  // PIPELINE-XXXXXX, drawn again when taken.
  absl::StatusOr<std::string> CreateRun(const NewRun& run);
  absl::Status CreateTasks(const std::string& run_id, const std::vector<NewTask>& tasks);
  // What placement decided for the run (placement_record.h), with it.
  absl::Status RecordPlacement(const std::string& run_id, const Placement& placement,
                               const std::vector<CheckpointPlacement>& checkpoints);

  // --- the run's row
  // A resumed run is running again, driven by this process.
  absl::Status ResumeRun();
  absl::Status RequestCancel();
  absl::Status FinishRun(std::string_view state, const std::string& message);
  // The engine stopped driving the run (its store failed): says so, in a
  // transaction of its own, one try, best effort.
  void RecordStopped(const std::string& why);

  // --- tasks, attempts, lineage
  absl::Status AddEvent(const std::string& task_id, int64_t attempt_id, std::string_view kind,
                        const std::string& message);
  // started_at is set (if unset) for kRunning, finished_at for terminal states.
  absl::Status UpdateTask(const std::string& task_id, TaskState state, uint32_t attempts,
                          const std::string& cache_key, const std::string& message, int64_t now);
  absl::StatusOr<int64_t> StartAttempt(const AttemptStart& attempt);
  // Its process started: pid and worker, and how long its worker staged
  // its inputs before it could start.
  absl::Status AttemptStarted(int64_t attempt_id, int64_t pid, const std::string& worker,
                              const std::string& worker_id, int64_t staged_ms);
  absl::Status FinishAttempt(const AttemptEnd& end);
  // The executor's durable name for the attempt (TaskReport::handle).
  absl::Status RecordHandle(int64_t attempt_id, const std::string& handle);
  // The attempt waited `ms` more before it could start.
  absl::Status AddInputWait(int64_t attempt_id, int64_t ms);
  // A new artifact of `task_id`'s output `name`, made by `attempt_id`. The
  // copies of the output's earlier artifacts are overwritten (keys are the
  // same on every tier). Returns its id.
  absl::StatusOr<int64_t> RecordArtifact(const std::string& task_id, const std::string& name,
                                         int64_t attempt_id, const std::string& hash,
                                         uint64_t bytes, uint64_t files, int64_t now);
  // direction: "consumed" or "produced".
  absl::Status AddEdge(int64_t attempt_id, int64_t artifact_id, std::string_view direction,
                       const std::string& name, int64_t now);

  // --- copies
  absl::StatusOr<int64_t> InsertCopy(const NewCopy& copy);
  absl::Status UpdateCopy(int64_t copy_id, std::string_view state, const std::string& message);

  // --- checkpoints
  // Flushes a stopped engine cut off, marked failed.
  absl::StatusOr<std::vector<CutOffFlush>> FailCutOffFlushes();
  // Its flush begins (state flushing). Returns its row.
  absl::StatusOr<int64_t> InsertCheckpoint(const NewCheckpoint& checkpoint, int64_t now);
  struct FlushEnd {
    bool ok = false;
    int64_t bytes = 0, files = 0;
    std::string hash;
    int64_t flush_ms = 0;
    std::string message;  // when it failed
  };
  // Returns the checkpoint's name ("" when the row is gone).
  absl::StatusOr<std::string> FinishCheckpointFlush(int64_t row, const FlushEnd& end, int64_t now);
  absl::Status DeleteCheckpoint(int64_t row, const std::string& message);

 private:
  Database& db_;
  std::function<double()> random_;
  std::string run_id_;
  std::optional<lineage::OutboxQueue> outbox_;  // set: events go to the outbox
  void Queue(std::optional<int64_t> attempt_id, lineage::EventType type, int64_t at,
             const std::string& run_id);
  // Prepared once per run: the statements of every task.
  std::optional<Statement> insert_attempt_, finish_attempt_, attempt_started_, update_task_,
      insert_artifact_, overwrite_copies_, insert_copy_, update_copy_, insert_edge_, insert_event_;
};

}  // namespace tierflow::scheduler
