// Byte sizes and durations as users write them in YAML and on the command
// line ("10GiB", "512MB", "2h30m", "500ms"), and back to text.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace tierflow {

using Duration = std::chrono::milliseconds;

// Accepts a non-negative number (decimals allowed) and an optional unit:
// B; SI kB/KB, MB, GB, TB, PB (powers of 1000); binary KiB, MiB, GiB, TiB,
// PiB and the Kubernetes forms Ki, Mi, Gi, Ti, Pi (powers of 1024). A bare
// number is bytes. Errors name the offending text and show valid examples.
absl::StatusOr<uint64_t> ParseSize(std::string_view text);

// Accepts Go/Prometheus-style concatenated components: "90s", "2h30m",
// "1d12h", "500ms", "1.5h"; units ms, s, m, h, d, w. A bare number is seconds.
absl::StatusOr<Duration> ParseDuration(std::string_view text);

// "1.5 GiB", "512 B" — binary units, at most one decimal place.
std::string FormatSize(uint64_t bytes);

// "2h30m", "1m30s", "250ms", "0s".
std::string FormatDuration(Duration duration);

// Wall-clock time in ms since the Unix epoch: what the state store records.
inline int64_t WallClockMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace tierflow
