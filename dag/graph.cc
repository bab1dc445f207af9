#include "dag/graph.h"

#include <algorithm>
#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/strong_components.hpp>
#include <deque>
#include <limits>
#include <unordered_map>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_join.h"
#include "common/strings.h"

namespace tierflow::dag {
namespace {

// Edges run from a stage to the stages that depend on it.
using StageGraph = boost::adjacency_list<boost::vecS, boost::vecS, boost::directedS>;

StageGraph BuildStageGraph(const Pipeline& pipeline) {
  std::unordered_map<std::string_view, uint32_t> index;
  index.reserve(pipeline.stages.size());
  for (uint32_t i = 0; i < pipeline.stages.size(); ++i) index.emplace(pipeline.stages[i].name, i);
  StageGraph graph(pipeline.stages.size());
  for (uint32_t child = 0; child < pipeline.stages.size(); ++child) {
    for (const std::string& dep : pipeline.stages[child].Dependencies()) {
      auto it = index.find(dep);
      if (it != index.end()) boost::add_edge(it->second, child, graph);
    }
  }
  return graph;
}

// Shortest path from `start` back to itself through vertices of `component`
// only (breadth-first, so the reported cycle has no detours).
std::vector<uint32_t> CycleThrough(const StageGraph& graph, uint32_t start,
                                   const std::vector<int>& component) {
  const int target = component[start];
  std::vector<int64_t> came_from(boost::num_vertices(graph), -1);
  std::deque<uint32_t> queue{start};
  while (!queue.empty()) {
    uint32_t v = queue.front();
    queue.pop_front();
    for (auto [e, end] = boost::out_edges(v, graph); e != end; ++e) {
      auto next = static_cast<uint32_t>(boost::target(*e, graph));
      if (component[next] != target) continue;
      if (next == start) {
        std::vector<uint32_t> path{start};
        for (uint32_t at = v; at != start; at = static_cast<uint32_t>(came_from[at])) {
          path.push_back(at);
        }
        std::reverse(path.begin() + 1, path.end());
        path.push_back(start);
        return path;
      }
      if (came_from[next] != -1) continue;
      came_from[next] = v;
      queue.push_back(next);
    }
  }
  return {};
}

// Replaces `{{ params.NAME }}` and `{{ item }}` in one argument.
std::string Substitute(std::string_view arg, const Pipeline& pipeline, const std::string* item) {
  std::string out;
  while (true) {
    size_t open = arg.find("{{");
    if (open == std::string_view::npos) break;
    size_t close = arg.find("}}", open + 2);
    if (close == std::string_view::npos) break;
    out.append(arg.substr(0, open));
    std::string_view expr = TrimWhitespace(arg.substr(open + 2, close - open - 2));
    if (expr == "item" && item != nullptr) {
      out.append(*item);
    } else if (const Param* param =
                   expr.starts_with("params.") ? pipeline.FindParam(expr.substr(7)) : nullptr) {
      out.append(param->type == ParamType::kList ? absl::StrJoin(param->items, ",") : param->value);
    } else {
      // The loader rejects unknown templates; keep the text if one slips by.
      out.append(arg.substr(open, close + 2 - open));
    }
    arg.remove_prefix(close + 2);
  }
  out.append(arg);
  return out;
}

std::vector<Cycle> CyclesIn(const StageGraph& graph, const Pipeline& pipeline) {
  const size_t n = boost::num_vertices(graph);
  std::vector<int> component(n);
  int count = boost::strong_components(
      graph,
      boost::make_iterator_property_map(component.begin(), boost::get(boost::vertex_index, graph)));
  std::vector<int> size(count, 0);
  for (int c : component) ++size[c];

  std::vector<Cycle> cycles;
  std::vector<bool> reported(count, false);
  // Walk in file order so each cycle starts at its first-defined stage.
  for (uint32_t v = 0; v < n; ++v) {
    int c = component[v];
    if (reported[c]) continue;
    bool self_loop = boost::edge(v, v, graph).second;
    if (size[c] < 2 && !self_loop) continue;
    reported[c] = true;
    Cycle cycle;
    for (uint32_t s : CycleThrough(graph, v, component)) cycle.push_back(pipeline.stages[s].name);
    cycles.push_back(std::move(cycle));
  }
  return cycles;
}

}  // namespace

std::vector<Cycle> FindCycles(const Pipeline& pipeline) {
  return CyclesIn(BuildStageGraph(pipeline), pipeline);
}

absl::StatusOr<TaskGraph> TaskGraph::Build(const Pipeline& pipeline) {
  const size_t n = pipeline.stages.size();
  TaskGraph result;
  result.pipeline_ = &pipeline;

  // The edges come straight from the stages' names, without Boost and
  // without copying names as Stage::Dependencies() does: at 100k stages and
  // 300k references, looking names up is most of the work here. The first
  // stage of a name wins, as in BuildStageGraph; unknown names are ignored.
  // The index keys are the names copied side by side, so that comparing a
  // key reads this small block instead of a ~500-byte Stage per lookup.
  size_t name_bytes = 0;
  for (const Stage& stage : pipeline.stages) name_bytes += stage.name.size();
  std::string names;
  names.reserve(name_bytes);
  for (const Stage& stage : pipeline.stages) names += stage.name;
  absl::flat_hash_map<std::string_view, uint32_t> index;
  index.reserve(n);
  size_t at = 0;
  for (uint32_t s = 0; s < n; ++s) {
    const size_t size = pipeline.stages[s].name.size();
    index.try_emplace(std::string_view(names).substr(at, size), s);
    at += size;
  }
  // Each stage's parents in mention order, stage after stage. mark[p] == c
  // once p is recorded for c: a stage naming a parent twice (in `needs` and
  // in an input, say) gets one edge.
  // mentioned_each[j]: every mention of parent mentioned[j] is an `each`
  // input (an item-wise edge); slot[p]: where p sits in `mentioned`.
  std::vector<uint32_t> mentioned;
  std::vector<uint8_t> mentioned_each;
  std::vector<uint32_t> mentioned_end(n, 0);
  result.child_offsets_.assign(n + 1, 0);
  result.input_offsets_.assign(n + 1, 0);
  result.mapped_.assign(n, 0);
  std::vector<uint32_t> mark(n, std::numeric_limits<uint32_t>::max());
  std::vector<uint32_t> slot(n, 0);
  for (uint32_t child = 0; child < n; ++child) {
    const Stage& stage = pipeline.stages[child];
    auto add = [&](const std::string& name, bool each) -> uint32_t {
      auto it = index.find(name);
      if (it == index.end()) return kNoStage;
      if (mark[it->second] == child) {
        mentioned_each[slot[it->second]] &= each ? 1 : 0;
        return it->second;
      }
      mark[it->second] = child;
      slot[it->second] = static_cast<uint32_t>(mentioned.size());
      mentioned.push_back(it->second);
      mentioned_each.push_back(each ? 1 : 0);
      ++result.child_offsets_[it->second + 1];
      return it->second;
    };
    for (const std::string& need : stage.needs) add(need, false);
    for (const InputRef& input : stage.inputs) {
      result.input_stage_.push_back(add(input.stage, input.each));
    }
    result.input_offsets_[child + 1] = static_cast<uint32_t>(result.input_stage_.size());
    if (stage.foreach_from) add(stage.foreach_from->stage, false);
    // A map over a dynamic stage expands with it: its items wait for theirs.
    if (stage.dynamic && !stage.foreach_over.empty()) add(stage.foreach_over, true);
    mentioned_end[child] = static_cast<uint32_t>(mentioned.size());
  }
  index = {};
  names = {};
  mark = {};
  slot = {};

  // Both directions in compressed rows, by counting sort. Walking children
  // in stage order fills every parent's children in stage order; walking
  // parents in stage order then does the same for every child's parents.
  for (size_t s = 0; s < n; ++s) result.child_offsets_[s + 1] += result.child_offsets_[s];
  result.children_.resize(mentioned.size());
  result.child_item_wise_.resize(mentioned.size());
  std::vector<uint32_t> next(result.child_offsets_.begin(), result.child_offsets_.end() - 1);
  result.parent_offsets_.assign(n + 1, 0);
  for (uint32_t child = 0, i = 0; child < n; ++child) {
    result.parent_offsets_[child + 1] = mentioned_end[child];
    for (; i < mentioned_end[child]; ++i) {
      result.child_item_wise_[next[mentioned[i]]] = mentioned_each[i];
      result.children_[next[mentioned[i]]++] = child;
      if (mentioned_each[i] != 0) result.mapped_[child] = 1;
    }
  }
  mentioned = {};
  mentioned_each = {};
  mentioned_end = {};
  result.parents_.resize(result.children_.size());
  result.parent_item_wise_.resize(result.children_.size());
  next.assign(result.parent_offsets_.begin(), result.parent_offsets_.end() - 1);
  for (uint32_t parent = 0; parent < n; ++parent) {
    const std::span<const uint32_t> children = result.StageChildren(parent);
    for (size_t k = 0; k < children.size(); ++k) {
      result.parent_item_wise_[next[children[k]]] = result.ChildItemWise(parent, k) ? 1 : 0;
      result.parents_[next[children[k]]++] = parent;
    }
  }

  // Kahn's algorithm: a stage is ready once all its parents are placed, and
  // sits one layer below its deepest parent. Stages never placed lie on or
  // behind a cycle, which the (slower) Boost search then names.
  std::vector<uint32_t> missing_parents(n);
  std::vector<uint32_t> ready;
  ready.reserve(n);
  for (uint32_t s = 0; s < n; ++s) {
    missing_parents[s] = static_cast<uint32_t>(result.StageParents(s).size());
    if (missing_parents[s] == 0) ready.push_back(s);
  }
  result.stage_layer_.assign(n, 0);
  for (size_t done = 0; done < ready.size(); ++done) {
    const uint32_t s = ready[done];
    const uint32_t layer = result.stage_layer_[s];
    result.layer_count_ = std::max(result.layer_count_, layer + 1);
    for (uint32_t child : result.StageChildren(s)) {
      result.stage_layer_[child] = std::max(result.stage_layer_[child], layer + 1);
      if (--missing_parents[child] == 0) ready.push_back(child);
    }
  }
  if (ready.size() < n) {
    std::vector<Cycle> cycles = FindCycles(pipeline);
    return absl::InvalidArgumentError(
        StrCat(pipeline.file, ": dependency cycle: ", absl::StrJoin(cycles.front(), " -> ")));
  }

  size_t task_count = 0;
  for (const Stage& stage : pipeline.stages) task_count += stage.TaskCount();
  result.tasks_.reserve(task_count);
  result.first_task_.resize(n);
  for (uint32_t s = 0; s < n; ++s) {
    result.first_task_[s] = static_cast<uint32_t>(result.tasks_.size());
    const uint32_t items = static_cast<uint32_t>(pipeline.stages[s].TaskCount());
    for (uint32_t i = 0; i < items; ++i) result.tasks_.push_back(Task{s, i});
  }
  return result;
}

TaskGraph::ProducerRange TaskGraph::InputProducers(uint32_t task, size_t input) const {
  const Task& reader = tasks_[task];
  const int64_t producer = InputStage(reader.stage, input);
  if (producer < 0) return {};
  const uint32_t first = first_task_[producer];
  const size_t count = pipeline_->stages[producer].TaskCount();
  if (!pipeline_->stages[reader.stage].inputs[input].each) {
    return {first, static_cast<uint32_t>(count)};
  }
  // Item-wise: the producer's item with the reader's index (the loader
  // gives them the same items in the same order).
  if (reader.item >= count) return {};
  return {first + reader.item, 1};
}

uint32_t TaskGraph::AppendStageTasks(uint32_t stage, uint32_t count) {
  const auto first = static_cast<uint32_t>(tasks_.size());
  tasks_.reserve(tasks_.size() + count);
  for (uint32_t i = 0; i < count; ++i) tasks_.push_back(Task{stage, i});
  first_task_[stage] = first;
  return first;
}

std::string TaskGraph::TaskId(const Task& task) const {
  const Stage& stage = pipeline_->stages[task.stage];
  if (!stage.foreach) return stage.name;
  return StrCat(stage.name, "[", (*stage.foreach)[task.item], "]");
}

std::vector<std::vector<uint32_t>> TaskGraph::StageLayers() const {
  std::vector<std::vector<uint32_t>> layers(layer_count_);
  for (uint32_t s = 0; s < stage_layer_.size(); ++s) layers[stage_layer_[s]].push_back(s);
  return layers;
}

TaskGraph::CriticalPath TaskGraph::ComputeCriticalPath(
    const std::function<double(uint32_t stage)>& stage_weight) const {
  const size_t n = stage_layer_.size();
  CriticalPath path;
  if (n == 0) return path;
  // Layers order stages topologically: every parent sits in a lower layer.
  std::vector<double> best(n, 0);
  std::vector<int64_t> via(n, -1);
  int64_t heaviest = -1;
  for (const std::vector<uint32_t>& layer : StageLayers()) {
    for (uint32_t s : layer) {
      double upstream = 0;
      for (uint32_t parent : StageParents(s)) {
        if (via[s] == -1 || best[parent] > upstream) {
          upstream = best[parent];
          via[s] = parent;
        }
      }
      best[s] = upstream + (stage_weight ? stage_weight(s) : 1.0);
      if (heaviest == -1 || best[s] > best[heaviest]) heaviest = s;
    }
  }
  path.weight = best[heaviest];
  for (int64_t at = heaviest; at != -1; at = via[at]) {
    path.stages.push_back(static_cast<uint32_t>(at));
  }
  std::reverse(path.stages.begin(), path.stages.end());
  return path;
}

std::vector<std::string> TaskGraph::ResolveArgv(const Task& task) const {
  const Stage& stage = pipeline_->stages[task.stage];
  const std::string* item = stage.foreach ? &(*stage.foreach)[task.item] : nullptr;
  std::vector<std::string> argv;
  argv.reserve(stage.run.argv.size());
  for (const std::string& arg : stage.run.argv) argv.push_back(Substitute(arg, *pipeline_, item));
  return argv;
}

std::vector<std::pair<std::string, std::string>> TaskGraph::TaskEnvironment(
    const Task& task) const {
  const Stage& stage = pipeline_->stages[task.stage];
  std::vector<std::pair<std::string, std::string>> env;
  // Both lists are in the pipeline's order: one walk matches them.
  auto seen = stage.params.begin();
  for (const Param& param : pipeline_->params) {
    if (seen == stage.params.end() || *seen != param.name) continue;
    ++seen;
    env.emplace_back(
        StrCat("TIERFLOW_PARAM_", AsciiUpper(param.name)),
        param.type == ParamType::kList ? absl::StrJoin(param.items, ",") : param.value);
  }
  if (stage.foreach) {
    env.emplace_back("TIERFLOW_ITEM", (*stage.foreach)[task.item]);
    env.emplace_back("TIERFLOW_ITEM_INDEX", StrCat(task.item));
  }
  for (const auto& [name, value] : stage.env) env.emplace_back(name, value);
  return env;
}

std::vector<std::string> TaskGraph::WithheldParams(const Task& task) const {
  const Stage& stage = pipeline_->stages[task.stage];
  std::vector<std::string> withheld;
  auto seen = stage.params.begin();
  for (const Param& param : pipeline_->params) {
    if (seen != stage.params.end() && *seen == param.name) {
      ++seen;
    } else {
      withheld.push_back(param.name);
    }
  }
  return withheld;
}

}  // namespace tierflow::dag
