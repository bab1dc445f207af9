#include "storage_adapters/s3_wire.h"

#include <cctype>
#include <cstdlib>
#include <ctime>
#include <utility>

#include "common/strings.h"

namespace tierflow::storage::s3_internal {

std::string LowerAscii(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string XmlDecode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    const size_t amp = text.find('&');
    out.append(text.substr(0, amp));
    if (amp == std::string_view::npos) break;
    text.remove_prefix(amp);
    const size_t semi = text.find(';');
    const std::string_view entity = text.substr(0, semi == std::string_view::npos ? 0 : semi + 1);
    static const std::pair<std::string_view, char> kNamed[] = {
        {"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&quot;", '"'}, {"&apos;", '\''}};
    bool decoded = false;
    for (const auto& [name, c] : kNamed) {
      if (entity == name) {
        out.push_back(c);
        decoded = true;
      }
    }
    if (!decoded && entity.size() > 3 && entity[1] == '#') {
      const bool hex = entity[2] == 'x' || entity[2] == 'X';
      const std::string digits(entity.substr(hex ? 3 : 2, entity.size() - (hex ? 4 : 3)));
      char* end = nullptr;
      const unsigned long code = std::strtoul(digits.c_str(), &end, hex ? 16 : 10);
      if (!digits.empty() && end != nullptr && *end == '\0' && code > 0 && code <= 0x10FFFF) {
        // UTF-8, one to four bytes.
        if (code < 0x80) {
          out.push_back(static_cast<char>(code));
        } else if (code < 0x800) {
          out.push_back(static_cast<char>(0xC0 | (code >> 6)));
          out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
        } else if (code < 0x10000) {
          out.push_back(static_cast<char>(0xE0 | (code >> 12)));
          out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
          out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
        } else {
          out.push_back(static_cast<char>(0xF0 | (code >> 18)));
          out.push_back(static_cast<char>(0x80 | ((code >> 12) & 0x3F)));
          out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
          out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
        }
        decoded = true;
      }
    }
    if (decoded) {
      text.remove_prefix(entity.size());
    } else {
      out.push_back('&');
      text.remove_prefix(1);
    }
  }
  return out;
}

std::vector<std::string_view> XmlElements(std::string_view xml, std::string_view tag) {
  const std::string open = StrCat("<", tag, ">");
  const std::string close = StrCat("</", tag, ">");
  std::vector<std::string_view> out;
  size_t at = 0;
  for (;;) {
    const size_t begin = xml.find(open, at);
    if (begin == std::string_view::npos) break;
    const size_t end = xml.find(close, begin + open.size());
    if (end == std::string_view::npos) break;
    out.push_back(xml.substr(begin + open.size(), end - begin - open.size()));
    at = end + close.size();
  }
  return out;
}

std::optional<std::string> XmlText(std::string_view xml, std::string_view tag) {
  std::vector<std::string_view> elements = XmlElements(xml, tag);
  if (elements.empty()) return std::nullopt;
  return XmlDecode(elements.front());
}

std::string XmlEscape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

int64_t ParseTimeMs(std::string_view text, bool iso8601) {
  const std::string copy(text);
  std::tm parts{};
  const char* rest =
      strptime(copy.c_str(), iso8601 ? "%Y-%m-%dT%H:%M:%S" : "%a, %d %b %Y %H:%M:%S", &parts);
  if (rest == nullptr) return 0;
  int64_t ms = static_cast<int64_t>(timegm(&parts)) * 1000;
  if (iso8601 && rest[0] == '.' && std::isdigit(static_cast<unsigned char>(rest[1]))) {
    ms += std::strtol(rest + 1, nullptr, 10) % 1000;
  }
  return ms;
}

std::string BareEtag(std::string_view etag) {
  etag = TrimWhitespace(etag);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') {
    etag = etag.substr(1, etag.size() - 2);
  }
  return LowerAscii(etag);
}

}  // namespace tierflow::storage::s3_internal
