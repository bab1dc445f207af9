// The calls of run_service.h (runs, show, lineage) over the state store
// opened read-only; their renderings are in run_text.cc, run_json.cc and
// lineage_render.cc, `logs` in log_follow.cc. Stateless; safe from any thread.
#include "api/run_service.h"

#include <memory>
#include <optional>
#include <ostream>
#include <string>

#include "api/internal/run_render.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/units.h"

namespace tierflow::api {

absl::StatusOr<RunList> ListRuns(const std::string& db, const RunFilter& filter) {
  TF_ASSIGN_OR_RETURN(std::unique_ptr<Database> store, OpenReadOnly(db));
  return scheduler::ListRuns(*store, filter, WallClockMs());
}

absl::StatusOr<RunDetail> ShowRun(const std::string& db, const std::string& run) {
  TF_ASSIGN_OR_RETURN(std::unique_ptr<Database> store, OpenReadOnly(db));
  TF_ASSIGN_OR_RETURN(std::string run_id, scheduler::ResolveRunId(*store, run));
  return scheduler::GetRunDetail(*store, run_id, WallClockMs());
}

absl::StatusOr<LineageGraph> GetLineage(const std::string& db, const std::string& target,
                                        LineageDirection direction, std::optional<int64_t> depth) {
  const bool artifact = scheduler::IsArtifactRef(target);
  if (!artifact && (direction != LineageDirection::kBoth || depth)) {
    return absl::InvalidArgumentError(
        StrCat("--upstream, --downstream and --depth walk from an artifact (RUN/TASK/OUTPUT or "
               "#ID); '",
               CEscape(target), "' names a run, whose whole lineage is shown"));
  }
  std::optional<scheduler::ArtifactRef> ref;
  if (artifact) {
    TF_ASSIGN_OR_RETURN(ref, scheduler::ParseArtifactRef(target));
  }
  TF_ASSIGN_OR_RETURN(std::unique_ptr<Database> store, OpenReadOnly(db));
  if (!artifact) {
    TF_ASSIGN_OR_RETURN(std::string run_id, scheduler::ResolveRunId(*store, target));
    return scheduler::RunLineage(*store, run_id);
  }
  TF_ASSIGN_OR_RETURN(ArtifactRow root, scheduler::ResolveArtifact(*store, *ref));
  return scheduler::ArtifactLineage(*store, root.id, direction, depth);
}

absl::Status WriteLineage(const std::string& db, const std::string& target, bool upstream,
                          bool downstream, std::optional<int64_t> depth, const std::string& format,
                          std::ostream& out) {
  LineageDirection direction = LineageDirection::kBoth;
  if (upstream != downstream) {
    direction = upstream ? LineageDirection::kUpstream : LineageDirection::kDownstream;
  }
  TF_ASSIGN_OR_RETURN(LineageGraph graph, GetLineage(db, target, direction, depth));
  if (format == "json") {
    RenderLineageJson(graph, out);
  } else if (format == "dot") {
    RenderLineageDot(graph, out);
  } else {
    RenderLineageText(graph, out);
  }
  return absl::OkStatus();
}

}  // namespace tierflow::api
