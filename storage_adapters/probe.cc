#include "storage_adapters/probe.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <random>
#include <vector>

#include "common/status.h"
#include "common/strings.h"

namespace tierflow::storage {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::string_view kPrefix = ".tierflow-probe/";
constexpr size_t kChunk = 1 << 20;
constexpr size_t kSmall = 4096;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

void DropPosixCache(const std::string& root, const std::string& key) {
  const std::string path = StrCat(root, "/", key);
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  fdatasync(fd);
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  close(fd);
}

absl::StatusOr<ProbeResult> ProbeTier(Adapter& adapter, const ProbeOptions& options) {
  const Clock::time_point start = Clock::now();
  // Phases get shares of the budget: write 35%, read 25%, random 20%, small 20%.
  auto share = [&](double fraction) {
    return std::chrono::duration_cast<Clock::duration>(options.budget * fraction);
  };
  ProbeResult result;
  std::mt19937_64 random(42);
  std::vector<char> chunk(kChunk);
  for (char& c : chunk) c = static_cast<char>(random());
  const std::string big = StrCat(kPrefix, "sequential");
  std::vector<std::string> written = {big};
  auto cleanup = [&] {
    for (const std::string& key : written) (void)adapter.Delete(key);
  };

  // Sequential write: 1 MiB chunks until the share or the size cap is used.
  {
    TF_ASSIGN_OR_RETURN(std::unique_ptr<ObjectWriter> writer, adapter.OpenWrite(big));
    const Clock::time_point begin = Clock::now();
    uint64_t bytes = 0;
    while (bytes < options.max_file_bytes &&
           (bytes < 4 * kChunk || Clock::now() - begin < share(0.35))) {
      if (absl::Status status = writer->Write(std::string_view(chunk.data(), chunk.size()));
          !status.ok()) {
        cleanup();
        return status;
      }
      bytes += kChunk;
    }
    if (absl::Status status = writer->Commit(); !status.ok()) {
      cleanup();
      return status;
    }
    if (options.drop_cache) options.drop_cache(big);  // counts: data must be on the device
    result.profile.seq_write_mb_s =
        static_cast<double>(bytes) / 1e6 / Seconds(Clock::now() - begin);
    result.bytes_written = bytes;
  }
  // Sequential read of the whole object (or until the share is used).
  {
    const Clock::time_point begin = Clock::now();
    absl::StatusOr<std::unique_ptr<ObjectReader>> reader = adapter.OpenRead(big);
    if (!reader.ok()) {
      cleanup();
      return reader.status();
    }
    uint64_t bytes = 0;
    for (;;) {
      absl::StatusOr<size_t> n = (*reader)->Read(std::span<char>(chunk));
      if (!n.ok()) {
        cleanup();
        return n.status();
      }
      if (*n == 0) break;
      bytes += *n;
      if (Clock::now() - begin > share(0.25)) break;
    }
    result.profile.seq_read_mb_s = static_cast<double>(bytes) / 1e6 / Seconds(Clock::now() - begin);
  }
  if (options.drop_cache) options.drop_cache(big);
  // Random 4 KiB reads, one at a time, each opening the object.
  {
    const uint64_t blocks = result.bytes_written / kSmall;
    const Clock::time_point begin = Clock::now();
    uint64_t reads = 0;
    char block[kSmall];
    while (reads < 16 || (Clock::now() - begin < share(0.2) && reads < 100000)) {
      const uint64_t offset = (random() % blocks) * kSmall;
      absl::StatusOr<std::unique_ptr<ObjectReader>> reader = adapter.OpenRead(big, offset, kSmall);
      absl::StatusOr<size_t> n = reader.ok() ? (*reader)->Read(block) : reader.status();
      if (!n.ok()) {
        cleanup();
        return n.status();
      }
      ++reads;
    }
    const double seconds = Seconds(Clock::now() - begin);
    result.profile.rand_read_iops = static_cast<double>(reads) / seconds;
    result.profile.latency_us = seconds * 1e6 / static_cast<double>(reads);
  }
  // Small objects: create (write + commit) then stat each.
  {
    const std::string_view data(chunk.data(), kSmall);
    const Clock::time_point begin = Clock::now();
    int created = 0;
    while (created < 8 || (Clock::now() - begin < share(0.12) && created < 2000)) {
      const std::string key = StrCat(kPrefix, "small-", created);
      written.push_back(key);
      absl::StatusOr<std::unique_ptr<ObjectWriter>> writer = adapter.OpenWrite(key);
      absl::Status status = writer.ok() ? (*writer)->Write(data) : writer.status();
      if (status.ok()) status = (*writer)->Commit();
      if (!status.ok()) {
        cleanup();
        return status;
      }
      ++created;
    }
    result.create_us = Seconds(Clock::now() - begin) * 1e6 / created;
    const Clock::time_point stat_begin = Clock::now();
    for (int i = 0; i < created; ++i) {
      absl::StatusOr<ObjectInfo> info = adapter.Stat(StrCat(kPrefix, "small-", i));
      if (!info.ok()) {
        cleanup();
        return info.status();
      }
    }
    result.stat_us = Seconds(Clock::now() - stat_begin) * 1e6 / created;
  }
  cleanup();
  result.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  return result;
}

}  // namespace tierflow::storage
