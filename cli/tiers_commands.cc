#include "cli/tiers_commands.h"

#include <chrono>
#include <ostream>

#include "api/tier_service.h"
#include "cli/commands.h"
#include "scheduler/store.h"

namespace tierflow::cli {

int RunTiersList(const TiersOptions& options, std::ostream& out, std::ostream& err) {
  const std::string db = scheduler::ResolveDatabasePath(options.db);
  absl::StatusOr<storage::TierSet> tiers = api::LoadTiers(options.tiers_file, db);
  absl::StatusOr<std::vector<api::TierView>> views =
      tiers.ok() ? api::ListTiers(*tiers, db) : tiers.status();
  if (!views.ok()) {
    err << "tierflow: " << views.status().message() << '\n';
    return kExitInvalid;
  }
  if (options.output == "json") {
    api::RenderTiersJson(*views, out);
  } else {
    api::RenderTiersText(*views, out);
  }
  return CheckWritten(out, err);
}

int RunTiersProbe(const TiersOptions& options, std::ostream& out, std::ostream& err) {
  const std::string db = scheduler::ResolveDatabasePath(options.db);
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
