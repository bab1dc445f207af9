// The pipeline loader's dynamic fan-out: `foreach: {from: STAGE.OUTPUT,
// format: lines|json}`, whose items a task of STAGE writes at run time
// (the engine expands the stage then: scheduler/dynamic_expansion.h). Here
// the reference is read and checked: STAGE exists, has OUTPUT, and is no
// foreach stage itself (one list, one producer task). Part of the Loader
// (dag/internal/loader_internal.h).
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "common/strings.h"
#include "common/yaml_fields.h"
#include "dag/internal/loader_internal.h"

namespace tierflow::dag::internal {
namespace {

const KeyList& DynamicForeachKeys() {
  static const auto* const keys = new KeyList{"from", "format"};
  return *keys;
}

const std::vector<std::string>& FormatNames() {
  static const auto* const names = new std::vector<std::string>{"lines", "json"};
  return *names;
}

std::optional<ItemListFormat> ParseFormat(std::string_view name) {
  if (name == "lines") return ItemListFormat::kLines;
  if (name == "json") return ItemListFormat::kJson;
  return std::nullopt;
}

}  // namespace

bool IsDynamicForeach(const YamlNode& node) {
  return node.IsMap() && node.Find("from").IsDefined();
}

void Loader::ReadForeachFrom(const YamlNode& node, const FieldPath& path, Stage* stage,
                             StageSource* source) {
  // Dynamic even when the reference is broken: `{{ item }}` in run is
  // fine, and no second error says the stage has no items.
  stage->dynamic = true;
  Fields fields(DynamicForeachKeys());
  ReadFields(node, path, &fields);
  DynamicItems items;
  if (YamlNode format = fields.value("format"); format.IsDefined()) {
    auto parsed =
        ReadEnum<ItemListFormat>(format, path.Key("format"), "format", FormatNames(), &ParseFormat);
    if (!parsed) return;
    items.format = *parsed;
  }
  const YamlNode reference = fields.value("from");
  const FieldPath from_path = path.Key("from");
  if (!reference.IsScalar()) {
    WrongType(reference, from_path, "'stage.output'");
    return;
  }
  const std::string_view text = reference.Scalar();
  const size_t dot = text.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 == text.size() ||
      text.find('.', dot + 1) != std::string_view::npos) {
    Error(reference, from_path,
          StrCat("invalid reference ", Quote(text), ": expected the form stage.output"));
    reference_errors_ = true;
    return;
  }
  items.stage = std::string(text.substr(0, dot));
  items.output = std::string(text.substr(dot + 1));
  items.location = {reference.line(), reference.column()};
  stage->foreach_from = std::move(items);
  source->foreach_from = reference;
}

void Loader::CheckForeachFrom(uint32_t s, const FieldPath& stage_path) {
  const Stage& stage = pipeline_.stages[s];
  if (!stage.foreach_from) return;
  const DynamicItems& items = *stage.foreach_from;
  const YamlNode& at = sources_[s].foreach_from;
  const FieldPath foreach_path = stage_path.Key("foreach");
  const FieldPath path = foreach_path.Key("from");
  if (items.stage == stage.name) {
    Error(at, path, StrCat("stage ", Quote(stage.name), " cannot take its items from itself"));
    reference_errors_ = true;
    return;
  }
  auto producer = stage_index_.find(items.stage);
  if (producer == stage_index_.end()) {
    Error(at, path,
          StrCat("unknown stage ", Quote(items.stage), " in ", Quote(at.Scalar()),
                 SuggestStage(items.stage)));
    reference_errors_ = true;
    return;
  }
  edges_.emplace_back(producer->second, s);
  const Stage& from = pipeline_.stages[producer->second];
  if (from.IsForeach()) {
    Error(at, path,
          StrCat("stage ", Quote(from.name),
                 " is a foreach stage: the items of a dynamic foreach come from one file, an "
                 "output of a stage without foreach"));
    reference_errors_ = true;
    return;
  }
  if (!sources_[producer->second].outputs_known) return;
  if (std::any_of(from.outputs.begin(), from.outputs.end(),
                  [&](const OutputSpec& output) { return output.name == items.output; })) {
    return;
  }
  Error(at, path,
        StrCat("stage ", Quote(from.name), " has no output ", Quote(items.output),
               MissingOutputHint(from, items.output)));
  reference_errors_ = true;
}

}  // namespace tierflow::dag::internal
