// The conformance suite every storage adapter passes (Arrow's
// GenericFileSystemTest): one set of parameterised tests of the contract in
// adapter.h (write, read, ranges, stat, list, delete, overwrite, empty and
// large objects, odd keys, archives, the error codes and what they name), run against
// each adapter through a factory. A test binary instantiates it with its
// adapters:
//   INSTANTIATE_TEST_SUITE_P(posix_conformance, AdapterConformanceTest,
//                            ::testing::Values(PosixFactory()), AdapterName);
// Tests only; each test gets a fresh, empty tier of its own.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "storage_adapters/adapter.h"

namespace tierflow::storage::testing {

struct AdapterFactory {
  std::string name;  // the instantiation's name for it: posix, s3, posix_short_reads...
  // A new, empty tier named `tier`, an archive (write-once) if asked.
  // `scratch` is a folder the test removes at its end (a posix tier's root
  // goes there); the archive of a test gets a scratch of its own.
  std::function<absl::StatusOr<std::unique_ptr<Adapter>>(
      const std::string& tier, const std::filesystem::path& scratch, bool write_once)>
      make;
  // The adapter's unit of transfer (s3: its part size), so that the large
  // objects span several; 0: none (1 MiB is used).
  uint64_t part_bytes = 0;
};

// For INSTANTIATE_TEST_SUITE_P's name generator.
std::string AdapterName(const ::testing::TestParamInfo<AdapterFactory>& info);
// gtest prints a parameter (in test names as ctest lists them) by its name.
void PrintTo(const AdapterFactory& factory, std::ostream* out);

class AdapterConformanceTest : public ::testing::TestWithParam<AdapterFactory> {
 protected:
  void SetUp() override;
  void TearDown() override;

  std::filesystem::path scratch_;
  std::unique_ptr<Adapter> adapter_;
};

}  // namespace tierflow::storage::testing
