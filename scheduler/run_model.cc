#include "scheduler/internal/run_model.h"

#include <algorithm>
#include <cctype>

#include "common/diagnostic.h"
#include "common/status.h"
#include "dag/loader.h"
#include "scheduler/dynamic_expansion.h"

namespace tierflow::scheduler::internal {

std::vector<std::string> ItemComponents(const dag::Stage& stage) {
  std::vector<std::string> names;
  if (!stage.foreach) return names;
  bool safe = true;
  for (const std::string& item : *stage.foreach) {
    safe = safe && !item.empty() && item.size() <= 128 && item != "." && item != ".." &&
           item[0] != '.' && std::all_of(item.begin(), item.end(), [](char c) {
             return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
           });
  }
  for (size_t i = 0; i < stage.foreach->size(); ++i) {
    names.push_back(safe ? (*stage.foreach)[i] : StrCat("item-", std::to_string(i)));
  }
  return names;
}

absl::Status BuildRunModel(RunModel& run, const std::string& yaml, const std::string& file,
                           const std::map<std::string, std::string>& params) {
  dag::LoadOptions load;
  load.param_overrides = params;
  std::vector<Diagnostic> diagnostics;
  absl::StatusOr<dag::Pipeline> pipeline = dag::LoadPipelineText(yaml, file, load, &diagnostics);
  if (!pipeline.ok()) {
    if (diagnostics.empty()) return pipeline.status();
    SortDiagnostics(diagnostics);
    return DiagnosticsToStatus(diagnostics);
  }
  run.pipeline = std::move(*pipeline);
  TF_ASSIGN_OR_RETURN(dag::TaskGraph built, dag::TaskGraph::Build(run.pipeline));
  const dag::TaskGraph& graph = run.graph.emplace(std::move(built));

  const size_t stage_count = run.pipeline.stages.size();
  run.stages.resize(stage_count);
  for (uint32_t s = 0; s < stage_count; ++s) {
    run.stages[s].name = run.pipeline.stages[s].name;
    run.stages[s].item_components = ItemComponents(run.pipeline.stages[s]);
    run.stages[s].unfinished = static_cast<uint32_t>(run.pipeline.stages[s].TaskCount());
    if (run.pipeline.stages[s].Dynamic()) run.stages[s].unfinished = kUnexpandedPlaceholder;
  }
  // Bottom levels, sinks first: layers order stages topologically.
  std::vector<std::vector<uint32_t>> layers = graph.StageLayers();
  for (auto layer = layers.rbegin(); layer != layers.rend(); ++layer) {
    for (uint32_t s : *layer) {
      uint32_t level = 0;
      for (uint32_t child : graph.StageChildren(s)) {
        level = std::max(level, run.stages[child].bottom_level);
      }
      run.stages[s].bottom_level = level + 1;
    }
  }
  // Tasks in plan order (layer by layer, stages in file order, items in
  // foreach order); seq is that order.
  run.tasks.resize(graph.tasks().size());
  uint32_t seq = 0;
  for (const std::vector<uint32_t>& layer : layers) {
    for (uint32_t s : layer) {
      const uint32_t first = graph.FirstTask(s);
      for (uint32_t i = 0; i < run.pipeline.stages[s].TaskCount(); ++i) {
        TaskRec& rec = run.tasks[first + i];
        rec.stage = s;
        rec.item = i;
        rec.seq = seq++;
        rec.id = graph.TaskId(graph.tasks()[first + i]);
        rec.outputs.resize(run.pipeline.stages[s].outputs.size());
      }
    }
  }
  return absl::OkStatus();
}

std::vector<NewTask> NewTasks(const RunModel& run) {
  std::vector<NewTask> tasks;
  tasks.reserve(run.tasks.size());
  for (const TaskRec& task : run.tasks) {
    const dag::Stage& stage = run.pipeline.stages[task.stage];
    tasks.push_back(NewTask{.id = task.id,
                            .seq = task.seq,
                            .stage = stage.name,
                            .kind = dag::StageKindName(stage.kind),
                            .item = stage.foreach
                                        ? std::optional<std::string>((*stage.foreach)[task.item])
                                        : std::nullopt,
                            .item_index = task.item,
                            .layer = run.graph->StageLayer(task.stage)});
  }
  return tasks;
}

void SummarizeRun(const RunModel& run, RunResult& result) {
  result.run_id = run.run_id;
  for (uint32_t s = 0; s < run.stages.size(); ++s) {
    StageSummary summary;
    summary.stage = run.stages[s].name;
    summary.kind = std::string(dag::StageKindName(run.pipeline.stages[s].kind));
    summary.busy = run.stages[s].busy;
    result.stages.push_back(std::move(summary));
  }
  std::vector<uint32_t> order(run.tasks.size());
  for (uint32_t t = 0; t < run.tasks.size(); ++t) order[run.tasks[t].seq] = t;
  for (uint32_t t : order) {
    const TaskRec& task = run.tasks[t];
    StageSummary& summary = result.stages[task.stage];
    ++summary.tasks;
    if (task.state == TaskState::kSucceeded) ++summary.succeeded;
    if (task.state == TaskState::kCached) ++summary.cached;
    if (task.state == TaskState::kFailed) ++summary.failed;
    if (task.state == TaskState::kUpstreamFailed) ++summary.upstream_failed;
    if (task.state == TaskState::kCancelled) ++summary.cancelled;
    if (task.state == TaskState::kFailed) {
      result.failures.push_back({task.id, task.state, task.message, task.log_path});
    }
  }
}

}  // namespace tierflow::scheduler::internal
