#include "storage_adapters/transfer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <sstream>
#include <thread>

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
  // 200 MiB: three ranges of the in-kernel copy run at once, each in three
  // chunks (32 MiB, whose write-back starts as each is copied, and the rest).
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

// A tree artifact on a posix tier is a folder, not an object: deleting it
// deletes every file under it (and nothing beside it); a file artifact is
// one object.
TEST_F(TransferTest, ACheckpointFlushedAgainDropsWhatTheCutOffFlushLeft) {
  Put("ckpt/step-7/model.bin", Bytes(3000, 7));
  Put("ckpt/step-7/state.json", "{\"step\": 7}");
  Put("ckpt/step-7.committed", "");
  // A flush killed mid-way: one file written, another's temporary, a stale
  // file of an earlier try, no marker.
  fs::create_directories(dir_ / "fast/ckpt/step-7");
  std::ofstream(dir_ / "fast/ckpt/step-7/model.bin") << Bytes(3000, 7);
  std::ofstream(dir_ / "fast/ckpt/step-7/.state.json.tierflow-tmp-99") << "{\"st";
  std::ofstream(dir_ / "fast/ckpt/.step-7.committed.tierflow-tmp-98") << "";
  auto flushed = CopyCheckpoint(*home_, *fast_, "ckpt/step-7");
  ASSERT_TRUE(flushed.ok()) << flushed.status();
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir_ / "fast/ckpt/step-7")) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  EXPECT_THAT(names, ::testing::ElementsAre("model.bin", "state.json"));
  EXPECT_FALSE(fs::exists(dir_ / "fast/ckpt/.step-7.committed.tierflow-tmp-98"));
  EXPECT_TRUE(fs::exists(dir_ / "fast/ckpt/step-7.committed"));
  EXPECT_EQ(ReadFile(dir_ / "fast/ckpt/step-7/state.json"), "{\"step\": 7}");
}

TEST_F(TransferTest, DeletesAFileOrATreeArtifact) {
  Put("run/out/a", "alpha");
  Put("run/out/sub/b", "beta");
  Put("run/outside", "stays");
  Put("run/file", "one");
  ASSERT_TRUE(DeleteArtifact(*home_, "run/out").ok());
  EXPECT_FALSE(fs::exists(dir_ / "home" / "run" / "out" / "a"));
  EXPECT_FALSE(fs::exists(dir_ / "home" / "run" / "out" / "sub" / "b"));
  EXPECT_TRUE(fs::exists(dir_ / "home" / "run" / "outside"));
  ASSERT_TRUE(DeleteArtifact(*home_, "run/file").ok());
  EXPECT_FALSE(fs::exists(dir_ / "home" / "run" / "file"));
  absl::StatusOr<bool> gone = ArtifactExists(*home_, "run/out");
  ASSERT_TRUE(gone.ok()) << gone.status();
  EXPECT_FALSE(*gone);
}

// A streamed copy: the manifest names every file in order before they come,
// the first is there when on_first is called, and a reader that asks for
// nothing holds the copy at the window until it is told its readers ended.
TEST_F(TransferTest, StreamsATreeFileByFileWithinTheReadersWindow) {
  for (int i = 0; i < 12; ++i) Put("set/s" + std::to_string(10 + i), std::to_string(i));
  const std::string path = (dir_ / "fast" / "set").string();
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::atomic<int> firsts{0};
  StreamOptions options;
  options.window = 3;
  options.parallel = 2;
  options.readers_done = done;
  options.on_first = [&] {
    ++firsts;
    EXPECT_TRUE(fs::exists(dir_ / "fast" / "set" / "s10"));
  };
  auto stream = std::async(std::launch::async,
                           [&] { return StreamArtifact(*home_, "set", *fast_, path, options); });
  // Nobody reads: it stops at the window (3 files ahead of file 0).
  for (int tries = 0; tries < 200 && !fs::exists(dir_ / "fast" / "set" / "s12"); ++tries) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(fs::exists(dir_ / "fast" / "set" / "s12"));
  EXPECT_FALSE(fs::exists(dir_ / "fast" / "set" / "s13")) << "the copy ran past its window";
  EXPECT_EQ(ReadFile(path + ".stream.json"),
            "{\"files\": [\"s10\", \"s11\", \"s12\", \"s13\", \"s14\", \"s15\", "
            "\"s16\", \"s17\", \"s18\", \"s19\", \"s20\", \"s21\"], \"bytes\": [1, 1, 1, "
            "1, 1, 1, 1, 1, 1, 1, 2, 2]}\n");
  *done = true;  // its readers ended: the rest comes without waiting
  absl::StatusOr<TransferResult> streamed = stream.get();
  ASSERT_TRUE(streamed.ok()) << streamed.status();
  EXPECT_EQ(streamed->objects, 12u);
  EXPECT_EQ(firsts, 1);
  EXPECT_EQ(ReadFile(dir_ / "fast" / "set" / "s21"), "11");
}

// start_at_manifest: the reader is told once the manifest is written, before
// the first file is copied (its start overlaps that copy); the files still
// come in order and within the window.
TEST_F(TransferTest, StreamStartsItsReaderAtTheManifestBeforeTheFirstFile) {
  for (int i = 0; i < 6; ++i) Put("set/s" + std::to_string(10 + i), std::to_string(i));
  const std::string path = (dir_ / "fast" / "set").string();
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::atomic<int> firsts{0};
  StreamOptions options;
  options.window = 2;
  options.start_at_manifest = true;
  options.readers_done = done;
  options.on_first = [&] {
    ++firsts;
    EXPECT_TRUE(fs::exists(path + ".stream.json")) << "told before the manifest was written";
    EXPECT_FALSE(fs::exists(dir_ / "fast" / "set" / "s10")) << "told only after the first file";
  };
  auto stream = std::async(std::launch::async,
                           [&] { return StreamArtifact(*home_, "set", *fast_, path, options); });
  for (int tries = 0; tries < 200 && !fs::exists(dir_ / "fast" / "set" / "s11"); ++tries) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(fs::exists(dir_ / "fast" / "set" / "s11"));
  EXPECT_FALSE(fs::exists(dir_ / "fast" / "set" / "s12")) << "the copy ran past its window";
  *done = true;
  absl::StatusOr<TransferResult> streamed = stream.get();
  ASSERT_TRUE(streamed.ok()) << streamed.status();
  EXPECT_EQ(streamed->objects, 6u);
  EXPECT_EQ(firsts, 1);
  EXPECT_EQ(ReadFile(dir_ / "fast" / "set" / "s15"), "5");
}

}  // namespace
}  // namespace tierflow::storage
