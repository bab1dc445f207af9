// Storage tiers for clients: which tiers there are (a tiers.yaml, or the
// embedded defaults beside the state database), their usage and their last
// measured profile (`tierflow tiers list`), and measuring them
// (`tierflow tiers probe`), which records each profile in the state store.
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "scheduler/placement.h"
#include "scheduler/plan.h"
#include "storage_adapters/adapter.h"
#include "storage_adapters/probe.h"
#include "storage_adapters/tier_config.h"

namespace tierflow::api {

using scheduler::Placement;

// `tiers_file` empty: the embedded defaults, rooted in the folder of
// `db_path` (`.tierflow/tiers/...`).
absl::StatusOr<storage::TierSet> LoadTiers(const std::string& tiers_file,
                                           const std::string& db_path);

struct MeasuredProfile {
  storage::TierProfile profile;
  double create_us = 0;
  double stat_us = 0;
  int64_t measured_at_ms = 0;
  std::string location;  // where it measured: stale if the tier moved since
};

struct TierView {
  storage::TierConfig config;
  // posix: the file system holding the root (unset when it does not exist yet).
  std::optional<uint64_t> fs_total_bytes;
  std::optional<uint64_t> fs_free_bytes;
  std::optional<MeasuredProfile> measured;  // the newest probe of this tier
};

// Every tier with its file system usage and newest probe (read from
// `db_path` when it exists; a missing database means nothing measured).
absl::StatusOr<std::vector<TierView>> ListTiers(const storage::TierSet& tiers,
                                                const std::string& db_path);

void RenderTiersText(const std::vector<TierView>& tiers, std::ostream& out);

// `tierflow tiers list` whole: LoadTiers, ListTiers, then the rendering
// `format` names (text | json).
absl::Status WriteTierList(const std::string& tiers_file, const std::string& db_path,
                           const std::string& format, std::ostream& out);

// The tiers as placement sees them: each with its newest measured profile,
// else its declared one, else the profile assumed for its kind; capacity
// from the tiers file, else the free space of its file system.
std::vector<scheduler::PlacementTier> PlacementTiers(const std::vector<TierView>& tiers);

// The tiers of `tiers_file` (or the embedded defaults) as placement and the
// engine see them: ListTiers then PlacementTiers.
absl::StatusOr<std::vector<scheduler::PlacementTier>> LoadPlacementTiers(
    const std::string& tiers_file, const std::string& db_path);

// Where every output of `plan` lives and where each consumer reads it, with
// the reasons; FailedPrecondition when nothing fits.
absl::StatusOr<scheduler::Placement> PlacePlan(const scheduler::Plan& plan,
                                               const std::string& tiers_file,
                                               const std::string& db_path);
// "placement" then one block per output: its home tier and reason, then a
// line per consumer with its working tier and reason.
void RenderPlacementText(const scheduler::Placement& placement, std::ostream& out);
// `,"placement":{"outputs":[{"task","output","bytes","bytes_assumed",
// "needs","home","write_tier","write_seconds","write_back_seconds","reason"}],
// "inputs":[{"task","input","producer_task","output","home","source",
// "working","read_seconds","copy_seconds","home_read_seconds","reason"}]}`, for RenderPlanJson's
// extra_fields.
std::string PlacementJsonField(const scheduler::Placement& placement);
// [{"name", "adapter", "location", "scope", "durability", "capacity_bytes",
//   "fs_total_bytes", "fs_free_bytes", "declared_profile": {...}|null,
//   "measured_profile": {"seq_read_mb_s", "seq_write_mb_s", "rand_read_iops",
//   "latency_us", "create_us", "stat_us", "measured_at_ms", "location"}|null}]
void RenderTiersJson(const std::vector<TierView>& tiers, std::ostream& out);

// Probes `names` (every tier when empty) one after the other within
// `budget` each, records every result in the store at `db_path`, and writes
// one line per tier to `out` as it goes. Unknown names are NotFound with a
// did-you-mean, before anything is measured.
absl::Status ProbeTiers(const storage::TierSet& tiers, const std::vector<std::string>& names,
                        std::chrono::milliseconds budget, const std::string& db_path,
                        std::ostream& out);

}  // namespace tierflow::api
