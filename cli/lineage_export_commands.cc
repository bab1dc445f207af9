#include "cli/lineage_export_commands.h"

#include <cstdio>
#include <fstream>
#include <ostream>
#include <sstream>

#include "api/embedded.h"
#include "api/lineage_export.h"
#include "api/lineage_sender.h"
#include "cli/commands.h"

namespace tierflow::cli {

namespace {

int RunLineageRejected(const LineageExportOptions& options, std::ostream& out, std::ostream& err) {
  if (!options.run.empty() || !options.file.empty()) {
    err << "lineage export: --rejected lists every parked event: give no RUN and no -o\n"
           "Run with --help for more information.\n";
    return kExitUsage;
  }
  auto rows = api::RejectedLineageEvents(api::DatabasePath(options.db));
  if (!rows.ok()) {
    err << "lineage export: " << rows.status().message() << '\n';
    return kExitInvalid;
  }
  out << rows->size() << " rejected OpenLineage event" << (rows->size() == 1 ? "" : "s")
      << " parked in the outbox\n";
  for (const auto& row : *rows) {
    out << "seq " << row.seq << "  run " << row.run_id;
    if (row.attempt_id) out << "  attempt " << *row.attempt_id;
    out << "  " << row.event_type << "  tries " << row.tries << "\n  answer: " << row.answer
        << "\n  body: " << row.body << '\n';
  }
  return CheckWritten(out, err);
}

}  // namespace

int RunLineageExport(const LineageExportOptions& options, std::ostream& out, std::ostream& err) {
  if (options.rejected) return RunLineageRejected(options, out, err);
  if (options.run.empty()) {
    err << "lineage export: give a RUN (an id, or last), or --rejected\nRun with --help for more "
           "information.\n";
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
