#include "common/strings.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

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

// Each word is handed to a real /bin/sh and bash, quoted, and must come back
// byte for byte.
TEST(StringsTest, ShellQuoteSurvivesARealShell) {
  const std::vector<std::string> words = {"shard[210]",
                                          "digits-3fa2c1",
                                          "",
                                          "it's",
                                          "a b",
                                          "$HOME",
                                          "`id`",
                                          "x;rm -rf y",
                                          "~root",
                                          "=ls",
                                          "%1",
                                          "back\\slash",
                                          "new\nline",
                                          "*",
                                          "'",
                                          "''",
                                          "ok_1.2:3@4+5,6/7"};
  EXPECT_EQ(ShellQuote("digits-3fa2c1"), "digits-3fa2c1");
  EXPECT_EQ(ShellQuote("shard[210]"), "'shard[210]'");
  EXPECT_EQ(ShellQuote("it's"), "'it'\\''s'");
  EXPECT_EQ(ShellQuote(""), "''");
  for (const char* shell : {"/bin/sh", "/bin/bash"}) {
    for (const std::string& word : words) {
      const std::string command =
          StrCat(shell, " -c ", ShellQuote(StrCat("printf %s ", ShellQuote(word))));
      FILE* pipe = popen(command.c_str(), "r");
      ASSERT_NE(pipe, nullptr);
      std::string got;
      char buffer[256];
      size_t n;
      while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) got.append(buffer, n);
      EXPECT_EQ(pclose(pipe), 0) << command;
      EXPECT_EQ(got, word) << shell << ": " << command;
    }
  }
}

TEST(StringsTest, CEscapeMakesUserValuesSafeToEcho) {
  EXPECT_EQ(CEscape("plain"), "plain");
  EXPECT_EQ(CEscape(std::string("a\0b\n\\\x1b", 6)), "a\\x00b\\n\\\\\\x1b");
}

// What FlatJson writes, nlohmann reads back as the same values, whatever
// bytes the strings held.
TEST(StringsTest, FlatJsonReadsBackAsWritten) {
  const std::string nasty = std::string("quote\" back\\ nl\n tab\t nul") + std::string(1, '\0') +
                            " \x01 caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
  const double third = 1.0 / 3.0;
  const std::string text = FlatJson()
                               .String("s", nasty)
                               .Number("d", third)
                               .Number("big", uint64_t{18446744073709551615u})
                               .Number("tiny", 5e-324)
                               .Bool("t", true)
                               .Bool("f", false)
                               .Number("inf", std::numeric_limits<double>::infinity())
                               .Finish();
  const nlohmann::json read = nlohmann::json::parse(text);
  EXPECT_EQ(read.at("s").get<std::string>(), nasty);
  EXPECT_EQ(read.at("d").get<double>(), third);
  EXPECT_EQ(read.at("big").get<uint64_t>(), 18446744073709551615u);
  EXPECT_EQ(read.at("tiny").get<double>(), 5e-324);
  EXPECT_EQ(read.at("t").get<bool>(), true);
  EXPECT_EQ(read.at("f").get<bool>(), false);
  EXPECT_TRUE(read.at("inf").is_null());
  EXPECT_EQ(FlatJson().Finish(), "{}");
}

// Bytes that are not UTF-8 (a lone continuation byte, a truncated
// sequence, an overlong form, a surrogate) each become U+FFFD, so the
// object still parses.
TEST(StringsTest, FlatJsonReplacesBytesThatAreNotUtf8) {
  for (const std::string& bad :
       {std::string("a\x80") + "b", std::string("a\xe2\x82"), std::string("a\xc0\xaf") + "b",
        std::string("a\xed\xa0\x80") + "b", std::string("\xf5\x80\x80\x80")}) {
    const std::string text = FlatJson().String("s", bad).Finish();
    const nlohmann::json read = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    ASSERT_TRUE(read.is_object()) << text;
    EXPECT_NE(read.at("s").get<std::string>().find("\xef\xbf\xbd"), std::string::npos) << text;
  }
}

}  // namespace
}  // namespace tierflow
