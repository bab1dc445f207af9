// GET /api/v1/runs/RUN/failures: the run's failed tasks with their log tails
// (api/run_failures.h) for the web UI's failed tasks list. Private to api/
// (http_api.cc routes to it). Stateless; safe from any thread.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "api/http_api.h"

namespace tierflow::api {

// `?limit=N` failed tasks (default 50, at most 100) with `?lines=N` lines of
// each log (default 10, at most 200), as RenderFailuresJson writes them.
// NotFound for an unknown run, InvalidArgument for a bad parameter.
absl::StatusOr<ApiResponse> Failures(const HttpApiOptions& options, const std::string& run,
                                     std::string_view raw_query);

}  // namespace tierflow::api
