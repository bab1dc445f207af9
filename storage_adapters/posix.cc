#include "storage_adapters/posix.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>
#include <thread>
#include <vector>

#include "common/status.h"
#include "common/strings.h"
#include "storage_adapters/artifact_key.h"
#include "storage_adapters/fd.h"
#include "storage_adapters/tier_root.h"

namespace tierflow::storage {
namespace fs = std::filesystem;
namespace {

class PosixAdapter;

class PosixWriter final : public ObjectWriter {
 public:
  PosixWriter(const PosixAdapter* adapter, Fd dir, Fd file, std::string temp, std::string name,
              std::string key)
      : adapter_(adapter),
        dir_(std::move(dir)),
        file_(std::move(file)),
        temp_(std::move(temp)),
        name_(std::move(name)),
        key_(std::move(key)) {}
  ~PosixWriter() override {
    if (!committed_) unlinkat(dir_.get(), temp_.c_str(), 0);
  }
  absl::Status Write(std::string_view data) override;
  absl::Status Commit() override;
  int fd() const { return file_.get(); }

 private:
  const PosixAdapter* adapter_;
  Fd dir_;
  Fd file_;
  std::string temp_;
  std::string name_;
  std::string key_;
  bool committed_ = false;
};

class PosixReader final : public ObjectReader {
 public:
  PosixReader(Fd file, uint64_t offset, std::optional<uint64_t> length)
      : file_(std::move(file)), offset_(offset), left_(length) {}
  absl::StatusOr<size_t> Read(std::span<char> buffer) override {
    size_t want = buffer.size();
    if (left_) want = static_cast<size_t>(std::min<uint64_t>(want, *left_));
    if (want == 0) return 0;
    for (;;) {
      ssize_t n = pread(file_.get(), buffer.data(), want, static_cast<off_t>(offset_));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return absl::InternalError(StrCat("read: ", std::strerror(errno)));
      offset_ += static_cast<uint64_t>(n);
      if (left_) *left_ -= static_cast<uint64_t>(n);
      return static_cast<size_t>(n);
    }
  }

 private:
  Fd file_;
  uint64_t offset_;
  std::optional<uint64_t> left_;
};

class PosixAdapter final : public Adapter {
 public:
  PosixAdapter(PosixConfig config, std::shared_ptr<const TierRoot> root)
      : config_(std::move(config)), tier_root_(std::move(root)) {}

  std::string_view kind() const override { return "posix"; }

  // An error about `key` on this tier, from errno.
  absl::Status Error(std::string_view key, std::string_view what, int error) const {
    const std::string detail =
        StrCat(what, " '", key, "' (under ", config_.root, "): ", std::strerror(error));
    const std::string message = StrCat("tier ", config_.tier, ": ", detail);
    switch (error) {
      case ENOENT:
        return absl::NotFoundError(message);
      case ENOSPC:
      case EDQUOT:
        return absl::ResourceExhaustedError(StrCat("tier ", config_.tier, " is full: ", detail));
      case EACCES:
      case EPERM:
      case EROFS:
        return absl::PermissionDeniedError(message);
      case EXDEV:
      case ELOOP:
        return absl::InvalidArgumentError(
            StrCat(message, " (the path leaves the tier's root, or passes through a symlink: ",
                   "tierflow never follows a symlink beneath a tier root)"));
      default:
        return absl::InternalError(message);
    }
  }

  // An error reading `key`: a path through a file ("f/x" under the file
  // "f") or to a folder names no object, NotFound as for any missing key.
  absl::Status ReadError(std::string_view key, std::string_view what, int error) const {
    if (error == ENOTDIR || error == EISDIR) {
      return absl::NotFoundError(StrCat("tier ", config_.tier, ": ", what, " '", key, "' (under ",
                                        config_.root, "): no such object (", std::strerror(error),
                                        ")"));
    }
    return Error(key, what, error);
  }
  // NotFound unless `fd` is a file.
  absl::Status MustBeFile(int fd, std::string_view key, std::string_view what) const {
    struct stat info {};
    if (fstat(fd, &info) != 0) return Error(key, what, errno);
    return S_ISREG(info.st_mode) ? absl::OkStatus() : ReadError(key, what, EISDIR);
  }

  const PosixConfig& config() const { return config_; }
  const std::shared_ptr<const TierRoot>& tier_root() const { return tier_root_; }

  // The object's file, read-only, resolved beneath the root.
  absl::StatusOr<Fd> OpenSource(std::string_view key) const {
    TF_ASSIGN_OR_RETURN(std::string normal, NormalizeArtifactKey(key));
    Fd fd(OpenBeneath(tier_root_->fd(), normal, O_RDONLY));
    if (fd.get() < 0) return ReadError(normal, "cannot read", errno);
    return fd;
  }

  absl::StatusOr<std::unique_ptr<ObjectWriter>> OpenWrite(std::string_view key) override {
    TF_ASSIGN_OR_RETURN(std::string normal, NormalizeArtifactKey(key));
    TF_ASSIGN_OR_RETURN(Fd dir, ParentDir(normal, /*create=*/true));
    const std::string name = fs::path(normal).filename().string();
    if (config_.write_once && Exists(dir.get(), name)) return WriteOnceError(normal);
    static thread_local std::mt19937_64 random(std::random_device{}());
    char suffix[17];
    snprintf(suffix, sizeof suffix, "%016llx", static_cast<unsigned long long>(random()));
    std::string temp = StrCat(".", name.substr(0, 200), kTempMarker, suffix);
    int fd = openat(dir.get(), temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return Error(normal, "cannot write", errno);
    return std::unique_ptr<ObjectWriter>(
        new PosixWriter(this, std::move(dir), Fd(fd), std::move(temp), name, normal));
  }

  absl::StatusOr<std::unique_ptr<ObjectReader>> OpenRead(std::string_view key, uint64_t offset,
                                                         std::optional<uint64_t> length) override {
    TF_ASSIGN_OR_RETURN(std::string normal, NormalizeArtifactKey(key));
    Fd fd(OpenBeneath(tier_root_->fd(), normal, O_RDONLY));
    if (fd.get() < 0) return ReadError(normal, "cannot read", errno);
    TF_RETURN_IF_ERROR(MustBeFile(fd.get(), normal, "cannot read"));
    return std::unique_ptr<ObjectReader>(new PosixReader(std::move(fd), offset, length));
  }

  absl::StatusOr<ObjectInfo> Stat(std::string_view key) override {
    TF_ASSIGN_OR_RETURN(std::string normal, NormalizeArtifactKey(key));
    Fd fd(OpenBeneath(tier_root_->fd(), normal, O_PATH));
    if (fd.get() < 0) return ReadError(normal, "cannot stat", errno);
    struct stat info {};
    if (fstat(fd.get(), &info) != 0) return Error(normal, "cannot stat", errno);
    if (!S_ISREG(info.st_mode)) return ReadError(normal, "cannot stat", EISDIR);
    return ObjectInfo{normal, static_cast<uint64_t>(info.st_size),
                      info.st_mtim.tv_sec * 1000 + info.st_mtim.tv_nsec / 1000000};
  }

  absl::StatusOr<std::vector<ObjectInfo>> List(std::string_view prefix) override {
    std::vector<ObjectInfo> objects;
    const fs::path root(config_.root);
    // Only below the deepest folder the prefix names, not the whole tier:
    // listing one artifact must not cost (or fail on) everything else there.
    fs::path start = root;
    if (const size_t slash = prefix.rfind('/'); slash != std::string_view::npos && slash > 0) {
      TF_ASSIGN_OR_RETURN(std::string folder, NormalizeArtifactKey(prefix.substr(0, slash)));
      start = root / folder;
    }
    std::vector<fs::path> folders = {start};
    while (!folders.empty()) {
      const fs::path folder = std::move(folders.back());
      folders.pop_back();
      std::error_code error;
      fs::directory_iterator it(folder, error);
      // A folder that is not there (any more: another artifact evicted
      // meanwhile) holds nothing to list.
      if (error == std::errc::no_such_file_or_directory || error == std::errc::not_a_directory) {
        continue;
      }
      for (; !error && it != fs::directory_iterator(); it.increment(error)) {
        std::error_code entry_error;
        // Symlinks are neither followed nor listed: they are not artifacts.
        if (it->is_symlink(entry_error)) continue;
        if (it->is_directory(entry_error)) {
          folders.push_back(it->path());
          continue;
        }
        if (!it->is_regular_file(entry_error)) continue;
        const std::string name = it->path().filename().string();
        if (name.find(kTempMarker) != std::string::npos) continue;  // unfinished writes
        std::string key = it->path().lexically_relative(root).string();
        if (key.rfind(prefix, 0) != 0) continue;
        const uintmax_t size = it->file_size(entry_error);
        const auto time = it->last_write_time(entry_error);
        if (entry_error) continue;  // gone meanwhile
        ObjectInfo info{key, static_cast<uint64_t>(size), 0};
        info.modified_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::file_clock::to_sys(time).time_since_epoch())
                               .count();
        objects.push_back(std::move(info));
      }
      if (error && error != std::errc::no_such_file_or_directory) {
        return Error(folder.lexically_relative(root).string(), "cannot list", error.value());
      }
    }
    std::sort(objects.begin(), objects.end(),
              [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
    return objects;
  }

  absl::Status Delete(std::string_view key) override {
    TF_ASSIGN_OR_RETURN(std::string normal, NormalizeArtifactKey(key));
    if (config_.write_once) {
      return absl::FailedPreconditionError(StrCat(
          "tier ", config_.tier, " is an archive (write-once): '", normal, "' cannot be deleted"));
    }
    TF_ASSIGN_OR_RETURN(Fd dir, ParentDir(normal, /*create=*/false));
    if (unlinkat(dir.get(), fs::path(normal).filename().c_str(), 0) != 0) {
      return ReadError(normal, "cannot delete", errno);
    }
    return absl::OkStatus();
  }

  absl::Status PutFile(std::string_view key, const std::string& local_path) override {
    Fd source(open(local_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (source.get() < 0) {
      return absl::NotFoundError(StrCat("cannot read ", local_path, ": ", std::strerror(errno)));
    }
    TF_ASSIGN_OR_RETURN(std::unique_ptr<ObjectWriter> writer, OpenWrite(key));
    auto* posix = static_cast<PosixWriter*>(writer.get());
    TF_RETURN_IF_ERROR(CopyFd(source.get(), posix->fd(), key));
    return writer->Commit();
  }

  absl::Status GetFile(std::string_view key, const std::string& local_path) override {
    TF_ASSIGN_OR_RETURN(std::string normal, NormalizeArtifactKey(key));
    Fd source(OpenBeneath(tier_root_->fd(), normal, O_RDONLY));
    if (source.get() < 0) return ReadError(normal, "cannot read", errno);
    TF_RETURN_IF_ERROR(MustBeFile(source.get(), normal, "cannot read"));
    const fs::path target(local_path);
    std::error_code error;
    fs::create_directories(target.parent_path(), error);
    const std::string temp = StrCat(local_path, kTempMarker, getpid());
    Fd out(open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (out.get() < 0) {
      return absl::PermissionDeniedError(StrCat("cannot write ", temp, ": ", std::strerror(errno)));
    }
    absl::Status status = CopyFd(source.get(), out.get(), normal);
    if (status.ok() && rename(temp.c_str(), local_path.c_str()) != 0) {
      status = absl::InternalError(
          StrCat("cannot rename ", temp, " to ", local_path, ": ", std::strerror(errno)));
    }
    if (!status.ok()) unlink(temp.c_str());
    return status;
  }

  absl::Status WriteOnceError(std::string_view key) const {
    return absl::AlreadyExistsError(StrCat("tier ", config_.tier, " is an archive (write-once): '",
                                           key, "' exists and cannot be replaced"));
  }

 private:
  static bool Exists(int dir, const std::string& name) {
    struct stat info {};
    return fstatat(dir, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) == 0;
  }

  // The folder that holds `key`, beneath the root; created when asked.
  absl::StatusOr<Fd> ParentDir(const std::string& key, bool create) const {
    Fd dir(
        OpenBeneath(tier_root_->fd(), fs::path(key).parent_path().string(), O_PATH | O_DIRECTORY));
    if (dir.get() >= 0) return dir;
    if (!create) return ReadError(key, "cannot find", errno);
    if (errno != ENOENT) return Error(key, "cannot write", errno);
    absl::StatusOr<Fd> made = tier_root_->OpenFolder(fs::path(key).parent_path().string(), true);
    if (!made.ok()) {
      return absl::Status(made.status().code(),
                          StrCat("tier ", config_.tier, ": cannot create the folder of '", key,
                                 "': ", made.status().message()));
    }
    return std::move(*made);
  }

  // copy_file_range where the kernel can (same file system: reflinks or
  // in-kernel copies), else read/write.
  absl::Status CopyFd(int from, int to, std::string_view key) const {
    for (;;) {
      ssize_t n = copy_file_range(from, nullptr, to, nullptr, 1 << 30, 0);
      if (n == 0) return absl::OkStatus();
      if (n > 0) continue;
      if (errno == EINTR) continue;
      if (errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP || errno == ENOSYS) break;
      return Error(key, "cannot copy", errno);
    }
    std::vector<char> buffer(1 << 20);
    for (;;) {
      ssize_t n = read(from, buffer.data(), buffer.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Error(key, "cannot copy", errno);
      if (n == 0) return absl::OkStatus();
      for (ssize_t done = 0; done < n;) {
        ssize_t w = write(to, buffer.data() + done, static_cast<size_t>(n - done));
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return Error(key, "cannot copy", errno);
        done += w;
      }
    }
  }

  PosixConfig config_;
  std::shared_ptr<const TierRoot> tier_root_;
};

absl::Status PosixWriter::Write(std::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(file_.get(), data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return adapter_->Error(key_, "cannot write", errno);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status PosixWriter::Commit() {
  if (adapter_->config().sync && fsync(file_.get()) != 0) {
    return adapter_->Error(key_, "cannot write", errno);
  }
  if (adapter_->config().write_once) {
    // RENAME_NOREPLACE: a key written meanwhile by someone else still wins.
    if (renameat2(dir_.get(), temp_.c_str(), dir_.get(), name_.c_str(), RENAME_NOREPLACE) != 0) {
      if (errno == EEXIST) return adapter_->WriteOnceError(key_);
      return adapter_->Error(key_, "cannot write", errno);
    }
  } else if (renameat(dir_.get(), temp_.c_str(), dir_.get(), name_.c_str()) != 0) {
    return adapter_->Error(key_, "cannot write", errno);
  }
  committed_ = true;
  if (adapter_->config().sync) {
    Fd dir(openat(dir_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.get() >= 0) fsync(dir.get());
  }
  return absl::OkStatus();
}

// The bytes of one copy_file_range call of CopyRange, after which their
// write-back to the device is started.
constexpr uint64_t kWritebackChunk = uint64_t{32} << 20;

// Copies [offset, offset + length) of `from` to the same range of `to`.
// Each chunk's write-back is started as soon as it is copied
// (sync_file_range, which starts it without waiting for it): otherwise a
// copy smaller than the kernel's dirty threshold (10% of memory) writes
// nothing until its fsync, and the device writes only after it has read
// everything, where fio, reading and writing at once, overlaps the two
// (bench/README.md "Issue 21: transfer").
absl::Status CopyRange(int from, int to, uint64_t offset, uint64_t length) {
  loff_t in = static_cast<loff_t>(offset);
  loff_t out = static_cast<loff_t>(offset);
  uint64_t left = length;
  while (left > 0) {
    const loff_t start = out;
    ssize_t n = copy_file_range(from, &in, to, &out, std::min(left, kWritebackChunk), 0);
    if (n > 0) {
      left -= static_cast<uint64_t>(n);
      // Best effort: a file system without write-back (tmpfs) ignores it.
      (void)sync_file_range(to, start, n, SYNC_FILE_RANGE_WRITE);
      continue;
    }
    if (n == 0) return absl::DataLossError("the source ended early (it changed during the copy)");
    if (errno == EINTR) continue;
    if (errno == ENOSPC || errno == EDQUOT) {
      return absl::ResourceExhaustedError("the target tier is full");
    }
    if (errno != EXDEV && errno != EINVAL && errno != EOPNOTSUPP && errno != ENOSYS) {
      return absl::InternalError(std::strerror(errno));
    }
    // Across file systems on old kernels, or special files: through user space.
    std::vector<char> buffer(std::min<uint64_t>(left, 4 << 20));
    while (left > 0) {
      ssize_t r = pread(from, buffer.data(), std::min<uint64_t>(left, buffer.size()), in);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return absl::InternalError(r == 0 ? "short read" : std::strerror(errno));
      for (ssize_t done = 0; done < r;) {
        ssize_t w = pwrite(to, buffer.data() + done, static_cast<size_t>(r - done), out);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == ENOSPC || errno == EDQUOT)) {
          return absl::ResourceExhaustedError("the target tier is full");
        }
        if (w < 0) return absl::InternalError(std::strerror(errno));
        done += w;
        out += w;
      }
      in += r;
      left -= static_cast<uint64_t>(r);
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CopyBetweenPosixTiers(Adapter& from, std::string_view key, Adapter& to,
                                   std::string_view to_key, int parallel) {
  auto* source = dynamic_cast<PosixAdapter*>(&from);
  auto* target = dynamic_cast<PosixAdapter*>(&to);
  if (source == nullptr || target == nullptr) {
    return absl::UnimplementedError("not a copy between two posix tiers");
  }
  TF_ASSIGN_OR_RETURN(Fd in, source->OpenSource(key));
  struct stat info {};
  if (fstat(in.get(), &info) != 0 || !S_ISREG(info.st_mode)) {
    return absl::InvalidArgumentError(
        StrCat("tier ", source->config().tier, ": '", key, "' is not a file"));
  }
  const uint64_t size = static_cast<uint64_t>(info.st_size);
  TF_ASSIGN_OR_RETURN(std::unique_ptr<ObjectWriter> writer, to.OpenWrite(to_key));
  const int out = static_cast<PosixWriter*>(writer.get())->fd();
  // Ranges of at least 64 MiB: below that, threads cost more than they give.
  const uint64_t ranges = std::clamp<uint64_t>(size / (uint64_t{64} << 20), 1,
                                               static_cast<uint64_t>(std::max(parallel, 1)));
  // Ranges written out of order need the file's full size first.
  if (ranges > 1 && ftruncate(out, static_cast<off_t>(size)) != 0) {
    return target->Error(to_key, "cannot write", errno);
  }
  const uint64_t step = (size + ranges - 1) / ranges;
  std::vector<absl::Status> results(ranges);
  std::vector<std::thread> threads;
  for (uint64_t r = 1; r < ranges; ++r) {
    threads.emplace_back([&, r] {
      const uint64_t offset = r * step;
      results[r] = CopyRange(in.get(), out, offset, std::min(step, size - std::min(size, offset)));
    });
  }
  results[0] = CopyRange(in.get(), out, 0, std::min(step, size));
  for (std::thread& thread : threads) thread.join();
  for (const absl::Status& status : results) {
    if (!status.ok()) {
      return absl::Status(status.code(),
                          StrCat("copying '", key, "' from tier ", source->config().tier,
                                 " to tier ", target->config().tier, ": ", status.message()));
    }
  }
  return writer->Commit();
}

absl::StatusOr<std::unique_ptr<Adapter>> MakePosixAdapter(const PosixConfig& config) {
  absl::StatusOr<std::shared_ptr<const TierRoot>> root =
      config.private_root ? TierRoot::OpenPrivate(config.root)
                          : TierRoot::Open(config.root, /*create=*/true);
  if (!root.ok()) {
    return absl::FailedPreconditionError(
        StrCat("tier ", config.tier, ": ", root.status().message()));
  }
  return std::unique_ptr<Adapter>(new PosixAdapter(config, std::move(*root)));
}

absl::StatusOr<std::shared_ptr<const TierRoot>> OpenPosixRoot(const std::string& root) {
  if (root == DefaultRamRoot()) return TierRoot::OpenPrivate(root);
  return TierRoot::Open(root, /*create=*/true);
}

std::shared_ptr<const TierRoot> PosixTierRoot(const Adapter& adapter) {
  const Adapter* inner = &adapter;
  while (inner->wrapped() != nullptr) inner = inner->wrapped();
  const auto* posix = dynamic_cast<const PosixAdapter*>(inner);
  return posix == nullptr ? nullptr : posix->tier_root();
}

absl::StatusOr<std::unique_ptr<Adapter>> OpenPosixTier(const TierConfig& tier) {
  PosixConfig config;
  config.tier = tier.name;
  config.root = tier.root;
  config.sync = tier.durability >= Durability::kDurable;
  config.write_once = tier.durability == Durability::kArchive;
  config.private_root = tier.root == DefaultRamRoot();
  return MakePosixAdapter(config);
}

}  // namespace tierflow::storage
