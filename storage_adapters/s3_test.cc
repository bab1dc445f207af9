// The s3 adapter against a real S3 server: OpenStack Swift with s3api, which
// the `swift` CTest fixture starts (scripts/swift.sh) in TIERFLOW_SWIFT_DIR.
// Every test works under a prefix of its own, so tests can run in parallel
// against the one server.
#include "storage_adapters/s3.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <thread>

#include "storage_adapters/s3_reader.h"
#include "storage_adapters/swift_testing.h"

namespace tierflow::storage {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

using testing::kMiB;
using testing::RandomBytes;
using testing::ReadFile;
using testing::TrimNewline;

void WriteFile(const fs::path& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

// A port nothing listens on (bound, then closed).
int ClosedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t size = sizeof address;
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
  close(fd);
  return ntohs(address.sin_port);
}

class S3AdapterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* swift = std::getenv("TIERFLOW_SWIFT_DIR");
    if (swift == nullptr) {
      GTEST_SKIP() << "TIERFLOW_SWIFT_DIR is not set: run through ctest, whose swift fixture "
                      "starts the server (scripts/swift.sh start DIR)";
    }
    swift_dir_ = swift;
    endpoint_ = std::string(TrimNewline(ReadFile(swift_dir_ / "endpoint")));
    ASSERT_FALSE(endpoint_.empty()) << "no endpoint in " << swift_dir_;
    std::string pattern = (fs::temp_directory_path() / "tierflow-s3.XXXXXX").string();
    dir_ = mkdtemp(pattern.data());
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    prefix_ = std::string("tests/") + test->name() + "-" + std::to_string(std::random_device{}());
    const absl::Status bucket = CreateS3Bucket(Config());
    ASSERT_TRUE(bucket.ok()) << bucket;
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  S3Config Config() const {
    S3Config config = testing::SwiftConfig("bulk", endpoint_, prefix_);
    config.timing.stall = std::chrono::milliseconds(10000);
    return config;
  }
  static std::unique_ptr<Adapter> Make(const S3Config& config) {
    auto adapter = MakeS3Adapter(config);
    EXPECT_TRUE(adapter.ok()) << adapter.status();
    return adapter.ok() ? std::move(*adapter) : nullptr;
  }

  static absl::Status Put(Adapter& adapter, std::string_view key, std::string_view data,
                          size_t piece = 1000003) {
    return testing::PutObject(adapter, key, data, piece);
  }
  // The bytes, or "error: " and the error.
  static std::string Get(Adapter& adapter, std::string_view key, uint64_t offset = 0,
                         std::optional<uint64_t> length = std::nullopt, size_t buffer = 65536) {
    absl::StatusOr<std::string> read = testing::GetObject(adapter, key, offset, length, buffer);
    return read.ok() ? *read : "error: " + read.status().ToString();
  }
  static std::vector<std::string> Keys(Adapter& adapter, std::string_view prefix) {
    return testing::Keys(adapter, prefix);
  }
  std::vector<std::string> LocalFiles() const {
    std::vector<std::string> files;
    for (const auto& entry : fs::directory_iterator(dir_)) files.push_back(entry.path().filename());
    std::sort(files.begin(), files.end());
    return files;
  }

  fs::path swift_dir_;
  std::string endpoint_;
  fs::path dir_;
  std::string prefix_;
};

TEST_F(S3AdapterTest, WritesReadsListsAndDeletes) {
  auto tier = Make(Config());
  ASSERT_TRUE(Put(*tier, "run/a/model.bin", "weights of the model").ok());
  ASSERT_TRUE(Put(*tier, "./run//b.txt", "bee").ok());  // normalised to run/b.txt
  ASSERT_TRUE(Put(*tier, "run/a b+c&d.txt", "odd name").ok());
  EXPECT_EQ(tier->kind(), "s3");
  EXPECT_EQ(Get(*tier, "run/a/model.bin", 0, std::nullopt, 7), "weights of the model");
  EXPECT_EQ(Get(*tier, "run/a b+c&d.txt"), "odd name");
  EXPECT_THAT(Keys(*tier, ""),
              ::testing::ElementsAre("run/a b+c&d.txt", "run/a/model.bin", "run/b.txt"));
  EXPECT_THAT(Keys(*tier, "run/a/"), ::testing::ElementsAre("run/a/model.bin"));

  auto info = tier->Stat("run/b.txt");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->key, "run/b.txt");
  EXPECT_EQ(info->bytes, 3u);
  EXPECT_GT(info->modified_ms, 1600000000000);

  ASSERT_TRUE(Put(*tier, "run/b.txt", "replaced").ok());
  EXPECT_EQ(Get(*tier, "run/b.txt"), "replaced");

  ASSERT_TRUE(tier->Delete("run/b.txt").ok());
  EXPECT_THAT(Keys(*tier, ""), ::testing::ElementsAre("run/a b+c&d.txt", "run/a/model.bin"));
  absl::Status again = tier->Delete("run/b.txt");
  EXPECT_TRUE(absl::IsNotFound(again)) << again;
  auto missing = tier->Stat("run/b.txt");
  EXPECT_TRUE(absl::IsNotFound(missing.status())) << missing.status();
  EXPECT_THAT(missing.status().message(), HasSubstr("tier bulk"));
  EXPECT_THAT(missing.status().message(), HasSubstr("run/b.txt"));
  EXPECT_THAT(missing.status().message(), HasSubstr("s3://tierflow-test/" + prefix_));
  auto unreadable = tier->OpenRead("run/b.txt");
  EXPECT_TRUE(absl::IsNotFound(unreadable.status())) << unreadable.status();
  auto empty_range = tier->OpenRead("run/b.txt", 0, 0);
  EXPECT_TRUE(absl::IsNotFound(empty_range.status())) << empty_range.status();
  EXPECT_EQ(Get(*tier, "run/a/model.bin", 3, 0), "");
}

TEST_F(S3AdapterTest, AnArchiveTierNeverReplacesOrDeletesAnObject) {
  S3Config config = Config();
  config.write_once = true;
  config.part_size = 5 << 20;
  auto tier = Make(config);
  ASSERT_TRUE(Put(*tier, "release/model.bin", "the model").ok());
  absl::Status again = Put(*tier, "release/model.bin", "another model");
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists) << again;
  EXPECT_THAT(again.message(), HasSubstr("tier bulk is an archive (write-once)"));
  // Not through PutFile's multipart upload either.
  const fs::path local = dir_ / "big.bin";
  { std::ofstream(local, std::ios::binary) << std::string(11 << 20, 'x'); }
  absl::Status file = tier->PutFile("release/model.bin", local.string());
  EXPECT_EQ(file.code(), absl::StatusCode::kAlreadyExists) << file;
  absl::Status deleted = tier->Delete("release/model.bin");
  EXPECT_EQ(deleted.code(), absl::StatusCode::kFailedPrecondition) << deleted;
  EXPECT_EQ(Get(*tier, "release/model.bin"), "the model");
  // A new key is written as usual, in parts too.
  ASSERT_TRUE(tier->PutFile("release/big.bin", local.string()).ok());
  EXPECT_EQ(tier->Stat("release/big.bin")->bytes, uint64_t{11} << 20);
}

TEST_F(S3AdapterTest, MultipartUploadOfMoreThanThreePartsReadsBackByteExact) {
  auto tier = Make(Config());
  const std::string data = RandomBytes(17 * kMiB + 123, 17);  // 4 parts of 5 MiB
  ASSERT_TRUE(Put(*tier, "big/stream.bin", data).ok());
  auto info = tier->Stat("big/stream.bin");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->bytes, data.size());
  EXPECT_TRUE(Get(*tier, "big/stream.bin", 0, std::nullopt, 1 << 20) == data);

  // The same through files: parallel parts up, parallel ranges down.
  WriteFile(dir_ / "up.bin", data);
  ASSERT_TRUE(tier->PutFile("big/file.bin", (dir_ / "up.bin").string()).ok());
  absl::Status got = tier->GetFile("big/file.bin", (dir_ / "down" / "file.bin").string());
  ASSERT_TRUE(got.ok()) << got;
  EXPECT_TRUE(ReadFile(dir_ / "down" / "file.bin") == data);
  EXPECT_THAT(LocalFiles(), ::testing::ElementsAre("down", "up.bin"));  // no temporaries
}

TEST_F(S3AdapterTest, RangeReadsAreByteExact) {
  S3Config config = Config();
  config.parallel = 2;
  auto tier = Make(config);
  const std::string data = RandomBytes(11 * kMiB + 5, 11);  // 3 parts
  ASSERT_TRUE(Put(*tier, "ranges.bin", data).ok());
  const uint64_t size = data.size();
  const uint64_t part = 5 * kMiB;
  struct Range {
    uint64_t offset;
    std::optional<uint64_t> length;
  };
  for (Range range : std::vector<Range>{{0, 1},
                                        {part - 3, 10},      // across the first part boundary
                                        {123457, 2 * part},  // over three parts
                                        {size - 5, std::nullopt},
                                        {size - 5, 100},  // past the end: what there is
                                        {size, std::nullopt},
                                        {size + 10, 5},
                                        {100, 0}}) {
    const std::string expected =
        range.offset >= size ? "" : data.substr(range.offset, range.length.value_or(size));
    EXPECT_TRUE(Get(*tier, "ranges.bin", range.offset, range.length, 4099) == expected)
        << "offset " << range.offset << " length " << range.length.value_or(0);
  }
}

// GetFile asks for as few ranges as keep its streams busy (each request
// costs the server a fixed amount), at least a part each, at most
// kMaxDownloadRange (what a failed attempt fetches again).
TEST(S3DownloadRangeTest, AsFewRangesAsKeepTheStreamsBusyBetweenAPartAndTheCap) {
  using s3_internal::DownloadRangeBytes;
  using s3_internal::kMaxDownloadRange;
  EXPECT_EQ(kMaxDownloadRange, 64 * kMiB);
  EXPECT_EQ(DownloadRangeBytes(256 * kMiB, 8 * kMiB, 1), 64 * kMiB);  // 4 GETs, not 32
  EXPECT_EQ(DownloadRangeBytes(256 * kMiB, 8 * kMiB, 4), 64 * kMiB);  // one per stream
  EXPECT_EQ(DownloadRangeBytes(64 * kMiB, 8 * kMiB, 4), 16 * kMiB);
  EXPECT_EQ(DownloadRangeBytes(20 * kMiB, 8 * kMiB, 1), 20 * kMiB);  // one GET
  EXPECT_EQ(DownloadRangeBytes(17 * kMiB, 5 * kMiB, 4), 5 * kMiB);   // at least a part
  EXPECT_EQ(DownloadRangeBytes(3, 8 * kMiB, 1), 8 * kMiB);
  EXPECT_EQ(DownloadRangeBytes(0, 8 * kMiB, 1), 8 * kMiB);
  EXPECT_EQ(DownloadRangeBytes(uint64_t{1} << 30, 8 * kMiB, 2), 64 * kMiB);  // the cap
  EXPECT_EQ(DownloadRangeBytes(uint64_t{1} << 30, 128 * kMiB, 2), 128 * kMiB);
}

TEST_F(S3AdapterTest, GetFileSingleStreamFetchesAnObjectOfManyPartsInOneRangeByteExact) {
  S3Config config = Config();
  config.part_size = 5 * kMiB;
  config.parallel = 1;
  auto tier = Make(config);
  const std::string data = RandomBytes(17 * kMiB + 123, 23);  // 4 parts of 5 MiB
  WriteFile(dir_ / "up.bin", data);
  ASSERT_TRUE(tier->PutFile("single/file.bin", (dir_ / "up.bin").string()).ok());
  absl::Status got = tier->GetFile("single/file.bin", (dir_ / "down.bin").string());
  ASSERT_TRUE(got.ok()) << got;
  EXPECT_TRUE(ReadFile(dir_ / "down.bin") == data);
  EXPECT_THAT(LocalFiles(), ::testing::ElementsAre("down.bin", "up.bin"));  // no temporaries
  // And again over the file that is there now: replaced whole.
  WriteFile(dir_ / "down.bin", "an older, shorter file");
  got = tier->GetFile("single/file.bin", (dir_ / "down.bin").string());
  ASSERT_TRUE(got.ok()) << got;
  EXPECT_TRUE(ReadFile(dir_ / "down.bin") == data);
}

TEST_F(S3AdapterTest, StatAndListReportSizes) {
  auto tier = Make(Config());
  const std::vector<uint64_t> sizes = {0, 1, 5 * kMiB, 5 * kMiB + 1};
  for (uint64_t size : sizes) {
    ASSERT_TRUE(Put(*tier, "sizes/" + std::to_string(size), RandomBytes(size, size)).ok());
  }
  for (uint64_t size : sizes) {
    auto info = tier->Stat("sizes/" + std::to_string(size));
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->bytes, size);
  }
  auto objects = tier->List("sizes/");
  ASSERT_TRUE(objects.ok()) << objects.status();
  ASSERT_EQ(objects->size(), sizes.size());
  for (const ObjectInfo& info : *objects) {
    EXPECT_EQ(info.key, "sizes/" + std::to_string(info.bytes));
    EXPECT_GT(info.modified_ms, 1600000000000);
  }
  EXPECT_EQ(Get(*tier, "sizes/0"), "");
  ASSERT_TRUE(tier->GetFile("sizes/0", (dir_ / "empty").string()).ok());
  EXPECT_EQ(fs::file_size(dir_ / "empty"), 0u);
}

TEST_F(S3AdapterTest, ListFollowsContinuationTokens) {
  auto tier = Make(Config());
  // The test server pages listings at 100 keys (scripts/swift.sh): three pages.
  constexpr int kObjects = 250;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < kObjects; i += 4) {
        if (!Put(*tier, "many/" + std::to_string(1000 + i), "x").ok()) ++failures;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_EQ(failures, 0);
  std::vector<std::string> keys = Keys(*tier, "many/");
  ASSERT_EQ(keys.size(), static_cast<size_t>(kObjects));
  EXPECT_EQ(keys.front(), "many/1000");
  EXPECT_EQ(keys.back(), "many/" + std::to_string(1000 + kObjects - 1));
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
}

TEST_F(S3AdapterTest, WrongSecretIsPermissionDeniedSayingTheCredentialsWereRefused) {
  S3Config config = Config();
  config.secret_key = "not-the-secret";
  auto tier = Make(config);
  absl::Status put = Put(*tier, "secret.txt", "data");
  EXPECT_TRUE(absl::IsPermissionDenied(put)) << put;
  EXPECT_THAT(put.message(), HasSubstr("credentials were refused"));
  EXPECT_THAT(put.message(), HasSubstr("SignatureDoesNotMatch"));
  EXPECT_THAT(put.message(), HasSubstr("tier bulk"));
  EXPECT_THAT(put.message(), HasSubstr("s3://tierflow-test/" + prefix_ + "/secret.txt"));
  auto stat = tier->Stat("secret.txt");  // HEAD: a status, no body
  EXPECT_TRUE(absl::IsPermissionDenied(stat.status())) << stat.status();
  EXPECT_THAT(stat.status().message(), HasSubstr("credentials were refused"));
  auto list = tier->List("");
  EXPECT_TRUE(absl::IsPermissionDenied(list.status())) << list.status();
  // A larger body waits for the server's go-ahead: refused as a status, not
  // a broken connection to retry.
  WriteFile(dir_ / "big.bin", RandomBytes(4 * kMiB, 4));
  absl::Status big = tier->PutFile("big.bin", (dir_ / "big.bin").string());
  EXPECT_TRUE(absl::IsPermissionDenied(big)) << big;
}

TEST_F(S3AdapterTest, KeysThatAreNotNormalisedAreRejectedBeforeAnyRequest) {
  // Nothing listens there: any request would end in Unavailable.
  S3Config config = Config();
  config.endpoint = "http://127.0.0.1:" + std::to_string(ClosedPort());
  config.timing.budget = std::chrono::milliseconds(0);
  auto tier = Make(config);
  WriteFile(dir_ / "local.txt", "data");
  for (std::string_view key : {"../x", "/abs", "a/../../b", "", "a\\b"}) {
    SCOPED_TRACE(key);
    EXPECT_TRUE(absl::IsInvalidArgument(tier->OpenWrite(key).status()));
    EXPECT_TRUE(absl::IsInvalidArgument(tier->OpenRead(key).status()));
    EXPECT_TRUE(absl::IsInvalidArgument(tier->Stat(key).status()));
    EXPECT_TRUE(absl::IsInvalidArgument(tier->Delete(key)));
    EXPECT_TRUE(absl::IsInvalidArgument(tier->PutFile(key, (dir_ / "local.txt").string())));
    EXPECT_TRUE(absl::IsInvalidArgument(tier->GetFile(key, (dir_ / "out.txt").string())));
  }
  EXPECT_THAT(LocalFiles(), ::testing::ElementsAre("local.txt"));
}

TEST_F(S3AdapterTest, ClosedPortRetriesThenIsUnavailableNamingTheEndpoint) {
  S3Config config = Config();
  config.endpoint = "http://127.0.0.1:" + std::to_string(ClosedPort());
  config.timing.backoff = std::chrono::milliseconds(20);
  config.timing.max_backoff = std::chrono::milliseconds(40);
  config.timing.budget = std::chrono::milliseconds(150);
  auto tier = Make(config);
  const auto start = std::chrono::steady_clock::now();
  auto info = tier->Stat("x");
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(absl::IsUnavailable(info.status())) << info.status();
  EXPECT_THAT(info.status().message(), HasSubstr("cannot reach " + config.endpoint));
  EXPECT_THAT(info.status().message(), HasSubstr("attempts (retry budget 150ms)"));
  // Retried until the budget was nearly spent (a wait is at most 40 ms),
  // and not much longer.
  EXPECT_GE(waited, std::chrono::milliseconds(110));
  EXPECT_LT(waited, std::chrono::milliseconds(2000));
}

TEST_F(S3AdapterTest, GetFileIsAtomic) {
  auto tier = Make(Config());
  const fs::path target = dir_ / "target.bin";
  absl::Status missing = tier->GetFile("no/such/key", target.string());
  EXPECT_TRUE(absl::IsNotFound(missing)) << missing;
  EXPECT_FALSE(fs::exists(target));

  // A failed download leaves an earlier file as it was.
  WriteFile(target, "old");
  S3Config down = Config();
  down.endpoint = "http://127.0.0.1:" + std::to_string(ClosedPort());
  down.timing.budget = std::chrono::milliseconds(100);
  auto unreachable = Make(down);
  absl::Status failed = unreachable->GetFile("k", target.string());
  EXPECT_TRUE(absl::IsUnavailable(failed)) << failed;
  EXPECT_EQ(ReadFile(target), "old");

  const std::string data = RandomBytes(12 * kMiB + 1, 12);  // 3 ranges
  ASSERT_TRUE(Put(*tier, "k", data).ok());
  ASSERT_TRUE(tier->GetFile("k", target.string()).ok());
  EXPECT_TRUE(ReadFile(target) == data);
  EXPECT_THAT(LocalFiles(), ::testing::ElementsAre("target.bin"));
}

TEST_F(S3AdapterTest, UncommittedWriterLeavesNothing) {
  auto tier = Make(Config());
  {
    auto writer = tier->OpenWrite("partial.bin");
    ASSERT_TRUE(writer.ok());
    // Two full parts: the multipart upload has begun.
    ASSERT_TRUE((*writer)->Write(RandomBytes(11 * kMiB, 3)).ok());
  }
  auto info = tier->Stat("partial.bin");
  EXPECT_TRUE(absl::IsNotFound(info.status())) << info.status();
  EXPECT_THAT(Keys(*tier, ""), IsEmpty());
}

TEST_F(S3AdapterTest, VirtualHostedStyleReachesTheSameObjects) {
  auto path_style = Make(Config());
  S3Config config = Config();
  // Swift answers for <bucket>.localhost (storage_domain); curl resolves
  // every *.localhost to the loopback.
  const std::string lead = "http://127.0.0.1:";
  ASSERT_EQ(config.endpoint.rfind(lead, 0), 0u);
  config.endpoint = "http://localhost:" + config.endpoint.substr(lead.size());
  config.path_style = false;
  auto virtual_host = Make(config);
  ASSERT_TRUE(Put(*virtual_host, "vhost/a.txt", "by host").ok());
  EXPECT_EQ(Get(*path_style, "vhost/a.txt"), "by host");
  EXPECT_EQ(Get(*virtual_host, "vhost/a.txt"), "by host");
  EXPECT_THAT(Keys(*virtual_host, "vhost/"), ::testing::ElementsAre("vhost/a.txt"));
}

TEST(S3ConfigTest, RejectsBadConfigurations) {
  S3Config good;
  good.tier = "bulk";
  good.endpoint = "http://127.0.0.1:8080/";
  good.bucket = "data";
  good.access_key = "test:tester";
  good.secret_key = "testing";
  good.prefix = "/tierflow/";
  EXPECT_TRUE(MakeS3Adapter(good).ok()) << MakeS3Adapter(good).status();
  std::vector<std::pair<std::string, std::function<void(S3Config&)>>> cases = {
      {"part size below 5 MiB", [](S3Config& c) { c.part_size = kMiB; }},
      {"no scheme", [](S3Config& c) { c.endpoint = "127.0.0.1:8080"; }},
      {"a path", [](S3Config& c) { c.endpoint = "http://host/path"; }},
      {"no secret", [](S3Config& c) { c.secret_key.clear(); }},
      {"no bucket", [](S3Config& c) { c.bucket.clear(); }},
      {"a prefix that leaves the bucket", [](S3Config& c) { c.prefix = "../up"; }},
      {"a bucket that is no host name",
       [](S3Config& c) {
         c.bucket = "Data_1";
         c.path_style = false;
       }},
      {"no parallelism", [](S3Config& c) { c.parallel = 0; }},
  };
  for (const auto& [name, change] : cases) {
    S3Config config = good;
    change(config);
    auto adapter = MakeS3Adapter(config);
    EXPECT_TRUE(absl::IsInvalidArgument(adapter.status())) << name << ": " << adapter.status();
    EXPECT_THAT(adapter.status().message(), HasSubstr("tier bulk")) << name;
  }
}

// A scripted HTTP server on the loopback, for the replies a real server
// cannot be made to give on demand (503 SlowDown, 507): answers the n-th
// request with replies[n] (the last one from then on), closing each
// connection, and counts the requests.
class ScriptedServer {
 public:
  explicit ScriptedServer(std::vector<std::string> replies) : replies_(std::move(replies)) {
    listen_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof address;
    if (bind(listen_, reinterpret_cast<sockaddr*>(&address), size) != 0 ||
        listen(listen_, 16) != 0 ||
        getsockname(listen_, reinterpret_cast<sockaddr*>(&address), &size) != 0) {
      ADD_FAILURE() << "cannot listen: " << std::strerror(errno);
    }
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~ScriptedServer() {
    shutdown(listen_, SHUT_RDWR);  // wakes accept()
    thread_.join();
    close(listen_);
  }

  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int requests() const { return requests_; }

  static std::string Reply(int status, std::string_view code = "", std::string body = "") {
    if (!code.empty()) {
      body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>" + std::string(code) +
             "</Code><Message>scripted</Message></Error>";
    }
    return "HTTP/1.1 " + std::to_string(status) +
           " Scripted\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\nConnection: close\r\n\r\n" + body;
  }
  // A one-page listing of `key`.
  static std::string Listing(std::string_view key) {
    return Reply(200, "",
                 "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>" +
                     std::string(key) +
                     "</Key><LastModified>2024-01-02T03:04:05.006Z</LastModified><Size>3</Size>"
                     "</Contents></ListBucketResult>");
  }

 private:
  void Serve() {
    for (;;) {
      const int fd = accept(listen_, nullptr, nullptr);
      if (fd < 0) return;
      // Requests here have no body: the headers are the whole request.
      std::string request;
      char buffer[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        const ssize_t n = recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) break;
        request.append(buffer, static_cast<size_t>(n));
      }
      const int index = requests_++;
      const std::string& reply = replies_[std::min<size_t>(index, replies_.size() - 1)];
      send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
      close(fd);
    }
  }

  std::vector<std::string> replies_;
  int listen_ = -1;
  int port_ = 0;
  std::atomic<int> requests_{0};
  std::thread thread_;
};

struct RetryCase {
  std::string name;
  std::vector<std::string> replies;
  absl::StatusCode code;
  int requests;
  std::string message;  // a part of the error's message
};

void PrintTo(const RetryCase& test, std::ostream* out) { *out << test.name; }

class S3RetryTest : public ::testing::TestWithParam<RetryCase> {};

TEST_P(S3RetryTest, RetriesOnlyTransientFailures) {
  const RetryCase& test = GetParam();
  ScriptedServer server(test.replies);
  S3Config config;
  config.tier = "bulk";
  config.endpoint = server.endpoint();
  config.bucket = "b";
  config.access_key = "test:tester";
  config.secret_key = "testing";
  config.prefix = "p";
  config.timing.backoff = std::chrono::milliseconds(1);
  config.timing.max_backoff = std::chrono::milliseconds(1);
  config.timing.budget = std::chrono::milliseconds(100);
  auto tier = MakeS3Adapter(config);
  ASSERT_TRUE(tier.ok()) << tier.status();
  auto objects = (*tier)->List("");
  EXPECT_EQ(objects.status().code(), test.code) << objects.status();
  if (test.requests > 0) {
    EXPECT_EQ(server.requests(), test.requests);
  } else {  // until the budget ran out: many
    EXPECT_GT(server.requests(), 3);
  }
  if (objects.ok()) {
    ASSERT_EQ(objects->size(), 1u);
    EXPECT_EQ((*objects)[0].key, "a");
    EXPECT_EQ((*objects)[0].bytes, 3u);
    EXPECT_EQ((*objects)[0].modified_ms, 1704164645006);
  } else {
    EXPECT_THAT(objects.status().message(), HasSubstr(test.message));
    EXPECT_THAT(objects.status().message(), HasSubstr("tier bulk"));
    EXPECT_THAT(objects.status().message(), HasSubstr("s3://b/"));
  }
}

using Server = ScriptedServer;
INSTANTIATE_TEST_SUITE_P(
    Replies, S3RetryTest,
    ::testing::Values(RetryCase{"SlowDownThenServerErrorThenSuccess",
                                {Server::Reply(503, "SlowDown"),
                                 Server::Reply(500, "InternalError"), Server::Listing("p/a")},
                                absl::StatusCode::kOk,
                                3,
                                ""},
                      RetryCase{"TooManyRequestsAndRequestTimeoutAreRetried",
                                {Server::Reply(429), Server::Reply(408), Server::Listing("p/a")},
                                absl::StatusCode::kOk,
                                3,
                                ""},
                      RetryCase{"SlowDownUntilTheRetriesRunOut",
                                {Server::Reply(503, "SlowDown")},
                                absl::StatusCode::kUnavailable,
                                0,
                                "SlowDown"},
                      RetryCase{"BadDigestIsRetried",
                                {Server::Reply(400, "BadDigest"), Server::Listing("p/a")},
                                absl::StatusCode::kOk,
                                2,
                                ""},
                      RetryCase{"BadRequestIsNotRetried",
                                {Server::Reply(400, "InvalidArgument"), Server::Listing("p/a")},
                                absl::StatusCode::kInvalidArgument,
                                1,
                                "InvalidArgument"},
                      RetryCase{"InvalidAccessKeyIsRefusedCredentials",
                                {Server::Reply(403, "InvalidAccessKeyId"), Server::Listing("p/a")},
                                absl::StatusCode::kPermissionDenied,
                                1,
                                "credentials were refused"},
                      RetryCase{"MissingBucketIsNotFound",
                                {Server::Reply(404, "NoSuchBucket"), Server::Listing("p/a")},
                                absl::StatusCode::kNotFound,
                                1,
                                "bucket 'b' does not exist"},
                      RetryCase{"InsufficientStorageIsResourceExhausted",
                                {Server::Reply(507, "InsufficientStorage"), Server::Listing("p/a")},
                                absl::StatusCode::kResourceExhausted,
                                1,
                                "full"},
                      RetryCase{"EntityTooLargeIsResourceExhausted",
                                {Server::Reply(400, "EntityTooLarge"), Server::Listing("p/a")},
                                absl::StatusCode::kResourceExhausted,
                                1,
                                "EntityTooLarge"}),
    [](const ::testing::TestParamInfo<RetryCase>& info) { return info.param.name; });

// The fault proxy (a second Swift proxy on the same back end) is killed
// while a large PutFile is under way: the transfer fails over retries into
// Unavailable, and the aborted upload leaves nothing under the key.
TEST_F(S3AdapterTest, ServerKilledMidUploadEndsUnavailableAndLeavesNothing) {
  const std::string fault_endpoint =
      std::string(TrimNewline(ReadFile(swift_dir_ / "fault_endpoint")));
  const pid_t pid = std::atoi(ReadFile(swift_dir_ / "fault-proxy.pid").c_str());
  ASSERT_GT(pid, 0);
  ASSERT_EQ(kill(pid, 0), 0) << "the fault proxy is not running; `scripts/swift.sh start "
                             << swift_dir_.string() << "` brings it back";
  const fs::path log = swift_dir_ / "fault-proxy.log";
  const uintmax_t log_start = fs::file_size(log);

  S3Config config = Config();
  config.endpoint = fault_endpoint;
  config.parallel = 2;
  config.timing.backoff = std::chrono::milliseconds(50);
  config.timing.budget = std::chrono::milliseconds(300);
  auto tier = Make(config);
  const fs::path source = dir_ / "large.bin";
  { std::ofstream out(source, std::ios::binary); }
  fs::resize_file(source, 200 * kMiB);  // sparse: 40 parts

  absl::Status put;
  std::thread upload([&] { put = tier->PutFile("large.bin", source.string()); });
  // Wait for the first part to be stored (the proxy logs each request when
  // it ends), then kill the proxy with the rest still to go.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  bool part_stored = false;
  std::ifstream lines(log);
  lines.seekg(static_cast<std::streamoff>(log_start));
  std::string line;
  while (!part_stored && std::chrono::steady_clock::now() < deadline) {
    if (std::getline(lines, line)) {
      // The proxy logs the query escaped: ?partNumber=1 as %3FpartNumber%3D1.
      part_stored = line.find("partNumber%3D") != std::string::npos;
      continue;
    }
    lines.clear();  // at the end for now: wait for more
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  upload.join();
  ASSERT_TRUE(part_stored) << "no part reached the proxy within 30 s";

  EXPECT_TRUE(absl::IsUnavailable(put)) << put;
  EXPECT_THAT(put.message(), HasSubstr(fault_endpoint));
  EXPECT_THAT(put.message(), HasSubstr("attempts (retry budget 300ms)"));
  EXPECT_THAT(put.message(), HasSubstr("large.bin"));

  auto healthy = Make(Config());
  auto info = healthy->Stat("large.bin");
  EXPECT_TRUE(absl::IsNotFound(info.status())) << info.status();
  EXPECT_THAT(Keys(*healthy, ""), IsEmpty());
}

}  // namespace
}  // namespace tierflow::storage
