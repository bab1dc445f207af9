// Reading objects from an s3 tier (s3.cc uses it): the streaming reader,
// one ranged GET of one part at a time (memory stays at one part whatever
// the object's size; every chunk must come from the same object, by its
// ETag, else Aborted), and whole objects fetched as parallel ranges into a
// temporary file beside the target, renamed into place once complete. An
// internal header. The functions are thread-safe; a reader is for one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage_adapters/adapter.h"
#include "storage_adapters/s3_client.h"

namespace tierflow::storage::s3_internal {

// Adapter::OpenRead of `key` (its bucket name `object`): NotFound here, not
// at the first Read, when there is no such object. `client` must outlive it.
absl::StatusOr<std::unique_ptr<ObjectReader>> OpenS3Reader(S3Client* client, std::string key,
                                                           std::string object, uint64_t offset,
                                                           std::optional<uint64_t> length);

// The largest range DownloadFile asks for in one GET: what a failed
// attempt fetches again.
inline constexpr uint64_t kMaxDownloadRange = uint64_t{64} << 20;

// The bytes of each ranged GET of DownloadFile: as few requests as keep
// `parallel` of them busy (every request costs the server a fixed amount:
// 32 GETs of 8 MiB took Swift 0.96 CPU-seconds per 256 MiB, 4 of 64 MiB
// 0.61-0.68, bench/README.md "Issue 21: transfer"), at least a part, at
// most kMaxDownloadRange.
uint64_t DownloadRangeBytes(uint64_t object_bytes, uint64_t part_size, int parallel);

// Adapter::GetFile: `key` into `local_path`, atomically, in ranged GETs of
// DownloadRangeBytes, `parallel` at a time.
absl::Status DownloadFile(S3Client& client, const std::string& key, const std::string& object,
                          const std::string& local_path);

}  // namespace tierflow::storage::s3_internal
