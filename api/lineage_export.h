// `tierflow lineage export`: a run's OpenLineage events (spec 2-0-2) as
// NDJSON, one event per line, rendered from the state store on demand
// (scheduler/lineage_events.h), for offline import into Marquez or any
// OpenLineage consumer. Read-only; safe from any thread.
#pragma once

#include <iosfwd>
#include <string>

#include "absl/status/status.h"

namespace tierflow::api {

// Writes the events of run `run` (an id, or last/latest) in the store `db`
// ("" : $TIERFLOW_DB, else .tierflow/tierflow.db) to `out`, the jobs in the
// namespace $TIERFLOW_OPENLINEAGE_NAMESPACE (else "tierflow"). NotFound for
// an unknown run, naming it; nothing is written then.
absl::Status ExportRunLineage(const std::string& db, const std::string& run, std::ostream& out);

}  // namespace tierflow::api
