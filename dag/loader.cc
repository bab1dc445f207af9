#include "dag/loader.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <new>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_join.h"
#include "common/strings.h"
#include "common/suggest.h"
#include "common/yaml_fields.h"
#include "common/yaml_tree.h"
#include "dag/graph.h"

namespace tierflow::dag {
namespace {

// Bigger files are surely mistakes; the parse tree of one this size already
// costs a few hundred MiB.
constexpr size_t kMaxFileBytes = 64 << 20;
constexpr size_t kMaxNameLength = 128;  // pipeline and stage names
constexpr uint64_t kMaxForeachItems = 1'000'000;
// Far beyond any real pipeline (tasks fan out with foreach), and a bound on
// the model's memory, about 1 KiB a stage.
constexpr size_t kMaxStages = 1'000'000;
// Foreach items of all stages together. Without a pipeline-wide bound a
// small file of many 1M-item ranges would expand to billions of tasks.
constexpr uint64_t kMaxPipelineTasks = 10'000'000;
// Node visits the schema walk may make beyond twice the tree's size. An
// alias shares its node in the tree, but every stage that names it still
// copies it into the model: without a bound, a small file of nested aliases
// ("billion laughs") would take hours and all memory.
constexpr uint64_t kExtraNodeVisits = 2'000'000;
// Did-you-mean over thousands of stage names costs an edit distance per
// name; this bounds the total for a file with very many unknown references.
constexpr uint64_t kSuggestionBudget = 200'000'000;

bool IsAlpha(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }
bool IsAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

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

// Input, output, param and environment variable names.
bool IsIdentifier(std::string_view name) {
  return !name.empty() && (IsAlpha(name[0]) || name[0] == '_') &&
         std::all_of(name.begin(), name.end(), [](char c) { return IsAlnum(c) || c == '_'; });
}

bool IsStageName(std::string_view name) {
  return !name.empty() && IsAlpha(name[0]) && std::all_of(name.begin(), name.end(), [](char c) {
    return IsAlnum(c) || c == '_' || c == '-';
  });
}

bool IsPipelineName(std::string_view name) {
  return !name.empty() && IsAlnum(name[0]) && std::all_of(name.begin(), name.end(), [](char c) {
    return IsAlnum(c) || c == '_' || c == '-' || c == '.';
  });
}

constexpr std::string_view kIdentifierRule =
    "use letters, digits and '_', starting with a letter or '_'";

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

// A whole value of the form `{{ params.NAME }}` (foreach, range bounds).
std::optional<std::string_view> WholeParamTemplate(std::string_view text) {
  std::string_view inner = TrimWhitespace(text);
  if (!ConsumePrefix(&inner, "{{") || !ConsumeSuffix(&inner, "}}")) return std::nullopt;
  if (inner.find("{{") != std::string_view::npos) return std::nullopt;
  Template parsed = ParseTemplate(inner);
  if (parsed.kind != Template::kParam) return std::nullopt;
  return parsed.param;
}

const std::vector<std::string>& DurabilityNames() {
  static const auto* const names =
      new std::vector<std::string>{"volatile", "node", "durable", "archive"};
  return *names;
}

const std::vector<std::string>& AccessPatternNames() {
  static const auto* const names = new std::vector<std::string>{"none", "sequential", "random"};
  return *names;
}

const std::vector<std::string>& ParamTypeNames() {
  static const auto* const names =
      new std::vector<std::string>{"string", "int", "float", "bool", "list"};
  return *names;
}

// The allowed keys of every map in the format, in the order of the docs.
const KeyList& TopKeys() {
  static const auto* const keys =
      new KeyList{"name", "description", "params", "defaults", "stages"};
  return *keys;
}
const KeyList& ParamKeys() {
  static const auto* const keys = new KeyList{"type", "default", "description"};
  return *keys;
}
const KeyList& DefaultsKeys() {
  static const auto* const keys = new KeyList{"resources", "retries", "timeout", "cache"};
  return *keys;
}
const KeyList& StageKeys() {
  static const auto* const keys = new KeyList{
      "kind",    "description", "run",     "needs", "inputs", "outputs",     "io", "resources",
      "retries", "timeout",     "foreach", "cache", "tier",   "checkpoints", "env"};
  return *keys;
}
const KeyList& InputKeys() {
  static const auto* const keys = new KeyList{"from", "stream"};
  return *keys;
}
const KeyList& OutputKeys() {
  static const auto* const keys = new KeyList{"size", "durability"};
  return *keys;
}
const KeyList& IoKeys() {
  static const auto* const keys =
      new KeyList{"read",        "write",       "block_size", "read_bytes",
                  "write_bytes", "read_passes", "streams",    "durability"};
  return *keys;
}
const KeyList& ResourceKeys() {
  static const auto* const keys = new KeyList{"cpus", "memory", "gpus", "labels"};
  return *keys;
}
const KeyList& RetryKeys() {
  static const auto* const keys = new KeyList{"limit", "backoff", "factor", "max_backoff"};
  return *keys;
}
const KeyList& CheckpointKeys() {
  static const auto* const keys = new KeyList{"keep", "tier"};
  return *keys;
}
const KeyList& ForeachKeys() {
  static const auto* const keys = new KeyList{"range"};
  return *keys;
}

// Compares and hashes names as the TIERFLOW_<KIND>_<NAME> variables they
// become: ASCII letters without regard to case (AsciiUpper's rule).
char UpperAscii(char c) { return static_cast<char>(std::toupper(static_cast<unsigned char>(c))); }
struct CaseInsensitiveEqual {
  bool operator()(std::string_view a, std::string_view b) const {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
             return UpperAscii(x) == UpperAscii(y);
           });
  }
};
struct CaseInsensitiveHash {
  size_t operator()(std::string_view text) const {
    uint64_t hash = 0xcbf29ce484222325;  // FNV-1a
    for (char c : text) hash = (hash ^ static_cast<unsigned char>(UpperAscii(c))) * 0x100000001b3;
    return static_cast<size_t>(hash);
  }
};

// Names that would be the same TIERFLOW_* variable, with the node of the
// first of them.
using CaseInsensitiveNames = SeenNames<YamlNode, CaseInsensitiveHash, CaseInsensitiveEqual>;

// Whole-value defaults from the top-level `defaults:` map.
struct StageDefaults {
  std::optional<Resources> resources;
  std::optional<RetryPolicy> retries;
  std::optional<Duration> timeout;
  std::optional<bool> cache;
};

// What the model does not keep but reports need after every stage has been
// read: where each dependency was written.
struct StageSource {
  struct Need {
    std::string_view name;
    YamlNode node;
  };
  std::string_view name;
  std::vector<Need> needs;
  std::vector<YamlNode> input_refs;  // parallel to Stage::inputs
  std::vector<bool> input_from_map;  // that reference was given as {from: ...}
  bool outputs_known = true;         // false when `outputs:` could not be read
};

// ---------------------------------------------------------------------------
// The schema walk: reads the tree into a Pipeline and records a Diagnostic
// for every problem instead of stopping at the first. It only ever descends
// as deep as the format does, so a tree that aliases into itself cannot
// make it loop.

class Loader : public FieldReader {
 public:
  // `text_size` bounds the number of nodes in `doc`: each takes a byte at
  // least. Twice that many visits, and kExtraNodeVisits beyond, are what
  // the walk may make.
  Loader(const YamlDocument& doc, size_t text_size, std::string_view file,
         const LoadOptions& options)
      : FieldReader(file, Wording::kSuggest,
                    2 * static_cast<uint64_t>(text_size) + kExtraNodeVisits),
        doc_(doc),
        options_(options) {}

  Pipeline Load();

 private:
  bool CheckName(std::string_view name, const YamlNode& at, const FieldPath& path,
                 std::string_view what, bool valid, std::string_view rule,
                 bool limit_length = false);
  // Names that differ only in case would be one TIERFLOW_<KIND>_<NAME>
  // variable.
  void CheckCaseCollision(CaseInsensitiveNames* seen, std::string_view name, const YamlNode& at,
                          const FieldPath& path, std::string_view what,
                          std::string_view variable_prefix);

  void ReadParams(const YamlNode& node, const FieldPath& path);
  bool ReadParam(const YamlNode& node, const FieldPath& path, Param* param, bool* has_value);
  bool ReadParamList(const YamlNode& node, const FieldPath& path, Param* param);
  void ApplyOverrides();
  // The param `{{ params.NAME }}` names if it has a usable value. Reports a
  // name that is not declared; declared but broken ones were reported where
  // they are declared.
  const Param* UsableParam(std::string_view name, std::string_view written, const YamlNode& at,
                           const FieldPath& path);

  void ReadDefaults(const YamlNode& node, const FieldPath& path);
  void ReadStages(const YamlNode& node, const FieldPath& path);
  void ReadStage(const YamlNode& node, const FieldPath& path, Stage* stage, StageSource* source);
  void ReadCommand(const YamlNode& node, const FieldPath& path, bool has_foreach, Command* command);
  void CheckArgvTemplates(std::string_view arg, const YamlNode& at, const FieldPath& path,
                          bool has_foreach);
  void CheckShellTemplates(std::string_view script, const YamlNode& at, const FieldPath& path);
  void ReadNeeds(const YamlNode& node, const FieldPath& path, Stage* stage, StageSource* source);
  void ReadInputs(const YamlNode& node, const FieldPath& path, Stage* stage, StageSource* source);
  void ReadOutputs(const YamlNode& node, const FieldPath& path, Stage* stage, StageSource* source);
  void ReadOutputSpec(const YamlNode& node, const FieldPath& path, OutputSpec* output);
  void ReadIo(const YamlNode& node, const FieldPath& path, IoProfile* io);
  std::optional<Resources> ReadResources(const YamlNode& node, const FieldPath& path);
  std::optional<RetryPolicy> ReadRetries(const YamlNode& node, const FieldPath& path);
  std::optional<Duration> ReadTimeout(const YamlNode& node, const FieldPath& path);
  void ReadCheckpoints(const YamlNode& node, const FieldPath& path, CheckpointSpec* checkpoints);
  void ReadEnv(const YamlNode& node, const FieldPath& path,
               std::map<std::string, std::string>* env);
  std::optional<std::vector<std::string>> ReadForeach(const YamlNode& node, const FieldPath& path);
  std::optional<std::vector<std::string>> ReadRange(const YamlNode& node, const FieldPath& path);
  std::optional<int64_t> ReadRangeBound(const YamlNode& node, const FieldPath& path);
  std::optional<std::vector<std::string>> ParamItems(const YamlNode& node, const FieldPath& path);
  bool CheckItemCount(uint64_t count, const YamlNode& at, const FieldPath& path);

  void CheckReferences();
  bool HasCycle() const;
  void CheckCycles();
  std::string SuggestStage(std::string_view name);

  const YamlDocument& doc_;
  const LoadOptions& options_;
  Pipeline pipeline_;

  uint64_t suggestion_work_ = 0;
  uint64_t total_tasks_ = 0;
  bool task_limit_reported_ = false;
  bool stage_limit_reported_ = false;

  absl::flat_hash_map<std::string_view, size_t> param_index_;
  // Params that are declared but unusable: their declaration has an error,
  // or they have no default and no --param. Uses of them are not reported
  // a second time.
  absl::flat_hash_set<std::string_view> unusable_params_;
  // Typed params declared without a default: each needs a --param.
  std::vector<std::pair<std::string_view, YamlNode>> unset_params_;
  std::vector<std::string> param_names_;
  StageDefaults defaults_;

  absl::flat_hash_map<std::string_view, uint32_t> stage_index_;
  std::vector<StageSource> sources_;      // parallel to pipeline_.stages
  std::vector<std::string> stage_names_;  // for suggestions, built on first use
  bool reference_errors_ = false;
  // Dependencies between known stages as (parent, child) indices, found by
  // CheckReferences for HasCycle.
  std::vector<std::pair<uint32_t, uint32_t>> edges_;
};

bool Loader::CheckName(std::string_view name, const YamlNode& at, const FieldPath& path,
                       std::string_view what, bool valid, std::string_view rule,
                       bool limit_length) {
  if (limit_length && name.size() > kMaxNameLength) {
    Error(at, path,
          StrCat("invalid ", what, " name ", Quote(name), ": longer than ", kMaxNameLength,
                 " characters"));
    return false;
  }
  if (!valid) {
    Error(at, path, StrCat("invalid ", what, " name ", Quote(name), ": ", rule));
    return false;
  }
  return true;
}

void Loader::CheckCaseCollision(CaseInsensitiveNames* seen, std::string_view name,
                                const YamlNode& at, const FieldPath& path, std::string_view what,
                                std::string_view variable_prefix) {
  auto [first, fresh] = seen->Insert(name, at);
  if (fresh) return;
  Error(at, path,
        StrCat(what, " ", Quote(name), " differs only in case from ", what, " ",
               Quote(first.Scalar()), " (line ", first.line(), "); both would be ", variable_prefix,
               AsciiUpper(name)));
}

// ---------------------------------------------------------------------------
// Top level.

Pipeline Loader::Load() {
  pipeline_.file = std::string(file());
  const YamlNode root = doc_.root();
  const FieldPath top;
  if (!root.IsMap()) {
    WrongType(root, top, "a map with 'name' and 'stages'");
    return std::move(pipeline_);
  }
  Fields fields(TopKeys());
  ReadFields(root, top, &fields);

  if (YamlNode name = fields.value("name"); name.IsDefined()) {
    const FieldPath path = top.Key("name");
    if (auto text = ReadScalar(name, path)) {
      CheckName(*text, name, path, "pipeline", IsPipelineName(*text),
                "use letters, digits, '_', '-' and '.', starting with a letter or digit",
                /*limit_length=*/true);
      pipeline_.name = std::string(*text);
    }
  } else if (fields.IsMissing("name")) {
    Error(root, top, "missing required key 'name'");
  }
  if (YamlNode description = fields.value("description"); description.IsDefined()) {
    if (auto text = ReadString(description, top.Key("description"))) {
      pipeline_.description = std::move(*text);
    }
  }
  // Params first: stages use them in commands and foreach.
  if (YamlNode params = fields.value("params"); params.IsDefined()) {
    ReadParams(params, top.Key("params"));
  }
  ApplyOverrides();
  param_names_.reserve(pipeline_.params.size());
  for (const Param& param : pipeline_.params) param_names_.push_back(param.name);

  if (YamlNode defaults = fields.value("defaults"); defaults.IsDefined()) {
    ReadDefaults(defaults, top.Key("defaults"));
  }
  if (YamlNode stages = fields.value("stages"); stages.IsDefined()) {
    ReadStages(stages, top.Key("stages"));
  } else if (fields.IsMissing("stages")) {
    Error(root, top, "missing required key 'stages'");
  }
  if (budget_spent()) return std::move(pipeline_);
  CheckReferences();
  // A cycle through a misspelt reference would be a guess: wait until the
  // references are right.
  if (!reference_errors_) CheckCycles();
  return std::move(pipeline_);
}

// ---------------------------------------------------------------------------
// Params.

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

bool Loader::ReadParam(const YamlNode& node, const FieldPath& path, Param* param, bool* has_value) {
  // Shorthand `epochs: 3`: the type follows from how the value is written,
  // as YAML 1.2 would type it.
  auto infer = [&](const YamlNode& value, const FieldPath& value_path) {
    if (value.IsSequence()) return ReadParamList(value, value_path, param);
    if (!value.IsScalar()) {
      WrongType(value, value_path, "a scalar, a list or {type, default, description}");
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
  };

  if (!node.IsMap()) return infer(node, path);
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
  if (!fields.has("type")) return infer(value, value_path) && ok;
  if (!type) return false;
  param->type = *type;
  if (*type == ParamType::kList) {
    if (!value.IsSequence()) {
      WrongType(value, value_path, "a list");
      return false;
    }
    return ReadParamList(value, value_path, param);
  }
  auto text = ReadScalar(value, value_path, StrCat("a ", ParamTypeName(*type)));
  if (!text) return false;
  auto normalized = NormalizeParamValue(*type, *text);
  if (!normalized) {
    Error(value, value_path,
          StrCat("invalid ", ParamTypeName(*type), " ", Quote(*text), " for param '", param->name,
                 "'"));
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

// ---------------------------------------------------------------------------
// Defaults and stages.

void Loader::ReadDefaults(const YamlNode& node, const FieldPath& path) {
  if (node.IsNull()) return;
  Fields fields(DefaultsKeys());
  if (!ReadFields(node, path, &fields)) return;
  if (YamlNode value = fields.value("resources"); value.IsDefined()) {
    defaults_.resources = ReadResources(value, path.Key("resources"));
  }
  if (YamlNode value = fields.value("retries"); value.IsDefined()) {
    defaults_.retries = ReadRetries(value, path.Key("retries"));
  }
  if (YamlNode value = fields.value("timeout"); value.IsDefined()) {
    defaults_.timeout = ReadTimeout(value, path.Key("timeout"));
  }
  if (YamlNode value = fields.value("cache"); value.IsDefined()) {
    defaults_.cache = ReadBool(value, path.Key("cache"));
  }
}

void Loader::ReadStages(const YamlNode& node, const FieldPath& path) {
  if (node.IsNull() || (node.IsMap() && node.size() == 0)) {
    Error(node, path, "at least one stage is required");
    return;
  }
  if (!node.IsMap()) {
    WrongType(node, path, "a map");
    return;
  }
  const size_t count = Count(node);
  const size_t expected = std::min(count, kMaxStages);
  pipeline_.stages.reserve(expected);
  sources_.reserve(expected);
  stage_index_.reserve(expected);
  // Like ForEachEntry, but with the stage index as the record of names seen:
  // one hash map fewer on a pipeline of 100k stages.
  for (size_t i = 0; i < count; ++i) {
    const YamlNode::Entry entry = node.entry(i);
    if (!entry.key.IsScalar()) {
      Error(entry.key, path, StrCat("expected a string key, got ", Describe(entry.key)));
      continue;
    }
    const std::string_view name = entry.key.Scalar();
    const FieldPath stage_path = path.Key(name);
    // The lookup for a repeat also records the name, as the stage about to
    // be added (ReadStage does not use the index): one hash per stage.
    const bool room = pipeline_.stages.size() < kMaxStages;
    const auto [first, fresh] =
        room ? stage_index_.try_emplace(name, static_cast<uint32_t>(pipeline_.stages.size()))
             : std::pair(stage_index_.find(name), false);
    const bool repeated = room ? !fresh : first != stage_index_.end();
    if (repeated) {
      Error(entry.key, stage_path,
            StrCat("duplicate stage ", Quote(name), " (first defined at line ",
                   pipeline_.stages[first->second].location.line, ")"));
    }
    CheckName(name, entry.key, stage_path, "stage", IsStageName(name),
              "use letters, digits, '_' and '-', starting with a letter", /*limit_length=*/true);
    // A stage that is kept is read in place: a Stage is about 500 bytes, and
    // moving 100k of them shows in the profile. A repeated stage is still
    // read, so that its own mistakes are reported, and then dropped.
    const bool keep = !repeated && room;
    std::optional<Stage> dropped_stage;
    std::optional<StageSource> dropped_source;
    Stage& stage = keep ? pipeline_.stages.emplace_back() : dropped_stage.emplace();
    StageSource& source = keep ? sources_.emplace_back() : dropped_source.emplace();
    stage.name = std::string(name);
    stage.location = {entry.key.line(), entry.key.column()};
    source.name = name;
    ReadStage(entry.value, stage_path, &stage, &source);
    if (repeated) continue;
    if (!keep) {
      if (!stage_limit_reported_) {
        Error(entry.key, stage_path,
              StrCat("more than ", kMaxStages, " stages: fan out with foreach"));
      }
      stage_limit_reported_ = true;
    }
  }
}

void Loader::ReadStage(const YamlNode& node, const FieldPath& path, Stage* stage,
                       StageSource* source) {
  Fields fields(StageKeys());
  if (!ReadFields(node, path, &fields)) {
    source->outputs_known = false;
    return;
  }
  if (YamlNode kind = fields.value("kind"); kind.IsDefined()) {
    if (auto parsed = ReadEnum<StageKind>(kind, path.Key("kind"), "kind", StageKindNames(),
                                          &ParseStageKind)) {
      stage->kind = *parsed;
    }
  }
  stage->io = DefaultIoProfile(stage->kind);
  if (YamlNode description = fields.value("description"); description.IsDefined()) {
    if (auto text = ReadString(description, path.Key("description"))) {
      stage->description = std::move(*text);
    }
  }
  // foreach before run: `{{ item }}` in run needs a foreach.
  const YamlNode foreach = fields.value("foreach");
  if (foreach.IsDefined()) stage->foreach = ReadForeach(foreach, path.Key("foreach"));
  if (YamlNode run = fields.value("run"); run.IsDefined()) {
    ReadCommand(run, path.Key("run"), foreach.IsDefined(), &stage->run);
  } else if (fields.IsMissing("run")) {
    Error(node, path, "missing required key 'run'");
  }
  if (YamlNode needs = fields.value("needs"); needs.IsDefined()) {
    ReadNeeds(needs, path.Key("needs"), stage, source);
  }
  if (YamlNode inputs = fields.value("inputs"); inputs.IsDefined()) {
    ReadInputs(inputs, path.Key("inputs"), stage, source);
  }
  if (YamlNode outputs = fields.value("outputs"); outputs.IsDefined()) {
    ReadOutputs(outputs, path.Key("outputs"), stage, source);
  }
  if (YamlNode io = fields.value("io"); io.IsDefined()) ReadIo(io, path.Key("io"), &stage->io);

  // Defaults apply as whole values, never merged field by field.
  if (YamlNode value = fields.value("resources"); value.IsDefined()) {
    if (auto resources = ReadResources(value, path.Key("resources"))) {
      stage->resources = *resources;
    }
  } else if (defaults_.resources) {
    stage->resources = *defaults_.resources;
  }
  if (YamlNode value = fields.value("retries"); value.IsDefined()) {
    if (auto retries = ReadRetries(value, path.Key("retries"))) stage->retries = *retries;
  } else if (defaults_.retries) {
    stage->retries = *defaults_.retries;
  }
  if (YamlNode value = fields.value("timeout"); value.IsDefined()) {
    stage->timeout = ReadTimeout(value, path.Key("timeout"));
  } else {
    stage->timeout = defaults_.timeout;
  }
  // Ingested data cannot be fetched again, so an ingest stage does not reuse
  // an earlier attempt unless asked to.
  stage->cache = defaults_.cache.value_or(stage->kind != StageKind::kIngest);
  if (YamlNode value = fields.value("cache"); value.IsDefined()) {
    if (auto cache = ReadBool(value, path.Key("cache"))) stage->cache = *cache;
  }
  if (YamlNode value = fields.value("tier"); value.IsDefined()) {
    const FieldPath tier_path = path.Key("tier");
    if (auto tier = ReadString(value, tier_path)) {
      if (tier->empty()) {
        WrongType(value, tier_path, "a tier name");
      } else {
        stage->tier = std::move(*tier);
      }
    }
  }
  if (YamlNode value = fields.value("checkpoints"); value.IsDefined()) {
    ReadCheckpoints(value, path.Key("checkpoints"), &stage->checkpoints);
  }
  if (YamlNode value = fields.value("env"); value.IsDefined()) {
    ReadEnv(value, path.Key("env"), &stage->env);
  }
}

void Loader::ReadCommand(const YamlNode& node, const FieldPath& path, bool has_foreach,
                         Command* command) {
  if (node.IsScalar()) {
    const std::string_view script = node.Scalar();
    if (TrimWhitespace(script).empty()) {
      Error(node, path, "empty command");
      return;
    }
    CheckShellTemplates(script, node, path);
    command->shell = script;
    return;
  }
  if (!node.IsSequence()) {
    WrongType(node, path, "a list of strings (argv) or a string (shell script)");
    return;
  }
  const size_t count = Count(node);
  if (count == 0) {
    Error(node, path, "empty command: give at least the program to run");
    return;
  }
  command->argv.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const YamlNode arg = node.at(i);
    const FieldPath arg_path = path.Index(i);
    auto text = ReadScalar(arg, arg_path);
    if (!text) continue;
    if (i == 0 && text->empty()) Error(arg, arg_path, "empty program name");
    CheckArgvTemplates(*text, arg, arg_path, has_foreach);
    command->argv.emplace_back(*text);
  }
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

void Loader::ReadNeeds(const YamlNode& node, const FieldPath& path, Stage* stage,
                       StageSource* source) {
  if (!node.IsSequence()) {
    WrongType(node, path, "a list of stage names");
    return;
  }
  const size_t count = Count(node);
  stage->needs.reserve(count);
  source->needs.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const YamlNode item = node.at(i);
    if (auto name = ReadScalar(item, path.Index(i), "a stage name")) {
      stage->needs.emplace_back(*name);
      source->needs.push_back({*name, item});
    }
  }
}

void Loader::ReadInputs(const YamlNode& node, const FieldPath& path, Stage* stage,
                        StageSource* source) {
  if (node.IsNull()) return;
  CaseInsensitiveNames upper_names;
  ForEachEntry(
      node, path, "input",
      [&](std::string_view name, const YamlNode& key, const YamlNode& value, bool repeated) {
        const FieldPath input_path = path.Key(name);
        if (CheckName(name, key, input_path, "input", IsIdentifier(name), kIdentifierRule) &&
            !repeated) {
          CheckCaseCollision(&upper_names, name, key, input_path, "input", "TIERFLOW_INPUT_");
        }
        InputRef input;
        input.name = std::string(name);
        YamlNode reference = value;
        FieldPath reference_path = input_path;
        const bool from_map = value.IsMap();
        if (from_map) {
          Fields fields(InputKeys());
          ReadFields(value, input_path, &fields);
          if (YamlNode stream = fields.value("stream"); stream.IsDefined()) {
            input.stream = ReadBool(stream, input_path.Key("stream")).value_or(false);
          }
          reference = fields.value("from");
          if (!reference.IsDefined()) {
            if (fields.IsMissing("from")) Error(value, input_path, "missing required key 'from'");
            return;
          }
          reference_path = input_path.Key("from");
        }
        if (!reference.IsScalar()) {
          WrongType(
              reference, reference_path,
              from_map ? "'stage.output'" : "'stage.output' or {from: stage.output, stream: bool}");
          return;
        }
        const std::string_view text = reference.Scalar();
        const size_t dot = text.find('.');
        if (dot == std::string_view::npos || dot == 0 || dot + 1 == text.size() ||
            text.find('.', dot + 1) != std::string_view::npos) {
          Error(reference, reference_path,
                StrCat("invalid reference ", Quote(text), ": expected the form stage.output"));
          reference_errors_ = true;
          return;
        }
        if (repeated) return;
        input.stage = std::string(text.substr(0, dot));
        input.output = std::string(text.substr(dot + 1));
        input.location = {reference.line(), reference.column()};
        stage->inputs.push_back(std::move(input));
        source->input_refs.push_back(reference);
        source->input_from_map.push_back(from_map);
      });
}

void Loader::ReadOutputs(const YamlNode& node, const FieldPath& path, Stage* stage,
                         StageSource* source) {
  if (node.IsNull()) return;
  CaseInsensitiveNames upper_names;
  // Declares one output; nullptr for a repeat. An output with a bad name is
  // still declared, so references to it are not reported as well.
  auto declare = [&](std::string_view name, const YamlNode& at, const FieldPath& output_path,
                     bool repeated) -> OutputSpec* {
    if (CheckName(name, at, output_path, "output", IsIdentifier(name), kIdentifierRule) &&
        !repeated) {
      CheckCaseCollision(&upper_names, name, at, output_path, "output", "TIERFLOW_OUTPUT_");
    }
    if (repeated) return nullptr;
    OutputSpec& output = stage->outputs.emplace_back();
    output.name = std::string(name);
    output.location = {at.line(), at.column()};
    return &output;
  };
  if (node.IsSequence()) {
    const size_t count = Count(node);
    stage->outputs.reserve(count);
    SeenNames<int> first_line;
    for (size_t i = 0; i < count; ++i) {
      const YamlNode item = node.at(i);
      const FieldPath item_path = path.Index(i);
      auto name = ReadScalar(item, item_path, "an output name");
      if (!name) continue;
      auto [line, fresh] = first_line.Insert(*name, item.line());
      if (!fresh) {
        Error(item, item_path,
              StrCat("duplicate output ", Quote(*name), " (first defined at line ", line, ")"));
      }
      declare(*name, item, item_path, !fresh);
    }
    return;
  }
  if (!node.IsMap()) {
    WrongType(node, path, "a list of names or a map of name to {size, durability}");
    source->outputs_known = false;
    return;
  }
  ForEachEntry(
      node, path, "output",
      [&](std::string_view name, const YamlNode& key, const YamlNode& value, bool repeated) {
        const FieldPath output_path = path.Key(name);
        OutputSpec* output = declare(name, key, output_path, repeated);
        OutputSpec ignored;
        ReadOutputSpec(value, output_path, output != nullptr ? output : &ignored);
      });
}

void Loader::ReadOutputSpec(const YamlNode& node, const FieldPath& path, OutputSpec* output) {
  if (node.IsNull()) return;
  if (node.IsScalar()) {
    if (auto size = ReadSize(node, path)) output->size_hint = *size;
    return;
  }
  if (!node.IsMap()) {
    WrongType(node, path, "a size, null or {size, durability}");
    return;
  }
  Fields fields(OutputKeys());
  ReadFields(node, path, &fields);
  if (YamlNode size = fields.value("size"); size.IsDefined()) {
    output->size_hint = ReadSize(size, path.Key("size")).value_or(0);
  }
  if (YamlNode durability = fields.value("durability"); durability.IsDefined()) {
    output->durability = ReadEnum<Durability>(durability, path.Key("durability"), "durability",
                                              DurabilityNames(), &ParseDurability);
  }
}

void Loader::ReadIo(const YamlNode& node, const FieldPath& path, IoProfile* io) {
  Fields fields(IoKeys());
  if (!ReadFields(node, path, &fields)) return;
  auto pattern = [&](std::string_view key, AccessPattern* out) {
    if (YamlNode value = fields.value(key); value.IsDefined()) {
      if (auto parsed = ReadEnum<AccessPattern>(value, path.Key(key), "access pattern",
                                                AccessPatternNames(), &ParseAccessPattern)) {
        *out = *parsed;
      }
    }
  };
  auto size = [&](std::string_view key, uint64_t* out) {
    if (YamlNode value = fields.value(key); value.IsDefined()) {
      if (auto parsed = ReadSize(value, path.Key(key))) *out = *parsed;
    }
  };
  auto count = [&](std::string_view key, uint32_t* out) {
    if (YamlNode value = fields.value(key); value.IsDefined()) {
      if (auto parsed = ReadInt(value, path.Key(key), 1, std::numeric_limits<uint32_t>::max())) {
        *out = static_cast<uint32_t>(*parsed);
      }
    }
  };
  pattern("read", &io->read);
  pattern("write", &io->write);
  size("block_size", &io->block_size);
  size("read_bytes", &io->read_bytes);
  size("write_bytes", &io->write_bytes);
  count("read_passes", &io->read_passes);
  count("streams", &io->streams);
  if (YamlNode value = fields.value("durability"); value.IsDefined()) {
    if (auto parsed = ReadEnum<Durability>(value, path.Key("durability"), "durability",
                                           DurabilityNames(), &ParseDurability)) {
      io->durability = *parsed;
    }
  }
}

std::optional<Resources> Loader::ReadResources(const YamlNode& node, const FieldPath& path) {
  Fields fields(ResourceKeys());
  if (!ReadFields(node, path, &fields)) return std::nullopt;
  Resources resources;
  bool ok = true;
  if (YamlNode value = fields.value("cpus"); value.IsDefined()) {
    auto cpus = ReadNumber(value, path.Key("cpus"), 0, /*min_inclusive=*/false);
    if (cpus) resources.cpus = *cpus;
    ok = ok && cpus.has_value();
  }
  if (YamlNode value = fields.value("memory"); value.IsDefined()) {
    auto memory = ReadSize(value, path.Key("memory"));
    if (memory) resources.memory = *memory;
    ok = ok && memory.has_value();
  }
  if (YamlNode value = fields.value("gpus"); value.IsDefined()) {
    auto gpus = ReadInt(value, path.Key("gpus"), 0, std::numeric_limits<uint32_t>::max());
    if (gpus) resources.gpus = static_cast<uint32_t>(*gpus);
    ok = ok && gpus.has_value();
  }
  if (YamlNode value = fields.value("labels"); value.IsDefined() && !value.IsNull()) {
    const FieldPath labels = path.Key("labels");
    ForEachEntry(value, labels, "label",
                 [&](std::string_view name, const YamlNode&, const YamlNode& text, bool repeated) {
                   auto read = ReadString(text, labels.Key(name));
                   if (!read) ok = false;
                   if (read && !repeated) resources.labels.emplace(std::string(name), *read);
                 });
  }
  return ok ? std::optional<Resources>(resources) : std::nullopt;
}

std::optional<RetryPolicy> Loader::ReadRetries(const YamlNode& node, const FieldPath& path) {
  constexpr int64_t kMaxLimit = std::numeric_limits<uint32_t>::max();
  RetryPolicy retries;
  if (node.IsScalar()) {
    auto limit = ReadInt(node, path, 0, kMaxLimit);
    if (!limit) return std::nullopt;
    retries.limit = static_cast<uint32_t>(*limit);
    return retries;
  }
  if (!node.IsMap()) {
    WrongType(node, path, "an integer or {limit, backoff, factor, max_backoff}");
    return std::nullopt;
  }
  Fields fields(RetryKeys());
  ReadFields(node, path, &fields);
  bool ok = true;
  if (YamlNode value = fields.value("limit"); value.IsDefined()) {
    auto limit = ReadInt(value, path.Key("limit"), 0, kMaxLimit);
    if (limit) retries.limit = static_cast<uint32_t>(*limit);
    ok = ok && limit.has_value();
  }
  if (YamlNode value = fields.value("backoff"); value.IsDefined()) {
    auto backoff = ReadDuration(value, path.Key("backoff"));
    if (backoff) retries.backoff = *backoff;
    ok = ok && backoff.has_value();
  }
  if (YamlNode value = fields.value("factor"); value.IsDefined()) {
    auto factor = ReadNumber(value, path.Key("factor"), 1, /*min_inclusive=*/true);
    if (factor) retries.factor = *factor;
    ok = ok && factor.has_value();
  }
  if (YamlNode value = fields.value("max_backoff"); value.IsDefined()) {
    auto max_backoff = ReadDuration(value, path.Key("max_backoff"));
    if (max_backoff) retries.max_backoff = *max_backoff;
    ok = ok && max_backoff.has_value();
  }
  return ok ? std::optional<RetryPolicy>(retries) : std::nullopt;
}

std::optional<Duration> Loader::ReadTimeout(const YamlNode& node, const FieldPath& path) {
  auto timeout = ReadDuration(node, path);
  if (timeout && timeout->count() <= 0) {
    Error(node, path, "must be greater than 0");
    return std::nullopt;
  }
  return timeout;
}

void Loader::ReadCheckpoints(const YamlNode& node, const FieldPath& path,
                             CheckpointSpec* checkpoints) {
  constexpr std::string_view kExpected = "true, false or {keep, tier}";
  if (node.IsScalar() && ParseYamlBool(node.Scalar())) {
    checkpoints->enabled = *ParseYamlBool(node.Scalar());
    return;
  }
  if (!node.IsMap()) {
    WrongType(node, path, kExpected);
    return;
  }
  checkpoints->enabled = true;
  Fields fields(CheckpointKeys());
  ReadFields(node, path, &fields);
  if (YamlNode value = fields.value("keep"); value.IsDefined()) {
    if (auto keep = ReadInt(value, path.Key("keep"), 1, std::numeric_limits<uint32_t>::max())) {
      checkpoints->keep = static_cast<uint32_t>(*keep);
    }
  }
  if (YamlNode value = fields.value("tier"); value.IsDefined()) {
    if (auto tier = ReadString(value, path.Key("tier"))) {
      if (tier->empty()) {
        WrongType(value, path.Key("tier"), "a tier name");
      } else {
        checkpoints->tier = std::move(*tier);
      }
    }
  }
}

void Loader::ReadEnv(const YamlNode& node, const FieldPath& path,
                     std::map<std::string, std::string>* env) {
  if (node.IsNull()) return;
  ForEachEntry(
      node, path, "key",
      [&](std::string_view name, const YamlNode& key, const YamlNode& value, bool repeated) {
        const FieldPath var_path = path.Key(name);
        if (CheckName(name, key, var_path, "environment variable", IsIdentifier(name),
                      kIdentifierRule) &&
            name.starts_with("TIERFLOW_")) {
          Error(key, var_path,
                StrCat("environment variable ", Quote(name),
                       " is reserved: tierflow sets the TIERFLOW_* variables"));
        }
        auto text = ReadString(value, var_path);
        if (text && !repeated) env->emplace(std::string(name), std::move(*text));
      });
}

// ---------------------------------------------------------------------------
// foreach.

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

// ---------------------------------------------------------------------------
// References between stages, and cycles.

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
    const Stage& stage = pipeline_.stages[s];
    const StageSource& source = sources_[s];
    const FieldPath stage_path = stages_path.Key(source.name);
    const FieldPath needs_path = stage_path.Key("needs");
    for (size_t i = 0; i < source.needs.size(); ++i) {
      const StageSource::Need& need = source.needs[i];
      if (need.name == stage.name) {
        Error(need.node, needs_path.Index(i),
              StrCat("stage ", Quote(stage.name), " cannot depend on itself"));
        reference_errors_ = true;
      } else if (auto parent = stage_index_.find(need.name); parent != stage_index_.end()) {
        edges_.emplace_back(parent->second, static_cast<uint32_t>(s));
      } else {
        Error(need.node, needs_path.Index(i),
              StrCat("unknown stage ", Quote(need.name), SuggestStage(need.name)));
        reference_errors_ = true;
      }
    }
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
      edges_.emplace_back(producer->second, static_cast<uint32_t>(s));
      if (!sources_[producer->second].outputs_known) continue;
      const Stage& from = pipeline_.stages[producer->second];
      if (std::any_of(from.outputs.begin(), from.outputs.end(),
                      [&](const OutputSpec& output) { return output.name == input.output; })) {
        continue;
      }
      std::vector<std::string> outputs;
      outputs.reserve(from.outputs.size());
      for (const OutputSpec& output : from.outputs) outputs.push_back(output.name);
      std::string hint = DidYouMean(input.output, outputs);
      if (hint.empty()) {
        constexpr size_t kListed = 10;
        if (outputs.empty()) {
          hint = " (it declares no outputs)";
        } else if (outputs.size() <= kListed) {
          hint = StrCat(" (its outputs: ", absl::StrJoin(outputs, ", "), ")");
        } else {
          outputs.resize(kListed);
          hint = StrCat(" (its outputs: ", absl::StrJoin(outputs, ", "), ", ...)");
        }
      }
      Error(at, path,
            StrCat("stage ", Quote(from.name), " has no output ", Quote(input.output), hint));
      reference_errors_ = true;
    }
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

absl::Status ReadFileStatus(const std::string& path, int error) {
  const std::string message = StrCat("cannot read pipeline file '", CEscape(path),
                                     "': ", std::string_view(std::strerror(error)));
  switch (error) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    default:
      return absl::InvalidArgumentError(message);
  }
}

}  // namespace

absl::StatusOr<Pipeline> LoadPipelineText(std::string_view text, std::string_view file,
                                          const LoadOptions& options,
                                          std::vector<Diagnostic>* diagnostics) {
  std::vector<Diagnostic> found;
  Pipeline pipeline;
  try {
    if (text.size() > kMaxFileBytes) {
      found.push_back(Diagnostic{std::string(file), 0, 0, "",
                                 StrCat("the file is larger than ", kMaxFileBytes >> 20,
                                        " MiB, too large for a pipeline")});
    } else if (absl::StatusOr<std::unique_ptr<YamlDocument>> doc = YamlDocument::Parse(text);
               !doc.ok()) {
      if (doc.status().code() != absl::StatusCode::kInvalidArgument) return doc.status();
      Diagnostic syntax = SyntaxDiagnostic(file, doc.status());
      syntax.message = StrCat("YAML syntax error: ", syntax.message);
      found.push_back(std::move(syntax));
    } else if ((*doc)->root().IsNull() && (*doc)->root().line() == 0) {
      found.push_back(Diagnostic{std::string(file), 1, 1, "",
                                 "the file is empty: expected a map with 'name' and 'stages'"});
    } else {
      Loader loader(**doc, text.size(), file, options);
      pipeline = loader.Load();
      found = loader.TakeDiagnostics();
    }
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(StrCat(file, ": out of memory while loading the pipeline"));
  }
  if (found.empty()) return pipeline;
  SortDiagnostics(found);
  absl::Status status = DiagnosticsToStatus(found);
  if (diagnostics != nullptr) {
    diagnostics->insert(diagnostics->end(), std::make_move_iterator(found.begin()),
                        std::make_move_iterator(found.end()));
  }
  return status;
}

absl::StatusOr<Pipeline> LoadPipelineFile(const std::string& path, const LoadOptions& options,
                                          std::vector<Diagnostic>* diagnostics) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return ReadFileStatus(path, errno);
  std::string text;
  char buffer[1 << 16];
  size_t read = 0;
  while ((read = std::fread(buffer, 1, sizeof buffer, file)) > 0) {
    text.append(buffer, read);
    // LoadPipelineText reports a file this large; no need to read it all.
    if (text.size() > kMaxFileBytes) break;
  }
  const int error = std::ferror(file) ? errno : 0;
  std::fclose(file);
  if (error != 0) return ReadFileStatus(path, error);
  return LoadPipelineText(text, path, options, diagnostics);
}

}  // namespace tierflow::dag
