// A tier's root folder, opened once (an O_PATH directory descriptor), and
// the one way tierflow changes anything beneath it: creating folders and
// files, renaming, linking, removing. Every operation takes a path relative
// to the root (an absolute path is accepted when it lies lexically under
// the root) and resolves each component with openat2(RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS): a symlink anywhere below
// the root, pointing out of it or not, fails the operation with an error
// naming the path; it is never followed. Removing a tree works on
// descriptors, unlinks a symlink instead of following it, and refuses to
// enter another mount. The root itself may be reached through symlinks:
// only what lies beneath it is guarded. Thread-safe: every method is const
// and the descriptor is never changed after Open.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage_adapters/fd.h"

namespace tierflow::storage {

// In the name of a file being written, before its rename into place:
// `.NAME.tierflow-tmp-SUFFIX` beside NAME. Listings skip such names.
inline constexpr std::string_view kTempMarker = ".tierflow-tmp-";

// openat2 beneath `dir` with `resolve` (RESOLVE_* flags; by default
// RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS), retried on
// EINTR; the descriptor, or -1 with errno set. The one openat2 of the
// adapters.
int OpenBeneath(int dir, const std::string& path, int flags, mode_t mode = 0);
int OpenBeneath(int dir, const std::string& path, int flags, mode_t mode, uint64_t resolve);

class TierRoot {
 public:
  // Opens the folder `root` (creating it, and its parents, with `mode` when
  // `create` is set). FailedPrecondition naming the folder when it cannot.
  static absl::StatusOr<std::shared_ptr<const TierRoot>> Open(const std::string& root,
                                                              bool create = false,
                                                              mode_t mode = 0755);

  // Open for a root in a folder others can write (the default RAM tier in
  // /dev/shm): created with mode 0700 when missing; refused with
  // FailedPrecondition naming it, its owner and mode, when it is a symlink,
  // not a folder, not owned by this user, or writable by group or others.
  // One of ours that others may only read or enter (0755, as an older
  // tierflow made it) is set to 0700: no one else can have put anything in.
  static absl::StatusOr<std::shared_ptr<const TierRoot>> OpenPrivate(const std::string& root);

  const std::string& path() const { return path_; }
  int fd() const { return fd_.get(); }

  // `path` relative to the root, normalised ("" for the root itself).
  // InvalidArgument naming it when it is absolute but not under the root,
  // or climbs out with "..".
  absl::StatusOr<std::string> Relative(std::string_view path) const;

  // The folder `path` (O_PATH | O_DIRECTORY), with its missing parents and
  // itself created (mode `mode`) when `create` is set.
  absl::StatusOr<Fd> OpenFolder(std::string_view path, bool create, mode_t mode = 0755) const;
  absl::Status CreateFolders(std::string_view path, mode_t mode = 0755) const;

  // A file opened read-only; a symlink is refused like any other.
  absl::StatusOr<Fd> OpenRead(std::string_view path) const;
  // A new file for writing (its folders created): O_EXCL, so an existing
  // entry (a symlink included) is never written through.
  absl::StatusOr<Fd> CreateFile(std::string_view path, mode_t mode = 0644) const;
  // `contents` at `path`, atomically: a temporary beside it, then a rename.
  absl::Status WriteFile(std::string_view path, std::string_view contents) const;

  // Renames `from` to `to` (creating to's folders): renameat2 on the two
  // parent folders' descriptors, with `flags` (RENAME_NOREPLACE...).
  absl::Status Rename(std::string_view from, std::string_view to, unsigned flags = 0) const;
  // A hard link `to` of the file `from` (to's folders created).
  absl::Status Link(std::string_view from, std::string_view to) const;

  // lstat of `path` (a symlink at the end is described, not followed);
  // NotFound when there is nothing there.
  absl::StatusOr<struct stat> Stat(std::string_view path) const;
  bool Exists(std::string_view path) const { return Stat(path).ok(); }

  // Removes one file, symlink or empty folder; OK when nothing is there.
  absl::Status Remove(std::string_view path) const;
  // Removes `path` and everything under it; OK when nothing is there. A
  // symlink met on the way is unlinked, never followed, also one swapped in
  // while the removal runs; a folder on another file system (a mount) is
  // refused with FailedPrecondition naming it, and nothing in it is touched.
  absl::Status RemoveTree(std::string_view path) const;
  // Removes `path` (as RemoveTree) and what unfinished writes of it left
  // beside it: the entries `.NAME<kTempMarker>*` of its folder, which a
  // writer killed before its rename leaves (a copy about to be made again
  // over one a crash cut off). OK when nothing is there.
  absl::Status RemoveWithUnfinishedWrites(std::string_view path) const;
  // fsync of the one file or folder `path`.
  absl::Status Sync(std::string_view path) const;
  // fsync of every file and folder of `path` (file or tree), deepest first.
  absl::Status SyncTree(std::string_view path) const;

  // An error about `path` beneath this root, from errno.
  absl::Status Error(std::string_view what, std::string_view path, int error) const;

 private:
  TierRoot(std::string path, Fd fd, dev_t dev)
      : path_(std::move(path)), fd_(std::move(fd)), dev_(dev) {}
  // The folder holding `relative`'s last component, and that component.
  absl::StatusOr<std::pair<Fd, std::string>> Parent(const std::string& relative, bool create) const;
  absl::Status RemoveAt(int parent, const std::string& name, const std::string& shown,
                        int depth) const;
  absl::Status SyncAt(int parent, const std::string& name, const std::string& shown) const;

  std::string path_;
  Fd fd_;
  dev_t dev_;
};

}  // namespace tierflow::storage
