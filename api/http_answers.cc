// The HTTP server's answers apart from the JSON API
// (api/internal/http_answers.h): tokens, the web UI's files, event framing.
#include "api/internal/http_answers.h"

#include <charconv>
#include <map>
#include <nlohmann/json.hpp>

#include "common/strings.h"

namespace tierflow::api {
namespace {

constexpr std::string_view kCookie = "tierflow_token";

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

// "Bearer" in any case (RFC 7235: auth schemes are case-insensitive).
bool IsBearer(std::string_view scheme) {
  constexpr std::string_view kBearer = "bearer";
  if (scheme.size() != kBearer.size()) return false;
  for (size_t i = 0; i < scheme.size(); ++i) {
    const char c = scheme[i];
    if ((c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c) != kBearer[i]) return false;
  }
  return true;
}

std::string CookieValue(std::string_view header, std::string_view name) {
  size_t start = 0;
  while (start < header.size()) {
    size_t end = header.find(';', start);
    if (end == std::string_view::npos) end = header.size();
    std::string_view pair = header.substr(start, end - start);
    while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
    if (pair.size() > name.size() && pair.substr(0, name.size()) == name &&
        pair[name.size()] == '=') {
      return PercentDecode(pair.substr(name.size() + 1), false).value_or("");
    }
    start = end + 1;
  }
  return "";
}

// What / serves when the server was handed no UI (a build without npm).
constexpr WebAsset kNoUiPage{
    "/index.html", "text/html; charset=utf-8",
    "<!doctype html><html><head><meta charset=\"utf-8\"><title>tierflow</title></head>"
    "<body><p>This tierflow was built without its web UI (ui/ needs npm: run "
    "scripts/bootstrap.sh, then build again). The JSON API is at /api/v1 and the metrics at "
    "/metrics.</p></body></html>\n"};

// The asset at `path` ("/" is "/index.html"); nullptr when there is none.
const WebAsset* FindAsset(const std::vector<WebAsset>& assets, std::string_view path) {
  if (path == "/") path = "/index.html";
  if (assets.empty()) return path == kNoUiPage.path ? &kNoUiPage : nullptr;
  for (const WebAsset& asset : assets) {
    if (asset.path == path) return &asset;
  }
  return nullptr;
}

}  // namespace

std::optional<int64_t> ParseId(std::string_view text) {
  int64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

std::string SseText(const FeedEvent& event) {
  std::string text;
  if (event.id) text += StrCat("id: ", *event.id, "\n");
  text += StrCat("event: ", event.type, "\ndata: ", event.data, "\n\n");
  return text;
}

Answer FromApi(const ApiResponse& response) {
  const bool json = response.content_type == "application/json";
  return {response.status, json ? "application/json; charset=utf-8" : response.content_type,
          json ? HtmlSafeJson(response.body) : response.body, response.headers, false};
}

// An error of the server's limits (the API's ErrorResponse knows the
// statuses of the API only).
Answer LimitAnswer(int status, std::string_view error, std::string_view message) {
  nlohmann::json body = {{"status", status}, {"error", error}, {"message", message}};
  return {status, "application/json; charset=utf-8", HtmlSafeJson(body.dump()), {}, true};
}

// Refuses when a token is set and the request does not carry it; on a
// token given as ?token=, sets `*set_cookie`.
std::optional<Answer> CheckToken(const std::string& token, std::string_view authorization,
                                 std::string_view cookie_header, std::string_view raw_query,
                                 std::string* set_cookie) {
  if (token.empty()) return std::nullopt;
  const std::pair<std::string, std::string> challenge = {"WWW-Authenticate",
                                                         "Bearer realm=\"tierflow\""};
  std::optional<std::string> presented;
  std::string how;
  if (!authorization.empty()) {
    // RFC 7235: the scheme is case-insensitive, then one or more spaces.
    const size_t space = authorization.find(' ');
    if (space == std::string_view::npos || !IsBearer(authorization.substr(0, space))) {
      Answer answer = FromApi(ErrorResponse(401, "the Authorization header is not 'Bearer TOKEN'"));
      answer.headers.push_back(challenge);
      return answer;
    }
    std::string_view credentials = authorization.substr(space + 1);
    while (!credentials.empty() && credentials.front() == ' ') credentials.remove_prefix(1);
    presented = std::string(credentials);
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
    std::string cookie = CookieValue(cookie_header, kCookie);
    if (!cookie.empty()) {
      presented = cookie;
      how = StrCat("the ", kCookie, " cookie");
    }
  }
  if (!presented) {
    Answer answer =
        FromApi(ErrorResponse(401,
                              "this server needs a token: send 'Authorization: Bearer TOKEN', or "
                              "open the UI once as /?token=TOKEN"));
    answer.headers.push_back(challenge);
    return answer;
  }
  if (!SameToken(*presented, token)) return FromApi(ErrorResponse(403, StrCat(how, " is wrong")));
  if (from_query) {
    *set_cookie = StrCat(kCookie, "=", PercentEncode(token), "; Path=/; HttpOnly; SameSite=Strict");
  }
  return std::nullopt;
}

Answer AssetAnswer(const std::vector<WebAsset>& assets, std::string_view raw_path) {
  std::optional<std::string> path = PercentDecode(raw_path, false);
  if (!path) return FromApi(ErrorResponse(400, "bad %-escape in the path"));
  const WebAsset* asset = FindAsset(assets, *path);
  if (asset == nullptr) {
    // Client-side routes (/runs/X, /lineage/...) are the UI's page; a
    // missing file (a name with an extension) is not.
    const std::string_view last = std::string_view(*path).substr(path->rfind('/') + 1);
    if (last.find('.') == std::string_view::npos) asset = FindAsset(assets, "/");
  }
  if (asset == nullptr) return FromApi(ErrorResponse(404, StrCat("no file ", CEscape(*path))));
  return {200,
          std::string(asset->content_type),
          std::string(asset->body),
          {{"Cache-Control", "no-cache"}},
          false};
}

}  // namespace tierflow::api
