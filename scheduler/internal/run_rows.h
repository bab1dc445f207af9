// Reading the rows of tasks, attempts, artifacts and their copies into the
// structs of run_queries.h: the SELECT column lists and the readers that go
// with them, shared by the read queries of run_queries.cc and
// failure_queries.cc. Private to scheduler/.
#pragma once

#include <string_view>

#include "absl/status/statusor.h"
#include "scheduler/run_queries.h"
#include "scheduler/sqlite.h"

namespace tierflow::scheduler::internal {

inline constexpr std::string_view kTaskColumns =
    "SELECT run_id, id, seq, stage, kind, item, item_index, layer, state, attempts, cache_key, "
    "started_at, finished_at, message FROM tasks";
absl::StatusOr<TaskRow> ReadTask(const Statement& s);

inline constexpr std::string_view kAttemptColumns =
    "SELECT a.id, a.run_id, a.task_id, a.number, a.state, a.worker, a.pid, a.command, "
    "a.cache_key, a.cached_from, a.started_at, a.finished_at, a.exit_code, a.signal, a.message, "
    "a.log_path, o.run_id, o.task_id, o.number, a.log_bytes, a.input_wait_ms, a.data_wait_ms, "
    "a.io_wait_ms, a.read_bytes, a.write_bytes, a.reads_json FROM attempts a LEFT JOIN attempts "
    "o ON o.id = a.cached_from";
absl::StatusOr<AttemptRow> ReadAttempt(const Statement& s);

inline constexpr std::string_view kArtifactColumns =
    "SELECT id, run_id, task_id, name, attempt_id, content_hash, bytes, files, created_at FROM "
    "artifacts";
ArtifactRow ReadArtifact(const Statement& s);

inline constexpr std::string_view kCopyColumns =
    "SELECT c.id, c.artifact_id, c.tier, c.uri, c.role, c.bytes, c.content_hash, c.state, "
    "c.created_at, c.message FROM artifact_copies c";
absl::StatusOr<CopyRow> ReadCopy(const Statement& s);

}  // namespace tierflow::scheduler::internal
