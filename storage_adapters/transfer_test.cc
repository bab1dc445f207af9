#include "storage_adapters/transfer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "storage_adapters/posix.h"

namespace tierflow::storage {
namespace {

namespace fs = std::filesystem;

class TransferTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "tierflow-transfer.XXXXXX").string();
    dir_ = mkdtemp(pattern.data());
    auto a = MakePosixAdapter({"home", (dir_ / "home").string(), false, false});
    auto b = MakePosixAdapter({"fast", (dir_ / "fast").string(), false, false});
    ASSERT_TRUE(a.ok() && b.ok());
    home_ = std::move(*a);
    fast_ = std::move(*b);
  }
  void TearDown() override { fs::remove_all(dir_); }

  static std::string Bytes(size_t size, uint64_t seed) {
    std::mt19937_64 random(seed);
    std::string data(size, '\0');
    for (char& c : data) c = static_cast<char>(random());
    return data;
  }
  static std::string ReadFile(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  void Put(const std::string& key, const std::string& data) {
    auto writer = home_->OpenWrite(key);
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Write(data).ok());
    ASSERT_TRUE((*writer)->Commit().ok());
  }

  fs::path dir_;
  std::unique_ptr<Adapter> home_;
  std::unique_ptr<Adapter> fast_;
};

TEST_F(TransferTest, CopiesALargeObjectInParallelRangesByteForByte) {
  // 200 MiB: three ranges of the in-kernel copy run at once.
  const std::string data = Bytes(200u << 20, 7);
  Put("shards/big", data);
  absl::StatusOr<TransferResult> copied = CopyObject(*home_, "shards/big", *fast_, "w/big");
  ASSERT_TRUE(copied.ok()) << copied.status();
  EXPECT_EQ(copied->bytes, data.size());
  EXPECT_TRUE(ReadFile(dir_ / "fast" / "w" / "big") == data) << "the copy differs";
}

TEST_F(TransferTest, CopiesATreeAndEmptyFiles) {
  Put("run/out/a", "alpha");
  Put("run/out/sub/b", Bytes(3 << 20, 1));
  Put("run/out/empty", "");
  Put("run/other", "not under the prefix");
  absl::StatusOr<TransferResult> copied = CopyTree(*home_, "run/out", *fast_, "cache/out");
  ASSERT_TRUE(copied.ok()) << copied.status();
  EXPECT_EQ(copied->objects, 3u);
  EXPECT_EQ(ReadFile(dir_ / "fast" / "cache" / "out" / "a"), "alpha");
  EXPECT_EQ(ReadFile(dir_ / "fast" / "cache" / "out" / "sub" / "b"),
            ReadFile(dir_ / "home" / "run" / "out" / "sub" / "b"));
  EXPECT_TRUE(fs::exists(dir_ / "fast" / "cache" / "out" / "empty"));
  EXPECT_FALSE(fs::exists(dir_ / "fast" / "cache" / "other"));
}

TEST_F(TransferTest, CopiesATreeOfManyFilesSeveralAtATimeAndReportsTheFirstFailure) {
  for (int i = 0; i < 200; ++i) Put("items/" + std::to_string(i), Bytes(1000 + i, i));
  absl::StatusOr<TransferResult> copied =
      CopyTree(*home_, "items", *fast_, "items", TransferOptions{8});
  ASSERT_TRUE(copied.ok()) << copied.status();
  EXPECT_EQ(copied->objects, 200u);
  uint64_t bytes = 0;
  for (int i = 0; i < 200; ++i) {
    const std::string name = std::to_string(i);
    EXPECT_EQ(ReadFile(dir_ / "fast" / "items" / name), Bytes(1000 + i, i)) << name;
    bytes += 1000 + i;
  }
  EXPECT_EQ(copied->bytes, bytes);

  // Into an archive that already holds one of them: that copy fails, the
  // tree copy says so, and the archived object keeps its bytes.
  auto vault = MakePosixAdapter({"vault", (dir_ / "vault").string(), true, true});
  ASSERT_TRUE(vault.ok());
  ASSERT_TRUE(CopyObject(*fast_, "items/7", **vault, "items/7").ok());
  Put("items/7", "changed");
  absl::StatusOr<TransferResult> again = CopyTree(*home_, "items", **vault, "items");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists) << again.status();
  EXPECT_EQ(ReadFile(dir_ / "vault" / "items" / "7"), Bytes(1007, 7));
}

TEST_F(TransferTest, AMissingSourceChangesNothing) {
  absl::StatusOr<TransferResult> copied = CopyObject(*home_, "nope", *fast_, "nope");
  EXPECT_EQ(copied.status().code(), absl::StatusCode::kNotFound);
  auto listed = fast_->List("");
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty());
}

TEST_F(TransferTest, ArchiveTargetsAreNotOverwritten) {
  auto vault = MakePosixAdapter({"vault", (dir_ / "vault").string(), true, true});
  ASSERT_TRUE(vault.ok());
  Put("model", "v1");
  ASSERT_TRUE(CopyObject(*home_, "model", **vault, "model").ok());
  Put("model", "v2");
  EXPECT_EQ(CopyObject(*home_, "model", **vault, "model").status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ReadFile(dir_ / "vault" / "model"), "v1");
}

}  // namespace
}  // namespace tierflow::storage
