// What the parts of the pipeline loader share (dag/loader.h is its public
// face): the Loader, one schema walk over a YamlDocument into a Pipeline,
// whose members are defined across loader.cc (entry point, names),
// loader_params.cc (params and templates), loader_stage.cc (stages),
// loader_foreach.cc (foreach items), loader_stage_params.cc (a stage's
// params) and loader_references.cc (references
// between stages, cycles). Not for use outside dag/loader*.cc. A Loader
// serves one load on one thread.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "common/yaml_fields.h"
#include "common/yaml_tree.h"
#include "dag/loader.h"
#include "dag/pipeline.h"

namespace tierflow::dag::internal {

// Input, output, param and environment variable names.
bool IsIdentifier(std::string_view name);
bool IsStageName(std::string_view name);
bool IsPipelineName(std::string_view name);
inline constexpr std::string_view kIdentifierRule =
    "use letters, digits and '_', starting with a letter or '_'";

// The param NAME of a whole value `{{ params.NAME }}` (foreach, range
// bounds); nullopt for any other text.
std::optional<std::string_view> WholeParamTemplate(std::string_view text);

// Whether an `inputs:` map gives any input as {from: ..., each: true}
// (loader_mapping.cc): such a stage is mapped, and may use `{{ item }}`.
bool HasEachInput(const YamlNode& inputs);

// `foreach: {from: ...}`: a dynamic fan-out (loader_dynamic.cc).
bool IsDynamicForeach(const YamlNode& node);

// What to say after "stage 'x' has no output 'y'": the output meant, or
// the outputs there are (loader_references.cc).
std::string MissingOutputHint(const Stage& from, std::string_view output);

// Compares and hashes names as the TIERFLOW_<KIND>_<NAME> variables they
// become: ASCII letters without regard to case (AsciiUpper's rule).
inline char UpperAscii(char c) {
  return static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
}
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
  // Item-wise mapping (loader_mapping.cc): the `each:` value of each input
  // (undefined when not given), parallel to Stage::inputs; the `foreach:`
  // node and, for `foreach: {over: STAGE}`, the STAGE node.
  std::vector<YamlNode> input_each;
  YamlNode foreach;
  YamlNode foreach_over;
  bool outputs_known = true;  // false when `outputs:` could not be read
  YamlNode foreach_from;  // `foreach: {from: ...}`'s reference
};

// The schema walk: reads the tree into a Pipeline and records a Diagnostic
// for every problem instead of stopping at the first. It only ever descends
// as deep as the format does, so a tree that aliases into itself cannot
// make it loop. Its reads of single fields are the FieldReader's, in the
// pipeline's wording (Wording::kSuggest).
class Loader : public FieldReader {
 public:
  // `text_size` bounds the number of nodes in `doc`, and with it the
  // visits of the walk: each node takes a byte at least.
  Loader(const YamlDocument& doc, size_t text_size, std::string_view file,
         const LoadOptions& options);

  Pipeline Load();

 private:
  // Names (loader.cc).
  bool CheckName(std::string_view name, const YamlNode& at, const FieldPath& path,
                 std::string_view what, bool valid, std::string_view rule,
                 bool limit_length = false);
  // Names that differ only in case would be one TIERFLOW_<KIND>_<NAME>
  // variable.
  void CheckCaseCollision(CaseInsensitiveNames* seen, std::string_view name, const YamlNode& at,
                          const FieldPath& path, std::string_view what,
                          std::string_view variable_prefix);

  // Params and templates (loader_params.cc).
  void ReadParams(const YamlNode& node, const FieldPath& path);
  bool ReadParam(const YamlNode& node, const FieldPath& path, Param* param, bool* has_value);
  // Shorthand `epochs: 3`, or a default without a type: the type follows
  // from how the value is written, as YAML 1.2 would type it.
  bool ReadUntypedParam(const YamlNode& value, const FieldPath& path, Param* param);
  // The default of a param whose type is declared (param->type).
  bool ReadTypedDefault(const YamlNode& value, const FieldPath& path, Param* param);
  bool ReadParamList(const YamlNode& node, const FieldPath& path, Param* param);
  void ApplyOverrides();
  // The param `{{ params.NAME }}` names if it has a usable value. Reports a
  // name that is not declared; declared but broken ones were reported where
  // they are declared.
  const Param* UsableParam(std::string_view name, std::string_view written, const YamlNode& at,
                           const FieldPath& path);
  void CheckArgvTemplates(std::string_view arg, const YamlNode& at, const FieldPath& path,
                          bool has_foreach);
  void CheckShellTemplates(std::string_view script, const YamlNode& at, const FieldPath& path);

  // Defaults and stages (loader_stage.cc).
  void ReadDefaults(const YamlNode& node, const FieldPath& path);
  void ReadStages(const YamlNode& node, const FieldPath& path);
  void ReadStage(const YamlNode& node, const FieldPath& path, Stage* stage, StageSource* source);
  // How a stage runs: resources, retries, timeout, cache, tier,
  // checkpoints, env, slurm.
  void ReadRunPolicy(const Fields& fields, const FieldPath& path, Stage* stage);
  void ReadCommand(const YamlNode& node, const FieldPath& path, bool has_foreach, Command* command);
  void ReadNeeds(const YamlNode& node, const FieldPath& path, Stage* stage, StageSource* source);
  void ReadInputs(const YamlNode& node, const FieldPath& path, Stage* stage, StageSource* source);
  void ReadOutputs(const YamlNode& node, const FieldPath& path, Stage* stage, StageSource* source);
  void ReadOutputSpec(const YamlNode& node, const FieldPath& path, OutputSpec* output);
  void ReadIo(const YamlNode& node, const FieldPath& path, IoProfile* io);
  std::optional<Resources> ReadResources(const YamlNode& node, const FieldPath& path);
  std::optional<RetryPolicy> ReadRetries(const YamlNode& node, const FieldPath& path);
  std::optional<Duration> ReadTimeout(const YamlNode& node, const FieldPath& path);
  void ReadCheckpoints(const YamlNode& node, const FieldPath& path, CheckpointSpec* checkpoints);
  // `slurm: {items_per_job: N, options: [ARG, ...]}`.
  void ReadSlurm(const YamlNode& node, const FieldPath& path, SlurmStageOptions* slurm);
  // A tier's name: any non-empty string.
  std::optional<std::string> ReadTierName(const YamlNode& node, const FieldPath& path);
  void ReadEnv(const YamlNode& node, const FieldPath& path,
               std::map<std::string, std::string>* env);
  // `params:` and the params a stage's run and env reference
  // (loader_stage_params.cc): resolves Stage::param_scope and Stage::params.
  void ReadStageParams(const YamlNode& node, const FieldPath& path, Stage* stage);
  // foreach (loader_foreach.cc).
  std::optional<std::vector<std::string>> ReadForeach(const YamlNode& node, const FieldPath& path);
  std::optional<std::vector<std::string>> ReadRange(const YamlNode& node, const FieldPath& path);
  std::optional<int64_t> ReadRangeBound(const YamlNode& node, const FieldPath& path);
  std::optional<std::vector<std::string>> ParamItems(const YamlNode& node, const FieldPath& path);
  bool CheckItemCount(uint64_t count, const YamlNode& at, const FieldPath& path);
  // `foreach: {from: STAGE.OUTPUT, format: ...}` (loader_dynamic.cc).
  void ReadForeachFrom(const YamlNode& node, const FieldPath& path, Stage* stage,
                       StageSource* source);
  void CheckForeachFrom(uint32_t s, const FieldPath& stage_path);

  // Item-wise mapping (loader_mapping.cc). `foreach: {over: STAGE}` read
  // into `source`, resolved with the others once every stage is read.
  void ReadForeachOver(const YamlNode& node, const FieldPath& path, StageSource* source);
  // Sets each mapped stage's items, foreach_over and its inputs' `each`,
  // and reports what does not fit; before CheckCycles.
  void ResolveMappings();
  enum class MapState : uint8_t { kUnvisited, kVisiting, kDone, kFailed };
  void ResolveMapping(uint32_t s, std::vector<MapState>& state);
  void CheckEachInputs(uint32_t s, std::vector<MapState>& state);
  // The stage whose items `s` has: itself for a list or `from:`, else the
  // root of what it is mapped over.
  uint32_t ItemRoot(uint32_t s) const;
  // Whether stages a and b (both foreach, resolved) have the same items in
  // the same order; else `difference` says how they differ.
  bool SameItems(uint32_t a, uint32_t b, std::string* difference) const;

  // References and cycles (loader_references.cc).
  // Every `needs` and input names a stage (and an output of it) that
  // exists; records the edges between stages for HasCycle.
  void CheckReferences();
  void CheckNeeds(uint32_t s, const FieldPath& stage_path);
  void CheckInputs(uint32_t s, const FieldPath& stage_path);
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

}  // namespace tierflow::dag::internal
