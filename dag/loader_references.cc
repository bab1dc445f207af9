// The pipeline loader's last pass, once every stage is read: each `needs`
// and input names a stage (and an output of it) that exists, with a
// did-you-mean over the stage names when not, and the stages form no
// cycle. Part of the Loader (dag/internal/loader_internal.h).
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_join.h"
#include "common/strings.h"
#include "common/suggest.h"
#include "common/yaml_fields.h"
#include "dag/graph.h"
#include "dag/internal/loader_internal.h"

namespace tierflow::dag::internal {
namespace {

// Did-you-mean over thousands of stage names costs an edit distance per
// name; this bounds the total for a file with very many unknown references.
constexpr uint64_t kSuggestionBudget = 200'000'000;

// "a -> b -> c -> a"; a cycle through thousands of stages is cut short to
// stay one readable line.
std::string CycleText(const Cycle& cycle) {
  constexpr size_t kEnds = 12;  // stages shown at each end
  if (cycle.size() <= 2 * kEnds + 1) return absl::StrJoin(cycle, " -> ");
  const std::vector<std::string> head(cycle.begin(), cycle.begin() + kEnds);
  const std::vector<std::string> tail(cycle.end() - kEnds, cycle.end());
  return StrCat(absl::StrJoin(head, " -> "), " -> ... ", cycle.size() - 2 * kEnds, " more ... -> ",
                absl::StrJoin(tail, " -> "));
}

}  // namespace

// What to say after "stage 'x' has no output 'y'": the output meant, or
// the outputs there are.
std::string MissingOutputHint(const Stage& from, std::string_view output) {
  std::vector<std::string> outputs;
  outputs.reserve(from.outputs.size());
  for (const OutputSpec& declared : from.outputs) outputs.push_back(declared.name);
  std::string hint = DidYouMean(output, outputs);
  if (!hint.empty()) return hint;
  constexpr size_t kListed = 10;
  if (outputs.empty()) return " (it declares no outputs)";
  if (outputs.size() <= kListed)
    return StrCat(" (its outputs: ", absl::StrJoin(outputs, ", "), ")");
  outputs.resize(kListed);
  return StrCat(" (its outputs: ", absl::StrJoin(outputs, ", "), ", ...)");
}

std::string Loader::SuggestStage(std::string_view name) {
  if (stage_names_.empty()) {
    stage_names_.reserve(pipeline_.stages.size());
    for (const Stage& stage : pipeline_.stages) stage_names_.push_back(stage.name);
  }
  const uint64_t cost = stage_names_.size() * (name.size() + 1) * (name.size() + 1);
  if (suggestion_work_ + cost <= kSuggestionBudget) {
    suggestion_work_ += cost;
    return Hint(ClosestMatch(name, stage_names_));
  }
  // Past the budget only the commonest typo is still looked for, at the
  // cost of a few lookups: two adjacent letters swapped.
  std::string swapped(name);
  for (size_t i = 0; i + 1 < swapped.size(); ++i) {
    if (swapped[i] == swapped[i + 1]) continue;
    std::swap(swapped[i], swapped[i + 1]);
    if (stage_index_.contains(swapped)) return Hint(swapped);
    std::swap(swapped[i], swapped[i + 1]);
  }
  return "";
}

void Loader::CheckReferences() {
  const FieldPath root;
  const FieldPath stages_path = root.Key("stages");
  for (size_t s = 0; s < pipeline_.stages.size(); ++s) {
    const FieldPath stage_path = stages_path.Key(sources_[s].name);
    CheckNeeds(static_cast<uint32_t>(s), stage_path);
    CheckInputs(static_cast<uint32_t>(s), stage_path);
    CheckForeachFrom(static_cast<uint32_t>(s), stage_path);
  }
}

void Loader::CheckNeeds(uint32_t s, const FieldPath& stage_path) {
  const Stage& stage = pipeline_.stages[s];
  const StageSource& source = sources_[s];
  const FieldPath needs_path = stage_path.Key("needs");
  for (size_t i = 0; i < source.needs.size(); ++i) {
    const StageSource::Need& need = source.needs[i];
    if (need.name == stage.name) {
      Error(need.node, needs_path.Index(i),
            StrCat("stage ", Quote(stage.name), " cannot depend on itself"));
      reference_errors_ = true;
    } else if (auto parent = stage_index_.find(need.name); parent != stage_index_.end()) {
      edges_.emplace_back(parent->second, s);
    } else {
      Error(need.node, needs_path.Index(i),
            StrCat("unknown stage ", Quote(need.name), SuggestStage(need.name)));
      reference_errors_ = true;
    }
  }
}

void Loader::CheckInputs(uint32_t s, const FieldPath& stage_path) {
  const Stage& stage = pipeline_.stages[s];
  const StageSource& source = sources_[s];
  const FieldPath inputs_path = stage_path.Key("inputs");
  for (size_t i = 0; i < stage.inputs.size(); ++i) {
    const InputRef& input = stage.inputs[i];
    const YamlNode& at = source.input_refs[i];
    const FieldPath input_path = inputs_path.Key(input.name);
    const FieldPath from_path = input_path.Key("from");
    const FieldPath& path = source.input_from_map[i] ? from_path : input_path;
    if (input.stage == stage.name) {
      Error(at, path, StrCat("stage ", Quote(stage.name), " cannot take input from itself"));
      reference_errors_ = true;
      continue;
    }
    auto producer = stage_index_.find(input.stage);
    if (producer == stage_index_.end()) {
      Error(at, path,
            StrCat("unknown stage ", Quote(input.stage), " in ", Quote(at.Scalar()),
                   SuggestStage(input.stage)));
      reference_errors_ = true;
      continue;
    }
    edges_.emplace_back(producer->second, s);
    if (!sources_[producer->second].outputs_known) continue;
    const Stage& from = pipeline_.stages[producer->second];
    if (std::any_of(from.outputs.begin(), from.outputs.end(),
                    [&](const OutputSpec& output) { return output.name == input.output; })) {
      continue;
    }
    Error(at, path,
          StrCat("stage ", Quote(from.name), " has no output ", Quote(input.output),
                 MissingOutputHint(from, input.output)));
    reference_errors_ = true;
  }
}

// Kahn's algorithm over stage indices. Most pipelines have no cycle, and
// this answers for them in a fraction of FindCycles' time, which then only
// runs to name the cycles of a pipeline that has them.
bool Loader::HasCycle() const {
  const size_t n = pipeline_.stages.size();
  // Children of stage s: children[first_child[s] .. first_child[s + 1]).
  std::vector<uint32_t> first_child(n + 1, 0);
  std::vector<uint32_t> missing_parents(n, 0);
  for (const auto& [parent, child] : edges_) {
    ++first_child[parent + 1];
    ++missing_parents[child];
  }
  for (size_t s = 0; s < n; ++s) first_child[s + 1] += first_child[s];
  std::vector<uint32_t> children(edges_.size());
  std::vector<uint32_t> next(first_child.begin(), first_child.end() - 1);
  for (const auto& [parent, child] : edges_) children[next[parent]++] = child;
  std::vector<uint32_t> ready;
  ready.reserve(n);
  for (size_t s = 0; s < n; ++s) {
    if (missing_parents[s] == 0) ready.push_back(static_cast<uint32_t>(s));
  }
  for (size_t done = 0; done < ready.size(); ++done) {
    const uint32_t s = ready[done];
    for (uint32_t c = first_child[s]; c < first_child[s + 1]; ++c) {
      if (--missing_parents[children[c]] == 0) ready.push_back(children[c]);
    }
  }
  return ready.size() < n;
}

void Loader::CheckCycles() {
  if (pipeline_.stages.empty() || !HasCycle()) return;
  const FieldPath root;
  const FieldPath stages_path = root.Key("stages");
  for (const Cycle& cycle : FindCycles(pipeline_)) {
    if (cycle.size() < 2) continue;
    // FindCycles runs along the data flow: in a -> b -> c -> a, stage a
    // depends on c. Point at that dependency, the one closing the loop in a.
    auto found = stage_index_.find(cycle.front());
    if (found == stage_index_.end()) continue;
    const std::string& closing = cycle[cycle.size() - 2];
    const Stage& stage = pipeline_.stages[found->second];
    const StageSource& source = sources_[found->second];
    const FieldPath stage_path = stages_path.Key(source.name);
    const std::string message = StrCat("dependency cycle: ", CycleText(cycle));
    bool reported = false;
    for (const StageSource::Need& need : source.needs) {
      if (need.name == closing) {
        Error(need.node, stage_path.Key("needs"), message);
        reported = true;
        break;
      }
    }
    for (size_t i = 0; !reported && i < stage.inputs.size(); ++i) {
      if (stage.inputs[i].stage == closing) {
        const FieldPath inputs_path = stage_path.Key("inputs");
        Error(source.input_refs[i], inputs_path.Key(stage.inputs[i].name), message);
        reported = true;
      }
    }
    if (!reported) ErrorAt(stage.location.line, stage.location.column, stage_path, message);
  }
}

}  // namespace tierflow::dag::internal
