// Artifact keys: the relative names under which artifacts live inside a
// tier's root (a directory for posix tiers, a key prefix for object stores).
// Every adapter takes keys only through NormalizeArtifactKey, so no key can
// name anything outside its tier root.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace tierflow::storage {

// Limits that hold on every adapter we support (POSIX NAME_MAX, S3's 1024
// byte key limit).
inline constexpr size_t kMaxArtifactKeyBytes = 1024;
inline constexpr size_t kMaxKeyComponentBytes = 255;

// Returns `key` in canonical form: components joined by single '/', with
// empty and "." components dropped. Rejects, with an error naming the key:
// an empty result, absolute keys, ".." components, backslashes, NUL and
// other control characters, components or keys over the limits above.
absl::StatusOr<std::string> NormalizeArtifactKey(std::string_view key);

}  // namespace tierflow::storage
