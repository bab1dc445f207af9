#include "cli/inspect_commands.h"

#include <ostream>

#include "api/run_service.h"
#include "cli/commands.h"

namespace tierflow::cli {
namespace {

int Fail(const absl::Status& status, std::ostream& err) {
  err << status.message() << '\n';
  return kExitInvalid;
}

}  // namespace

int RunRuns(const RunsOptions& options, std::ostream& out, std::ostream& err) {
  absl::StatusOr<api::RunList> list =
      api::ListRuns(options.db, {.limit = options.limit, .state = options.state});
  if (!list.ok()) return Fail(list.status(), err);
  if (options.output == "json") {
    api::RenderRunsJson(*list, out);
  } else {
    api::RenderRunsText(*list, out);
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
  if (absl::Status status = api::WriteLog(request, out, err); !status.ok()) {
    return Fail(status, err);
  }
  return CheckWritten(out, err);
}

int RunLineage(const LineageOptions& options, std::ostream& out, std::ostream& err) {
  api::LineageDirection direction = api::LineageDirection::kBoth;
  if (options.upstream != options.downstream) {
    direction =
        options.upstream ? api::LineageDirection::kUpstream : api::LineageDirection::kDownstream;
  }
  std::optional<int64_t> depth;
  if (options.depth >= 0) depth = options.depth;
  absl::StatusOr<api::LineageGraph> graph =
      api::GetLineage(options.db, options.target, direction, depth);
  if (!graph.ok()) {
    // A malformed artifact reference, or a walk asked of a run, is a usage
    // error; an unknown one is not.
    if (graph.status().code() == absl::StatusCode::kInvalidArgument) {
      err << "lineage: " << graph.status().message() << "\nRun with --help for more information.\n";
      return kExitUsage;
    }
    return Fail(graph.status(), err);
  }
  if (options.output == "json") {
    api::RenderLineageJson(*graph, out);
  } else if (options.output == "dot") {
    api::RenderLineageDot(*graph, out);
  } else {
    api::RenderLineageText(*graph, out);
  }
  return CheckWritten(out, err);
}

}  // namespace tierflow::cli
