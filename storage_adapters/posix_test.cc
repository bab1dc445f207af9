#include "storage_adapters/posix.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "storage_adapters/local_artifact.h"

namespace tierflow::storage {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class PosixAdapterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "tierflow-posix.XXXXXX").string();
    dir_ = mkdtemp(pattern.data());
    root_ = dir_ / "root";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<Adapter> Make(bool write_once = false) {
    auto adapter = MakePosixAdapter({"fast", root_.string(), /*sync=*/write_once, write_once});
    EXPECT_TRUE(adapter.ok()) << adapter.status();
    return adapter.ok() ? std::move(*adapter) : nullptr;
  }
  static absl::Status Put(Adapter& adapter, std::string_view key, std::string_view data) {
    auto writer = adapter.OpenWrite(key);
    if (!writer.ok()) return writer.status();
    if (absl::Status status = (*writer)->Write(data); !status.ok()) return status;
    return (*writer)->Commit();
  }
  static std::string Get(Adapter& adapter, std::string_view key, uint64_t offset = 0,
                         std::optional<uint64_t> length = std::nullopt) {
    auto reader = adapter.OpenRead(key, offset, length);
    if (!reader.ok()) return "error: " + reader.status().ToString();
    std::string out;
    char buffer[7];  // small on purpose: many reads
    for (;;) {
      auto n = (*reader)->Read(buffer);
      if (!n.ok()) return "error: " + n.status().ToString();
      if (*n == 0) return out;
      out.append(buffer, *n);
    }
  }
  static std::string ReadFile(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  // Every file below root_, temporary ones included.
  std::vector<std::string> Files() const {
    std::vector<std::string> files;
    for (const auto& entry : fs::recursive_directory_iterator(root_)) {
      if (entry.is_regular_file()) files.push_back(entry.path().lexically_relative(root_));
    }
    std::sort(files.begin(), files.end());
    return files;
  }

  fs::path dir_;
  fs::path root_;
};

TEST_F(PosixAdapterTest, WritesReadsListsAndDeletes) {
  auto tier = Make();
  ASSERT_TRUE(Put(*tier, "run/a/model.bin", "weights of the model").ok());
  ASSERT_TRUE(Put(*tier, "./run//b.txt", "bee").ok());  // normalised to run/b.txt
  EXPECT_EQ(Get(*tier, "run/a/model.bin"), "weights of the model");
  EXPECT_EQ(Get(*tier, "run/a/model.bin", 8, 6), "of the");
  EXPECT_EQ(Get(*tier, "run/a/model.bin", 15), "model");
  auto info = tier->Stat("run/b.txt");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->bytes, 3u);
  EXPECT_GT(info->modified_ms, 0);
  auto listed = tier->List("run/");
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].key, "run/a/model.bin");
  EXPECT_EQ((*listed)[1].key, "run/b.txt");
  ASSERT_TRUE(Put(*tier, "run/b.txt", "replaced").ok());
  EXPECT_EQ(Get(*tier, "run/b.txt"), "replaced");
  ASSERT_TRUE(tier->Delete("run/b.txt").ok());
  EXPECT_EQ(tier->Stat("run/b.txt").status().code(), absl::StatusCode::kNotFound);
  absl::Status missing = tier->Delete("run/b.txt");
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.message()), HasSubstr("tier fast"));
  EXPECT_THAT(std::string(missing.message()), HasSubstr("run/b.txt"));
}

// Listing one artifact walks only its folder, so what happens elsewhere on
// the tier meanwhile (another artifact evicted while a copy lists this one:
// the whole-tier walk this replaced failed on it) cannot fail it. A prefix
// names whole folders or a key's beginning, and cannot leave the root.
TEST_F(PosixAdapterTest, ListingAnArtifactWalksOnlyItsFolder) {
  auto tier = Make();
  ASSERT_TRUE(Put(*tier, "runs/r1/a/x/1.bin", "1").ok());
  ASSERT_TRUE(Put(*tier, "runs/r1/a/2.bin", "22").ok());
  ASSERT_TRUE(Put(*tier, "runs/r1/ab/3.bin", "333").ok());
  ASSERT_TRUE(Put(*tier, "runs/r2/other.bin", "4").ok());
  // A loop of symbolic links elsewhere is neither followed nor listed.
  fs::create_directories(root_ / "runs" / "r2" / "loop");
  fs::create_directory_symlink("../loop", root_ / "runs" / "r2" / "loop" / "self");
  auto listed = tier->List("runs/r1/a/");
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].key, "runs/r1/a/2.bin");
  EXPECT_EQ((*listed)[0].bytes, 2u);
  EXPECT_EQ((*listed)[1].key, "runs/r1/a/x/1.bin");
  auto by_start = tier->List("runs/r1/a");  // a key's beginning: a/ and ab/
  ASSERT_TRUE(by_start.ok()) << by_start.status();
  EXPECT_EQ(by_start->size(), 3u);
  auto none = tier->List("runs/r9/");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty());
  EXPECT_FALSE(tier->List("../outside/").ok());
}

TEST_F(PosixAdapterTest, NothingIsVisibleBeforeCommitAndAnAbandonedWriteLeavesNoTrace) {
  auto tier = Make();
  {
    auto writer = tier->OpenWrite("half/written");
    ASSERT_TRUE(writer.ok()) << writer.status();
    ASSERT_TRUE((*writer)->Write("partial").ok());
    EXPECT_EQ(tier->Stat("half/written").status().code(), absl::StatusCode::kNotFound);
    auto listed = tier->List("");
    ASSERT_TRUE(listed.ok());
    EXPECT_TRUE(listed->empty()) << "a temporary file is listed";
  }  // destroyed without Commit, as after a failed task or a crash
  EXPECT_THAT(Files(), ::testing::IsEmpty());
}

TEST_F(PosixAdapterTest, KeysThatLeaveTheRootAreRejected) {
  auto tier = Make();
  for (std::string_view key : {"../escape", "/etc/passwd", "a/../../b", "a\\b", ""}) {
    auto writer = tier->OpenWrite(key);
    EXPECT_EQ(writer.status().code(), absl::StatusCode::kInvalidArgument) << key;
    EXPECT_FALSE(tier->OpenRead(key).ok()) << key;
  }
  EXPECT_FALSE(fs::exists(dir_ / "escape"));
}

TEST_F(PosixAdapterTest, SymlinksCannotLeadOutOfTheRoot) {
  auto tier = Make();
  const fs::path outside = dir_ / "outside";
  fs::create_directories(outside);
  std::ofstream(outside / "secret") << "not yours";
  fs::create_directory_symlink(outside, root_ / "door");
  fs::create_symlink(outside / "secret", root_ / "secret-link");

  EXPECT_FALSE(tier->OpenRead("door/secret").ok());
  EXPECT_FALSE(tier->OpenRead("secret-link").ok());
  EXPECT_FALSE(tier->Stat("door/secret").ok());
  absl::Status put = Put(*tier, "door/planted", "x");
  EXPECT_FALSE(put.ok());
  EXPECT_THAT(std::string(put.message()), HasSubstr("tier fast"));
  EXPECT_FALSE(fs::exists(outside / "planted"));
  EXPECT_FALSE(tier->Delete("door/secret").ok());
  EXPECT_TRUE(fs::exists(outside / "secret"));
  EXPECT_FALSE(tier->GetFile("secret-link", (dir_ / "copy").string()).ok());
  auto listed = tier->List("");
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty()) << (*listed)[0].key;
}

TEST_F(PosixAdapterTest, ArchiveTiersAreWriteOnce) {
  auto tier = Make(/*write_once=*/true);
  ASSERT_TRUE(Put(*tier, "models/v1", "first").ok());
  auto again = tier->OpenWrite("models/v1");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(again.status().message()), HasSubstr("write-once"));
  absl::Status deleted = tier->Delete("models/v1");
  EXPECT_EQ(deleted.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Get(*tier, "models/v1"), "first");
  // Two writers racing for one key: the second commit loses, the first stays.
  auto a = tier->OpenWrite("models/v2");
  auto b = tier->OpenWrite("models/v2");
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE((*a)->Write("a").ok());
  ASSERT_TRUE((*b)->Write("b").ok());
  ASSERT_TRUE((*a)->Commit().ok());
  EXPECT_EQ((*b)->Commit().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Get(*tier, "models/v2"), "a");
}

TEST_F(PosixAdapterTest, WholeFilesInAndOut) {
  auto tier = Make();
  std::string data;
  for (int i = 0; data.size() < (3u << 20); ++i) data += std::to_string(i) + ",";
  const fs::path source = dir_ / "source.bin";
  std::ofstream(source, std::ios::binary) << data;
  ASSERT_TRUE(tier->PutFile("shards/000", source.string()).ok());
  const fs::path target = dir_ / "back" / "000";
  ASSERT_TRUE(tier->GetFile("shards/000", target.string()).ok());
  EXPECT_EQ(ReadFile(target), data);
  // A failed download leaves the target as it was.
  std::ofstream(target, std::ios::binary) << "old";
  EXPECT_EQ(tier->GetFile("shards/missing", target.string()).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ReadFile(target), "old");
  EXPECT_EQ(tier->PutFile("shards/001", (dir_ / "no-such-file").string()).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(tier->Stat("shards/001").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(PosixAdapterTest, ADurablePublishSyncsATreeWithFoldersAndSymlinksAndReplacesLeftovers) {
  auto root = TierRoot::Open(root_.string(), /*create=*/true);
  ASSERT_TRUE(root.ok()) << root.status();
  const fs::path staging = root_ / "staging" / "out";
  fs::create_directories(staging / "a" / "b");
  std::ofstream(staging / "a" / "b" / "data") << "bytes";
  std::ofstream(staging / "top") << "top";
  fs::create_symlink("a/b/data", staging / "link");
  fs::create_symlink("/nonexistent", staging / "dangling");  // not followed
  const fs::path final_path = root_ / "runs" / "r" / "out";
  fs::create_directories(final_path / "leftover");  // of an attempt never recorded
  ASSERT_TRUE(
      PublishArtifact(**root, staging.string(), final_path.string(), /*durable=*/true).ok());
  EXPECT_FALSE(fs::exists(staging));
  EXPECT_FALSE(fs::exists(final_path / "leftover"));
  EXPECT_EQ(fs::read_symlink(final_path / "link"), "a/b/data");
  EXPECT_EQ(fs::read_symlink(final_path / "dangling"), "/nonexistent");
  // A staging path that is not there: an error naming it, nothing changed.
  absl::Status missing =
      PublishArtifact(**root, (root_ / "nope").string(), (root_ / "other").string(), true);
  EXPECT_FALSE(missing.ok());
  EXPECT_THAT(missing.message(), HasSubstr("nope"));
  EXPECT_FALSE(fs::exists(root_ / "other"));
}

}  // namespace
}  // namespace tierflow::storage
