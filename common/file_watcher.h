// FileWatcher: "call me when this file appears" (Add), and "tell me as this
// file grows" (Follow). One inotify instance and one thread serve the whole
// process and are never closed: closing an inotify instance waits for an
// RCU grace period (10-20 ms), which every short-lived user (a run, a
// `tierflow logs -f`) would pay on its way out, and a user has only 128
// instances. Nothing polls.
//
// Thread-safety: Get, Add and Follow may be called from any thread.
// Callbacks run on the watcher's thread (or, for Add of a file that already
// exists, on the caller's thread inside Add) and must return quickly; a
// callback never runs after its Watch is destroyed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace tierflow {

class FileWatcher {
 public:
  // Unregisters when destroyed; the callback is not running then and will
  // not run again.
  class Watch {
   public:
    Watch(FileWatcher* watcher, uint64_t id) : watcher_(watcher), id_(id) {}
    ~Watch();
    Watch(const Watch&) = delete;
    Watch& operator=(const Watch&) = delete;

   private:
    FileWatcher* watcher_;  // null: nothing to unregister
    uint64_t id_;
  };

  // What Follow reports.
  enum class Change {
    kWritten,   // the file was written to
    kClosed,    // a writer of the file closed it
    kGone,      // the file was deleted or moved away
    kAppeared,  // a file (this one, or another) was created in or moved into its folder
  };

  // The process's watcher, made on first use; an error (no inotify) is
  // returned to every caller.
  static absl::StatusOr<FileWatcher*> Get();

  // Calls `on_create` once `file` exists: at once (before returning) if it
  // already does, else when it is created in or moved into its folder,
  // which must exist. Internal error, naming the folder, when it cannot be
  // watched.
  absl::StatusOr<std::unique_ptr<Watch>> Add(const std::filesystem::path& file,
                                             std::function<void()> on_create);

  // Calls `on_change` for each change to `file` and each file appearing in
  // its folder, until the Watch is destroyed. `file` need not exist yet: it
  // is watched from when it appears (kAppeared comes after that, so a reader
  // that reads on kAppeared misses no write). Changes before Follow returns
  // are not reported: read the file after it returns. The kernel may merge
  // writes in a row into one kWritten. The folder must exist; Internal
  // error, naming what cannot be watched, otherwise.
  absl::StatusOr<std::unique_ptr<Watch>> Follow(const std::filesystem::path& file,
                                                std::function<void(Change)> on_change);

 private:
  // Add's (on_create set) or Follow's (on_change set).
  struct Entry {
    int wd;  // the folder's watch; -1 once the folder is gone
    std::filesystem::path file;
    std::function<void()> on_create = nullptr;
    std::function<void(Change)> on_change = nullptr;
    int file_wd = -1;  // Follow's watch of the file itself; -1 while it is not there
  };

  explicit FileWatcher(int inotify) : inotify_(inotify) {}
  absl::StatusOr<int> WatchFolder(const std::filesystem::path& file);  // mu_ held
  int WatchPath(const std::filesystem::path& path, uint32_t mask);     // mu_ held
  bool Watching(int wd) const;                                         // mu_ held
  void Unwatch(int wd);                                                // mu_ held
  void Deliver(int wd, uint32_t mask, std::string_view name);          // mu_ held
  void Remove(uint64_t id);
  void Run();

  const int inotify_;
  std::mutex mu_;
  uint64_t last_id_ = 0;               // guarded by mu_
  std::map<uint64_t, Entry> entries_;  // guarded by mu_
};

}  // namespace tierflow
