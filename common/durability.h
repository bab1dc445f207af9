// How long data on a tier survives, weakest first. Artifacts declare the
// durability they need; a tier satisfies every class up to its own.
#pragma once

#include <optional>
#include <string_view>

namespace tierflow {

enum class Durability {
  kVolatile,  // lost on reboot or eviction (RAM, /dev/shm)
  kNode,      // survives restarts, lost with the node (local NVMe)
  kDurable,   // survives node loss (object store, replicated parallel FS)
  kArchive,   // durable and write-once (WORM): no overwrite, no delete
};

std::string_view DurabilityName(Durability durability);
std::optional<Durability> ParseDurability(std::string_view name);

}  // namespace tierflow
