// Hashes computed while bytes stream past must equal HashArtifact's of the
// same content on disk, or every verified copy would fail.
#include "storage_adapters/content_hash.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "storage_adapters/local_artifact.h"

namespace tierflow::storage {
namespace {
namespace fs = std::filesystem;

class ContentHashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "tierflow-hash.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Write(const std::string& relative, const std::string& data) {
    fs::create_directories((dir_ / relative).parent_path());
    std::ofstream(dir_ / relative, std::ios::binary) << data;
  }
  fs::path dir_;
};

TEST_F(ContentHashTest, StreamedFileHashEqualsHashArtifact) {
  const std::string data(3'000'001, 'x');
  Write("f", data);
  ContentHasher hasher;
  hasher.Update(std::string_view(data).substr(0, 17));
  hasher.Update(std::string_view(data).substr(17));
  auto disk = HashArtifact((dir_ / "f").string());
  ASSERT_TRUE(disk.ok()) << disk.status();
  EXPECT_EQ(hasher.Finish(), disk->hash);
  EXPECT_EQ(ContentHasher().Finish(), HashBytes(""));
}

TEST_F(ContentHashTest, TreeOfFileHashesEqualsHashArtifact) {
  // '-' sorts before '/' bytewise but not as a path: "a-c" after "a/b".
  const std::vector<std::pair<std::string, std::string>> files = {
      {"a-c", "one"}, {"a/b", "two"}, {"a/d/e.txt", "three"}, {"z", ""}, {"a/d/f", "four"}};
  std::vector<std::pair<std::string, std::string>> hashes;
  for (const auto& [name, data] : files) {
    Write("tree/" + name, data);
    hashes.emplace_back(name, HashBytes(data));
  }
  auto disk = HashArtifact((dir_ / "tree").string());
  ASSERT_TRUE(disk.ok()) << disk.status();
  EXPECT_EQ(TreeHashOfFiles(hashes), disk->hash);
  hashes[1].second = HashBytes("tw0");
  EXPECT_NE(TreeHashOfFiles(hashes), disk->hash);
}

}  // namespace
}  // namespace tierflow::storage
