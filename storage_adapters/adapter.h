// The one small interface every storage adapter implements (posix for
// local disks, NVMe, shared and parallel file systems and tmpfs; s3 for
// object stores over HTTP). Objects are named by keys relative to the
// tier's root; an adapter takes a key only after NormalizeArtifactKey, so
// no key can name anything outside the root. Data streams through: nothing
// holds a whole object in memory. Every write is atomic: nothing is visible
// under a key until its writer commits (a temporary name then rename, or a
// completed multipart upload), so a crash never leaves a partial object.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tierflow::storage {

struct ObjectInfo {
  std::string key;  // normalised, relative to the tier root
  uint64_t bytes = 0;
  int64_t modified_ms = 0;  // ms since the Unix epoch; 0 when unknown
  // The object's own content hash (as HashArtifact gives it for a file) when
  // the store keeps one beside it (s3: user metadata set on upload; Stat
  // only), else empty. Copies check what they read against it.
  std::string content_hash = {};
};

// Writes one object in pieces. Nothing is visible under the key until
// Commit() returns OK; a writer destroyed before that leaves no trace.
class ObjectWriter {
 public:
  virtual ~ObjectWriter() = default;
  virtual absl::Status Write(std::string_view data) = 0;
  // Makes the object visible under its key, replacing any earlier object.
  virtual absl::Status Commit() = 0;
  // Where to get the object's content hash (as HashArtifact gives it) if the
  // writer must declare it before it has seen every byte (an s3 multipart
  // upload sets its metadata when it starts); the writer then checks it
  // against what was written. Writers that need none ignore it.
  virtual void SetContentHashSource(std::function<absl::StatusOr<std::string>()> source) {
    (void)source;
  }
};

// Reads one object (or a byte range of it) in pieces.
class ObjectReader {
 public:
  virtual ~ObjectReader() = default;
  // Up to buffer.size() bytes; 0 at the end of the object or range.
  virtual absl::StatusOr<size_t> Read(std::span<char> buffer) = 0;
};

// Errors name the tier and the key. NotFound for a missing key (a key that
// only prefixes others, or passes through one, names no object either);
// ResourceExhausted for a full tier; PermissionDenied for refused
// credentials; Unavailable for a server that cannot be reached or keeps
// failing after retries; InvalidArgument for a key NormalizeArtifactKey
// refuses. On an archive (write-once) tier, replacing an existing key is
// AlreadyExists and deleting one FailedPrecondition.
// testing/adapter_conformance.h is the suite every adapter passes.
class RemoteStore;  // remote_store.h

class Adapter {
 public:
  virtual ~Adapter() = default;

  // What only remote stores do (retry notices, cancellation, reachability,
  // unfinished uploads); null for local ones.
  virtual RemoteStore* remote() { return nullptr; }

  // "posix" or "s3" ("fault" for the testing wrapper, testing/fault_adapter.h).
  virtual std::string_view kind() const = 0;

  // The adapter this one wraps (the testing wrapper that injects faults),
  // else null. Only PosixTierRoot looks through it.
  virtual const Adapter* wrapped() const { return nullptr; }

  virtual absl::StatusOr<std::unique_ptr<ObjectWriter>> OpenWrite(std::string_view key) = 0;
  // `length` unset: to the end of the object.
  virtual absl::StatusOr<std::unique_ptr<ObjectReader>> OpenRead(
      std::string_view key, uint64_t offset = 0, std::optional<uint64_t> length = std::nullopt) = 0;
  virtual absl::StatusOr<ObjectInfo> Stat(std::string_view key) = 0;
  // Every object whose key starts with `prefix` ("" for all), sorted by key.
  virtual absl::StatusOr<std::vector<ObjectInfo>> List(std::string_view prefix) = 0;
  // NotFound when there is no such object.
  virtual absl::Status Delete(std::string_view key) = 0;

  // Whole local files in and out, as fast as the adapter can (copy_file_range
  // for posix; parallel multipart parts and ranged GETs for s3). The same
  // atomicity as OpenWrite: `key` (or `local_path`) is replaced only once the
  // whole file is in place.
  virtual absl::Status PutFile(std::string_view key, const std::string& local_path) = 0;
  virtual absl::Status GetFile(std::string_view key, const std::string& local_path) = 0;
};

}  // namespace tierflow::storage
