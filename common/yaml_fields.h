// Typed reads of the fields of a YAML document (common/yaml_tree.h) for the
// loaders of user-written files: pipelines (dag/loader.h) and tiers
// (storage_adapters/tier_config.h). A FieldReader turns every problem into a
// Diagnostic `file:line:col: field.path: message` and reading goes on, so a
// user sees all of a file's mistakes at once; unknown keys and words get a
// "did you mean". A FieldReader serves one load on one thread.
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/diagnostic.h"
#include "common/strings.h"
#include "common/units.h"
#include "common/yaml_tree.h"

namespace tierflow {

// Scalars as YAML 1.2's core schema writes them (editors and JSON schemas
// read them so): decimal integers with an optional sign; decimal floats
// (no hex, inf or nan); true/false in three spellings, but not yes/on,
// which are strings there.
std::optional<int64_t> ParseYamlInt(std::string_view text);
std::optional<double> ParseYamlFloat(std::string_view text);
std::optional<bool> ParseYamlBool(std::string_view text);

// Shortest text that reads back as the same double: 0.001, 2.5, 1e-07.
std::string FormatFloat(double value);

// User text as it appears in a message: quoted, escaped, and cut short so
// that one hostile value cannot flood the report.
std::string Quote(std::string_view text);

// " (did you mean 'x'?)", or "" without a match.
std::string Hint(const std::optional<std::string>& match);

// A YamlDocument::Parse error ("LINE:COL: message") as a Diagnostic at
// that position in `file`; the whole message, without a position, if it
// has none.
Diagnostic SyntaxDiagnostic(std::string_view file, const absl::Status& parse_error);

// A field path such as `stages.train.inputs.data` or `stages.x.needs[1]`,
// linked through the stack so that the common case, a path never printed,
// costs no allocation.
struct FieldPath {
  const FieldPath* parent = nullptr;
  std::string_view key;
  int64_t index = -1;  // a list element when >= 0

  // A child path points at its parent, so the parent must outlive it:
  // temporaries cannot be parents.
  FieldPath Key(std::string_view child) const& { return FieldPath{this, child, -1}; }
  FieldPath Index(size_t i) const& { return FieldPath{this, {}, static_cast<int64_t>(i)}; }
  FieldPath Key(std::string_view child) const&& = delete;
  FieldPath Index(size_t i) const&& = delete;

  // "a.b[2].c", keys C-escaped; "" for the root.
  std::string ToString() const;
};

// The names seen so far in one map or list, to report repeats. Most hold a
// handful of names, where a scan beats a hash map, and a pipeline of 100k
// stages has hundreds of thousands of them: the first kScanLimit names are
// scanned, more are hashed. `Hash` and `Equal` say which names are the same.
template <typename Value, typename Hash = absl::Hash<std::string_view>,
          typename Equal = std::equal_to<std::string_view>>
class SeenNames {
 public:
  // Records `name` with `value` unless the same name was recorded before.
  // Returns the value recorded first for the name, and whether it is new.
  std::pair<const Value&, bool> Insert(std::string_view name, const Value& value) {
    if (hashed_.empty()) {
      for (size_t i = 0; i < few_count_; ++i) {
        if (Equal()(few_[i].first, name)) return {few_[i].second, false};
      }
      if (few_count_ < kScanLimit) {
        few_[few_count_] = {name, value};
        return {few_[few_count_++].second, true};
      }
      for (const auto& [seen, seen_value] : few_) hashed_.emplace(seen, seen_value);
    }
    auto [it, fresh] = hashed_.try_emplace(name, value);
    return {it->second, fresh};
  }

 private:
  static constexpr size_t kScanLimit = 8;
  std::array<std::pair<std::string_view, Value>, kScanLimit> few_{};
  size_t few_count_ = 0;
  absl::flat_hash_map<std::string_view, Value, Hash, Equal> hashed_;
};

// The allowed keys of one kind of map, in the order of the docs.
class KeyList {
 public:
  static constexpr size_t kMaxKeys = 32;  // the bits of by_length_

  KeyList(std::initializer_list<std::string_view> names) : names_(names.begin(), names.end()) {
    for (size_t i = 0; i < names_.size() && i < kMaxKeys; ++i) {
      if (names_[i].size() < by_length_.size()) by_length_[names_[i].size()] |= 1u << i;
    }
  }

  const std::vector<std::string>& names() const { return names_; }

  // Index of `key` among the first kMaxKeys names, or -1. Only names of the
  // key's length are compared: the loaders look up every key of every map.
  int IndexOf(std::string_view key) const {
    if (key.size() >= by_length_.size()) return -1;
    for (uint32_t bits = by_length_[key.size()]; bits != 0; bits &= bits - 1) {
      const int i = std::countr_zero(bits);
      if (names_[i] == key) return i;
    }
    return -1;
  }

 private:
  std::vector<std::string> names_;
  std::array<uint32_t, 32> by_length_{};  // bit i set: names_[i] has this length
};

// The known keys of one map, found by FieldReader::ReadFields in a single
// pass over it.
class Fields {
 public:
  static constexpr size_t kMaxKeys = KeyList::kMaxKeys;

  explicit Fields(const KeyList& keys) : keys_(&keys) {}

  // The value of `key`, or an undefined node when the map lacks it.
  YamlNode value(std::string_view key) const {
    const int i = IndexOf(key);
    return i < 0 ? YamlNode() : values_[i];
  }
  bool has(std::string_view key) const { return value(key).IsDefined(); }

  int IndexOf(std::string_view key) const { return keys_->IndexOf(key); }
  const std::vector<std::string>& keys() const { return keys_->names(); }
  const YamlNode& key_node(int i) const { return key_nodes_[i]; }
  // A misspelt key was suggested as `key`: a missing `key` then needs no
  // report of its own.
  void MarkSuggested(int i) {
    if (i >= 0) suggested_[i] = true;
  }
  bool IsMissing(std::string_view key) const {
    const int i = IndexOf(key);
    return i >= 0 && !values_[i].IsDefined() && !suggested_[i];
  }
  void Set(int i, YamlNode key, YamlNode value) {
    key_nodes_[i] = key;
    values_[i] = value;
  }

 private:
  const KeyList* keys_;
  std::array<YamlNode, kMaxKeys> key_nodes_;
  std::array<YamlNode, kMaxKeys> values_;
  std::array<bool, kMaxKeys> suggested_{};
};

// How unknown keys, repeated keys and unknown words are worded. Each file
// format keeps the wording its docs and tests show.
enum class Wording {
  // Pipelines: "unknown key 'x' (did you mean 'y'?)"; "duplicate key 'x'
  // (first defined at line 3)"; "unknown kind 'x' (did you mean 'y'?)", or
  // without a suggestion "unknown kind 'x': expected one of a, b".
  kSuggest,
  // Tiers: "unknown key 'x' (did you mean 'y'?); expected one of a, b";
  // "duplicate key"; "unknown value 'x'; expected one of a, b" (a
  // suggestion, when there is one, before the list); a word that is no
  // scalar is "expected a string".
  kSuggestAndList,
};

// Reads the fields of one document and collects what is wrong with them.
class FieldReader {
 public:
  static constexpr uint64_t kNoBudget = std::numeric_limits<uint64_t>::max();

  // Diagnostics name `file`, which must outlive the reader. `visit_budget`
  // bounds the container children a walk may visit (Visit).
  FieldReader(std::string_view file, Wording wording, uint64_t visit_budget = kNoBudget)
      : file_(file), wording_(wording), visit_budget_(visit_budget) {}

  std::string_view file() const { return file_; }
  const std::vector<Diagnostic>& diagnostics() const { return diagnostics_; }
  std::vector<Diagnostic> TakeDiagnostics() { return std::move(diagnostics_); }

  // Records a problem at `at`, or at line:column.
  void Error(const YamlNode& at, const FieldPath& path, std::string message) {
    ErrorAt(at.line(), at.column(), path, std::move(message));
  }
  void ErrorAt(int line, int column, const FieldPath& path, std::string message);
  // Records a problem that is not in the file (a command-line value).
  void Report(Diagnostic diagnostic) { diagnostics_.push_back(std::move(diagnostic)); }
  // "expected <expected>, got <what node is>".
  void WrongType(const YamlNode& node, const FieldPath& path, std::string_view expected);
  // A scalar as Quote shows it, else "a map", "a list" ...
  static std::string Describe(const YamlNode& node);

  // Charges a container's children to the visit budget before a walk over
  // them; false (reported once) when the budget is spent. An alias shares
  // its node in the tree, but a walk that copies what it reads copies it
  // again at every use: the budget keeps a small file of nested aliases
  // ("billion laughs") from taking hours and all memory.
  bool Visit(const YamlNode& node) {
    visits_ += node.size();
    if (visits_ <= visit_budget_) return true;
    BudgetSpent(node);
    return false;
  }
  // The children of `node` to walk: none once the budget is spent.
  size_t Count(const YamlNode& node) { return Visit(node) ? node.size() : 0; }
  bool budget_spent() const { return budget_reported_; }

  // Reads a map's known keys into `fields`, reporting unknown keys (with a
  // suggestion) and repeated ones. False, reported, if `node` is no map.
  bool ReadFields(const YamlNode& node, const FieldPath& path, Fields* fields);

  // Calls visit(name, key, value, repeated) for every entry of a map whose
  // keys are names (stages, params, tiers, ...). Reports non-string keys,
  // and repeated ones as "duplicate <what> 'x' (first defined at line N)"
  // ("duplicate key" in Wording::kSuggestAndList).
  template <typename VisitEntry>
  bool ForEachEntry(const YamlNode& node, const FieldPath& path, std::string_view what,
                    VisitEntry visit);

  // A map key's text, else "expected a string key, got ..." at the map.
  std::optional<std::string_view> ReadKey(const YamlNode& key, const FieldPath& map_path) {
    if (key.IsScalar()) return key.Scalar();
    Error(key, map_path, StrCat("expected a string key, got ", Describe(key)));
    return std::nullopt;
  }
  // The scalar's text, else "expected <expected>, got ...".
  std::optional<std::string_view> ReadScalar(const YamlNode& node, const FieldPath& path,
                                             std::string_view expected = "a string") {
    if (node.IsScalar()) return node.Scalar();
    WrongType(node, path, expected);
    return std::nullopt;
  }
  std::optional<std::string> ReadString(const YamlNode& node, const FieldPath& path) {
    auto text = ReadScalar(node, path);
    return text ? std::optional<std::string>(*text) : std::nullopt;
  }
  std::optional<bool> ReadBool(const YamlNode& node, const FieldPath& path);
  // An integer in [min, max].
  std::optional<int64_t> ReadInt(const YamlNode& node, const FieldPath& path, int64_t min,
                                 int64_t max);
  // A number at least `min`, or greater than it.
  std::optional<double> ReadNumber(const YamlNode& node, const FieldPath& path, double min,
                                   bool min_inclusive);
  // A size ("512MiB") or a duration ("90s"): common/units.h.
  std::optional<uint64_t> ReadSize(const YamlNode& node, const FieldPath& path);
  std::optional<Duration> ReadDuration(const YamlNode& node, const FieldPath& path);
  // The value of `parsed`, or its error's message reported at `node`.
  template <typename T>
  std::optional<T> Check(const YamlNode& node, const FieldPath& path,
                         const absl::StatusOr<T>& parsed);

  // One of `names` as `parse` reads it; else "unknown <what> 'x'" with a
  // suggestion or the list of names.
  template <typename T>
  std::optional<T> ReadEnum(const YamlNode& node, const FieldPath& path, std::string_view what,
                            const std::vector<std::string>& names,
                            std::optional<T> (*parse)(std::string_view));
  // The index of the scalar among `names`; else as ReadEnum.
  std::optional<size_t> ReadChoice(const YamlNode& node, const FieldPath& path,
                                   std::string_view what, const std::vector<std::string>& names);

 private:
  void BudgetSpent(const YamlNode& node);
  void DuplicateKey(const YamlNode& key, const FieldPath& path, std::string_view what,
                    int first_line);
  void UnknownWord(const YamlNode& node, const FieldPath& path, std::string_view what,
                   std::string_view text, const std::vector<std::string>& names);
  std::string WordExpected(std::string_view what) const;

  std::string_view file_;
  Wording wording_;
  std::vector<Diagnostic> diagnostics_;
  uint64_t visits_ = 0;
  uint64_t visit_budget_;
  bool budget_reported_ = false;
};

template <typename VisitEntry>
bool FieldReader::ForEachEntry(const YamlNode& node, const FieldPath& path, std::string_view what,
                               VisitEntry visit) {
  if (!node.IsMap()) {
    WrongType(node, path, "a map");
    return false;
  }
  const size_t count = Count(node);
  SeenNames<int> first_line;
  for (size_t i = 0; i < count; ++i) {
    const YamlNode::Entry entry = node.entry(i);
    const std::optional<std::string_view> key = ReadKey(entry.key, path);
    if (!key) continue;
    const std::string_view name = *key;
    auto [line, fresh] = first_line.Insert(name, entry.key.line());
    if (!fresh) DuplicateKey(entry.key, path.Key(name), what, line);
    visit(name, entry.key, entry.value, !fresh);
  }
  return true;
}

template <typename T>
std::optional<T> FieldReader::Check(const YamlNode& node, const FieldPath& path,
                                    const absl::StatusOr<T>& parsed) {
  if (parsed.ok()) return *parsed;
  Error(node, path, std::string(parsed.status().message()));
  return std::nullopt;
}

template <typename T>
std::optional<T> FieldReader::ReadEnum(const YamlNode& node, const FieldPath& path,
                                       std::string_view what, const std::vector<std::string>& names,
                                       std::optional<T> (*parse)(std::string_view)) {
  auto text = ReadScalar(node, path, WordExpected(what));
  if (!text) return std::nullopt;
  std::optional<T> value = parse(*text);
  if (!value) UnknownWord(node, path, what, *text, names);
  return value;
}

}  // namespace tierflow
