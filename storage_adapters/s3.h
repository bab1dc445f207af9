// The s3 adapter: a tier that is a bucket (or a key prefix inside one) of an
// S3-compatible object store, spoken to over HTTP with libcurl and AWS
// Signature Version 4. Objects up to one part go up in one PUT whose ETag is
// checked against the MD5 of what was sent; larger ones as a multipart
// upload, `parallel` parts at a time, aborted on failure so nothing partial
// ever becomes visible. Reads are ranged GETs; GetFile fetches ranges in
// parallel into a temporary file beside the target and renames it into
// place. Transient failures (5xx, 408, 429, connection errors, timeouts) are
// retried with exponential backoff and jitter. The adapter is thread-safe;
// its writers and readers are for one thread each.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage_adapters/adapter.h"

namespace tierflow::storage {

struct S3Config {
  std::string tier;      // the tier's name, for messages
  std::string endpoint;  // http://127.0.0.1:8080 or https://host
  std::string bucket;
  std::string region = "us-east-1";
  std::string access_key;
  std::string secret_key;
  std::string prefix;      // objects are <prefix>/<key>; "" for the bucket's root
  bool path_style = true;  // http://host/bucket/key, else http://bucket.host/key
  // An archive tier: a key that exists is never replaced or deleted
  // (checked with a HEAD before writing and again before the write
  // becomes visible; S3 itself has no write-once switch to rely on).
  bool write_once = false;
  // Bytes per multipart part, and the largest object sent in one PUT; at
  // least 5 MiB (S3's smallest part). A writer holds at most `parallel`
  // parts in memory.
  uint64_t part_size = uint64_t{8} << 20;
  int parallel = 4;  // parts or ranges in flight at once
  int retries = 4;   // further attempts of a request after a transient failure
  // A request fails (and is retried) when connecting, or any stretch of the
  // transfer, makes no progress for this long.
  std::chrono::milliseconds timeout{30000};
  // The first retry waits about this long; each further one twice as long.
  std::chrono::milliseconds backoff{100};
};

absl::StatusOr<std::unique_ptr<Adapter>> MakeS3Adapter(S3Config config);

// Creates the configured bucket; OK when it exists already and is ours. For
// tests and first-time setup: the adapter itself never creates buckets.
absl::Status CreateS3Bucket(const S3Config& config);

}  // namespace tierflow::storage
