#include "common/file_watcher.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

namespace tierflow {
namespace {

namespace fs = std::filesystem;

class FileWatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "file_watcher_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

// Counts calls and lets the test wait for one, failing when none comes.
struct Calls {
  std::mutex mu;
  std::condition_variable cv;
  int count = 0;
  void Add() {
    std::lock_guard lock(mu);
    ++count;
    cv.notify_all();
  }
  bool WaitFor(int n) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(10), [&] { return count >= n; });
  }
  int Count() {
    std::lock_guard lock(mu);
    return count;
  }
};

TEST_F(FileWatcherTest, CallsAtOnceWhenTheFileExists) {
  std::ofstream(dir_ / "here").put('x');
  auto watcher = FileWatcher::Get();
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  Calls calls;
  auto watch = (*watcher)->Add(dir_ / "here", [&] { calls.Add(); });
  ASSERT_TRUE(watch.ok()) << watch.status();
  EXPECT_EQ(calls.Count(), 1);  // before Add returned
}

TEST_F(FileWatcherTest, CallsOnceWhenTheFileIsCreated) {
  auto watcher = FileWatcher::Get();
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  Calls calls;
  auto watch = (*watcher)->Add(dir_ / "later", [&] { calls.Add(); });
  ASSERT_TRUE(watch.ok()) << watch.status();
  std::ofstream(dir_ / "other").put('x');  // another name: no call
  std::ofstream(dir_ / "later").put('x');
  ASSERT_TRUE(calls.WaitFor(1)) << "no call after the file was created";
  fs::remove(dir_ / "later");
  std::ofstream(dir_ / "later").put('x');  // once only
  std::ofstream(dir_ / "flush").put('x');
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(calls.Count(), 1);
}

TEST_F(FileWatcherTest, CallsWhenTheFileIsMovedIntoPlace) {
  auto watcher = FileWatcher::Get();
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  Calls calls;
  auto watch = (*watcher)->Add(dir_ / "renamed", [&] { calls.Add(); });
  ASSERT_TRUE(watch.ok()) << watch.status();
  std::ofstream(dir_ / "temp").put('x');
  fs::rename(dir_ / "temp", dir_ / "renamed");
  EXPECT_TRUE(calls.WaitFor(1)) << "no call after the file was renamed into place";
}

TEST_F(FileWatcherTest, NeverCallsOnceTheWatchIsGone) {
  auto watcher = FileWatcher::Get();
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  Calls gone;
  Calls kept;
  {
    auto watch = (*watcher)->Add(dir_ / "f", [&] { gone.Add(); });
    ASSERT_TRUE(watch.ok()) << watch.status();
  }
  // A second watch on the same folder proves the event was delivered.
  auto other = (*watcher)->Add(dir_ / "f", [&] { kept.Add(); });
  ASSERT_TRUE(other.ok()) << other.status();
  std::ofstream(dir_ / "f").put('x');
  ASSERT_TRUE(kept.WaitFor(1)) << "the remaining watch was not called";
  EXPECT_EQ(gone.Count(), 0);
}

TEST_F(FileWatcherTest, AFolderThatDoesNotExistIsAnError) {
  auto watcher = FileWatcher::Get();
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  auto watch = (*watcher)->Add(dir_ / "missing" / "f", [] {});
  ASSERT_FALSE(watch.ok());
  EXPECT_EQ(watch.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(watch.status().message().find((dir_ / "missing").string()), std::string::npos)
      << watch.status();
}

}  // namespace
}  // namespace tierflow
