// What the tests that talk to the real Swift of the `swift` ctest fixture
// (s3_test, s3_fault_test, s3_conformance_test) share: reading files, test
// bytes (testing/objects.h), and a tier on the fixture's bucket. Tests only.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <string_view>

#include "storage_adapters/s3.h"
#include "storage_adapters/testing/objects.h"  // RandomBytes

namespace tierflow::storage::testing {

inline constexpr uint64_t kMiB = uint64_t{1} << 20;

inline std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

inline std::string_view TrimNewline(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  return text;
}

// A tier `tier` on the fixture's bucket at `endpoint`, under `prefix`, with
// Swift's credentials and its smallest part size.
inline S3Config SwiftConfig(std::string tier, std::string endpoint, std::string prefix) {
  S3Config config;
  config.tier = std::move(tier);
  config.endpoint = std::move(endpoint);
  config.bucket = "tierflow-test";
  config.access_key = "test:tester";
  config.secret_key = "testing";
  config.prefix = std::move(prefix);
  config.part_size = 5 * kMiB;  // Swift's (and S3's) smallest
  return config;
}

}  // namespace tierflow::storage::testing
