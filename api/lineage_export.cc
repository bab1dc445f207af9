#include "api/lineage_export.h"

#include <memory>
#include <ostream>
#include <vector>

#include "api/internal/run_render.h"
#include "common/status.h"
#include "scheduler/lineage_events.h"
#include "scheduler/run_queries.h"

namespace tierflow::api {

absl::Status ExportRunLineage(const std::string& db, const std::string& run, std::ostream& out) {
  TF_ASSIGN_OR_RETURN(std::unique_ptr<scheduler::Database> store, OpenReadOnly(db));
  TF_ASSIGN_OR_RETURN(std::string run_id, scheduler::ResolveRunId(*store, run));
  // One read snapshot, so a live run's rows are read as of one commit; and
  // every event is rendered before the first is written: an error leaves
  // the output empty, never a partial run.
  TF_ASSIGN_OR_RETURN(
      scheduler::Transaction snapshot,
      scheduler::Transaction::Begin(*store, scheduler::Transaction::Kind::kDeferred));
  TF_ASSIGN_OR_RETURN(std::vector<std::string> events,
                      scheduler::lineage::RenderRunEvents(
                          *store, run_id, scheduler::lineage::ExportSettingsFromEnvironment()));
  for (const std::string& event : events) out << event << '\n';
  return absl::OkStatus();
}

}  // namespace tierflow::api
