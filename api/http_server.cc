#include "api/http_server.h"

#include <httplib.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "api/http_api.h"
#include "common/metrics.h"
#include "common/status.h"
#include "common/strings.h"
#include "scheduler/store.h"
#include "ui/assets.h"

namespace tierflow::api {
namespace {

constexpr std::string_view kCookie = "tierflow_token";
constexpr std::chrono::milliseconds kPollInterval{250};
constexpr std::chrono::seconds kKeepAlive{15};
// Connections served at once; each open event stream holds one.
constexpr size_t kThreads = 64;

// Compares in time that depends only on the lengths, not on where the
// strings differ.
bool SameToken(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

std::string CookieValue(const std::string& header, std::string_view name) {
  size_t start = 0;
  while (start < header.size()) {
    size_t end = header.find(';', start);
    if (end == std::string::npos) end = header.size();
    std::string_view pair = std::string_view(header).substr(start, end - start);
    while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
    if (pair.size() > name.size() && pair.substr(0, name.size()) == name &&
        pair[name.size()] == '=') {
      return PercentDecode(pair.substr(name.size() + 1), false).value_or("");
    }
    start = end + 1;
  }
  return "";
}

void Send(httplib::Response& res, const ApiResponse& response) {
  res.status = response.status;
  const bool json = response.content_type == "application/json";
  res.set_content(json ? HtmlSafeJson(response.body) : response.body,
                  json ? "application/json; charset=utf-8" : response.content_type);
}

std::optional<int64_t> ParseId(std::string_view text) {
  int64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

// What an event stream has sent so far.
struct Stream {
  uint64_t position = 0;
  std::vector<FeedEvent> replay;  // rows after the client's Last-Event-ID
  int64_t replayed_up_to = -1;
  bool started = false;
  std::chrono::steady_clock::time_point last_write;
};

std::string SseText(const FeedEvent& event) {
  std::string text;
  if (event.id) text += StrCat("id: ", *event.id, "\n");
  text += StrCat("event: ", event.type, "\ndata: ", event.data, "\n\n");
  return text;
}

class Server final : public HttpServer {
 public:
  Server(HttpServerOptions options, std::string host)
      : options_(std::move(options)), host_(std::move(host)) {
    api_.db_path = options_.db_path;
    api_.tiers_file = options_.tiers_file;
    api_.workers_json = options_.workers_json;
  }
  ~Server() override { Stop(); }

  absl::Status Start(int port) {
    server_.new_task_queue = [] { return new httplib::ThreadPool(kThreads); };
    server_.set_default_headers({
        {"Content-Security-Policy", "default-src 'self'"},
        {"X-Content-Type-Options", "nosniff"},
        {"X-Frame-Options", "DENY"},
        {"Referrer-Policy", "no-referrer"},
    });
    server_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      Handle(req, res);
      return httplib::Server::HandlerResponse::Handled;
    });
    port_ = port == 0 ? server_.bind_to_any_port(host_)
                      : (server_.bind_to_port(host_, port) ? port : -1);
    if (port_ <= 0) {
      return absl::UnavailableError(StrCat("cannot listen on ", options_.listen,
                                           " (in use, or not an address of this machine)"));
    }
    feed_ = std::make_unique<EventFeed>(options_.db_path, kPollInterval);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    return absl::OkStatus();
  }

  std::string address() const override {
    const bool v6 = host_.find(':') != std::string::npos;
    return StrCat(v6 ? "[" : "", host_, v6 ? "]" : "", ":", port_);
  }
  int port() const override { return port_; }

  void Stop() override {
    if (stopped_.exchange(true)) return;
    if (feed_) feed_->Stop();  // event streams end at their next wake-up
    server_.stop();
    if (thread_.joinable()) thread_.join();
    feed_.reset();
  }

 private:
  void Handle(const httplib::Request& req, httplib::Response& res) {
    const std::string_view target = req.target;
    const size_t question = target.find('?');
    const std::string_view raw_path = target.substr(0, question);
    const std::string_view raw_query =
        question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
    if (req.method != "GET" && req.method != "HEAD") {
      res.set_header("Allow", "GET, HEAD");
      res.set_header("Connection", "close");  // its body, if any, is not read
      Send(res, ErrorResponse(405, StrCat("method ", req.method,
                                          " not allowed: this server is read-only (GET, HEAD)")));
      return;
    }
    if (!Authorized(req, raw_query, res)) return;
    if (raw_path.rfind("/api/", 0) == 0 || raw_path == "/api") {
      res.set_header("Cache-Control", "no-store");
      constexpr std::string_view kPrefix = "/api/v1";
      if (raw_path.rfind(kPrefix, 0) != 0 ||
          (raw_path.size() > kPrefix.size() && raw_path[kPrefix.size()] != '/')) {
        Send(res, ErrorResponse(404, StrCat("no API at ", CEscape(raw_path),
                                            ": the API is under /api/v1 (docs/ui.md)")));
        return;
      }
      const std::string_view rest = raw_path.substr(kPrefix.size());
      if (rest == "/events" || rest == "/events/") {
        Events(req, raw_query, res);
        return;
      }
      Send(res, HandleApiGet(api_, rest, raw_query));
      return;
    }
    if (raw_path == "/metrics") {
      res.set_header("Cache-Control", "no-store");
      absl::StatusOr<std::string> text = RenderMetrics(api_);
      if (!text.ok()) {
        Send(res, ErrorResponse(text.status()));
        return;
      }
      res.status = 200;
      res.set_content(*text, std::string(metrics::kContentType));
      return;
    }
    Asset(raw_path, res);
  }

  // False (with the answer set) when a token is needed and not given.
  bool Authorized(const httplib::Request& req, std::string_view raw_query, httplib::Response& res) {
    if (options_.token.empty()) return true;
    std::optional<std::string> presented;
    std::string how;
    const std::string authorization = req.get_header_value("Authorization");
    if (!authorization.empty()) {
      constexpr std::string_view kBearer = "Bearer ";
      if (authorization.rfind(kBearer, 0) != 0) {
        res.set_header("WWW-Authenticate", "Bearer realm=\"tierflow\"");
        Send(res, ErrorResponse(401, "the Authorization header is not 'Bearer TOKEN'"));
        return false;
      }
      presented = authorization.substr(kBearer.size());
      how = "the bearer token";
    }
    bool from_query = false;
    if (!presented) {
      std::optional<std::map<std::string, std::string>> query = ParseQuery(raw_query);
      if (query && query->count("token") > 0) {
        presented = (*query)["token"];
        how = "the token query parameter";
        from_query = true;
      }
    }
    if (!presented) {
      std::string cookie = CookieValue(req.get_header_value("Cookie"), kCookie);
      if (!cookie.empty()) {
        presented = cookie;
        how = StrCat("the ", kCookie, " cookie");
      }
    }
    if (!presented) {
      res.set_header("WWW-Authenticate", "Bearer realm=\"tierflow\"");
      Send(res, ErrorResponse(401,
                              "this server needs a token: send 'Authorization: Bearer TOKEN', or "
                              "open the UI once as /?token=TOKEN"));
      return false;
    }
    if (!SameToken(*presented, options_.token)) {
      Send(res, ErrorResponse(403, StrCat(how, " is wrong")));
      return false;
    }
    if (from_query) {
      res.set_header("Set-Cookie", StrCat(kCookie, "=", PercentEncode(options_.token),
                                          "; Path=/; HttpOnly; SameSite=Strict"));
    }
    return true;
  }

  void Asset(std::string_view raw_path, httplib::Response& res) {
    std::optional<std::string> path = PercentDecode(raw_path, false);
    if (!path) {
      Send(res, ErrorResponse(400, "bad %-escape in the path"));
      return;
    }
    const ui::Asset* asset = ui::FindAsset(*path);
    if (asset == nullptr) {
      // Client-side routes (/runs/X, /lineage/...) are the UI's page; a
      // missing file (a name with an extension) is not.
      const std::string_view last = std::string_view(*path).substr(path->rfind('/') + 1);
      if (last.find('.') == std::string_view::npos) asset = ui::FindAsset("/");
    }
    if (asset == nullptr) {
      Send(res, ErrorResponse(404, StrCat("no file ", CEscape(*path))));
      return;
    }
    res.status = 200;
    res.set_header("Cache-Control", "no-cache");
    res.set_content(asset->body.data(), asset->body.size(), std::string(asset->content_type));
  }

  void Events(const httplib::Request& req, std::string_view raw_query, httplib::Response& res) {
    std::optional<std::map<std::string, std::string>> query = ParseQuery(raw_query);
    std::string last = req.get_header_value("Last-Event-ID");
    if (last.empty() && query && query->count("last_event_id") > 0) {
      last = (*query)["last_event_id"];
    }
    if (query) {
      for (const auto& [name, value] : *query) {
        if (name != "token" && name != "last_event_id") {
          Send(res, ErrorResponse(400, StrCat("unknown query parameter '", CEscape(name),
                                              "'; /api/v1/events takes last_event_id")));
          return;
        }
      }
    }
    auto stream = std::make_shared<Stream>();
    stream->position = feed_->End();
    if (!last.empty()) {
      std::optional<int64_t> after = ParseId(last);
      if (!after) {
        Send(res, ErrorResponse(400, StrCat("Last-Event-ID '", CEscape(last),
                                            "' is not an event id (a whole number)")));
        return;
      }
      absl::StatusOr<std::vector<FeedEvent>> replay = feed_->Since(*after, 1000);
      if (!replay.ok()) {
        Send(res, ErrorResponse(replay.status()));
        return;
      }
      stream->replay = std::move(*replay);
      stream->replayed_up_to = *after;
      for (const FeedEvent& event : stream->replay) {
        stream->replayed_up_to = std::max(stream->replayed_up_to, event.id.value_or(0));
      }
    }
    res.status = 200;
    res.set_header("Cache-Control", "no-store");
    res.set_header("X-Accel-Buffering", "no");
    if (req.method == "HEAD") {
      res.set_header("Content-Type", "text/event-stream");
      return;
    }
    EventFeed* feed = feed_.get();
    res.set_chunked_content_provider(
        "text/event-stream", [stream, feed](size_t, httplib::DataSink& sink) {
          auto write = [&](const std::string& text) {
            stream->last_write = std::chrono::steady_clock::now();
            return sink.write(text.data(), text.size());
          };
          if (!stream->started) {
            stream->started = true;
            std::string text = "retry: 2000\n: connected\n\n";
            for (const FeedEvent& event : stream->replay) text += SseText(event);
            stream->replay.clear();
            return write(text);
          }
          std::vector<FeedEvent> events = feed->Wait(&stream->position, kPollInterval);
          if (feed->stopped()) {
            sink.done();
            return true;
          }
          std::string text;
          for (const FeedEvent& event : events) {
            if (event.id && *event.id <= stream->replayed_up_to) continue;
            text += SseText(event);
          }
          if (text.empty() && std::chrono::steady_clock::now() - stream->last_write > kKeepAlive) {
            text = ": keep-alive\n\n";
          }
          return text.empty() ? true : write(text);
        });
  }

  const HttpServerOptions options_;
  const std::string host_;
  HttpApiOptions api_;
  httplib::Server server_;
  std::unique_ptr<EventFeed> feed_;
  std::thread thread_;
  int port_ = -1;
  std::atomic<bool> stopped_{false};
};

}  // namespace

bool IsLoopbackListen(std::string_view listen) {
  const std::string_view host = listen.substr(0, listen.rfind(':'));
  return host == "127.0.0.1" || host == "localhost" || host == "[::1]" || host == "::1";
}

absl::StatusOr<std::unique_ptr<HttpServer>> StartHttpServer(const HttpServerOptions& options) {
  const size_t colon = options.listen.rfind(':');
  std::string host = colon == std::string::npos ? "" : options.listen.substr(0, colon);
  const std::string port_text = colon == std::string::npos ? "" : options.listen.substr(colon + 1);
  int port = -1;
  auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (host.empty() || error != std::errc() || end != port_text.data() + port_text.size() ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        StrCat("--listen ", options.listen, ": expected HOST:PORT, e.g. 127.0.0.1:8080"));
  }
  if (!IsLoopbackListen(options.listen) && options.token.empty()) {
    return absl::FailedPreconditionError(
        StrCat("--listen ", options.listen,
               " reaches beyond loopback: set a token (TIERFLOW_UI_TOKEN or "
               "TIERFLOW_CLIENT_TOKEN), or listen on 127.0.0.1"));
  }
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  HttpServerOptions resolved = options;
  resolved.db_path = scheduler::ResolveDatabasePath(options.db_path);
  auto server = std::make_unique<Server>(std::move(resolved), host);
  TF_RETURN_IF_ERROR(server->Start(port));
  return std::unique_ptr<HttpServer>(std::move(server));
}

}  // namespace tierflow::api
