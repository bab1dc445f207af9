// Test-only: a posix tier as placement sees it, with a measured profile, for
// the tests of placement and of its records. Never linked into tierflow.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "scheduler/placement.h"

namespace tierflow::scheduler::testing {

inline PlacementTier PosixTier(std::string name, Durability durability,
                               storage::TierProfile profile, uint64_t capacity = 0) {
  PlacementTier tier;
  tier.config.name = std::move(name);
  tier.config.adapter = "posix";
  tier.config.durability = durability;
  tier.profile = profile;
  tier.profile_source = "measured";
  tier.capacity = capacity;
  return tier;
}

}  // namespace tierflow::scheduler::testing
