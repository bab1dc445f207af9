// `tierflow lineage export --rejected`: the OpenLineage events the endpoint
// rejected, parked in the store's outbox (scheduler/lineage_outbox.h).
#pragma once

#include <ostream>
#include <string>

namespace tierflow::cli {

struct LineageRejectedOptions {
  bool rejected = false;  // --rejected: the events the endpoint rejected, parked
  std::string db;
};

// --rejected: each parked event (seq, run, attempt, type, the endpoint's
// answer, the body). Exits 0, 1 when the store cannot be read, 2 on usage.
int RunLineageRejected(const LineageRejectedOptions& options, std::ostream& out, std::ostream& err);

}  // namespace tierflow::cli
