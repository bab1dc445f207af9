#include "cli/lineage_export_commands.h"

#include <cstdio>
#include <fstream>
#include <ostream>
#include <sstream>

#include "api/lineage_export.h"
#include "cli/commands.h"

namespace tierflow::cli {

int RunLineageExport(const LineageExportOptions& options, std::ostream& out, std::ostream& err) {
  if (options.run.empty()) {
    err << "lineage export: give a RUN (an id, or last)\nRun with --help for more information.\n";
    return kExitUsage;
  }
  std::ostringstream events;
  absl::Status status = api::ExportRunLineage(options.db, options.run, events);
  if (!status.ok()) {
    err << "lineage export: " << status.message() << '\n';
    return kExitInvalid;
  }
  if (options.file.empty()) {
    out << events.str();
    return CheckWritten(out, err);
  }
  // Written beside FILE and renamed over it: FILE is the whole export or
  // what it was before.
  const std::string partial = options.file + ".partial";
  {
    std::ofstream file(partial, std::ios::binary | std::ios::trunc);
    file << events.str();
    file.flush();
    if (!file) {
      std::remove(partial.c_str());
      err << "lineage export: cannot write " << options.file << '\n';
      return kExitInvalid;
    }
  }
  if (std::rename(partial.c_str(), options.file.c_str()) != 0) {
    std::remove(partial.c_str());
    err << "lineage export: cannot write " << options.file << '\n';
    return kExitInvalid;
  }
  return kExitOk;
}

}  // namespace tierflow::cli
