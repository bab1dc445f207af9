// Storage tiers as users declare them in tiers.yaml (docs/tiers.md), and
// the defaults of embedded mode. A tier is a named place to keep artifacts:
// an adapter (posix or s3) and where it points, a scope (node: each worker
// has its own; cluster: shared), a durability class, an optional capacity
// and an optional declared performance profile (`tierflow tiers probe`
// measures one). Loading collects every problem, each as
// `file:line:col: field.path: message`, like pipeline files.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/diagnostic.h"
#include "common/durability.h"
#include "common/units.h"

namespace tierflow::storage {

enum class Scope { kNode, kCluster };
std::string_view ScopeName(Scope scope);

// What a tier can do; declared in tiers.yaml or measured by the probe.
struct TierProfile {
  double seq_read_mb_s = 0;   // sequential read, MB/s (10^6 bytes)
  double seq_write_mb_s = 0;  // sequential write, MB/s
  double rand_read_iops = 0;  // 4 KiB random reads per second
  double latency_us = 0;      // one small operation (open + 4 KiB read, a GET), µs
};

// How an s3 tier's requests time out and are retried (docs/tiers.md
// "Timeouts and retries"): tiers.yaml's `timeout` and `retry` maps.
struct S3Timing {
  // An attempt fails when connecting, or any stretch of the transfer, makes
  // no progress for this long.
  std::chrono::milliseconds stall{30000};
  // Every attempt also has a total deadline: `stall` plus its bytes at this
  // rate (bytes per second), so a server that trickles cannot keep it alive.
  uint64_t min_rate = 1000000;
  // Capped exponential backoff with jitter: the first retry waits about
  // `backoff`, each further one twice as long, at most `max_backoff`; a
  // request is retried until `budget` has passed since its first failure.
  std::chrono::milliseconds backoff{200};
  std::chrono::milliseconds max_backoff{5000};
  std::chrono::milliseconds budget{60000};
};

struct TierConfig {
  std::string name;
  std::string adapter;  // "posix" | "s3"
  // posix: the root folder (absolute, or relative to the tiers file).
  std::string root;
  // s3
  std::string endpoint;  // http(s)://host:port
  std::string bucket;
  std::string region = "us-east-1";
  std::string prefix;          // key prefix inside the bucket
  bool path_style = true;      // http://host/bucket/key, else http://bucket.host/key
  std::string access_key_env;  // names of the environment variables that hold
  std::string secret_key_env;  // the credentials (never the secrets themselves)
  S3Timing s3_timing;
  Scope scope = Scope::kNode;
  Durability durability = Durability::kNode;
  std::optional<uint64_t> capacity;  // bytes; unset: what the storage reports
  std::optional<TierProfile> profile;
  int line = 0;  // where it is declared (0: a default tier)

  // Where it points, for listings: the root, or s3://bucket/prefix at endpoint.
  std::string Location() const;
};

struct TierSet {
  std::string file;  // "" for the defaults
  std::vector<TierConfig> tiers;
  const TierConfig* Find(std::string_view name) const;
};

// Parses tiers.yaml text. Relative posix roots resolve against the folder
// of `file`. On errors returns InvalidArgument with every diagnostic (one
// per line), and fills `diagnostics` when given.
absl::StatusOr<TierSet> LoadTierText(std::string_view text, const std::string& file,
                                     std::vector<Diagnostic>* diagnostics = nullptr);
absl::StatusOr<TierSet> LoadTierFile(const std::string& file,
                                     std::vector<Diagnostic>* diagnostics = nullptr);

// The tiers of embedded mode when no tiers file is given, all posix: `ram`
// (DefaultRamRoot(), volatile), `local` (STATE/tiers/local, node) and
// `bulk` (STATE/tiers/bulk, durable; stands in for an object store).
TierSet DefaultTiers(const std::string& state_dir);

// The default RAM tier's folder: $TIERFLOW_RAM_ROOT when set, else
// /dev/shm/tierflow-UID. It lies in a folder every user can write, so it
// is created with mode 0700 and refused when it exists as anything but a
// folder of ours that no one else may enter (OpenPosixTier checks it).
std::string DefaultRamRoot();

}  // namespace tierflow::storage
