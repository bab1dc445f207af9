#include "api/http_api.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <utility>

#include "api/cluster.h"
#include "api/run_service.h"
#include "api/tier_service.h"
#include "common/metrics.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/suggest.h"
#include "common/units.h"
#include "dag/graph.h"
#include "dag/loader.h"
#include "scheduler/placement.h"
#include "scheduler/placement_record.h"
#include "scheduler/plan.h"
#include "scheduler/run_queries.h"
#include "scheduler/store.h"

namespace tierflow::api {
namespace {

using scheduler::Database;
using scheduler::Statement;
using scheduler::TaskRow;
using Json = nlohmann::ordered_json;

std::string DumpJson(const Json& json) {
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// A rendering of run_service.h / tier_service.h, read back to be composed
// into a bigger answer: the renderers stay the one definition of each shape.
Json Rendered(const std::function<void(std::ostream&)>& render) {
  std::ostringstream out;
  render(out);
  return Json::parse(out.str());
}

ApiResponse JsonResponse(const Json& json) { return {200, "application/json", DumpJson(json)}; }

std::string_view ErrorName(int status) {
  switch (status) {
    case 400:
      return "bad_request";
    case 401:
      return "unauthorized";
    case 403:
      return "forbidden";
    case 404:
      return "not_found";
    case 405:
      return "method_not_allowed";
    case 409:
      return "conflict";
    default:
      return "internal";
  }
}

absl::StatusOr<std::unique_ptr<Database>> OpenStore(const HttpApiOptions& options) {
  return scheduler::OpenStoreReadOnly(options.db_path);
}

// ------------------------------------------------------------ parameters

class Query {
 public:
  Query(std::map<std::string, std::string> values, std::vector<std::string> allowed)
      : values_(std::move(values)), allowed_(std::move(allowed)) {}

  // Unknown names are an error (naming them); `token` is the server's.
  absl::Status CheckNames() const {
    for (const auto& [name, value] : values_) {
      if (name == "token") continue;
      if (std::find(allowed_.begin(), allowed_.end(), name) == allowed_.end()) {
        std::string known;
        for (const std::string& a : allowed_) known += StrCat(known.empty() ? "" : ", ", a);
        return absl::InvalidArgumentError(StrCat(
            "unknown query parameter '", name, "'", DidYouMean(name, allowed_),
            known.empty() ? "; this endpoint takes none" : "; this endpoint takes " + known));
      }
    }
    return absl::OkStatus();
  }

  std::optional<std::string> Text(const std::string& name) const {
    auto found = values_.find(name);
    if (found == values_.end() || found->second.empty()) return std::nullopt;
    return found->second;
  }

  absl::StatusOr<std::optional<int64_t>> Int(const std::string& name, int64_t min,
                                             int64_t max) const {
    std::optional<std::string> text = Text(name);
    if (!text) return std::optional<int64_t>();
    int64_t value = 0;
    auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), value);
    if (error != std::errc() || end != text->data() + text->size()) {
      return absl::InvalidArgumentError(
          StrCat("query parameter '", name, "': '", CEscape(*text), "' is not a whole number"));
    }
    if (value < min || value > max) {
      return absl::InvalidArgumentError(StrCat("query parameter '", name, "': ", value,
                                               " is out of range (", min, " to ", max, ")"));
    }
    return std::optional<int64_t>(value);
  }

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> allowed_;
};

absl::StatusOr<Query> ParseParams(std::string_view raw, std::vector<std::string> allowed) {
  std::optional<std::map<std::string, std::string>> values = ParseQuery(raw);
  if (!values) {
    return absl::InvalidArgumentError("the query string has a bad %-escape");
  }
  Query query(std::move(*values), std::move(allowed));
  TF_RETURN_IF_ERROR(query.CheckNames());
  return query;
}

// ------------------------------------------------------ stored pipelines

// What a run recorded about how it was planned: its pipeline's YAML as it
// was read, the --param overrides, and the tiers it was placed on.
struct StoredRun {
  std::string yaml;
  std::string file;
  std::map<std::string, std::string> params;
  std::optional<std::string> tiers_json;
};

absl::StatusOr<StoredRun> LoadStoredRun(Database& db, const std::string& run_id) {
  TF_ASSIGN_OR_RETURN(Statement find,
                      db.Prepare("SELECT p.yaml, r.file, r.params_json, r.tiers_json FROM runs r "
                                 "JOIN pipelines p ON p.id = r.pipeline_id WHERE r.id = ?"));
  find.Bind(1, run_id);
  TF_ASSIGN_OR_RETURN(bool found, find.Step());
  if (!found) return absl::NotFoundError(StrCat("run ", run_id, " has no stored pipeline"));
  StoredRun run;
  run.yaml = find.Text(0);
  run.file = find.Text(1);
  Json params = Json::parse(find.Text(2), nullptr, /*allow_exceptions=*/false);
  if (params.is_object()) {
    for (const auto& [name, value] : params.items()) {
      if (value.is_string()) run.params[name] = value.get<std::string>();
    }
  }
  if (!find.IsNull(3)) run.tiers_json = find.Text(3);
  return run;
}

// The pipeline and its task graph (the graph points into the pipeline).
struct LoadedPipeline {
  std::unique_ptr<dag::Pipeline> pipeline;
  std::optional<dag::TaskGraph> graph;
};

absl::StatusOr<LoadedPipeline> LoadPipeline(const StoredRun& run) {
  dag::LoadOptions load;
  load.param_overrides = run.params;
  TF_ASSIGN_OR_RETURN(dag::Pipeline pipeline, dag::LoadPipelineText(run.yaml, run.file, load));
  LoadedPipeline loaded;
  loaded.pipeline = std::make_unique<dag::Pipeline>(std::move(pipeline));
  TF_ASSIGN_OR_RETURN(dag::TaskGraph graph, dag::TaskGraph::Build(*loaded.pipeline));
  loaded.graph.emplace(std::move(graph));
  return loaded;
}

// ------------------------------------------------------------ data wait

// Seconds a task waited for data (docs/ui.md "Time waiting on data"), by
// task id, for one run or (run_id "") every run: as its attempts measured
// it (copies waited for before the start, waits its helpers accounted), or
// for a store from before those measurements, derived from when its inputs
// were complete and when the working copies it read were made.
absl::StatusOr<std::map<std::pair<std::string, std::string>, double>> DataWaits(
    Database& db, const std::string& run_id) {
  std::map<std::pair<std::string, std::string>, double> waits;
  const std::string run_filter = run_id.empty() ? "" : " AND a.run_id = ?1";
  TF_ASSIGN_OR_RETURN(
      Statement derived,
      db.Prepare(
          StrCat("SELECT a.run_id, a.task_id, a.started_at, MAX(t.finished_at), "
                 "  (SELECT MAX(c.finished_at) FROM lineage_edges e2 JOIN artifact_copies c "
                 "     ON c.artifact_id = e2.artifact_id WHERE e2.attempt_id = a.id "
                 "     AND e2.direction = 'consumed' AND c.role = 'working' "
                 "     AND c.source_tier IS NOT NULL AND c.state != 'failed' "
                 "     AND c.finished_at <= a.started_at) "
                 "FROM attempts a "
                 "JOIN lineage_edges e ON e.attempt_id = a.id AND e.direction = 'consumed' "
                 "JOIN artifacts art ON art.id = e.artifact_id "
                 "JOIN tasks t ON t.run_id = art.run_id AND t.id = art.task_id "
                 // only where the attempts measured nothing (older stores)
                 "WHERE a.state != 'cached' AND a.input_wait_ms IS NULL AND a.data_wait_ms IS NULL",
                 run_filter,
                 " AND a.number = (SELECT MIN(b.number) FROM attempts b WHERE b.run_id = a.run_id "
                 "  AND b.task_id = a.task_id AND b.state != 'cached') "
                 "GROUP BY a.id")));
  if (!run_id.empty()) derived.Bind(1, run_id);
  for (;;) {
    TF_ASSIGN_OR_RETURN(bool row, derived.Step());
    if (!row) break;
    if (derived.IsNull(3) || derived.IsNull(4)) continue;
    const int64_t started = derived.Int(2);
    const int64_t ready = derived.Int(3);
    const int64_t copied = std::min(started, derived.Int(4));
    waits[{derived.Text(0), derived.Text(1)}] =
        static_cast<double>(std::max<int64_t>(0, copied - ready)) / 1000.0;
  }
  // Measured by the engine and the worker (store schema 6): what each
  // attempt waited for copies before it started and, while it ran, what
  // its task helpers accounted; every attempt that ran counts.
  TF_ASSIGN_OR_RETURN(
      Statement measured,
      db.Prepare(StrCat("SELECT a.run_id, a.task_id, SUM(coalesce(a.input_wait_ms, 0) + "
                        "coalesce(a.data_wait_ms, 0)) FROM attempts a WHERE a.state != 'cached' "
                        "AND (a.input_wait_ms IS NOT NULL OR a.data_wait_ms IS NOT NULL)",
                        run_filter, " GROUP BY a.run_id, a.task_id")));
  if (!run_id.empty()) measured.Bind(1, run_id);
  for (;;) {
    TF_ASSIGN_OR_RETURN(bool row, measured.Step());
    if (!row) break;
    waits[{measured.Text(0), measured.Text(1)}] = static_cast<double>(measured.Int(2)) / 1000.0;
  }
  return waits;
}

// ------------------------------------------------------------ endpoints

absl::StatusOr<ApiResponse> Runs(const HttpApiOptions& options, std::string_view raw_query) {
  TF_ASSIGN_OR_RETURN(Query query, ParseParams(raw_query, {"state", "limit"}));
  scheduler::RunFilter filter;
  TF_ASSIGN_OR_RETURN(std::optional<int64_t> limit, query.Int("limit", 0, 1000000));
  filter.limit = limit.value_or(0);
  if (std::optional<std::string> state = query.Text("state")) {
    const std::vector<std::string> states = {
        std::string(scheduler::run_state::kRunning), std::string(scheduler::run_state::kSucceeded),
        std::string(scheduler::run_state::kFailed), std::string(scheduler::run_state::kCancelled)};
    if (std::find(states.begin(), states.end(), *state) == states.end()) {
      return absl::InvalidArgumentError(StrCat("query parameter 'state': '", CEscape(*state),
                                               "' is not a run state", DidYouMean(*state, states),
                                               "; run states are running, succeeded, failed, "
                                               "cancelled"));
    }
    filter.state = *state;
  }
  TF_ASSIGN_OR_RETURN(scheduler::RunList list, ListRuns(options.db_path, filter));
  std::ostringstream out;
  RenderRunsJson(list, out);
  return ApiResponse{200, "application/json", out.str()};
}

absl::StatusOr<ApiResponse> Run(const HttpApiOptions& options, const std::string& run,
                                std::string_view raw_query) {
  TF_ASSIGN_OR_RETURN(Query query, ParseParams(raw_query, {}));
  TF_ASSIGN_OR_RETURN(scheduler::RunDetail detail, ShowRun(options.db_path, run));
  std::ostringstream out;
  RenderRunJson(detail, out);
  return ApiResponse{200, "application/json", out.str()};
}

Json RunSummaryJson(const scheduler::RunSummary& summary) {
  scheduler::RunList list;
  list.runs.push_back(summary);
  list.total = 1;
  return Rendered([&](std::ostream& out) { RenderRunsJson(list, out); })["runs"][0];
}

// A stage pair whose task edges would number more than this is drawn as one
// stage edge (a foreach of 5,000 feeding another of 5,000 is 25M edges).
constexpr size_t kMaxTaskEdgesPerStagePair = 10000;

Json OptionalJson(const std::optional<int64_t>& value) {
  return value ? Json(*value) : Json(nullptr);
}

absl::StatusOr<ApiResponse> Graph(const HttpApiOptions& options, const std::string& run,
                                  std::string_view raw_query) {
  TF_ASSIGN_OR_RETURN(Query query, ParseParams(raw_query, {}));
  TF_ASSIGN_OR_RETURN(std::unique_ptr<Database> db, OpenStore(options));
  TF_ASSIGN_OR_RETURN(std::string run_id, scheduler::ResolveRunId(*db, run));
  TF_ASSIGN_OR_RETURN(scheduler::RunSummary summary,
                      scheduler::GetRunSummary(*db, run_id, WallClockMs()));
  // Tasks without their attempts and outputs: a 5,000-task graph stays small.
  TF_ASSIGN_OR_RETURN(
      Statement tasks,
      db->Prepare("SELECT t.id, t.stage, t.kind, t.item, t.item_index, t.layer, t.seq, t.state, "
                  "t.attempts, t.started_at, t.finished_at, t.message, "
                  "(SELECT a.worker FROM attempts a WHERE a.run_id = t.run_id AND a.task_id = t.id "
                  " ORDER BY a.number DESC LIMIT 1) "
                  "FROM tasks t WHERE t.run_id = ? ORDER BY t.seq"));
  tasks.Bind(1, run_id);
  Json nodes = Json::array();
  struct Group {
    std::string kind;
    int64_t layer = 0;
    bool foreach = false;
    int64_t tasks = 0;
    std::map<std::string, int64_t> states;
    std::optional<int64_t> started_at;
    std::optional<int64_t> finished_at;
    bool unfinished = false;
    std::vector<std::string> task_ids;
  };
  std::map<std::string, Group> groups;
  std::vector<std::string> stage_order;
  for (;;) {
    TF_ASSIGN_OR_RETURN(bool row, tasks.Step());
    if (!row) break;
    const std::string stage = tasks.Text(1);
    const std::optional<int64_t> started = tasks.OptionalInt(9);
    const std::optional<int64_t> finished = tasks.OptionalInt(10);
    std::optional<int64_t> duration;
    if (started && finished) duration = std::max<int64_t>(0, *finished - *started);
    nodes.push_back(Json{{"id", tasks.Text(0)},
                         {"stage", stage},
                         {"kind", tasks.Text(2)},
                         {"item", tasks.IsNull(3) ? Json(nullptr) : Json(tasks.Text(3))},
                         {"item_index", tasks.Int(4)},
                         {"layer", tasks.Int(5)},
                         {"seq", tasks.Int(6)},
                         {"state", tasks.Text(7)},
                         {"attempt_count", tasks.Int(8)},
                         {"started_at_ms", OptionalJson(started)},
                         {"finished_at_ms", OptionalJson(finished)},
                         {"duration_ms", OptionalJson(duration)},
                         {"worker", tasks.IsNull(12) ? Json(nullptr) : Json(tasks.Text(12))},
                         {"message", tasks.Text(11)}});
    auto [it, added] = groups.try_emplace(stage);
    Group& group = it->second;
    if (added) stage_order.push_back(stage);
    group.kind = tasks.Text(2);
    group.layer = tasks.Int(5);
    group.foreach = group.foreach || !tasks.IsNull(3);
    ++group.tasks;
    ++group.states[tasks.Text(7)];
    if (started) group.started_at = std::min(group.started_at.value_or(*started), *started);
    if (finished) group.finished_at = std::max(group.finished_at.value_or(*finished), *finished);
    if (!finished) group.unfinished = true;
    group.task_ids.push_back(tasks.Text(0));
  }

  // Dependencies come from the pipeline as the run read it (YAML and params
  // stored with the run), not from lineage: lineage exists only for tasks
  // that ran, and `needs:` carries no data.
  Json edges = Json::array();
  Json stage_edges = Json::array();
  Json edges_error = nullptr;
  bool complete = true;
  absl::StatusOr<LoadedPipeline> loaded = [&]() -> absl::StatusOr<LoadedPipeline> {
    TF_ASSIGN_OR_RETURN(StoredRun stored, LoadStoredRun(*db, run_id));
    return LoadPipeline(stored);
  }();
  std::map<std::string, std::vector<std::string>> parents_of;
  std::map<std::string, std::vector<std::string>> children_of;
  if (loaded.ok()) {
    const dag::Pipeline& pipeline = *loaded->pipeline;
    const dag::TaskGraph& graph = *loaded->graph;
    for (uint32_t s = 0; s < pipeline.stages.size(); ++s) {
      const std::string& child = pipeline.stages[s].name;
      for (uint32_t p : graph.StageParents(s)) {
        const std::string& parent = pipeline.stages[p].name;
        parents_of[child].push_back(parent);
        children_of[parent].push_back(child);
        const std::vector<std::string>& from = groups[parent].task_ids;
        const std::vector<std::string>& to = groups[child].task_ids;
        const size_t count = from.size() * to.size();
        const bool collapsed = count > kMaxTaskEdgesPerStagePair;
        stage_edges.push_back(
            Json{{"from", parent}, {"to", child}, {"task_edges", count}, {"collapsed", collapsed}});
        if (collapsed) {
          complete = false;
          continue;
        }
        for (const std::string& a : from) {
          for (const std::string& b : to) edges.push_back(Json{{"from", a}, {"to", b}});
        }
      }
    }
  } else {
    complete = false;
    edges_error = StrCat("the run's pipeline could not be read again: ", loaded.status().message());
  }
  Json group_list = Json::array();
  for (const std::string& stage : stage_order) {
    const Group& group = groups[stage];
    Json states = Json::object();
    for (const auto& [state, count] : group.states) states[state] = count;
    group_list.push_back(
        Json{{"stage", stage},
             {"kind", group.kind},
             {"layer", group.layer},
             {"foreach", group.foreach},
             {"tasks", group.tasks},
             {"states", states},
             {"started_at_ms", OptionalJson(group.started_at)},
             {"finished_at_ms", group.unfinished ? Json(nullptr) : OptionalJson(group.finished_at)},
             {"parents", parents_of[stage]},
             {"children", children_of[stage]}});
  }
  return JsonResponse(Json{{"run", RunSummaryJson(summary)},
                           {"nodes", nodes},
                           {"edges", edges},
                           {"edges_complete", complete},
                           {"edges_error", edges_error},
                           {"groups", group_list},
                           {"stage_edges", stage_edges}});
}

// `tasks/...` segments: the task id (which may itself hold '/', inside a
// foreach item, when the client did not encode it) and what follows it.
std::pair<std::string, std::string> SplitTask(const std::vector<std::string>& rest) {
  std::string tail;
  size_t end = rest.size();
  if (rest.size() > 1 && (rest.back() == "attempts" || rest.back() == "logs")) {
    tail = rest.back();
    --end;
  }
  std::string task;
  for (size_t i = 0; i < end; ++i) task += (i > 0 ? "/" : "") + rest[i];
  return {task, tail};
}

absl::StatusOr<TaskRow> FindTaskDetail(Database& db, const std::string& run_id,
                                       const std::string& task_id) {
  // FindTask first: its NotFound carries the did-you-mean.
  TF_RETURN_IF_ERROR(scheduler::FindTask(db, run_id, task_id).status());
  TF_ASSIGN_OR_RETURN(scheduler::RunDetail detail,
                      scheduler::GetRunDetail(db, run_id, WallClockMs()));
  for (TaskRow& task : detail.tasks) {
    if (task.id == task_id) return std::move(task);
  }
  return absl::NotFoundError(StrCat("no task '", task_id, "' in run ", run_id));
}

Json TaskJsonOf(const TaskRow& task) {
  return Rendered([&](std::ostream& out) { RenderTaskJson(task, out); });
}

absl::StatusOr<ApiResponse> Attempts(const HttpApiOptions& options, const std::string& run,
                                     const std::string& task_id, std::string_view raw_query) {
  TF_ASSIGN_OR_RETURN(Query query, ParseParams(raw_query, {}));
  TF_ASSIGN_OR_RETURN(std::unique_ptr<Database> db, OpenStore(options));
  TF_ASSIGN_OR_RETURN(std::string run_id, scheduler::ResolveRunId(*db, run));
  TF_ASSIGN_OR_RETURN(TaskRow task, FindTaskDetail(*db, run_id, task_id));
  Json json = TaskJsonOf(task);
  return JsonResponse(
      Json{{"run_id", run_id}, {"task_id", task.id}, {"attempts", json["attempts"]}});
}

// The placement of one task's outputs, inputs and checkpoints, with their
// reasons: the decisions the engine recorded when the run started
// (`source: recorded`). A run in a store from before they were recorded
// has none; then placement is made again the way the engine made it, from
// the run's stored pipeline and params on the tiers the run recorded
// (runs.tiers_json), and labelled `recomputed`.
Json TaskPlacement(Database& db, const std::string& run_id, const std::string& task_id) {
  auto none = [](std::string_view source, std::string reason) {
    return Json{{"source", source},
                {"reason", std::move(reason)},
                {"outputs", Json::array()},
                {"inputs", Json::array()},
                {"checkpoint", nullptr}};
  };
  constexpr std::string_view kImplicit =
      "the run used the engine's one implicit tier (the store's folder)";
  absl::StatusOr<StoredRun> stored = LoadStoredRun(db, run_id);
  if (!stored.ok()) return none("unavailable", std::string(stored.status().message()));
  absl::StatusOr<std::optional<scheduler::RecordedTaskPlacement>> recorded =
      scheduler::LoadTaskPlacement(db, run_id, task_id);
  if (!recorded.ok()) return none("unavailable", std::string(recorded.status().message()));
  scheduler::Placement mine;
  Json result;
  if (recorded->has_value()) {
    mine = std::move((*recorded)->placement);
    result = Json{{"source", "recorded"}, {"checkpoint", nullptr}};
    if (!stored->tiers_json) result["reason"] = std::string(kImplicit);
    if (const std::optional<scheduler::CheckpointPlacement>& c = (*recorded)->checkpoint) {
      result["checkpoint"] = Json{{"stage", c->stage},
                                  {"write_tier", c->write_tier},
                                  {"node_tier", c->node_tier},
                                  {"flush_tier", c->flush_tier},
                                  {"reason", c->reason}};
    }
  } else {
    if (!stored->tiers_json) return none("implicit", std::string(kImplicit));
    absl::StatusOr<LoadedPipeline> loaded = LoadPipeline(*stored);
    absl::StatusOr<std::vector<scheduler::PlacementTier>> tiers =
        loaded.ok() ? scheduler::PlacementTiersFromJson(*stored->tiers_json)
                    : absl::StatusOr<std::vector<scheduler::PlacementTier>>(loaded.status());
    absl::StatusOr<scheduler::Placement> placement =
        tiers.ok() ? scheduler::PlaceArtifacts(scheduler::BuildPlan(*loaded->graph), *tiers)
                   : absl::StatusOr<scheduler::Placement>(tiers.status());
    if (!placement.ok()) return none("unavailable", std::string(placement.status().message()));
    for (const scheduler::OutputPlacement& output : placement->outputs) {
      if (output.task == task_id) mine.outputs.push_back(output);
    }
    for (const scheduler::InputPlacement& input : placement->inputs) {
      if (input.task == task_id) mine.inputs.push_back(input);
    }
    result = Json{{"source", "recomputed"}, {"checkpoint", nullptr}};
  }
  // PlacementJsonField is `,"placement":{...}`: the object after the colon.
  const std::string field = PlacementJsonField(mine);
  result.update(Json::parse(field.substr(field.find(':') + 1)));
  return result;
}

absl::StatusOr<ApiResponse> Task(const HttpApiOptions& options, const std::string& run,
                                 const std::string& task_id, std::string_view raw_query) {
  TF_ASSIGN_OR_RETURN(Query query, ParseParams(raw_query, {}));
  TF_ASSIGN_OR_RETURN(std::unique_ptr<Database> db, OpenStore(options));
  TF_ASSIGN_OR_RETURN(std::string run_id, scheduler::ResolveRunId(*db, run));
  TF_ASSIGN_OR_RETURN(TaskRow task, FindTaskDetail(*db, run_id, task_id));
  Json task_json = TaskJsonOf(task);

  Json placement = TaskPlacement(*db, run_id, task.id);
  std::map<std::string, std::string> working_tier;  // input name -> tier read from
  for (const Json& input : placement["inputs"]) {
    working_tier[input["input"].get<std::string>()] = input["working"].get<std::string>();
  }
  // Cluster mode: why each attempt went to its worker.
  TF_ASSIGN_OR_RETURN(Statement placed,
                      db->Prepare("SELECT e.attempt_id, a.number, e.time, e.message FROM events e "
                                  "LEFT JOIN attempts a ON a.id = e.attempt_id WHERE e.run_id = ? "
                                  "AND e.task_id = ? AND e.kind = 'placed' ORDER BY e.id"));
  placed.Bind(1, run_id).Bind(2, task.id);
  Json workers = Json::array();
  for (;;) {
    TF_ASSIGN_OR_RETURN(bool row, placed.Step());
    if (!row) break;
    workers.push_back(Json{{"attempt_id", OptionalJson(placed.OptionalInt(0))},
                           {"attempt", OptionalJson(placed.OptionalInt(1))},
                           {"time_ms", placed.Int(2)},
                           {"reason", placed.Text(3)}});
  }
  placement["workers"] = workers;

  // Bytes per tier. Written: what the task's attempts produced, on the tier
  // they wrote it (the copy no mover made). Read: each input once per
  // attempt that ran, on the tier placement chose for it (else its home).
  std::map<std::string, std::pair<int64_t, int64_t>> io;  // tier -> read, written
  TF_ASSIGN_OR_RETURN(
      Statement written,
      db->Prepare("SELECT c.tier, SUM(c.bytes) FROM attempts a "
                  "JOIN lineage_edges e ON e.attempt_id = a.id AND e.direction = 'produced' "
                  "JOIN artifact_copies c ON c.artifact_id = e.artifact_id "
                  "WHERE a.run_id = ? AND a.task_id = ? AND a.state != 'cached' "
                  "AND c.source_tier IS NULL GROUP BY c.tier"));
  written.Bind(1, run_id).Bind(2, task.id);
  for (;;) {
    TF_ASSIGN_OR_RETURN(bool row, written.Step());
    if (!row) break;
    io[written.Text(0)].second += written.Int(1);
  }
  TF_ASSIGN_OR_RETURN(
      Statement read,
      db->Prepare("SELECT e.name, art.bytes, (SELECT c.tier FROM artifact_copies c WHERE "
                  "c.artifact_id = art.id ORDER BY c.role != 'home', c.id LIMIT 1) "
                  "FROM attempts a JOIN lineage_edges e ON e.attempt_id = a.id "
                  "AND e.direction = 'consumed' JOIN artifacts art ON art.id = e.artifact_id "
                  "WHERE a.run_id = ? AND a.task_id = ? AND a.state != 'cached'"));
  read.Bind(1, run_id).Bind(2, task.id);
  for (;;) {
    TF_ASSIGN_OR_RETURN(bool row, read.Step());
    if (!row) break;
    auto tier = working_tier.find(read.Text(0));
    const std::string name = tier != working_tier.end() ? tier->second
                             : read.IsNull(2)           ? std::string("unknown")
                                                        : read.Text(2);
    io[name].first += read.Int(1);
  }
  Json io_json = Json::array();
  for (const auto& [tier, bytes] : io) {
    io_json.push_back(
        Json{{"tier", tier}, {"read_bytes", bytes.first}, {"written_bytes", bytes.second}});
  }

  TF_ASSIGN_OR_RETURN(auto waits, DataWaits(*db, run_id));
  auto wait = waits.find({run_id, task.id});
  TF_ASSIGN_OR_RETURN(Statement recorded,
                      db->Prepare("SELECT COUNT(*) FROM attempts WHERE run_id = ? AND task_id = ? "
                                  "AND (input_wait_ms IS NOT NULL OR data_wait_ms IS NOT NULL)"));
  recorded.Bind(1, run_id).Bind(2, task.id);
  TF_ASSIGN_OR_RETURN(bool counted, recorded.Step());
  const bool measured = counted && recorded.Int(0) > 0;

  TF_ASSIGN_OR_RETURN(Statement events,
                      db->Prepare("SELECT id, attempt_id, time, kind, message FROM events WHERE "
                                  "run_id = ? AND task_id = ? ORDER BY id"));
  events.Bind(1, run_id).Bind(2, task.id);
  Json event_list = Json::array();
  for (;;) {
    TF_ASSIGN_OR_RETURN(bool row, events.Step());
    if (!row) break;
    event_list.push_back(Json{{"id", events.Int(0)},
                              {"attempt_id", OptionalJson(events.OptionalInt(1))},
                              {"time_ms", events.Int(2)},
                              {"kind", events.Text(3)},
                              {"message", events.Text(4)}});
  }
  return JsonResponse(Json{{"run_id", run_id},
                           {"task", task_json},
                           {"placement", placement},
                           {"io", io_json},
                           {"data_wait",
                            {{"seconds", wait == waits.end() ? 0.0 : wait->second},
                             {"source", measured ? "measured" : "derived"}}},
                           {"events", event_list}});
}

constexpr int64_t kDefaultTail = 64 * 1024;
constexpr int64_t kMaxTail = 16 * 1024 * 1024;

absl::StatusOr<ApiResponse> Logs(const HttpApiOptions& options, const std::string& run,
                                 const std::string& task_id, std::string_view raw_query) {
  TF_ASSIGN_OR_RETURN(Query query, ParseParams(raw_query, {"attempt", "tail"}));
  TF_ASSIGN_OR_RETURN(std::optional<int64_t> number, query.Int("attempt", 1, 1000000000));
  TF_ASSIGN_OR_RETURN(std::optional<int64_t> tail, query.Int("tail", 0, kMaxTail));
  TF_ASSIGN_OR_RETURN(std::unique_ptr<Database> db, OpenStore(options));
  TF_ASSIGN_OR_RETURN(std::string run_id, scheduler::ResolveRunId(*db, run));
  TF_ASSIGN_OR_RETURN(scheduler::AttemptRow attempt,
                      scheduler::FindAttempt(*db, run_id, task_id, number.value_or(0)));
  const int64_t shown_number = attempt.number;
  const std::string shown_state = attempt.state;
  // A cached attempt ran nothing: its log is the one of the attempt it reused.
  Json notes = Json::array();
  for (int hops = 0; attempt.log_path.empty() && attempt.cached_from && hops < 16; ++hops) {
    TF_ASSIGN_OR_RETURN(scheduler::AttemptRow original,
                        scheduler::GetAttempt(*db, *attempt.cached_from));
    notes.push_back(StrCat(attempt.task_id, " attempt ", attempt.number, " of run ", attempt.run_id,
                           " ran nothing: it reused the outputs of ", original.run_id, "/",
                           original.task_id, " attempt ", original.number, " (#", original.id,
                           "), whose log this is"));
    attempt = std::move(original);
  }
  std::string text;
  int64_t size = 0;
  int64_t offset = 0;
  if (!attempt.log_path.empty()) {
    const int fd = ::open(attempt.log_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT) {
      return absl::PermissionDeniedError(
          StrCat("cannot read the log ", attempt.log_path, ": ", std::strerror(errno)));
    }
    if (fd < 0) {
      if (attempt.state != scheduler::attempt_state::kRunning &&
          attempt.log_bytes.value_or(0) > 0) {
        return absl::NotFoundError(StrCat("the log of ", attempt.task_id, " attempt ",
                                          attempt.number, " of run ", attempt.run_id,
                                          " is gone: ", attempt.log_path));
      }
      notes.push_back(StrCat(attempt.task_id, " attempt ", attempt.number,
                             attempt.state == scheduler::attempt_state::kRunning
                                 ? " has written nothing yet"
                                 : " wrote nothing"));
    } else {
      struct stat info {};
      fstat(fd, &info);
      size = info.st_size;
      offset = std::max<int64_t>(0, size - tail.value_or(kDefaultTail));
      text.resize(static_cast<size_t>(size - offset));
      size_t done = 0;
      while (done < text.size()) {
        const ssize_t n = pread(fd, text.data() + done, text.size() - done,
                                static_cast<off_t>(offset + static_cast<int64_t>(done)));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += static_cast<size_t>(n);
      }
      text.resize(done);
      close(fd);
    }
  } else {
    notes.push_back(StrCat(attempt.task_id, " attempt ", attempt.number, " has no log"));
  }
  return JsonResponse(Json{
      {"run_id", run_id},
      {"task_id", task_id},
      {"attempt", shown_number},
      {"state", shown_state},
      {"log_of",
       {{"run_id", attempt.run_id}, {"task_id", attempt.task_id}, {"attempt", attempt.number}}},
      {"size_bytes", size},
      {"offset", offset},
      {"truncated", offset > 0},
      {"text", text},
      {"notes", notes}});
}

absl::StatusOr<ApiResponse> Lineage(const HttpApiOptions& options, const std::string& target,
                                    bool artifact, std::string_view raw_query) {
  TF_ASSIGN_OR_RETURN(
      Query query, ParseParams(raw_query, artifact ? std::vector<std::string>{"direction", "depth"}
                                                   : std::vector<std::string>{}));
  LineageDirection direction = LineageDirection::kBoth;
  std::optional<int64_t> depth;
  if (artifact) {
    if (std::optional<std::string> text = query.Text("direction")) {
      if (*text == "up" || *text == "upstream") {
        direction = LineageDirection::kUpstream;
      } else if (*text == "down" || *text == "downstream") {
        direction = LineageDirection::kDownstream;
      } else if (*text != "both") {
        return absl::InvalidArgumentError(StrCat("query parameter 'direction': '", CEscape(*text),
                                                 "' is not up, down or both",
                                                 DidYouMean(*text, {"up", "down", "both"})));
      }
    }
    TF_ASSIGN_OR_RETURN(depth, query.Int("depth", 1, 1000000));
  }
  // An artifact is `#ID` or RUN/TASK/OUTPUT (its '/' encoded in the URL).
  std::string name = target;
  if (artifact && !name.empty() &&
      std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    name = "#" + name;
  }
  if (artifact && !scheduler::IsArtifactRef(name)) {
    return absl::InvalidArgumentError(
        StrCat("'", CEscape(target), "' is not an artifact: give its id or RUN/TASK/OUTPUT"));
  }
  TF_ASSIGN_OR_RETURN(LineageGraph graph, GetLineage(options.db_path, name, direction, depth));
  std::ostringstream out;
  RenderLineageJson(graph, out);
  return ApiResponse{200, "application/json", out.str()};
}

absl::StatusOr<ApiResponse> Tiers(const HttpApiOptions& options, std::string_view raw_query) {
  TF_ASSIGN_OR_RETURN(Query query, ParseParams(raw_query, {}));
  TF_ASSIGN_OR_RETURN(storage::TierSet tiers, LoadTiers(options.tiers_file, options.db_path));
  TF_ASSIGN_OR_RETURN(std::vector<TierView> views, ListTiers(tiers, options.db_path));
  Json list = Rendered([&](std::ostream& out) { RenderTiersJson(views, out); });
  // Usage as the store knows it: the copies present on each tier.
  TF_ASSIGN_OR_RETURN(std::unique_ptr<Database> db, OpenStore(options));
  TF_ASSIGN_OR_RETURN(Statement usage,
                      db->Prepare("SELECT tier, COUNT(*), SUM(bytes) FROM artifact_copies WHERE "
                                  "state = 'present' GROUP BY tier"));
  std::map<std::string, std::pair<int64_t, int64_t>> present;
  for (;;) {
    TF_ASSIGN_OR_RETURN(bool row, usage.Step());
    if (!row) break;
    present[usage.Text(0)] = {usage.Int(1), usage.Int(2)};
  }
  for (Json& tier : list) {
    auto found = present.find(tier["name"].get<std::string>());
    tier["stored_copies"] = found == present.end() ? 0 : found->second.first;
    tier["stored_bytes"] = found == present.end() ? 0 : found->second.second;
  }
  return JsonResponse(Json{{"tiers", list}});
}

absl::StatusOr<ApiResponse> Workers(const HttpApiOptions& options, std::string_view raw_query) {
  TF_ASSIGN_OR_RETURN(Query query, ParseParams(raw_query, {}));
  if (!options.workers_json) {
    return JsonResponse(Json{{"mode", "embedded"}, {"workers", Json::array()}});
  }
  Json workers = Json::parse(options.workers_json(), nullptr, /*allow_exceptions=*/false);
  if (workers.is_discarded()) {
    return absl::InternalError("the scheduler's list of workers is not JSON");
  }
  return JsonResponse(Json{{"mode", "cluster"}, {"workers", workers}});
}

const std::vector<std::string>& Endpoints() {
  static const std::vector<std::string> endpoints = {
      "runs", "artifacts", "tiers", "workers", "events",
  };
  return endpoints;
}

absl::StatusOr<ApiResponse> Route(const HttpApiOptions& options,
                                  const std::vector<std::string>& parts, std::string_view query) {
  const size_t n = parts.size();
  auto unknown = [&]() {
    std::string path;
    for (const std::string& part : parts) path += "/" + part;
    return absl::NotFoundError(
        StrCat("no API endpoint /api/v1", CEscape(path),
               n > 0 ? DidYouMean(parts[0], Endpoints()) : std::string(),
               "; the endpoints are /api/v1/runs, /api/v1/runs/RUN, /api/v1/runs/RUN/graph, "
               "/api/v1/runs/RUN/lineage, /api/v1/runs/RUN/tasks/TASK[/attempts|/logs], "
               "/api/v1/artifacts/ID/lineage, /api/v1/tiers, /api/v1/workers, /api/v1/events"));
  };
  if (n == 0) return unknown();
  if (parts[0] == "runs") {
    if (n == 1) return Runs(options, query);
    if (n == 2) return Run(options, parts[1], query);
    if (n == 3 && parts[2] == "graph") return Graph(options, parts[1], query);
    if (n == 3 && parts[2] == "lineage") return Lineage(options, parts[1], false, query);
    if (n >= 4 && parts[2] == "tasks") {
      auto [task, tail] = SplitTask({parts.begin() + 3, parts.end()});
      if (tail == "attempts") return Attempts(options, parts[1], task, query);
      if (tail == "logs") return Logs(options, parts[1], task, query);
      return Task(options, parts[1], task, query);
    }
    return unknown();
  }
  if (parts[0] == "artifacts" && n >= 3 && parts.back() == "lineage") {
    std::string target;
    for (size_t i = 1; i + 1 < n; ++i) target += (i > 1 ? "/" : "") + parts[i];
    return Lineage(options, target, true, query);
  }
  if (parts[0] == "tiers" && n == 1) return Tiers(options, query);
  if (parts[0] == "workers" && n == 1) return Workers(options, query);
  return unknown();
}

// ------------------------------------------------------------- metrics

const std::vector<std::string_view>& TaskStates() {
  static const std::vector<std::string_view> states = {
      scheduler::task_state::kPending,   scheduler::task_state::kQueued,
      scheduler::task_state::kRunning,   scheduler::task_state::kRetrying,
      scheduler::task_state::kSucceeded, scheduler::task_state::kCached,
      scheduler::task_state::kFailed,    scheduler::task_state::kUpstreamFailed,
      scheduler::task_state::kCancelled,
  };
  return states;
}

// Runs `sql` and calls `row` for each result row.
absl::Status ForEachRow(Database& db, std::string_view sql,
                        const std::function<void(const Statement&)>& row) {
  TF_ASSIGN_OR_RETURN(Statement statement, db.Prepare(sql));
  for (;;) {
    TF_ASSIGN_OR_RETURN(bool more, statement.Step());
    if (!more) return absl::OkStatus();
    row(statement);
  }
}

// What the store holds, measured at scrape time.
absl::Status StoreMetrics(Database& db, metrics::Registry& registry) {
  metrics::Family<metrics::Gauge>& runs =
      registry.AddGauge("tierflow_runs", "Runs in the state store by state.", {"state"});
  for (std::string_view state : {scheduler::run_state::kRunning, scheduler::run_state::kSucceeded,
                                 scheduler::run_state::kFailed, scheduler::run_state::kCancelled}) {
    runs.With({state});
  }
  TF_RETURN_IF_ERROR(
      ForEachRow(db, "SELECT state, COUNT(*) FROM runs GROUP BY state", [&](const Statement& row) {
        runs.With({row.Text(0)}).Set(static_cast<double>(row.Int(1)));
      }));

  metrics::Family<metrics::Gauge>& tasks = registry.AddGauge(
      "tierflow_tasks", "Tasks in the state store (every run) by state and stage kind.",
      {"state", "kind"});
  std::set<std::string> kinds;
  TF_RETURN_IF_ERROR(ForEachRow(db, "SELECT DISTINCT kind FROM tasks",
                                [&](const Statement& row) { kinds.insert(row.Text(0)); }));
  for (const std::string& kind : kinds) {
    for (std::string_view state : TaskStates()) tasks.With({std::string(state), kind});
  }
  TF_RETURN_IF_ERROR(
      ForEachRow(db, "SELECT state, kind, COUNT(*) FROM tasks GROUP BY state, kind",
                 [&](const Statement& row) {
                   tasks.With({row.Text(0), row.Text(1)}).Set(static_cast<double>(row.Int(2)));
                 }));

  metrics::Gauge& queue = registry
                              .AddGauge("tierflow_queue_depth",
                                        "Tasks of running runs that are ready and wait for a "
                                        "slot (state queued).")
                              .With({});
  TF_RETURN_IF_ERROR(
      ForEachRow(db,
                 "SELECT COUNT(*) FROM tasks t JOIN runs r ON r.id = t.run_id "
                 "WHERE t.state = 'queued' AND r.state = 'running'",
                 [&](const Statement& row) { queue.Set(static_cast<double>(row.Int(0))); }));

  // 0.1 s .. ~7 h.
  metrics::Family<metrics::Histogram>& durations = registry.AddHistogram(
      "tierflow_task_duration_seconds",
      "Seconds each attempt that ran took, from start to end, by stage kind (cached attempts "
      "ran nothing and are left out).",
      {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800},
      {"kind"});
  TF_RETURN_IF_ERROR(
      ForEachRow(db,
                 "SELECT t.kind, a.finished_at - a.started_at FROM attempts a JOIN tasks t "
                 "ON t.run_id = a.run_id AND t.id = a.task_id "
                 "WHERE a.finished_at IS NOT NULL AND a.state != 'cached'",
                 [&](const Statement& row) {
                   durations.With({row.Text(0)})
                       .Observe(static_cast<double>(std::max<int64_t>(0, row.Int(1))) / 1000.0);
                 }));

  metrics::Family<metrics::Counter>& moved = registry.AddCounter(
      "tierflow_bytes_moved_total",
      "Bytes copied between storage tiers (write-backs to a home, prefetches to a working "
      "tier), by tier and direction (in: copied onto the tier, out: copied off it).",
      {"tier", "direction"});
  metrics::Family<metrics::Counter>& written =
      registry.AddCounter("tierflow_bytes_written_total",
                          "Bytes tasks wrote as outputs, by the tier they wrote to.", {"tier"});
  TF_RETURN_IF_ERROR(
      ForEachRow(db,
                 "SELECT tier, source_tier, SUM(bytes) FROM artifact_copies "
                 "WHERE state NOT IN ('copying', 'failed') GROUP BY tier, source_tier",
                 [&](const Statement& row) {
                   const double bytes = static_cast<double>(row.Int(2));
                   if (row.IsNull(1)) {
                     written.With({row.Text(0)}).Increment(bytes);
                   } else {
                     moved.With({row.Text(0), "in"}).Increment(bytes);
                     moved.With({row.Text(1), "out"}).Increment(bytes);
                   }
                 }));

  // 1 MB/s .. ~16 GB/s.
  metrics::Family<metrics::Histogram>& throughput = registry.AddHistogram(
      "tierflow_transfer_throughput_bytes_per_second",
      "Throughput of each finished copy between tiers still present (bytes over the time "
      "from its start to its end, at millisecond resolution), by destination tier.",
      metrics::ExponentialBuckets(1e6, 4, 8), {"tier"});
  TF_RETURN_IF_ERROR(ForEachRow(
      db,
      "SELECT tier, bytes, finished_at - created_at FROM artifact_copies "
      "WHERE source_tier IS NOT NULL AND state = 'present' AND finished_at IS NOT NULL",
      [&](const Statement& row) {
        const double seconds = static_cast<double>(std::max<int64_t>(1, row.Int(2))) / 1000.0;
        throughput.With({row.Text(0)}).Observe(static_cast<double>(row.Int(1)) / seconds);
      }));

  metrics::Counter& waited =
      registry
          .AddCounter("tierflow_data_wait_seconds_total",
                      "Seconds tasks waited for data: for copies of their inputs once "
                      "otherwise ready, and for streamed files while they ran (docs/ui.md).")
          .With({});
  TF_ASSIGN_OR_RETURN(auto waits, DataWaits(db, ""));
  for (const auto& [task, seconds] : waits) waited.Increment(seconds);
  return absl::OkStatus();
}

}  // namespace

std::string RenderWorkersJson(const std::vector<RemoteWorker>& workers) {
  Json list = Json::array();
  for (const RemoteWorker& worker : workers) {
    list.push_back(Json{{"name", worker.name},
                        {"slots", worker.slots},
                        {"running", worker.running},
                        {"last_heartbeat_ms", worker.last_heartbeat_ms}});
  }
  return DumpJson(list);
}

ApiResponse ErrorResponse(int status, std::string_view message) {
  return {status, "application/json",
          DumpJson(Json{{"status", status},
                        {"error", std::string(ErrorName(status))},
                        {"message", std::string(message)}})};
}

ApiResponse ErrorResponse(const absl::Status& status) {
  int code = 500;
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      code = 404;
      break;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      code = 400;
      break;
    case absl::StatusCode::kFailedPrecondition:
      code = 409;
      break;
    case absl::StatusCode::kPermissionDenied:
      code = 403;
      break;
    case absl::StatusCode::kUnauthenticated:
      code = 401;
      break;
    default:
      break;
  }
  return ErrorResponse(code, std::string(status.message()));
}

ApiResponse HandleApiGet(const HttpApiOptions& options, std::string_view path,
                         std::string_view query) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view raw = path.substr(start, end - start);
    if (!raw.empty()) {
      std::optional<std::string> part = PercentDecode(raw, /*plus_is_space=*/false);
      if (!part) return ErrorResponse(400, StrCat("bad %-escape in the path: ", CEscape(raw)));
      parts.push_back(std::move(*part));
    }
    start = end + 1;
  }
  try {
    absl::StatusOr<ApiResponse> response = Route(options, parts, query);
    if (!response.ok()) return ErrorResponse(response.status());
    return std::move(*response);
  } catch (const std::exception& error) {
    return ErrorResponse(500, StrCat("internal error: ", error.what()));
  }
}

absl::StatusOr<std::string> RenderMetrics(const HttpApiOptions& options) {
  TF_ASSIGN_OR_RETURN(std::unique_ptr<Database> db, OpenStore(options));
  metrics::Registry store;
  TF_RETURN_IF_ERROR(StoreMetrics(*db, store));
  return store.Render() + metrics::Default().Render();
}

std::optional<std::string> PercentDecode(std::string_view text, bool plus_is_space) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      const int high = hex(text[i + 1]);
      const int low = hex(text[i + 2]);
      if (high < 0 || low < 0) return std::nullopt;
      out.push_back(static_cast<char>(high * 16 + low));
      i += 2;
    } else if (plus_is_space && text[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

std::optional<std::map<std::string, std::string>> ParseQuery(std::string_view query) {
  std::map<std::string, std::string> values;
  size_t start = 0;
  while (start < query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string_view::npos) end = query.size();
    std::string_view pair = query.substr(start, end - start);
    start = end + 1;
    if (pair.empty()) continue;
    const size_t equals = pair.find('=');
    std::optional<std::string> name = PercentDecode(pair.substr(0, equals), true);
    std::optional<std::string> value =
        PercentDecode(equals == std::string_view::npos ? "" : pair.substr(equals + 1), true);
    if (!name || !value) return std::nullopt;
    values[*name] = std::move(*value);
  }
  return values;
}

std::string HtmlSafeJson(std::string_view json) {
  std::string out;
  out.reserve(json.size());
  for (char c : json) {
    switch (c) {
      case '<':
        out += "\\u003c";
        break;
      case '>':
        out += "\\u003e";
        break;
      case '&':
        out += "\\u0026";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

}  // namespace tierflow::api

// ----------------------------------------------------------- event feed

namespace tierflow::api {
namespace {

bool IsTaskState(std::string_view word) {
  const std::vector<std::string_view>& states = TaskStates();
  return std::find(states.begin(), states.end(), word) != states.end();
}

constexpr std::string_view kEventColumns =
    "SELECT id, run_id, task_id, attempt_id, time, kind, message FROM events";

FeedEvent RenderEventRow(Database& db, const Statement& row) {
  FeedEvent event;
  event.id = row.Int(0);
  const std::string run_id = row.Text(1);
  const bool task = !row.IsNull(2) && !row.Text(2).empty();
  const std::string kind = row.Text(5);
  Json data{{"id", row.Int(0)},
            {"run_id", run_id},
            {"task_id", task ? Json(row.Text(2)) : Json(nullptr)},
            {"attempt_id", OptionalJson(row.OptionalInt(3))},
            {"time_ms", row.Int(4)},
            {"kind", kind},
            {"message", row.Text(6)}};
  if (task) {
    event.type = "task";
    data["state"] = IsTaskState(kind) ? Json(kind) : Json(nullptr);
  } else {
    event.type = "run";
    absl::StatusOr<scheduler::RunSummary> summary =
        scheduler::GetRunSummary(db, run_id, WallClockMs());
    data["run"] = summary.ok() ? RunSummaryJson(*summary) : Json(nullptr);
  }
  event.data = HtmlSafeJson(DumpJson(data));
  return event;
}

constexpr size_t kFeedMemory = 4096;  // events kept for subscribers that fall behind

}  // namespace

EventFeed::EventFeed(std::string db_path, std::chrono::milliseconds interval)
    : db_path_(std::move(db_path)), interval_(interval), thread_([this] { Loop(); }) {}

EventFeed::~EventFeed() {
  Stop();
  thread_.join();
}

void EventFeed::Stop() {
  std::lock_guard lock(mu_);
  stop_ = true;
  changed_.notify_all();
}

bool EventFeed::stopped() const {
  std::lock_guard lock(mu_);
  return stop_;
}

uint64_t EventFeed::End() const {
  std::lock_guard lock(mu_);
  return first_ + events_.size();
}

std::vector<FeedEvent> EventFeed::Wait(uint64_t* position, std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  changed_.wait_for(lock, wait, [&] { return stop_ || first_ + events_.size() > *position; });
  std::vector<FeedEvent> events;
  if (stop_) return events;
  if (*position < first_) *position = first_;  // fell behind: what was dropped is gone
  for (uint64_t i = *position - first_; i < events_.size(); ++i) events.push_back(events_[i]);
  *position = first_ + events_.size();
  return events;
}

absl::StatusOr<std::vector<FeedEvent>> EventFeed::Since(int64_t after, size_t limit) const {
  TF_ASSIGN_OR_RETURN(std::unique_ptr<Database> db, scheduler::OpenStoreReadOnly(db_path_));
  TF_ASSIGN_OR_RETURN(Statement rows,
                      db->Prepare(StrCat(kEventColumns, " WHERE id > ? ORDER BY id LIMIT ?")));
  rows.Bind(1, after).Bind(2, static_cast<int64_t>(limit));
  std::vector<FeedEvent> events;
  for (;;) {
    TF_ASSIGN_OR_RETURN(bool row, rows.Step());
    if (!row) break;
    events.push_back(RenderEventRow(*db, rows));
  }
  return events;
}

void EventFeed::Loop() {
  std::unique_ptr<Database> db;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      if (changed_.wait_for(lock, interval_, [&] { return stop_; })) return;
    }
    if (!db) {
      absl::StatusOr<std::unique_ptr<Database>> opened = scheduler::OpenStoreReadOnly(db_path_);
      if (!opened.ok()) continue;  // not there yet: a server makes it with its first run
      db = std::move(*opened);
    }
    std::vector<FeedEvent> fresh;
    absl::Status status = [&]() -> absl::Status {
      const bool first = last_id_ < 0;
      if (first) {
        TF_ASSIGN_OR_RETURN(Statement newest,
                            db->Prepare("SELECT COALESCE(MAX(id), 0) FROM events"));
        TF_ASSIGN_OR_RETURN(bool row, newest.Step());
        last_id_ = row ? newest.Int(0) : 0;
      }
      std::set<std::string> touched;    // runs whose tasks changed
      std::set<std::string> announced;  // runs with a run event in this batch
      TF_ASSIGN_OR_RETURN(
          Statement rows,
          db->Prepare(StrCat(kEventColumns, " WHERE id > ? ORDER BY id LIMIT 1000")));
      rows.Bind(1, last_id_);
      for (;;) {
        TF_ASSIGN_OR_RETURN(bool row, rows.Step());
        if (!row) break;
        last_id_ = rows.Int(0);
        FeedEvent event = RenderEventRow(*db, rows);
        (event.type == "run" ? announced : touched).insert(rows.Text(1));
        fresh.push_back(std::move(event));
      }
      rows.Reset();
      // `queued` has no event row (the engine writes only the task row), so
      // the task states of running runs are compared with the last poll.
      std::map<std::string, std::map<std::string, std::string>> states;
      TF_ASSIGN_OR_RETURN(
          Statement running,
          db->Prepare("SELECT t.run_id, t.id, t.state FROM tasks t JOIN runs r ON r.id = t.run_id "
                      "WHERE r.state = 'running'"));
      for (;;) {
        TF_ASSIGN_OR_RETURN(bool row, running.Step());
        if (!row) break;
        const std::string run_id = running.Text(0);
        const std::string task_id = running.Text(1);
        const std::string state = running.Text(2);
        auto before = task_states_.find(run_id);
        if (!first && state == scheduler::task_state::kQueued &&
            (before == task_states_.end() || before->second[task_id] != state)) {
          fresh.push_back(FeedEvent{std::nullopt, "task",
                                    HtmlSafeJson(DumpJson(Json{{"id", nullptr},
                                                               {"run_id", run_id},
                                                               {"task_id", task_id},
                                                               {"attempt_id", nullptr},
                                                               {"time_ms", WallClockMs()},
                                                               {"kind", state},
                                                               {"message", ""},
                                                               {"state", state}}))});
          touched.insert(run_id);
        }
        states[run_id][task_id] = state;
      }
      running.Reset();
      task_states_ = std::move(states);
      for (const std::string& run_id : touched) {
        if (announced.count(run_id) > 0) continue;
        absl::StatusOr<scheduler::RunSummary> summary =
            scheduler::GetRunSummary(*db, run_id, WallClockMs());
        if (!summary.ok()) continue;
        fresh.push_back(FeedEvent{std::nullopt, "run",
                                  HtmlSafeJson(DumpJson(Json{{"id", nullptr},
                                                             {"run_id", run_id},
                                                             {"task_id", nullptr},
                                                             {"time_ms", WallClockMs()},
                                                             {"kind", "progress"},
                                                             {"message", ""},
                                                             {"run", RunSummaryJson(*summary)}}))});
      }
      return absl::OkStatus();
    }();
    if (!status.ok()) {
      db.reset();  // opened again at the next poll
      continue;
    }
    if (fresh.empty()) continue;
    std::lock_guard lock(mu_);
    for (FeedEvent& event : fresh) events_.push_back(std::move(event));
    while (events_.size() > kFeedMemory) {
      events_.pop_front();
      ++first_;
    }
    changed_.notify_all();
  }
}

}  // namespace tierflow::api
