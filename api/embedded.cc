#include "api/embedded.h"

#include "api/lineage_sender.h"
#include "api/slurm_executor.h"
#include "common/status.h"
#include "common/strings.h"
#include "storage_adapters/tier_factory.h"
#include "worker/local_pool.h"

namespace tierflow::api {

std::unique_ptr<Engine> MakeEmbeddedEngine(EngineOptions options) {
  // One clock for the run's timers and its tasks' timeouts.
  options.make_executor = [clock = options.clock](Executor::ReportCallback on_report) {
    worker::LocalPoolOptions pool;
    pool.clock = clock;
    return worker::StartLocalPool(std::move(on_report), pool);
  };
  if (!options.open_tier) options.open_tier = storage::OpenTier;  // posix and s3
  return std::make_unique<Engine>(std::move(options));
}

LocalBudget MachineBudget(const BudgetFlags& flags) {
  return scheduler::MakeLocalBudget(scheduler::ReadMachine(), flags);
}

std::string DatabasePath(const std::string& db_flag) {
  return scheduler::ResolveDatabasePath(db_flag);
}

absl::Status CheckStoreReadable(const std::string& db_path) {
  return scheduler::OpenStoreReadOnly(db_path).status();
}

absl::StatusOr<std::string> CancelLocalRun(const std::string& db_path, const std::string& run) {
  TF_ASSIGN_OR_RETURN(std::optional<LineageConfig> lineage, LineageConfigFromEnv());
  return scheduler::CancelRun(
      db_path, run,
      [](const std::string& run_id, const std::string& executor) -> absl::Status {
        if (executor == "slurm") return CancelSlurmJobs(run_id);
        return absl::UnimplementedError(
            StrCat("run ", run_id, ": cannot stop the jobs of --executor ", executor));
      },
      lineage ? std::optional(lineage->settings) : std::nullopt);
}

}  // namespace tierflow::api
