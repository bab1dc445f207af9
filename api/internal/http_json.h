// What the HTTP API's files share (http_api.cc's handlers, event_feed.cc,
// store_metrics.cc, http_json.cc): JSON output, query-string parameters
// checked against what an endpoint takes, and the store opened per
// request. Private to api/. Stateless; safe from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "api/http_api.h"
#include "scheduler/run_queries.h"
#include "scheduler/sqlite.h"

namespace tierflow::api {

using Json = nlohmann::ordered_json;

// Compact JSON; invalid UTF-8 becomes U+FFFD.
std::string DumpJson(const Json& json);

// A rendering of run_service.h / tier_service.h, read back to be composed
// into a bigger answer: the renderers stay the one definition of each shape.
Json Rendered(const std::function<void(std::ostream&)>& render);

// 200 with `json` as the body.
ApiResponse JsonResponse(const Json& json);

// The number, or null.
Json OptionalJson(const std::optional<int64_t>& value);

// One run as RenderRunsJson writes each run.
Json RunSummaryJson(const scheduler::RunSummary& summary);

// The state store, read-only, opened for one request.
absl::StatusOr<std::unique_ptr<scheduler::Database>> OpenStore(const HttpApiOptions& options);

// A request's query parameters, checked against the names an endpoint
// takes.
class Query {
 public:
  Query(std::map<std::string, std::string> values, std::vector<std::string> allowed)
      : values_(std::move(values)), allowed_(std::move(allowed)) {}

  // Unknown names are an error (naming them); `token` is the server's.
  absl::Status CheckNames() const;
  // The value, unset when absent or empty.
  std::optional<std::string> Text(const std::string& name) const;
  // The value as a whole number in [min, max]; unset when absent.
  absl::StatusOr<std::optional<int64_t>> Int(const std::string& name, int64_t min,
                                             int64_t max) const;

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> allowed_;
};

// `raw` parsed, its names checked against `allowed`.
absl::StatusOr<Query> ParseParams(std::string_view raw, std::vector<std::string> allowed);

}  // namespace tierflow::api
