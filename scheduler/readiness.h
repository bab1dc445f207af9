// Readiness by counting (engine.h, "Semantics"): a stage's tasks are ready
// once none of its parent stages has unfinished tasks, which is counted
// (StageRec::waiting_parents), never found by rescanning the graph. A task
// of a mapped stage waits, for its item-wise parents, only for their tasks
// with its own item (counted per item). Ready
// tasks wait in a queue that starts those on the longest remaining chain
// of stages first, then in plan order.
//
// Thread-safety: none; part of the engine's turn (engine.h, "Threading").
#pragma once

#include <cstdint>
#include <queue>
#include <vector>

namespace tierflow::scheduler::internal {

struct RunModel;

class ReadyQueue {
 public:
  // `run` outlives the queue.
  explicit ReadyQueue(RunModel& run) : run_(run), ready_(Order{&run}) {}

  // A run's start: counts each stage's parents with unfinished tasks; the
  // pending tasks of the stages that wait for none are ready.
  void Start();
  // Newly ready: it runs when a slot is free (newly_ready lists it).
  void Enqueue(uint32_t task);
  // Ready again (it waited for copies of its inputs): not newly ready.
  void Push(uint32_t task) { ready_.push(task); }
  // `stage` has no unfinished tasks left: the pending tasks of its
  // children that wait for no other parent stage are newly ready.
  void StageDone(uint32_t stage);
  // `task` succeeded (or was cached): the task with its item in each stage
  // mapped over its stage is newly ready once it waits for nothing else.
  void TaskDone(uint32_t task);
  // `stage` was expanded at run time (scheduler/dynamic_expansion.h), with
  // the other stages expanded with it: its tasks are counted as Start
  // counts them, and those that wait for nothing are newly ready.
  void StageExpanded(uint32_t stage);

  bool empty() const { return ready_.empty(); }
  uint32_t Pop() {
    const uint32_t task = ready_.top();
    ready_.pop();
    return task;
  }
  void Clear();
  // Made ready since the caller last cleared it (to be marked queued when
  // no slot takes them).
  std::vector<uint32_t>& newly_ready() { return newly_ready_; }

 private:
  struct Order {
    const RunModel* run;
    bool operator()(uint32_t a, uint32_t b) const;  // true: a runs after b
  };
  // A task of a mapped stage (dag::TaskGraph::Mapped) is ready once its
  // stage waits for no whole parent stage and its item for no item-wise
  // parent: item_waiting_[stage][item] counts those parents' tasks with its
  // item that are not done. Empty for the other stages, which are counted
  // by stage only.
  bool ItemReady(uint32_t stage, uint32_t item) const;
  // Sets item_waiting_[stage] from its item-wise parents' tasks.
  void CountItemParents(uint32_t stage);
  std::vector<std::vector<uint32_t>> item_waiting_;

  RunModel& run_;
  std::priority_queue<uint32_t, std::vector<uint32_t>, Order> ready_;
  std::vector<uint32_t> newly_ready_;
};

// The tasks that cannot run once `task` failed, each once: the task with
// its item in each stage mapped over its stage (and so on down that chain),
// and every task of any other stage downstream (a gather needs all items).
std::vector<uint32_t> DownstreamTasks(const RunModel& run, uint32_t task);

}  // namespace tierflow::scheduler::internal
