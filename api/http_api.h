// The HTTP/JSON API (/api/v1/...) and /metrics, apart from any HTTP
// library: requests in as a path and query string, responses out as a
// status, content type and body, so everything here is tested without
// sockets. api/http_server.h serves them (and the UI, and /api/v1/events
// from EventFeed, api/event_feed.h). docs/ui.md describes every endpoint.
//
// Everything reads the state store opened read-only per request (as the
// CLI's inspection commands do), through the store layer
// (scheduler/run_queries.h, scheduler/api_queries.h), so it never blocks or
// changes an engine. Handlers and routing are in http_api.cc, /metrics in
// store_metrics.cc, the JSON and query helpers in http_json.cc.
// JSON bodies reuse the renderings of run_service.h and tier_service.h.
// Functions are stateless and safe to call from several threads at once.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tierflow::api {

struct HttpApiOptions {
  std::string db_path;     // the state database (resolved: not "")
  std::string tiers_file;  // "" : the embedded default tiers beside the store
  // Cluster mode: the connected workers as a JSON array. Unset (embedded
  // mode, `tierflow ui`): /api/v1/workers answers an empty list.
  std::function<std::string()> workers_json;
};

struct ApiResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  // More response headers (Content-Disposition of a download); the server
  // adds its security headers to every response itself.
  std::vector<std::pair<std::string, std::string>> headers = {};
};

// The workers of a cluster as HttpApiOptions::workers_json answers them:
// [{"name", "slots", "running", "last_heartbeat_ms"}].
struct RemoteWorker;
std::string RenderWorkersJson(const std::vector<RemoteWorker>& workers);

// `{"status": 404, "error": "not_found", "message": "..."}`.
ApiResponse ErrorResponse(int status, std::string_view message);
// NotFound 404, InvalidArgument 400, FailedPrecondition 409, PermissionDenied
// 403, Unauthenticated 401, else 500; the status's message as the message.
ApiResponse ErrorResponse(const absl::Status& status);

// GET of `path`, the request path below /api/v1 still percent-encoded
// ("/runs/quickstart-1a2b3c/tasks/ingest%5B0%5D"), with its raw query
// string ("attempt=2&tail=4096"). /events is not here (EventFeed).
ApiResponse HandleApiGet(const HttpApiOptions& options, std::string_view path,
                         std::string_view query);

// The /metrics body: what the state store holds (tasks by state and kind,
// task durations, queue depth, bytes moved, transfer throughput, data-wait
// seconds), then metrics::Default() (what an engine in this process
// records).
absl::StatusOr<std::string> RenderMetrics(const HttpApiOptions& options);

// `%XX` decoded; `plus_is_space` for query strings. nullopt when a `%` is
// not followed by two hex digits.
std::optional<std::string> PercentDecode(std::string_view text, bool plus_is_space);

// `a=1&b=x%20y` as a map (the last of a repeated name wins); nullopt on a
// bad escape.
std::optional<std::map<std::string, std::string>> ParseQuery(std::string_view query);

// JSON text made safe to embed anywhere HTML might be parsed: `<`, `>` and
// `&` written as \u003c, \u003e, \u0026 (they occur only inside strings, so
// the JSON means the same).
std::string HtmlSafeJson(std::string_view json);

}  // namespace tierflow::api
