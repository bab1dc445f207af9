#include "cli/status_commands.h"

#include <unistd.h>

#include <chrono>
#include <ostream>
#include <string_view>

#include "api/run_service.h"
#include "api/run_status.h"
#include "cli/commands.h"
#include "cli/terminal_style.h"

namespace tierflow::cli {

int RunLocalStatus(const StatusOptions& options, std::ostream& out, std::ostream& err) {
  absl::StatusOr<api::RunDetail> detail = api::ShowRun(options.db, options.run);
  if (!detail.ok()) {
    err << detail.status().message() << '\n';
    return kExitInvalid;
  }
  if (options.output == "json") {
    api::RenderStatusJson(*detail, out);
    return CheckWritten(out, err);
  }
  api::StatePainter paint = StdoutStatePainter();
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  api::RenderStatusText(*detail, now_ms, paint, out);
  return CheckWritten(out, err);
}

}  // namespace tierflow::cli
