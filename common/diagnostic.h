// A located problem in a user's file: `file:line:col: field.path: message`.
// Loaders of user-written YAML (pipelines, tiers) collect every problem they
// find as Diagnostics instead of stopping at the first.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace tierflow {

struct Diagnostic {
  std::string file;        // path as the user gave it, or "--param" etc.
  int line = 0;            // 1-based; 0 when the problem has no position
  int column = 0;          // 1-based
  std::string field_path;  // e.g. "stages.train.inputs.shards"; may be empty
  std::string message;

  // "file:line:col: field.path: message", leaving out the parts that are unset.
  std::string ToString() const;
};

// Orders by file, line, column, so reports read top to bottom.
void SortDiagnostics(std::vector<Diagnostic>& diagnostics);

// InvalidArgument whose message is one diagnostic per line; OK when empty.
absl::Status DiagnosticsToStatus(const std::vector<Diagnostic>& diagnostics);

}  // namespace tierflow
