// What clients (the CLI now, the UI later) call to look at runs in the state
// store, and the renderings of what they get: `runs`, `show`, `logs` and
// `lineage`. Every call opens the store read-only (store.h
// OpenStoreReadOnly), so it never blocks or changes a running engine, and
// works while one runs. `db` is always the --db flag as given: "" means
// $TIERFLOW_DB, else .tierflow/tierflow.db. A run may be named `last` or
// `latest`. Functions are stateless and safe to call from several threads.
//
// Text renderings are for people (local times, binary sizes, control
// characters in names escaped); JSON renderings are for scripts: snake_case
// field names that stay stable, times in milliseconds since the epoch (names
// end in `_ms`), sizes in bytes, null for what is unknown.
//
// The calls are in run_service.cc, the renderings in run_text.cc,
// run_json.cc and lineage_render.cc, WriteLog in log_follow.cc.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/units.h"
#include "scheduler/run_queries.h"

namespace tierflow::api {

using scheduler::LineageDirection;
using scheduler::LineageGraph;
using scheduler::ParseRunState;
using scheduler::RunDetail;
using scheduler::RunFilter;
using scheduler::RunList;
using scheduler::RunState;

// Runs newest first, with task counts and whether each running run's
// engine is alive.
absl::StatusOr<RunList> ListRuns(const std::string& db, const RunFilter& filter);

// One run with its tasks in plan order, every attempt, output and copy.
absl::StatusOr<RunDetail> ShowRun(const std::string& db, const std::string& run);

// `target` is a run (its whole lineage graph; `direction` and `depth` must
// be left at kBoth / unset) or an artifact reference, RUN/TASK/OUTPUT or
// #ID (a walk from it; scheduler::ArtifactLineage).
absl::StatusOr<LineageGraph> GetLineage(const std::string& db, const std::string& target,
                                        LineageDirection direction = LineageDirection::kBoth,
                                        std::optional<int64_t> depth = std::nullopt);

// Paints `text` in the colour of the state word `state` (the CLI's
// terminal_style), or returns it as it is. Unset in a rendering: no colour.
using StatePainter = std::function<std::string(std::string_view state, std::string_view text)>;

struct LogRequest {
  std::string db;
  std::string run;
  std::string task;
  int64_t attempt = 0;  // 0: the latest
  // Keep printing what is appended until the attempt ends; following the
  // latest attempt, go on to each newer attempt of the task (a retry, a
  // resume) until the task is finished or the run's engine is gone.
  bool follow = false;
  // While following, the state store is re-checked at least this often
  // (the log itself is watched with inotify, so new lines show at once).
  Duration recheck = std::chrono::seconds(1);
  // With no `task`: every task's log (latest attempt each) in plan order,
  // each line prefixed "TASK | "; only failed tasks with `failed_only`,
  // only these stages' tasks when `stages` is not empty (an unknown stage
  // is NotFound with a did-you-mean).
  bool failed_only = false;
  std::vector<std::string> stages = {};
  // Paints a task's prefix in the colour of its state ("succeeded", ...);
  // unset: plain text.
  StatePainter paint = nullptr;
};

// Writes the attempt's log (stdout and stderr of its command) to `out`,
// byte for byte. Remarks for the person watching go to `notes`: which
// earlier attempt a cached one reused (whose log is shown instead), each
// switch to a newer attempt, why following stopped early. Errors: unknown
// run, task (with did-you-mean) or attempt; a log file that is gone.
// Following the latest attempt of a task that has not started waits for it
// (saying on `notes` what it waits behind); FailedPrecondition, saying why,
// when it can no longer start: an upstream task failed, it was cancelled,
// the run ended, or the run's engine is gone (with the resume command).
// With no task: WriteRunLogs.
absl::Status WriteLog(const LogRequest& request, std::ostream& out, std::ostream& notes);

// Every task's log, as LogRequest says (no `task`), each line prefixed
// with the task id padded to a common width. A task that never ran or
// wrote nothing is skipped with a note. With `follow`: what the running
// tasks write, interleaved by line, until the run is no longer running
// (or its engine is gone).
absl::Status WriteRunLogs(const LogRequest& request, std::ostream& out, std::ostream& notes);

// A table, newest first: RUN, PIPELINE, STATE, TASKS (succeeded or cached
// of all), FAILED (failed and upstream_failed), STARTED, DURATION. A running run whose engine died
// shows as "running (engine gone)" with the resume command below the table.
void RenderRunsText(const RunList& list, std::ostream& out);
// The same, with each STATE painted by `paint`.
void RenderRunsText(const RunList& list, const StatePainter& paint, std::ostream& out);

//   {"runs": [run...], "total": n}   (total: matching runs before --limit)
//   run: {"id", "pipeline", "file", "working_dir", "params": {name: value},
//         "state", "engine": "alive"|"gone"|"other_host"|"not_running",
//         "engine_alive": bool (null when driven from another host),
//         "engine_pid", "engine_host", "slots", "created_at_ms",
//         "started_at_ms", "finished_at_ms", "duration_ms",
//         "cancel_requested", "message",
//         "tasks": {"total", "done", "pending", "queued", "running",
//                   "retrying", "succeeded", "cached", "failed",
//                   "upstream_failed", "cancelled"}}
void RenderRunsJson(const RunList& list, std::ostream& out);

// A header (run, pipeline, file, state, params, times, task counts), the
// tasks in plan order (TASK, KIND, STATE, ATTEMPTS, DURATION, MESSAGE) with
// attempt rows under each task that had more than one attempt (every task
// with `all_attempts`), then the outputs (OUTPUT, SIZE, HASH, COPIES).
void RenderRunText(const RunDetail& detail, bool all_attempts, std::ostream& out);

//   {"run": run (as above), "tasks": [task...]}
//   task: {"id", "seq", "stage", "kind", "item", "item_index", "layer",
//          "state", "attempt_count", "cache_key", "started_at_ms",
//          "finished_at_ms", "duration_ms", "message",
//          "attempts": [attempt...], "outputs": [artifact...]}
//   attempt: {"id", "number", "state", "worker", "pid", "command",
//             "cache_key", "cached_from" (attempt id),
//             "cached_from_ref": {"run_id", "task_id", "number"} or null,
//             "started_at_ms", "finished_at_ms", "duration_ms", "exit_code",
//             "signal", "message", "log_path", "log_bytes"}
//   artifact: {"id", "ref" ("RUN/TASK/OUTPUT"), "run_id", "task_id", "name",
//              "attempt_id", "content_hash", "bytes", "files",
//              "created_at_ms", "copies": [{"id", "tier", "uri", "role",
//              "bytes", "content_hash", "state", "created_at_ms"}]}
void RenderRunJson(const RunDetail& detail, std::ostream& out);

// One task object of RenderRunJson (with its attempts and outputs), alone.
void RenderTaskJson(const scheduler::TaskRow& task, std::ostream& out);

// An indented tree. For an artifact: the artifact, then "upstream" (what
// produced it, what that consumed, ...) and "downstream" (what consumed it,
// what that produced, ...). For a run: a tree from each of its sources
// downstream. Artifacts show size, short hash and copies (tier:uri);
// attempts their task, number, state and what a cached one reused. Nodes
// of another run than the graph's carry their run id; a node met twice is
// printed once and then marked "(see above)".
void RenderLineageText(const LineageGraph& graph, std::ostream& out);

// `tierflow lineage` whole: GetLineage, then the rendering `format` names
// (text | json | dot). `upstream` and `downstream` both or neither: both.
absl::Status WriteLineage(const std::string& db, const std::string& target, bool upstream,
                          bool downstream, std::optional<int64_t> depth, const std::string& format,
                          std::ostream& out);

//   {"run_id", "root": node id or null,
//    "direction": "upstream"|"downstream"|"both" or null (a run's graph),
//    "nodes": [node...], "edges": [{"from", "to", "kind", "name"}]}
//   node ids are "artifact:ID" / "attempt:ID"; artifact nodes add the
//   artifact fields above ("artifact_id" for the row id), attempt nodes
//   {"attempt_id", "run_id", "task_id", "number", "state", "cached_from",
//    "started_at_ms", "finished_at_ms", "exit_code", "signal", "message"}.
//   Edges point the way data flows; kind is "consumed" (artifact ->
//   attempt), "produced" (attempt -> artifact) or "reused" (the attempt that
//   ran -> the cached attempt that reused its outputs).
void RenderLineageJson(const LineageGraph& graph, std::ostream& out);

// A Graphviz digraph of the same nodes and edges (artifacts as boxes,
// attempts as ellipses, reuse dashed); every label is quoted and escaped.
void RenderLineageDot(const LineageGraph& graph, std::ostream& out);

}  // namespace tierflow::api
