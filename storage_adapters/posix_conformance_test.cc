// The adapter conformance suite (testing/adapter_conformance.h) on posix
// tiers: the adapter itself, the fault wrapper with no faults around it,
// and the wrapper giving short reads and slow calls, which the contract
// allows and every caller must ride out.
#include <chrono>

#include "common/status.h"
#include "storage_adapters/posix.h"
#include "storage_adapters/testing/adapter_conformance.h"
#include "storage_adapters/testing/fault_adapter.h"

namespace tierflow::storage::testing {
namespace {

absl::StatusOr<std::unique_ptr<Adapter>> MakePosix(const std::string& tier,
                                                   const std::filesystem::path& scratch,
                                                   bool write_once) {
  // As an archive tier is opened (OpenPosixTier): fsynced and write-once.
  return MakePosixAdapter({tier, (scratch / "root").string(), write_once, write_once});
}

AdapterFactory Posix() { return {"posix", MakePosix}; }

AdapterFactory PosixInIdleWrapper() {
  return {"posix_fault_wrapper_idle",
          [](const std::string& tier, const std::filesystem::path& scratch,
             bool write_once) -> absl::StatusOr<std::unique_ptr<Adapter>> {
            TF_ASSIGN_OR_RETURN(std::unique_ptr<Adapter> posix,
                                MakePosix(tier, scratch, write_once));
            return WrapWithFaults(std::move(posix), tier, std::make_shared<FaultInjector>());
          }};
}

AdapterFactory PosixWithShortReadsAndSlowCalls() {
  return {"posix_short_reads_slow_calls",
          [](const std::string& tier, const std::filesystem::path& scratch,
             bool write_once) -> absl::StatusOr<std::unique_ptr<Adapter>> {
            TF_ASSIGN_OR_RETURN(std::unique_ptr<Adapter> posix,
                                MakePosix(tier, scratch, write_once));
            auto faults = std::make_shared<FaultInjector>();
            faults->SetShortReads(1000);
            Fault slow;
            slow.ops = kOpenWrite | kCommit | kOpenRead | kStat | kList | kDelete;
            slow.code = absl::StatusCode::kOk;
            slow.delay = std::chrono::milliseconds(2);
            faults->Add(slow);
            return WrapWithFaults(std::move(posix), tier, std::move(faults));
          }};
}

INSTANTIATE_TEST_SUITE_P(posix_conformance, AdapterConformanceTest,
                         ::testing::Values(Posix(), PosixInIdleWrapper(),
                                           PosixWithShortReadsAndSlowCalls()),
                         AdapterName);

}  // namespace
}  // namespace tierflow::storage::testing
