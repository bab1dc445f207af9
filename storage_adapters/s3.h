// The s3 adapter: a tier that is a bucket (or a key prefix inside one) of an
// S3-compatible object store, spoken to over HTTP with libcurl and AWS
// Signature Version 4. Objects up to one part go up in one PUT whose ETag is
// checked against the MD5 of what was sent; larger ones as a multipart
// upload, `parallel` parts at a time, aborted on failure so nothing partial
// ever becomes visible. Reads are ranged GETs; GetFile fetches ranges in
// parallel into a temporary file beside the target and renames it into
// place. Every object is stored with its own content hash as user metadata
// (x-amz-meta-tierflow-hash), which Stat reports, so copies can check what
// they read. Transient failures (5xx, 408, 429, BadDigest, connection
// errors, timeouts) are retried with capped exponential backoff and jitter
// within a total budget (S3Timing); every attempt has a stall timeout and
// a total deadline that grows with its size. The adapter is thread-safe;
// its writers and readers are for one thread each. Its remote() is a
// RemoteStore (remote_store.h): retry notices, cancellation, a reachability
// check and the sweep of unfinished multipart uploads.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage_adapters/adapter.h"
#include "storage_adapters/tier_config.h"

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
  S3Timing timing;   // timeouts and retries (tiers.yaml `timeout`, `retry`)
};

absl::StatusOr<std::unique_ptr<Adapter>> MakeS3Adapter(S3Config config);

// Creates the configured bucket; OK when it exists already and is ours. For
// tests and first-time setup: the adapter itself never creates buckets.
absl::Status CreateS3Bucket(const S3Config& config);

}  // namespace tierflow::storage
