#include "scheduler/readiness.h"

#include <limits>
#include <span>
#include <unordered_set>
#include <utility>

#include "scheduler/internal/run_model.h"

namespace tierflow::scheduler::internal {

bool ReadyQueue::Order::operator()(uint32_t a, uint32_t b) const {
  const uint32_t la = run->stages[run->tasks[a].stage].bottom_level;
  const uint32_t lb = run->stages[run->tasks[b].stage].bottom_level;
  if (la != lb) return la < lb;
  return run->tasks[a].seq > run->tasks[b].seq;
}

void ReadyQueue::CountItemParents(uint32_t s) {
  const dag::TaskGraph& graph = *run_.graph;
  const std::span<const uint32_t> parents = graph.StageParents(s);
  const uint32_t items = static_cast<uint32_t>(run_.pipeline.stages[s].TaskCount());
  if (graph.Mapped(s)) item_waiting_[s].assign(items, 0);
  for (size_t k = 0; k < parents.size(); ++k) {
    const uint32_t parent = parents[k];
    if (!graph.ParentItemWise(s, k) || run_.stages[parent].unfinished == 0) continue;
    const uint32_t first = graph.FirstTask(parent);
    const uint32_t parent_items = static_cast<uint32_t>(run_.pipeline.stages[parent].TaskCount());
    for (uint32_t i = 0; i < items && i < parent_items; ++i) {
      if (!IsDone(run_.tasks[first + i].state)) ++item_waiting_[s][i];
    }
  }
}

void ReadyQueue::Start() {
  const dag::TaskGraph& graph = *run_.graph;
  item_waiting_.assign(run_.stages.size(), {});
  for (uint32_t s = 0; s < run_.stages.size(); ++s) {
    const std::span<const uint32_t> parents = graph.StageParents(s);
    for (size_t k = 0; k < parents.size(); ++k) {
      if (!graph.ParentItemWise(s, k) && run_.stages[parents[k]].unfinished > 0) {
        ++run_.stages[s].waiting_parents;
      }
    }
    CountItemParents(s);
  }
  for (uint32_t t = 0; t < run_.tasks.size(); ++t) {
    const TaskRec& task = run_.tasks[t];
    if (task.state == TaskState::kPending && run_.stages[task.stage].waiting_parents == 0 &&
        ItemReady(task.stage, task.item)) {
      Enqueue(t);
    }
  }
}

bool ReadyQueue::ItemReady(uint32_t stage, uint32_t item) const {
  const std::vector<uint32_t>& waiting = item_waiting_[stage];
  return item >= waiting.size() || waiting[item] == 0;
}

void ReadyQueue::Enqueue(uint32_t task) {
  ready_.push(task);
  newly_ready_.push_back(task);
}

void ReadyQueue::StageDone(uint32_t stage) {
  const std::span<const uint32_t> children = run_.graph->StageChildren(stage);
  for (size_t k = 0; k < children.size(); ++k) {
    const uint32_t child = children[k];
    if (run_.graph->ChildItemWise(stage, k)) continue;  // counted by TaskDone
    if (--run_.stages[child].waiting_parents != 0) continue;
    const uint32_t first = run_.graph->FirstTask(child);
    for (uint32_t i = 0; i < run_.pipeline.stages[child].TaskCount(); ++i) {
      if (run_.tasks[first + i].state == TaskState::kPending && ItemReady(child, i)) {
        Enqueue(first + i);
      }
    }
  }
}

void ReadyQueue::TaskDone(uint32_t task) {
  const uint32_t stage = run_.tasks[task].stage;
  const uint32_t item = run_.tasks[task].item;
  const std::span<const uint32_t> children = run_.graph->StageChildren(stage);
  for (size_t k = 0; k < children.size(); ++k) {
    if (!run_.graph->ChildItemWise(stage, k)) continue;
    const uint32_t child = children[k];
    std::vector<uint32_t>& waiting = item_waiting_[child];
    if (item >= waiting.size() || waiting[item] == 0 || --waiting[item] != 0) continue;
    const uint32_t t = run_.graph->FirstTask(child) + item;
    if (run_.stages[child].waiting_parents == 0 && run_.tasks[t].state == TaskState::kPending) {
      Enqueue(t);
    }
  }
}

void ReadyQueue::StageExpanded(uint32_t stage) {
  CountItemParents(stage);
  if (run_.stages[stage].waiting_parents != 0) return;
  const uint32_t first = run_.graph->FirstTask(stage);
  for (uint32_t i = 0; i < run_.pipeline.stages[stage].TaskCount(); ++i) {
    if (run_.tasks[first + i].state == TaskState::kPending && ItemReady(stage, i)) {
      Enqueue(first + i);
    }
  }
}

void ReadyQueue::Clear() {
  ready_ = decltype(ready_)(Order{&run_});
  newly_ready_.clear();
}

std::vector<uint32_t> DownstreamTasks(const RunModel& run, uint32_t task) {
  constexpr uint32_t kAllItems = std::numeric_limits<uint32_t>::max();
  const dag::TaskGraph& graph = *run.graph;
  std::vector<bool> whole(run.stages.size(), false);
  // A set, not a bit per task: a run of 100k items may see many failures.
  std::unordered_set<uint32_t> seen;
  std::vector<uint32_t> tasks;
  // (stage, item) whose tasks failed or cannot run: one item, or all.
  // A task of a stage without items (a single task, or the one that stands
  // for a dynamic stage whose list was bad) fails every item after it.
  const uint32_t failed_stage = run.tasks[task].stage;
  const uint32_t failed_item =
      run.pipeline.stages[failed_stage].foreach ? run.tasks[task].item : kAllItems;
  std::vector<std::pair<uint32_t, uint32_t>> work = {{failed_stage, failed_item}};
  auto add = [&](uint32_t t) {
    if (seen.insert(t).second) tasks.push_back(t);
  };
  while (!work.empty()) {
    const auto [stage, item] = work.back();
    work.pop_back();
    const std::span<const uint32_t> children = graph.StageChildren(stage);
    for (size_t k = 0; k < children.size(); ++k) {
      const uint32_t child = children[k];
      if (whole[child]) continue;
      const uint32_t first = graph.FirstTask(child);
      const uint32_t count = static_cast<uint32_t>(run.pipeline.stages[child].TaskCount());
      if (item != kAllItems && graph.ChildItemWise(stage, k)) {
        if (item >= count || seen.count(first + item) > 0) continue;
        add(first + item);
        work.emplace_back(child, item);
        continue;
      }
      whole[child] = true;
      for (uint32_t i = 0; i < count; ++i) add(first + i);
      work.emplace_back(child, kAllItems);
    }
  }
  return tasks;
}

}  // namespace tierflow::scheduler::internal
