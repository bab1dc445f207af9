#include "api/embedded.h"

#include "storage_adapters/tier_factory.h"
#include "worker/local_pool.h"

namespace tierflow::api {

std::unique_ptr<scheduler::Engine> MakeEmbeddedEngine(scheduler::EngineOptions options) {
  options.make_executor = [](Executor::ReportCallback on_report) {
    return worker::StartLocalPool(std::move(on_report));
  };
  if (!options.open_tier) options.open_tier = storage::OpenTier;  // posix and s3
  return std::make_unique<scheduler::Engine>(std::move(options));
}

}  // namespace tierflow::api
