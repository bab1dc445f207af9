// Objects for the storage adapters' tests: bytes that differ at every
// offset, and whole objects written and read through the Adapter interface
// in pieces, and their keys listed. Tests only (gtest); stateless.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage_adapters/adapter.h"

namespace tierflow::storage::testing {

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

// Writes `data` as `key` in pieces of `piece` bytes (odd on purpose: parts
// are made of many writes and end in the middle of one), then commits.
inline absl::Status PutObject(Adapter& adapter, std::string_view key, std::string_view data,
                              size_t piece = 1000003) {
  auto writer = adapter.OpenWrite(key);
  if (!writer.ok()) return writer.status();
  for (size_t at = 0; at < data.size(); at += piece) {
    if (absl::Status status = (*writer)->Write(data.substr(at, piece)); !status.ok()) {
      return status;
    }
  }
  return (*writer)->Commit();
}

// The bytes of `key` (or of a range of it), read `buffer` bytes at a time.
inline absl::StatusOr<std::string> GetObject(Adapter& adapter, std::string_view key,
                                             uint64_t offset = 0,
                                             std::optional<uint64_t> length = std::nullopt,
                                             size_t buffer = 65531) {
  auto reader = adapter.OpenRead(key, offset, length);
  if (!reader.ok()) return reader.status();
  std::string out;
  std::vector<char> chunk(buffer);
  for (;;) {
    auto n = (*reader)->Read(chunk);
    if (!n.ok()) return n.status();
    if (*n == 0) return out;
    out.append(chunk.data(), *n);
  }
}

// The keys under `prefix`, in the adapter's order; a failed List fails the
// test and gives none.
inline std::vector<std::string> Keys(Adapter& adapter, std::string_view prefix) {
  auto objects = adapter.List(prefix);
  EXPECT_TRUE(objects.ok()) << objects.status();
  std::vector<std::string> keys;
  if (objects.ok()) {
    for (const ObjectInfo& info : *objects) keys.push_back(info.key);
  }
  return keys;
}

}  // namespace tierflow::storage::testing
