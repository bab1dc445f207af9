#include "common/file_watcher.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "common/strings.h"

namespace tierflow {

FileWatcher::Watch::~Watch() {
  if (watcher_ != nullptr) watcher_->Remove(id_);
}

absl::StatusOr<FileWatcher*> FileWatcher::Get() {
  // Kept for the process's life (see the header).
  static absl::StatusOr<FileWatcher*> watcher = []() -> absl::StatusOr<FileWatcher*> {
    const int fd = inotify_init1(IN_CLOEXEC);
    if (fd < 0) {
      return absl::InternalError(
          StrCat("cannot watch for files: inotify_init1: ", std::strerror(errno)));
    }
    auto* made = new FileWatcher(fd);
    std::thread([made] { made->Run(); }).detach();
    return made;
  }();
  return watcher;
}

absl::StatusOr<std::unique_ptr<FileWatcher::Watch>> FileWatcher::Add(
    const std::filesystem::path& file, std::function<void()> on_create) {
  std::lock_guard lock(mu_);
  const int wd = inotify_add_watch(inotify_, file.parent_path().c_str(), IN_CREATE | IN_MOVED_TO);
  if (wd < 0) {
    return absl::InternalError(
        StrCat("cannot watch ", file.parent_path().string(), ": ", std::strerror(errno)));
  }
  std::error_code error;
  if (std::filesystem::exists(file, error)) {
    on_create();
    if (!Watching(wd)) inotify_rm_watch(inotify_, wd);
    return std::make_unique<Watch>(nullptr, 0);
  }
  const uint64_t id = ++last_id_;
  entries_.emplace(id, Entry{wd, file.filename().string(), std::move(on_create)});
  return std::make_unique<Watch>(this, id);
}

bool FileWatcher::Watching(int wd) const {
  for (const auto& [id, entry] : entries_) {
    if (entry.wd == wd) return true;
  }
  return false;
}

void FileWatcher::Remove(uint64_t id) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  const int wd = it->second.wd;
  entries_.erase(it);
  if (!Watching(wd)) inotify_rm_watch(inotify_, wd);
}

void FileWatcher::Run() {
  alignas(inotify_event) char buffer[4096];
  for (;;) {
    const ssize_t n = read(inotify_, buffer, sizeof buffer);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return;
    }
    std::lock_guard lock(mu_);
    for (ssize_t at = 0; at < n;) {
      const auto* event = reinterpret_cast<const inotify_event*>(buffer + at);
      at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
      if (event->len == 0) continue;
      for (auto it = entries_.begin(); it != entries_.end();) {
        if (it->second.wd == event->wd && it->second.name == event->name) {
          it->second.on_create();  // under mu_: Remove waits for it
          it = entries_.erase(it);
        } else {
          ++it;
        }
      }
    }
  }
}

}  // namespace tierflow
