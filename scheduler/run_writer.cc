#include "scheduler/run_writer.h"

#include <unistd.h>

#include <random>

#include "common/metrics.h"
#include "common/processes.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/units.h"
#include "nlohmann/json.hpp"
#include "scheduler/placement_record.h"
#include "storage_adapters/local_artifact.h"

namespace tierflow::scheduler {
namespace {

// Empty text, and id 0, are stored as NULL.
std::optional<std::string_view> OrNull(std::string_view text) {
  return text.empty() ? std::nullopt : std::optional<std::string_view>(text);
}
std::optional<int64_t> OrNull(int64_t id) {
  return id == 0 ? std::nullopt : std::optional<int64_t>(id);
}

}  // namespace

absl::Status RunWriter::Prepare(const std::string& run_id) {
  run_id_ = run_id;
  auto prepare = [&](std::optional<Statement>& slot, std::string_view sql) -> absl::Status {
    TF_ASSIGN_OR_RETURN(Statement statement, db_.Prepare(sql));
    slot.emplace(std::move(statement));
    return absl::OkStatus();
  };
  TF_RETURN_IF_ERROR(
      prepare(insert_attempt_,
              "INSERT INTO attempts(run_id, task_id, number, state, command, cache_key, "
              "cached_from, started_at, log_path, worker, input_wait_ms, reads_json, "
              "cache_ingredients) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  TF_RETURN_IF_ERROR(prepare(finish_attempt_,
                             "UPDATE attempts SET state = ?, finished_at = ?, exit_code = ?, "
                             "signal = ?, message = ?, log_bytes = ?, pid = coalesce(?, pid), "
                             "worker = coalesce(?, worker), data_wait_ms = ?, io_wait_ms = ?, "
                             "read_bytes = ?, write_bytes = ?, "
                             "worker_id = coalesce(?14, worker_id), ran_ms = ?15 WHERE id = ?13"));
  TF_RETURN_IF_ERROR(prepare(attempt_started_,
                             "UPDATE attempts SET pid = ?, worker = coalesce(?, worker), "
                             "input_wait_ms = coalesce(input_wait_ms, 0) + ?, "
                             "worker_id = coalesce(?5, worker_id) WHERE id = ?4"));
  TF_RETURN_IF_ERROR(
      prepare(update_task_,
              "UPDATE tasks SET state = ?, attempts = ?, cache_key = ?, message = ?, "
              "started_at = coalesce(started_at, ?), finished_at = ? WHERE run_id = ? AND id = ?"));
  TF_RETURN_IF_ERROR(prepare(insert_artifact_,
                             "INSERT INTO artifacts(run_id, task_id, name, attempt_id, "
                             "content_hash, bytes, files, created_at) VALUES (?, ?, ?, ?, ?, ?, "
                             "?, ?) RETURNING id"));
  // An attempt that runs a task again writes its outputs where the earlier
  // attempts' were: their copies no longer hold their bytes.
  // Keys are the same on every tier: every copy of an earlier artifact of
  // the output is overwritten or stale.
  TF_RETURN_IF_ERROR(prepare(overwrite_copies_,
                             "UPDATE artifact_copies SET state = 'overwritten' WHERE state IN "
                             "('present', 'copying') AND artifact_id IN (SELECT id FROM artifacts "
                             "WHERE run_id = ? AND task_id = ? AND name = ?)"));
  TF_RETURN_IF_ERROR(prepare(insert_copy_,
                             "INSERT INTO artifact_copies(artifact_id, tier, uri, role, bytes, "
                             "content_hash, state, created_at, source_tier) VALUES (?, ?, ?, ?, "
                             "?, ?, ?, ?, ?) RETURNING id"));
  TF_RETURN_IF_ERROR(prepare(update_copy_,
                             "UPDATE artifact_copies SET state = ?, finished_at = ?, message = ? "
                             "WHERE id = ?"));
  TF_RETURN_IF_ERROR(prepare(insert_edge_,
                             "INSERT INTO lineage_edges(attempt_id, artifact_id, direction, name, "
                             "created_at) VALUES (?, ?, ?, ?, ?)"));
  TF_RETURN_IF_ERROR(prepare(insert_event_,
                             "INSERT INTO events(run_id, task_id, attempt_id, time, kind, "
                             "message) VALUES (?, ?, ?, ?, ?, ?)"));
  return absl::OkStatus();
}

absl::StatusOr<Transaction> RunWriter::Begin() {
  if (outbox_) outbox_->Clear();
  Database::WriteWait wait;
  TF_ASSIGN_OR_RETURN(Transaction transaction, Transaction::BeginWrite(db_, random_, &wait));
  if (wait.tries > 1) {
    TF_RETURN_IF_ERROR(
        AddEvent("", 0, "database_busy",
                 StrCat("waited ", FormatDuration(wait.waited), " (", wait.tries,
                        " tries) for the database's write lock, which another process held")));
  }
  return transaction;
}

absl::StatusOr<Transaction> RunWriter::BeginOnce() {
  if (outbox_) outbox_->Clear();
  return Transaction::Begin(db_);
}

absl::Status RunWriter::Commit(Transaction& transaction) {
  // The events are rendered from what this transaction wrote, and are
  // durable exactly when it is.
  if (outbox_) TF_RETURN_IF_ERROR(outbox_->Flush(db_));
  metrics::ScopedTimer timer(metrics::Engine().sqlite_commit_seconds);
  return transaction.Commit();
}

void RunWriter::Queue(std::optional<int64_t> attempt_id, lineage::EventType type, int64_t at,
                      const std::string& run_id) {
  if (!outbox_) return;
  outbox_->Add({.run_id = run_id, .attempt_id = attempt_id, .type = type, .event_ms = at});
}

void RunWriter::QueueAttemptEnd(int64_t attempt_id, AttemptState state, int64_t at) {
  Queue(attempt_id, lineage::AttemptEndType(state).value_or(lineage::EventType::kFail), at,
        run_id_);
}

absl::StatusOr<std::string> RunWriter::CreateRun(const NewRun& run) {
  const int64_t now = WallClockMs();
  const std::string yaml_hash = storage::HashBytes(run.yaml);
  {
    TF_ASSIGN_OR_RETURN(Statement insert,
                        db_.Prepare("INSERT OR IGNORE INTO pipelines(name, yaml_hash, yaml, file, "
                                    "created_at) VALUES (?, ?, ?, ?, ?)"));
    insert.Bind(1, run.pipeline_name)
        .Bind(2, yaml_hash)
        .Bind(3, run.yaml)
        .Bind(4, run.file)
        .Bind(5, now);
    TF_RETURN_IF_ERROR(insert.Run());
  }
  TF_ASSIGN_OR_RETURN(Statement find, db_.Prepare("SELECT id FROM pipelines WHERE yaml_hash = ?"));
  find.Bind(1, yaml_hash);
  TF_ASSIGN_OR_RETURN(bool found, find.Step());
  if (!found) return db_.Error("pipeline row");
  const int64_t pipeline_id = find.Int(0);

  nlohmann::json params_json = nlohmann::json::object();
  for (const auto& [name, value] : run.params) params_json[name] = value;
  TF_ASSIGN_OR_RETURN(
      Statement insert_run,
      db_.Prepare(
          "INSERT INTO runs(id, pipeline_id, pipeline_name, file, working_dir, "
          "params_json, state, slots, created_at, started_at, engine_pid, engine_host, "
          "tiers_json, priority, executor, executor_options) VALUES (?, ?, ?, ?, ?, ?, 'running', "
          "?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  std::mt19937_64 random(std::random_device{}());
  for (int tries = 0;; ++tries) {
    char suffix[8];
    snprintf(suffix, sizeof suffix, "%06x", static_cast<unsigned>(random() & 0xffffff));
    std::string run_id = StrCat(run.pipeline_name, "-", suffix);
    insert_run.Bind(1, run_id)
        .Bind(2, pipeline_id)
        .Bind(3, run.pipeline_name)
        .Bind(4, run.file)
        .Bind(5, run.working_dir)
        .Bind(6, params_json.dump())
        .Bind(7, run.slots)
        .Bind(8, now)
        .Bind(9, now)
        .Bind(10, static_cast<int64_t>(getpid()))
        .Bind(11, HostName())
        .Bind(12,
              run.tiers_json.empty() ? std::nullopt : std::optional<std::string>(run.tiers_json))
        .Bind(13, static_cast<int64_t>(run.priority))
        .Bind(14, run.executor.empty() ? std::nullopt : std::optional<std::string>(run.executor))
        .Bind(15, run.executor_options.empty() ? std::nullopt
                                               : std::optional<std::string>(run.executor_options));
    absl::Status status = insert_run.Run();
    if (status.ok()) return run_id;
    if (status.code() != absl::StatusCode::kAlreadyExists || tries > 20) return status;
  }
}

absl::Status RunWriter::RecordPlacement(const std::string& run_id, const Placement& placement,
                                        const std::vector<CheckpointPlacement>& checkpoints) {
  return scheduler::RecordPlacement(db_, run_id, placement, checkpoints);
}

absl::Status RunWriter::CreateTasks(const std::string& run_id, const std::vector<NewTask>& tasks) {
  TF_ASSIGN_OR_RETURN(Statement insert,
                      db_.Prepare("INSERT INTO tasks(run_id, id, seq, stage, kind, item, "
                                  "item_index, layer, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
                                  "'pending')"));
  for (const NewTask& task : tasks) {
    insert.Bind(1, run_id)
        .Bind(2, task.id)
        .Bind(3, static_cast<int64_t>(task.seq))
        .Bind(4, task.stage)
        .Bind(5, task.kind)
        .Bind(6, task.item)
        .Bind(7, static_cast<int64_t>(task.item_index))
        .Bind(8, static_cast<int64_t>(task.layer));
    TF_RETURN_IF_ERROR(insert.Run());
  }
  return absl::OkStatus();
}

absl::Status RunWriter::ResumeRun() {
  TF_ASSIGN_OR_RETURN(Statement run,
                      db_.Prepare("UPDATE runs SET state = 'running', finished_at = NULL, "
                                  "engine_pid = ?, engine_host = ?, cancel_requested = 0, "
                                  "message = '' WHERE id = ?"));
  run.Bind(1, static_cast<int64_t>(getpid())).Bind(2, HostName()).Bind(3, run_id_);
  return run.Run();
}

absl::Status RunWriter::RequestCancel() {
  TF_ASSIGN_OR_RETURN(Statement flag,
                      db_.Prepare("UPDATE runs SET cancel_requested = 1 WHERE id = ?"));
  flag.Bind(1, run_id_);
  return flag.Run();
}

absl::Status RunWriter::FinishRun(std::string_view state, const std::string& message) {
  TF_ASSIGN_OR_RETURN(Statement update,
                      db_.Prepare("UPDATE runs SET state = ?, finished_at = ?, engine_pid = NULL, "
                                  "message = ? WHERE id = ?"));
  update.Bind(1, state).Bind(2, WallClockMs()).Bind(3, message).Bind(4, run_id_);
  return update.Run();
}

// Best effort, one try: a store that is only busy cannot take it now
// (nobody else would write while the lock is held); one that failed
// otherwise may. `runs` and `show` then say the run has no engine.
void RunWriter::RecordStopped(const std::string& why) {
  absl::StatusOr<Transaction> transaction = BeginOnce();
  if (!transaction.ok()) return;
  absl::Status status = [&]() -> absl::Status {
    TF_ASSIGN_OR_RETURN(Statement update,
                        db_.Prepare("UPDATE runs SET engine_pid = NULL, message = ? WHERE id = "
                                    "? AND state = 'running'"));
    update.Bind(1, StrCat("its engine stopped: ", why)).Bind(2, run_id_);
    TF_RETURN_IF_ERROR(update.Run());
    return AddEvent("", 0, "engine_stopped", why);
  }();
  if (status.ok()) (void)transaction->Commit();
}

absl::Status RunWriter::AddEvent(const std::string& task_id, int64_t attempt_id,
                                 std::string_view kind, const std::string& message) {
  insert_event_->Bind(1, run_id_);
  insert_event_->Bind(2, OrNull(task_id));
  insert_event_->Bind(3, OrNull(attempt_id));
  const int64_t now = WallClockMs();
  insert_event_->Bind(4, now).Bind(5, kind).Bind(6, message);
  // The run's OpenLineage events are those of its run_* events, at their
  // time (lineage_events.h): START, RUNNING, and its end.
  if (std::optional<lineage::EventType> type = lineage::RunEventOfKind(kind)) {
    Queue(std::nullopt, *type, now, run_id_);
  }
  return insert_event_->Run();
}

absl::Status RunWriter::UpdateTask(const std::string& task_id, TaskState state, uint32_t attempts,
                                   const std::string& cache_key, const std::string& message,
                                   int64_t now) {
  update_task_->Bind(1, TaskStateName(state))
      .Bind(2, static_cast<int64_t>(attempts))
      .Bind(4, message)
      .Bind(7, run_id_)
      .Bind(8, task_id);
  update_task_->Bind(3, OrNull(cache_key));
  if (state == TaskState::kRunning) {
    update_task_->Bind(5, now);
  } else {
    update_task_->BindNull(5);
  }
  if (IsTerminal(state)) {
    update_task_->Bind(6, now);
  } else {
    update_task_->BindNull(6);
  }
  return update_task_->Run();
}

absl::StatusOr<int64_t> RunWriter::StartAttempt(const AttemptStart& attempt) {
  insert_attempt_->Bind(1, run_id_)
      .Bind(2, attempt.task_id)
      .Bind(3, static_cast<int64_t>(attempt.number))
      .Bind(4, AttemptStateName(attempt.state))
      .Bind(5, attempt.command)
      .Bind(7, attempt.cached_from)
      .Bind(8, attempt.started_at)
      .Bind(9, attempt.log_path)
      .Bind(10, attempt.worker)
      .Bind(11, attempt.input_wait_ms)
      .Bind(12, attempt.reads_json)
      .Bind(13, attempt.cache_ingredients);
  insert_attempt_->Bind(6, OrNull(attempt.cache_key));
  TF_RETURN_IF_ERROR(insert_attempt_->Run());
  const int64_t id = db_.LastInsertId();
  Queue(id, lineage::EventType::kStart, attempt.started_at, run_id_);
  return id;
}

absl::Status RunWriter::AttemptStarted(int64_t attempt_id, int64_t pid, const std::string& worker,
                                       const std::string& worker_id, int64_t staged_ms) {
  attempt_started_->Bind(1, pid).Bind(3, staged_ms).Bind(4, attempt_id);
  attempt_started_->Bind(2, OrNull(worker));
  attempt_started_->Bind(5, OrNull(worker_id));
  return attempt_started_->Run();
}

absl::Status RunWriter::FinishAttempt(const AttemptEnd& end) {
  finish_attempt_->Bind(1, AttemptStateName(end.state))
      .Bind(2, end.finished_at)
      .Bind(3, end.exit_code)
      .Bind(4, end.signal)
      .Bind(5, end.message)
      .Bind(6, end.log_bytes)
      .Bind(7, end.pid)
      .Bind(9, end.data_wait_ms)
      .Bind(10, end.io_wait_ms)
      .Bind(11, end.read_bytes)
      .Bind(12, end.write_bytes)
      .Bind(13, end.attempt_id);
  finish_attempt_->Bind(8, OrNull(end.worker));
  finish_attempt_->Bind(14, OrNull(end.worker_id));
  finish_attempt_->Bind(15, end.ran_ms);
  QueueAttemptEnd(end.attempt_id, end.state, end.finished_at);
  return finish_attempt_->Run();
}

absl::Status RunWriter::RecordHandle(int64_t attempt_id, const std::string& handle) {
  TF_ASSIGN_OR_RETURN(Statement record, db_.Prepare("UPDATE attempts SET handle = ? WHERE id = ?"));
  record.Bind(1, handle).Bind(2, attempt_id);
  return record.Run();
}

absl::Status RunWriter::AddInputWait(int64_t attempt_id, int64_t ms) {
  TF_ASSIGN_OR_RETURN(Statement waited,
                      db_.Prepare("UPDATE attempts SET input_wait_ms = coalesce(input_wait_ms, "
                                  "0) + ? WHERE id = ?"));
  waited.Bind(1, ms).Bind(2, attempt_id);
  return waited.Run();
}

absl::StatusOr<int64_t> RunWriter::RecordArtifact(const std::string& task_id,
                                                  const std::string& name, int64_t attempt_id,
                                                  const std::string& hash, uint64_t bytes,
                                                  uint64_t files, int64_t now) {
  overwrite_copies_->Bind(1, run_id_).Bind(2, task_id).Bind(3, name);
  TF_RETURN_IF_ERROR(overwrite_copies_->Run());
  insert_artifact_->Bind(1, run_id_)
      .Bind(2, task_id)
      .Bind(3, name)
      .Bind(4, attempt_id)
      .Bind(5, hash)
      .Bind(6, static_cast<int64_t>(bytes))
      .Bind(7, static_cast<int64_t>(files))
      .Bind(8, now);
  absl::StatusOr<bool> row = insert_artifact_->Step();
  const int64_t id = row.ok() && *row ? insert_artifact_->Int(0) : 0;
  insert_artifact_->Reset();
  if (!row.ok()) return row.status();
  return id;
}

absl::Status RunWriter::AddEdge(int64_t attempt_id, int64_t artifact_id, std::string_view direction,
                                const std::string& name, int64_t now) {
  insert_edge_->Bind(1, attempt_id)
      .Bind(2, artifact_id)
      .Bind(3, direction)
      .Bind(4, name)
      .Bind(5, now);
  return insert_edge_->Run();
}

absl::StatusOr<int64_t> RunWriter::InsertCopy(const NewCopy& copy) {
  insert_copy_->Bind(1, copy.artifact_id)
      .Bind(2, copy.tier)
      .Bind(3, copy.uri)
      .Bind(4, copy.home ? "home" : "working")
      .Bind(5, static_cast<int64_t>(copy.bytes))
      .Bind(6, copy.hash)
      .Bind(7, copy.state)
      .Bind(8, WallClockMs())
      .Bind(9, copy.source_tier);
  absl::StatusOr<bool> row = insert_copy_->Step();
  const int64_t id = row.ok() && *row ? insert_copy_->Int(0) : 0;
  insert_copy_->Reset();
  if (!row.ok()) return row.status();
  return id;
}

absl::Status RunWriter::UpdateCopy(int64_t copy_id, std::string_view state,
                                   const std::string& message) {
  update_copy_->Bind(1, state).Bind(2, WallClockMs()).Bind(3, message).Bind(4, copy_id);
  return update_copy_->Run();
}

absl::StatusOr<std::vector<CutOffFlush>> RunWriter::FailCutOffFlushes() {
  TF_ASSIGN_OR_RETURN(Statement cut,
                      db_.Prepare("UPDATE checkpoints SET state = 'failed', message = 'the "
                                  "engine stopped during this flush' WHERE run_id = ? AND state "
                                  "= 'flushing' RETURNING task_id, name, attempt_id"));
  cut.Bind(1, run_id_);
  std::vector<CutOffFlush> flushes;
  for (;;) {
    TF_ASSIGN_OR_RETURN(bool row, cut.Step());
    if (!row) break;
    flushes.push_back({cut.Text(0), cut.Text(1), cut.Int(2)});
  }
  return flushes;
}

absl::StatusOr<int64_t> RunWriter::InsertCheckpoint(const NewCheckpoint& checkpoint, int64_t now) {
  TF_ASSIGN_OR_RETURN(Statement insert,
                      db_.Prepare("INSERT INTO checkpoints(run_id, task_id, attempt_id, name, "
                                  "step, local_uri, tier, uri, state, committed_at) VALUES (?, "
                                  "?, ?, ?, ?, ?, ?, ?, 'flushing', ?)"));
  insert.Bind(1, run_id_)
      .Bind(2, checkpoint.task_id)
      .Bind(3, checkpoint.attempt_id)
      .Bind(4, checkpoint.name)
      .Bind(5, checkpoint.step)
      .Bind(6, checkpoint.local_uri)
      .Bind(7, checkpoint.tier)
      .Bind(8, checkpoint.uri)
      .Bind(9, now);
  TF_RETURN_IF_ERROR(insert.Run());
  return db_.LastInsertId();
}

absl::StatusOr<std::string> RunWriter::FinishCheckpointFlush(int64_t row, const FlushEnd& end,
                                                             int64_t now) {
  TF_ASSIGN_OR_RETURN(Statement update,
                      db_.Prepare("UPDATE checkpoints SET state = ?, bytes = ?, files = ?, "
                                  "content_hash = ?, flushed_at = ?, flush_ms = ?, message = ? "
                                  "WHERE id = ? RETURNING name"));
  update.Bind(1, end.ok ? "present" : "failed")
      .Bind(2, end.ok ? std::optional<int64_t>(end.bytes) : std::nullopt)
      .Bind(3, end.ok ? std::optional<int64_t>(end.files) : std::nullopt)
      .Bind(4, end.ok ? std::optional<std::string>(end.hash) : std::nullopt)
      .Bind(5, now)
      .Bind(6, end.flush_ms)
      .Bind(7, end.ok ? std::string() : end.message)
      .Bind(8, row);
  TF_ASSIGN_OR_RETURN(bool found, update.Step());
  std::string name = found ? update.Text(0) : "";
  update.Reset();
  return name;
}

absl::Status RunWriter::DeleteCheckpoint(int64_t row, const std::string& message) {
  TF_ASSIGN_OR_RETURN(Statement gone,
                      db_.Prepare("UPDATE checkpoints SET state = 'deleted', message = ? "
                                  "WHERE id = ?"));
  gone.Bind(1, message).Bind(2, row);
  return gone.Run();
}

}  // namespace tierflow::scheduler
