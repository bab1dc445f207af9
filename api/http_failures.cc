// GET /api/v1/runs/RUN/failures (internal/http_failures.h).
#include "api/internal/http_failures.h"

#include <sstream>

#include "api/internal/http_json.h"
#include "api/run_failures.h"
#include "common/status.h"

namespace tierflow::api {

absl::StatusOr<ApiResponse> Failures(const HttpApiOptions& options, const std::string& run,
                                     std::string_view raw_query) {
  TF_ASSIGN_OR_RETURN(Query query, ParseParams(raw_query, {"limit", "lines"}));
  TF_ASSIGN_OR_RETURN(std::optional<int64_t> limit, query.Int("limit", 1, 100));
  TF_ASSIGN_OR_RETURN(std::optional<int64_t> lines, query.Int("lines", 0, 200));
  FailureOptions failure_options;
  failure_options.limit = static_cast<size_t>(limit.value_or(50));
  failure_options.tail_lines = static_cast<size_t>(lines.value_or(10));
  // The command names the store this server reads, so that it works pasted
  // into a shell whatever the default store there is.
  failure_options.db_flag = options.db_path;
  TF_ASSIGN_OR_RETURN(FailureList list, ListFailures(options.db_path, run, failure_options));
  std::ostringstream out;
  RenderFailuresJson(list, out);
  return ApiResponse{200, "application/json", out.str()};
}

}  // namespace tierflow::api
