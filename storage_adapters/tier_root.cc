#include "storage_adapters/tier_root.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>
#include <vector>

#include "common/status.h"
#include "common/strings.h"

namespace tierflow::storage {
namespace fs = std::filesystem;
namespace {

constexpr uint64_t kStrict = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
// Removal also stays on one file system.
constexpr uint64_t kStrictOneMount = kStrict | RESOLVE_NO_XDEV;
// A tree deeper than this is not something tierflow made.
constexpr int kMaxDepth = 512;

std::string Join(const std::string& folder, const std::string& name) {
  return folder.empty() ? name : StrCat(folder, "/", name);
}

std::string TemporaryName(const std::string& name) {
  thread_local std::mt19937_64 random(std::random_device{}());
  char suffix[17];
  snprintf(suffix, sizeof suffix, "%016llx", static_cast<unsigned long long>(random()));
  return StrCat(".", name.substr(0, 200), ".tmp-", suffix);
}

// The names in the folder `dir` (an fd opened O_RDONLY | O_DIRECTORY).
absl::StatusOr<std::vector<std::string>> ListNames(int dir) {
  int copy = fcntl(dir, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return absl::InternalError(std::strerror(errno));
  lseek(copy, 0, SEEK_SET);
  DIR* stream = fdopendir(copy);
  if (stream == nullptr) {
    int error = errno;
    close(copy);
    return absl::InternalError(std::strerror(error));
  }
  std::vector<std::string> names;
  errno = 0;
  while (dirent* entry = readdir(stream)) {
    std::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  const int error = errno;
  closedir(stream);
  if (error != 0) return absl::InternalError(std::strerror(error));
  return names;
}

}  // namespace

int OpenBeneath(int dir, const std::string& path, int flags, mode_t mode, uint64_t resolve) {
  open_how how{};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.mode = (flags & (O_CREAT | O_TMPFILE)) != 0 ? mode : 0;
  how.resolve = resolve;
  const char* name = path.empty() ? "." : path.c_str();
  for (;;) {
    long fd = syscall(SYS_openat2, dir, name, &how, sizeof how);
    if (fd >= 0 || errno != EINTR) return static_cast<int>(fd);
  }
}

int OpenBeneath(int dir, const std::string& path, int flags, mode_t mode) {
  return OpenBeneath(dir, path, flags, mode, kStrict);
}

absl::StatusOr<std::shared_ptr<const TierRoot>> TierRoot::Open(const std::string& root, bool create,
                                                               mode_t mode) {
  if (root.empty()) return absl::InvalidArgumentError("a tier root must not be empty");
  if (create) {
    std::error_code error;
    const fs::path path(root);
    if (path.has_parent_path()) fs::create_directories(path.parent_path(), error);
    if (mkdir(root.c_str(), mode) != 0 && errno != EEXIST) {
      return absl::FailedPreconditionError(
          StrCat("cannot create the tier root ", root, ": ", std::strerror(errno)));
    }
  }
  Fd fd(open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) {
    return absl::FailedPreconditionError(
        StrCat("cannot open the tier root ", root, ": ", std::strerror(errno)));
  }
  struct stat info {};
  if (fstat(fd.get(), &info) != 0) {
    return absl::FailedPreconditionError(
        StrCat("cannot stat the tier root ", root, ": ", std::strerror(errno)));
  }
  std::error_code ignored;
  return std::shared_ptr<const TierRoot>(
      new TierRoot(fs::absolute(fs::path(root), ignored).lexically_normal().string(), std::move(fd),
                   info.st_dev));
}

absl::StatusOr<std::shared_ptr<const TierRoot>> TierRoot::OpenPrivate(const std::string& root) {
  if (mkdir(root.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::FailedPreconditionError(
        StrCat("cannot create the tier root ", root, ": ", std::strerror(errno)));
  }
  struct stat link {};
  if (lstat(root.c_str(), &link) != 0) {
    return absl::FailedPreconditionError(
        StrCat("cannot stat the tier root ", root, ": ", std::strerror(errno)));
  }
  char mode[8];
  snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(link.st_mode & 07777));
  const std::string found = StrCat(" (owner uid ", link.st_uid, ", mode ", mode, ")");
  const std::string fix =
      StrCat("; it must be a folder owned by uid ", geteuid(),
             " with mode 0700, since anyone may create it first: remove it, or set ",
             "TIERFLOW_RAM_ROOT or a tiers file to use another folder");
  if (S_ISLNK(link.st_mode)) {
    return absl::FailedPreconditionError(
        StrCat("refusing the tier root ", root, ": it is a symlink", found, fix));
  }
  if (!S_ISDIR(link.st_mode)) {
    return absl::FailedPreconditionError(
        StrCat("refusing the tier root ", root, ": it is not a folder", found, fix));
  }
  if (link.st_uid != geteuid()) {
    return absl::FailedPreconditionError(
        StrCat("refusing the tier root ", root, ": another user owns it", found, fix));
  }
  if ((link.st_mode & 022) != 0) {
    return absl::FailedPreconditionError(
        StrCat("refusing the tier root ", root, ": others may write in it", found, fix));
  }
  // Ours, and no one else could write in it (an older tierflow made it
  // 0755): nothing can have been planted, so it is closed to others below.
  Fd fd(open(root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  struct stat info {};
  if (fd.get() < 0 || fstat(fd.get(), &info) != 0) {
    return absl::FailedPreconditionError(
        StrCat("cannot open the tier root ", root, ": ", std::strerror(errno)));
  }
  if (info.st_ino != link.st_ino || info.st_dev != link.st_dev) {
    return absl::FailedPreconditionError(
        StrCat("refusing the tier root ", root, ": it was replaced while being checked"));
  }
  if ((info.st_mode & 077) != 0 && fchmod(fd.get(), 0700) != 0) {
    return absl::FailedPreconditionError(StrCat("cannot close the tier root ", root,
                                                " to others (chmod 700): ", std::strerror(errno)));
  }
  std::error_code ignored;
  return std::shared_ptr<const TierRoot>(
      new TierRoot(fs::absolute(fs::path(root), ignored).lexically_normal().string(), std::move(fd),
                   info.st_dev));
}

absl::Status TierRoot::Error(std::string_view what, std::string_view path, int error) const {
  std::string message = StrCat(what, " '", path, "' under the tier root ", path_, ": ");
  switch (error) {
    case ELOOP:
      return absl::FailedPreconditionError(
          StrCat(message, "it is or passes through a symlink, and tierflow never follows a ",
                 "symlink beneath a tier root"));
    case EXDEV:
      return absl::FailedPreconditionError(
          StrCat(message, "it leaves the tier root or crosses into another mount"));
    case ENOENT:
      return absl::NotFoundError(StrCat(message, std::strerror(error)));
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(StrCat(message, std::strerror(error)));
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::PermissionDeniedError(StrCat(message, std::strerror(error)));
    case ENOTDIR:
      return absl::FailedPreconditionError(StrCat(message, "a part of it is not a folder"));
    default:
      return absl::InternalError(StrCat(message, std::strerror(error)));
  }
}

absl::StatusOr<std::string> TierRoot::Relative(std::string_view path) const {
  fs::path normal = fs::path(path).lexically_normal();
  if (normal.is_absolute()) {
    normal = normal.lexically_relative(fs::path(path_));
    if (normal.empty()) {
      return absl::InvalidArgumentError(StrCat("'", path, "' is not under the tier root ", path_));
    }
  }
  std::string text = normal.string();
  while (!text.empty() && text.back() == '/') text.pop_back();
  if (text == ".") text.clear();
  if (text == ".." || text.rfind("../", 0) == 0) {
    return absl::InvalidArgumentError(StrCat("'", path, "' is not under the tier root ", path_));
  }
  return text;
}

absl::StatusOr<Fd> TierRoot::OpenFolder(std::string_view path, bool create, mode_t mode) const {
  TF_ASSIGN_OR_RETURN(std::string relative, Relative(path));
  Fd whole(OpenBeneath(fd_.get(), relative, O_PATH | O_DIRECTORY));
  if (whole.get() >= 0) return whole;
  if (errno != ENOENT || !create) return Error("cannot open the folder", relative, errno);
  // Component by component, creating what is missing.
  Fd dir(OpenBeneath(fd_.get(), "", O_PATH | O_DIRECTORY));
  if (dir.get() < 0) return Error("cannot open the folder", "", errno);
  std::string done;
  for (const fs::path& component : fs::path(relative)) {
    const std::string name = component.string();
    done = Join(done, name);
    int next = OpenBeneath(dir.get(), name, O_PATH | O_DIRECTORY);
    if (next < 0 && errno == ENOENT) {
      if (mkdirat(dir.get(), name.c_str(), mode) != 0 && errno != EEXIST) {
        return Error("cannot create the folder", done, errno);
      }
      next = OpenBeneath(dir.get(), name, O_PATH | O_DIRECTORY);
    }
    if (next < 0) return Error("cannot open the folder", done, errno);
    dir = Fd(next);
  }
  return dir;
}

absl::Status TierRoot::CreateFolders(std::string_view path, mode_t mode) const {
  return OpenFolder(path, /*create=*/true, mode).status();
}

absl::StatusOr<std::pair<Fd, std::string>> TierRoot::Parent(const std::string& relative,
                                                            bool create) const {
  if (relative.empty()) {
    return absl::InvalidArgumentError(StrCat("the tier root ", path_, " itself is not allowed"));
  }
  const fs::path path(relative);
  TF_ASSIGN_OR_RETURN(Fd dir, OpenFolder(path.parent_path().string(), create));
  return std::make_pair(std::move(dir), path.filename().string());
}

absl::StatusOr<Fd> TierRoot::OpenRead(std::string_view path) const {
  TF_ASSIGN_OR_RETURN(std::string relative, Relative(path));
  Fd fd(OpenBeneath(fd_.get(), relative, O_RDONLY));
  if (fd.get() < 0) return Error("cannot read", relative, errno);
  return fd;
}

absl::StatusOr<Fd> TierRoot::CreateFile(std::string_view path, mode_t mode) const {
  TF_ASSIGN_OR_RETURN(std::string relative, Relative(path));
  TF_ASSIGN_OR_RETURN(auto parent, Parent(relative, /*create=*/true));
  Fd fd(OpenBeneath(parent.first.get(), parent.second, O_WRONLY | O_CREAT | O_EXCL, mode));
  if (fd.get() < 0) return Error("cannot create", relative, errno);
  return fd;
}

absl::Status TierRoot::WriteFile(std::string_view path, std::string_view contents) const {
  TF_ASSIGN_OR_RETURN(std::string relative, Relative(path));
  TF_ASSIGN_OR_RETURN(auto parent, Parent(relative, /*create=*/true));
  const std::string temp = TemporaryName(parent.second);
  Fd fd(OpenBeneath(parent.first.get(), temp, O_WRONLY | O_CREAT | O_EXCL, 0644));
  if (fd.get() < 0) return Error("cannot write", relative, errno);
  while (!contents.empty()) {
    ssize_t n = write(fd.get(), contents.data(), contents.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      unlinkat(parent.first.get(), temp.c_str(), 0);
      return Error("cannot write", relative, error);
    }
    contents.remove_prefix(static_cast<size_t>(n));
  }
  if (renameat(parent.first.get(), temp.c_str(), parent.first.get(), parent.second.c_str()) != 0) {
    const int error = errno;
    unlinkat(parent.first.get(), temp.c_str(), 0);
    return Error("cannot write", relative, error);
  }
  return absl::OkStatus();
}

absl::Status TierRoot::Rename(std::string_view from, std::string_view to, unsigned flags) const {
  TF_ASSIGN_OR_RETURN(std::string source, Relative(from));
  TF_ASSIGN_OR_RETURN(std::string target, Relative(to));
  TF_ASSIGN_OR_RETURN(auto from_parent, Parent(source, /*create=*/false));
  TF_ASSIGN_OR_RETURN(auto to_parent, Parent(target, /*create=*/true));
  if (renameat2(from_parent.first.get(), from_parent.second.c_str(), to_parent.first.get(),
                to_parent.second.c_str(), flags) != 0) {
    const int error = errno;
    absl::Status status = Error(StrCat("cannot move '", source, "' to"), target, error);
    if (error == ENOENT) status = Error("cannot move", source, error);
    // The caller decides what to do with what is in the way.
    if (error == EEXIST || error == ENOTEMPTY || error == EISDIR || error == ENOTDIR) {
      return absl::AlreadyExistsError(status.message());
    }
    return status;
  }
  return absl::OkStatus();
}

absl::Status TierRoot::Link(std::string_view from, std::string_view to) const {
  TF_ASSIGN_OR_RETURN(std::string source, Relative(from));
  TF_ASSIGN_OR_RETURN(std::string target, Relative(to));
  TF_ASSIGN_OR_RETURN(auto from_parent, Parent(source, /*create=*/false));
  TF_ASSIGN_OR_RETURN(auto to_parent, Parent(target, /*create=*/true));
  // No AT_SYMLINK_FOLLOW: a symlink would be linked itself, never followed.
  if (linkat(from_parent.first.get(), from_parent.second.c_str(), to_parent.first.get(),
             to_parent.second.c_str(), 0) != 0) {
    return Error(StrCat("cannot link '", source, "' to"), target, errno);
  }
  return absl::OkStatus();
}

absl::StatusOr<struct stat> TierRoot::Stat(std::string_view path) const {
  TF_ASSIGN_OR_RETURN(std::string relative, Relative(path));
  struct stat info {};
  if (relative.empty()) {
    if (fstat(fd_.get(), &info) != 0) return Error("cannot stat", relative, errno);
    return info;
  }
  TF_ASSIGN_OR_RETURN(auto parent, Parent(relative, /*create=*/false));
  if (fstatat(parent.first.get(), parent.second.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) {
    return Error("cannot stat", relative, errno);
  }
  return info;
}

absl::Status TierRoot::Remove(std::string_view path) const {
  TF_ASSIGN_OR_RETURN(std::string relative, Relative(path));
  absl::StatusOr<std::pair<Fd, std::string>> parent = Parent(relative, /*create=*/false);
  if (absl::IsNotFound(parent.status())) return absl::OkStatus();
  TF_RETURN_IF_ERROR(parent.status());
  const int dir = parent->first.get();
  const char* name = parent->second.c_str();
  if (unlinkat(dir, name, 0) == 0 || errno == ENOENT) return absl::OkStatus();
  if (errno == EISDIR && (unlinkat(dir, name, AT_REMOVEDIR) == 0 || errno == ENOENT)) {
    return absl::OkStatus();
  }
  return Error("cannot remove", relative, errno);
}

absl::Status TierRoot::RemoveTree(std::string_view path) const {
  TF_ASSIGN_OR_RETURN(std::string relative, Relative(path));
  absl::StatusOr<std::pair<Fd, std::string>> parent = Parent(relative, /*create=*/false);
  if (absl::IsNotFound(parent.status())) return absl::OkStatus();
  TF_RETURN_IF_ERROR(parent.status());
  return RemoveAt(parent->first.get(), parent->second, relative, 0);
}

absl::Status TierRoot::RemoveWithUnfinishedWrites(std::string_view path) const {
  TF_RETURN_IF_ERROR(RemoveTree(path));
  TF_ASSIGN_OR_RETURN(std::string relative, Relative(path));
  absl::StatusOr<std::pair<Fd, std::string>> parent = Parent(relative, /*create=*/false);
  if (absl::IsNotFound(parent.status())) return absl::OkStatus();
  TF_RETURN_IF_ERROR(parent.status());
  const std::string prefix = StrCat(".", parent->second.substr(0, 200), kTempMarker);
  Fd readable(OpenBeneath(parent->first.get(), ".", O_RDONLY | O_DIRECTORY));
  if (readable.get() < 0) return Error("cannot list the folder of", relative, errno);
  absl::StatusOr<std::vector<std::string>> names = ListNames(readable.get());
  if (!names.ok()) return Error("cannot list the folder of", relative, EIO);
  const std::string folder = fs::path(relative).parent_path().string();
  for (const std::string& name : *names) {
    if (name.rfind(prefix, 0) != 0) continue;
    TF_RETURN_IF_ERROR(RemoveAt(parent->first.get(), name, Join(folder, name), 0));
  }
  return absl::OkStatus();
}

// `name` in the folder `parent` (whose path is the parent of `shown`).
absl::Status TierRoot::RemoveAt(int parent, const std::string& name, const std::string& shown,
                                int depth) const {
  if (depth > kMaxDepth) return Error("cannot remove", shown, ELOOP);
  struct stat folder {};
  if (fstat(parent, &folder) != 0) return Error("cannot remove", shown, errno);
  // Each pass sees what is there now: something swapped in meanwhile (a
  // symlink for a folder) is seen for what it is on the next pass.
  for (int pass = 0; pass < 16; ++pass) {
    struct stat info {};
    if (fstatat(parent, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) return absl::OkStatus();
      return Error("cannot remove", shown, errno);
    }
    if (!S_ISDIR(info.st_mode)) {
      // A file or a symlink: the entry goes; a symlink's target is untouched.
      if (unlinkat(parent, name.c_str(), 0) == 0 || errno == ENOENT) return absl::OkStatus();
      if (errno == EISDIR) continue;  // became a folder meanwhile
      return Error("cannot remove", shown, errno);
    }
    if (info.st_dev != folder.st_dev) {
      return absl::FailedPreconditionError(
          StrCat("cannot remove '", shown, "' under the tier root ", path_,
                 ": it is another mount, and tierflow never removes across mounts"));
    }
    Fd dir(OpenBeneath(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, kStrictOneMount));
    if (dir.get() < 0) {
      if (errno == ENOENT) return absl::OkStatus();
      if (errno == ELOOP || errno == ENOTDIR) continue;  // swapped: look again
      if (errno == EXDEV) {
        return absl::FailedPreconditionError(
            StrCat("cannot remove '", shown, "' under the tier root ", path_,
                   ": it is another mount, and tierflow never removes across mounts"));
      }
      return Error("cannot remove", shown, errno);
    }
    absl::StatusOr<std::vector<std::string>> names = ListNames(dir.get());
    if (!names.ok()) return Error("cannot list", shown, EIO);
    for (const std::string& child : *names) {
      TF_RETURN_IF_ERROR(RemoveAt(dir.get(), child, Join(shown, child), depth + 1));
    }
    if (unlinkat(parent, name.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT) {
      return absl::OkStatus();
    }
    // Something came in meanwhile, or the folder was swapped: again.
    if (errno == ENOTEMPTY || errno == EEXIST || errno == ENOTDIR) continue;
    return Error("cannot remove", shown, errno);
  }
  return absl::AbortedError(StrCat("cannot remove '", shown, "' under the tier root ", path_,
                                   ": it kept changing while it was being removed"));
}

absl::Status TierRoot::Sync(std::string_view path) const {
  TF_ASSIGN_OR_RETURN(std::string relative, Relative(path));
  Fd fd(OpenBeneath(fd_.get(), relative, O_RDONLY));
  if (fd.get() < 0) return Error("cannot sync", relative, errno);
  if (fsync(fd.get()) != 0) return Error("cannot sync", relative, errno);
  return absl::OkStatus();
}

absl::Status TierRoot::SyncTree(std::string_view path) const {
  TF_ASSIGN_OR_RETURN(std::string relative, Relative(path));
  if (relative.empty()) return SyncAt(fd_.get(), ".", relative);
  TF_ASSIGN_OR_RETURN(auto parent, Parent(relative, /*create=*/false));
  return SyncAt(parent.first.get(), parent.second, relative);
}

absl::Status TierRoot::SyncAt(int parent, const std::string& name, const std::string& shown) const {
  struct stat info {};
  if (fstatat(parent, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) {
    return Error("cannot sync", shown, errno);
  }
  if (S_ISLNK(info.st_mode)) return absl::OkStatus();  // its folder holds it
  if (!S_ISDIR(info.st_mode) && !S_ISREG(info.st_mode)) return absl::OkStatus();
  const bool folder = S_ISDIR(info.st_mode);
  Fd fd(OpenBeneath(parent, name, O_RDONLY | O_NOFOLLOW | (folder ? O_DIRECTORY : 0), 0,
                    kStrictOneMount));
  if (fd.get() < 0) return Error("cannot sync", shown, errno);
  if (folder) {
    absl::StatusOr<std::vector<std::string>> names = ListNames(fd.get());
    if (!names.ok()) return Error("cannot list", shown, EIO);
    for (const std::string& child : *names) {
      TF_RETURN_IF_ERROR(SyncAt(fd.get(), child, Join(shown, child)));
    }
  }
  if (fsync(fd.get()) != 0) return Error("cannot sync", shown, errno);
  return absl::OkStatus();
}

}  // namespace tierflow::storage
