// The adapter conformance suite (testing/adapter_conformance.h) on s3 tiers
// of the real Swift that the `swift` ctest fixture starts (its endpoint in
// TIERFLOW_SWIFT_DIR): the adapter itself, and the fault wrapper with no
// faults around it. Each test's tier is a prefix of its own in the
// fixture's bucket.
#include <cstdlib>
#include <random>

#include "common/status.h"
#include "common/strings.h"
#include "storage_adapters/s3.h"
#include "storage_adapters/swift_testing.h"
#include "storage_adapters/testing/adapter_conformance.h"
#include "storage_adapters/testing/fault_adapter.h"

namespace tierflow::storage::testing {
namespace {

absl::StatusOr<std::unique_ptr<Adapter>> MakeS3(const std::string& tier,
                                                const std::filesystem::path& scratch,
                                                bool write_once) {
  const char* swift = std::getenv("TIERFLOW_SWIFT_DIR");
  if (swift == nullptr) {
    return absl::FailedPreconditionError(
        "TIERFLOW_SWIFT_DIR is not set: run through ctest, whose swift fixture starts the "
        "server (scripts/swift.sh start DIR)");
  }
  const std::string endpoint(TrimNewline(ReadFile(std::filesystem::path(swift) / "endpoint")));
  const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
  S3Config config = SwiftConfig(tier, endpoint,
                                StrCat("conformance/", test->name(), "-", std::random_device{}(),
                                       "/", scratch.filename().string()));
  config.write_once = write_once;
  TF_RETURN_IF_ERROR(CreateS3Bucket(config));
  return MakeS3Adapter(config);
}

AdapterFactory S3() { return {"s3", MakeS3, 5 * kMiB}; }

AdapterFactory S3InIdleWrapper() {
  return {"s3_fault_wrapper_idle",
          [](const std::string& tier, const std::filesystem::path& scratch,
             bool write_once) -> absl::StatusOr<std::unique_ptr<Adapter>> {
            TF_ASSIGN_OR_RETURN(std::unique_ptr<Adapter> s3, MakeS3(tier, scratch, write_once));
            return WrapWithFaults(std::move(s3), tier, std::make_shared<FaultInjector>());
          },
          5 * kMiB};
}

INSTANTIATE_TEST_SUITE_P(s3_conformance, AdapterConformanceTest,
                         ::testing::Values(S3(), S3InIdleWrapper()), AdapterName);

}  // namespace
}  // namespace tierflow::storage::testing
