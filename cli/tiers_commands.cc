#include "cli/tiers_commands.h"

#include <chrono>
#include <cstdlib>
#include <ostream>

#include "api/cluster.h"
#include "api/embedded.h"
#include "api/tier_service.h"
#include "cli/commands.h"

namespace tierflow::cli {

int RunTiersList(const TiersOptions& options, std::ostream& out, std::ostream& err) {
  absl::Status status;
  if (options.scheduler.empty()) {
    status =
        api::WriteTierList(options.tiers_file, api::DatabasePath(options.db), options.output, out);
  } else {
    const char* token = std::getenv("TIERFLOW_TOKEN");
    absl::StatusOr<std::string> text =
        api::RemoteTiers(options.scheduler, token == nullptr ? "" : token, options.output);
    if (text.ok()) out << *text;
    status = text.status();
  }
  if (!status.ok()) {
    err << "tierflow: " << status.message() << '\n';
    return kExitInvalid;
  }
  return CheckWritten(out, err);
}

int RunTiersProbe(const TiersOptions& options, std::ostream& out, std::ostream& err) {
  const std::string db = api::DatabasePath(options.db);
  absl::StatusOr<storage::TierSet> tiers = api::LoadTiers(options.tiers_file, db);
  absl::Status status = tiers.status();
  if (status.ok()) {
    const auto budget = std::chrono::milliseconds(static_cast<int64_t>(options.seconds * 1000));
    status = api::ProbeTiers(*tiers, options.names, budget, db, out);
  }
  if (!status.ok()) {
    err << "tierflow: " << status.message() << '\n';
    return kExitInvalid;
  }
  return CheckWritten(out, err);
}

}  // namespace tierflow::cli
