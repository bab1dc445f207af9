// Placement: for every output of a plan, its home tier, and for every task
// that reads it, the tier it reads from (its working copy), each with the
// estimate that decided it (DESIGN.md "Core model"). The cost model is
// bytes / bandwidth for the access pattern + operations x latency, with the
// tier's measured profile (else the declared one, else an assumption by
// adapter and durability, said as such). Constraints: a home must be at
// least as durable as the output needs; a copy must fit the tier's
// capacity; a stage's `tier:` pins its outputs' home; in cluster mode
// (PlacementOptions), node tiers take working copies only.
//
// PlaceCheckpoints chooses, per stage with checkpoints, the tier tasks
// write them on and the durable tier they are flushed to, with a reason.
// Pure functions of their arguments; safe to call from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "scheduler/plan.h"
#include "storage_adapters/tier_config.h"

namespace tierflow::scheduler {

// A tier as placement sees it.
struct PlacementTier {
  storage::TierConfig config;
  storage::TierProfile profile;  // what the estimates use
  std::string profile_source;    // "measured" | "declared" | "assumed"
  uint64_t capacity = 0;         // bytes available; 0 = unknown (no limit applied)
};

// The profile placement assumes for a tier nothing was measured or declared
// for: by adapter and durability (tmpfs-like, local disk, object store).
storage::TierProfile AssumedProfile(const storage::TierConfig& tier);

struct OutputPlacement {
  std::string task;
  std::string output;
  uint64_t bytes = 0;  // the size hint, or kAssumedBytes
  bool bytes_assumed = false;
  Durability needs = Durability::kNode;
  std::string home;
  double write_seconds = 0;  // the producer writing it where it writes
  // Where the producer writes it: a posix tier (tasks write files). The
  // home itself, unless the home is an object store or a faster tier takes
  // the writes; then the engine writes it back to the home in the
  // background, and consumers may read it where it was written meanwhile.
  std::string write_tier;
  double write_back_seconds = 0;  // write_tier -> home, off the producer's time (0: none)
  std::string reason;
  bool operator==(const OutputPlacement&) const = default;
};

struct InputPlacement {
  std::string task;   // the consumer
  std::string input;  // its input name
  std::string producer_task;
  std::string output;
  std::string home;
  // Where the producer writes it (OutputPlacement::write_tier): the copy
  // that exists first, and the source of working copies.
  std::string source;
  std::string working;           // == source: read in place, no copy
  double read_seconds = 0;       // the consumer's reads on `working`
  double copy_seconds = 0;       // source -> working, ahead of need (0 if in place)
  double home_read_seconds = 0;  // reading in place on `source` instead, for comparison
  std::string reason;
  bool operator==(const InputPlacement&) const = default;
};

struct Placement {
  std::vector<OutputPlacement> outputs;
  std::vector<InputPlacement> inputs;
};

// Bytes assumed for an output without a size hint.
inline constexpr uint64_t kAssumedBytes = uint64_t{1} << 30;

// FailedPrecondition naming the output and the tiers when nothing fits
// (no tier durable enough, a pinned tier that is unknown or not durable
// enough, an output larger than every eligible tier).
struct PlacementOptions {
  // Cluster mode: a node tier is each worker's own (its `--tier NAME=PATH`),
  // out of reach of the server and of the other workers, so it holds only
  // working copies, which the worker running the consumer makes. Homes and
  // write tiers are then cluster tiers.
  bool node_tiers_hold_working_copies_only = false;
};

// The tiers a run was placed on, as recorded with it (runs.tiers_json), so
// that a resume (and the UI) sees the tiers it was placed on.
std::string PlacementTiersToJson(const std::vector<PlacementTier>& tiers);
// DataLoss when the text is not what PlacementTiersToJson wrote.
absl::StatusOr<std::vector<PlacementTier>> PlacementTiersFromJson(const std::string& text);

absl::StatusOr<Placement> PlaceArtifacts(const Plan& plan, const std::vector<PlacementTier>& tiers,
                                         const PlacementOptions& options = {});

// Where one stage's checkpoints go. Tasks write them (TIERFLOW_CHECKPOINT_DIR)
// on `write_tier`, the fastest posix tier (in cluster mode, the fastest
// one every worker reaches); in cluster mode workers may write them first on
// `node_tier`, a faster node tier, and copy each committed one to
// `write_tier`. Each committed checkpoint is flushed to `flush_tier` while
// the task runs: the stage's `checkpoints.tier`, else the fastest durable
// tier that allows deletes (not an archive). An empty name: none (no
// write_tier: in the run's folder; no flush_tier: never flushed, which is
// also the case when the flush tier would be write_tier itself).
struct CheckpointPlacement {
  std::string stage;
  std::string write_tier;
  std::string node_tier;
  std::string flush_tier;
  std::string reason;
  bool operator==(const CheckpointPlacement&) const = default;
};

// One entry per stage with checkpoints enabled, in plan order. With no
// tiers (the engine's implicit tier) every stage's checkpoints stay in the
// run's folder. FailedPrecondition when a stage's `checkpoints.tier` is not
// one of `tiers` or (cluster mode) is a node tier.
absl::StatusOr<std::vector<CheckpointPlacement>> PlaceCheckpoints(
    const Plan& plan, const std::vector<PlacementTier>& tiers,
    const PlacementOptions& options = {});

}  // namespace tierflow::scheduler
