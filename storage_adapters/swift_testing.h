// What the tests that talk to the real Swift of the `swift` ctest fixture
// (s3_test, s3_fault_test) share: reading files, test bytes, and a tier on
// the fixture's bucket. Tests only.
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

// Bytes that differ at every offset, so a misplaced range cannot pass.
inline std::string RandomBytes(size_t size, uint64_t seed) {
  std::mt19937_64 random(seed);
  std::string out(size, '\0');
  for (size_t i = 0; i < size; i += 8) {
    const uint64_t word = random();
    std::memcpy(out.data() + i, &word, std::min<size_t>(8, size - i));
  }
  return out;
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
