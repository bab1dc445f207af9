// `tierflow lineage export`: a run's OpenLineage events as NDJSON
// (api/lineage_export.h). Exit codes as in commands.h: 0 done, 1 for a
// missing database, an unknown run or a file that cannot be written, 2 for
// a usage error.
#pragma once

#include <iosfwd>
#include <string>

namespace tierflow::cli {

struct LineageExportOptions {
  std::string run;                     // id, or last/latest
  std::string format = "openlineage";  // the one format so far
  std::string file;                    // -o FILE; "" : standard output
  bool rejected = false;               // --rejected: the parked events instead
  std::string db;
};

// With --rejected, the events the endpoint rejected, parked in the outbox
// (scheduler/lineage_outbox.h): seq, run, attempt, type, the endpoint's
// answer and the body.
int RunLineageExport(const LineageExportOptions& options, std::ostream& out, std::ostream& err);

}  // namespace tierflow::cli
