// The HTTP API's views of where a run's data is (http_api.h HandleApiGet
// routes to them): an artifact's bytes (http_download.cc), the tiers a run
// used and its checkpoints (http_run_tiers.cc). Private to api/.
// Stateless; safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "api/http_api.h"

namespace tierflow::api {

// The largest artifact GET /api/v1/artifacts/ID/download answers with.
inline constexpr int64_t kMaxDownloadBytes = 16 * 1024 * 1024;

// GET /api/v1/artifacts/ID/download: `target` is an artifact id or
// RUN/TASK/OUTPUT. The bytes of a one-file artifact of at most
// kMaxDownloadBytes from a present copy on a posix tier (home first), read
// through the tier's TierRoot (no symlink followed, nothing outside the
// root) and checked against the recorded hash; else 409 (a folder, no
// readable copy) or 413 (too big), with `reason` and `instead` in the JSON.
absl::StatusOr<ApiResponse> DownloadArtifact(const HttpApiOptions& options,
                                             const std::string& target, std::string_view raw_query);

// GET /api/v1/runs/RUN/tiers: scheduler::RunTierUsage as JSON.
absl::StatusOr<ApiResponse> RunTiers(const HttpApiOptions& options, const std::string& run,
                                     std::string_view raw_query);

// GET /api/v1/runs/RUN/checkpoints: scheduler::ListRunCheckpoints as JSON.
absl::StatusOr<ApiResponse> RunCheckpoints(const HttpApiOptions& options, const std::string& run,
                                           std::string_view raw_query);

}  // namespace tierflow::api
