#include "storage_adapters/local_artifact.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <system_error>
#include <vector>

#include "common/status.h"
#include "common/strings.h"
#include "storage_adapters/content_hash.h"
#include "storage_adapters/fd.h"

namespace tierflow::storage {
namespace fs = std::filesystem;
namespace {

constexpr size_t kBlockBytes = 1 << 20;

absl::Status ErrnoError(std::string_view what, const std::string& path, int error) {
  std::string message = StrCat(what, " ", path, ": ", std::strerror(error));
  switch (error) {
    case ENOENT:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::Status FsError(std::string_view what, const std::string& path, const std::error_code& error) {
  return ErrnoError(what, path, error.value());
}

absl::StatusOr<std::string> HashFile(const std::string& path, uint64_t* bytes) {
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoError("cannot open", path, errno);
  posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  ContentHasher hasher;
  std::unique_ptr<char[]> buffer(new char[kBlockBytes]);
  for (;;) {
    ssize_t n = read(fd.get(), buffer.get(), kBlockBytes);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("cannot read", path, errno);
    }
    if (n == 0) break;
    *bytes += static_cast<uint64_t>(n);
    hasher.Update(std::string_view(buffer.get(), static_cast<size_t>(n)));
  }
  return hasher.Finish();
}

// A sibling name for building `name` before publishing it.
std::string TemporaryName(const std::string& name) {
  thread_local std::mt19937_64 random(std::random_device{}());
  char suffix[17];
  snprintf(suffix, sizeof suffix, "%016llx", static_cast<unsigned long long>(random()));
  return StrCat(".", name, ".tmp-", suffix);
}

absl::Status SymlinkError(const std::string& path) {
  return absl::FailedPreconditionError(
      StrCat(path, " is a symlink: artifacts cannot hold symlinks (an object store cannot keep ",
             "them, so copies would differ from what was hashed); copy the file or folder it ",
             "points to instead"));
}

// The file `source` copied to the new file `name` in the folder `dir`.
absl::Status CopyFileContents(const std::string& source, int dir, const std::string& name,
                              const std::string& shown) {
  int in = open(source.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (in < 0) return ErrnoError("cannot open", source, errno);
  struct stat info;
  fstat(in, &info);
  int out = OpenBeneath(dir, name, O_WRONLY | O_CREAT | O_EXCL, info.st_mode & 07777);
  if (out < 0) {
    int error = errno;
    close(in);
    return ErrnoError("cannot create", shown, error);
  }
  absl::Status status;
  for (;;) {
    ssize_t n = copy_file_range(in, nullptr, out, nullptr, kBlockBytes * 16, 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      status = ErrnoError("cannot copy to", shown, errno);
      break;
    }
  }
  close(in);
  if (close(out) != 0 && status.ok()) status = ErrnoError("cannot write", shown, errno);
  return status;
}

absl::Status LinkOrCopyFile(const std::string& source, int dir, const std::string& name,
                            const std::string& shown) {
  if (linkat(AT_FDCWD, source.c_str(), dir, name.c_str(), 0) == 0) return absl::OkStatus();
  if (errno != EXDEV && errno != EPERM && errno != EMLINK) {
    return ErrnoError("cannot link to", shown, errno);
  }
  return CopyFileContents(source, dir, name, shown);
}

// `source` (file or tree, read by path) rebuilt as `name` in the folder
// `dir` of a tier root: every folder and file made through descriptors.
absl::Status LinkTree(const std::string& source, int dir, const std::string& name,
                      const std::string& shown) {
  std::error_code error;
  fs::file_status status = fs::symlink_status(source, error);
  if (error) return FsError("cannot read", source, error);
  if (fs::is_symlink(status)) return SymlinkError(source);
  if (!fs::is_directory(status)) return LinkOrCopyFile(source, dir, name, shown);
  if (mkdirat(dir, name.c_str(), 0755) != 0) return ErrnoError("cannot create", shown, errno);
  Fd folder(OpenBeneath(dir, name, O_PATH | O_DIRECTORY));
  if (folder.get() < 0) return ErrnoError("cannot open", shown, errno);
  for (const fs::directory_entry& entry : fs::directory_iterator(source, error)) {
    const std::string child = entry.path().filename().string();
    TF_RETURN_IF_ERROR(
        LinkTree(entry.path().string(), folder.get(), child, StrCat(shown, "/", child)));
  }
  return error ? FsError("cannot list", source, error) : absl::OkStatus();
}

}  // namespace

std::string HashBytes(std::string_view bytes) {
  ContentHasher hasher;
  hasher.Update(bytes);
  return hasher.Finish();
}

absl::StatusOr<ContentDigest> HashArtifact(const std::string& path) {
  std::error_code error;
  fs::file_status status = fs::symlink_status(path, error);
  if (error || !fs::exists(status)) {
    return ErrnoError("no artifact at", path, error ? error.value() : ENOENT);
  }
  if (fs::is_symlink(status)) return SymlinkError(path);
  ContentDigest digest;
  if (!fs::is_directory(status)) {
    TF_ASSIGN_OR_RETURN(digest.hash, HashFile(path, &digest.bytes));
    digest.files = 1;
    return digest;
  }
  // A tree: sorted relative paths, so the listing order of the file system
  // does not matter.
  std::vector<fs::path> entries;
  fs::recursive_directory_iterator it(path, error), end;
  for (; !error && it != end; it.increment(error)) entries.push_back(it->path());
  if (error) return FsError("cannot list", path, error);
  std::sort(entries.begin(), entries.end());
  TreeHasher tree;
  for (const fs::path& entry : entries) {
    fs::file_status entry_status = fs::symlink_status(entry, error);
    if (error) return FsError("cannot stat", entry.string(), error);
    const std::string relative = entry.lexically_relative(path).string();
    if (fs::is_symlink(entry_status)) {
      return SymlinkError(entry.string());
    } else if (fs::is_directory(entry_status)) {
      tree.AddFolder(relative);
    } else {
      TF_ASSIGN_OR_RETURN(const std::string hash, HashFile(entry.string(), &digest.bytes));
      tree.AddFile(relative, hash);
      ++digest.files;
    }
  }
  digest.hash = tree.Finish();
  return digest;
}

absl::Status PublishArtifact(const TierRoot& root, const std::string& staging,
                             const std::string& final_path, bool durable) {
  TF_ASSIGN_OR_RETURN(const std::string from, root.Relative(staging));
  TF_ASSIGN_OR_RETURN(const std::string to, root.Relative(final_path));
  const std::string folder = fs::path(to).parent_path().string();
  TF_RETURN_IF_ERROR(root.CreateFolders(folder));
  if (durable) TF_RETURN_IF_ERROR(root.SyncTree(from));
  auto synced = [&]() -> absl::Status { return durable ? root.Sync(folder) : absl::OkStatus(); };
  absl::Status moved = root.Rename(from, to);
  if (moved.ok()) return synced();
  if (!absl::IsAlreadyExists(moved)) return moved;
  // Something is in the way: a leftover of an attempt whose success was
  // never committed. Move it aside first so the swap stays one rename.
  const std::string aside =
      (fs::path(to).parent_path() / TemporaryName(fs::path(to).filename().string())).string();
  TF_RETURN_IF_ERROR(root.Rename(to, aside));
  TF_RETURN_IF_ERROR(root.Rename(from, to));
  TF_RETURN_IF_ERROR(root.RemoveTree(aside));
  return synced();
}

absl::Status LinkArtifact(const std::string& source, const TierRoot& root,
                          const std::string& target) {
  TF_ASSIGN_OR_RETURN(const std::string to, root.Relative(target));
  const fs::path path(to);
  TF_ASSIGN_OR_RETURN(Fd folder, root.OpenFolder(path.parent_path().string(), /*create=*/true));
  const std::string temporary = TemporaryName(path.filename().string());
  const std::string shown = (path.parent_path() / temporary).string();
  absl::Status status = LinkTree(source, folder.get(), temporary, shown);
  if (status.ok()) status = PublishArtifact(root, shown, to);
  if (!status.ok()) (void)root.RemoveTree(shown);
  return status;
}

}  // namespace tierflow::storage
