#include "scheduler/resume_check.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <unordered_map>

#include "absl/strings/str_join.h"
#include "common/status.h"
#include "common/strings.h"
#include "dag/graph.h"
#include "dag/loader.h"
#include "scheduler/cache_ingredients.h"
#include "scheduler/store.h"

namespace tierflow::scheduler {
namespace {

absl::StatusOr<dag::Pipeline> Load(std::string_view text, const std::string& file,
                                   const std::map<std::string, std::string>& params) {
  dag::LoadOptions load;
  load.param_overrides = params;
  return dag::LoadPipelineText(text, file, load);
}

CacheIngredients IngredientsOf(const dag::TaskGraph& graph, uint32_t t,
                               const std::string& working_dir, ScriptHashes& scripts) {
  const dag::Task& task = graph.tasks()[t];
  return MakeIngredients(graph.pipeline().stages[task.stage], graph.ResolveArgv(task),
                         graph.TaskEnvironment(task), working_dir, scripts);
}

}  // namespace

absl::StatusOr<std::vector<StaleTask>> StaleUnfinishedTasks(Database& db, const std::string& run_id,
                                                            const internal::StoredRun& stored) {
  std::error_code error;
  if (stored.file.empty() || !std::filesystem::is_regular_file(stored.file, error))
    return std::vector<StaleTask>();
  std::ifstream in(stored.file, std::ios::binary);
  std::stringstream read;
  read << in.rdbuf();
  if (!in) return std::vector<StaleTask>();  // unreadable: nothing to compare with
  const std::string text = read.str();
  if (text == stored.yaml) return std::vector<StaleTask>();
  absl::StatusOr<dag::Pipeline> now = Load(text, stored.file, stored.params);
  if (!now.ok()) {
    return absl::InvalidArgumentError(
        StrCat("run ", run_id, ": its pipeline file ", stored.file,
               " changed since the run started and no longer loads:\n", now.status().message()));
  }
  TF_ASSIGN_OR_RETURN(dag::Pipeline before, Load(stored.yaml, stored.file, stored.params));
  TF_ASSIGN_OR_RETURN(dag::TaskGraph now_graph, dag::TaskGraph::Build(*now));
  TF_ASSIGN_OR_RETURN(dag::TaskGraph before_graph, dag::TaskGraph::Build(before));

  TF_ASSIGN_OR_RETURN(Statement finished,
                      db.Prepare("SELECT id FROM tasks WHERE run_id = ? AND state IN (?, ?)"));
  finished.Bind(1, run_id)
      .Bind(2, TaskStateName(TaskState::kSucceeded))
      .Bind(3, TaskStateName(TaskState::kCached));
  std::set<std::string> done;
  for (;;) {
    TF_ASSIGN_OR_RETURN(bool row, finished.Step());
    if (!row) break;
    done.insert(finished.Text(0));
  }
  finished.Reset();

  std::unordered_map<std::string, uint32_t> now_ids;
  for (uint32_t t = 0; t < now_graph.tasks().size(); ++t) {
    now_ids.emplace(now_graph.TaskId(now_graph.tasks()[t]), t);
  }
  ScriptHashes scripts;  // the same files either way: scripts never differ here
  std::vector<StaleTask> stale;
  for (const std::vector<uint32_t>& layer : before_graph.StageLayers()) {
    for (uint32_t s : layer) {
      const uint32_t first = before_graph.FirstTask(s);
      for (uint32_t k = 0; k < before.stages[s].TaskCount(); ++k) {
        const std::string id = before_graph.TaskId(before_graph.tasks()[first + k]);
        if (done.count(id) > 0) continue;
        auto it = now_ids.find(id);
        if (it == now_ids.end()) {
          stale.push_back({id, "not in the file any more"});
          continue;
        }
        std::vector<std::string> reasons =
            MissReasons(IngredientsOf(now_graph, it->second, stored.working_dir, scripts),
                        IngredientsOf(before_graph, first + k, stored.working_dir, scripts), *now);
        if (!reasons.empty()) stale.push_back({id, absl::StrJoin(reasons, ", ")});
      }
    }
  }
  return stale;
}

absl::Status RefuseStaleResume(Database& db, const std::string& run_id,
                               const internal::StoredRun& stored) {
  TF_ASSIGN_OR_RETURN(std::vector<StaleTask> stale, StaleUnfinishedTasks(db, run_id, stored));
  if (stale.empty()) return absl::OkStatus();
  constexpr size_t kNamed = 5;
  std::vector<std::string> named;
  for (size_t i = 0; i < stale.size() && i < kNamed; ++i) {
    named.push_back(StrCat(stale[i].task_id, " (", stale[i].why, ")"));
  }
  return absl::FailedPreconditionError(StrCat(
      "run ", run_id, ": its pipeline file ", stored.file,
      " changed since the run started, for unfinished tasks: ", absl::StrJoin(named, ", "),
      stale.size() > kNamed ? StrCat(", and ", stale.size() - kNamed, " more") : std::string(),
      ". Resuming would run their old definition. `tierflow run ", stored.file,
      "` runs the file as it is now and reuses what succeeded; `tierflow resume ", run_id,
      " --force` resumes with the definition the run started with. Nothing was changed"));
}

}  // namespace tierflow::scheduler
