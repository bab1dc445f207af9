#include "cli/inspect_commands.h"

#include <unistd.h>

#include <cstdlib>
#include <ostream>
#include <string_view>

#include "api/cluster.h"
#include "api/run_service.h"
#include "cli/commands.h"
#include "cli/terminal_style.h"

namespace tierflow::cli {
namespace {

std::string EnvToken() {
  const char* token = std::getenv("TIERFLOW_TOKEN");
  return token == nullptr ? "" : token;
}

int Fail(const absl::Status& status, std::ostream& err) {
  err << status.message() << '\n';
  return kExitInvalid;
}

}  // namespace

int RunRuns(const RunsOptions& options, std::ostream& out, std::ostream& err) {
  api::RunFilter filter{.limit = options.limit, .state = std::nullopt};
  if (!options.state.empty()) {
    absl::StatusOr<api::RunState> state = api::ParseRunState(options.state);
    if (!state.ok()) return Fail(state.status(), err);
    filter.state = *state;
  }
  absl::StatusOr<api::RunList> list = api::ListRuns(options.db, filter);
  if (!list.ok()) return Fail(list.status(), err);
  if (options.output == "json") {
    api::RenderRunsJson(*list, out);
  } else {
    api::RenderRunsText(*list, StdoutStatePainter(), out);
  }
  return CheckWritten(out, err);
}

int RunShow(const ShowOptions& options, std::ostream& out, std::ostream& err) {
  absl::StatusOr<api::RunDetail> detail = api::ShowRun(options.db, options.run);
  if (!detail.ok()) return Fail(detail.status(), err);
  if (options.output == "json") {
    api::RenderRunJson(*detail, out);
  } else {
    api::RenderRunText(*detail, options.attempts, out);
  }
  return CheckWritten(out, err);
}

int RunLogs(const LogsOptions& options, std::ostream& out, std::ostream& err) {
  api::LogRequest request;
  request.db = options.db;
  request.run = options.run;
  request.task = options.task;
  request.attempt = options.attempt;
  request.follow = options.follow;
  request.failed_only = options.failed;
  request.stages = options.stages;
  if (options.task.empty() && !options.scheduler.empty()) {
    err << "logs: a run's logs without a TASK are read from the local store only; name a TASK "
           "with --scheduler\nRun with --help for more information.\n";
    return kExitUsage;
  }
  if (!options.task.empty() && (options.failed || !options.stages.empty())) {
    err << "logs: --failed and --stage choose among a run's tasks; give them without a TASK\n"
           "Run with --help for more information.\n";
    return kExitUsage;
  }
  request.paint = StdoutStatePainter();
  absl::Status status = options.scheduler.empty()
                            ? api::WriteLog(request, out, err)
                            : api::RemoteLogs(options.scheduler, EnvToken(), request, out, err);
  if (!status.ok()) return Fail(status, err);
  return CheckWritten(out, err);
}

int RunLineage(const LineageOptions& options, std::ostream& out, std::ostream& err) {
  std::optional<int64_t> depth;
  if (options.depth >= 0) depth = options.depth;
  absl::Status status;
  if (options.scheduler.empty()) {
    status = api::WriteLineage(options.db, options.target, options.upstream, options.downstream,
                               depth, options.output, out);
  } else {
    absl::StatusOr<std::string> text =
        api::RemoteLineage(options.scheduler, EnvToken(), options.target, options.upstream,
                           options.downstream, options.depth, options.output);
    if (text.ok()) out << *text;
    status = text.status();
  }
  if (!status.ok()) {
    // A malformed artifact reference, or a walk asked of a run, is a usage
    // error; an unknown one is not.
    if (status.code() == absl::StatusCode::kInvalidArgument) {
      err << "lineage: " << status.message() << "\nRun with --help for more information.\n";
      return kExitUsage;
    }
    return Fail(status, err);
  }
  return CheckWritten(out, err);
}

}  // namespace tierflow::cli
