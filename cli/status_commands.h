// `tierflow status [RUN]` on the local store (api/run_status.h): the run
// read-only from the state database, as `status --scheduler` shows a
// server's (cluster_commands.h RunStatus, which hands the local case here).
#pragma once

#include <iosfwd>

#include "cli/cluster_commands.h"

namespace tierflow::cli {

// Exit codes as in commands.h: 0 shown, 1 for a missing database or an
// unknown run.
int RunLocalStatus(const StatusOptions& options, std::ostream& out, std::ostream& err);

}  // namespace tierflow::cli
