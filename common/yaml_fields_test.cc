#include "common/yaml_fields.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tierflow {
namespace {

using ::testing::ElementsAre;

const KeyList& Keys() {
  static const auto* const keys = new KeyList{"root", "scope", "retry"};
  return *keys;
}

std::vector<std::string> Lines(const std::vector<Diagnostic>& diagnostics) {
  std::vector<std::string> lines;
  for (const Diagnostic& d : diagnostics) lines.push_back(d.ToString());
  return lines;
}

// Reads `text`'s keys (Keys()) and `scope` as a choice, in `wording`.
std::vector<std::string> ReadAll(std::string_view text, Wording wording) {
  absl::StatusOr<std::unique_ptr<YamlDocument>> doc = YamlDocument::Parse(text);
  EXPECT_TRUE(doc.ok()) << doc.status();
  FieldReader in("f.yaml", wording);
  const FieldPath top;
  const FieldPath path = top.Key("tier");
  Fields fields(Keys());
  in.ReadFields((*doc)->root(), path, &fields);
  if (YamlNode scope = fields.value("scope"); scope.IsDefined()) {
    in.ReadChoice(scope, path.Key("scope"), "scope", {"node", "cluster"});
  }
  return Lines(in.diagnostics());
}

TEST(FieldReaderTest, SuggestWordingNamesTheFirstOfARepeatedKey) {
  EXPECT_THAT(ReadAll("rot: a\nscope: nod\nroot: b\nroot: c\n", Wording::kSuggest),
              ElementsAre("f.yaml:1:1: tier.rot: unknown key 'rot' (did you mean 'root'?)",
                          "f.yaml:4:1: tier.root: duplicate key 'root' (first defined at line 3)",
                          "f.yaml:2:8: tier.scope: unknown scope 'nod' (did you mean 'node'?)"));
  EXPECT_THAT(ReadAll("scope: zone\n", Wording::kSuggest),
              ElementsAre("f.yaml:1:8: tier.scope: unknown scope 'zone': expected one of node, "
                          "cluster"));
  EXPECT_THAT(ReadAll("scope: [a]\n", Wording::kSuggest),
              ElementsAre("f.yaml:1:8: tier.scope: expected a scope, got a list"));
}

TEST(FieldReaderTest, SuggestAndListWordingAlwaysListsTheChoices) {
  EXPECT_THAT(ReadAll("rot: a\nscope: nod\nroot: b\nroot: c\n", Wording::kSuggestAndList),
              ElementsAre("f.yaml:1:1: tier.rot: unknown key 'rot' (did you mean 'root'?); "
                          "expected one of root, scope, retry",
                          "f.yaml:4:1: tier.root: duplicate key",
                          "f.yaml:2:8: tier.scope: unknown scope 'nod' (did you mean 'node'?); "
                          "expected one of node, cluster"));
  EXPECT_THAT(ReadAll("scope: [a]\n", Wording::kSuggestAndList),
              ElementsAre("f.yaml:1:8: tier.scope: expected a string, got a list"));
}

TEST(FieldReaderTest, TypedReadsReportTheValueAndItsPath) {
  absl::StatusOr<std::unique_ptr<YamlDocument>> doc =
      YamlDocument::Parse("{n: 0, f: '1.5', s: 3 parsecs, d: 5s, b: yes, list: [x, {y: 1}]}");
  ASSERT_TRUE(doc.ok()) << doc.status();
  const YamlNode root = (*doc)->root();
  FieldReader in("f.yaml", Wording::kSuggest);
  const FieldPath top;
  EXPECT_EQ(in.ReadInt(root.Find("n"), top.Key("n"), 1, 9), std::nullopt);
  EXPECT_EQ(in.ReadNumber(root.Find("f"), top.Key("f"), 1, true), 1.5);
  EXPECT_EQ(in.ReadSize(root.Find("s"), top.Key("s")), std::nullopt);
  EXPECT_EQ(in.ReadDuration(root.Find("d"), top.Key("d")), std::chrono::seconds(5));
  EXPECT_EQ(in.ReadBool(root.Find("b"), top.Key("b")), std::nullopt);
  const FieldPath list = top.Key("list");
  EXPECT_EQ(in.ReadString(root.Find("list").at(1), list.Index(1)), std::nullopt);
  EXPECT_THAT(
      Lines(in.diagnostics()),
      ElementsAre("f.yaml:1:5: n: must be at least 1, got 0",
                  "f.yaml:1:21: s: " + std::string(ParseSize("3 parsecs").status().message()),
                  "f.yaml:1:42: b: expected true or false, got 'yes'",
                  "f.yaml:1:57: list[1]: expected a string, got a map"));
}

TEST(FieldReaderTest, ForEachEntryReportsRepeatsAndStillVisitsThem) {
  absl::StatusOr<std::unique_ptr<YamlDocument>> doc = YamlDocument::Parse("a: 1\nb: 2\na: 3\n");
  ASSERT_TRUE(doc.ok()) << doc.status();
  FieldReader in("f.yaml", Wording::kSuggest);
  const FieldPath top;
  std::vector<std::string> visited;
  in.ForEachEntry((*doc)->root(), top, "stage",
                  [&](std::string_view name, const YamlNode&, const YamlNode&, bool repeated) {
                    visited.push_back(StrCat(name, repeated ? " again" : ""));
                  });
  EXPECT_THAT(visited, ElementsAre("a", "b", "a again"));
  EXPECT_THAT(Lines(in.diagnostics()),
              ElementsAre("f.yaml:3:1: a: duplicate stage 'a' (first defined at line 1)"));
}

TEST(FieldReaderTest, VisitBudgetIsReportedOnceAndSilencesTheRest) {
  absl::StatusOr<std::unique_ptr<YamlDocument>> doc = YamlDocument::Parse("[1, 2, 3]");
  ASSERT_TRUE(doc.ok()) << doc.status();
  FieldReader in("f.yaml", Wording::kSuggest, /*visit_budget=*/2);
  EXPECT_EQ(in.Count((*doc)->root()), 0u);
  EXPECT_TRUE(in.budget_spent());
  in.Error((*doc)->root(), FieldPath{}, "not shown");
  EXPECT_THAT(Lines(in.diagnostics()),
              ElementsAre("f.yaml:1:1: the document is too large once its aliases are expanded"));
}

TEST(FieldReaderTest, SyntaxDiagnosticTakesThePositionFromTheParser) {
  absl::StatusOr<std::unique_ptr<YamlDocument>> doc = YamlDocument::Parse("a: [\n");
  ASSERT_FALSE(doc.ok());
  const Diagnostic diagnostic = SyntaxDiagnostic("f.yaml", doc.status());
  EXPECT_EQ(diagnostic.line, 2);
  EXPECT_GT(diagnostic.column, 0);
  EXPECT_FALSE(diagnostic.message.empty());
  EXPECT_NE(diagnostic.message[0], ' ');
  const Diagnostic plain = SyntaxDiagnostic("f.yaml", absl::InvalidArgumentError("no position"));
  EXPECT_EQ(plain.ToString(), "f.yaml: no position");
}

TEST(ParseYamlScalarTest, CoreSchemaOnly) {
  EXPECT_EQ(ParseYamlInt("-9223372036854775808"), INT64_MIN);
  EXPECT_EQ(ParseYamlInt("0x10"), std::nullopt);
  EXPECT_EQ(ParseYamlFloat("+2.5e1"), 25.0);
  EXPECT_EQ(ParseYamlFloat("inf"), std::nullopt);
  EXPECT_EQ(ParseYamlFloat("+-1"), std::nullopt);
  EXPECT_EQ(ParseYamlBool("TRUE"), true);
  EXPECT_EQ(ParseYamlBool("yes"), std::nullopt);
  EXPECT_EQ(FormatFloat(0.001), "0.001");
}

}  // namespace
}  // namespace tierflow
