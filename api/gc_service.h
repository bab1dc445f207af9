// `tierflow gc` for clients: runs scheduler::CollectGarbage (the decision
// and the deletes are the scheduler's) with the posix and S3 tier factory,
// and shows its report as text or JSON.
#pragma once

#include <iosfwd>
#include <string>

#include "absl/status/status.h"
#include "scheduler/gc.h"

namespace tierflow::api {

// `output`: "text" or "json". InvalidArgument for bad options (neither rule
// given, a negative --keep-last); an error when a delete failed, after the
// report is written (the runs concerned stay 'deleting' for the next gc).
absl::Status WriteGc(const std::string& db_path, const scheduler::GcOptions& options,
                     const std::string& output, std::ostream& out);

}  // namespace tierflow::api
