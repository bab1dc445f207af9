// A storage adapter that wraps another and injects faults into its calls,
// for tests (LevelDB's SpecialEnv): errors (ResourceExhausted for a full
// tier, Unavailable, DataLoss, any code), failures once a reader or writer
// has passed N bytes, short reads, slow calls. What to inject is held by a
// FaultInjector that the test keeps and may change while the adapter is in
// use (by the engine's mover threads, say); with no faults the wrapper
// behaves exactly as the adapter it wraps. Thread-safe as the wrapped adapter
// is; the injector itself is thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "storage_adapters/adapter.h"

namespace tierflow::storage::testing {

// The calls a fault applies to, as a bit set.
enum FaultOp : uint32_t {
  kOpenWrite = 1u << 0,
  kWrite = 1u << 1,  // ObjectWriter::Write
  kCommit = 1u << 2,
  kOpenRead = 1u << 3,
  kRead = 1u << 4,  // ObjectReader::Read
  kStat = 1u << 5,
  kList = 1u << 6,
  kDelete = 1u << 7,
  kPutFile = 1u << 8,
  kGetFile = 1u << 9,
};
inline constexpr uint32_t kAllOps = (1u << 10) - 1;
inline constexpr uint32_t kWriteOps = kOpenWrite | kWrite | kCommit | kPutFile;
inline constexpr uint32_t kReadOps = kOpenRead | kRead | kGetFile;

struct Fault {
  uint32_t ops = kAllOps;
  std::string key_prefix;  // keys (List: prefixes) that start with it; "" for all
  // The error; OK for none (a slow call only).
  absl::StatusCode code = absl::StatusCode::kUnavailable;
  // Write: fails once the writer would pass this many bytes (a tier that
  // fills up midway; 0: every Write); Read: once the reader has delivered
  // this many (a connection that drops mid-object; 0: every Read). Other
  // calls ignore it.
  uint64_t after_bytes = 0;
  int skip = 0;                        // matching calls let through before the first failure
  int times = -1;                      // failures after that; -1: every matching call fails
  std::chrono::milliseconds delay{0};  // every matching call waits this long first
};

class FaultInjector {
 public:
  void Add(Fault fault);
  // Removes every fault and the short-read limit.
  void Clear();
  // Every Read returns at most `max_bytes` (0: no limit), as ObjectReader
  // allows; readers must loop.
  void SetShortReads(size_t max_bytes);
  size_t short_reads() const;
  // Errors injected so far: lets a test show its fault really fired.
  int injected() const;

  // For the wrapper: the error to inject into call `op` on `key` of tier
  // `tier`, after waiting any delay. `stream_bytes`: what the reader has
  // delivered, or what the writer will have written after this call.
  absl::Status Check(FaultOp op, std::string_view tier, std::string_view key,
                     uint64_t stream_bytes);

 private:
  mutable std::mutex mutex_;
  std::vector<Fault> faults_ ABSL_GUARDED_BY(mutex_);
  size_t short_reads_ ABSL_GUARDED_BY(mutex_) = 0;
  int injected_ ABSL_GUARDED_BY(mutex_) = 0;
};

// `base` wrapped; errors name `tier` and the key, and say they were
// injected. Its kind() is "fault", so that no caller takes a shortcut past
// it (copy_file_range between two posix tiers); its wrapped() is `base`,
// whose posix root (PosixTierRoot) removals use without faults.
std::unique_ptr<Adapter> WrapWithFaults(std::unique_ptr<Adapter> base, std::string tier,
                                        std::shared_ptr<FaultInjector> faults);

}  // namespace tierflow::storage::testing
