#include "common/durability.h"

namespace tierflow {

std::string_view DurabilityName(Durability durability) {
  switch (durability) {
    case Durability::kVolatile:
      return "volatile";
    case Durability::kNode:
      return "node";
    case Durability::kDurable:
      return "durable";
    case Durability::kArchive:
      return "archive";
  }
  return "unknown";
}

std::optional<Durability> ParseDurability(std::string_view name) {
  for (Durability d :
       {Durability::kVolatile, Durability::kNode, Durability::kDurable, Durability::kArchive}) {
    if (DurabilityName(d) == name) return d;
  }
  return std::nullopt;
}

}  // namespace tierflow
