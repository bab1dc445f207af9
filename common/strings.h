// Small string helpers that work with std::string_view. Debian's Abseil is
// built with its own absl::string_view (ABSL_OPTION_USE_STD_STRING_VIEW 0),
// so absl::StrCat and friends do not accept std::string_view; use these.
#pragma once

#include <concepts>
#include <string>
#include <string_view>
#include <type_traits>

#include "absl/strings/string_view.h"

namespace tierflow {

namespace strings_internal {
inline void AppendPiece(std::string& out, std::string_view piece) { out.append(piece); }
inline void AppendPiece(std::string& out, char c) { out.push_back(c); }
// absl::Status::message() is an absl::string_view, a different type here.
inline void AppendPiece(std::string& out, absl::string_view piece) {
  out.append(piece.data(), piece.size());
}
inline void AppendPiece(std::string& out, const std::string& piece) { out.append(piece); }
inline void AppendPiece(std::string& out, const char* piece) { out.append(piece); }
template <typename Int>
requires(std::integral<Int> && !std::same_as<Int, char> &&
         !std::same_as<Int, bool>) void AppendPiece(std::string& out, Int value) {
  out.append(std::to_string(value));
}
}  // namespace strings_internal

// Concatenates strings, string_views, chars and integers.
template <typename... Parts>
std::string StrCat(const Parts&... parts) {
  std::string out;
  (strings_internal::AppendPiece(out, parts), ...);
  return out;
}

std::string_view TrimWhitespace(std::string_view text);
std::string AsciiUpper(std::string_view text);

// `text` with control characters, backslashes and non-ASCII bytes written as
// C escapes (\n, \\, \x00), so user values are safe to echo in messages.
std::string CEscape(std::string_view text);

// `text` as one word for a POSIX shell (sh, bash, zsh): as it is when it
// holds only characters no shell treats specially (letters, digits and
// `-_./:@+,`; not `=` or `%`, which zsh expands at a word's start), else
// in single quotes, each ' written '\''. The empty
// string is ''.
std::string ShellQuote(std::string_view text);

// Percent-encoding as RFC 3986 and AWS's UriEncode do it: every byte but
// A-Z a-z 0-9 - . _ ~ (and '/' when `keep_slash`) as %XY, upper-case hex.
std::string PercentEncode(std::string_view text, bool keep_slash = false);

// A flat JSON object written straight into a string, for hot paths where
// building an nlohmann::json first costs more than the write (placement
// rows: one per decision, 200,000 for a run of 100,000 stages). Strings
// are escaped, and bytes that are not UTF-8 become U+FFFD, as nlohmann's
// error_handler_t::replace does; doubles are written in the shortest form
// that reads back as the same double (non-finite ones as null).
class FlatJson {
 public:
  FlatJson& String(std::string_view key, std::string_view value);
  FlatJson& Number(std::string_view key, double value);
  FlatJson& Number(std::string_view key, uint64_t value);
  FlatJson& Bool(std::string_view key, bool value);
  // The object; the writer is empty afterwards.
  std::string Finish();

 private:
  void Key(std::string_view key);
  std::string out_ = "{";
};
// `text` as a JSON string, quoted, with FlatJson's escaping.
void AppendJsonString(std::string& out, std::string_view text);
inline std::string JsonQuoted(std::string_view text) {
  std::string out;
  AppendJsonString(out, text);
  return out;
}

// `bytes` random bytes (std::random_device) as lower-case hex: ids that
// must not repeat across processes (a cluster's, a worker registration's).
std::string RandomHex(int bytes);

}  // namespace tierflow
