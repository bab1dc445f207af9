#include "storage_adapters/local_artifact.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

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

struct StateDeleter {
  void operator()(XXH3_state_t* state) const { XXH3_freeState(state); }
};

std::string Hex(XXH128_hash_t hash) {
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, hash);
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string text = "xxh3:";
  for (unsigned char byte : canonical.digest) {
    text += kDigits[byte >> 4];
    text += kDigits[byte & 15];
  }
  return text;
}

absl::StatusOr<XXH128_hash_t> HashFile(const std::string& path, uint64_t* bytes) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open", path, errno);
  posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  std::unique_ptr<XXH3_state_t, StateDeleter> state(XXH3_createState());
  XXH3_128bits_reset(state.get());
  std::unique_ptr<char[]> buffer(new char[kBlockBytes]);
  for (;;) {
    ssize_t n = read(fd, buffer.get(), kBlockBytes);
    if (n < 0) {
      if (errno == EINTR) continue;
      int error = errno;
      close(fd);
      return ErrnoError("cannot read", path, error);
    }
    if (n == 0) break;
    *bytes += static_cast<uint64_t>(n);
    XXH3_128bits_update(state.get(), buffer.get(), static_cast<size_t>(n));
  }
  close(fd);
  return XXH3_128bits_digest(state.get());
}

// A sibling name for building `path` before publishing it.
std::string TemporarySibling(const std::string& path) {
  thread_local std::mt19937_64 random(std::random_device{}());
  char suffix[17];
  snprintf(suffix, sizeof suffix, "%016llx", static_cast<unsigned long long>(random()));
  fs::path p(path);
  return (p.parent_path() / StrCat(".", p.filename().string(), ".tmp-", suffix)).string();
}

absl::Status CopyFileContents(const std::string& source, const std::string& target) {
  int in = open(source.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return ErrnoError("cannot open", source, errno);
  struct stat info;
  fstat(in, &info);
  int out = open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, info.st_mode & 07777);
  if (out < 0) {
    int error = errno;
    close(in);
    return ErrnoError("cannot create", target, error);
  }
  absl::Status status;
  for (;;) {
    ssize_t n = copy_file_range(in, nullptr, out, nullptr, kBlockBytes * 16, 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      status = ErrnoError("cannot copy to", target, errno);
      break;
    }
  }
  close(in);
  if (close(out) != 0 && status.ok()) status = ErrnoError("cannot write", target, errno);
  return status;
}

absl::Status LinkOrCopyFile(const std::string& source, const std::string& target) {
  if (link(source.c_str(), target.c_str()) == 0) return absl::OkStatus();
  if (errno != EXDEV && errno != EPERM && errno != EMLINK) {
    return ErrnoError("cannot link to", target, errno);
  }
  return CopyFileContents(source, target);
}

absl::Status LinkTree(const std::string& source, const std::string& target) {
  std::error_code error;
  fs::file_status status = fs::symlink_status(source, error);
  if (error) return FsError("cannot read", source, error);
  if (fs::is_symlink(status)) {
    fs::copy_symlink(source, target, error);
    return error ? FsError("cannot copy symlink to", target, error) : absl::OkStatus();
  }
  if (!fs::is_directory(status)) return LinkOrCopyFile(source, target);
  fs::create_directory(target, error);
  if (error) return FsError("cannot create", target, error);
  for (const fs::directory_entry& entry : fs::directory_iterator(source, error)) {
    TF_RETURN_IF_ERROR(
        LinkTree(entry.path().string(), (fs::path(target) / entry.path().filename()).string()));
  }
  return error ? FsError("cannot list", source, error) : absl::OkStatus();
}

}  // namespace

std::string HashBytes(std::string_view bytes) {
  return Hex(XXH3_128bits(bytes.data(), bytes.size()));
}

absl::StatusOr<ContentDigest> HashArtifact(const std::string& path) {
  std::error_code error;
  fs::file_status status = fs::symlink_status(path, error);
  if (error || !fs::exists(status)) {
    return ErrnoError("no artifact at", path, error ? error.value() : ENOENT);
  }
  ContentDigest digest;
  if (!fs::is_directory(status)) {
    TF_ASSIGN_OR_RETURN(XXH128_hash_t hash, HashFile(path, &digest.bytes));
    digest.hash = Hex(hash);
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
  std::unique_ptr<XXH3_state_t, StateDeleter> state(XXH3_createState());
  XXH3_128bits_reset(state.get());
  auto add = [&](std::string_view text) {
    XXH3_128bits_update(state.get(), text.data(), text.size());
    XXH3_128bits_update(state.get(), "", 1);  // NUL separates fields
  };
  for (const fs::path& entry : entries) {
    fs::file_status entry_status = fs::symlink_status(entry, error);
    if (error) return FsError("cannot stat", entry.string(), error);
    std::string relative = entry.lexically_relative(path).string();
    if (fs::is_symlink(entry_status)) {
      add("L");
      add(relative);
      add(fs::read_symlink(entry, error).string());
    } else if (fs::is_directory(entry_status)) {
      add("D");
      add(relative);
    } else {
      TF_ASSIGN_OR_RETURN(XXH128_hash_t hash, HashFile(entry.string(), &digest.bytes));
      add("F");
      add(relative);
      add(Hex(hash));
      ++digest.files;
    }
  }
  digest.hash = Hex(XXH3_128bits_digest(state.get()));
  return digest;
}

namespace {

absl::Status SyncPath(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0 && errno == ELOOP) return absl::OkStatus();  // a symlink: its folder holds it
  if (fd < 0) return ErrnoError("cannot open", path, errno);
  const int synced = fsync(fd);
  const int saved = errno;
  close(fd);
  if (synced != 0) return ErrnoError("cannot sync", path, saved);
  return absl::OkStatus();
}

// Every file and folder of a file or tree, deepest first.
absl::Status SyncTree(const std::string& path) {
  std::error_code error;
  if (fs::is_directory(fs::symlink_status(path, error))) {
    for (auto it = fs::recursive_directory_iterator(path, error);
         !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
      if (it->is_regular_file(error) || it->is_directory(error)) {
        TF_RETURN_IF_ERROR(SyncPath(it->path().string()));
      }
    }
    if (error) return FsError("cannot list", path, error);
  }
  return SyncPath(path);
}

}  // namespace

absl::Status PublishArtifact(const std::string& staging, const std::string& final_path,
                             bool durable) {
  std::error_code error;
  fs::create_directories(fs::path(final_path).parent_path(), error);
  if (error) return FsError("cannot create the folder of", final_path, error);
  if (durable) TF_RETURN_IF_ERROR(SyncTree(staging));
  auto synced = [&]() -> absl::Status {
    return durable ? SyncPath(fs::path(final_path).parent_path().string()) : absl::OkStatus();
  };
  if (rename(staging.c_str(), final_path.c_str()) == 0) return synced();
  if (errno != EEXIST && errno != ENOTEMPTY && errno != EISDIR && errno != ENOTDIR) {
    return ErrnoError(StrCat("cannot move ", staging, " to"), final_path, errno);
  }
  // Something is in the way: a leftover of an attempt whose success was
  // never committed. Move it aside first so the swap stays one rename.
  std::string aside = TemporarySibling(final_path);
  if (rename(final_path.c_str(), aside.c_str()) != 0) {
    return ErrnoError("cannot move aside the old", final_path, errno);
  }
  if (rename(staging.c_str(), final_path.c_str()) != 0) {
    return ErrnoError(StrCat("cannot move ", staging, " to"), final_path, errno);
  }
  fs::remove_all(aside, error);
  return synced();
}

absl::Status LinkArtifact(const std::string& source, const std::string& target) {
  std::error_code error;
  fs::create_directories(fs::path(target).parent_path(), error);
  if (error) return FsError("cannot create the folder of", target, error);
  std::string temporary = TemporarySibling(target);
  absl::Status status = LinkTree(source, temporary);
  if (status.ok()) status = PublishArtifact(temporary, target);
  if (!status.ok()) fs::remove_all(temporary, error);
  return status;
}

}  // namespace tierflow::storage
