// What one run keeps where: the tiers it recorded (runs.tiers_json) with
// what it holds on each (outputs homed there, working copies, checkpoints
// flushed there, their bytes), and its checkpoints with every recorded
// column. Read-only store queries for the UI's tiers and checkpoints views
// (api/http_run_tiers.cc) and the artifact download (api/http_download.cc);
// like run_queries.h they leave no statement open. One thread at a time per
// Database, as sqlite.h says.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "scheduler/sqlite.h"
#include "storage_adapters/tier_config.h"

namespace tierflow::scheduler {

// The tiers run `run_id` recorded, in its order; a run without any (it used
// the engine's one implicit tier) gets that tier: posix "local" rooted at
// `state_dir`, the folder of the state database. DataLoss when the
// recorded list is unreadable.
absl::StatusOr<std::vector<storage::TierConfig>> RecordedRunTiers(Database& db,
                                                                  const std::string& run_id,
                                                                  const std::string& state_dir);

// What a run holds on one tier, as the store recorded it.
struct RunTierUse {
  std::string name;
  std::string adapter;         // posix | s3; "" for a tier the run did not record
  std::string location;        // TierConfig::Location(); "" likewise
  bool recorded = false;       // among the run's recorded tiers
  int64_t placed_outputs = 0;  // outputs placement chose this tier as home for
  int64_t outputs = 0;         // home copies present here
  int64_t home_bytes = 0;
  int64_t copies = 0;  // working copies present here
  int64_t working_bytes = 0;
  int64_t evicted = 0;      // copies once here, evicted or released since
  int64_t checkpoints = 0;  // checkpoints present (flushed) here
  int64_t checkpoint_bytes = 0;
  int64_t bytes = 0;  // home_bytes + working_bytes + checkpoint_bytes
};

// Every tier the run recorded (in its order), then any other tier its
// copies name, then any other its checkpoints name (each by name), with
// what it holds there. DataLoss for a copy state this tierflow does not
// know.
absl::StatusOr<std::vector<RunTierUse>> RunTierUsage(Database& db, const std::string& run_id,
                                                     const std::string& state_dir);

// ListRunCheckpoints (run_queries.h) is in run_tiers.cc.

}  // namespace tierflow::scheduler
