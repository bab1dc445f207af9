#include "storage_adapters/artifact_key.h"

#include "common/strings.h"

namespace tierflow::storage {

absl::StatusOr<std::string> NormalizeArtifactKey(std::string_view key) {
  auto invalid = [&](std::string_view why) {
    return absl::InvalidArgumentError(StrCat("invalid artifact key '", CEscape(key), "': ", why));
  };
  if (key.size() > kMaxArtifactKeyBytes) {
    return invalid(StrCat("longer than ", kMaxArtifactKeyBytes, " bytes"));
  }
  if (key.starts_with('/')) return invalid("absolute paths are not allowed");
  std::string out;
  out.reserve(key.size());
  std::string_view rest = key;
  while (!rest.empty()) {
    size_t slash = rest.find('/');
    std::string_view part = rest.substr(0, slash);
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    if (part.empty() || part == ".") continue;
    if (part == "..") return invalid("'..' would leave the tier root");
    if (part.size() > kMaxKeyComponentBytes) {
      return invalid(StrCat("a path component is longer than ", kMaxKeyComponentBytes, " bytes"));
    }
    for (char c : part) {
      if (c == '\\') return invalid("backslashes are not allowed");
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
        return invalid("control characters are not allowed");
      }
    }
    if (!out.empty()) out.push_back('/');
    out.append(part);
  }
  if (out.empty()) return invalid("empty");
  return out;
}

}  // namespace tierflow::storage
