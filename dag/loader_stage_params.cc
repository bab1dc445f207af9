// The pipeline loader's stage params: which of the pipeline's params a
// stage sees (TIERFLOW_PARAM_<NAME>, argv templates) and is keyed by in the
// task cache. Those its run and env reference, plus those it declares with
// `params: [a, b]`, or all of them with `params: all`
// (docs/pipeline-format.md "Params"). Part of the Loader
// (dag/internal/loader_internal.h).
#include <string>
#include <string_view>
#include <vector>

#include "common/strings.h"
#include "common/suggest.h"
#include "common/yaml_fields.h"
#include "dag/internal/loader_internal.h"

namespace tierflow::dag::internal {
namespace {

constexpr std::string_view kVariablePrefix = "TIERFLOW_PARAM_";

bool IsIdentifierChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// Marks in `used` (parallel to pipeline.params) the params `text` names:
// `{{ params.NAME }}`, and the whole word TIERFLOW_PARAM_<NAME> however it
// is read ($X, ${X}, ${X:-default}, os.environ["X"]). The variable's name
// is the param's upper-cased (TaskGraph::TaskEnvironment), so matching is
// on that exact spelling.
void MarkReferences(std::string_view text, const Pipeline& pipeline, std::vector<bool>* used) {
  for (size_t at = text.find(kVariablePrefix); at != std::string_view::npos;
       at = text.find(kVariablePrefix, at + 1)) {
    if (at > 0 && IsIdentifierChar(text[at - 1])) continue;
    size_t end = at + kVariablePrefix.size();
    while (end < text.size() && IsIdentifierChar(text[end])) ++end;
    const std::string_view name =
        text.substr(at + kVariablePrefix.size(), end - at - kVariablePrefix.size());
    for (size_t p = 0; p < pipeline.params.size(); ++p) {
      if (AsciiUpper(pipeline.params[p].name) == name) (*used)[p] = true;
    }
  }
  for (size_t open = text.find("{{"); open != std::string_view::npos;
       open = text.find("{{", open + 2)) {
    const size_t close = text.find("}}", open + 2);
    if (close == std::string_view::npos) break;
    std::string_view inner = TrimWhitespace(text.substr(open + 2, close - open - 2));
    if (!inner.starts_with("params.")) continue;
    inner.remove_prefix(std::string_view("params.").size());
    for (size_t p = 0; p < pipeline.params.size(); ++p) {
      if (pipeline.params[p].name == inner) (*used)[p] = true;
    }
  }
}

}  // namespace

void Loader::ReadStageParams(const YamlNode& node, const FieldPath& path, Stage* stage) {
  std::vector<bool> used(pipeline_.params.size(), false);
  if (node.IsDefined()) {
    if (node.IsScalar() && node.Scalar() == "all") {
      stage->param_scope = ParamScope::kAll;
      used.assign(used.size(), true);
    } else if (!node.IsSequence()) {
      WrongType(node, path, "a list of param names or 'all'");
    } else {
      stage->param_scope = ParamScope::kDeclared;
      SeenNames<int> first_line;
      const size_t count = Count(node);
      for (size_t i = 0; i < count; ++i) {
        const YamlNode entry = node.at(i);
        const FieldPath entry_path = path.Index(i);
        auto name = ReadScalar(entry, entry_path, "a param name");
        if (!name) continue;
        auto [first, fresh] = first_line.Insert(*name, entry.line());
        if (!fresh) {
          Error(entry, entry_path,
                StrCat("duplicate param ", Quote(*name), " (first at line ", first, ")"));
          continue;
        }
        auto it = param_index_.find(*name);
        if (it == param_index_.end()) {
          Error(entry, entry_path,
                StrCat("unknown param ", Quote(*name), " in params",
                       DidYouMean(*name, param_names_)));
          continue;
        }
        used[it->second] = true;
      }
    }
  }
  for (const std::string& arg : stage->run.argv) MarkReferences(arg, pipeline_, &used);
  MarkReferences(stage->run.shell, pipeline_, &used);
  for (const auto& [name, value] : stage->env) MarkReferences(value, pipeline_, &used);
  stage->params.clear();
  for (size_t p = 0; p < used.size(); ++p) {
    if (used[p]) stage->params.push_back(pipeline_.params[p].name);
  }
}

}  // namespace tierflow::dag::internal
