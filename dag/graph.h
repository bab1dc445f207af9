// The pipeline as a graph: cycle detection (Boost.Graph names the cycles),
// foreach expansion into tasks, topological layers and the critical path.
//
// Tasks of one stage share that stage's dependencies (a reference to a
// foreach stage gathers all its items), so the graph is kept at stage level
// and tasks are expanded beside it: a pipeline of 100k tasks over a few
// stages costs 100k small Task records, not 100k x 100k edges.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/diagnostic.h"
#include "dag/pipeline.h"

namespace tierflow::dag {

// One dependency cycle as stage names, first repeated at the end: a, b, c, a.
using Cycle = std::vector<std::string>;

// One cycle per strongly connected group of stages (self-dependency
// included), stages ordered as the cycle runs. References to unknown stages
// are ignored here (validation reports them).
std::vector<Cycle> FindCycles(const Pipeline& pipeline);

struct Task {
  uint32_t stage = 0;  // index into Pipeline::stages
  uint32_t item = 0;   // index into the stage's foreach items; 0 otherwise
};

// The variable that lists a task's withheld params, comma-separated.
inline constexpr std::string_view kWithheldParamsVariable = "TIERFLOW_WITHHELD_PARAMS";

class TaskGraph {
 public:
  // Fails with InvalidArgument naming the cycle if the pipeline has one.
  static absl::StatusOr<TaskGraph> Build(const Pipeline& pipeline);

  const Pipeline& pipeline() const { return *pipeline_; }
  const std::vector<Task>& tasks() const { return tasks_; }

  // "stage" or, for foreach stages, "stage[item]".
  std::string TaskId(const Task& task) const;

  // Stage indices this stage depends on / that depend on it, each in stage
  // order, without repeats.
  std::span<const uint32_t> StageParents(uint32_t stage) const {
    return Slice(parents_, parent_offsets_, stage);
  }
  std::span<const uint32_t> StageChildren(uint32_t stage) const {
    return Slice(children_, child_offsets_, stage);
  }

  // Whether `child` reads its parent StageChildren(parent)[k] only
  // item-wise (every reference to it an `each` input): each task of the
  // child waits for the parent's task with its own item, not for the whole
  // stage. Parallel to StageChildren / StageParents.
  bool ChildItemWise(uint32_t parent, size_t k) const {
    return child_item_wise_[child_offsets_[parent] + k] != 0;
  }
  bool ParentItemWise(uint32_t child, size_t k) const {
    return parent_item_wise_[parent_offsets_[child] + k] != 0;
  }
  // Has an item-wise parent: its tasks become ready one by one.
  bool Mapped(uint32_t stage) const { return mapped_[stage] != 0; }

  // The producer tasks a task reads for its stage's input `input`: every
  // task of a gathered stage, or for an `each` input the one with the
  // task's own item; {0, 0} when the producer is unknown.
  struct ProducerRange {
    uint32_t first = 0;
    uint32_t count = 0;
  };
  ProducerRange InputProducers(uint32_t task, size_t input) const;
  // The stage input `input` of `stage` reads; -1 when unknown.
  int64_t InputStage(uint32_t stage, size_t input) const {
    const uint32_t at = input_offsets_[stage] + static_cast<uint32_t>(input);
    return input_stage_[at] == kNoStage ? -1 : int64_t{input_stage_[at]};
  }

  // Layer of each stage: 0 for stages without dependencies, else one more
  // than the deepest parent. Every task of a stage sits in its stage's layer.
  uint32_t StageLayer(uint32_t stage) const { return stage_layer_[stage]; }
  uint32_t LayerCount() const { return layer_count_; }
  // Stage indices per layer, each layer in file order.
  std::vector<std::vector<uint32_t>> StageLayers() const;
  // Index of the first task of `stage` in tasks(); its tasks are contiguous.
  uint32_t FirstTask(uint32_t stage) const { return first_task_[stage]; }
  // A dynamic stage expanded at run time (its Stage::foreach now set, or
  // one task for a list that could not be read): `count` tasks appended at
  // the end of tasks(), which FirstTask(stage) then points at. Returns
  // that index.
  uint32_t AppendStageTasks(uint32_t stage, uint32_t count);

  struct CriticalPath {
    std::vector<uint32_t> stages;  // from a root to a sink
    double weight = 0;
  };
  // Heaviest root-to-sink chain where a stage weighs stage_weight(stage)
  // (default: 1 per stage, i.e. the longest chain).
  CriticalPath ComputeCriticalPath(
      const std::function<double(uint32_t stage)>& stage_weight = {}) const;

  // Resolved command of a task: `{{ params.NAME }}` and `{{ item }}` in argv
  // elements substituted; shell commands are returned unchanged.
  std::vector<std::string> ResolveArgv(const Task& task) const;

  // Environment the task contract gives the command for params and item:
  // TIERFLOW_PARAM_<NAME> for the stage's params only (Stage::params; list
  // params joined by commas), TIERFLOW_ITEM, TIERFLOW_ITEM_INDEX, plus the
  // stage's declared env. The task cache keys on it.
  std::vector<std::pair<std::string, std::string>> TaskEnvironment(const Task& task) const;

  // The pipeline's params the task's stage does not see, by name, in the
  // pipeline's order: TIERFLOW_WITHHELD_PARAMS (kWithheldParamsVariable),
  // so the SDK can say how to declare one. Names only, never values, and
  // not in TaskEnvironment: a param the stage does not use must not change
  // its cache key.
  std::vector<std::string> WithheldParams(const Task& task) const;

 private:
  static std::span<const uint32_t> Slice(const std::vector<uint32_t>& items,
                                         const std::vector<uint32_t>& offsets, uint32_t stage) {
    return std::span<const uint32_t>(items.data() + offsets[stage],
                                     offsets[stage + 1] - offsets[stage]);
  }

  static constexpr uint32_t kNoStage = std::numeric_limits<uint32_t>::max();

  const Pipeline* pipeline_ = nullptr;
  std::vector<Task> tasks_;
  // Adjacency in compressed rows: the parents of stage s are
  // parents_[parent_offsets_[s] .. parent_offsets_[s + 1]), likewise children.
  // Two flat arrays instead of a vector per stage: 100k stages cost four
  // allocations, not 200k.
  std::vector<uint32_t> parent_offsets_;
  std::vector<uint32_t> parents_;
  std::vector<uint32_t> child_offsets_;
  std::vector<uint32_t> children_;
  std::vector<uint8_t> child_item_wise_;   // parallel to children_
  std::vector<uint8_t> parent_item_wise_;  // parallel to parents_
  std::vector<uint8_t> mapped_;            // by stage
  // The producing stage of every stage's inputs, stage after stage:
  // input i of stage s is input_stage_[input_offsets_[s] + i].
  std::vector<uint32_t> input_offsets_;
  std::vector<uint32_t> input_stage_;
  std::vector<uint32_t> stage_layer_;
  std::vector<uint32_t> first_task_;
  uint32_t layer_count_ = 0;
};

}  // namespace tierflow::dag
