#include "api/http_server.h"

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "api/event_feed.h"
#include "api/http_api.h"
#include "api/internal/http_answers.h"
#include "common/metrics.h"
#include "common/status.h"
#include "common/strings.h"
#include "nlohmann/json.hpp"
#include "scheduler/store.h"

namespace tierflow::api {
namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kPollInterval{250};
constexpr std::chrono::seconds kKeepAlive{15};
// Threads that run the sockets: every handler on them is short (parsing,
// assets, copying events), so two keep up with hundreds of connections.
constexpr size_t kIoThreads = 2;
constexpr std::pair<std::string_view, std::string_view> kSecurityHeaders[] = {
    {"Content-Security-Policy", "default-src 'self'"},
    {"X-Content-Type-Options", "nosniff"},
    {"X-Frame-Options", "DENY"},
    {"Referrer-Policy", "no-referrer"},
};

std::string_view View(boost::beast::string_view text) { return {text.data(), text.size()}; }

class Session;

// What every connection shares. Owned by Server; outlives every Session
// (Server::Stop waits for them).
struct Shared {
  HttpServerOptions options;
  HttpApiOptions api;
  std::unique_ptr<EventFeed> feed;
  std::atomic<size_t> connections{0};
  std::mutex mu;
  bool stopping = false;                                  // guarded by mu
  std::map<const Session*, std::weak_ptr<Session>> open;  // guarded by mu
  net::thread_pool* queries = nullptr;                    // the query threads

  bool Stopping() {
    std::lock_guard lock(mu);
    return stopping;
  }
};

// One connection: reads request heads, answers them one at a time, and
// may turn into an event stream. Every handler runs on the connection's
// strand (the socket's executor); queries of the store run on the query
// threads and post their answer back.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Shared& shared, tcp::socket socket)
      : shared_(shared),
        socket_(std::move(socket)),
        deadline_(socket_.get_executor()),
        poll_(socket_.get_executor()) {
    ++shared_.connections;
  }
  ~Session() {
    {
      std::lock_guard lock(shared_.mu);
      shared_.open.erase(this);
    }
    --shared_.connections;
  }

  void Start() {
    {
      std::lock_guard lock(shared_.mu);
      if (shared_.stopping) {
        Close();
        return;
      }
      shared_.open[this] = weak_from_this();
    }
    ReadHead();
  }

  net::any_io_executor executor() { return socket_.get_executor(); }

  // Ends the connection (and its stream) at once; pending operations
  // complete with an error and do nothing.
  void Close() {
    if (closed_) return;
    closed_ = true;
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    deadline_.cancel();
    poll_.cancel();
  }

 private:
  // Closes the connection when `timeout` passes before Disarm or the next
  // Arm.
  void Arm(std::chrono::milliseconds timeout) {
    deadline_.expires_after(timeout);
    deadline_.async_wait([self = shared_from_this()](error_code ec) {
      // A wait that completed just before a new Arm finds a later expiry.
      if (ec || self->closed_ || self->deadline_.expiry() > Clock::now()) return;
      self->Close();
    });
  }
  void Disarm() { deadline_.expires_at(Clock::time_point::max()); }

  // Keep-alive: waits up to the idle timeout for the next request to start.
  void WaitForRequest() {
    if (shared_.Stopping()) {
      Close();
      return;
    }
    if (buffer_.size() > 0) {  // pipelined: it has started
      ReadHead();
      return;
    }
    Arm(shared_.options.idle_timeout);
    socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](error_code ec) {
      if (self->closed_) return;
      if (ec) {
        self->Close();
        return;
      }
      self->ReadHead();
    });
  }

  // The whole head within the header timeout, however it trickles in.
  void ReadHead() {
    Arm(shared_.options.header_timeout);
    head_ = false;
    keep_alive_ = false;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(shared_.options.max_header_bytes));
    http::async_read_header(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](error_code ec, size_t) { self->OnHead(ec); });
  }

  void OnHead(error_code ec) {
    if (closed_) return;  // timed out, or the server stops
    Disarm();
    if (ec == http::error::header_limit) {
      Send(LimitAnswer(
          431, "request_header_fields_too_large",
          StrCat("the request head is over ", shared_.options.max_header_bytes, " bytes")));
      return;
    }
    if (ec && ec.category() == http::make_error_code(http::error::bad_method).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message) {
      Answer answer = FromApi(ErrorResponse(400, StrCat("bad request: ", ec.message())));
      answer.close = true;
      Send(std::move(answer));
      return;
    }
    if (ec) {
      Close();
      return;
    }
    Handle();
  }

  void Handle() {
    const http::request<http::empty_body>& request = parser_->get();
    version_ = request.version();
    // A body is never read: after one, the connection cannot go on.
    keep_alive_ = request.keep_alive() && parser_->is_done();
    const std::string method(View(request.method_string()));
    head_ = method == "HEAD";
    const std::string target(View(request.target()));
    const size_t question = target.find('?');
    const std::string raw_path = target.substr(0, question);
    const std::string raw_query = question == std::string::npos ? "" : target.substr(question + 1);
    if (method != "GET" && !head_) {
      Answer answer = FromApi(ErrorResponse(
          405, StrCat("method ", method, " not allowed: this server is read-only (GET, HEAD)")));
      answer.headers.emplace_back("Allow", "GET, HEAD");
      answer.close = true;  // its body, if any, is not read
      Send(std::move(answer));
      return;
    }
    // Before any other work: a request without the token ends the
    // connection.
    set_cookie_.clear();
    if (std::optional<Answer> refused =
            CheckToken(shared_.options.token, View(request[http::field::authorization]),
                       View(request[http::field::cookie]), raw_query, &set_cookie_)) {
      refused->close = true;
      Send(std::move(*refused));
      return;
    }
    if (raw_path.rfind("/api/", 0) == 0 || raw_path == "/api") {
      constexpr std::string_view kPrefix = "/api/v1";
      if (raw_path.rfind(kPrefix, 0) != 0 ||
          (raw_path.size() > kPrefix.size() && raw_path[kPrefix.size()] != '/')) {
        Send(FromApi(ErrorResponse(404, StrCat("no API at ", CEscape(raw_path),
                                               ": the API is under /api/v1 (docs/ui.md)"))),
             true);
        return;
      }
      std::string rest = raw_path.substr(kPrefix.size());
      if (rest == "/events" || rest == "/events/") {
        Events(View(request["Last-Event-ID"]), raw_query);
        return;
      }
      Query([api = &shared_.api, rest = std::move(rest), raw_query] {
        return FromApi(HandleApiGet(*api, rest, raw_query));
      });
      return;
    }
    if (raw_path == "/metrics") {
      Query([api = &shared_.api] {
        absl::StatusOr<std::string> text = RenderMetrics(*api);
        if (!text.ok()) return FromApi(ErrorResponse(text.status()));
        return Answer{200, std::string(metrics::kContentType), std::move(*text), {}, false};
      });
      return;
    }
    Send(AssetAnswer(shared_.options.ui_assets, raw_path));
  }

  // Runs `work` (which reads the store) on the query threads and sends
  // its answer (with no-store) from this connection's strand.
  template <typename Work>
  void Query(Work work) {
    net::post(*shared_.queries, [self = shared_from_this(), work = std::move(work)]() mutable {
      Answer answer = work();
      net::post(self->executor(), [self, answer = std::move(answer)]() mutable {
        if (!self->closed_) self->Send(std::move(answer), true);
      });
    });
  }

  template <typename Message>
  void AddHeaders(Message& message, bool no_store) {
    for (const auto& [name, value] : kSecurityHeaders) {
      message.set(boost::beast::string_view(name.data(), name.size()),
                  boost::beast::string_view(value.data(), value.size()));
    }
    if (no_store) message.set(http::field::cache_control, "no-store");
    if (!set_cookie_.empty()) message.set(http::field::set_cookie, set_cookie_);
  }

  void Send(Answer answer, bool no_store = false) {
    response_.emplace(static_cast<http::status>(answer.status), version_ == 0 ? 11 : version_);
    AddHeaders(*response_, no_store);
    if (!answer.content_type.empty())
      response_->set(http::field::content_type, answer.content_type);
    for (const auto& [name, value] : answer.headers) response_->set(name, value);
    response_->body() = std::move(answer.body);
    response_->keep_alive(keep_alive_ && !answer.close);
    response_->prepare_payload();
    if (head_) response_->body().clear();  // Content-Length stays that of GET
    Arm(shared_.options.write_timeout);
    http::async_write(socket_, *response_, [self = shared_from_this()](error_code ec, size_t) {
      if (self->closed_) return;
      self->Disarm();
      if (ec) {
        self->Close();
        return;
      }
      if (!self->response_->keep_alive()) {
        // What the client sent and was not read (a body) stays unread:
        // shut down sending first, so it sees the answer and the end.
        error_code ignored;
        self->socket_.shutdown(tcp::socket::shutdown_send, ignored);
        self->Close();
        return;
      }
      self->response_.reset();
      self->WaitForRequest();
    });
  }

  // /api/v1/events: Server-Sent Events from the shared feed, polled on a
  // timer of this stream's own (no thread waits on it).
  void Events(std::string_view last_header, const std::string& raw_query) {
    std::optional<std::map<std::string, std::string>> query = ParseQuery(raw_query);
    std::string last(last_header);
    if (last.empty() && query && query->count("last_event_id") > 0) {
      last = (*query)["last_event_id"];
    }
    if (query) {
      for (const auto& [name, value] : *query) {
        if (name != "token" && name != "last_event_id") {
          Send(FromApi(ErrorResponse(400, StrCat("unknown query parameter '", CEscape(name),
                                                 "'; /api/v1/events takes last_event_id"))),
               true);
          return;
        }
      }
    }
    std::optional<int64_t> after;
    if (!last.empty()) {
      after = ParseId(last);
      if (!after) {
        Send(FromApi(ErrorResponse(400, StrCat("Last-Event-ID '", CEscape(last),
                                               "' is not an event id (a whole number)"))),
             true);
        return;
      }
    }
    if (head_) {
      Send({200, "text/event-stream", "", {{"X-Accel-Buffering", "no"}}, false}, true);
      return;
    }
    position_ = shared_.feed->End();
    if (!after) {
      StartStream({});
      return;
    }
    // The replay reads the store: on the query threads.
    net::post(*shared_.queries, [self = shared_from_this(), after = *after] {
      absl::StatusOr<std::vector<FeedEvent>> replay = self->shared_.feed->Since(after, 1000);
      net::post(self->executor(), [self, after, replay = std::move(replay)]() mutable {
        if (self->closed_) return;
        if (!replay.ok()) {
          self->Send(FromApi(ErrorResponse(replay.status())), true);
          return;
        }
        self->replayed_up_to_ = after;
        for (const FeedEvent& event : *replay) {
          self->replayed_up_to_ = std::max(self->replayed_up_to_, event.id.value_or(0));
        }
        self->StartStream(*replay);
      });
    });
  }

  void StartStream(const std::vector<FeedEvent>& replay) {
    stream_response_.emplace(http::status::ok, version_ == 0 ? 11 : version_);
    AddHeaders(*stream_response_, true);
    stream_response_->set(http::field::content_type, "text/event-stream");
    stream_response_->set("X-Accel-Buffering", "no");
    // HTTP/1.0 has no chunks: the stream then ends with the connection.
    chunked_ = version_ >= 11;
    if (chunked_) {
      stream_response_->chunked(true);
    } else {
      stream_response_->keep_alive(false);
    }
    stream_serializer_.emplace(*stream_response_);
    std::string first = "retry: 2000\n: connected\n\n";
    for (const FeedEvent& event : replay) first += SseText(event);
    Arm(shared_.options.write_timeout);
    http::async_write_header(
        socket_, *stream_serializer_,
        [self = shared_from_this(), first = std::move(first)](error_code ec, size_t) mutable {
          if (self->closed_) return;
          if (ec) {
            self->Close();
            return;
          }
          self->WatchPeer();
          self->Write(std::move(first));
        });
  }

  // A client that goes away is noticed at once, not at the next write.
  void WatchPeer() {
    socket_.async_read_some(net::buffer(scratch_),
                            [self = shared_from_this()](error_code ec, size_t) {
                              if (self->closed_) return;
                              if (ec) {
                                self->Close();
                                return;
                              }
                              self->WatchPeer();  // ignore what it sends
                            });
  }

  void Write(std::string text) {
    pending_ = std::move(text);
    last_write_ = Clock::now();
    Arm(shared_.options.write_timeout);
    auto written = [self = shared_from_this()](error_code ec, size_t) {
      if (self->closed_) return;
      self->Disarm();
      if (ec) {
        self->Close();
        return;
      }
      self->SchedulePoll();
    };
    if (chunked_) {
      net::async_write(socket_, http::make_chunk(net::buffer(pending_)), std::move(written));
    } else {
      net::async_write(socket_, net::buffer(pending_), std::move(written));
    }
  }

  void SchedulePoll() {
    poll_.expires_after(kPollInterval);
    poll_.async_wait([self = shared_from_this()](error_code ec) {
      if (ec || self->closed_) return;
      self->Poll();
    });
  }

  void Poll() {
    EventFeed& feed = *shared_.feed;
    if (feed.stopped()) {
      Close();
      return;
    }
    std::string text;
    for (const FeedEvent& event : feed.Wait(&position_, std::chrono::milliseconds(0))) {
      if (event.id && *event.id <= replayed_up_to_) continue;
      text += SseText(event);
    }
    if (text.empty() && Clock::now() - last_write_ > kKeepAlive) text = ": keep-alive\n\n";
    if (text.empty()) {
      SchedulePoll();
    } else {
      Write(std::move(text));
    }
  }

  Shared& shared_;
  tcp::socket socket_;
  net::steady_timer deadline_;  // the running read's or write's
  net::steady_timer poll_;      // an event stream's next look at the feed
  boost::beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> parser_;
  std::optional<http::response<http::string_body>> response_;
  bool closed_ = false;
  unsigned version_ = 11;
  bool keep_alive_ = false;
  bool head_ = false;
  std::string set_cookie_;  // from ?token=, on the answer to this request
  // An event stream.
  std::optional<http::response<http::empty_body>> stream_response_;
  std::optional<http::response_serializer<http::empty_body>> stream_serializer_;
  bool chunked_ = true;
  uint64_t position_ = 0;
  int64_t replayed_up_to_ = -1;
  std::string pending_;  // the text being written
  Clock::time_point last_write_;
  char scratch_[512];
};

class Server final : public HttpServer {
 public:
  Server(HttpServerOptions options, std::string host) : host_(std::move(host)) {
    shared_.options = std::move(options);
    shared_.api.db_path = shared_.options.db_path;
    shared_.api.tiers_file = shared_.options.tiers_file;
    shared_.api.workers_json = shared_.options.workers_json;
    queries_ = std::make_unique<net::thread_pool>(shared_.options.query_threads);
    shared_.queries = queries_.get();
    const HttpServerOptions& o = shared_.options;
    rejection_ = StrCat(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
        "X-Content-Type-Options: nosniff\r\nRetry-After: 1\r\nConnection: close\r\n");
    const std::string body = LimitAnswer(503, "unavailable",
                                         StrCat("this server has ", o.max_connections,
                                                " connections open, its limit: try again later"))
                                 .body;
    rejection_ += StrCat("Content-Length: ", body.size(), "\r\n\r\n", body);
  }
  ~Server() override { Stop(); }

  absl::Status Start(int port) {
    error_code ec;
    tcp::resolver resolver(ioc_);
    tcp::resolver::results_type endpoints = resolver.resolve(
        host_, std::to_string(port), tcp::resolver::passive | tcp::resolver::numeric_service, ec);
    bool bound = false;
    if (!ec) {
      for (const auto& entry : endpoints) {
        error_code failed;
        acceptor_.open(entry.endpoint().protocol(), failed);
        if (!failed) acceptor_.set_option(net::socket_base::reuse_address(true), failed);
        if (!failed) acceptor_.bind(entry.endpoint(), failed);
        if (!failed) acceptor_.listen(net::socket_base::max_listen_connections, failed);
        if (!failed) {
          bound = true;
          break;
        }
        error_code ignored;
        acceptor_.close(ignored);
      }
    }
    if (!bound) {
      return absl::UnavailableError(StrCat("cannot listen on ", shared_.options.listen,
                                           " (in use, or not an address of this machine)"));
    }
    port_ = acceptor_.local_endpoint(ec).port();
    shared_.feed = std::make_unique<EventFeed>(shared_.options.db_path, kPollInterval);
    Accept();
    for (size_t i = 0; i < kIoThreads; ++i) threads_.emplace_back([this] { ioc_.run(); });
    return absl::OkStatus();
  }

  std::string address() const override {
    const bool v6 = host_.find(':') != std::string::npos;
    return StrCat(v6 ? "[" : "", host_, v6 ? "]" : "", ":", port_);
  }
  int port() const override { return port_; }

  void Stop() override {
    if (stopped_.exchange(true)) return;
    std::vector<std::shared_ptr<Session>> open;
    {
      std::lock_guard lock(shared_.mu);
      shared_.stopping = true;
      for (const auto& [key, session] : shared_.open) {
        if (std::shared_ptr<Session> alive = session.lock()) open.push_back(std::move(alive));
      }
    }
    if (shared_.feed) shared_.feed->Stop();
    net::post(acceptor_.get_executor(), [this] {
      error_code ignored;
      acceptor_.close(ignored);
      retry_.cancel();
    });
    for (std::shared_ptr<Session>& session : open) {
      net::post(session->executor(), [session] { session->Close(); });
    }
    open.clear();
    work_.reset();
    // Queries already running finish; queued ones are dropped with their
    // connections.
    queries_->stop();
    queries_->join();
    for (std::thread& thread : threads_) thread.join();
    threads_.clear();
    shared_.feed.reset();
  }

 private:
  void Accept() {
    acceptor_.async_accept(net::make_strand(ioc_), [this](error_code ec, tcp::socket socket) {
      if (stopped_) return;
      if (ec == net::error::operation_aborted) return;
      if (ec) {
        // Out of descriptors or the like: try again shortly, not in a spin.
        retry_.expires_after(std::chrono::milliseconds(50));
        retry_.async_wait([this](error_code failed) {
          if (!failed && !stopped_) Accept();
        });
        return;
      }
      if (shared_.connections.load() >= shared_.options.max_connections) {
        Reject(std::move(socket));
      } else {
        auto session = std::make_shared<Session>(shared_, std::move(socket));
        net::dispatch(session->executor(), [session] { session->Start(); });
      }
      Accept();
    });
  }

  // Over the connection limit: 503 at once (it fits the socket's buffer,
  // so the write does not wait), then closed.
  void Reject(tcp::socket socket) {
    error_code ignored;
    socket.non_blocking(true, ignored);
    socket.write_some(net::buffer(rejection_), ignored);
    socket.shutdown(tcp::socket::shutdown_send, ignored);
    socket.close(ignored);
  }

  const std::string host_;
  Shared shared_;
  std::string rejection_;  // the whole 503 answer
  int port_ = -1;
  std::atomic<bool> stopped_{false};
  std::vector<std::thread> threads_;
  // Destroyed before shared_: handlers they still hold end their sessions.
  net::io_context ioc_;
  net::executor_work_guard<net::io_context::executor_type> work_ = net::make_work_guard(ioc_);
  tcp::acceptor acceptor_{net::make_strand(ioc_)};
  net::steady_timer retry_{acceptor_.get_executor()};
  // Destroyed before ioc_: queued queries hold sessions whose sockets are
  // the io_context's.
  std::unique_ptr<net::thread_pool> queries_;
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
  if (options.max_connections == 0 || options.query_threads == 0 || options.max_header_bytes == 0) {
    return absl::InvalidArgumentError(
        "HTTP server: max_connections, query_threads and max_header_bytes must be positive");
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
