// The s3 adapter and the copies made from it, under faults: a real Swift
// (the `swift` CTest fixture, scripts/swift.sh) behind tests/s3_fault_proxy.py,
// which each test starts on a free port and tells what to damage. Timings
// are the tier's own settings (S3Timing), short here so the suite stays
// quick; each test prints nothing but fails on a wait that runs out.
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
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "common/testing/child_process.h"
#include "storage_adapters/content_hash.h"
#include "storage_adapters/local_artifact.h"
#include "storage_adapters/posix.h"
#include "storage_adapters/remote_store.h"
#include "storage_adapters/s3.h"
#include "storage_adapters/swift_testing.h"
#include "storage_adapters/transfer.h"

namespace tierflow::storage {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

using testing::kMiB;
using testing::RandomBytes;
using testing::ReadFile;

// One GET to the proxy's control interface; the reply's body.
std::string Control(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    close(fd);
    return "cannot connect";
  }
  const std::string request =
      "GET " + path + " HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n";
  (void)!write(fd, request.data(), request.size());
  std::string reply;
  char buffer[4096];
  for (ssize_t n; (n = read(fd, buffer, sizeof buffer)) > 0;) reply.append(buffer, n);
  close(fd);
  const size_t body = reply.find("\r\n\r\n");
  return body == std::string::npos ? reply : reply.substr(body + 4);
}

class S3FaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* swift = std::getenv("TIERFLOW_SWIFT_DIR");
    const char* proxy = TIERFLOW_FAULT_PROXY;
    if (swift == nullptr) {
      GTEST_SKIP() << "TIERFLOW_SWIFT_DIR is not set: run through ctest, whose swift fixture "
                      "starts the server (scripts/swift.sh start DIR)";
    }
    const fs::path swift_dir = swift;
    endpoint_ = std::string(testing::TrimNewline(ReadFile(swift_dir / "endpoint")));
    ASSERT_FALSE(endpoint_.empty());
    std::string pattern = (fs::temp_directory_path() / "tierflow-s3fault.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    prefix_ = std::string("faults/") + test->name() + "-" + std::to_string(std::random_device{}());
    ASSERT_TRUE(CreateS3Bucket(Direct()).ok());

    const std::string port_file = (dir_ / "proxy.port").string();
    tierflow::testing::ChildSpec proxy_spec{"python3", {proxy, endpoint_, port_file}};
    proxy_spec.capture = false;  // its messages go where the test's go
    auto started = tierflow::testing::ChildProcess::Start(std::move(proxy_spec));
    ASSERT_TRUE(started.ok()) << started.status();
    proxy_ = std::move(*started);
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    while (!fs::exists(port_file) && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_TRUE(fs::exists(port_file)) << "the fault proxy did not start within 20 s";
    proxy_port_ = std::atoi(ReadFile(port_file).c_str());
    ASSERT_GT(proxy_port_, 0);
    posix_ = OpenPosix("work");
  }

  void TearDown() override {
    proxy_.reset();  // killed and reaped by its pid
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // The tier straight at Swift, and through the proxy with short timings.
  S3Config Direct() const { return testing::SwiftConfig("bucket", endpoint_, prefix_); }
  S3Config Proxied() const {
    S3Config config = Direct();
    config.tier = "faulty";
    config.endpoint = "http://127.0.0.1:" + std::to_string(proxy_port_);
    config.timing.stall = std::chrono::milliseconds(2000);
    config.timing.backoff = std::chrono::milliseconds(50);
    config.timing.max_backoff = std::chrono::milliseconds(500);
    config.timing.budget = std::chrono::milliseconds(3000);
    return config;
  }
  std::unique_ptr<Adapter> Make(const S3Config& config) {
    auto adapter = MakeS3Adapter(config);
    EXPECT_TRUE(adapter.ok()) << adapter.status();
    if (!adapter.ok()) return nullptr;
    (*adapter)->remote()->Watch(
        [this](const RetryNotice& notice) {
          std::lock_guard lock(mu_);
          notices_.push_back(notice);
        },
        nullptr);
    return std::move(*adapter);
  }
  std::unique_ptr<Adapter> OpenPosix(const std::string& name) {
    auto adapter = MakePosixAdapter({name, (dir_ / name).string()});
    EXPECT_TRUE(adapter.ok()) << adapter.status();
    return adapter.ok() ? std::move(*adapter) : nullptr;
  }
  static absl::Status Put(Adapter& adapter, std::string_view key, std::string_view data) {
    auto writer = adapter.OpenWrite(key);
    if (!writer.ok()) return writer.status();
    for (size_t at = 0; at < data.size(); at += 1000003) {
      if (absl::Status status = (*writer)->Write(data.substr(at, 1000003)); !status.ok()) {
        return status;
      }
    }
    return (*writer)->Commit();
  }
  void Fault(const std::string& kind, const std::string& match, int count, double seconds = 30) {
    std::string encoded;
    for (char c : match) encoded += c == ' ' ? std::string("%20") : std::string(1, c);
    const std::string reply = Control(
        proxy_port_, "/__proxy/fault?kind=" + kind + "&match=" + encoded +
                         "&count=" + std::to_string(count) + "&seconds=" + std::to_string(seconds));
    ASSERT_THAT(reply, HasSubstr("\"ok\": true"));
  }
  std::string Stats() { return Control(proxy_port_, "/__proxy/stats"); }
  std::vector<RetryNotice> Notices() {
    std::lock_guard lock(mu_);
    return notices_;
  }

  std::string endpoint_;
  fs::path dir_;
  std::string prefix_;
  std::unique_ptr<tierflow::testing::ChildProcess> proxy_;
  int proxy_port_ = 0;
  std::unique_ptr<Adapter> posix_;
  std::mutex mu_;
  std::vector<RetryNotice> notices_;
};

TEST_F(S3FaultTest, FlippedByteOnceIsReadAgainAndTheCopyMatches) {
  auto direct = Make(Direct());
  const std::string data = RandomBytes(3 * kMiB + 7, 1);
  ASSERT_TRUE(Put(*direct, "out.bin", data).ok());
  auto info = direct->Stat("out.bin");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->content_hash, HashBytes(data));  // stored on upload

  auto faulty = Make(Proxied());
  Fault("flip", "GET ", 1);  // matched against "METHOD PATH?QUERY": any GET
  auto copied = CopyArtifact(*faulty, "out.bin", *posix_, "out.bin", HashBytes(data));
  ASSERT_TRUE(copied.ok()) << copied.status();
  EXPECT_TRUE(ReadFile(dir_ / "work" / "out.bin") == data);
  EXPECT_THAT(Stats(), HasSubstr("\"flip\": 1"));
}

TEST_F(S3FaultTest, FlippedByteEveryTimeFailsNamingTierKeyAndHashes) {
  auto direct = Make(Direct());
  const std::string data = RandomBytes(2 * kMiB, 2);
  ASSERT_TRUE(Put(*direct, "out.bin", data).ok());
  auto faulty = Make(Proxied());
  Fault("flip", "GET ", -1);
  auto copied = CopyArtifact(*faulty, "out.bin", *posix_, "out.bin", HashBytes(data));
  ASSERT_FALSE(copied.ok());
  EXPECT_TRUE(absl::IsDataLoss(copied.status())) << copied.status();
  EXPECT_THAT(copied.status().message(), HasSubstr("tier faulty"));
  EXPECT_THAT(copied.status().message(), HasSubstr("'out.bin'"));
  EXPECT_THAT(copied.status().message(), HasSubstr("expected " + HashBytes(data)));
  EXPECT_THAT(copied.status().message(), HasSubstr(", got xxh3:"));
  EXPECT_THAT(copied.status().message(), HasSubstr("3 attempts"));
  EXPECT_FALSE(fs::exists(dir_ / "work" / "out.bin")) << "a wrong copy became visible";
}

TEST_F(S3FaultTest, TreeFromOlderObjectsWithoutHashesIsCheckedWhole) {
  // Objects stored without their own hash (as before it was kept): only
  // the tree's recorded hash can catch a damaged one, and does.
  auto direct = Make(Direct());
  const std::vector<std::pair<std::string, std::string>> files = {
      {"a.txt", RandomBytes(1000, 3)}, {"sub/b.bin", RandomBytes(200000, 4)}};
  std::vector<std::pair<std::string, std::string>> hashes;
  for (const auto& [name, data] : files) {
    hashes.emplace_back(name, HashBytes(data));
    ASSERT_TRUE(Put(*direct, "tree/" + name, data).ok());
  }
  const std::string recorded = TreeHashOfFiles(hashes);
  auto faulty = Make(Proxied());
  Fault("nohash", "HEAD ", -1);
  auto good = CopyArtifact(*faulty, "tree", *posix_, "tree", recorded);
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(good->content_hash, recorded);
  EXPECT_FALSE(good->verified);  // no file had a hash of its own

  Fault("flip", "GET /tierflow-test/" + prefix_ + "/tree/sub/b.bin", -1);
  auto bad = CopyArtifact(*faulty, "tree", *posix_, "tree2", recorded);
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(absl::IsDataLoss(bad.status())) << bad.status();
  EXPECT_THAT(bad.status().message(), HasSubstr("'tree' as read does not match its recorded hash"));
  EXPECT_THAT(bad.status().message(), HasSubstr("expected " + recorded));
  EXPECT_FALSE(fs::exists(dir_ / "work" / "tree2" / "sub" / "b.bin"))
      << "the copy that did not match was kept";
}

TEST_F(S3FaultTest, StreamedFileIsVerifiedBeforeItAppears) {
  auto direct = Make(Direct());
  std::vector<std::pair<std::string, std::string>> hashes;
  for (int i = 0; i < 4; ++i) {
    const std::string name = "part-" + std::to_string(i) + ".bin";
    const std::string data = RandomBytes(300000, 10 + i);
    hashes.emplace_back(name, HashBytes(data));
    ASSERT_TRUE(Put(*direct, "stream/" + name, data).ok());
  }
  const std::string recorded = TreeHashOfFiles(hashes);
  auto faulty = Make(Proxied());
  Fault("flip", "part-2.bin", -1);
  StreamOptions options;
  options.expected_hash = recorded;
  options.readers_done = std::make_shared<std::atomic<bool>>(true);  // no reader to wait for
  const fs::path path = dir_ / "work" / "stream";
  auto streamed = StreamArtifact(*faulty, "stream", *posix_, path.string(), options);
  ASSERT_FALSE(streamed.ok());
  EXPECT_TRUE(absl::IsDataLoss(streamed.status())) << streamed.status();
  EXPECT_THAT(streamed.status().message(), HasSubstr("part-2.bin"));
  EXPECT_FALSE(fs::exists(path / "part-2.bin")) << "a damaged file was handed to the reader";
  EXPECT_THAT(ReadFile(path.string() + ".stream.json.failed"), HasSubstr("does not match"));

  Control(proxy_port_, "/__proxy/clear");
  options.clear_first = true;
  auto again = StreamArtifact(*faulty, "stream", *posix_, path.string(), options);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->content_hash, recorded);
}

// A reader told at the manifest (start_at_manifest) gets the same guarantee:
// the first object has its own hash, so it is told at once, and a damaged
// file never appears.
TEST_F(S3FaultTest, StreamStartedAtTheManifestStillVerifiesEachFileBeforeItAppears) {
  auto direct = Make(Direct());
  std::vector<std::pair<std::string, std::string>> hashes;
  for (int i = 0; i < 3; ++i) {
    const std::string name = "part-" + std::to_string(i) + ".bin";
    const std::string data = RandomBytes(200000, 30 + i);
    hashes.emplace_back(name, HashBytes(data));
    ASSERT_TRUE(Put(*direct, "early/" + name, data).ok());
  }
  auto faulty = Make(Proxied());
  Fault("flip", "part-1.bin", -1);
  const fs::path path = dir_ / "work" / "early";
  bool first_there_when_told = true;
  StreamOptions options;
  options.expected_hash = TreeHashOfFiles(hashes);
  options.start_at_manifest = true;
  options.readers_done = std::make_shared<std::atomic<bool>>(true);
  options.on_first = [&] { first_there_when_told = fs::exists(path / "part-0.bin"); };
  auto streamed = StreamArtifact(*faulty, "early", *posix_, path.string(), options);
  ASSERT_FALSE(streamed.ok());
  EXPECT_TRUE(absl::IsDataLoss(streamed.status())) << streamed.status();
  EXPECT_FALSE(first_there_when_told) << "the reader was told only after the first file";
  EXPECT_FALSE(fs::exists(path / "part-1.bin")) << "a damaged file was handed to the reader";
  EXPECT_THAT(ReadFile(path.string() + ".stream.json.failed"), HasSubstr("does not match"));
}

TEST_F(S3FaultTest, ResetTruncatedStalledAndFailedReadsAreRetried) {
  auto direct = Make(Direct());
  const std::string data = RandomBytes(2 * kMiB + 3, 16);
  ASSERT_TRUE(Put(*direct, "out.bin", data).ok());
  S3Config config = Proxied();
  config.timing.stall = std::chrono::milliseconds(1000);
  config.timing.budget = std::chrono::milliseconds(10000);
  auto faulty = Make(config);
  Fault("reset", "GET ", 1);
  Fault("truncate", "GET ", 1);
  Fault("stall", "GET ", 1, 3);
  Fault("5xx", "GET ", 1);
  auto copied = CopyArtifact(*faulty, "out.bin", *posix_, "out.bin", HashBytes(data));
  ASSERT_TRUE(copied.ok()) << copied.status();
  EXPECT_TRUE(ReadFile(dir_ / "work" / "out.bin") == data);
  const std::string stats = Stats();
  for (const char* kind : {"reset", "truncate", "stall", "5xx"}) {
    EXPECT_THAT(stats, HasSubstr("\"" + std::string(kind) + "\": 1"));
  }
  // libcurl itself sends a request again, unreported, when a reused
  // connection turns out closed (the reset may land on one).
  EXPECT_GE(Notices().size(), 3u);
}

TEST_F(S3FaultTest, TrickledBodyEndsWithATimeoutNotAHang) {
  auto direct = Make(Direct());
  ASSERT_TRUE(Put(*direct, "slow.bin", RandomBytes(100000, 5)).ok());
  S3Config config = Proxied();
  config.timing.stall = std::chrono::milliseconds(1000);
  config.timing.min_rate = 10'000'000;  // a ranged GET of 5 MiB: 1.5 s in all
  config.timing.budget = std::chrono::milliseconds(1500);
  auto faulty = Make(config);
  Fault("trickle", "GET ", -1, 20);
  const auto start = Clock::now();
  auto copied = CopyArtifact(*faulty, "slow.bin", *posix_, "slow.bin");
  const auto took = Clock::now() - start;
  ASSERT_FALSE(copied.ok());
  EXPECT_TRUE(absl::IsUnavailable(copied.status())) << copied.status();
  EXPECT_THAT(copied.status().message(), HasSubstr("imeout"));  // curl: "Operation timed out"
  EXPECT_THAT(copied.status().message(), HasSubstr("slow.bin"));
  // Each attempt's deadline is 1 s + 5 MiB at 10 MB/s; a budget of 1.5 s.
  EXPECT_LT(took, std::chrono::seconds(8));
  EXPECT_FALSE(Notices().empty());
}

TEST_F(S3FaultTest, CancelStopsATransferUnderWayPromptly) {
  auto direct = Make(Direct());
  ASSERT_TRUE(Put(*direct, "slow.bin", RandomBytes(100000, 15)).ok());
  S3Config config = Proxied();
  config.timing.stall = std::chrono::milliseconds(60000);  // only the cancel can stop it soon
  config.timing.budget = std::chrono::milliseconds(60000);
  auto faulty = MakeS3Adapter(config);
  ASSERT_TRUE(faulty.ok());
  auto cancel = std::make_shared<std::atomic<bool>>(false);
  (*faulty)->remote()->Watch(nullptr, cancel);
  Fault("trickle", "GET ", -1, 60);
  absl::StatusOr<TransferResult> copied;
  std::thread copy([&] { copied = CopyArtifact(**faulty, "slow.bin", *posix_, "slow.bin"); });
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (Stats().find("\"trickle\": 1") == std::string::npos && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const bool trickling = Stats().find("\"trickle\": 1") != std::string::npos;
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto cancelled_at = Clock::now();
  *cancel = true;
  copy.join();
  const auto took = Clock::now() - cancelled_at;
  ASSERT_TRUE(trickling) << "the GET never reached the proxy within 20 s";
  ASSERT_FALSE(copied.ok());
  EXPECT_TRUE(absl::IsCancelled(copied.status())) << copied.status();
  EXPECT_LT(took, std::chrono::seconds(2));
  EXPECT_FALSE(fs::exists(dir_ / "work" / "slow.bin"));
}

TEST_F(S3FaultTest, ServerRestartOfTenSecondsIsRiddenOut) {
  S3Config config = Proxied();
  config.timing.budget = std::chrono::milliseconds(30000);
  config.timing.max_backoff = std::chrono::milliseconds(1000);
  auto faulty = Make(config);
  const std::string data = RandomBytes(12 * kMiB, 6);  // multipart
  { std::ofstream(dir_ / "work" / "through-restart.bin", std::ios::binary) << data; }
  ASSERT_THAT(Control(proxy_port_, "/__proxy/refuse?seconds=10"), HasSubstr("true"));
  const auto start = Clock::now();
  // As the engine writes back: the multipart upload declares the file's
  // hash when it starts.
  auto put = CopyArtifact(*posix_, "through-restart.bin", *faulty, "through-restart.bin");
  const auto took = Clock::now() - start;
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_GE(took, std::chrono::seconds(9));
  auto info = Make(Direct())->Stat("through-restart.bin");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->bytes, data.size());
  EXPECT_EQ(info->content_hash, HashBytes(data));
  const std::vector<RetryNotice> notices = Notices();
  ASSERT_FALSE(notices.empty());
  EXPECT_EQ(notices.front().tier, "faulty");
  EXPECT_THAT(notices.front().error, HasSubstr("through-restart.bin"));
}

TEST_F(S3FaultTest, BadDigestOnUploadIsRetried) {
  auto faulty = Make(Proxied());
  Fault("baddigest", "PUT ", 1);
  const std::string data = RandomBytes(1 * kMiB, 7);
  absl::Status put = Put(*faulty, "digest.bin", data);
  ASSERT_TRUE(put.ok()) << put;
  EXPECT_THAT(Stats(), HasSubstr("\"baddigest\": 1"));
  const std::vector<RetryNotice> notices = Notices();
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_THAT(notices[0].error, HasSubstr("BadDigest"));
  auto info = Make(Direct())->Stat("digest.bin");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->content_hash, HashBytes(data));
}

TEST_F(S3FaultTest, LostInitiateReplyLeavesAnUploadTheSweepAborts) {
  auto faulty = Make(Proxied());
  Fault("drop", "uploads", 1);  // POST ...?uploads: started on the server, reply lost
  const std::string data = RandomBytes(11 * kMiB, 8);
  ASSERT_TRUE(Put(*faulty, "run/out.bin", data).ok());
  EXPECT_THAT(Stats(), HasSubstr("\"drop\": 1"));
  auto direct = Make(Direct());
  auto aborted = direct->remote()->AbortUnfinishedUploads("run/");
  ASSERT_TRUE(aborted.ok()) << aborted.status();
  EXPECT_EQ(*aborted, 1);  // the upload whose start was retried
  auto again = direct->remote()->AbortUnfinishedUploads("run/");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 0);
  auto info = direct->Stat("run/out.bin");
  ASSERT_TRUE(info.ok()) << info.status();  // the finished object is untouched
}

TEST_F(S3FaultTest, FailedMultipartUploadIsAbortedAndLeavesNothing) {
  S3Config config = Proxied();
  config.timing.budget = std::chrono::milliseconds(300);
  auto faulty = Make(config);
  Fault("5xx", "partNumber=2", -1);
  absl::Status put = Put(*faulty, "run/failed.bin", RandomBytes(16 * kMiB, 9));
  ASSERT_FALSE(put.ok());
  EXPECT_TRUE(absl::IsUnavailable(put)) << put;
  // The part the proxy refuses; its last failure is the proxy's SlowDown,
  // or on a loaded machine a request of it that timed out first.
  EXPECT_THAT(put.message(), HasSubstr("write part 2 of")) << put;
  auto aborted = Make(Direct())->remote()->AbortUnfinishedUploads("run/");
  ASSERT_TRUE(aborted.ok()) << aborted.status();
  EXPECT_EQ(*aborted, 0) << "the failed writer left its upload behind";
  EXPECT_TRUE(absl::IsNotFound(Make(Direct())->Stat("run/failed.bin").status()));
}

TEST_F(S3FaultTest, ReachabilityCheckNamesTierEndpointBucketAndError) {
  ASSERT_TRUE(Make(Proxied())->remote()->CheckReachable().ok());
  S3Config wrong_secret = Proxied();
  wrong_secret.secret_key = "not-the-secret";
  absl::Status refused = Make(wrong_secret)->remote()->CheckReachable();
  EXPECT_TRUE(absl::IsPermissionDenied(refused)) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("tier faulty"));
  EXPECT_THAT(refused.message(), HasSubstr(wrong_secret.endpoint));
  EXPECT_THAT(refused.message(), HasSubstr("tierflow-test"));
  EXPECT_THAT(refused.message(), HasSubstr("credentials were refused"));
  S3Config no_bucket = Proxied();
  no_bucket.bucket = "no-such-bucket-" + std::to_string(std::random_device{}());
  absl::Status missing = Make(no_bucket)->remote()->CheckReachable();
  EXPECT_TRUE(absl::IsNotFound(missing)) << missing;
  EXPECT_THAT(missing.message(), HasSubstr("'" + no_bucket.bucket + "' does not exist"));
}

}  // namespace
}  // namespace tierflow::storage
