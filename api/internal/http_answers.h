// What the HTTP server answers apart from the JSON API, with no socket in
// it: the Answer a session sends, the token check (bearer, ?token= and the
// cookie it sets), the web UI's files, and Server-Sent Events framing.
// Private to api/ (http_server.cc). Stateless; safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/event_feed.h"
#include "api/http_api.h"
#include "api/http_server.h"

namespace tierflow::api {

// What the server answers; headers beyond the security headers.
struct Answer {
  int status = 200;
  std::string content_type;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  bool close = false;  // close the connection after it
};

// An API response as the server sends it (JSON made HTML-safe).
Answer FromApi(const ApiResponse& response);

// An error of the server's limits (the API's ErrorResponse knows the
// statuses of the API only); closes the connection.
Answer LimitAnswer(int status, std::string_view error, std::string_view message);

// Refuses when a token is set and the request does not carry it; on a
// token given as ?token=, sets `*set_cookie`.
std::optional<Answer> CheckToken(const std::string& token, std::string_view authorization,
                                 std::string_view cookie_header, std::string_view raw_query,
                                 std::string* set_cookie);

// The web UI's file at `raw_path` (client-side routes get the UI's page);
// with no files, a page saying the UI was not built.
Answer AssetAnswer(const std::vector<WebAsset>& assets, std::string_view raw_path);

// One event as a Server-Sent Events frame.
std::string SseText(const FeedEvent& event);

// A Last-Event-ID: a whole number, not negative.
std::optional<int64_t> ParseId(std::string_view text);

}  // namespace tierflow::api
