#include "scheduler/readiness.h"

#include "scheduler/internal/run_model.h"

namespace tierflow::scheduler::internal {

bool ReadyQueue::Order::operator()(uint32_t a, uint32_t b) const {
  const uint32_t la = run->stages[run->tasks[a].stage].bottom_level;
  const uint32_t lb = run->stages[run->tasks[b].stage].bottom_level;
  if (la != lb) return la < lb;
  return run->tasks[a].seq > run->tasks[b].seq;
}

void ReadyQueue::Start() {
  const dag::TaskGraph& graph = *run_.graph;
  for (uint32_t s = 0; s < run_.stages.size(); ++s) {
    for (uint32_t parent : graph.StageParents(s)) {
      if (run_.stages[parent].unfinished > 0) ++run_.stages[s].waiting_parents;
    }
  }
  for (uint32_t t = 0; t < run_.tasks.size(); ++t) {
    if (run_.tasks[t].state == TaskState::kPending &&
        run_.stages[run_.tasks[t].stage].waiting_parents == 0) {
      Enqueue(t);
    }
  }
}

void ReadyQueue::Enqueue(uint32_t task) {
  ready_.push(task);
  newly_ready_.push_back(task);
}

void ReadyQueue::StageDone(uint32_t stage) {
  for (uint32_t child : run_.graph->StageChildren(stage)) {
    if (--run_.stages[child].waiting_parents != 0) continue;
    const uint32_t first = run_.graph->FirstTask(child);
    for (uint32_t i = 0; i < run_.pipeline.stages[child].TaskCount(); ++i) {
      if (run_.tasks[first + i].state == TaskState::kPending) Enqueue(first + i);
    }
  }
}

void ReadyQueue::Clear() {
  ready_ = decltype(ready_)(Order{&run_});
  newly_ready_.clear();
}

std::vector<uint32_t> DownstreamStages(const RunModel& run, uint32_t stage) {
  std::vector<uint32_t> queue(run.graph->StageChildren(stage).begin(),
                              run.graph->StageChildren(stage).end());
  std::vector<bool> seen(run.stages.size(), false);
  std::vector<uint32_t> stages;
  while (!queue.empty()) {
    const uint32_t s = queue.back();
    queue.pop_back();
    if (seen[s]) continue;
    seen[s] = true;
    stages.push_back(s);
    for (uint32_t child : run.graph->StageChildren(s)) queue.push_back(child);
  }
  return stages;
}

}  // namespace tierflow::scheduler::internal
