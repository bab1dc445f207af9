// The pipeline loader's params and templates: `params:` declarations with
// their types and defaults, `--param` overrides, and the `{{ params.NAME }}`
// and `{{ item }}` templates of argv commands (shell scripts are not
// templated: they read $TIERFLOW_PARAM_<NAME>). Part of the Loader
// (dag/internal/loader_internal.h).
#include <algorithm>
#include <optional>
#include <string>
#include <string_view>

#include "common/strings.h"
#include "common/suggest.h"
#include "common/yaml_fields.h"
#include "dag/internal/loader_internal.h"

namespace tierflow::dag::internal {
namespace {

bool ConsumePrefix(std::string_view* text, std::string_view prefix) {
  if (!text->starts_with(prefix)) return false;
  text->remove_prefix(prefix.size());
  return true;
}

bool ConsumeSuffix(std::string_view* text, std::string_view suffix) {
  if (!text->ends_with(suffix)) return false;
  text->remove_suffix(suffix.size());
  return true;
}

// The canonical text of a typed scalar param value, or nullopt if the text
// is not of that type.
std::optional<std::string> NormalizeParamValue(ParamType type, std::string_view text) {
  switch (type) {
    case ParamType::kString:
    case ParamType::kList:
      return std::string(text);
    case ParamType::kInt:
      if (auto value = ParseYamlInt(text)) return StrCat(*value);
      return std::nullopt;
    case ParamType::kFloat:
      if (auto value = ParseYamlFloat(text)) return FormatFloat(*value);
      return std::nullopt;
    case ParamType::kBool:
      if (auto value = ParseYamlBool(text)) return std::string(*value ? "true" : "false");
      return std::nullopt;
  }
  return std::nullopt;
}

std::optional<ParamType> ParseParamType(std::string_view name) {
  for (ParamType type : {ParamType::kString, ParamType::kInt, ParamType::kFloat, ParamType::kBool,
                         ParamType::kList}) {
    if (ParamTypeName(type) == name) return type;
  }
  return std::nullopt;
}

const std::vector<std::string>& ParamTypeNames() {
  static const auto* const names =
      new std::vector<std::string>{"string", "int", "float", "bool", "list"};
  return *names;
}

const KeyList& ParamKeys() {
  static const auto* const keys = new KeyList{"type", "default", "description"};
  return *keys;
}

// What the text inside `{{ ... }}` refers to.
struct Template {
  enum Kind { kItem, kParam, kOther } kind = kOther;
  std::string_view param;  // for kParam
};

Template ParseTemplate(std::string_view expression) {
  expression = TrimWhitespace(expression);
  if (expression == "item") return {Template::kItem, {}};
  if (ConsumePrefix(&expression, "params.")) return {Template::kParam, expression};
  return {};
}

}  // namespace

std::optional<std::string_view> WholeParamTemplate(std::string_view text) {
  std::string_view inner = TrimWhitespace(text);
  if (!ConsumePrefix(&inner, "{{") || !ConsumeSuffix(&inner, "}}")) return std::nullopt;
  if (inner.find("{{") != std::string_view::npos) return std::nullopt;
  Template parsed = ParseTemplate(inner);
  if (parsed.kind != Template::kParam) return std::nullopt;
  return parsed.param;
}
void Loader::ReadParams(const YamlNode& node, const FieldPath& path) {
  if (node.IsNull()) return;  // `params:` with nothing under it
  CaseInsensitiveNames upper_names;
  ForEachEntry(
      node, path, "param",
      [&](std::string_view name, const YamlNode& key, const YamlNode& value, bool repeated) {
        const FieldPath param_path = path.Key(name);
        Param param;
        param.name = std::string(name);
        param.location = {key.line(), key.column()};
        bool ok = CheckName(name, key, param_path, "param", IsIdentifier(name), kIdentifierRule);
        if (ok && !repeated) {
          CheckCaseCollision(&upper_names, name, key, param_path, "param", "TIERFLOW_PARAM_");
        }
        bool has_value = true;
        ok = ReadParam(value, param_path, &param, &has_value) && ok;
        if (repeated) return;
        if (!ok) unusable_params_.insert(name);
        // Unusable params stay declared: --param and templates
        // naming them are not reported as unknown.
        param_index_.emplace(name, pipeline_.params.size());
        pipeline_.params.push_back(std::move(param));
        if (ok && !has_value) unset_params_.emplace_back(name, key);
      });
}

bool Loader::ReadParamList(const YamlNode& node, const FieldPath& path, Param* param) {
  param->type = ParamType::kList;
  bool ok = true;
  const size_t count = Count(node);
  param->items.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    if (auto text = ReadScalar(node.at(i), path.Index(i), "a scalar")) {
      param->items.emplace_back(*text);
    } else {
      ok = false;
    }
  }
  return ok;
}

bool Loader::ReadUntypedParam(const YamlNode& value, const FieldPath& path, Param* param) {
  if (value.IsSequence()) return ReadParamList(value, path, param);
  if (!value.IsScalar()) {
    WrongType(value, path, "a scalar, a list or {type, default, description}");
    return false;
  }
  const std::string_view text = value.Scalar();
  param->type = ParamType::kString;
  if (value.IsPlain()) {
    if (ParseYamlInt(text)) {
      param->type = ParamType::kInt;
    } else if (ParseYamlFloat(text)) {
      param->type = ParamType::kFloat;
    } else if (ParseYamlBool(text)) {
      param->type = ParamType::kBool;
    }
  }
  param->value = *NormalizeParamValue(param->type, text);
  return true;
}

bool Loader::ReadParam(const YamlNode& node, const FieldPath& path, Param* param, bool* has_value) {
  if (!node.IsMap()) return ReadUntypedParam(node, path, param);
  Fields fields(ParamKeys());
  ReadFields(node, path, &fields);
  bool ok = true;
  if (YamlNode description = fields.value("description"); description.IsDefined()) {
    if (auto text = ReadString(description, path.Key("description"))) {
      param->description = std::move(*text);
    }
  }
  std::optional<ParamType> type;
  if (YamlNode type_node = fields.value("type"); type_node.IsDefined()) {
    type = ReadEnum<ParamType>(type_node, path.Key("type"), "param type", ParamTypeNames(),
                               &ParseParamType);
    if (!type) ok = false;
  }
  const YamlNode value = fields.value("default");
  if (!value.IsDefined()) {
    // A misspelt `default` was reported as such.
    if (!fields.IsMissing("default")) return false;
    if (!fields.has("type")) {
      Error(node, path, "missing required key 'default' (or 'type' for a param without one)");
      return false;
    }
    // A typed param without a default must be given with --param.
    *has_value = false;
    if (type) param->type = *type;
    return ok;
  }
  const FieldPath value_path = path.Key("default");
  if (!fields.has("type")) return ReadUntypedParam(value, value_path, param) && ok;
  if (!type) return false;
  param->type = *type;
  return ReadTypedDefault(value, value_path, param);
}

bool Loader::ReadTypedDefault(const YamlNode& value, const FieldPath& path, Param* param) {
  if (param->type == ParamType::kList) {
    if (!value.IsSequence()) {
      WrongType(value, path, "a list");
      return false;
    }
    return ReadParamList(value, path, param);
  }
  const std::string_view type_name = ParamTypeName(param->type);
  auto text = ReadScalar(value, path, StrCat("a ", type_name));
  if (!text) return false;
  auto normalized = NormalizeParamValue(param->type, *text);
  if (!normalized) {
    Error(value, path,
          StrCat("invalid ", type_name, " ", Quote(*text), " for param '", param->name, "'"));
    return false;
  }
  param->value = std::move(*normalized);
  return true;
}

void Loader::ApplyOverrides() {
  std::vector<std::string> names;
  names.reserve(pipeline_.params.size());
  for (const Param& param : pipeline_.params) names.push_back(param.name);
  for (const auto& [name, text] : options_.param_overrides) {
    auto report = [&, &name = name](std::string message) {
      Report(Diagnostic{"--param", 0, 0, name, std::move(message)});
    };
    auto it = param_index_.find(name);
    if (it == param_index_.end()) {
      report(StrCat("unknown param ", Quote(name), DidYouMean(name, names)));
      continue;
    }
    if (unusable_params_.contains(name)) continue;
    Param& param = pipeline_.params[it->second];
    if (param.type == ParamType::kList) {
      // `--param regions=eu,us`; an empty value is the empty list.
      param.items.clear();
      const std::string_view items = text;
      for (size_t start = 0; !items.empty();) {
        const size_t comma = items.find(',', start);
        param.items.emplace_back(TrimWhitespace(items.substr(start, comma - start)));
        if (comma == std::string_view::npos) break;
        start = comma + 1;
      }
    } else {
      auto normalized = NormalizeParamValue(param.type, text);
      if (!normalized) {
        report(StrCat("invalid ", ParamTypeName(param.type), " ", Quote(text), " for param '", name,
                      "'"));
        continue;
      }
      param.value = std::move(*normalized);
    }
    param.overridden = true;
  }
  const FieldPath root;
  const FieldPath params_path = root.Key("params");
  for (const auto& [name, key] : unset_params_) {
    const Param& param = pipeline_.params[param_index_.at(name)];
    if (param.overridden) continue;
    unusable_params_.insert(name);
    Error(key, params_path.Key(name),
          StrCat("param ", Quote(name), " has no default: pass --param ", name, "=VALUE"));
  }
}

const Param* Loader::UsableParam(std::string_view name, std::string_view written,
                                 const YamlNode& at, const FieldPath& path) {
  if (unusable_params_.contains(name)) return nullptr;
  auto it = param_index_.find(name);
  if (it != param_index_.end()) return &pipeline_.params[it->second];
  Error(at, path,
        StrCat("unknown param ", Quote(name), " in ", Quote(written),
               DidYouMean(name, param_names_)));
  return nullptr;
}

void Loader::CheckArgvTemplates(std::string_view arg, const YamlNode& at, const FieldPath& path,
                                bool has_foreach) {
  for (size_t open = arg.find("{{"); open != std::string_view::npos; open = arg.find("{{", open)) {
    const size_t close = arg.find("}}", open + 2);
    if (close == std::string_view::npos) {
      Error(at, path,
            StrCat("unterminated '{{' in ", Quote(arg),
                   ": expected '{{ params.NAME }}' or '{{ item }}'"));
      return;
    }
    const std::string_view written = arg.substr(open, close + 2 - open);
    const Template parsed = ParseTemplate(arg.substr(open + 2, close - open - 2));
    switch (parsed.kind) {
      case Template::kItem:
        if (!has_foreach) {
          Error(at, path, StrCat(Quote(written), " used in a stage without foreach"));
        }
        break;
      case Template::kParam:
        UsableParam(parsed.param, written, at, path);
        break;
      case Template::kOther:
        Error(at, path,
              StrCat("unsupported template ", Quote(written),
                     ": expected '{{ params.NAME }}' or '{{ item }}'"));
        break;
    }
    open = close + 2;
  }
}

void Loader::CheckShellTemplates(std::string_view script, const YamlNode& at,
                                 const FieldPath& path) {
  for (size_t open = script.find("{{"); open != std::string_view::npos;
       open = script.find("{{", open + 2)) {
    const size_t close = script.find("}}", open + 2);
    std::string suggestion = "\"$TIERFLOW_PARAM_<NAME>\" or \"$TIERFLOW_ITEM\"";
    std::string_view written = script.substr(open, 2);
    if (close != std::string_view::npos) {
      written = script.substr(open, close + 2 - open);
      const Template parsed = ParseTemplate(script.substr(open + 2, close - open - 2));
      if (parsed.kind == Template::kItem) {
        suggestion = "\"$TIERFLOW_ITEM\"";
      } else if (parsed.kind == Template::kParam && IsIdentifier(parsed.param)) {
        suggestion = StrCat("\"$TIERFLOW_PARAM_", AsciiUpper(parsed.param), "\"");
      }
      open = close;
    }
    Error(at, path,
          StrCat("shell commands are not templated: use ", suggestion, " instead of ",
                 Quote(written), ", or give run as an argv list"));
  }
}

}  // namespace tierflow::dag::internal
