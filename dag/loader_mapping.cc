// The pipeline loader's item-wise mapping (docs/pipeline-format.md
// "Fan-out"): `foreach: {over: STAGE}` and inputs `{from: ..., each: true}`.
// A mapped stage has the items of the stage it maps over, and each input
// from a stage with those same items reads only the producer task with the
// task's own item (InputRef::each). Resolved once every stage is read, so
// the order of stages in the file does not matter. Part of the Loader
// (dag/internal/loader_internal.h).
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "common/strings.h"
#include "common/yaml_fields.h"
#include "dag/internal/loader_internal.h"

namespace tierflow::dag::internal {
namespace {

bool IsTrue(std::string_view text) { return text == "true" || text == "True" || text == "TRUE"; }

}  // namespace

bool HasEachInput(const YamlNode& inputs) {
  if (!inputs.IsMap()) return false;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const YamlNode value = inputs.entry(i).value;
    if (!value.IsMap()) continue;
    const YamlNode each = value.Find("each");
    if (each.IsScalar() && IsTrue(each.Scalar())) return true;
  }
  return false;
}

void Loader::ReadForeachOver(const YamlNode& node, const FieldPath& path, StageSource* source) {
  bool ok = true;
  for (size_t i = 0; i < node.size(); ++i) {
    const YamlNode::Entry entry = node.entry(i);
    if (entry.key.IsScalar() && entry.key.Scalar() == "over") continue;
    const std::string_view key = entry.key.IsScalar() ? entry.key.Scalar() : "?";
    Error(entry.key, path.Key(key),
          StrCat("'over' cannot be combined with ", Quote(key),
                 ": a mapped stage has the items of the stage it maps over"));
    ok = false;
  }
  const YamlNode over = node.Find("over");
  if (!ReadScalar(over, path.Key("over"), "a stage name")) ok = false;
  if (ok) source->foreach_over = over;
}

void Loader::ResolveMappings() {
  const size_t n = pipeline_.stages.size();
  bool any = false;
  for (size_t s = 0; s < n && !any; ++s) {
    any = sources_[s].foreach_over.IsDefined() ||
          std::any_of(sources_[s].input_each.begin(), sources_[s].input_each.end(),
                      [](const YamlNode& each) { return each.IsDefined(); });
  }
  if (!any) return;  // the common case: nothing to resolve, nothing to check
  std::vector<MapState> state(n, MapState::kUnvisited);
  for (uint32_t s = 0; s < n; ++s) ResolveMapping(s, state);
  for (uint32_t s = 0; s < n; ++s) CheckEachInputs(s, state);
}

void Loader::ResolveMapping(uint32_t s, std::vector<MapState>& state) {
  if (state[s] != MapState::kUnvisited) return;
  state[s] = MapState::kVisiting;
  Stage& stage = pipeline_.stages[s];
  const StageSource& source = sources_[s];
  const FieldPath root;
  const FieldPath stages_path = root.Key("stages");
  const FieldPath stage_path = stages_path.Key(source.name);
  const FieldPath foreach_path = stage_path.Key("foreach");
  const FieldPath over_path = foreach_path.Key("over");
  bool failed = false;
  int64_t target = -1;
  const bool explicit_over = source.foreach_over.IsDefined();
  if (explicit_over) {
    const std::string_view name = source.foreach_over.Scalar();
    if (name == stage.name) {
      Error(source.foreach_over, over_path,
            StrCat("stage ", Quote(stage.name), " cannot map over itself"));
      failed = true;
    } else if (auto found = stage_index_.find(name); found != stage_index_.end()) {
      target = found->second;
    } else {
      Error(source.foreach_over, over_path,
            StrCat("unknown stage ", Quote(name), SuggestStage(name)));
      failed = true;
    }
  } else if (!source.foreach.IsDefined()) {
    // Mapped by its first `each: true` input, as if `foreach: {over: ...}`.
    for (size_t i = 0; i < stage.inputs.size() && target < 0; ++i) {
      if (!source.input_each[i].IsDefined() || !stage.inputs[i].each) continue;
      if (auto found = stage_index_.find(stage.inputs[i].stage);
          found != stage_index_.end() && found->second != s) {
        target = found->second;
      }
    }
  }
  if (target >= 0) {
    const uint32_t over = static_cast<uint32_t>(target);
    if (state[over] == MapState::kVisiting) {
      if (explicit_over) {
        Error(source.foreach_over, over_path,
              StrCat("cycle of mappings: stage ", Quote(pipeline_.stages[over].name),
                     " is itself mapped, through 'over', over stage ", Quote(stage.name)));
      }
      failed = true;
    } else {
      ResolveMapping(over, state);
      const Stage& from = pipeline_.stages[over];
      if (state[over] == MapState::kFailed) {
        failed = true;
      } else if (!from.IsForeach()) {
        // An implicit mapping's `each: true` is reported by CheckEachInputs,
        // a `foreach:` that could not be read where it is.
        if (explicit_over && !sources_[over].foreach.IsDefined()) {
          Error(source.foreach_over, over_path,
                StrCat("stage ", Quote(from.name),
                       " is not a foreach stage: 'over' maps over the items of one"));
        }
        failed = true;
      } else {
        stage.foreach_over = from.name;
        if (from.Dynamic()) {
          // Its items come when `from` is expanded, at run time.
          stage.dynamic = true;
        } else if (CheckItemCount(from.foreach->size(),
                                  explicit_over ? source.foreach_over : source.foreach,
                                  explicit_over ? over_path : foreach_path)) {
          stage.foreach = *from.foreach;
        } else {
          failed = true;
        }
      }
    }
  }
  state[s] = failed ? MapState::kFailed : MapState::kDone;
}

void Loader::CheckEachInputs(uint32_t s, std::vector<MapState>& state) {
  Stage& stage = pipeline_.stages[s];
  const StageSource& source = sources_[s];
  const FieldPath root;
  const FieldPath stages_path = root.Key("stages");
  const FieldPath stage_path = stages_path.Key(source.name);
  const FieldPath inputs_path = stage_path.Key("inputs");
  // The stage its items are compared with: the one it maps over, or its own.
  auto mapped_over = stage_index_.find(stage.foreach_over);
  const uint32_t items_of = mapped_over != stage_index_.end() ? mapped_over->second : s;
  for (size_t i = 0; i < stage.inputs.size(); ++i) {
    InputRef& input = stage.inputs[i];
    auto found = stage_index_.find(input.stage);
    if (found == stage_index_.end() || found->second == s) continue;  // reported elsewhere
    const uint32_t p = found->second;
    const Stage& from = pipeline_.stages[p];
    const YamlNode& each = source.input_each[i];
    if (!each.IsDefined()) {
      // In a mapped stage an input from a stage with the same items is
      // item-wise unless it says `each: false`.
      if (!stage.foreach_over.empty() && state[s] == MapState::kDone && from.IsForeach() &&
          state[p] != MapState::kFailed && SameItems(items_of, p, nullptr)) {
        input.each = true;
      }
      continue;
    }
    if (!input.each) continue;  // `each: false`: a gather
    const FieldPath input_path = inputs_path.Key(input.name);
    const FieldPath each_path = input_path.Key("each");
    if (!from.IsForeach()) {
      if (state[p] != MapState::kFailed && !sources_[p].foreach.IsDefined()) {
        Error(each, each_path,
              StrCat("'each: true' reads the task of ", Quote(from.name),
                     " with the same item, but ", Quote(from.name), " is not a foreach stage"));
      }
      continue;
    }
    if (state[s] == MapState::kFailed || !stage.IsForeach() || state[p] == MapState::kFailed) {
      continue;
    }
    std::string difference;
    if (!SameItems(items_of, p, &difference)) {
      Error(each, each_path,
            StrCat("'each: true' needs the same items on both sides: ", difference));
      continue;
    }
    if (stage.foreach_over.empty()) stage.foreach_over = from.name;
  }
}

uint32_t Loader::ItemRoot(uint32_t s) const {
  for (size_t hops = 0; hops < pipeline_.stages.size(); ++hops) {
    const Stage& stage = pipeline_.stages[s];
    if (stage.foreach_from || stage.foreach_over.empty()) return s;
    auto found = stage_index_.find(stage.foreach_over);
    if (found == stage_index_.end() || found->second == s) return s;
    s = found->second;
  }
  return s;
}

bool Loader::SameItems(uint32_t a, uint32_t b, std::string* difference) const {
  if (a == b || ItemRoot(a) == ItemRoot(b)) return true;
  const Stage& x = pipeline_.stages[a];
  const Stage& y = pipeline_.stages[b];
  if (x.Dynamic() || y.Dynamic() || !x.foreach || !y.foreach) {
    if (difference != nullptr) {
      *difference = StrCat("stages ", Quote(x.name), " and ", Quote(y.name),
                           " do not have the same items (items known only at run time are "
                           "shared only by the stages mapped over the stage that lists them)");
    }
    return false;
  }
  if (*x.foreach == *y.foreach) return true;
  if (difference == nullptr) return false;
  const std::string both = StrCat("stages ", Quote(x.name), " and ", Quote(y.name));
  auto first_missing = [](const std::vector<std::string>& items,
                          const std::vector<std::string>& in) -> const std::string* {
    const absl::flat_hash_set<std::string_view> set(in.begin(), in.end());
    for (const std::string& item : items) {
      if (!set.contains(item)) return &item;
    }
    return nullptr;
  };
  if (const std::string* item = first_missing(*x.foreach, *y.foreach)) {
    *difference = StrCat(both, " have different items: ", Quote(*item), " is an item of ",
                         Quote(x.name), " but not of ", Quote(y.name));
  } else if (const std::string* other = first_missing(*y.foreach, *x.foreach)) {
    *difference = StrCat(both, " have different items: ", Quote(*other), " is an item of ",
                         Quote(y.name), " but not of ", Quote(x.name));
  } else {
    size_t at = 0;
    while ((*x.foreach)[at] == (*y.foreach)[at]) ++at;
    *difference = StrCat(both, " have their items in a different order: item ", at + 1, " is ",
                         Quote((*x.foreach)[at]), " in ", Quote(x.name), " and ",
                         Quote((*y.foreach)[at]), " in ", Quote(y.name));
  }
  return false;
}

}  // namespace tierflow::dag::internal
