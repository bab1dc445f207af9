// The tier factory: the adapter of a tier as tiers.yaml declares it (posix
// or s3), so that whoever opens tiers (the engine, the tier commands, the
// cluster server) needs no adapter of its own in mind. Stateless and
// thread-safe; the adapter it returns is as thread-safe as its kind.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "storage_adapters/adapter.h"
#include "storage_adapters/tier_config.h"

namespace tierflow::storage {

// posix: fsync on durable and archive tiers, write-once on archive ones
// (OpenPosixTier). s3: the credentials come from the environment variables
// the tier names; FailedPrecondition naming the variable when one is unset.
absl::StatusOr<std::unique_ptr<Adapter>> OpenTier(const TierConfig& tier);

}  // namespace tierflow::storage
