#include "cli/gc_commands.h"

#include <ostream>

#include "api/embedded.h"
#include "api/gc_service.h"
#include "cli/commands.h"

namespace tierflow::cli {

int RunGc(const GcCommandOptions& options, std::ostream& out, std::ostream& err) {
  scheduler::GcOptions gc;
  gc.dry_run = options.dry_run;
  if (options.keep_last != -1) gc.keep_last = options.keep_last;
  if (!options.older_than.empty()) {
    absl::StatusOr<std::chrono::milliseconds> age = scheduler::ParseGcAge(options.older_than);
    if (!age.ok()) {
      err << "tierflow: " << age.status().message() << '\n';
      return kExitInvalid;
    }
    gc.older_than = *age;
  }
  absl::Status status = api::WriteGc(api::DatabasePath(options.db), gc, options.output, out);
  if (!status.ok()) {
    out.flush();
    err << "tierflow: " << status.message() << '\n';
    return kExitInvalid;
  }
  return CheckWritten(out, err);
}

}  // namespace tierflow::cli
