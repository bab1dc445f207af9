// The row readers of internal/run_rows.h.
#include "scheduler/internal/run_rows.h"

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "common/strings.h"
#include "scheduler/internal/rows.h"
#include "scheduler/store.h"

namespace tierflow::scheduler::internal {

// --------------------------------------------------------------- tasks

absl::StatusOr<TaskRow> ReadTask(const Statement& s) {
  TaskRow task;
  task.run_id = s.Text(0);
  task.id = s.Text(1);
  task.seq = s.Int(2);
  task.stage = s.Text(3);
  task.kind = s.Text(4);
  task.item = OptionalText(s, 5);
  task.item_index = s.Int(6);
  task.layer = s.Int(7);
  TF_ASSIGN_OR_RETURN(task.state, StateOf(ParseTaskState, s.Text(8),
                                          StrCat("task ", task.id, " of run ", task.run_id)));
  task.attempt_count = s.Int(9);
  task.cache_key = s.Text(10);
  task.started_at_ms = s.OptionalInt(11);
  task.finished_at_ms = s.OptionalInt(12);
  task.message = s.Text(13);
  return task;
}

// ------------------------------------------------------------- attempts

absl::StatusOr<AttemptRow> ReadAttempt(const Statement& s) {
  AttemptRow attempt;
  attempt.id = s.Int(0);
  attempt.run_id = s.Text(1);
  attempt.task_id = s.Text(2);
  attempt.number = s.Int(3);
  TF_ASSIGN_OR_RETURN(attempt.state, StateOf(ParseAttemptState, s.Text(4),
                                             StrCat("attempt ", attempt.number, " of task ",
                                                    attempt.task_id, " in run ", attempt.run_id)));
  attempt.worker = s.Text(5);
  attempt.pid = s.OptionalInt(6);
  attempt.command = s.Text(7);
  attempt.cache_key = s.Text(8);
  attempt.cached_from = s.OptionalInt(9);
  attempt.started_at_ms = s.Int(10);
  attempt.finished_at_ms = s.OptionalInt(11);
  attempt.exit_code = s.OptionalInt(12);
  attempt.signal = s.OptionalInt(13);
  attempt.message = s.Text(14);
  attempt.log_path = s.Text(15);
  attempt.cached_from_run = s.Text(16);
  attempt.cached_from_task = s.Text(17);
  attempt.cached_from_number = s.IsNull(18) ? 0 : s.Int(18);
  attempt.log_bytes = s.OptionalInt(19);
  attempt.input_wait_ms = s.OptionalInt(20);
  attempt.data_wait_ms = s.OptionalInt(21);
  attempt.io_wait_ms = s.OptionalInt(22);
  attempt.read_bytes = s.OptionalInt(23);
  attempt.write_bytes = s.OptionalInt(24);
  nlohmann::json reads = nlohmann::json::parse(s.Text(25), nullptr, /*allow_exceptions=*/false);
  if (reads.is_array()) {
    for (const nlohmann::json& read : reads) {
      if (!read.is_object()) continue;
      attempt.reads.push_back(
          {read.value("input", ""), read.value("tier", ""), read.value("bytes", int64_t{0})});
    }
  }
  return attempt;
}

// ------------------------------------------------------------ artifacts

ArtifactRow ReadArtifact(const Statement& s) {
  ArtifactRow artifact;
  artifact.id = s.Int(0);
  artifact.run_id = s.Text(1);
  artifact.task_id = s.Text(2);
  artifact.name = s.Text(3);
  artifact.attempt_id = s.Int(4);
  artifact.content_hash = s.Text(5);
  artifact.bytes = s.Int(6);
  artifact.files = s.Int(7);
  artifact.created_at_ms = s.Int(8);
  return artifact;
}

absl::StatusOr<CopyRow> ReadCopy(const Statement& s) {
  CopyRow copy;
  copy.id = s.Int(0);
  copy.artifact_id = s.Int(1);
  copy.tier = s.Text(2);
  copy.uri = s.Text(3);
  copy.role = s.Text(4);
  copy.bytes = s.Int(5);
  copy.content_hash = s.Text(6);
  TF_ASSIGN_OR_RETURN(copy.state, StateOf(ParseCopyState, s.Text(7),
                                          StrCat("copy ", copy.id, " (", copy.tier, ":", copy.uri,
                                                 ") of artifact ", copy.artifact_id)));
  copy.created_at_ms = s.Int(8);
  copy.message = s.Text(9);
  return copy;
}

}  // namespace tierflow::scheduler::internal
