// Operations on an artifact held as a local path (a file or a directory
// tree): content hashing, atomic publication, and cheap materialisation of
// an earlier copy. Used by the worker on node-local and shared file
// systems; the posix tier adapter builds on them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace tierflow::storage {

struct ContentDigest {
  std::string hash;  // "xxh3:<32 lowercase hex>" (XXH3-128)
  uint64_t bytes = 0;
  uint64_t files = 0;  // 1 for a file; regular files in a tree
};

// Hashes a file by its contents, or a directory tree by its listing: every
// entry's relative path (sorted bytewise), its type, and each file's content
// hash or symlink's target, so renaming, moving or changing any file changes
// the hash, while the same bytes under the same names always hash the same.
// Symlinks are not followed. Streams in fixed-size blocks: never a whole
// file in memory. NotFound naming the path if it does not exist.
absl::StatusOr<ContentDigest> HashArtifact(const std::string& path);

// Hashes bytes in memory the same way HashArtifact hashes a file.
std::string HashBytes(std::string_view bytes);

// Publishes `staging` (file or tree) at `final_path` with one rename, after
// creating final's parent folders. Anything already at `final_path` (left by
// an attempt whose success was never recorded) is removed first. Both paths
// must be on one file system. `durable`: every file and folder of `staging`
// is fsynced before the rename and the parent folder after it, so the
// artifact survives a power loss once this returns (durable tiers).
absl::Status PublishArtifact(const std::string& staging, const std::string& final_path,
                             bool durable = false);

// Makes `target` hold the same content as `source` (file or tree) without
// copying bytes where it can: hard links, falling back to copy_file_range
// across file systems. Built under a temporary name and published with
// PublishArtifact, so `target` appears whole or not at all.
absl::Status LinkArtifact(const std::string& source, const std::string& target);

}  // namespace tierflow::storage
