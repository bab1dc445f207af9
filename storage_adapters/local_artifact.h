// Operations on an artifact held as a local path (a file or a directory
// tree): content hashing, atomic publication, and cheap materialisation of
// an earlier copy. Used by the worker on node-local and shared file
// systems; the posix tier adapter builds on them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "storage_adapters/tier_root.h"

namespace tierflow::storage {

struct ContentDigest {
  std::string hash;  // "xxh3:<32 lowercase hex>" (XXH3-128)
  uint64_t bytes = 0;
  uint64_t files = 0;  // 1 for a file; regular files in a tree
};

// Hashes a file by its contents, or a directory tree by its listing: every
// entry's relative path (sorted bytewise), its type, and each file's content
// hash, so renaming, moving or changing any file changes the hash, while the
// same bytes under the same names always hash the same. Streams in
// fixed-size blocks: never a whole file in memory. NotFound naming the path
// if it does not exist. A symlink (the path itself, or anywhere in the tree)
// is refused with FailedPrecondition naming it: an object store cannot hold
// one, so no copy of the artifact could match its hash (docs/tiers.md
// "Path safety").
absl::StatusOr<ContentDigest> HashArtifact(const std::string& path);

// Hashes bytes in memory the same way HashArtifact hashes a file.
std::string HashBytes(std::string_view bytes);

// Publishes `staging` (file or tree) at `final_path` with one rename, after
// creating final's parent folders; both are under `root` (relative to it,
// or absolute under it) and every step goes through it (tier_root.h), so a
// symlink beneath the root fails the publication instead of being followed.
// Anything already at `final_path` (left by an attempt whose success was
// never recorded) is moved aside and removed. `durable`: every file and
// folder of `staging` is fsynced before the rename and the parent folder
// after it, so the artifact survives a power loss once this returns.
absl::Status PublishArtifact(const TierRoot& root, const std::string& staging,
                             const std::string& final_path, bool durable = false);

// Makes `target` (under `root`) hold the same content as `source` (file or
// tree, anywhere) without copying bytes where it can: hard links, falling
// back to copy_file_range across file systems. Built under a temporary name
// and published with PublishArtifact, so `target` appears whole or not at
// all. A symlink in `source` is refused.
absl::Status LinkArtifact(const std::string& source, const TierRoot& root,
                          const std::string& target);

}  // namespace tierflow::storage
