#include "scheduler/plan.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_join.h"
#include "common/shell_words.h"
#include "common/strings.h"

namespace tierflow::scheduler {
namespace {

PlannedParam PlanParam(const dag::Param& param) {
  PlannedParam planned;
  planned.name = param.name;
  planned.type = param.type;
  planned.items = param.items;
  planned.value =
      param.type == dag::ParamType::kList ? absl::StrJoin(param.items, ",") : param.value;
  planned.overridden = param.overridden;
  return planned;
}

// Everything a task copies from its stage, written into the stage's first
// task; the stage's other tasks (foreach items) are copies of it, so a
// 100k-item foreach costs one copy per task, not one lookup per field.
void FillFromStage(const dag::TaskGraph& graph, uint32_t stage_index, PlannedTask& task) {
  const dag::Stage& stage = graph.pipeline().stages[stage_index];
  task.stage = stage.name;
  task.kind = stage.kind;
  task.layer = graph.StageLayer(stage_index);
  task.io = stage.io;
  task.resources = stage.resources;
  task.retries = stage.retries;
  task.timeout = stage.timeout;
  task.cache = stage.cache;
  task.tier = stage.tier;
  task.checkpoints = stage.checkpoints;
  task.dependencies = stage.Dependencies();
  task.foreach_over = stage.foreach_over;
  task.param_scope = stage.param_scope;
  task.params = stage.params;
  for (const dag::InputRef& input : stage.inputs) {
    task.inputs.push_back({input.name, input.stage, input.output, input.stream, input.each});
  }
  if (stage.run.is_shell()) {
    task.shell = stage.run.shell;
    ShellForm form = ClassifyShellCommand(task.shell);
    task.shell_direct = form.direct();
    task.why_shell = std::move(form.why_shell);
  }
  task.outputs.reserve(stage.outputs.size());
  for (const dag::OutputSpec& spec : stage.outputs) {
    task.outputs.push_back(
        PlannedOutput{spec.name, spec.size_hint, spec.durability.value_or(stage.io.durability)});
  }
}

}  // namespace

Plan BuildPlan(const dag::TaskGraph& graph, PlanDetail detail) {
  const dag::Pipeline& pipeline = graph.pipeline();
  Plan plan;
  plan.file = pipeline.file;
  plan.pipeline = pipeline.name;
  plan.description = pipeline.description;
  for (const dag::Param& param : pipeline.params) plan.params.push_back(PlanParam(param));
  plan.stage_count = static_cast<uint32_t>(pipeline.stages.size());
  plan.task_count = static_cast<uint32_t>(graph.tasks().size());

  std::vector<std::vector<uint32_t>> stage_layers = graph.StageLayers();
  plan.layers.resize(stage_layers.size());
  for (uint32_t l = 0; l < stage_layers.size(); ++l) {
    PlanLayer& layer = plan.layers[l];
    layer.index = l;
    size_t task_count = 0;
    // The tasks planned of stage s (PlanDetail::kPlacement plans one of a
    // stage whose tasks neither read nor write artifacts).
    auto planned_count = [&](uint32_t s) -> size_t {
      const dag::Stage& stage = pipeline.stages[s];
      const bool representative =
          detail == PlanDetail::kPlacement && stage.inputs.empty() && stage.outputs.empty();
      return representative ? std::min<size_t>(stage.TaskCount(), 1) : stage.TaskCount();
    };
    for (uint32_t s : stage_layers[l]) task_count += planned_count(s);
    layer.tasks.reserve(task_count);
    layer.stages.reserve(stage_layers[l].size());
    for (uint32_t s : stage_layers[l]) {
      const dag::Stage& stage = pipeline.stages[s];
      layer.stages.push_back(stage.name);
      if (stage.TaskCount() == 0) {
        // Dynamic, not expanded yet: its tasks are known at run time only.
        PlannedDynamicStage& dynamic = layer.dynamic.emplace_back();
        dynamic.stage = stage.name;
        if (stage.foreach_from) {
          dynamic.from = StrCat(stage.foreach_from->stage, ".", stage.foreach_from->output);
          dynamic.format =
              stage.foreach_from->format == dag::ItemListFormat::kJson ? "json" : "lines";
        } else {
          dynamic.over = stage.foreach_over;
        }
        continue;
      }
      // Built in place: most stages have one task, and a PlannedTask is
      // over 400 bytes to move.
      const size_t first_planned = layer.tasks.size();
      const size_t planned = planned_count(s);
      FillFromStage(graph, s, layer.tasks.emplace_back());
      for (size_t i = 1; i < planned; ++i) {
        // `tasks` has room reserved, so the reference stays valid.
        layer.tasks.push_back(layer.tasks[first_planned]);
      }
      const uint32_t first = graph.FirstTask(s);
      const uint32_t end = first + static_cast<uint32_t>(planned);
      for (uint32_t t = first; t < end; ++t) {
        const dag::Task& task = graph.tasks()[t];
        PlannedTask& planned = layer.tasks[first_planned + (t - first)];
        planned.id = graph.TaskId(task);
        if (stage.foreach) {
          planned.item = (*stage.foreach)[task.item];
          planned.item_index = task.item;
        }
        if (!stage.run.is_shell() && detail == PlanDetail::kFull) {
          planned.argv = graph.ResolveArgv(task);
        }
      }
    }
  }

  for (uint32_t s : graph.ComputeCriticalPath().stages) {
    plan.critical_path.push_back(pipeline.stages[s].name);
  }
  return plan;
}

}  // namespace tierflow::scheduler
