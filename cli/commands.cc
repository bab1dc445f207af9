#include "cli/commands.h"

#include <optional>
#include <ostream>

#include "api/embedded.h"
#include "api/plan_service.h"
#include "api/tier_service.h"

namespace tierflow::cli {

int CheckWritten(std::ostream& out, std::ostream& err) {
  out.flush();
  if (out) return kExitOk;
  err << "tierflow: error writing output\n";
  return kExitInvalid;
}

std::map<std::string, std::string> ParseParams(const std::vector<std::string>& arguments) {
  std::map<std::string, std::string> overrides;
  for (const std::string& argument : arguments) {
    size_t equals = argument.find('=');
    overrides[argument.substr(0, equals)] = argument.substr(equals + 1);
  }
  return overrides;
}

std::string CheckParamArgument(const std::string& argument) {
  size_t equals = argument.find('=');
  if (equals == std::string::npos) {
    return "'" + argument + "' is not NAME=VALUE (for example --param epochs=5)";
  }
  if (equals == 0) return "'" + argument + "' has no param name before '='";
  return "";
}

int RunValidate(const ValidateOptions& options, std::ostream& out, std::ostream& err) {
  int exit_code = kExitOk;
  for (const api::FileValidation& result :
       api::ValidateFiles(options.files, ParseParams(options.params))) {
    if (result.ok) {
      out << result.file << ": ok (" << result.stage_count
          << (result.stage_count == 1 ? " stage, " : " stages, ") << result.task_count
          << (result.task_count == 1 ? " task)\n" : " tasks)\n");
      continue;
    }
    exit_code = kExitInvalid;
    for (const Diagnostic& diagnostic : result.diagnostics) err << diagnostic.ToString() << '\n';
  }
  if (int written = CheckWritten(out, err); written != kExitOk) return written;
  return exit_code;
}

int RunExplain(const api::ExplainRequest& request, const std::string& output, std::ostream& out,
               std::ostream& err) {
  absl::StatusOr<api::Explanation> explanation = api::ExplainPipelineFile(request);
  if (!explanation.ok()) {
    err << "tierflow: " << explanation.status().message() << '\n';
    return kExitInvalid;
  }
  if (output == "json") {
    api::RenderExplainJson(*explanation, out);
  } else {
    api::RenderExplainText(*explanation, out);
  }
  return CheckWritten(out, err);
}

int RunPlan(const PlanOptions& options, std::ostream& out, std::ostream& err) {
  if (options.explain) {
    return RunExplain({.file = options.file,
                       .params = ParseParams(options.params),
                       .db_path = api::DatabasePath(options.db),
                       .rerun = options.rerun,
                       .rerun_downstream = options.rerun_downstream},
                      options.output, out, err);
  }
  if (!options.rerun.empty() || options.rerun_downstream) {
    err << "tierflow: plan: --rerun and --rerun-downstream go with --explain\n";
    return kExitUsage;
  }
  absl::StatusOr<api::Plan> plan = api::PlanPipelineFile(options.file, ParseParams(options.params));
  if (!plan.ok()) {
    err << plan.status().message() << '\n';
    return kExitInvalid;
  }
  std::optional<api::Placement> placement;
  if (!options.tiers_file.empty()) {
    absl::StatusOr<api::Placement> placed =
        api::PlacePlan(*plan, options.tiers_file, api::DatabasePath(options.db));
    if (!placed.ok()) {
      err << "tierflow: " << placed.status().message() << '\n';
      return kExitInvalid;
    }
    placement = std::move(*placed);
  }
  if (options.output == "json") {
    api::RenderPlanJson(*plan, out, placement ? api::PlacementJsonField(*placement) : "");
  } else {
    api::RenderPlanText(*plan, out);
    if (placement) api::RenderPlacementText(*placement, out);
  }
  return CheckWritten(out, err);
}

}  // namespace tierflow::cli
