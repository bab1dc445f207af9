// Reads a pipeline YAML file into the model, validating all of it. Every
// problem found is reported, not just the first, as a Diagnostic
// "file:line:col: field.path: message"; bad input never crashes the loader.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/diagnostic.h"
#include "dag/pipeline.h"

namespace tierflow::dag {

struct LoadOptions {
  // `--param name=value` overrides, checked against the declared params.
  std::map<std::string, std::string> param_overrides;
};

// Parses and validates `text`, labelling diagnostics with `file`.
// On failure returns InvalidArgument (message: every diagnostic, one per
// line) and, if `diagnostics` is given, appends them there too.
absl::StatusOr<Pipeline> LoadPipelineText(std::string_view text, std::string_view file,
                                          const LoadOptions& options = {},
                                          std::vector<Diagnostic>* diagnostics = nullptr);

// Reads `path` and calls LoadPipelineText. A missing or unreadable file is
// NotFound / PermissionDenied naming the path.
absl::StatusOr<Pipeline> LoadPipelineFile(const std::string& path,
                                          const LoadOptions& options = {},
                                          std::vector<Diagnostic>* diagnostics = nullptr);

}  // namespace tierflow::dag
