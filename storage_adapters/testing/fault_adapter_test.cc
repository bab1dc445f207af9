// The fault wrapper injects what it is told, where it is told, and nothing
// else (with no faults it passes the conformance suite:
// posix_conformance_test.cc).
#include "storage_adapters/testing/fault_adapter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "storage_adapters/posix.h"

namespace tierflow::storage::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class FaultAdapterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "tierflow-faults.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    auto posix = MakePosixAdapter({"bulk", (dir_ / "root").string()});
    ASSERT_TRUE(posix.ok()) << posix.status();
    adapter_ = WrapWithFaults(std::move(*posix), "bulk", faults_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  absl::Status Put(std::string_view key, std::string_view data) {
    auto writer = adapter_->OpenWrite(key);
    if (!writer.ok()) return writer.status();
    if (absl::Status status = (*writer)->Write(data); !status.ok()) return status;
    return (*writer)->Commit();
  }

  fs::path dir_;
  std::shared_ptr<FaultInjector> faults_ = std::make_shared<FaultInjector>();
  std::unique_ptr<Adapter> adapter_;
};

TEST_F(FaultAdapterTest, AnErrorHitsOnlyItsCallsAndKeysAndNamesTierAndKey) {
  ASSERT_TRUE(Put("runs/a", "bytes").ok());
  Fault full;
  full.ops = kWriteOps;
  full.key_prefix = "runs/";
  full.code = absl::StatusCode::kResourceExhausted;
  faults_->Add(full);
  const absl::Status refused = Put("runs/b", "bytes");
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.message(), HasSubstr("tier bulk: cannot write 'runs/b': the tier is full"));
  EXPECT_THAT(refused.message(), HasSubstr("injected"));
  EXPECT_TRUE(Put("other/b", "bytes").ok()) << "another prefix";
  EXPECT_TRUE(adapter_->Stat("runs/a").ok()) << "another call";
  EXPECT_EQ(faults_->injected(), 1);
  faults_->Clear();
  EXPECT_TRUE(Put("runs/b", "bytes").ok());
}

TEST_F(FaultAdapterTest, SkipAndTimesCountTheMatchingCalls) {
  ASSERT_TRUE(Put("k", "bytes").ok());
  Fault flaky;
  flaky.ops = kStat;
  flaky.skip = 1;
  flaky.times = 2;
  faults_->Add(flaky);
  EXPECT_TRUE(adapter_->Stat("k").ok());
  EXPECT_EQ(adapter_->Stat("k").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(adapter_->Stat("k").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(adapter_->Stat("k").ok());
  EXPECT_EQ(faults_->injected(), 2);
}

TEST_F(FaultAdapterTest, AWriteFailsOnceTheWriterWouldPassItsBytes) {
  Fault filling;
  filling.ops = kWrite;
  filling.code = absl::StatusCode::kResourceExhausted;
  filling.after_bytes = 10;
  faults_->Add(filling);
  auto writer = adapter_->OpenWrite("k");
  ASSERT_TRUE(writer.ok()) << writer.status();
  EXPECT_TRUE((*writer)->Write("123456").ok());
  EXPECT_TRUE((*writer)->Write("7890").ok());
  EXPECT_EQ((*writer)->Write("x").code(), absl::StatusCode::kResourceExhausted);
  writer->reset();
  EXPECT_EQ(adapter_->Stat("k").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(FaultAdapterTest, AReadFailsOnceTheReaderHasDeliveredItsBytes) {
  ASSERT_TRUE(Put("k", "0123456789abcdef").ok());
  Fault dropped;
  dropped.ops = kRead;
  dropped.code = absl::StatusCode::kDataLoss;
  dropped.after_bytes = 8;
  faults_->Add(dropped);
  auto reader = adapter_->OpenRead("k");
  ASSERT_TRUE(reader.ok()) << reader.status();
  char buffer[8];
  EXPECT_EQ((*reader)->Read(buffer).value_or(0), 8u);
  EXPECT_EQ((*reader)->Read(buffer).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(FaultAdapterTest, ShortReadsReturnAtMostTheLimit) {
  ASSERT_TRUE(Put("k", "0123456789").ok());
  faults_->SetShortReads(3);
  auto reader = adapter_->OpenRead("k");
  ASSERT_TRUE(reader.ok()) << reader.status();
  char buffer[100];
  std::string got;
  for (;;) {
    absl::StatusOr<size_t> n = (*reader)->Read(buffer);
    ASSERT_TRUE(n.ok()) << n.status();
    EXPECT_LE(*n, 3u);
    if (*n == 0) break;
    got.append(buffer, *n);
  }
  EXPECT_EQ(got, "0123456789");
}

TEST_F(FaultAdapterTest, ASlowCallWaitsAndThenSucceeds) {
  ASSERT_TRUE(Put("k", "bytes").ok());
  Fault slow;
  slow.ops = kStat;
  slow.code = absl::StatusCode::kOk;
  slow.delay = std::chrono::milliseconds(100);
  faults_->Add(slow);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(adapter_->Stat("k").ok());
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(100));
  EXPECT_EQ(faults_->injected(), 0);
}

TEST_F(FaultAdapterTest, ItIsNoPosixAdapterButItsRootIsThePosixTiers) {
  EXPECT_EQ(adapter_->kind(), "fault");
  ASSERT_NE(PosixTierRoot(*adapter_), nullptr);
  EXPECT_EQ(PosixTierRoot(*adapter_), PosixTierRoot(*adapter_->wrapped()));
}

}  // namespace
}  // namespace tierflow::storage::testing
