#include "common/file_watcher.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

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

using Change = FileWatcher::Change;

// Records what Follow reports and lets the test wait for a change, failing
// when none comes.
struct Changes {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Change> seen;
  std::function<void(Change)> Recorder() {
    return [this](Change change) {
      std::lock_guard lock(mu);
      seen.push_back(change);
      cv.notify_all();
    };
  }
  bool WaitFor(Change change) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(10), [&] { return CountLocked(change) > 0; });
  }
  int Count(Change change) {
    std::lock_guard lock(mu);
    return CountLocked(change);
  }
  size_t Size() {
    std::lock_guard lock(mu);
    return seen.size();
  }
  void Clear() {
    std::lock_guard lock(mu);
    seen.clear();
  }

 private:
  int CountLocked(Change change) const {
    return static_cast<int>(std::count(seen.begin(), seen.end(), change));
  }
};

TEST_F(FileWatcherTest, FollowReportsWritesAndTheWriterClosing) {
  std::ofstream(dir_ / "log").close();
  auto watcher = FileWatcher::Get();
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  Changes changes;
  auto watch = (*watcher)->Follow(dir_ / "log", changes.Recorder());
  ASSERT_TRUE(watch.ok()) << watch.status();
  std::ofstream out(dir_ / "log", std::ios::app);
  out << "line\n" << std::flush;
  ASSERT_TRUE(changes.WaitFor(Change::kWritten)) << "no report of the write";
  EXPECT_EQ(changes.Count(Change::kClosed), 0);
  out.close();
  EXPECT_TRUE(changes.WaitFor(Change::kClosed)) << "no report of the writer closing the file";
}

TEST_F(FileWatcherTest, FollowWatchesAFileFromWhenItAppears) {
  auto watcher = FileWatcher::Get();
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  Changes changes;
  auto watch = (*watcher)->Follow(dir_ / "log", changes.Recorder());
  ASSERT_TRUE(watch.ok()) << watch.status();
  std::ofstream out(dir_ / "log");
  ASSERT_TRUE(changes.WaitFor(Change::kAppeared)) << "no report of the file appearing";
  changes.Clear();
  out << "line\n" << std::flush;
  EXPECT_TRUE(changes.WaitFor(Change::kWritten)) << "a write after it appeared was not reported";
}

TEST_F(FileWatcherTest, FollowReportsOtherFilesAppearingButNotTheirWrites) {
  std::ofstream(dir_ / "log").close();
  auto watcher = FileWatcher::Get();
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  Changes changes;
  auto watch = (*watcher)->Follow(dir_ / "log", changes.Recorder());
  ASSERT_TRUE(watch.ok()) << watch.status();
  Calls created;  // an Add on the same folder is served too
  auto add = (*watcher)->Add(dir_ / "next", [&] { created.Add(); });
  ASSERT_TRUE(add.ok()) << add.status();
  std::ofstream(dir_ / "next") << "not followed\n";
  ASSERT_TRUE(changes.WaitFor(Change::kAppeared)) << "no report of another file appearing";
  ASSERT_TRUE(created.WaitFor(1)) << "the Add on the same folder was not called";
  std::ofstream(dir_ / "log", std::ios::app) << "followed\n";
  ASSERT_TRUE(changes.WaitFor(Change::kClosed));
  EXPECT_EQ(changes.Count(Change::kWritten), 1);
  EXPECT_EQ(changes.Count(Change::kClosed), 1);
}

TEST_F(FileWatcherTest, FollowReportsTheFileGoing) {
  std::ofstream(dir_ / "deleted").close();
  std::ofstream(dir_ / "moved").close();
  auto watcher = FileWatcher::Get();
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  Changes deleted;
  Changes moved;
  auto watch_deleted = (*watcher)->Follow(dir_ / "deleted", deleted.Recorder());
  ASSERT_TRUE(watch_deleted.ok()) << watch_deleted.status();
  auto watch_moved = (*watcher)->Follow(dir_ / "moved", moved.Recorder());
  ASSERT_TRUE(watch_moved.ok()) << watch_moved.status();
  fs::remove(dir_ / "deleted");
  fs::rename(dir_ / "moved", dir_ / "elsewhere");
  EXPECT_TRUE(deleted.WaitFor(Change::kGone)) << "no report of the file being deleted";
  EXPECT_TRUE(moved.WaitFor(Change::kGone)) << "no report of the file being moved away";
}

TEST_F(FileWatcherTest, FollowNeverReportsOnceItsWatchIsGone) {
  std::ofstream(dir_ / "log").close();
  auto watcher = FileWatcher::Get();
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  Changes gone;
  Changes kept;
  auto watch = (*watcher)->Follow(dir_ / "log", gone.Recorder());
  ASSERT_TRUE(watch.ok()) << watch.status();
  auto other = (*watcher)->Follow(dir_ / "log", kept.Recorder());
  ASSERT_TRUE(other.ok()) << other.status();
  watch->reset();
  // The file's watch is shared: the remaining follower still hears of it.
  std::ofstream(dir_ / "log", std::ios::app) << "line\n";
  ASSERT_TRUE(kept.WaitFor(Change::kClosed)) << "the remaining follower was not told";
  EXPECT_EQ(gone.Size(), 0u);
}

TEST_F(FileWatcherTest, FollowInAFolderThatDoesNotExistIsAnError) {
  auto watcher = FileWatcher::Get();
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  Changes changes;
  auto watch = (*watcher)->Follow(dir_ / "missing" / "log", changes.Recorder());
  ASSERT_FALSE(watch.ok());
  EXPECT_EQ(watch.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(watch.status().message().find((dir_ / "missing").string()), std::string::npos)
      << watch.status();
}

}  // namespace
}  // namespace tierflow
