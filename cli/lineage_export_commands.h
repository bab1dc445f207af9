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
  std::string db;
};

int RunLineageExport(const LineageExportOptions& options, std::ostream& out, std::ostream& err);

}  // namespace tierflow::cli
