#include "api/explain_service.h"

#include <filesystem>
#include <memory>
#include <ostream>

#include "common/status.h"
#include "common/strings.h"
#include "dag/graph.h"
#include "dag/loader.h"
#include "nlohmann/json.hpp"
#include "scheduler/store.h"

namespace tierflow::api {
namespace {
namespace fs = std::filesystem;

// A reason without its " (attempt N)": items reused from the same run
// share a line.
std::string GroupReason(const scheduler::TaskExplanation& task) {
  if (!task.reuse) return task.reason;
  return StrCat("cached from ", task.cached_from_run);
}

}  // namespace

absl::StatusOr<Explanation> ExplainPipelineFile(const ExplainRequest& request) {
  dag::LoadOptions load;
  load.param_overrides = request.params;
  TF_ASSIGN_OR_RETURN(dag::Pipeline pipeline, dag::LoadPipelineFile(request.file, load));
  TF_ASSIGN_OR_RETURN(dag::TaskGraph graph, dag::TaskGraph::Build(pipeline));
  std::error_code error;
  const std::string working_dir = fs::absolute(request.file, error).parent_path().string();
  Explanation explanation;
  explanation.pipeline = pipeline.name;
  explanation.file = request.file;
  std::unique_ptr<scheduler::Database> db;
  if (fs::exists(request.db_path, error)) {
    // Read only: a dry run changes nothing, not even the schema version.
    TF_ASSIGN_OR_RETURN(db, scheduler::OpenStoreReadOnly(request.db_path, /*oldest=*/1));
    explanation.store = true;
  }
  TF_ASSIGN_OR_RETURN(explanation.tasks,
                      scheduler::ExplainRun(db.get(), graph, working_dir,
                                            {.rerun = request.rerun,
                                             .rerun_downstream = request.rerun_downstream,
                                             .no_cache = request.no_cache}));
  return explanation;
}

void RenderExplainText(const Explanation& explanation, std::ostream& out) {
  size_t reuse = 0;
  for (const scheduler::TaskExplanation& task : explanation.tasks) reuse += task.reuse ? 1 : 0;
  out << "pipeline " << explanation.pipeline << ": " << explanation.tasks.size() << " tasks, "
      << explanation.tasks.size() - reuse << " would run, " << reuse << " would be reused"
      << (explanation.store ? "" : " (no store yet: no earlier runs)") << "\n";
  constexpr size_t kListed = 3;
  const auto& tasks = explanation.tasks;
  for (size_t i = 0; i < tasks.size();) {
    // A foreach stage's tasks with the same decision and reason.
    size_t end = i + 1;
    if (tasks[i].foreach) {
      while (end < tasks.size() && tasks[end].stage == tasks[i].stage &&
             tasks[end].reuse == tasks[i].reuse &&
             GroupReason(tasks[end]) == GroupReason(tasks[i])) {
        ++end;
      }
    }
    if (end - i > kListed) {
      const std::string& first = tasks[i].task_id;
      const std::string& last = tasks[end - 1].task_id;
      out << "  " << first.substr(0, first.size() - 1) << ".." << last.substr(last.find('[') + 1)
          << " (" << end - i << " tasks): " << (tasks[i].reuse ? "reuse" : "run") << ": "
          << GroupReason(tasks[i]) << "\n";
      i = end;
      continue;
    }
    for (; i < end; ++i) {
      out << "  " << tasks[i].task_id << ": " << (tasks[i].reuse ? "reuse" : "run") << ": "
          << tasks[i].reason << "\n";
    }
  }
}

void RenderExplainJson(const Explanation& explanation, std::ostream& out) {
  using json = nlohmann::json;
  json tasks = json::array();
  size_t reuse = 0;
  for (const scheduler::TaskExplanation& task : explanation.tasks) {
    json entry = {{"id", task.task_id},
                  {"stage", task.stage},
                  {"decision", task.reuse ? "reuse" : "run"},
                  {"reason", task.reason}};
    if (task.reuse) {
      ++reuse;
      entry["cached_from"] = {{"run", task.cached_from_run}, {"attempt", task.cached_from_attempt}};
    }
    tasks.push_back(std::move(entry));
  }
  json all = {{"pipeline", explanation.pipeline},
              {"file", explanation.file},
              {"store", explanation.store},
              {"totals", {{"run", explanation.tasks.size() - reuse}, {"reuse", reuse}}},
              {"tasks", std::move(tasks)}};
  out << all.dump() << '\n';
}

}  // namespace tierflow::api
