#include "storage_adapters/artifact_key.h"

#include <gtest/gtest.h>

namespace tierflow::storage {
namespace {

TEST(NormalizeArtifactKeyTest, CanonicalisesSlashesAndDots) {
  EXPECT_EQ(*NormalizeArtifactKey("run1/ingest/raw"), "run1/ingest/raw");
  EXPECT_EQ(*NormalizeArtifactKey("run1//./ingest/raw/"), "run1/ingest/raw");
  EXPECT_EQ(*NormalizeArtifactKey("./a"), "a");
  EXPECT_EQ(*NormalizeArtifactKey("a/..b/c.."), "a/..b/c..");
}

TEST(NormalizeArtifactKeyTest, RejectsKeysThatCouldEscapeTheTierRoot) {
  struct Case {
    std::string key;
    std::string message;
  };
  const Case cases[] = {
      {"../etc/passwd", "invalid artifact key '../etc/passwd': '..' would leave the tier root"},
      {"a/../../b", "invalid artifact key 'a/../../b': '..' would leave the tier root"},
      {"a/..", "invalid artifact key 'a/..': '..' would leave the tier root"},
      {"/etc/passwd", "invalid artifact key '/etc/passwd': absolute paths are not allowed"},
      {"a\\..\\b", "invalid artifact key 'a\\\\..\\\\b': backslashes are not allowed"},
      {std::string("a\0b", 3),
       "invalid artifact key 'a\\x00b': control characters are not allowed"},
      {"a/\nb", "invalid artifact key 'a/\\nb': control characters are not allowed"},
      {"", "invalid artifact key '': empty"},
      {"./", "invalid artifact key './': empty"},
  };
  for (const Case& c : cases) {
    auto key = NormalizeArtifactKey(c.key);
    ASSERT_FALSE(key.ok()) << c.key;
    EXPECT_EQ(key.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(std::string(key.status().message()), c.message);
  }
}

TEST(NormalizeArtifactKeyTest, EnforcesLengthLimits) {
  EXPECT_TRUE(NormalizeArtifactKey(std::string(255, 'x')).ok());
  EXPECT_FALSE(NormalizeArtifactKey(std::string(256, 'x')).ok());
  std::string long_key;
  while (long_key.size() <= kMaxArtifactKeyBytes) long_key += "abcdefgh/";
  auto key = NormalizeArtifactKey(long_key);
  ASSERT_FALSE(key.ok());
  EXPECT_NE(std::string(key.status().message()).find("longer than 1024 bytes"), std::string::npos);
}

}  // namespace
}  // namespace tierflow::storage
