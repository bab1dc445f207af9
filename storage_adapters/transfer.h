// Moving artifacts between tiers: one object, or a tree of them under a
// prefix. Between two posix tiers the kernel copies (copy_file_range, in
// parallel ranges); otherwise data streams through in chunks, with the
// adapters' own parallelism (multipart parts, ranged GETs). Every copy is
// atomic on the target, like any write.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "storage_adapters/adapter.h"

namespace tierflow::storage {

struct TransferOptions {
  int parallel = 4;                   // ranges or parts at once
  uint64_t chunk_bytes = 4ull << 20;  // streamed copies: bytes per read/write
};

struct TransferResult {
  uint64_t bytes = 0;
  uint64_t objects = 0;
};

// `key` of `from` to `to_key` of `to`.
absl::StatusOr<TransferResult> CopyObject(Adapter& from, std::string_view key, Adapter& to,
                                          std::string_view to_key,
                                          const TransferOptions& options = {});

// Every object under `prefix` (a folder-like key: "run/stage/output") to the
// same relative keys under `to_prefix`.
absl::StatusOr<TransferResult> CopyTree(Adapter& from, std::string_view prefix, Adapter& to,
                                        std::string_view to_prefix,
                                        const TransferOptions& options = {});

// An artifact is a file (one object) or a tree (the objects under key/).
// Copies it whole from `key` on one tier to `to_key` on another, each
// object atomic on `to`.
absl::StatusOr<TransferResult> CopyArtifact(Adapter& from, const std::string& key, Adapter& to,
                                            const std::string& to_key);
// Deletes a file artifact or every object of a tree artifact.
absl::Status DeleteArtifact(Adapter& adapter, const std::string& key);
// True when the artifact is there, as a file or a non-empty tree.
absl::StatusOr<bool> ArtifactExists(Adapter& adapter, const std::string& key);

}  // namespace tierflow::storage
