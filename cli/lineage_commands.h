// `tierflow lineage export`: the OpenLineage events of the store's outbox.
#pragma once

#include <ostream>
#include <string>

namespace tierflow::cli {

struct LineageExportOptions {
  bool rejected = false;  // --rejected: the events the endpoint rejected, parked
  std::string db;
};

// --rejected: each parked event (seq, run, attempt, type, the endpoint's
// answer, the body). Exits 0, 1 when the store cannot be read, 2 on usage.
int RunLineageExport(const LineageExportOptions& options, std::ostream& out, std::ostream& err);

}  // namespace tierflow::cli
