#include "cli/lineage_rejected_commands.h"

#include "api/embedded.h"
#include "api/lineage_sender.h"
#include "cli/commands.h"

namespace tierflow::cli {

int RunLineageRejected(const LineageRejectedOptions& options, std::ostream& out,
                       std::ostream& err) {
  if (!options.rejected) {
    err << "tierflow: lineage export: give --rejected\n";
    return kExitUsage;
  }
  auto rows = api::RejectedLineageEvents(api::DatabasePath(options.db));
  if (!rows.ok()) {
    err << "tierflow: " << rows.status().message() << '\n';
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
  return kExitOk;
}

}  // namespace tierflow::cli
