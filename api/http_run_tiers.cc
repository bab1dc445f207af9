// GET /api/v1/runs/RUN/tiers and /api/v1/runs/RUN/checkpoints
// (internal/http_data.h): what a run keeps on which tier, as the store
// recorded it (scheduler/run_tiers.h). Nothing is recomputed.
#include <filesystem>
#include <memory>

#include "api/internal/http_data.h"
#include "api/internal/http_json.h"
#include "common/status.h"
#include "scheduler/run_queries.h"
#include "scheduler/run_tiers.h"

namespace tierflow::api {

absl::StatusOr<ApiResponse> RunTiers(const HttpApiOptions& options, const std::string& run,
                                     std::string_view raw_query) {
  TF_ASSIGN_OR_RETURN(Query query, ParseParams(raw_query, {}));
  TF_ASSIGN_OR_RETURN(std::unique_ptr<scheduler::Database> db, OpenStore(options));
  TF_ASSIGN_OR_RETURN(std::string run_id, scheduler::ResolveRunId(*db, run));
  std::error_code error;
  const std::string state_dir =
      std::filesystem::absolute(std::filesystem::path(options.db_path).parent_path(), error);
  TF_ASSIGN_OR_RETURN(std::vector<scheduler::RunTierUse> uses,
                      scheduler::RunTierUsage(*db, run_id, state_dir));
  Json tiers = Json::array();
  for (const scheduler::RunTierUse& use : uses) {
    tiers.push_back(Json{{"name", use.name},
                         {"adapter", use.adapter},
                         {"location", use.location},
                         {"recorded", use.recorded},
                         {"outputs", use.outputs},
                         {"home_bytes", use.home_bytes},
                         {"copies", use.copies},
                         {"working_bytes", use.working_bytes},
                         {"evicted", use.evicted},
                         {"checkpoints", use.checkpoints},
                         {"checkpoint_bytes", use.checkpoint_bytes},
                         {"bytes", use.bytes}});
  }
  return JsonResponse(Json{{"run_id", run_id}, {"tiers", tiers}});
}

absl::StatusOr<ApiResponse> RunCheckpoints(const HttpApiOptions& options, const std::string& run,
                                           std::string_view raw_query) {
  TF_ASSIGN_OR_RETURN(Query query, ParseParams(raw_query, {}));
  TF_ASSIGN_OR_RETURN(std::unique_ptr<scheduler::Database> db, OpenStore(options));
  TF_ASSIGN_OR_RETURN(std::string run_id, scheduler::ResolveRunId(*db, run));
  TF_ASSIGN_OR_RETURN(std::vector<scheduler::CheckpointRow> rows,
                      scheduler::ListRunCheckpoints(*db, run_id));
  Json list = Json::array();
  for (const scheduler::CheckpointRow& row : rows) {
    list.push_back(
        Json{{"id", row.id},
             {"task_id", row.task_id},
             {"attempt_id", row.attempt_id},
             {"attempt", OptionalJson(row.attempt)},
             {"name", row.name},
             {"step", OptionalJson(row.step)},
             {"local_uri", row.local_uri},
             {"tier", row.tier},
             {"uri", row.uri},
             {"bytes", OptionalJson(row.bytes)},
             {"files", OptionalJson(row.files)},
             {"content_hash", row.content_hash.empty() ? Json(nullptr) : Json(row.content_hash)},
             {"state", row.state},
             {"committed_at_ms", row.committed_at_ms},
             {"flushed_at_ms", OptionalJson(row.flushed_at_ms)},
             {"flush_ms", OptionalJson(row.flush_ms)},
             {"message", row.message}});
  }
  return JsonResponse(Json{{"run_id", run_id}, {"checkpoints", list}});
}

}  // namespace tierflow::api
