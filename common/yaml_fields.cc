#include "common/yaml_fields.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>

#include "absl/strings/str_join.h"
#include "common/suggest.h"

namespace tierflow {
namespace {

bool IsDigit(char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }

bool ConsumePrefix(std::string_view* text, std::string_view prefix) {
  if (!text->starts_with(prefix)) return false;
  text->remove_prefix(prefix.size());
  return true;
}

}  // namespace

std::optional<int64_t> ParseYamlInt(std::string_view text) {
  std::string_view digits = text;
  const bool negative = ConsumePrefix(&digits, "-");
  if (!negative) ConsumePrefix(&digits, "+");
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), IsDigit)) return std::nullopt;
  // Parse with the sign so that INT64_MIN still fits.
  const std::string_view number = negative ? text : digits;
  int64_t value = 0;
  auto [end, error] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (error != std::errc() || end != number.data() + number.size()) return std::nullopt;
  return value;
}

std::optional<double> ParseYamlFloat(std::string_view text) {
  std::string_view rest = text;
  // from_chars takes no '+'; after one, only digits may follow.
  if (ConsumePrefix(&rest, "+") && rest.starts_with('-')) return std::nullopt;
  size_t i = rest.starts_with('-') ? 1 : 0;
  bool digits = false;
  for (; i < rest.size() && IsDigit(rest[i]); ++i) digits = true;
  if (i < rest.size() && rest[i] == '.') {
    for (++i; i < rest.size() && IsDigit(rest[i]); ++i) digits = true;
  }
  if (!digits) return std::nullopt;
  if (i < rest.size() && (rest[i] == 'e' || rest[i] == 'E')) {
    ++i;
    if (i < rest.size() && (rest[i] == '+' || rest[i] == '-')) ++i;
    bool exponent = false;
    for (; i < rest.size() && IsDigit(rest[i]); ++i) exponent = true;
    if (!exponent) return std::nullopt;
  }
  if (i != rest.size()) return std::nullopt;
  double value = 0;
  auto [end, error] = std::from_chars(rest.data(), rest.data() + rest.size(), value);
  if (error != std::errc() || end != rest.data() + rest.size() || !std::isfinite(value)) {
    return std::nullopt;
  }
  return value;
}

std::optional<bool> ParseYamlBool(std::string_view text) {
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  return std::nullopt;
}

std::string FormatFloat(double value) {
  char buffer[64];
  auto [end, error] = std::to_chars(buffer, buffer + sizeof buffer, value);
  return error == std::errc() ? std::string(buffer, end) : std::string("nan");
}

std::string Quote(std::string_view text) {
  constexpr size_t kMaxShown = 60;
  if (text.size() <= kMaxShown) return StrCat("'", CEscape(text), "'");
  return StrCat("'", CEscape(text.substr(0, kMaxShown)), "...'");
}

std::string Hint(const std::optional<std::string>& match) {
  return match ? StrCat(" (did you mean '", *match, "'?)") : std::string();
}

Diagnostic SyntaxDiagnostic(std::string_view file, const absl::Status& parse_error) {
  const auto status_message = parse_error.message();
  std::string_view message(status_message.data(), status_message.size());
  Diagnostic diagnostic{std::string(file), 0, 0, "", ""};
  std::string_view rest = message;
  auto number = [&rest](int* out) {
    size_t digits = 0;
    while (digits < rest.size() && IsDigit(rest[digits])) ++digits;
    if (digits == 0 || digits > 9 || digits >= rest.size() || rest[digits] != ':') return false;
    std::from_chars(rest.data(), rest.data() + digits, *out);
    rest.remove_prefix(digits + 1);
    return true;
  };
  int line = 0, column = 0;
  if (number(&line) && number(&column)) {
    diagnostic.line = line;
    diagnostic.column = column;
    message = TrimWhitespace(rest);
  }
  diagnostic.message = std::string(message);
  return diagnostic;
}

std::string FieldPath::ToString() const {
  std::vector<const FieldPath*> chain;
  for (const FieldPath* p = this; p != nullptr; p = p->parent) chain.push_back(p);
  std::string out;
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    const FieldPath& p = **it;
    if (p.index >= 0) {
      out += StrCat("[", p.index, "]");
    } else if (!p.key.empty()) {
      if (!out.empty()) out.push_back('.');
      out += CEscape(p.key);
    }
  }
  return out;
}

void FieldReader::ErrorAt(int line, int column, const FieldPath& path, std::string message) {
  // Past the budget the walk sees empty containers: what it would say
  // about them is noise.
  if (budget_reported_) return;
  diagnostics_.push_back(
      Diagnostic{std::string(file_), line, column, path.ToString(), std::move(message)});
}

std::string FieldReader::Describe(const YamlNode& node) {
  return node.IsScalar() ? Quote(node.Scalar()) : std::string(node.Describe());
}

void FieldReader::WrongType(const YamlNode& node, const FieldPath& path,
                            std::string_view expected) {
  Error(node, path, StrCat("expected ", expected, ", got ", Describe(node)));
}

void FieldReader::BudgetSpent(const YamlNode& node) {
  if (budget_reported_) return;
  Error(node, FieldPath{}, "the document is too large once its aliases are expanded");
  budget_reported_ = true;
}

void FieldReader::DuplicateKey(const YamlNode& key, const FieldPath& path, std::string_view what,
                               int first_line) {
  if (wording_ == Wording::kSuggestAndList) {
    Error(key, path, "duplicate key");
    return;
  }
  Error(key, path,
        StrCat("duplicate ", what, " ", Quote(key.Scalar()), " (first defined at line ", first_line,
               ")"));
}

bool FieldReader::ReadFields(const YamlNode& node, const FieldPath& path, Fields* fields) {
  if (!node.IsMap()) {
    WrongType(node, path, "a map");
    return false;
  }
  const size_t count = Count(node);
  for (size_t i = 0; i < count; ++i) {
    const YamlNode::Entry entry = node.entry(i);
    const std::optional<std::string_view> key = ReadKey(entry.key, path);
    if (!key) continue;
    const std::string_view name = *key;
    const FieldPath key_path = path.Key(name);
    const int index = fields->IndexOf(name);
    if (index < 0) {
      std::optional<std::string> match = ClosestMatch(name, fields->keys());
      if (match) fields->MarkSuggested(fields->IndexOf(*match));
      std::string message = StrCat("unknown key ", Quote(name), Hint(match));
      if (wording_ == Wording::kSuggestAndList) {
        message += StrCat("; expected one of ", absl::StrJoin(fields->keys(), ", "));
      }
      Error(entry.key, key_path, std::move(message));
    } else if (const YamlNode& first = fields->key_node(index); first.IsDefined()) {
      DuplicateKey(entry.key, key_path, "key", first.line());
    } else {
      fields->Set(index, entry.key, entry.value);
    }
  }
  return true;
}

std::optional<bool> FieldReader::ReadBool(const YamlNode& node, const FieldPath& path) {
  auto text = ReadScalar(node, path, "true or false");
  if (!text) return std::nullopt;
  auto value = ParseYamlBool(*text);
  if (!value) WrongType(node, path, "true or false");
  return value;
}

std::optional<int64_t> FieldReader::ReadInt(const YamlNode& node, const FieldPath& path,
                                            int64_t min, int64_t max) {
  auto text = ReadScalar(node, path, "an integer");
  if (!text) return std::nullopt;
  auto value = ParseYamlInt(*text);
  if (!value) {
    WrongType(node, path, "an integer");
  } else if (*value < min || *value > max) {
    Error(node, path,
          StrCat("must be ", *value < min ? "at least " : "at most ", *value < min ? min : max,
                 ", got ", *value));
    return std::nullopt;
  }
  return value;
}

std::optional<double> FieldReader::ReadNumber(const YamlNode& node, const FieldPath& path,
                                              double min, bool min_inclusive) {
  auto text = ReadScalar(node, path, "a number");
  if (!text) return std::nullopt;
  auto value = ParseYamlFloat(*text);
  if (!value) {
    WrongType(node, path, "a number");
  } else if (min_inclusive ? *value < min : *value <= min) {
    Error(node, path,
          StrCat("must be ", min_inclusive ? "at least " : "greater than ", FormatFloat(min),
                 ", got ", *text));
    return std::nullopt;
  }
  return value;
}

std::optional<uint64_t> FieldReader::ReadSize(const YamlNode& node, const FieldPath& path) {
  auto text = ReadScalar(node, path, "a size such as 512MiB");
  if (!text) return std::nullopt;
  return Check(node, path, ParseSize(*text));
}

std::optional<Duration> FieldReader::ReadDuration(const YamlNode& node, const FieldPath& path) {
  auto text = ReadScalar(node, path, "a duration such as 90s");
  if (!text) return std::nullopt;
  return Check(node, path, ParseDuration(*text));
}

std::string FieldReader::WordExpected(std::string_view what) const {
  return wording_ == Wording::kSuggestAndList ? std::string("a string") : StrCat("a ", what);
}

void FieldReader::UnknownWord(const YamlNode& node, const FieldPath& path, std::string_view what,
                              std::string_view text, const std::vector<std::string>& names) {
  std::string hint = DidYouMean(text, names);
  const std::string list = absl::StrJoin(names, ", ");
  if (wording_ == Wording::kSuggestAndList) {
    hint += StrCat("; expected one of ", list);
  } else if (hint.empty()) {
    hint = StrCat(": expected one of ", list);
  }
  Error(node, path, StrCat("unknown ", what, " ", Quote(text), hint));
}

std::optional<size_t> FieldReader::ReadChoice(const YamlNode& node, const FieldPath& path,
                                              std::string_view what,
                                              const std::vector<std::string>& names) {
  auto text = ReadScalar(node, path, WordExpected(what));
  if (!text) return std::nullopt;
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == *text) return i;
  }
  UnknownWord(node, path, what, *text, names);
  return std::nullopt;
}

}  // namespace tierflow
