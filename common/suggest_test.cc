#include "common/suggest.h"

#include <gtest/gtest.h>

namespace tierflow {
namespace {

TEST(EditDistanceTest, CountsSingleCharacterEdits) {
  EXPECT_EQ(EditDistance("", ""), 0u);
  EXPECT_EQ(EditDistance("kind", "kind"), 0u);
  EXPECT_EQ(EditDistance("kynd", "kind"), 1u);
  EXPECT_EQ(EditDistance("stges", "stages"), 1u);
  EXPECT_EQ(EditDistance("kitten", "sitting"), 3u);
  EXPECT_EQ(EditDistance("", "abc"), 3u);
}

TEST(DidYouMeanTest, SuggestsCloseCandidatesOnly) {
  std::vector<std::string> keys = {"kind", "run", "needs", "inputs", "outputs", "timeout"};
  EXPECT_EQ(DidYouMean("kynd", keys), " (did you mean 'kind'?)");
  EXPECT_EQ(DidYouMean("outptus", keys), " (did you mean 'outputs'?)");
  EXPECT_EQ(DidYouMean("banana", keys), "");
  EXPECT_EQ(ClosestMatch("rn", keys), std::optional<std::string>("run"));
  EXPECT_EQ(ClosestMatch("x", keys), std::nullopt);
}

}  // namespace
}  // namespace tierflow
