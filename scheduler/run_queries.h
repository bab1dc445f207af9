// Read-only queries over the state store (store.h) for everything that
// inspects runs: `tierflow runs`, `show`, `logs`, `lineage` and the UI. They
// return plain structs; rendering is the api's business. Every function runs
// on a Database the caller owns (one thread at a time, as sqlite.h says) and
// leaves no statement open, so a long-lived reader keeps seeing the engine's
// later commits (WAL readers read a snapshot only while a statement is open).
// Errors name what was not found and where, with a did-you-mean. States are
// the enums of store.h: a word this tierflow does not know is a DataLoss
// error naming it and its row, never read as some default.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "scheduler/engine.h"
#include "scheduler/sqlite.h"
#include "scheduler/store.h"

namespace tierflow::scheduler {

// What is known about the process driving a run.
enum class EngineStatus {
  kNotRunning,  // the run is not `running`: nothing should drive it
  kAlive,       // a live tierflow process on this host (EngineAlive)
  kGone,        // running in the table, but its engine died: resume it
  kOtherHost,   // driven from another host: cannot be checked from here
};
std::string_view EngineStatusName(EngineStatus status);

// The engine status of a run in `state` whose engine is `pid` on `host`.
EngineStatus ProbeEngine(RunState state, std::optional<int64_t> pid, const std::string& host);

// One row of `runs` with its task counts.
struct RunSummary {
  std::string id;
  std::string pipeline;
  std::string file;
  std::string working_dir;
  std::map<std::string, std::string> params;  // the --param overrides
  RunState state = RunState::kRunning;
  int64_t slots = 0;
  int64_t created_at_ms = 0;
  std::optional<int64_t> started_at_ms;
  std::optional<int64_t> finished_at_ms;
  std::optional<int64_t> engine_pid;
  std::string engine_host;
  bool cancel_requested = false;
  std::string message;
  int64_t priority = 0;  // cluster mode: `tierflow submit --priority`
  // `tierflow gc` took (done) or is taking (deleting) its data; "": kept.
  std::string gc_state;
  RunCounts counts;  // tasks by state
  EngineStatus engine = EngineStatus::kNotRunning;
  // finished - started; for a live run now - started; unset when unknown
  // (a run whose engine is gone or elsewhere has no known end).
  std::optional<int64_t> duration_ms;
};

struct RunFilter {
  int64_t limit = 0;              // newest first; 0 = every run
  std::optional<RunState> state;  // unset = every state
};

struct RunList {
  std::vector<RunSummary> runs;  // newest first
  int64_t total = 0;             // runs matching the filter, before the limit
};

// Runs newest first (by created_at). `now_ms` dates live runs' durations.
absl::StatusOr<RunList> ListRuns(Database& db, const RunFilter& filter, int64_t now_ms);

// The id of the run `run` names: an exact run id, or `last`/`latest` for the
// newest run. NotFound names the id and the database, with a did-you-mean
// over the existing ids.
absl::StatusOr<std::string> ResolveRunId(Database& db, std::string_view run);

// The executor a run was started with (EngineOptions::executor: "" for the
// local pool or a server's workers) and its recorded options (unset: none,
// a run of schema 11). NotFound as ResolveRunId.
struct RunExecutor {
  std::string executor;
  std::optional<std::string> options;
};
absl::StatusOr<RunExecutor> GetRunExecutor(Database& db, const std::string& run_id);

// One run by exact id; NotFound as ResolveRunId.
absl::StatusOr<RunSummary> GetRunSummary(Database& db, const std::string& run_id, int64_t now_ms);

// A run's state and engine, without counting its tasks: cheap enough to
// re-check every second while following a log.
struct RunStatus {
  RunState state = RunState::kRunning;
  EngineStatus engine = EngineStatus::kNotRunning;
};
absl::StatusOr<RunStatus> GetRunStatus(Database& db, const std::string& run_id);

struct AttemptRow {
  int64_t id = 0;
  std::string run_id;
  std::string task_id;
  int64_t number = 0;  // 1, 2, ... per task
  AttemptState state = AttemptState::kRunning;
  std::string worker;
  std::optional<int64_t> pid;
  std::string command;  // JSON, as stored
  std::string cache_key;
  std::optional<int64_t> cached_from;  // attempts.id whose outputs were reused
  int64_t started_at_ms = 0;
  std::optional<int64_t> finished_at_ms;
  std::optional<int64_t> exit_code;
  std::optional<int64_t> signal;
  std::string message;
  std::string log_path;  // "" for a cached attempt: nothing ran
  // Bytes written to log_path, once the attempt ended (0: it wrote nothing
  // and there is no file); unset while it runs.
  std::optional<int64_t> log_bytes;
  // Where cached_from points, for display ("" / 0 when not cached or when
  // that attempt is no longer in the store).
  std::string cached_from_run;
  std::string cached_from_task;
  int64_t cached_from_number = 0;
  // Time on data (store.cc schema 6; unset when not measured): waiting for
  // copies of its inputs before it started, what its task helpers waited
  // while it ran, its processes seen blocked on I/O; bytes they read and wrote.
  std::optional<int64_t> input_wait_ms;
  std::optional<int64_t> data_wait_ms;
  std::optional<int64_t> io_wait_ms;
  std::optional<int64_t> read_bytes;
  std::optional<int64_t> write_bytes;
  struct Read {
    std::string input;
    std::string tier;  // where it read it: its working tier
    int64_t bytes = 0;
  };
  std::vector<Read> reads;
};

struct CopyRow {
  int64_t id = 0;
  int64_t artifact_id = 0;
  std::string tier;
  std::string uri;
  std::string role;  // home | working
  int64_t bytes = 0;
  std::string content_hash;
  ArtifactCopyState state = ArtifactCopyState::kPresent;
  int64_t created_at_ms = 0;
  std::string message;  // why it is in that state (recorded by the engine)
};

struct ArtifactRow {
  int64_t id = 0;
  std::string run_id;
  std::string task_id;
  std::string name;  // the output name
  int64_t attempt_id = 0;
  std::string content_hash;
  int64_t bytes = 0;
  int64_t files = 0;
  int64_t created_at_ms = 0;
  std::vector<CopyRow> copies;  // home first, then by id
  // "RUN/TASK/OUTPUT": the reference `tierflow lineage` accepts.
  std::string Ref() const;
};

struct TaskRow {
  std::string run_id;
  std::string id;  // "stage" or "stage[item]"
  int64_t seq = 0;
  std::string stage;
  std::string kind;
  std::optional<std::string> item;
  int64_t item_index = 0;
  int64_t layer = 0;
  TaskState state = TaskState::kPending;
  int64_t attempt_count = 0;
  std::string cache_key;
  std::optional<int64_t> started_at_ms;
  std::optional<int64_t> finished_at_ms;
  std::string message;
  std::vector<AttemptRow> attempts;  // by number (filled by GetRunDetail)
  std::vector<ArtifactRow> outputs;  // by name (filled by GetRunDetail)
};

// A checkpoint a task committed (store.cc schema 7), every column.
struct CheckpointRow {
  int64_t id = 0;
  std::string task_id;
  int64_t attempt_id = 0;
  std::optional<int64_t> attempt;  // the attempt's number
  std::string name;
  std::optional<int64_t> step;
  std::string local_uri;  // where the task wrote it (the fast tier)
  std::string tier;       // the durable tier it was flushed to
  std::string uri;
  std::optional<int64_t> bytes;
  std::optional<int64_t> files;
  std::string content_hash;
  std::string state;  // flushing | present | failed | deleted: shown, never compared
  int64_t committed_at_ms = 0;
  std::optional<int64_t> flushed_at_ms;
  std::optional<int64_t> flush_ms;
  std::string message;
};

// The run's checkpoints by task (plan order), then step, then id
// (run_tiers.cc).
absl::StatusOr<std::vector<CheckpointRow>> ListRunCheckpoints(Database& db,
                                                              const std::string& run_id);

struct RunDetail {
  RunSummary run;
  std::vector<TaskRow> tasks;              // plan order (seq)
  std::vector<CheckpointRow> checkpoints;  // by task, then step
};

// The run's tasks that failed (state failed), in plan order, each with its
// latest attempt as attempts[0] (none when it never started: a task that
// failed before it ran, on a missing input say), outputs not filled. At most
// `limit` tasks (0: all); `*total` gets how many failed in all.
absl::StatusOr<std::vector<TaskRow>> FailedTasks(Database& db, const std::string& run_id,
                                                 size_t limit, size_t* total);

// A run with every task, attempt, output and copy.
absl::StatusOr<RunDetail> GetRunDetail(Database& db, const std::string& run_id, int64_t now_ms);

// One task of a run, without its attempts and outputs. NotFound names the
// task and the run, with a did-you-mean over the run's task ids (or, for the
// name of a foreach stage, its first tasks).
absl::StatusOr<TaskRow> FindTask(Database& db, const std::string& run_id,
                                 const std::string& task_id);

// Attempt `number` of a task, or its latest when `number` is 0. NotFound
// when the task has no such attempt (saying which it has).
absl::StatusOr<AttemptRow> FindAttempt(Database& db, const std::string& run_id,
                                       const std::string& task_id, int64_t number = 0);

absl::StatusOr<AttemptRow> GetAttempt(Database& db, int64_t attempt_id);

// ---------------------------------------------------------------- lineage

// An artifact named on the command line: `RUN/TASK/OUTPUT` (RUN may be
// `last`; TASK may itself hold '/', inside a foreach item) or `#ID`.
struct ArtifactRef {
  int64_t id = 0;  // set for `#ID`
  std::string run;
  std::string task;
  std::string output;
};

// True when `text` is written as an artifact reference rather than a run
// id (it holds a '/' or starts with '#').
bool IsArtifactRef(std::string_view text);

// InvalidArgument, quoting `text` and showing the syntax, when malformed.
absl::StatusOr<ArtifactRef> ParseArtifactRef(std::string_view text);

// The artifact a reference names; NotFound names the missing run, task or
// output with a did-you-mean.
absl::StatusOr<ArtifactRow> ResolveArtifact(Database& db, const ArtifactRef& ref);

// A node of the lineage graph: an artifact or an attempt, by its row id.
struct LineageNode {
  enum class Type { kArtifact, kAttempt };
  Type type = Type::kArtifact;
  int64_t id = 0;
  auto operator<=>(const LineageNode&) const = default;
  // "artifact:12", "attempt:7": stable ids for JSON and dot.
  std::string Key() const;
};

// An edge points the way data flows: artifact -consumed-> attempt,
// attempt -produced-> artifact, and attempt -reused-> attempt from the
// attempt that really ran to the cached attempt that reused its outputs.
struct LineageEdge {
  enum class Kind { kConsumed, kProduced, kReused };
  Kind kind = Kind::kConsumed;
  LineageNode from;
  LineageNode to;
  std::string name;  // the input or output name in the stage; "" for kReused
  auto operator<=>(const LineageEdge&) const = default;
};
std::string_view LineageEdgeKindName(LineageEdge::Kind kind);

enum class LineageDirection { kUpstream, kDownstream, kBoth };

struct LineageGraph {
  // The run of a run's graph, or of the artifact walked from: nodes of
  // this run are shown without their run id.
  std::string run_id;
  std::optional<int64_t> root;  // the artifact walked from
  LineageDirection direction = LineageDirection::kBoth;
  std::map<int64_t, ArtifactRow> artifacts;  // with copies
  std::map<int64_t, AttemptRow> attempts;
  std::vector<LineageEdge> edges;  // each once, in the order found
};

// The whole lineage of one run: its attempts that consumed or produced
// artifacts, those artifacts, and for cached attempts the attempt (of an
// earlier run) whose outputs they reused, with that reuse edge.
absl::StatusOr<LineageGraph> RunLineage(Database& db, const std::string& run_id);

// Walks from one artifact upstream (what it was made from) and/or
// downstream (what was made from it), across runs through reuse edges.
// `depth` bounds the walk in task steps: 1 is the producing attempt and its
// inputs (upstream) or the consuming attempts and their outputs
// (downstream); a reuse edge is no extra step. Unset: no bound.
absl::StatusOr<LineageGraph> ArtifactLineage(Database& db, int64_t artifact_id,
                                             LineageDirection direction,
                                             std::optional<int64_t> depth);

}  // namespace tierflow::scheduler
