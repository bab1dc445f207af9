#include "storage_adapters/testing/adapter_conformance.h"

#include <gmock/gmock.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <ostream>
#include <sstream>
#include <string_view>
#include <vector>

#include "storage_adapters/testing/objects.h"

namespace tierflow::storage::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kTier[] = "conformance";

std::string ReadLocal(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void WriteLocal(const fs::path& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

// NotFound naming the tier and the key (adapter.h: "Errors name the tier and
// the key").
::testing::Matcher<const absl::Status&> NotFoundNaming(std::string_view key) {
  return ::testing::AllOf(
      ::testing::Property(&absl::Status::code, absl::StatusCode::kNotFound),
      ::testing::Property(&absl::Status::message,
                          AllOf(HasSubstr(kTier), HasSubstr(std::string(key)))));
}

}  // namespace

std::string AdapterName(const ::testing::TestParamInfo<AdapterFactory>& info) {
  return info.param.name;
}

void PrintTo(const AdapterFactory& factory, std::ostream* out) { *out << factory.name; }

void AdapterConformanceTest::SetUp() {
  std::string pattern = (fs::temp_directory_path() / "tierflow-conformance.XXXXXX").string();
  ASSERT_NE(mkdtemp(pattern.data()), nullptr) << std::strerror(errno);
  scratch_ = pattern;
  absl::StatusOr<std::unique_ptr<Adapter>> adapter = GetParam().make(kTier, scratch_, false);
  ASSERT_TRUE(adapter.ok()) << adapter.status();
  adapter_ = std::move(*adapter);
}

void AdapterConformanceTest::TearDown() {
  adapter_.reset();
  if (!scratch_.empty()) fs::remove_all(scratch_);
}

TEST_P(AdapterConformanceTest, WrittenObjectReadsBackWithItsSizeInStatAndList) {
  const std::string data = RandomBytes(100000, 1);
  ASSERT_TRUE(PutObject(*adapter_, "a/b/object", data).ok());
  EXPECT_EQ(GetObject(*adapter_, "a/b/object").value_or("error"), data);
  absl::StatusOr<ObjectInfo> info = adapter_->Stat("a/b/object");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->key, "a/b/object");
  EXPECT_EQ(info->bytes, data.size());
  EXPECT_GT(info->modified_ms, 0);
  absl::StatusOr<std::vector<ObjectInfo>> listed = adapter_->List("");
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].key, "a/b/object");
  EXPECT_EQ((*listed)[0].bytes, data.size());
}

TEST_P(AdapterConformanceTest, MissingKeyIsNotFoundNamingTierAndKey) {
  ASSERT_TRUE(PutObject(*adapter_, "there/object", "x").ok());
  for (std::string_view key : {"there/missing", "nowhere/missing"}) {
    EXPECT_THAT(adapter_->OpenRead(key).status(), NotFoundNaming(key));
    EXPECT_THAT(adapter_->OpenRead(key, 0, 0).status(), NotFoundNaming(key));
    EXPECT_THAT(adapter_->Stat(key).status(), NotFoundNaming(key));
    EXPECT_THAT(adapter_->Delete(key), NotFoundNaming(key));
    EXPECT_THAT(adapter_->GetFile(key, (scratch_ / "got").string()), NotFoundNaming(key));
  }
  EXPECT_FALSE(fs::exists(scratch_ / "got"));
  EXPECT_THAT(Keys(*adapter_, "nowhere/"), IsEmpty());
}

TEST_P(AdapterConformanceTest, AKeyThatOnlyPrefixesOthersOrPassesThroughOneIsNotFound) {
  // A posix tier keeps "f/x" as a file in a folder "f"; neither "f" nor
  // anything beneath the file "f/x" is an object.
  ASSERT_TRUE(PutObject(*adapter_, "f/x", "x").ok());
  for (std::string_view key : {"f", "f/x/y"}) {
    EXPECT_THAT(adapter_->OpenRead(key).status(), NotFoundNaming(key));
    EXPECT_THAT(adapter_->Stat(key).status(), NotFoundNaming(key));
    EXPECT_THAT(adapter_->Delete(key), NotFoundNaming(key));
    EXPECT_THAT(adapter_->GetFile(key, (scratch_ / "got").string()), NotFoundNaming(key));
  }
  EXPECT_FALSE(fs::exists(scratch_ / "got"));
  EXPECT_THAT(Keys(*adapter_, ""), ElementsAre("f/x"));
}

TEST_P(AdapterConformanceTest, AnArchiveNeverReplacesNorDeletesAKey) {
  absl::StatusOr<std::unique_ptr<Adapter>> archive =
      GetParam().make(kTier, scratch_ / "archive", /*write_once=*/true);
  ASSERT_TRUE(archive.ok()) << archive.status();
  ASSERT_TRUE(PutObject(**archive, "kept", "first").ok());
  const absl::Status again = PutObject(**archive, "kept", "second");
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists) << again;
  EXPECT_THAT(again.message(), AllOf(HasSubstr(kTier), HasSubstr("kept")));
  const fs::path local = scratch_ / "second";
  WriteLocal(local, "second");
  EXPECT_EQ((*archive)->PutFile("kept", local.string()).code(), absl::StatusCode::kAlreadyExists);
  const absl::Status deleted = (*archive)->Delete("kept");
  EXPECT_EQ(deleted.code(), absl::StatusCode::kFailedPrecondition) << deleted;
  EXPECT_THAT(deleted.message(), AllOf(HasSubstr(kTier), HasSubstr("kept")));
  EXPECT_EQ(GetObject(**archive, "kept").value_or("error"), "first");
  // New keys are written as anywhere.
  EXPECT_TRUE(PutObject(**archive, "new", "bytes").ok());
}

TEST_P(AdapterConformanceTest, ListReturnsEveryKeyStartingWithThePrefixSorted) {
  for (const char* key : {"p/b/2", "p/b/1", "p/bc", "p/x/deep/er", "q"}) {
    ASSERT_TRUE(PutObject(*adapter_, key, key).ok()) << key;
  }
  EXPECT_THAT(Keys(*adapter_, ""), ElementsAre("p/b/1", "p/b/2", "p/bc", "p/x/deep/er", "q"));
  EXPECT_THAT(Keys(*adapter_, "p/"), ElementsAre("p/b/1", "p/b/2", "p/bc", "p/x/deep/er"));
  // A prefix is text, not a folder: "p/b" takes "p/bc" too.
  EXPECT_THAT(Keys(*adapter_, "p/b"), ElementsAre("p/b/1", "p/b/2", "p/bc"));
  EXPECT_THAT(Keys(*adapter_, "p/b/"), ElementsAre("p/b/1", "p/b/2"));
  EXPECT_THAT(Keys(*adapter_, "p/x/"), ElementsAre("p/x/deep/er"));
  EXPECT_THAT(Keys(*adapter_, "r"), IsEmpty());
}

TEST_P(AdapterConformanceTest, OverwriteReplacesTheWholeObject) {
  ASSERT_TRUE(PutObject(*adapter_, "k", RandomBytes(50000, 2)).ok());
  const std::string shorter = RandomBytes(1000, 3);
  ASSERT_TRUE(PutObject(*adapter_, "k", shorter).ok());
  EXPECT_EQ(GetObject(*adapter_, "k").value_or("error"), shorter);
  absl::StatusOr<ObjectInfo> info = adapter_->Stat("k");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->bytes, shorter.size());
  EXPECT_THAT(Keys(*adapter_, ""), ElementsAre("k"));
}

TEST_P(AdapterConformanceTest, NothingIsVisibleUntilCommit) {
  ASSERT_TRUE(PutObject(*adapter_, "old", "old bytes").ok());
  {
    auto fresh = adapter_->OpenWrite("fresh");
    ASSERT_TRUE(fresh.ok()) << fresh.status();
    auto replacing = adapter_->OpenWrite("old");
    ASSERT_TRUE(replacing.ok()) << replacing.status();
    ASSERT_TRUE((*fresh)->Write("new bytes").ok());
    ASSERT_TRUE((*replacing)->Write("new bytes").ok());
    EXPECT_EQ(adapter_->Stat("fresh").status().code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(GetObject(*adapter_, "old").value_or("error"), "old bytes");
    EXPECT_THAT(Keys(*adapter_, ""), ElementsAre("old"));
  }  // destroyed without a commit
  EXPECT_EQ(adapter_->Stat("fresh").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(GetObject(*adapter_, "old").value_or("error"), "old bytes");
  EXPECT_THAT(Keys(*adapter_, ""), ElementsAre("old"));
}

TEST_P(AdapterConformanceTest, DeleteRemovesTheObjectAndOnlyIt) {
  ASSERT_TRUE(PutObject(*adapter_, "d/one", "1").ok());
  ASSERT_TRUE(PutObject(*adapter_, "d/two", "2").ok());
  ASSERT_TRUE(adapter_->Delete("d/one").ok());
  EXPECT_THAT(adapter_->Stat("d/one").status(), NotFoundNaming("d/one"));
  EXPECT_THAT(adapter_->Delete("d/one"), NotFoundNaming("d/one"));
  EXPECT_THAT(Keys(*adapter_, ""), ElementsAre("d/two"));
  EXPECT_EQ(GetObject(*adapter_, "d/two").value_or("error"), "2");
}

TEST_P(AdapterConformanceTest, EmptyObjectIsAnObjectOfNoBytes) {
  ASSERT_TRUE(PutObject(*adapter_, "empty", "").ok());
  absl::StatusOr<ObjectInfo> info = adapter_->Stat("empty");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->bytes, 0u);
  EXPECT_EQ(GetObject(*adapter_, "empty").value_or("error"), "");
  EXPECT_EQ(GetObject(*adapter_, "empty", 0, 10).value_or("error"), "");
  EXPECT_THAT(Keys(*adapter_, ""), ElementsAre("empty"));
  const fs::path got = scratch_ / "got-empty";
  ASSERT_TRUE(adapter_->GetFile("empty", got.string()).ok());
  EXPECT_TRUE(fs::exists(got));
  EXPECT_EQ(fs::file_size(got), 0u);
  const fs::path none = scratch_ / "none";
  WriteLocal(none, "");
  ASSERT_TRUE(adapter_->PutFile("empty-file", none.string()).ok());
  EXPECT_EQ(adapter_->Stat("empty-file").value_or(ObjectInfo{"", 99}).bytes, 0u);
}

TEST_P(AdapterConformanceTest, LargeObjectAcrossPartsReadsBackByteExact) {
  const uint64_t part = GetParam().part_bytes > 0 ? GetParam().part_bytes : uint64_t{1} << 20;
  const std::string data = RandomBytes(static_cast<size_t>(2 * part + part / 2 + 7), 4);
  ASSERT_TRUE(PutObject(*adapter_, "large/streamed", data).ok());
  EXPECT_EQ(adapter_->Stat("large/streamed").value_or(ObjectInfo{}).bytes, data.size());
  absl::StatusOr<std::string> read =
      GetObject(*adapter_, "large/streamed", 0, std::nullopt, 1 << 20);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(*read == data) << "the bytes read back differ";

  // Whole files, both ways.
  const fs::path local = scratch_ / "large";
  WriteLocal(local, data);
  ASSERT_TRUE(adapter_->PutFile("large/file", local.string()).ok());
  EXPECT_EQ(adapter_->Stat("large/file").value_or(ObjectInfo{}).bytes, data.size());
  const fs::path got = scratch_ / "got" / "large";
  ASSERT_TRUE(adapter_->GetFile("large/file", got.string()).ok());
  EXPECT_TRUE(ReadLocal(got) == data) << "the file fetched differs";
  EXPECT_THAT(Keys(*adapter_, "large/"), ElementsAre("large/file", "large/streamed"));
}

TEST_P(AdapterConformanceTest, RangedReadsAreByteExact) {
  const uint64_t part = GetParam().part_bytes > 0 ? GetParam().part_bytes : uint64_t{1} << 20;
  const std::string data = RandomBytes(static_cast<size_t>(part + part / 2), 5);
  ASSERT_TRUE(PutObject(*adapter_, "ranged", data).ok());
  struct Range {
    uint64_t offset;
    std::optional<uint64_t> length;
  };
  const uint64_t size = data.size();
  for (const Range& range : {Range{0, 1}, Range{1, 100}, Range{part - 10, 20}, Range{part, 7},
                             Range{size - 1, std::nullopt}, Range{size - 5, 100},
                             Range{12345, std::nullopt}, Range{0, size}, Range{size / 3, 0}}) {
    const size_t from = static_cast<size_t>(std::min(range.offset, size));
    const size_t count = static_cast<size_t>(std::min(range.length.value_or(size), size - from));
    absl::StatusOr<std::string> read =
        GetObject(*adapter_, "ranged", range.offset, range.length, 4099);
    ASSERT_TRUE(read.ok()) << range.offset << ": " << read.status();
    EXPECT_TRUE(*read == data.substr(from, count))
        << "offset " << range.offset << " length " << range.length.value_or(0) << ": got "
        << read->size() << " bytes";
  }
  // At or past the end: nothing, not an error.
  EXPECT_EQ(GetObject(*adapter_, "ranged", size).value_or("error"), "");
  EXPECT_EQ(GetObject(*adapter_, "ranged", size + 1000, 10).value_or("error"), "");
}

TEST_P(AdapterConformanceTest, KeysWithOddCharactersRoundTrip) {
  const std::vector<std::string> keys = {
      "odd/with space",  "odd/plus+sign",    "odd/percent%20x", "odd/hash#mark",
      "odd/question?q",  "odd/amp&eq=x",     "odd/tilde~'q'",   "odd/colon:at@",
      "odd/semi;comma,", "odd/bang!$paren(", "odd/é-ü-日本",    "odd/star*[x]",
  };
  for (const std::string& key : keys) {
    ASSERT_TRUE(PutObject(*adapter_, key, key).ok()) << key;
  }
  std::vector<std::string> sorted = keys;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(Keys(*adapter_, "odd/"), sorted);
  for (const std::string& key : keys) {
    EXPECT_EQ(GetObject(*adapter_, key).value_or("error"), key);
    EXPECT_EQ(adapter_->Stat(key).value_or(ObjectInfo{}).bytes, key.size()) << key;
    EXPECT_EQ(Keys(*adapter_, key), std::vector<std::string>{key});
    EXPECT_TRUE(adapter_->Delete(key).ok()) << key;
  }
  EXPECT_THAT(Keys(*adapter_, ""), IsEmpty());
}

TEST_P(AdapterConformanceTest, KeysAreNormalisedAndEscapesRefused) {
  ASSERT_TRUE(PutObject(*adapter_, "n//a/./b", "normal").ok());
  EXPECT_THAT(Keys(*adapter_, ""), ElementsAre("n/a/b"));
  EXPECT_EQ(GetObject(*adapter_, "n/a/b").value_or("error"), "normal");
  for (std::string_view key : {"../up", "n/../../up", "/absolute", "back\\slash", ""}) {
    EXPECT_EQ(adapter_->OpenWrite(key).status().code(), absl::StatusCode::kInvalidArgument) << key;
    EXPECT_EQ(adapter_->Stat(key).status().code(), absl::StatusCode::kInvalidArgument) << key;
  }
}

}  // namespace tierflow::storage::testing
