#include "common/file_watcher.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "common/status.h"
#include "common/strings.h"

namespace tierflow {
namespace {

constexpr uint32_t kFolderEvents = IN_CREATE | IN_MOVED_TO;
constexpr uint32_t kFileEvents = IN_MODIFY | IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF;

}  // namespace

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
  TF_ASSIGN_OR_RETURN(const int wd, WatchFolder(file));
  std::error_code error;
  if (std::filesystem::exists(file, error)) {
    on_create();
    Unwatch(wd);
    return std::make_unique<Watch>(nullptr, 0);
  }
  const uint64_t id = ++last_id_;
  entries_.emplace(id, Entry{.wd = wd, .file = file, .on_create = std::move(on_create)});
  return std::make_unique<Watch>(this, id);
}

absl::StatusOr<std::unique_ptr<FileWatcher::Watch>> FileWatcher::Follow(
    const std::filesystem::path& file, std::function<void(Change)> on_change) {
  std::lock_guard lock(mu_);
  TF_ASSIGN_OR_RETURN(const int wd, WatchFolder(file));
  // Not there yet: watched once it appears (Deliver).
  const int file_wd = WatchPath(file, kFileEvents);
  if (file_wd < 0 && errno != ENOENT) {
    const int failure = errno;
    Unwatch(wd);
    return absl::InternalError(
        StrCat("cannot watch ", file.string(), ": ", std::strerror(failure)));
  }
  const uint64_t id = ++last_id_;
  entries_.emplace(
      id, Entry{.wd = wd, .file = file, .on_change = std::move(on_change), .file_wd = file_wd});
  return std::make_unique<Watch>(this, id);
}

absl::StatusOr<int> FileWatcher::WatchFolder(const std::filesystem::path& file) {
  const std::filesystem::path folder = file.has_parent_path() ? file.parent_path() : ".";
  const int wd = WatchPath(folder, kFolderEvents);
  if (wd < 0) {
    return absl::InternalError(
        StrCat("cannot watch ", folder.string(), ": ", std::strerror(errno)));
  }
  return wd;
}

// IN_MASK_ADD: a folder or file two entries watch keeps the events of both;
// Deliver tells each entry only its own.
int FileWatcher::WatchPath(const std::filesystem::path& path, uint32_t mask) {
  return inotify_add_watch(inotify_, path.c_str(), mask | IN_MASK_ADD);
}

bool FileWatcher::Watching(int wd) const {
  for (const auto& [id, entry] : entries_) {
    if (entry.wd == wd || entry.file_wd == wd) return true;
  }
  return false;
}

void FileWatcher::Unwatch(int wd) {
  if (wd >= 0 && !Watching(wd)) inotify_rm_watch(inotify_, wd);
}

void FileWatcher::Remove(uint64_t id) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  const Entry entry = std::move(it->second);
  entries_.erase(it);
  Unwatch(entry.wd);
  Unwatch(entry.file_wd);
}

void FileWatcher::Deliver(int wd, uint32_t mask, std::string_view name) {
  if ((mask & IN_IGNORED) != 0) {  // the kernel dropped the watch (its file is gone)
    for (auto& [id, entry] : entries_) {
      if (entry.wd == wd) entry.wd = -1;
      if (entry.file_wd == wd) entry.file_wd = -1;
    }
    return;
  }
  const bool appeared = (mask & kFolderEvents) != 0 && !name.empty();
  for (auto it = entries_.begin(); it != entries_.end();) {
    Entry& entry = it->second;
    // Callbacks run under mu_: Remove waits for them.
    if (entry.on_create) {
      if (appeared && entry.wd == wd && entry.file.filename().native() == name) {
        entry.on_create();
        it = entries_.erase(it);
        continue;
      }
    } else if (appeared && entry.wd == wd) {
      if (entry.file.filename().native() == name) {
        // Watched before it is reported: a reader that reads now misses no write.
        const int old = entry.file_wd;
        entry.file_wd = WatchPath(entry.file, kFileEvents);
        if (old != entry.file_wd) Unwatch(old);
      }
      entry.on_change(Change::kAppeared);
    } else if (entry.file_wd == wd && (mask & kFileEvents) != 0) {
      if ((mask & (IN_DELETE_SELF | IN_MOVE_SELF)) != 0) {
        entry.file_wd = -1;
        Unwatch(wd);
        entry.on_change(Change::kGone);
      } else {
        entry.on_change((mask & IN_CLOSE_WRITE) != 0 ? Change::kClosed : Change::kWritten);
      }
    }
    ++it;
  }
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
      Deliver(event->wd, event->mask, event->len == 0 ? std::string_view() : event->name);
    }
  }
}

}  // namespace tierflow
