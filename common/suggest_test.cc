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

TEST(EditDistanceTest, CountsASwapOfAdjacentLettersAsOneEdit) {
  EXPECT_EQ(EditDistance("trian", "train"), 1u);
  EXPECT_EQ(EditDistance("ab", "ba"), 1u);
  EXPECT_EQ(EditDistance("kidn", "kind"), 1u);
  EXPECT_EQ(EditDistance("abcd", "badc"), 2u);  // two separate swaps
  // Optimal string alignment: a swapped pair is not edited again, so
  // 'ca' -> 'abc' takes three edits (true Damerau-Levenshtein says two).
  EXPECT_EQ(EditDistance("ca", "abc"), 3u);
  EXPECT_EQ(EditDistance("outptus", "outputs"), 1u);
}

TEST(ClosestMatchTest, SuggestsASwapEvenInShortWords) {
  // A third of five letters is one edit: a swap now fits, two edits did not.
  std::vector<std::string> kinds = {"ingest", "clean", "feature", "stage", "train"};
  EXPECT_EQ(ClosestMatch("trian", kinds), std::optional<std::string>("train"));
  EXPECT_EQ(ClosestMatch("claen", kinds), std::optional<std::string>("clean"));
  EXPECT_EQ(DidYouMean("satge", kinds), " (did you mean 'stage'?)");
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
