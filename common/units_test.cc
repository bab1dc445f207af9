#include "common/units.h"

#include <gtest/gtest.h>

namespace tierflow {
namespace {

TEST(ParseSizeTest, AcceptsBinarySiAndKubernetesUnits) {
  struct Case {
    const char* text;
    uint64_t bytes;
  };
  for (const Case& c :
       {Case{"0", 0}, Case{"100", 100}, Case{"100B", 100}, Case{"4KiB", 4096}, Case{"4Ki", 4096},
        Case{"2kB", 2000}, Case{"512MiB", 512ull << 20}, Case{"10GiB", 10ull << 30},
        Case{"1.5GiB", 3ull << 29}, Case{"2TB", 2'000'000'000'000ull}, Case{" 3 MB ", 3'000'000}}) {
    auto parsed = ParseSize(c.text);
    ASSERT_TRUE(parsed.ok()) << c.text << ": " << parsed.status();
    EXPECT_EQ(*parsed, c.bytes) << c.text;
  }
}

TEST(ParseSizeTest, RejectsBadSizesNamingTheText) {
  for (const char* text : {"", "GiB", "10Gb", "10 gigs", "-1GiB", "1e3", "1.2.3MB", "0x10"}) {
    auto parsed = ParseSize(text);
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_EQ(parsed.status().message(),
              std::string("invalid size '") + text +
                  "': expected a number and a unit such as 512MiB, 10GiB or 2TB");
  }
  EXPECT_EQ(ParseSize("99999999PiB").status().message(), "invalid size '99999999PiB': too large");
}

TEST(ParseDurationTest, AcceptsConcatenatedComponents) {
  using std::chrono::hours, std::chrono::minutes, std::chrono::seconds;
  EXPECT_EQ(*ParseDuration("90s"), seconds(90));
  EXPECT_EQ(*ParseDuration("2h30m"), hours(2) + minutes(30));
  EXPECT_EQ(*ParseDuration("1d12h"), hours(36));
  EXPECT_EQ(*ParseDuration("500ms"), Duration(500));
  EXPECT_EQ(*ParseDuration("1.5h"), minutes(90));
  EXPECT_EQ(*ParseDuration("45"), seconds(45));
  EXPECT_EQ(*ParseDuration("1w"), hours(24 * 7));
}

TEST(ParseDurationTest, RejectsBadDurationsNamingTheText) {
  for (const char* text : {"", "2x", "h", "2h30", "1 h", "-5s", "30mins", "1h-5m"}) {
    auto parsed = ParseDuration(text);
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_EQ(parsed.status().message(), std::string("invalid duration '") + text +
                                             "': expected a form such as 90s, 2h30m, 1d or 500ms");
  }
}

TEST(FormatTest, RoundTripsReadableForms) {
  EXPECT_EQ(FormatSize(512), "512 B");
  EXPECT_EQ(FormatSize(4096), "4 KiB");
  EXPECT_EQ(FormatSize(3ull << 29), "1.5 GiB");
  EXPECT_EQ(FormatDuration(Duration(0)), "0s");
  EXPECT_EQ(FormatDuration(Duration(250)), "250ms");
  EXPECT_EQ(FormatDuration(*ParseDuration("2h30m")), "2h30m");
  EXPECT_EQ(FormatDuration(*ParseDuration("1d1s")), "1d1s");
}

}  // namespace
}  // namespace tierflow
