#include "common/diagnostic.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/str_join.h"
#include "common/strings.h"

namespace tierflow {

std::string Diagnostic::ToString() const {
  std::string out = file;
  if (line > 0) {
    out += StrCat(":", line);
    if (column > 0) out += StrCat(":", column);
  }
  if (!field_path.empty()) out += StrCat(out.empty() ? "" : ": ", field_path);
  out += StrCat(out.empty() ? "" : ": ", message);
  return out;
}

void SortDiagnostics(std::vector<Diagnostic>& diagnostics) {
  std::stable_sort(diagnostics.begin(), diagnostics.end(),
                   [](const Diagnostic& a, const Diagnostic& b) {
                     return std::tie(a.file, a.line, a.column) < std::tie(b.file, b.line, b.column);
                   });
}

absl::Status DiagnosticsToStatus(const std::vector<Diagnostic>& diagnostics) {
  if (diagnostics.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrJoin(
      diagnostics, "\n", [](std::string* out, const Diagnostic& d) { out->append(d.ToString()); }));
}

}  // namespace tierflow
