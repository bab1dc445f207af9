// The HTTP server of `tierflow ui` and `tierflow server`: the JSON API
// (/api/v1, api/http_api.h), live updates (/api/v1/events, Server-Sent
// Events), Prometheus metrics (/metrics) and the web UI at /: its files are
// handed in (HttpServerOptions::ui_assets; cli passes ui/'s), so api/ does
// not depend on ui/.
// Read-only: GET and HEAD only, anything else 405. docs/ui.md describes it.
//
// Tokens: when `token` is set, every request needs it, as
// `Authorization: Bearer TOKEN`, or (for browsers, whose EventSource cannot
// set headers) once as `?token=TOKEN`, which answers with a cookie
// `tierflow_token` (HttpOnly, SameSite=Strict) that later requests carry.
// A request without it gets 401, a wrong one 403, and the connection is
// closed at once, before any other work. The scheme is case-insensitive.
//
// Asynchronous (Boost.Beast on Boost.Asio): a few threads serve every
// connection, event streams included, and queries of the state store run
// on a small pool of their own, so open streams, slow clients and slow
// queries never stop other requests. Limits are in HttpServerOptions.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace tierflow::api {

// One file of the web UI, served at `path` ("/index.html" is also "/" and
// every client-side route without an extension). The views must outlive the
// server: the UI's files are compiled in (ui/assets.h).
struct WebAsset {
  std::string_view path;  // "/index.html", "/assets/app.js", ...
  std::string_view content_type;
  std::string_view body;
};

struct HttpServerOptions {
  std::string listen = "127.0.0.1:8080";  // HOST:PORT; port 0 picks a free one
  std::string db_path;                    // the state database ("" : ResolveDatabasePath)
  std::string tiers_file;                 // "" : the embedded default tiers beside the store
  std::string token;                      // "" : none (loopback only)
  // Cluster mode: the connected workers as a JSON array; unset in
  // `tierflow ui` (embedded mode).
  std::function<std::string()> workers_json;
  // The web UI's files; empty (a build without the UI): / is a page that
  // says so, and the API and /metrics work as ever.
  std::vector<WebAsset> ui_assets;

  // Limits (docs/ui.md). The defaults are for production; tests may
  // shorten them.
  // A request's whole head must arrive within this long: from the
  // connection opening, or on a kept-alive connection from the first byte
  // of the next request. Dripping lines does not extend it; when it runs
  // out the connection is closed.
  std::chrono::milliseconds header_timeout{10'000};
  // A kept-alive connection with no new request for this long is closed.
  std::chrono::milliseconds idle_timeout{30'000};
  // An answer, or an event of a stream, the client does not take within
  // this long closes the connection.
  std::chrono::milliseconds write_timeout{60'000};
  // Connections open at once, event streams included; more are answered
  // 503 and closed at once.
  size_t max_connections = 512;
  // A longer request head is answered 431 and the connection closed.
  size_t max_header_bytes = 16 * 1024;
  // Threads that run requests which query the state store (the API,
  // /metrics, an event stream's replay); more wait their turn.
  size_t query_threads = 4;
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
