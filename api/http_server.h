// The HTTP server of `tierflow ui` and `tierflow server`: the JSON API
// (/api/v1, api/http_api.h), live updates (/api/v1/events, Server-Sent
// Events), Prometheus metrics (/metrics) and the web UI (ui/assets.h) at /.
// Read-only: GET and HEAD only, anything else 405. docs/ui.md describes it.
//
// Tokens: when `token` is set, every request needs it, as
// `Authorization: Bearer TOKEN`, or (for browsers, whose EventSource cannot
// set headers) once as `?token=TOKEN`, which answers with a cookie
// `tierflow_token` (HttpOnly, SameSite=Strict) that later requests carry.
// A request without it gets 401, a wrong one 403.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace tierflow::api {

struct HttpServerOptions {
  std::string listen = "127.0.0.1:8080";  // HOST:PORT; port 0 picks a free one
  std::string db_path;                    // the state database ("" : ResolveDatabasePath)
  std::string tiers_file;                 // "" : the embedded default tiers beside the store
  std::string token;                      // "" : none (loopback only)
  // Cluster mode: the connected workers as a JSON array; unset in
  // `tierflow ui` (embedded mode).
  std::function<std::string()> workers_json;
};

// A running server; destroying it stops it (open event streams end).
class HttpServer {
 public:
  virtual ~HttpServer() = default;
  // HOST:PORT it listens on, with the port it bound.
  virtual std::string address() const = 0;
  virtual int port() const = 0;
  // Stops accepting and ends every stream; returns when all are done.
  virtual void Stop() = 0;
};

// Binds and starts serving on threads of its own. Fails (changing nothing)
// when the address reaches beyond loopback without a token, or cannot be
// bound.
absl::StatusOr<std::unique_ptr<HttpServer>> StartHttpServer(const HttpServerOptions& options);

// True when HOST:PORT listens on loopback only (127.0.0.1, localhost,
// ::1): the rule `tierflow server` applies to its gRPC port too.
bool IsLoopbackListen(std::string_view listen);

}  // namespace tierflow::api
