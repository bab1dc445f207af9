// The pieces of OpenLineage JSON the renderer's files share
// (lineage_events.cc: events, runs and jobs; lineage_datasets.cc: an
// attempt's datasets). Internal to scheduler/.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "scheduler/lineage_events.h"
#include "scheduler/sqlite.h"

namespace tierflow::scheduler::lineage::internal {

// The spec's facet schemas, by the version the shared copy holds.
inline constexpr std::string_view kSpecFacets = "https://openlineage.io/spec/facets/";
// tierflow's own dataset facet; its schema is docs/openlineage/ under this $id.
inline constexpr std::string_view kTierflowStorageSchema =
    "https://github.com/tierflow/tierflow/blob/main/docs/openlineage/"
    "TierflowStorageDatasetFacet.json";

// The producer URI every event and facet carries: tierflow and its version.
std::string Producer();
// A facet's base fields: `_producer`, and `_schemaURL` as given.
nlohmann::json Facet(std::string_view schema_url);
// The host of file:// namespaces: settings.host, else this machine's name.
std::string FileHost(const ExportSettings& settings);

// An attempt's datasets: what it consumed (inputs) and produced (outputs),
// by its lineage_edges, as OpenLineage InputDataset/OutputDataset arrays.
struct AttemptDatasets {
  nlohmann::json inputs = nlohmann::json::array();
  nlohmann::json outputs = nlohmann::json::array();
};
absl::StatusOr<AttemptDatasets> RenderAttemptDatasets(Database& db, int64_t attempt_id,
                                                      const ExportSettings& settings);

}  // namespace tierflow::scheduler::lineage::internal
