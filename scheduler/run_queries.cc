#include "scheduler/run_queries.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>
#include <utility>

#include "common/processes.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/suggest.h"
#include "scheduler/internal/rows.h"
#include "scheduler/internal/run_rows.h"
#include "scheduler/store.h"

namespace tierflow::scheduler {
namespace {

using internal::ForEachRow;
using internal::kArtifactColumns;
using internal::kAttemptColumns;
using internal::kCopyColumns;
using internal::kTaskColumns;
using internal::OptionalText;
using internal::ReadArtifact;
using internal::ReadAttempt;
using internal::ReadCopy;
using internal::ReadTask;
using internal::StateOf;

void Count(RunCounts& counts, TaskState state, uint32_t n) {
  counts.total += n;
  switch (state) {
    case TaskState::kPending:
      counts.pending += n;
      break;
    case TaskState::kQueued:
      counts.queued += n;
      break;
    case TaskState::kRunning:
      counts.running += n;
      break;
    case TaskState::kRetrying:
      counts.retrying += n;
      break;
    case TaskState::kSucceeded:
      counts.succeeded += n;
      break;
    case TaskState::kCached:
      counts.cached += n;
      break;
    case TaskState::kFailed:
      counts.failed += n;
      break;
    case TaskState::kUpstreamFailed:
      counts.upstream_failed += n;
      break;
    case TaskState::kCancelled:
      counts.cancelled += n;
      break;
  }
}

// --------------------------------------------------------------- runs

constexpr std::string_view kRunColumns =
    "SELECT id, pipeline_name, file, working_dir, params_json, state, slots, created_at, "
    "started_at, finished_at, engine_pid, engine_host, cancel_requested, message, priority, "
    "(SELECT state FROM gc_runs g WHERE g.run_id = runs.id) FROM runs";

absl::StatusOr<RunSummary> ReadRun(const Statement& s) {
  RunSummary run;
  run.id = s.Text(0);
  run.pipeline = s.Text(1);
  run.file = s.Text(2);
  run.working_dir = s.Text(3);
  // The engine writes {"name": "value"}; anything else is shown as JSON.
  nlohmann::json params = nlohmann::json::parse(s.Text(4), nullptr, /*allow_exceptions=*/false);
  if (params.is_object()) {
    for (const auto& [name, value] : params.items()) {
      run.params[name] = value.is_string() ? value.get<std::string>() : value.dump();
    }
  }
  TF_ASSIGN_OR_RETURN(run.state, StateOf(ParseRunState, s.Text(5), StrCat("run ", run.id)));
  run.slots = s.Int(6);
  run.created_at_ms = s.Int(7);
  run.started_at_ms = s.OptionalInt(8);
  run.finished_at_ms = s.OptionalInt(9);
  run.engine_pid = s.OptionalInt(10);
  run.engine_host = s.Text(11);
  run.cancel_requested = s.Int(12) != 0;
  run.message = s.Text(13);
  run.priority = s.Int(14);
  if (!s.IsNull(15)) run.gc_state = s.Text(15);
  return run;
}

// Whether a process holds the run's lock (runs/RUN/lock beside the store),
// which whoever drives the run holds: read from /proc/locks, so looking
// never takes it. A live engine pid whose process no longer drives the run
// (a server whose engine for it stopped on a store error) is no engine.
// Unknown (no lock file, no /proc/locks) counts as held.
bool RunLockHeld(const std::string& db_path, const std::string& run_id) {
  std::error_code error;
  const std::filesystem::path lock =
      std::filesystem::absolute(std::filesystem::path(db_path).parent_path(), error) / "runs" /
      run_id / "lock";
  struct stat info {};
  if (error || stat(lock.c_str(), &info) != 0) return true;
  std::ifstream locks("/proc/locks");
  if (!locks) return true;
  char id[64];
  std::snprintf(id, sizeof id, "%02x:%02x:%llu", major(info.st_dev), minor(info.st_dev),
                static_cast<unsigned long long>(info.st_ino));
  // "1: FLOCK  ADVISORY  WRITE 3732 fe:00:10953073 0 EOF"; waiters have "->".
  std::string line;
  while (std::getline(locks, line)) {
    if (line.find("FLOCK") == std::string::npos || line.find("->") != std::string::npos) continue;
    if (line.find(StrCat(" ", id, " ")) != std::string::npos) return true;
  }
  return false;
}

EngineStatus ProbeRunEngine(Database& db, const std::string& run_id, RunState state,
                            std::optional<int64_t> pid, const std::string& host) {
  EngineStatus status = ProbeEngine(state, pid, host);
  if (status == EngineStatus::kAlive && !RunLockHeld(db.path(), run_id))
    status = EngineStatus::kGone;
  return status;
}

absl::Status FinishSummary(Database& db, RunSummary& run, int64_t now_ms) {
  TF_ASSIGN_OR_RETURN(
      Statement counts,
      db.Prepare("SELECT state, count(*) FROM tasks WHERE run_id = ? GROUP BY state"));
  counts.Bind(1, run.id);
  TF_RETURN_IF_ERROR(ForEachRow(counts, [&](const Statement& s) -> absl::Status {
    TF_ASSIGN_OR_RETURN(TaskState state,
                        StateOf(ParseTaskState, s.Text(0), StrCat("a task of run ", run.id)));
    Count(run.counts, state, static_cast<uint32_t>(s.Int(1)));
    return absl::OkStatus();
  }));
  run.engine = ProbeRunEngine(db, run.id, run.state, run.engine_pid, run.engine_host);
  const int64_t start = run.started_at_ms.value_or(run.created_at_ms);
  if (run.finished_at_ms) {
    run.duration_ms = std::max<int64_t>(0, *run.finished_at_ms - start);
  } else if (run.engine == EngineStatus::kAlive) {
    run.duration_ms = std::max<int64_t>(0, now_ms - start);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> AllRunIds(Database& db) {
  TF_ASSIGN_OR_RETURN(Statement ids,
                      db.Prepare("SELECT id FROM runs ORDER BY created_at DESC, rowid DESC"));
  std::vector<std::string> result;
  TF_RETURN_IF_ERROR(ForEachRow(ids, [&](const Statement& s) { result.push_back(s.Text(0)); }));
  return result;
}

absl::Status RunNotFound(Database& db, std::string_view run) {
  TF_ASSIGN_OR_RETURN(std::vector<std::string> ids, AllRunIds(db));
  if (ids.empty()) {
    return absl::NotFoundError(StrCat("no run '", CEscape(run), "' in ", db.path(),
                                      ": it holds no runs yet (start one with: tierflow run "
                                      "PIPELINE.yaml)"));
  }
  return absl::NotFoundError(StrCat("no run '", CEscape(run), "' in ", db.path(),
                                    DidYouMean(run, ids), "; list runs with: tierflow runs"));
}

// Loads lineage nodes by id and the edges around them, with statements
// prepared once per walk.
class LineageReader {
 public:
  static absl::StatusOr<LineageReader> Create(Database& db) {
    LineageReader reader;
    TF_ASSIGN_OR_RETURN(reader.attempt_, db.Prepare(StrCat(kAttemptColumns, " WHERE a.id = ?")));
    TF_ASSIGN_OR_RETURN(reader.artifact_, db.Prepare(StrCat(kArtifactColumns, " WHERE id = ?")));
    TF_ASSIGN_OR_RETURN(reader.copies_, db.Prepare(StrCat(kCopyColumns,
                                                          " WHERE c.artifact_id = ? ORDER BY "
                                                          "c.role <> 'home', c.id")));
    TF_ASSIGN_OR_RETURN(reader.by_artifact_,
                        db.Prepare("SELECT attempt_id, name FROM lineage_edges WHERE artifact_id "
                                   "= ? AND direction = ? ORDER BY id"));
    TF_ASSIGN_OR_RETURN(reader.by_attempt_,
                        db.Prepare("SELECT artifact_id, name FROM lineage_edges WHERE attempt_id "
                                   "= ? AND direction = ? ORDER BY id"));
    // A cached attempt carries the cache key of the attempt it reused, so
    // the key's index finds reusers; without a key only a scan can.
    TF_ASSIGN_OR_RETURN(reader.reusers_by_key_,
                        db.Prepare("SELECT id FROM attempts WHERE cache_key = ? AND cached_from "
                                   "= ? ORDER BY id"));
    TF_ASSIGN_OR_RETURN(reader.reusers_,
                        db.Prepare("SELECT id FROM attempts WHERE cached_from = ? ORDER BY id"));
    return reader;
  }

  absl::StatusOr<std::optional<AttemptRow>> Attempt(int64_t id) {
    std::optional<AttemptRow> result;
    attempt_->Bind(1, id);
    TF_RETURN_IF_ERROR(ForEachRow(*attempt_, [&](const Statement& s) -> absl::Status {
      TF_ASSIGN_OR_RETURN(result, ReadAttempt(s));
      return absl::OkStatus();
    }));
    return result;
  }

  absl::StatusOr<std::optional<ArtifactRow>> Artifact(int64_t id) {
    std::optional<ArtifactRow> result;
    artifact_->Bind(1, id);
    TF_RETURN_IF_ERROR(
        ForEachRow(*artifact_, [&](const Statement& s) { result = ReadArtifact(s); }));
    if (!result) return result;
    copies_->Bind(1, id);
    TF_RETURN_IF_ERROR(ForEachRow(*copies_, [&](const Statement& s) -> absl::Status {
      TF_ASSIGN_OR_RETURN(CopyRow copy, ReadCopy(s));
      result->copies.push_back(std::move(copy));
      return absl::OkStatus();
    }));
    return result;
  }

  using Named = std::vector<std::pair<int64_t, std::string>>;
  // Attempts that consumed or produced artifact `id`.
  absl::StatusOr<Named> AttemptsOf(int64_t id, std::string_view direction) {
    return Pairs(*by_artifact_, id, direction);
  }
  // Artifacts that attempt `id` consumed or produced.
  absl::StatusOr<Named> ArtifactsOf(int64_t id, std::string_view direction) {
    return Pairs(*by_attempt_, id, direction);
  }

  absl::StatusOr<std::vector<int64_t>> Reusers(const AttemptRow& attempt) {
    Statement& statement = attempt.cache_key.empty() ? *reusers_ : *reusers_by_key_;
    if (attempt.cache_key.empty()) {
      statement.Bind(1, attempt.id);
    } else {
      statement.Bind(1, attempt.cache_key).Bind(2, attempt.id);
    }
    std::vector<int64_t> ids;
    TF_RETURN_IF_ERROR(ForEachRow(statement, [&](const Statement& s) { ids.push_back(s.Int(0)); }));
    return ids;
  }

 private:
  LineageReader() = default;

  static absl::StatusOr<Named> Pairs(Statement& statement, int64_t id, std::string_view direction) {
    statement.Bind(1, id).Bind(2, direction);
    Named result;
    TF_RETURN_IF_ERROR(ForEachRow(
        statement, [&](const Statement& s) { result.emplace_back(s.Int(0), s.Text(1)); }));
    return result;
  }

  std::optional<Statement> attempt_;
  std::optional<Statement> artifact_;
  std::optional<Statement> copies_;
  std::optional<Statement> by_artifact_;
  std::optional<Statement> by_attempt_;
  std::optional<Statement> reusers_by_key_;
  std::optional<Statement> reusers_;
};

// Collects a LineageGraph: nodes loaded once, edges kept once each.
class GraphBuilder {
 public:
  GraphBuilder(LineageReader& reader, LineageGraph& graph) : reader_(reader), graph_(graph) {}

  // Loads the node into the graph; false when its row is gone.
  absl::StatusOr<bool> Add(LineageNode node) {
    if (node.type == LineageNode::Type::kAttempt) {
      if (graph_.attempts.count(node.id) > 0) return true;
      TF_ASSIGN_OR_RETURN(std::optional<AttemptRow> row, reader_.Attempt(node.id));
      if (!row) return false;
      graph_.attempts.emplace(node.id, std::move(*row));
      return true;
    }
    if (graph_.artifacts.count(node.id) > 0) return true;
    TF_ASSIGN_OR_RETURN(std::optional<ArtifactRow> row, reader_.Artifact(node.id));
    if (!row) return false;
    graph_.artifacts.emplace(node.id, std::move(*row));
    return true;
  }

  void AddEdge(LineageEdge edge) {
    if (edges_.insert(edge).second) graph_.edges.push_back(std::move(edge));
  }

 private:
  LineageReader& reader_;
  LineageGraph& graph_;
  std::set<LineageEdge> edges_;
};

using Node = LineageNode;
using Edge = LineageEdge;

// One direction of an artifact walk: a 0-1 breadth-first search where
// crossing an attempt costs one step and a reuse edge none, so `depth` cuts
// at the fewest task steps from the root whatever order nodes are found in.
absl::Status Walk(LineageReader& reader, GraphBuilder& builder, LineageGraph& graph, Node root,
                  bool upstream, std::optional<int64_t> depth) {
  std::map<Node, int64_t> level{{root, 0}};
  std::deque<Node> queue{root};
  // Nodes leave the queue in order of level: same-level nodes go in front,
  // next-level ones at the back.
  auto reach = [&](Node node, int64_t at, bool next_level) {
    auto [it, inserted] = level.emplace(node, at);
    if (!inserted && it->second <= at) return;
    it->second = at;
    if (next_level) {
      queue.push_back(node);
    } else {
      queue.push_front(node);
    }
  };
  std::set<Node> done;
  while (!queue.empty()) {
    const Node node = queue.front();
    queue.pop_front();
    if (!done.insert(node).second) continue;
    const int64_t at = level[node];
    TF_ASSIGN_OR_RETURN(bool exists, builder.Add(node));
    if (!exists) continue;
    if (node.type == Node::Type::kArtifact) {
      if (depth && at >= *depth) continue;
      TF_ASSIGN_OR_RETURN(LineageReader::Named attempts,
                          reader.AttemptsOf(node.id, upstream ? "produced" : "consumed"));
      for (const auto& [id, name] : attempts) {
        const Node attempt{Node::Type::kAttempt, id};
        TF_ASSIGN_OR_RETURN(bool found, builder.Add(attempt));
        if (!found) continue;
        builder.AddEdge(upstream ? Edge{Edge::Kind::kProduced, attempt, node, name}
                                 : Edge{Edge::Kind::kConsumed, node, attempt, name});
        reach(attempt, at, false);
      }
      continue;
    }
    TF_ASSIGN_OR_RETURN(LineageReader::Named artifacts,
                        reader.ArtifactsOf(node.id, upstream ? "consumed" : "produced"));
    for (const auto& [id, name] : artifacts) {
      const Node artifact{Node::Type::kArtifact, id};
      TF_ASSIGN_OR_RETURN(bool found, builder.Add(artifact));
      if (!found) continue;
      builder.AddEdge(upstream ? Edge{Edge::Kind::kConsumed, artifact, node, name}
                               : Edge{Edge::Kind::kProduced, node, artifact, name});
      reach(artifact, at + 1, true);
    }
    const AttemptRow attempt = graph.attempts.at(node.id);
    std::vector<int64_t> linked;
    if (upstream) {
      if (attempt.cached_from) linked.push_back(*attempt.cached_from);
    } else {
      TF_ASSIGN_OR_RETURN(linked, reader.Reusers(attempt));
    }
    for (int64_t id : linked) {
      const Node other{Node::Type::kAttempt, id};
      TF_ASSIGN_OR_RETURN(bool found, builder.Add(other));
      if (!found) continue;
      builder.AddEdge(upstream ? Edge{Edge::Kind::kReused, other, node, ""}
                               : Edge{Edge::Kind::kReused, node, other, ""});
      reach(other, at, false);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> OutputNames(Database& db, const std::string& run_id,
                                                     const std::string& task_id) {
  TF_ASSIGN_OR_RETURN(Statement names,
                      db.Prepare("SELECT DISTINCT name FROM artifacts WHERE run_id = "
                                 "? AND task_id = ? ORDER BY name"));
  names.Bind(1, run_id).Bind(2, task_id);
  std::vector<std::string> result;
  TF_RETURN_IF_ERROR(ForEachRow(names, [&](const Statement& s) { result.push_back(s.Text(0)); }));
  return result;
}

}  // namespace

std::string_view EngineStatusName(EngineStatus status) {
  switch (status) {
    case EngineStatus::kNotRunning:
      return "not_running";
    case EngineStatus::kAlive:
      return "alive";
    case EngineStatus::kGone:
      return "gone";
    case EngineStatus::kOtherHost:
      return "other_host";
  }
  return "unknown";
}

EngineStatus ProbeEngine(RunState state, std::optional<int64_t> pid, const std::string& host) {
  if (state != RunState::kRunning) return EngineStatus::kNotRunning;
  const std::string here = HostName();
  if (!host.empty() && host != here) return EngineStatus::kOtherHost;
  if (pid && EngineAlive(*pid, here)) return EngineStatus::kAlive;
  return EngineStatus::kGone;
}

absl::StatusOr<RunList> ListRuns(Database& db, const RunFilter& filter, int64_t now_ms) {
  const std::string where = filter.state ? " WHERE state = ?" : "";
  RunList list;
  {
    TF_ASSIGN_OR_RETURN(Statement count, db.Prepare(StrCat("SELECT count(*) FROM runs", where)));
    if (filter.state) count.Bind(1, RunStateName(*filter.state));
    TF_RETURN_IF_ERROR(ForEachRow(count, [&](const Statement& s) { list.total = s.Int(0); }));
  }
  TF_ASSIGN_OR_RETURN(Statement runs,
                      db.Prepare(StrCat(kRunColumns, where, " ORDER BY created_at DESC, rowid DESC",
                                        filter.limit > 0 ? " LIMIT ?" : "")));
  int index = 1;
  if (filter.state) runs.Bind(index++, RunStateName(*filter.state));
  if (filter.limit > 0) runs.Bind(index, filter.limit);
  TF_RETURN_IF_ERROR(ForEachRow(runs, [&](const Statement& s) -> absl::Status {
    TF_ASSIGN_OR_RETURN(RunSummary run, ReadRun(s));
    list.runs.push_back(std::move(run));
    return absl::OkStatus();
  }));
  for (RunSummary& run : list.runs) TF_RETURN_IF_ERROR(FinishSummary(db, run, now_ms));
  return list;
}

absl::StatusOr<RunExecutor> GetRunExecutor(Database& db, const std::string& run_id) {
  TF_ASSIGN_OR_RETURN(
      Statement find,
      db.Prepare("SELECT coalesce(executor, ''), executor_options FROM runs WHERE id = ?"));
  find.Bind(1, run_id);
  TF_ASSIGN_OR_RETURN(bool found, find.Step());
  if (!found) return absl::NotFoundError(StrCat("no run ", run_id));
  RunExecutor executor;
  executor.executor = find.Text(0);
  if (!find.IsNull(1)) executor.options = find.Text(1);
  return executor;
}

absl::StatusOr<std::string> ResolveRunId(Database& db, std::string_view run) {
  if (run == "last" || run == "latest") {
    TF_ASSIGN_OR_RETURN(
        Statement newest,
        db.Prepare("SELECT id FROM runs ORDER BY created_at DESC, rowid DESC LIMIT 1"));
    std::optional<std::string> id;
    TF_RETURN_IF_ERROR(ForEachRow(newest, [&](const Statement& s) { id = s.Text(0); }));
    if (!id) {
      return absl::NotFoundError(StrCat("no runs in ", db.path(), " yet, so '", run,
                                        "' names none (start one with: tierflow run "
                                        "PIPELINE.yaml)"));
    }
    return *id;
  }
  TF_ASSIGN_OR_RETURN(Statement find, db.Prepare("SELECT id FROM runs WHERE id = ?"));
  find.Bind(1, run);
  bool found = false;
  TF_RETURN_IF_ERROR(ForEachRow(find, [&](const Statement&) { found = true; }));
  if (!found) return RunNotFound(db, run);
  return std::string(run);
}

absl::StatusOr<RunSummary> GetRunSummary(Database& db, const std::string& run_id, int64_t now_ms) {
  TF_ASSIGN_OR_RETURN(Statement find, db.Prepare(StrCat(kRunColumns, " WHERE id = ?")));
  find.Bind(1, run_id);
  std::optional<RunSummary> run;
  TF_RETURN_IF_ERROR(ForEachRow(find, [&](const Statement& s) -> absl::Status {
    TF_ASSIGN_OR_RETURN(run, ReadRun(s));
    return absl::OkStatus();
  }));
  if (!run) return RunNotFound(db, run_id);
  TF_RETURN_IF_ERROR(FinishSummary(db, *run, now_ms));
  return *std::move(run);
}

absl::StatusOr<RunStatus> GetRunStatus(Database& db, const std::string& run_id) {
  TF_ASSIGN_OR_RETURN(Statement find,
                      db.Prepare("SELECT state, engine_pid, engine_host FROM runs WHERE id = ?"));
  find.Bind(1, run_id);
  std::optional<RunStatus> status;
  TF_RETURN_IF_ERROR(ForEachRow(find, [&](const Statement& s) -> absl::Status {
    TF_ASSIGN_OR_RETURN(RunState state, StateOf(ParseRunState, s.Text(0), StrCat("run ", run_id)));
    status = RunStatus{state, ProbeRunEngine(db, run_id, state, s.OptionalInt(1), s.Text(2))};
    return absl::OkStatus();
  }));
  if (!status) return RunNotFound(db, run_id);
  return *status;
}

std::string ArtifactRow::Ref() const { return StrCat(run_id, "/", task_id, "/", name); }

absl::StatusOr<RunDetail> GetRunDetail(Database& db, const std::string& run_id, int64_t now_ms) {
  RunDetail detail;
  TF_ASSIGN_OR_RETURN(detail.run, GetRunSummary(db, run_id, now_ms));
  std::unordered_map<std::string, size_t> task_index;
  {
    TF_ASSIGN_OR_RETURN(Statement tasks,
                        db.Prepare(StrCat(kTaskColumns, " WHERE run_id = ? ORDER BY seq, id")));
    tasks.Bind(1, run_id);
    TF_RETURN_IF_ERROR(ForEachRow(tasks, [&](const Statement& s) -> absl::Status {
      TF_ASSIGN_OR_RETURN(TaskRow task, ReadTask(s));
      task_index.emplace(task.id, detail.tasks.size());
      detail.tasks.push_back(std::move(task));
      return absl::OkStatus();
    }));
  }
  {
    TF_ASSIGN_OR_RETURN(
        Statement attempts,
        db.Prepare(StrCat(kAttemptColumns, " WHERE a.run_id = ? ORDER BY a.task_id, a.number")));
    attempts.Bind(1, run_id);
    TF_RETURN_IF_ERROR(ForEachRow(attempts, [&](const Statement& s) -> absl::Status {
      auto task = task_index.find(s.Text(2));
      if (task == task_index.end()) return absl::OkStatus();
      TF_ASSIGN_OR_RETURN(AttemptRow attempt, ReadAttempt(s));
      detail.tasks[task->second].attempts.push_back(std::move(attempt));
      return absl::OkStatus();
    }));
  }
  std::unordered_map<int64_t, ArtifactRow*> artifacts;
  {
    TF_ASSIGN_OR_RETURN(
        Statement outputs,
        db.Prepare(StrCat(kArtifactColumns,
                          " WHERE id IN (SELECT max(id) FROM artifacts WHERE run_id = ? GROUP BY "
                          "task_id, name) ORDER BY task_id, name")));  // the current outputs
    outputs.Bind(1, run_id);
    TF_RETURN_IF_ERROR(ForEachRow(outputs, [&](const Statement& s) {
      auto task = task_index.find(s.Text(2));
      if (task != task_index.end()) detail.tasks[task->second].outputs.push_back(ReadArtifact(s));
    }));
    for (TaskRow& task : detail.tasks) {
      for (ArtifactRow& artifact : task.outputs) artifacts[artifact.id] = &artifact;
    }
  }
  TF_ASSIGN_OR_RETURN(Statement copies,
                      db.Prepare(StrCat(kCopyColumns,
                                        " JOIN artifacts a ON a.id = c.artifact_id WHERE a.run_id "
                                        "= ? ORDER BY c.artifact_id, c.role <> 'home', c.id")));
  copies.Bind(1, run_id);
  TF_RETURN_IF_ERROR(ForEachRow(copies, [&](const Statement& s) -> absl::Status {
    auto artifact = artifacts.find(s.Int(1));
    if (artifact == artifacts.end()) return absl::OkStatus();
    TF_ASSIGN_OR_RETURN(CopyRow copy, ReadCopy(s));
    artifact->second->copies.push_back(std::move(copy));
    return absl::OkStatus();
  }));
  TF_ASSIGN_OR_RETURN(detail.checkpoints, ListRunCheckpoints(db, run_id));
  return detail;
}

absl::StatusOr<TaskRow> FindTask(Database& db, const std::string& run_id,
                                 const std::string& task_id) {
  TF_ASSIGN_OR_RETURN(Statement find,
                      db.Prepare(StrCat(kTaskColumns, " WHERE run_id = ? AND id = ?")));
  find.Bind(1, run_id).Bind(2, task_id);
  std::optional<TaskRow> task;
  TF_RETURN_IF_ERROR(ForEachRow(find, [&](const Statement& s) -> absl::Status {
    TF_ASSIGN_OR_RETURN(task, ReadTask(s));
    return absl::OkStatus();
  }));
  if (task) return *std::move(task);

  // The name of a foreach stage is the commonest near miss: list its tasks.
  TF_ASSIGN_OR_RETURN(Statement items, db.Prepare("SELECT id, count(*) OVER () FROM tasks WHERE "
                                                  "run_id = ? AND stage = ? ORDER BY seq"));
  items.Bind(1, run_id).Bind(2, task_id);
  std::vector<std::string> item_tasks;
  int64_t item_count = 0;
  TF_RETURN_IF_ERROR(ForEachRow(items, [&](const Statement& s) {
    if (item_tasks.size() < 3) item_tasks.push_back(s.Text(0));
    item_count = s.Int(1);
  }));
  if (!item_tasks.empty()) {
    std::string list;
    for (const std::string& id : item_tasks) list += StrCat(list.empty() ? "" : ", ", id);
    if (item_count > static_cast<int64_t>(item_tasks.size())) list += ", ...";
    return absl::NotFoundError(StrCat("no task '", CEscape(task_id), "' in run ", run_id,
                                      ": stage '", CEscape(task_id), "' has ", item_count,
                                      " foreach tasks (", list, "); name one of them"));
  }
  TF_ASSIGN_OR_RETURN(Statement all,
                      db.Prepare("SELECT id FROM tasks WHERE run_id = ? ORDER BY seq"));
  all.Bind(1, run_id);
  std::vector<std::string> ids;
  TF_RETURN_IF_ERROR(ForEachRow(all, [&](const Statement& s) { ids.push_back(s.Text(0)); }));
  return absl::NotFoundError(StrCat("no task '", CEscape(task_id), "' in run ", run_id,
                                    DidYouMean(task_id, ids),
                                    "; list its tasks with: tierflow show ", run_id));
}

absl::StatusOr<AttemptRow> FindAttempt(Database& db, const std::string& run_id,
                                       const std::string& task_id, int64_t number) {
  TF_ASSIGN_OR_RETURN(TaskRow task, FindTask(db, run_id, task_id));
  TF_ASSIGN_OR_RETURN(
      Statement find,
      db.Prepare(StrCat(kAttemptColumns, " WHERE a.run_id = ? AND a.task_id = ?",
                        number > 0 ? " AND a.number = ?" : " ORDER BY a.number DESC LIMIT 1")));
  find.Bind(1, run_id).Bind(2, task_id);
  if (number > 0) find.Bind(3, number);
  std::optional<AttemptRow> attempt;
  TF_RETURN_IF_ERROR(ForEachRow(find, [&](const Statement& s) -> absl::Status {
    TF_ASSIGN_OR_RETURN(attempt, ReadAttempt(s));
    return absl::OkStatus();
  }));
  if (attempt) return *std::move(attempt);

  TF_ASSIGN_OR_RETURN(Statement range,
                      db.Prepare("SELECT min(number), max(number) FROM attempts WHERE run_id = ? "
                                 "AND task_id = ?"));
  range.Bind(1, run_id).Bind(2, task_id);
  std::optional<int64_t> first;
  std::optional<int64_t> last;
  TF_RETURN_IF_ERROR(ForEachRow(range, [&](const Statement& s) {
    first = s.OptionalInt(0);
    last = s.OptionalInt(1);
  }));
  if (!first) {
    return absl::NotFoundError(StrCat("task ", task_id, " of run ", run_id,
                                      " has no attempts yet (it is ", TaskStateName(task.state),
                                      ")"));
  }
  return absl::NotFoundError(
      StrCat("task ", task_id, " of run ", run_id, " has no attempt ", number,
             *first == *last ? StrCat(" (only attempt ", *first, ")")
                             : StrCat(" (attempts ", *first, " to ", *last, ")")));
}

absl::StatusOr<AttemptRow> GetAttempt(Database& db, int64_t attempt_id) {
  TF_ASSIGN_OR_RETURN(LineageReader reader, LineageReader::Create(db));
  TF_ASSIGN_OR_RETURN(std::optional<AttemptRow> attempt, reader.Attempt(attempt_id));
  if (!attempt) {
    return absl::NotFoundError(StrCat("no attempt #", attempt_id, " in ", db.path()));
  }
  return *std::move(attempt);
}

// ---------------------------------------------------------------- lineage

bool IsArtifactRef(std::string_view text) {
  return text.find('/') != std::string_view::npos || (!text.empty() && text.front() == '#');
}

absl::StatusOr<ArtifactRef> ParseArtifactRef(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        StrCat("'", CEscape(text), "' is not an artifact reference: ", why,
               "; write RUN/TASK/OUTPUT (e.g. quickstart-3f9a1c/train/model) or #ID"));
  };
  ArtifactRef ref;
  if (!text.empty() && text.front() == '#') {
    std::string_view digits = text.substr(1);
    if (digits.empty()) return bad("no id after '#'");
    auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), ref.id);
    if (error == std::errc::result_out_of_range) return bad("the id is too large");
    if (error != std::errc() || end != digits.data() + digits.size() || ref.id <= 0) {
      return bad("the id after '#' must be a positive number");
    }
    return ref;
  }
  const size_t first = text.find('/');
  const size_t last = text.rfind('/');
  if (first == std::string_view::npos || first == last) {
    return bad("it needs two '/', between the run, the task and the output");
  }
  ref.run = std::string(text.substr(0, first));
  ref.task = std::string(text.substr(first + 1, last - first - 1));
  ref.output = std::string(text.substr(last + 1));
  if (ref.run.empty()) return bad("the run is empty");
  if (ref.task.empty()) return bad("the task is empty");
  if (ref.output.empty()) return bad("the output is empty");
  return ref;
}

absl::StatusOr<ArtifactRow> ResolveArtifact(Database& db, const ArtifactRef& ref) {
  TF_ASSIGN_OR_RETURN(LineageReader reader, LineageReader::Create(db));
  if (ref.id > 0) {
    TF_ASSIGN_OR_RETURN(std::optional<ArtifactRow> artifact, reader.Artifact(ref.id));
    if (!artifact) return absl::NotFoundError(StrCat("no artifact #", ref.id, " in ", db.path()));
    return *std::move(artifact);
  }
  TF_ASSIGN_OR_RETURN(std::string run_id, ResolveRunId(db, ref.run));
  TF_ASSIGN_OR_RETURN(TaskRow task, FindTask(db, run_id, ref.task));
  TF_ASSIGN_OR_RETURN(Statement find, db.Prepare("SELECT max(id) FROM artifacts WHERE run_id = ? "
                                                 "AND task_id = ? AND name = ? HAVING count(*)"));
  find.Bind(1, run_id).Bind(2, ref.task).Bind(3, ref.output);
  std::optional<int64_t> id;
  TF_RETURN_IF_ERROR(ForEachRow(find, [&](const Statement& s) { id = s.Int(0); }));
  if (id) {
    TF_ASSIGN_OR_RETURN(std::optional<ArtifactRow> artifact, reader.Artifact(*id));
    if (artifact) return *std::move(artifact);
  }
  TF_ASSIGN_OR_RETURN(std::vector<std::string> names, OutputNames(db, run_id, ref.task));
  if (names.empty()) {
    return absl::NotFoundError(StrCat("task ", ref.task, " of run ", run_id,
                                      " has no recorded outputs (it is ", TaskStateName(task.state),
                                      ")"));
  }
  std::string list;
  for (const std::string& name : names) list += StrCat(list.empty() ? "" : ", ", name);
  return absl::NotFoundError(StrCat("task ", ref.task, " of run ", run_id, " has no output '",
                                    CEscape(ref.output), "'", DidYouMean(ref.output, names),
                                    "; its outputs: ", list));
}

std::string LineageNode::Key() const {
  return StrCat(type == Type::kArtifact ? "artifact:" : "attempt:", id);
}

std::string_view LineageEdgeKindName(LineageEdge::Kind kind) {
  switch (kind) {
    case LineageEdge::Kind::kConsumed:
      return "consumed";
    case LineageEdge::Kind::kProduced:
      return "produced";
    case LineageEdge::Kind::kReused:
      return "reused";
  }
  return "unknown";
}

absl::StatusOr<LineageGraph> RunLineage(Database& db, const std::string& run_id) {
  TF_RETURN_IF_ERROR(GetRunStatus(db, run_id).status());
  LineageGraph graph;
  graph.run_id = run_id;
  TF_ASSIGN_OR_RETURN(LineageReader reader, LineageReader::Create(db));
  GraphBuilder builder(reader, graph);
  struct Row {
    int64_t attempt;
    int64_t artifact;
    bool produced;
    std::string name;
  };
  std::vector<Row> rows;
  {
    TF_ASSIGN_OR_RETURN(Statement edges,
                        db.Prepare("SELECT e.attempt_id, e.artifact_id, e.direction, e.name FROM "
                                   "lineage_edges e JOIN attempts a ON a.id = e.attempt_id WHERE "
                                   "a.run_id = ? ORDER BY e.id"));
    edges.Bind(1, run_id);
    TF_RETURN_IF_ERROR(ForEachRow(edges, [&](const Statement& s) {
      rows.push_back({s.Int(0), s.Int(1), s.Text(2) == "produced", s.Text(3)});
    }));
  }
  for (const Row& row : rows) {
    const Node attempt{Node::Type::kAttempt, row.attempt};
    const Node artifact{Node::Type::kArtifact, row.artifact};
    TF_ASSIGN_OR_RETURN(bool has_attempt, builder.Add(attempt));
    TF_ASSIGN_OR_RETURN(bool has_artifact, builder.Add(artifact));
    if (!has_attempt || !has_artifact) continue;
    builder.AddEdge(row.produced ? Edge{Edge::Kind::kProduced, attempt, artifact, row.name}
                                 : Edge{Edge::Kind::kConsumed, artifact, attempt, row.name});
  }
  std::vector<std::pair<int64_t, int64_t>> reuses;
  {
    TF_ASSIGN_OR_RETURN(Statement cached,
                        db.Prepare("SELECT id, cached_from FROM attempts WHERE run_id = ? AND "
                                   "cached_from IS NOT NULL ORDER BY id"));
    cached.Bind(1, run_id);
    TF_RETURN_IF_ERROR(
        ForEachRow(cached, [&](const Statement& s) { reuses.emplace_back(s.Int(0), s.Int(1)); }));
  }
  for (const auto& [id, from] : reuses) {
    const Node attempt{Node::Type::kAttempt, id};
    const Node original{Node::Type::kAttempt, from};
    TF_ASSIGN_OR_RETURN(bool has_attempt, builder.Add(attempt));
    TF_ASSIGN_OR_RETURN(bool has_original, builder.Add(original));
    if (has_attempt && has_original) builder.AddEdge({Edge::Kind::kReused, original, attempt, ""});
  }
  return graph;
}

absl::StatusOr<LineageGraph> ArtifactLineage(Database& db, int64_t artifact_id,
                                             LineageDirection direction,
                                             std::optional<int64_t> depth) {
  LineageGraph graph;
  graph.root = artifact_id;
  graph.direction = direction;
  TF_ASSIGN_OR_RETURN(LineageReader reader, LineageReader::Create(db));
  GraphBuilder builder(reader, graph);
  const Node root{Node::Type::kArtifact, artifact_id};
  TF_ASSIGN_OR_RETURN(bool exists, builder.Add(root));
  if (!exists) return absl::NotFoundError(StrCat("no artifact #", artifact_id, " in ", db.path()));
  graph.run_id = graph.artifacts.at(artifact_id).run_id;
  if (direction != LineageDirection::kDownstream) {
    TF_RETURN_IF_ERROR(Walk(reader, builder, graph, root, /*upstream=*/true, depth));
  }
  if (direction != LineageDirection::kUpstream) {
    TF_RETURN_IF_ERROR(Walk(reader, builder, graph, root, /*upstream=*/false, depth));
  }
  return graph;
}

}  // namespace tierflow::scheduler
