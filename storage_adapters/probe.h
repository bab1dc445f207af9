// `tierflow tiers probe`: measures what a tier can do, through its adapter,
// within a time budget: sequential write and read throughput, 4 KiB random
// reads (IOPS and latency, one at a time, each opening the object as a
// consumer would), and small-object create and stat latency. Everything it
// writes lives under a `.tierflow-probe/` key prefix and is deleted after.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "storage_adapters/adapter.h"
#include "storage_adapters/tier_config.h"

namespace tierflow::storage {

struct ProbeOptions {
  std::chrono::milliseconds budget = std::chrono::seconds(10);  // all phases together
  uint64_t max_file_bytes = uint64_t{256} << 20;  // the sequential test object, at most
  // Called after the sequential write with the object's key: a posix tier
  // drops it from the page cache so the read measures the device, not RAM.
  std::function<void(const std::string& key)> drop_cache;
};

struct ProbeResult {
  TierProfile profile;   // seq MB/s, random-read IOPS and latency
  double create_us = 0;  // writing and committing one 4 KiB object
  double stat_us = 0;    // one Stat
  uint64_t bytes_written = 0;
  std::chrono::milliseconds elapsed{0};
};

absl::StatusOr<ProbeResult> ProbeTier(Adapter& adapter, const ProbeOptions& options);

// For posix tiers: evicts `root/key` from the page cache (fsync, then
// POSIX_FADV_DONTNEED); best effort.
void DropPosixCache(const std::string& root, const std::string& key);

}  // namespace tierflow::storage
