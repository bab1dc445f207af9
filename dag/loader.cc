// The pipeline loader's entry point (dag/loader.h): reads the file, parses
// it (common/yaml_tree.h) and runs the Loader's walk, in this order: the
// top-level keys, params, defaults, stages, then references and cycles.
// Also the naming rules every part of the walk checks names against.
#include "dag/loader.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>

#include "common/strings.h"
#include "common/yaml_fields.h"
#include "common/yaml_tree.h"
#include "dag/internal/loader_internal.h"

namespace tierflow::dag {
namespace {

// Bigger files are surely mistakes; the parse tree of one this size already
// costs a few hundred MiB.
constexpr size_t kMaxFileBytes = 64 << 20;

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

namespace internal {
namespace {

constexpr size_t kMaxNameLength = 128;  // pipeline and stage names
// Node visits the schema walk may make beyond twice the tree's size. An
// alias shares its node in the tree, but every stage that names it still
// copies it into the model: without a bound, a small file of nested aliases
// ("billion laughs") would take hours and all memory.
constexpr uint64_t kExtraNodeVisits = 2'000'000;

bool IsAlpha(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }
bool IsAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

const KeyList& TopKeys() {
  static const auto* const keys =
      new KeyList{"name", "description", "params", "defaults", "stages"};
  return *keys;
}

}  // namespace

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

Loader::Loader(const YamlDocument& doc, size_t text_size, std::string_view file,
               const LoadOptions& options)
    : FieldReader(file, Wording::kSuggest, 2 * static_cast<uint64_t>(text_size) + kExtraNodeVisits),
      doc_(doc),
      options_(options) {}

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
  ResolveMappings();
  // A cycle through a misspelt reference would be a guess: wait until the
  // references are right.
  if (!reference_errors_) CheckCycles();
  return std::move(pipeline_);
}

}  // namespace internal

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
      internal::Loader loader(**doc, text.size(), file, options);
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
