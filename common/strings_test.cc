#include "common/strings.h"

#include <gtest/gtest.h>

namespace tierflow {
namespace {

TEST(StringsTest, StrCatJoinsViewsCharsAndIntegers) {
  std::string_view view = "b";
  EXPECT_EQ(StrCat("a", view, std::string("c"), '-', 42, -7, size_t{9}), "abc-42-79");
}

TEST(StringsTest, TrimAndUpper) {
  EXPECT_EQ(TrimWhitespace("  x y \t\n"), "x y");
  EXPECT_EQ(TrimWhitespace("   "), "");
  EXPECT_EQ(AsciiUpper("raw_data1"), "RAW_DATA1");
}

TEST(StringsTest, CEscapeMakesUserValuesSafeToEcho) {
  EXPECT_EQ(CEscape("plain"), "plain");
  EXPECT_EQ(CEscape(std::string("a\0b\n\\\x1b", 6)), "a\\x00b\\n\\\\\\x1b");
}

}  // namespace
}  // namespace tierflow
