// The pipeline loader's foreach: a stage's items as a list, a range
// (Python's range(start, stop, step)) or a list param, each item a task.
// Items must be unique (they name the tasks), and their count is bounded
// per stage and for the whole pipeline. Part of the Loader
// (dag/internal/loader_internal.h).
#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/strings.h"
#include "common/yaml_fields.h"
#include "dag/internal/loader_internal.h"

namespace tierflow::dag::internal {
namespace {

// Foreach items of all stages together. Without a pipeline-wide bound a
// small file of many 1M-item ranges would expand to billions of tasks.
constexpr uint64_t kMaxPipelineTasks = 10'000'000;

const KeyList& ForeachKeys() {
  static const auto* const keys = new KeyList{"range"};
  return *keys;
}

}  // namespace

bool Loader::CheckItemCount(uint64_t count, const YamlNode& at, const FieldPath& path) {
  if (count == 0) {
    Error(at, path, "no items: a foreach stage needs at least one");
    return false;
  }
  if (count > kMaxForeachItems) {
    Error(at, path, StrCat(count, " items: a foreach stage may have at most ", kMaxForeachItems));
    return false;
  }
  if (total_tasks_ + count > kMaxPipelineTasks) {
    if (!task_limit_reported_) {
      task_limit_reported_ = true;
      Error(at, path,
            StrCat("the pipeline would expand to more than ", kMaxPipelineTasks, " tasks"));
    }
    return false;
  }
  total_tasks_ += count;
  return true;
}

std::optional<std::vector<std::string>> Loader::ReadForeach(const YamlNode& node,
                                                            const FieldPath& path) {
  constexpr std::string_view kExpected = "a list, {range: [start, stop]} or \"{{ params.LIST }}\"";
  if (node.IsScalar()) return ParamItems(node, path);
  if (node.IsMap()) return ReadRange(node, path);
  if (!node.IsSequence()) {
    WrongType(node, path, kExpected);
    return std::nullopt;
  }
  const size_t count = Count(node);
  if (!CheckItemCount(count, node, path)) return std::nullopt;
  std::vector<std::string> items;
  items.reserve(count);
  absl::flat_hash_map<std::string_view, int> first_line;
  first_line.reserve(count);
  bool ok = true;
  for (size_t i = 0; i < count; ++i) {
    const YamlNode item = node.at(i);
    const FieldPath item_path = path.Index(i);
    auto text = ReadScalar(item, item_path, "a scalar");
    if (!text) {
      ok = false;
      continue;
    }
    auto [it, fresh] = first_line.emplace(*text, item.line());
    if (!fresh) {
      Error(item, item_path,
            StrCat("duplicate item ", Quote(*text), " (first at line ", it->second,
                   "): task ids must be unique"));
      ok = false;
      continue;
    }
    items.emplace_back(*text);
  }
  if (!ok) return std::nullopt;
  return items;
}

std::optional<std::vector<std::string>> Loader::ParamItems(const YamlNode& node,
                                                           const FieldPath& path) {
  const std::string_view text = node.Scalar();
  auto name = WholeParamTemplate(text);
  if (!name) {
    WrongType(node, path, "a list, {range: [start, stop]} or \"{{ params.LIST }}\"");
    return std::nullopt;
  }
  const Param* param = UsableParam(*name, text, node, path);
  if (param == nullptr) return std::nullopt;
  if (param->type != ParamType::kList) {
    Error(node, path,
          StrCat("param '", param->name, "' is ", param->type == ParamType::kInt ? "an " : "a ",
                 ParamTypeName(param->type), "; foreach needs a list param"));
    return std::nullopt;
  }
  if (!CheckItemCount(param->items.size(), node, path)) return std::nullopt;
  absl::flat_hash_set<std::string_view> seen;
  seen.reserve(param->items.size());
  for (const std::string& item : param->items) {
    if (!seen.insert(item).second) {
      Error(node, path,
            StrCat("duplicate item ", Quote(item), " in param '", param->name,
                   "': task ids must be unique"));
      return std::nullopt;
    }
  }
  return param->items;
}

std::optional<int64_t> Loader::ReadRangeBound(const YamlNode& node, const FieldPath& path) {
  constexpr std::string_view kExpected = "an integer or \"{{ params.NAME }}\"";
  auto text = ReadScalar(node, path, kExpected);
  if (!text) return std::nullopt;
  if (auto value = ParseYamlInt(*text)) return value;
  auto name = WholeParamTemplate(*text);
  if (!name) {
    WrongType(node, path, kExpected);
    return std::nullopt;
  }
  const Param* param = UsableParam(*name, *text, node, path);
  if (param == nullptr) return std::nullopt;
  if (param->type != ParamType::kInt) {
    Error(node, path,
          StrCat("param '", param->name, "' is a ", ParamTypeName(param->type),
                 "; a range bound needs an int param"));
    return std::nullopt;
  }
  return ParseYamlInt(param->value);
}

std::optional<std::vector<std::string>> Loader::ReadRange(const YamlNode& node,
                                                          const FieldPath& path) {
  Fields fields(ForeachKeys());
  ReadFields(node, path, &fields);
  const YamlNode range = fields.value("range");
  if (!range.IsDefined()) {
    if (fields.IsMissing("range")) Error(node, path, "missing required key 'range'");
    return std::nullopt;
  }
  const FieldPath range_path = path.Key("range");
  constexpr std::string_view kExpected = "[start, stop] or [start, stop, step]";
  if (!range.IsSequence()) {
    WrongType(range, range_path, kExpected);
    return std::nullopt;
  }
  const size_t count = Count(range);
  if (count != 2 && count != 3) {
    Error(range, range_path, StrCat("expected ", kExpected, ", got a list of ", count));
    return std::nullopt;
  }
  std::array<std::optional<int64_t>, 3> bounds = {std::nullopt, std::nullopt, int64_t{1}};
  bool ok = true;
  for (size_t i = 0; i < count; ++i) {
    bounds[i] = ReadRangeBound(range.at(i), range_path.Index(i));
    ok = ok && bounds[i].has_value();
  }
  if (!ok) return std::nullopt;
  const int64_t start = *bounds[0], stop = *bounds[1], step = *bounds[2];
  if (step == 0) {
    Error(range.at(2), range_path.Index(2), "step must not be 0");
    return std::nullopt;
  }
  // Python's range(start, stop, step), counted in unsigned arithmetic so
  // that no bounds can overflow.
  uint64_t items = 0;
  if (step > 0 && stop > start) {
    const uint64_t distance = static_cast<uint64_t>(stop) - static_cast<uint64_t>(start);
    items = (distance - 1) / static_cast<uint64_t>(step) + 1;
  } else if (step < 0 && stop < start) {
    const uint64_t distance = static_cast<uint64_t>(start) - static_cast<uint64_t>(stop);
    const uint64_t magnitude = static_cast<uint64_t>(-(step + 1)) + 1;
    items = (distance - 1) / magnitude + 1;
  }
  if (items == 0) {
    Error(range, range_path, StrCat("range(", start, ", ", stop, ", ", step, ") has no items"));
    return std::nullopt;
  }
  if (!CheckItemCount(items, range, range_path)) return std::nullopt;
  std::vector<std::string> result;
  result.reserve(items);
  int64_t value = start;
  for (uint64_t i = 0; i < items; ++i) {
    result.push_back(StrCat(value));
    // Stepping past the last item could overflow, and is not needed.
    if (i + 1 < items) value += step;
  }
  return result;
}

}  // namespace tierflow::dag::internal
