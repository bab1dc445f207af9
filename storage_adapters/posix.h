// The posix adapter: a tier that is a folder (a local disk, NVMe, a shared
// or parallel file system, tmpfs). Every path is resolved inside the root
// through its TierRoot (tier_root.h), so neither `..` nor a symlink, however
// planted, can take an access outside it: a symlink beneath the root fails
// the access. Writes go to a hidden temporary
// file beside the target and are renamed into place on Commit; on durable
// and archive tiers the file and its folder are fsynced first. Archive
// tiers are write-once: an existing key is never replaced or deleted.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "storage_adapters/adapter.h"
#include "storage_adapters/tier_config.h"
#include "storage_adapters/tier_root.h"

namespace tierflow::storage {

struct PosixConfig {
  std::string tier;         // the tier's name, for messages
  std::string root;         // created if missing
  bool sync = false;        // fsync before a write becomes visible
  bool write_once = false;  // archive: refuse overwrite and delete
  // A root in a folder anyone can write (the default RAM tier): created
  // 0700, refused unless ours and closed to others (TierRoot::OpenPrivate).
  bool private_root = false;
};

absl::StatusOr<std::unique_ptr<Adapter>> MakePosixAdapter(const PosixConfig& config);

// The adapter of a posix tier as tiers.yaml declares it: fsync on durable
// and archive tiers, write-once on archive tiers.
absl::StatusOr<std::unique_ptr<Adapter>> OpenPosixTier(const TierConfig& tier);

// The root folder of a posix tier, created when missing; the default RAM
// tier's folder (DefaultRamRoot) with TierRoot::OpenPrivate's checks.
absl::StatusOr<std::shared_ptr<const TierRoot>> OpenPosixRoot(const std::string& root);

// The root of a posix tier's adapter (or of the posix adapter a testing
// wrapper wraps), through which every change under it is made; null for
// any other adapter.
std::shared_ptr<const TierRoot> PosixTierRoot(const Adapter& adapter);

// Copies `key` of posix tier `from` to `to_key` of posix tier `to` inside
// the kernel (copy_file_range: no bytes through user space, a reflink where
// the file system can), `parallel` ranges at once; as atomic on `to` as any
// write. Unimplemented when either adapter is not a posix one.
absl::Status CopyBetweenPosixTiers(Adapter& from, std::string_view key, Adapter& to,
                                   std::string_view to_key, int parallel);

}  // namespace tierflow::storage
