// An attempt's OpenLineage datasets (lineage_events.h): each artifact it
// consumed or produced, named by what it is in the pipeline
// (PIPELINE/STAGE/OUTPUT[/ITEM]) so every run's output is the same dataset,
// in the namespace of its home tier, with its content hash as the version,
// its size and files as output statistics, and every copy the store knows
// of in the `tierflow_storage` facet (docs/openlineage/).
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/processes.h"
#include "common/status.h"
#include "common/strings.h"
#include "scheduler/internal/lineage_json.h"
#include "scheduler/internal/rows.h"
#include "scheduler/placement.h"
#include "storage_adapters/tier_config.h"

namespace tierflow::scheduler::lineage::internal {
namespace {

using scheduler::internal::ForEachRow;
using scheduler::internal::OptionalText;

struct ArtifactRow {
  int64_t id = 0;
  bool produced = false;
  std::string run_id;
  std::string task_id;
  std::string name;
  std::string content_hash;
  int64_t bytes = 0;
  int64_t files = 0;
  std::string stage;
  std::optional<std::string> item;
  std::string pipeline;
};

struct CopyRow {
  std::string tier;
  std::string uri;
  std::string role;
  std::string state;
};

bool IsS3Uri(std::string_view uri) { return uri.starts_with("s3://"); }

// The tiers of the runs an attempt's artifacts belong to, read once per
// render: name -> config (the run's recorded tiers, or the engine's one
// implicit posix tier).
class RunTiers {
 public:
  explicit RunTiers(Database& db) : db_(db) {}

  absl::StatusOr<const storage::TierConfig*> Find(const std::string& run_id,
                                                  const std::string& tier) {
    auto it = runs_.find(run_id);
    if (it == runs_.end()) {
      TF_ASSIGN_OR_RETURN(ReusedStatement find,
                          db_.Reuse("SELECT tiers_json FROM runs WHERE id = ?"));
      find->Bind(1, run_id);
      std::optional<std::string> text;
      TF_RETURN_IF_ERROR(ForEachRow(*find, [&](Statement& row) { text = OptionalText(row, 0); }));
      std::map<std::string, storage::TierConfig> tiers;
      if (text) {
        TF_ASSIGN_OR_RETURN(std::vector<PlacementTier> placed, PlacementTiersFromJson(*text));
        for (PlacementTier& one : placed) tiers[one.config.name] = std::move(one.config);
      }
      it = runs_.emplace(run_id, std::move(tiers)).first;
    }
    auto found = it->second.find(tier);
    return found == it->second.end() ? nullptr : &found->second;
  }

 private:
  Database& db_;
  std::map<std::string, std::map<std::string, storage::TierConfig>> runs_;
};

// s3://BUCKET for an s3 tier, file://HOST otherwise (Naming.md).
std::string TierNamespace(const storage::TierConfig* tier, std::string_view uri,
                          const std::string& host) {
  if (tier != nullptr ? tier->adapter == "s3" : IsS3Uri(uri)) {
    if (tier != nullptr && !tier->bucket.empty()) return StrCat("s3://", tier->bucket);
    std::string_view rest = uri.substr(std::min<size_t>(uri.size(), 5));
    return StrCat("s3://", rest.substr(0, rest.find('/')));
  }
  return StrCat("file://", host);
}

// A copy's location as a URI: s3://bucket/key as stored; a posix path as
// file://HOST/path.
std::string CopyUri(std::string_view uri, const std::string& host) {
  if (IsS3Uri(uri)) return std::string(uri);
  return StrCat("file://", host, uri.starts_with('/') ? "" : "/", uri);
}

absl::StatusOr<std::vector<ArtifactRow>> AttemptArtifacts(Database& db, int64_t attempt_id) {
  TF_ASSIGN_OR_RETURN(
      ReusedStatement find,
      db.Reuse("SELECT e.direction, a.id, a.run_id, a.task_id, a.name, a.content_hash, a.bytes, "
               "a.files, t.stage, t.item, r.pipeline_name FROM lineage_edges e "
               "JOIN artifacts a ON a.id = e.artifact_id "
               "JOIN tasks t ON t.run_id = a.run_id AND t.id = a.task_id "
               "JOIN runs r ON r.id = a.run_id "
               "WHERE e.attempt_id = ? ORDER BY e.direction, e.id"));
  find->Bind(1, attempt_id);
  std::vector<ArtifactRow> artifacts;
  std::set<std::pair<bool, int64_t>> seen;  // an artifact read under two input names: once
  TF_RETURN_IF_ERROR(ForEachRow(*find, [&](Statement& row) {
    ArtifactRow artifact{.id = row.Int(1),
                         .produced = row.Text(0) == "produced",
                         .run_id = row.Text(2),
                         .task_id = row.Text(3),
                         .name = row.Text(4),
                         .content_hash = row.Text(5),
                         .bytes = row.Int(6),
                         .files = row.Int(7),
                         .stage = row.Text(8),
                         .item = OptionalText(row, 9),
                         .pipeline = row.Text(10)};
    if (seen.insert({artifact.produced, artifact.id}).second) {
      artifacts.push_back(std::move(artifact));
    }
  }));
  return artifacts;
}

absl::StatusOr<std::vector<CopyRow>> Copies(Database& db, int64_t artifact_id) {
  TF_ASSIGN_OR_RETURN(ReusedStatement find,
                      db.Reuse("SELECT tier, uri, role, state FROM artifact_copies "
                               "WHERE artifact_id = ? ORDER BY id"));
  find->Bind(1, artifact_id);
  std::vector<CopyRow> copies;
  TF_RETURN_IF_ERROR(ForEachRow(*find, [&](Statement& row) {
    copies.push_back({row.Text(0), row.Text(1), row.Text(2), row.Text(3)});
  }));
  return copies;
}

// The home tier placement chose for the output at run start (the task's
// own row, or its stage's, shared by a foreach's items); unset for a run
// recorded before placements were.
absl::StatusOr<std::optional<std::string>> PlacedHome(Database& db, const ArtifactRow& artifact) {
  TF_ASSIGN_OR_RETURN(ReusedStatement find,
                      db.Reuse("SELECT tier FROM placements WHERE run_id = ? AND kind = 'output' "
                               "AND name = ? AND task_id IN (?, ?) ORDER BY task_id = ? DESC"));
  find->Bind(1, artifact.run_id).Bind(2, artifact.name).Bind(3, artifact.task_id);
  find->Bind(4, artifact.stage).Bind(5, artifact.task_id);
  std::optional<std::string> tier;
  TF_RETURN_IF_ERROR(ForEachRow(*find, [&](Statement& row) {
    if (!tier) tier = row.Text(0);
  }));
  return tier;
}

absl::StatusOr<nlohmann::json> RenderDataset(Database& db, RunTiers& tiers,
                                             const ArtifactRow& artifact, const std::string& host) {
  TF_ASSIGN_OR_RETURN(std::vector<CopyRow> copies, Copies(db, artifact.id));
  // The namespace is the home tier's: as placed, else the home copy's,
  // else any copy's.
  TF_ASSIGN_OR_RETURN(std::optional<std::string> home, PlacedHome(db, artifact));
  std::string home_uri;
  for (const CopyRow& copy : copies) {
    if (!home && copy.role == "home") home = copy.tier;
    if (home && copy.tier == *home && home_uri.empty()) home_uri = copy.uri;
  }
  if (!home && !copies.empty()) {
    home = copies.front().tier;
    home_uri = copies.front().uri;
  }
  const storage::TierConfig* home_tier = nullptr;
  if (home) {
    TF_ASSIGN_OR_RETURN(home_tier, tiers.Find(artifact.run_id, *home));
  }

  nlohmann::json listed = nlohmann::json::array();
  for (const CopyRow& copy : copies) {
    TF_ASSIGN_OR_RETURN(const storage::TierConfig* tier, tiers.Find(artifact.run_id, copy.tier));
    const bool s3 = tier != nullptr ? tier->adapter == "s3" : IsS3Uri(copy.uri);
    listed.push_back({{"tier", copy.tier},
                      {"kind", s3 ? "s3" : "posix"},
                      {"role", copy.role},
                      {"state", copy.state},
                      {"uri", CopyUri(copy.uri, host)}});
  }
  nlohmann::json storage =
      Facet(StrCat(kTierflowStorageSchema, "#/$defs/TierflowStorageDatasetFacet"));
  storage["artifact"] = StrCat(artifact.run_id, "/", artifact.task_id, "/", artifact.name);
  storage["copies"] = std::move(listed);
  nlohmann::json version = Facet(StrCat(
      kSpecFacets, "1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet"));
  version["datasetVersion"] = artifact.content_hash;

  std::string name = StrCat(artifact.pipeline, "/", artifact.stage, "/", artifact.name);
  if (artifact.item) name += StrCat("/", *artifact.item);
  nlohmann::json dataset = {
      {"namespace", TierNamespace(home_tier, home_uri, host)},
      {"name", std::move(name)},
      {"facets", {{"version", std::move(version)}, {"tierflow_storage", std::move(storage)}}},
  };
  if (artifact.produced) {
    nlohmann::json statistics = Facet(StrCat(
        kSpecFacets,
        "1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet"));
    statistics["size"] = artifact.bytes;
    statistics["fileCount"] = artifact.files;
    dataset["outputFacets"] = {{"outputStatistics", std::move(statistics)}};
  }
  return dataset;
}

}  // namespace

std::string FileHost(const ExportSettings& settings) {
  return settings.host.empty() ? HostName() : settings.host;
}

absl::StatusOr<AttemptDatasets> RenderAttemptDatasets(Database& db, int64_t attempt_id,
                                                      const ExportSettings& settings) {
  TF_ASSIGN_OR_RETURN(std::vector<ArtifactRow> artifacts, AttemptArtifacts(db, attempt_id));
  const std::string host = FileHost(settings);
  RunTiers tiers(db);
  AttemptDatasets datasets;
  for (const ArtifactRow& artifact : artifacts) {
    TF_ASSIGN_OR_RETURN(nlohmann::json dataset, RenderDataset(db, tiers, artifact, host));
    (artifact.produced ? datasets.outputs : datasets.inputs).push_back(std::move(dataset));
  }
  return datasets;
}

}  // namespace tierflow::scheduler::lineage::internal
