// The JSON API's routing and handlers (http_api.h HandleApiGet): each
// endpoint parses its query, reads the store through the store layer
// (scheduler/run_queries.h, scheduler/api_queries.h) and composes the
// renderings of run_service.h and tier_service.h. No SQL here. Stateless;
// safe from any thread.
#include "api/http_api.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <sstream>
#include <utility>

#include "api/internal/http_data.h"
#include "api/internal/http_failures.h"
#include "api/internal/http_json.h"
#include "api/run_service.h"
#include "api/tier_service.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/suggest.h"
#include "common/units.h"
#include "dag/graph.h"
#include "dag/loader.h"
#include "scheduler/api_queries.h"
#include "scheduler/placement.h"
#include "scheduler/placement_record.h"
#include "scheduler/plan.h"
#include "scheduler/run_queries.h"
#include "scheduler/store.h"

namespace tierflow::api {
namespace {

using scheduler::Database;
using scheduler::TaskRow;

// ------------------------------------------------------ stored pipelines

using scheduler::StoredPipeline;

// The pipeline and its task graph (the graph points into the pipeline).
struct LoadedPipeline {
  std::unique_ptr<dag::Pipeline> pipeline;
  std::optional<dag::TaskGraph> graph;
};

absl::StatusOr<LoadedPipeline> LoadPipeline(const StoredPipeline& run) {
  dag::LoadOptions load;
  load.param_overrides = run.params;
  TF_ASSIGN_OR_RETURN(dag::Pipeline pipeline, dag::LoadPipelineText(run.yaml, run.file, load));
  LoadedPipeline loaded;
  loaded.pipeline = std::make_unique<dag::Pipeline>(std::move(pipeline));
  TF_ASSIGN_OR_RETURN(dag::TaskGraph graph, dag::TaskGraph::Build(*loaded.pipeline));
  loaded.graph.emplace(std::move(graph));
  return loaded;
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
    TF_ASSIGN_OR_RETURN(filter.state, scheduler::ParseRunState(*state));
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

// A stage pair whose task edges would number more than this is drawn as one
// stage edge (a foreach of 5,000 feeding another of 5,000 is 25M edges).
constexpr size_t kMaxTaskEdgesPerStagePair = 10000;

absl::StatusOr<ApiResponse> Graph(const HttpApiOptions& options, const std::string& run,
                                  std::string_view raw_query) {
  TF_ASSIGN_OR_RETURN(Query query, ParseParams(raw_query, {}));
  TF_ASSIGN_OR_RETURN(std::unique_ptr<Database> db, OpenStore(options));
  TF_ASSIGN_OR_RETURN(std::string run_id, scheduler::ResolveRunId(*db, run));
  TF_ASSIGN_OR_RETURN(scheduler::RunSummary summary,
                      scheduler::GetRunSummary(*db, run_id, WallClockMs()));
  // Tasks without their attempts and outputs: a 5,000-task graph stays small.
  TF_ASSIGN_OR_RETURN(std::vector<scheduler::GraphTask> tasks,
                      scheduler::ListGraphTasks(*db, run_id));
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
  for (const scheduler::GraphTask& task : tasks) {
    const std::string state(scheduler::TaskStateName(task.state));
    std::optional<int64_t> duration;
    if (task.started_at_ms && task.finished_at_ms) {
      duration = std::max<int64_t>(0, *task.finished_at_ms - *task.started_at_ms);
    }
    nodes.push_back(Json{{"id", task.id},
                         {"stage", task.stage},
                         {"kind", task.kind},
                         {"item", task.item ? Json(*task.item) : Json(nullptr)},
                         {"item_index", task.item_index},
                         {"layer", task.layer},
                         {"seq", task.seq},
                         {"state", state},
                         {"attempt_count", task.attempt_count},
                         {"started_at_ms", OptionalJson(task.started_at_ms)},
                         {"finished_at_ms", OptionalJson(task.finished_at_ms)},
                         {"duration_ms", OptionalJson(duration)},
                         {"worker", task.worker ? Json(*task.worker) : Json(nullptr)},
                         {"message", task.message}});
    auto [it, added] = groups.try_emplace(task.stage);
    Group& group = it->second;
    if (added) stage_order.push_back(task.stage);
    group.kind = task.kind;
    group.layer = task.layer;
    group.foreach = group.foreach || task.item.has_value();
    ++group.tasks;
    ++group.states[state];
    if (const auto& started = task.started_at_ms) {
      group.started_at = std::min(group.started_at.value_or(*started), *started);
    }
    if (const auto& finished = task.finished_at_ms) {
      group.finished_at = std::max(group.finished_at.value_or(*finished), *finished);
    } else {
      group.unfinished = true;
    }
    group.task_ids.push_back(task.id);
  }

  // Dependencies come from the pipeline as the run read it (YAML and params
  // stored with the run), not from lineage: lineage exists only for tasks
  // that ran, and `needs:` carries no data.
  Json edges = Json::array();
  Json stage_edges = Json::array();
  Json edges_error = nullptr;
  bool complete = true;
  absl::StatusOr<LoadedPipeline> loaded = [&]() -> absl::StatusOr<LoadedPipeline> {
    TF_ASSIGN_OR_RETURN(StoredPipeline stored, scheduler::GetStoredPipeline(*db, run_id));
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
  absl::StatusOr<StoredPipeline> stored = scheduler::GetStoredPipeline(db, run_id);
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
        tiers.ok()
            ? scheduler::PlaceArtifacts(
                  scheduler::BuildPlan(*loaded->graph, scheduler::PlanDetail::kPlacement), *tiers)
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
  TF_ASSIGN_OR_RETURN(std::vector<scheduler::WorkerChoice> choices,
                      scheduler::ListWorkerChoices(*db, run_id, task.id));
  Json workers = Json::array();
  for (const scheduler::WorkerChoice& choice : choices) {
    workers.push_back(Json{{"attempt_id", OptionalJson(choice.attempt_id)},
                           {"attempt", OptionalJson(choice.attempt_number)},
                           {"time_ms", choice.time_ms},
                           {"reason", choice.reason}});
  }
  placement["workers"] = workers;

  // Bytes per tier. Written: what the task's attempts produced, on the tier
  // they wrote it (the copy no mover made). Read: each input once per
  // attempt that ran, on the tier placement chose for it (else its home).
  std::map<std::string, std::pair<int64_t, int64_t>> io;  // tier -> read, written
  TF_ASSIGN_OR_RETURN(auto written, scheduler::TaskWrittenBytes(*db, run_id, task.id));
  for (const auto& [tier, bytes] : written) io[tier].second += bytes;
  TF_ASSIGN_OR_RETURN(std::vector<scheduler::InputRead> reads,
                      scheduler::TaskInputReads(*db, run_id, task.id));
  for (const scheduler::InputRead& read : reads) {
    auto tier = working_tier.find(read.input);
    const std::string name =
        tier != working_tier.end() ? tier->second : read.first_tier.value_or("unknown");
    io[name].first += read.bytes;
  }
  Json io_json = Json::array();
  for (const auto& [tier, bytes] : io) {
    io_json.push_back(
        Json{{"tier", tier}, {"read_bytes", bytes.first}, {"written_bytes", bytes.second}});
  }

  TF_ASSIGN_OR_RETURN(auto waits, scheduler::DataWaitSeconds(*db, run_id));
  auto wait = waits.find({run_id, task.id});
  TF_ASSIGN_OR_RETURN(const bool measured, scheduler::DataWaitMeasured(*db, run_id, task.id));

  TF_ASSIGN_OR_RETURN(std::vector<scheduler::EventRow> events,
                      scheduler::ListTaskEvents(*db, run_id, task.id));
  Json event_list = Json::array();
  for (const scheduler::EventRow& event : events) {
    event_list.push_back(Json{{"id", event.id},
                              {"attempt_id", OptionalJson(event.attempt_id)},
                              {"time_ms", event.time_ms},
                              {"kind", event.kind},
                              {"message", event.message}});
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
  const std::string shown_state(scheduler::AttemptStateName(attempt.state));
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
      if (attempt.state != scheduler::AttemptState::kRunning && attempt.log_bytes.value_or(0) > 0) {
        return absl::NotFoundError(StrCat("the log of ", attempt.task_id, " attempt ",
                                          attempt.number, " of run ", attempt.run_id,
                                          " is gone: ", attempt.log_path));
      }
      notes.push_back(StrCat(attempt.task_id, " attempt ", attempt.number,
                             attempt.state == scheduler::AttemptState::kRunning
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
  TF_ASSIGN_OR_RETURN(auto present, scheduler::PresentCopiesByTier(*db));
  for (Json& tier : list) {
    auto found = present.find(tier["name"].get<std::string>());
    tier["stored_copies"] = found == present.end() ? 0 : found->second.copies;
    tier["stored_bytes"] = found == present.end() ? 0 : found->second.bytes;
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
               "/api/v1/runs/RUN/lineage, /api/v1/runs/RUN/failures, /api/v1/runs/RUN/tiers, "
               "/api/v1/runs/RUN/checkpoints, /api/v1/runs/RUN/tasks/TASK[/attempts|/logs], "
               "/api/v1/artifacts/ID/lineage, /api/v1/artifacts/ID/download, /api/v1/tiers, "
               "/api/v1/workers, /api/v1/events"));
  };
  if (n == 0) return unknown();
  if (parts[0] == "runs") {
    if (n == 1) return Runs(options, query);
    if (n == 2) return Run(options, parts[1], query);
    if (n == 3 && parts[2] == "graph") return Graph(options, parts[1], query);
    if (n == 3 && parts[2] == "lineage") return Lineage(options, parts[1], false, query);
    if (n == 3 && parts[2] == "failures") return Failures(options, parts[1], query);
    if (n == 3 && parts[2] == "tiers") return RunTiers(options, parts[1], query);
    if (n == 3 && parts[2] == "checkpoints") return RunCheckpoints(options, parts[1], query);
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
  if (parts[0] == "artifacts" && n >= 3 && parts.back() == "download") {
    std::string target;
    for (size_t i = 1; i + 1 < n; ++i) target += (i > 1 ? "/" : "") + parts[i];
    return DownloadArtifact(options, target, query);
  }
  if (parts[0] == "tiers" && n == 1) return Tiers(options, query);
  if (parts[0] == "workers" && n == 1) return Workers(options, query);
  return unknown();
}

}  // namespace

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

}  // namespace tierflow::api
