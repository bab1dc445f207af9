// Moving artifacts between tiers: one object, or a tree of them under a
// prefix. Between two posix tiers the kernel copies (copy_file_range, in
// parallel ranges); otherwise data streams through in chunks, with the
// adapters' own parallelism (multipart parts, ranged GETs). Every copy is
// atomic on the target, like any write.
//
// Copies from a remote store (Adapter::remote(), s3) are verified while the
// bytes pass: each object against its own stored content hash (or, for a
// file artifact stored without one, the artifact's expected hash) before it
// is committed on the target, and a tree against the artifact's expected
// hash at the end. An object that does not match is copied again (three
// attempts in all), then the copy fails, DataLoss, naming the tier, the
// key, the expected and the actual hash.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "storage_adapters/adapter.h"
#include "storage_adapters/tier_root.h"

namespace tierflow::storage {

struct TransferOptions {
  int parallel = 4;                   // ranges or parts at once
  uint64_t chunk_bytes = 4ull << 20;  // streamed copies: bytes per read/write
};

struct TransferResult {
  uint64_t bytes = 0;
  uint64_t objects = 0;
  // The content hash of what was copied (a file's, or a tree's), when the
  // bytes went through this process; "" after a kernel copy between posix
  // tiers.
  std::string content_hash = {};
  // Every object was checked against a content hash before it was committed.
  bool verified = false;
};

// `key` of `from` to `to_key` of `to`.
// `expected`: the hash to check against when the object carries none of its
// own ("" for none).
absl::StatusOr<TransferResult> CopyObject(Adapter& from, std::string_view key, Adapter& to,
                                          std::string_view to_key,
                                          const TransferOptions& options = {},
                                          std::string_view expected = {});

// Every object under `prefix` (a folder-like key: "run/stage/output") to the
// same relative keys under `to_prefix`.
absl::StatusOr<TransferResult> CopyTree(Adapter& from, std::string_view prefix, Adapter& to,
                                        std::string_view to_prefix,
                                        const TransferOptions& options = {});

// An artifact is a file (one object) or a tree (the objects under key/).
// Copies it whole from `key` on one tier to `to_key` on another, each
// object atomic on `to`. `expected_hash`: the artifact's recorded hash, that
// a copy from a remote store must match ("" for none).
absl::StatusOr<TransferResult> CopyArtifact(Adapter& from, const std::string& key, Adapter& to,
                                            const std::string& to_key,
                                            const std::string& expected_hash = "");
// A streamed copy (docs/tiers.md "Streamed inputs") of the artifact `key`
// onto a posix tier where it is at `path`: the manifest PATH.stream.json
// first (the artifact's files in copy order), then the files in that order,
// each atomically, a few at once, at most `window` ahead of the one the
// reader last asked for (PATH.stream.json.next). `on_first` is called once
// the first file is there (a single-file artifact: once it is); waiting for
// the reader stops when `readers_done` is set, or when it has not moved for
// a minute. When the copy fails, PATH.stream.json.failed says why. From a
// remote store, each file is verified before it appears (so before the
// reader can open it), and the whole against `expected_hash`; files stored
// without a hash of their own are copied all, verified whole, and only then
// handed to the reader.
inline constexpr std::string_view kStreamManifestSuffix = ".stream.json";
struct StreamOptions {
  int64_t window = 8;
  size_t parallel = 4;
  bool clear_first = false;  // remove what an earlier copy to `path` left
  std::function<void()> on_first;
  // Call `on_first` once the manifest is written, before the first file is
  // there, so that the reader's start overlaps the first file's copy (the
  // helpers wait for each file). Only where every file is checked before it
  // appears: from a posix tier, or a remote one whose first object has its
  // own hash; otherwise `on_first` waits for the first file as above.
  bool start_at_manifest = false;
  std::shared_ptr<const std::atomic<bool>> readers_done;
  std::string expected_hash;  // the artifact's recorded hash ("" for none)
};
absl::StatusOr<TransferResult> StreamArtifact(Adapter& from, const std::string& key, Adapter& to,
                                              const std::string& path,
                                              const StreamOptions& options);
// Removes a streamed copy's manifest and its reader's files beside `path`
// (under `root`).
absl::Status RemoveStreamFiles(const TierRoot& root, const std::string& path);

// A committed checkpoint (docs/task-helpers.md): the folder `key`, then its
// marker `key`.committed, so that it counts on `to` only once it is all
// there.
absl::StatusOr<TransferResult> CopyCheckpoint(Adapter& from, Adapter& to, const std::string& key);

// Deletes a file artifact or every object of a tree artifact.
absl::Status DeleteArtifact(Adapter& adapter, const std::string& key);
// True when the artifact is there, as a file or a non-empty tree.
absl::StatusOr<bool> ArtifactExists(Adapter& adapter, const std::string& key);

}  // namespace tierflow::storage
