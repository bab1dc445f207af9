#include "common/units.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>
#include <utility>

#include "common/strings.h"

namespace tierflow {
namespace {

// Reads a non-negative decimal number at the front of `text`; returns the
// number of characters consumed (0 if there is no number).
size_t ReadNumber(std::string_view text, double* value) {
  size_t i = 0;
  bool digits = false;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i, digits = true;
  if (i < text.size() && text[i] == '.') {
    ++i;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i, digits = true;
  }
  if (!digits) return 0;
  *value = std::strtod(std::string(text.substr(0, i)).c_str(), nullptr);
  return i;
}

struct Unit {
  std::string_view name;
  double factor;
};

constexpr double kKi = 1024.0;
constexpr Unit kSizeUnits[] = {
    {"", 1},
    {"B", 1},
    {"k", 1e3},
    {"kB", 1e3},
    {"K", 1e3},
    {"KB", 1e3},
    {"M", 1e6},
    {"MB", 1e6},
    {"G", 1e9},
    {"GB", 1e9},
    {"T", 1e12},
    {"TB", 1e12},
    {"P", 1e15},
    {"PB", 1e15},
    {"Ki", kKi},
    {"KiB", kKi},
    {"Mi", kKi* kKi},
    {"MiB", kKi* kKi},
    {"Gi", kKi* kKi* kKi},
    {"GiB", kKi* kKi* kKi},
    {"Ti", kKi* kKi* kKi* kKi},
    {"TiB", kKi* kKi* kKi* kKi},
    {"Pi", kKi* kKi* kKi* kKi* kKi},
    {"PiB", kKi* kKi* kKi* kKi* kKi},
};

constexpr Unit kDurationUnits[] = {
    {"ms", 1}, {"s", 1e3}, {"m", 60e3}, {"h", 3600e3}, {"d", 86400e3}, {"w", 7 * 86400e3},
};

}  // namespace

absl::StatusOr<uint64_t> ParseSize(std::string_view raw) {
  std::string_view text = TrimWhitespace(raw);
  auto bad = [&] {
    return absl::InvalidArgumentError(StrCat(
        "invalid size '", raw, "': expected a number and a unit such as 512MiB, 10GiB or 2TB"));
  };
  double value = 0;
  size_t used = ReadNumber(text, &value);
  if (used == 0) return bad();
  std::string_view unit = TrimWhitespace(text.substr(used));
  for (const Unit& u : kSizeUnits) {
    if (u.name != unit) continue;
    double bytes = value * u.factor;
    if (bytes >= 18e18) {
      return absl::InvalidArgumentError(StrCat("invalid size '", raw, "': too large"));
    }
    return static_cast<uint64_t>(std::llround(bytes));
  }
  return bad();
}

absl::StatusOr<Duration> ParseDuration(std::string_view raw) {
  std::string_view text = TrimWhitespace(raw);
  auto bad = [&] {
    return absl::InvalidArgumentError(
        StrCat("invalid duration '", raw, "': expected a form such as 90s, 2h30m, 1d or 500ms"));
  };
  double total_ms = 0;
  double value = 0;
  size_t used = ReadNumber(text, &value);
  if (used == 0) return bad();
  if (used == text.size()) return Duration(static_cast<int64_t>(std::llround(value * 1e3)));
  while (!text.empty()) {
    used = ReadNumber(text, &value);
    if (used == 0) return bad();
    text.remove_prefix(used);
    size_t unit_len = 0;
    while (unit_len < text.size() && std::isalpha(static_cast<unsigned char>(text[unit_len]))) {
      ++unit_len;
    }
    std::string_view unit = text.substr(0, unit_len);
    const Unit* found = nullptr;
    for (const Unit& u : kDurationUnits) {
      if (u.name == unit) found = &u;
    }
    if (found == nullptr) return bad();
    total_ms += value * found->factor;
    text.remove_prefix(unit_len);
  }
  if (total_ms > 1e15) {
    return absl::InvalidArgumentError(StrCat("invalid duration '", raw, "': too long"));
  }
  return Duration(static_cast<int64_t>(std::llround(total_ms)));
}

std::string FormatSize(uint64_t bytes) {
  static constexpr const char* kNames[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1024.0 && unit + 1 < std::size(kNames)) value /= 1024.0, ++unit;
  if (unit == 0) return StrCat(bytes, " B");
  char buf[32];
  double rounded = std::round(value * 10) / 10;
  if (rounded == std::floor(rounded)) {
    std::snprintf(buf, sizeof buf, "%.0f", rounded);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f", rounded);
  }
  return StrCat(buf, " ", kNames[unit]);
}

std::string FormatDuration(Duration duration) {
  int64_t ms = duration.count();
  if (ms == 0) return "0s";
  std::string out;
  if (ms < 0) {
    out.push_back('-');
    ms = -ms;
  }
  if (ms < 1000) return StrCat(out, ms, "ms");
  const std::pair<int64_t, const char*> parts[] = {
      {86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
  for (const auto& [size, name] : parts) {
    if (ms >= size) {
      out += StrCat(ms / size, name);
      ms %= size;
    }
  }
  if (ms > 0) out += StrCat(ms, "ms");
  return out;
}

}  // namespace tierflow
