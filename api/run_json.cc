// The JSON renderings of run_service.h for scripts: runs, one run, one
// task, a lineage graph. Field names are snake_case and stay stable; times
// are milliseconds since the epoch, sizes bytes, unknowns null. Stateless;
// safe from any thread.
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <string_view>

#include "api/internal/run_render.h"
#include "api/run_service.h"

namespace tierflow::api {
namespace {

using Json = nlohmann::ordered_json;

Json Optional(const std::optional<int64_t>& value) { return value ? Json(*value) : Json(nullptr); }
Json OptionalText(const std::string& value) { return value.empty() ? Json(nullptr) : Json(value); }

void Dump(const Json& json, std::ostream& out) {
  // Invalid UTF-8 in a name or message becomes U+FFFD: the output stays JSON.
  out << json.dump(2, ' ', false, Json::error_handler_t::replace) << '\n';
}

}  // namespace

nlohmann::ordered_json CountsJson(const scheduler::RunCounts& c) {
  return Json{{"total", c.total},         {"done", c.done()},
              {"pending", c.pending},     {"queued", c.queued},
              {"running", c.running},     {"retrying", c.retrying},
              {"succeeded", c.succeeded}, {"cached", c.cached},
              {"failed", c.failed},       {"upstream_failed", c.upstream_failed},
              {"cancelled", c.cancelled}};
}

namespace {

Json RunJson(const RunSummary& run) {
  Json params = Json::object();
  for (const auto& [name, value] : run.params) params[name] = value;
  const scheduler::RunCounts& c = run.counts;
  Json alive = run.engine == EngineStatus::kOtherHost ? Json(nullptr)
                                                      : Json(run.engine == EngineStatus::kAlive);
  return Json{{"id", run.id},
              {"pipeline", run.pipeline},
              {"file", run.file},
              {"working_dir", run.working_dir},
              {"params", params},
              {"state", StateWord(run.state)},
              {"engine", std::string(scheduler::EngineStatusName(run.engine))},
              {"engine_alive", alive},
              {"engine_pid", Optional(run.engine_pid)},
              {"engine_host", OptionalText(run.engine_host)},
              {"slots", run.slots},
              {"created_at_ms", run.created_at_ms},
              {"started_at_ms", Optional(run.started_at_ms)},
              {"finished_at_ms", Optional(run.finished_at_ms)},
              {"duration_ms", Optional(run.duration_ms)},
              {"cancel_requested", run.cancel_requested},
              {"message", run.message},
              {"tasks", CountsJson(c)}};
}

Json CopyJson(const CopyRow& copy) {
  return Json{{"id", copy.id},
              {"tier", copy.tier},
              {"uri", copy.uri},
              {"role", copy.role},
              {"bytes", copy.bytes},
              {"content_hash", copy.content_hash},
              {"state", StateWord(copy.state)},
              {"created_at_ms", copy.created_at_ms},
              {"message", copy.message}};
}

// The artifact's fields after `id_field` (its row id).
Json ArtifactJson(const ArtifactRow& artifact, std::string_view id_field) {
  Json copies = Json::array();
  for (const CopyRow& copy : artifact.copies) copies.push_back(CopyJson(copy));
  return Json{{std::string(id_field), artifact.id},
              {"ref", artifact.Ref()},
              {"run_id", artifact.run_id},
              {"task_id", artifact.task_id},
              {"name", artifact.name},
              {"attempt_id", artifact.attempt_id},
              {"content_hash", artifact.content_hash},
              {"bytes", artifact.bytes},
              {"files", artifact.files},
              {"created_at_ms", artifact.created_at_ms},
              {"copies", copies}};
}

Json ReadsJson(const AttemptRow& attempt) {
  Json reads = Json::array();
  for (const AttemptRow::Read& read : attempt.reads) {
    reads.push_back({{"input", read.input}, {"tier", read.tier}, {"bytes", read.bytes}});
  }
  return reads;
}

Json AttemptJson(const AttemptRow& attempt) {
  Json command = Json::parse(attempt.command, nullptr, /*allow_exceptions=*/false);
  if (command.is_discarded()) command = attempt.command;
  Json cached_from_ref = nullptr;
  if (attempt.cached_from && attempt.cached_from_number > 0) {
    cached_from_ref = Json{{"run_id", attempt.cached_from_run},
                           {"task_id", attempt.cached_from_task},
                           {"number", attempt.cached_from_number}};
  }
  return Json{{"id", attempt.id},
              {"number", attempt.number},
              {"state", StateWord(attempt.state)},
              {"worker", attempt.worker},
              {"pid", Optional(attempt.pid)},
              {"command", command},
              {"cache_key", OptionalText(attempt.cache_key)},
              {"cached_from", Optional(attempt.cached_from)},
              {"cached_from_ref", cached_from_ref},
              {"started_at_ms", attempt.started_at_ms},
              {"finished_at_ms", Optional(attempt.finished_at_ms)},
              {"duration_ms", Optional(Between(attempt.started_at_ms, attempt.finished_at_ms))},
              {"exit_code", Optional(attempt.exit_code)},
              {"signal", Optional(attempt.signal)},
              {"message", attempt.message},
              {"log_path", OptionalText(attempt.log_path)},
              {"log_bytes", Optional(attempt.log_bytes)},
              {"input_wait_ms", Optional(attempt.input_wait_ms)},
              {"data_wait_ms", Optional(attempt.data_wait_ms)},
              {"io_wait_ms", Optional(attempt.io_wait_ms)},
              {"read_bytes", Optional(attempt.read_bytes)},
              {"write_bytes", Optional(attempt.write_bytes)},
              {"reads", ReadsJson(attempt)}};
}

Json TaskJson(const TaskRow& task) {
  Json attempts = Json::array();
  for (const AttemptRow& attempt : task.attempts) attempts.push_back(AttemptJson(attempt));
  Json outputs = Json::array();
  for (const ArtifactRow& artifact : task.outputs) outputs.push_back(ArtifactJson(artifact, "id"));
  return Json{{"id", task.id},
              {"seq", task.seq},
              {"stage", task.stage},
              {"kind", task.kind},
              {"item", task.item ? Json(*task.item) : Json(nullptr)},
              {"item_index", task.item_index},
              {"layer", task.layer},
              {"state", StateWord(task.state)},
              {"attempt_count", task.attempt_count},
              {"cache_key", OptionalText(task.cache_key)},
              {"started_at_ms", Optional(task.started_at_ms)},
              {"finished_at_ms", Optional(task.finished_at_ms)},
              {"duration_ms", Optional(Between(task.started_at_ms, task.finished_at_ms))},
              {"message", task.message},
              {"attempts", attempts},
              {"outputs", outputs}};
}

}  // namespace

void RenderRunsJson(const RunList& list, std::ostream& out) {
  Json runs = Json::array();
  for (const RunSummary& run : list.runs) runs.push_back(RunJson(run));
  Dump(Json{{"runs", runs}, {"total", list.total}}, out);
}

void RenderRunJson(const RunDetail& detail, std::ostream& out) {
  Json tasks = Json::array();
  for (const TaskRow& task : detail.tasks) tasks.push_back(TaskJson(task));
  Json advice = Json::array();
  for (const DataWait& wait : DataWaits(detail)) {
    if (!wait.advice.empty()) advice.push_back(wait.advice);
  }
  Json checkpoints = Json::array();
  for (const scheduler::CheckpointRow& row : detail.checkpoints) {
    checkpoints.push_back({{"task_id", row.task_id},
                           {"attempt_id", row.attempt_id},
                           {"name", row.name},
                           {"step", Optional(row.step)},
                           {"local_uri", row.local_uri},
                           {"tier", row.tier},
                           {"uri", row.uri},
                           {"bytes", Optional(row.bytes)},
                           {"content_hash", OptionalText(row.content_hash)},
                           {"state", row.state},
                           {"committed_at_ms", row.committed_at_ms},
                           {"flush_ms", Optional(row.flush_ms)},
                           {"message", row.message}});
  }
  Dump(Json{{"run", RunJson(detail.run)},
            {"tasks", tasks},
            {"checkpoints", checkpoints},
            {"advice", advice}},
       out);
}

void RenderTaskJson(const TaskRow& task, std::ostream& out) { Dump(TaskJson(task), out); }

void RenderLineageJson(const LineageGraph& graph, std::ostream& out) {
  Json nodes = Json::array();
  for (const auto& [id, artifact] : graph.artifacts) {
    Json node{{"id", LineageNode{LineageNode::Type::kArtifact, id}.Key()}, {"type", "artifact"}};
    node.update(ArtifactJson(artifact, "artifact_id"));
    nodes.push_back(std::move(node));
  }
  for (const auto& [id, attempt] : graph.attempts) {
    nodes.push_back(Json{{"id", LineageNode{LineageNode::Type::kAttempt, id}.Key()},
                         {"type", "attempt"},
                         {"attempt_id", attempt.id},
                         {"run_id", attempt.run_id},
                         {"task_id", attempt.task_id},
                         {"number", attempt.number},
                         {"state", StateWord(attempt.state)},
                         {"cached_from", Optional(attempt.cached_from)},
                         {"started_at_ms", attempt.started_at_ms},
                         {"finished_at_ms", Optional(attempt.finished_at_ms)},
                         {"exit_code", Optional(attempt.exit_code)},
                         {"signal", Optional(attempt.signal)},
                         {"message", attempt.message}});
  }
  Json edges = Json::array();
  for (const LineageEdge& edge : graph.edges) {
    edges.push_back(Json{{"from", edge.from.Key()},
                         {"to", edge.to.Key()},
                         {"kind", std::string(scheduler::LineageEdgeKindName(edge.kind))},
                         {"name", edge.name}});
  }
  Json direction = nullptr;
  if (graph.root) {
    direction = graph.direction == LineageDirection::kUpstream     ? "upstream"
                : graph.direction == LineageDirection::kDownstream ? "downstream"
                                                                   : "both";
  }
  Dump(Json{{"run_id", graph.run_id},
            {"root", graph.root ? Json(LineageNode{LineageNode::Type::kArtifact, *graph.root}.Key())
                                : Json(nullptr)},
            {"direction", direction},
            {"nodes", nodes},
            {"edges", edges}},
       out);
}

}  // namespace tierflow::api
