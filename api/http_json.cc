// The HTTP API's JSON and query-string helpers (api/internal/http_json.h),
// its error responses, and the public helpers of http_api.h that the
// server uses (PercentDecode, ParseQuery, HtmlSafeJson, RenderWorkersJson).
// Stateless; safe from any thread.
#include "api/internal/http_json.h"

#include <algorithm>
#include <charconv>
#include <sstream>
#include <utility>

#include "api/cluster.h"
#include "api/run_service.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/suggest.h"
#include "scheduler/store.h"

namespace tierflow::api {
namespace {

std::string_view ErrorName(int status) {
  switch (status) {
    case 400:
      return "bad_request";
    case 401:
      return "unauthorized";
    case 403:
      return "forbidden";
    case 404:
      return "not_found";
    case 405:
      return "method_not_allowed";
    case 409:
      return "conflict";
    default:
      return "internal";
  }
}

}  // namespace

std::string DumpJson(const Json& json) {
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// A rendering of run_service.h / tier_service.h, read back to be composed
// into a bigger answer: the renderers stay the one definition of each shape.
Json Rendered(const std::function<void(std::ostream&)>& render) {
  std::ostringstream out;
  render(out);
  return Json::parse(out.str());
}

ApiResponse JsonResponse(const Json& json) { return {200, "application/json", DumpJson(json)}; }

Json OptionalJson(const std::optional<int64_t>& value) {
  return value ? Json(*value) : Json(nullptr);
}

Json RunSummaryJson(const scheduler::RunSummary& summary) {
  scheduler::RunList list;
  list.runs.push_back(summary);
  list.total = 1;
  return Rendered([&](std::ostream& out) { RenderRunsJson(list, out); })["runs"][0];
}

absl::StatusOr<std::unique_ptr<scheduler::Database>> OpenStore(const HttpApiOptions& options) {
  return scheduler::OpenStoreReadOnly(options.db_path);
}

absl::Status Query::CheckNames() const {
  for (const auto& [name, value] : values_) {
    if (name == "token") continue;
    if (std::find(allowed_.begin(), allowed_.end(), name) == allowed_.end()) {
      std::string known;
      for (const std::string& a : allowed_) known += StrCat(known.empty() ? "" : ", ", a);
      return absl::InvalidArgumentError(
          StrCat("unknown query parameter '", name, "'", DidYouMean(name, allowed_),
                 known.empty() ? "; this endpoint takes none" : "; this endpoint takes " + known));
    }
  }
  return absl::OkStatus();
}

std::optional<std::string> Query::Text(const std::string& name) const {
  auto found = values_.find(name);
  if (found == values_.end() || found->second.empty()) return std::nullopt;
  return found->second;
}

absl::StatusOr<std::optional<int64_t>> Query::Int(const std::string& name, int64_t min,
                                                  int64_t max) const {
  std::optional<std::string> text = Text(name);
  if (!text) return std::optional<int64_t>();
  int64_t value = 0;
  auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (error != std::errc() || end != text->data() + text->size()) {
    return absl::InvalidArgumentError(
        StrCat("query parameter '", name, "': '", CEscape(*text), "' is not a whole number"));
  }
  if (value < min || value > max) {
    return absl::InvalidArgumentError(StrCat("query parameter '", name, "': ", value,
                                             " is out of range (", min, " to ", max, ")"));
  }
  return std::optional<int64_t>(value);
}

absl::StatusOr<Query> ParseParams(std::string_view raw, std::vector<std::string> allowed) {
  std::optional<std::map<std::string, std::string>> values = ParseQuery(raw);
  if (!values) {
    return absl::InvalidArgumentError("the query string has a bad %-escape");
  }
  Query query(std::move(*values), std::move(allowed));
  TF_RETURN_IF_ERROR(query.CheckNames());
  return query;
}

std::string RenderWorkersJson(const std::vector<RemoteWorker>& workers) {
  Json list = Json::array();
  for (const RemoteWorker& worker : workers) {
    list.push_back(Json{{"name", worker.name},
                        {"slots", worker.slots},
                        {"running", worker.running},
                        {"last_heartbeat_ms", worker.last_heartbeat_ms}});
  }
  return DumpJson(list);
}

ApiResponse ErrorResponse(int status, std::string_view message) {
  return {status, "application/json",
          DumpJson(Json{{"status", status},
                        {"error", std::string(ErrorName(status))},
                        {"message", std::string(message)}})};
}

ApiResponse ErrorResponse(const absl::Status& status) {
  int code = 500;
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      code = 404;
      break;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      code = 400;
      break;
    case absl::StatusCode::kFailedPrecondition:
      code = 409;
      break;
    case absl::StatusCode::kPermissionDenied:
      code = 403;
      break;
    case absl::StatusCode::kUnauthenticated:
      code = 401;
      break;
    default:
      break;
  }
  return ErrorResponse(code, std::string(status.message()));
}

std::optional<std::string> PercentDecode(std::string_view text, bool plus_is_space) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      const int high = hex(text[i + 1]);
      const int low = hex(text[i + 2]);
      if (high < 0 || low < 0) return std::nullopt;
      out.push_back(static_cast<char>(high * 16 + low));
      i += 2;
    } else if (plus_is_space && text[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

std::optional<std::map<std::string, std::string>> ParseQuery(std::string_view query) {
  std::map<std::string, std::string> values;
  size_t start = 0;
  while (start < query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string_view::npos) end = query.size();
    std::string_view pair = query.substr(start, end - start);
    start = end + 1;
    if (pair.empty()) continue;
    const size_t equals = pair.find('=');
    std::optional<std::string> name = PercentDecode(pair.substr(0, equals), true);
    std::optional<std::string> value =
        PercentDecode(equals == std::string_view::npos ? "" : pair.substr(equals + 1), true);
    if (!name || !value) return std::nullopt;
    values[*name] = std::move(*value);
  }
  return values;
}

std::string HtmlSafeJson(std::string_view json) {
  std::string out;
  out.reserve(json.size());
  for (char c : json) {
    switch (c) {
      case '<':
        out += "\\u003c";
        break;
      case '>':
        out += "\\u003e";
        break;
      case '&':
        out += "\\u0026";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

}  // namespace tierflow::api
