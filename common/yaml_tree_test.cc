#include "common/yaml_tree.h"

#include <gtest/gtest.h>

namespace tierflow {
namespace {

std::unique_ptr<YamlDocument> MustParse(std::string_view text) {
  auto doc = YamlDocument::Parse(text);
  EXPECT_TRUE(doc.ok()) << doc.status();
  return doc.ok() ? std::move(*doc) : nullptr;
}

TEST(YamlTreeTest, KeepsOrderDuplicatesAndOneBasedPositions) {
  auto doc = MustParse("name: p\nstages:\n  a: {run: x}\n  a: [1, 2]\n");
  YamlNode root = doc->root();
  ASSERT_TRUE(root.IsMap());
  ASSERT_EQ(root.size(), 2u);
  YamlNode stages = root.Find("stages");
  ASSERT_EQ(stages.size(), 2u);
  EXPECT_EQ(stages.entry(0).key.Scalar(), "a");
  EXPECT_EQ(stages.entry(1).key.Scalar(), "a");
  EXPECT_EQ(stages.entry(1).key.line(), 4);
  EXPECT_EQ(stages.entry(1).key.column(), 3);
  YamlNode list = stages.entry(1).value;
  ASSERT_TRUE(list.IsSequence());
  EXPECT_EQ(list.at(1).Scalar(), "2");
  EXPECT_EQ(list.at(1).column(), 10);
  EXPECT_FALSE(list.at(2).IsDefined());
  EXPECT_EQ(stages.entry(0).value.Find("run").Scalar(), "x");
  EXPECT_FALSE(root.Find("missing").IsDefined());
}

TEST(YamlTreeTest, DistinguishesPlainQuotedAndNull) {
  auto doc = MustParse("a: 3\nb: \"3\"\nc: ~\nd:\ne: null\nf: !!str 3\n");
  YamlNode root = doc->root();
  EXPECT_TRUE(root.Find("a").IsPlain());
  EXPECT_FALSE(root.Find("b").IsPlain());
  EXPECT_EQ(root.Find("b").Scalar(), "3");
  EXPECT_TRUE(root.Find("c").IsNull());
  EXPECT_TRUE(root.Find("d").IsNull());
  EXPECT_TRUE(root.Find("e").IsNull());
  EXPECT_FALSE(root.Find("f").IsPlain());
}

TEST(YamlTreeTest, AliasesShareTheAnchoredNode) {
  auto doc = MustParse("x: &r {cpus: 2}\ny: *r\n");
  YamlNode y = doc->root().Find("y");
  ASSERT_TRUE(y.IsMap());
  EXPECT_EQ(y.Find("cpus").Scalar(), "2");
  EXPECT_EQ(y.line(), 1);  // the anchored node's position
}

TEST(YamlTreeTest, RejectsAnAliasInsideTheNodeItNames) {
  // The list is not finished when *x names it: sharing it would make the
  // list its own element, a cycle in what must be a tree.
  auto doc = YamlDocument::Parse("a: &x [*x]\n");
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(doc.status().message()),
            "1:8: alias '*x' refers to its own enclosing node (anchored '&x' at 1:4), which is "
            "not finished yet: a node cannot contain itself");
  // Deeper inside, in block style, and through a map.
  auto nested = YamlDocument::Parse("top: &t\n  b:\n    c: [1, *t]\n");
  ASSERT_FALSE(nested.ok());
  EXPECT_EQ(std::string(nested.status().message()),
            "3:12: alias '*t' refers to its own enclosing node (anchored '&t' at 1:6), which is "
            "not finished yet: a node cannot contain itself");
}

TEST(YamlTreeTest, AcceptsAliasesToFinishedNodesInsideAnOpenOne) {
  // *y names a finished sibling; *x names the scalar that re-anchored x.
  auto doc = MustParse("a: &x [&y {k: v}, *y, &x s, *x]\n");
  YamlNode a = doc->root().Find("a");
  ASSERT_EQ(a.size(), 4u);
  EXPECT_EQ(a.at(1).Find("k").Scalar(), "v");
  EXPECT_EQ(a.at(3).Scalar(), "s");
}

TEST(YamlTreeTest, EmptyTextIsANullRoot) {
  EXPECT_TRUE(MustParse("")->root().IsNull());
  EXPECT_TRUE(MustParse("# only a comment\n")->root().IsNull());
}

TEST(YamlTreeTest, SyntaxErrorsCarryOneBasedPositions) {
  auto doc = YamlDocument::Parse("a: [1, 2\nb: 3\n");
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(doc.status().message()),
            "2:2: did not find expected ',' or ']' (while parsing a flow sequence that starts at "
            "1:4)");
  auto tab = YamlDocument::Parse("a:\n\tb: 1\n");
  ASSERT_FALSE(tab.ok());
  EXPECT_EQ(std::string(tab.status().message()),
            "2:1: tab character: YAML indentation must use spaces");
}

TEST(YamlTreeTest, RejectsASecondDocument) {
  auto doc = YamlDocument::Parse("a: 1\n---\nb: 2\n");
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(std::string(doc.status().message()),
            "2:1: expected one YAML document, found a second one");
}

TEST(YamlTreeTest, DescribesTypesForMessages) {
  auto doc = MustParse("m: {}\nl: []\ns: x\nn: ~\n");
  EXPECT_EQ(doc->root().Find("m").Describe(), "a map");
  EXPECT_EQ(doc->root().Find("l").Describe(), "a list");
  EXPECT_EQ(doc->root().Find("s").Describe(), "a scalar");
  EXPECT_EQ(doc->root().Find("n").Describe(), "null");
  EXPECT_EQ(doc->root().Find("zz").Describe(), "nothing");
}

}  // namespace
}  // namespace tierflow
