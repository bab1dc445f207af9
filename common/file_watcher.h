// FileWatcher: "call me when this file appears". One inotify instance and
// one thread serve the whole process and are never closed: closing an
// inotify instance waits for an RCU grace period (10-20 ms), which every
// short-lived user (a run) would pay on its way out. Nothing polls.
//
// Thread-safety: Get and Add may be called from any thread. Callbacks run
// on the watcher's thread (or, for a file that already exists, on the
// caller's thread inside Add) and must return quickly; a callback never
// runs after its Watch is destroyed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

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

  // The process's watcher, made on first use; an error (no inotify) is
  // returned to every caller.
  static absl::StatusOr<FileWatcher*> Get();

  // Calls `on_create` once `file` exists: at once (before returning) if it
  // already does, else when it is created in or moved into its folder,
  // which must exist. Internal error, naming the folder, when it cannot be
  // watched.
  absl::StatusOr<std::unique_ptr<Watch>> Add(const std::filesystem::path& file,
                                             std::function<void()> on_create);

 private:
  struct Entry {
    int wd;
    std::string name;
    std::function<void()> on_create;
  };

  explicit FileWatcher(int inotify) : inotify_(inotify) {}
  bool Watching(int wd) const;  // mu_ held
  void Remove(uint64_t id);
  void Run();

  const int inotify_;
  std::mutex mu_;
  uint64_t last_id_ = 0;               // guarded by mu_
  std::map<uint64_t, Entry> entries_;  // guarded by mu_
};

}  // namespace tierflow
