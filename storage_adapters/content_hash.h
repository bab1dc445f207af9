// Content hashes computed while bytes stream past, the same as
// HashArtifact (local_artifact.h) computes them from files on disk: a file's
// "xxh3:<hex>" of its bytes, and a tree's hash from its files' relative
// paths and hashes. Lets a copy from an object store be checked against
// the artifact's recorded hash without reading it a second time.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tierflow::storage {

// The hash of a stream of bytes, as HashArtifact gives it for a file with
// those bytes. Not thread-safe.
class ContentHasher {
 public:
  ContentHasher();
  ~ContentHasher();
  ContentHasher(ContentHasher&&) noexcept;
  ContentHasher& operator=(ContentHasher&&) noexcept;
  void Update(std::string_view bytes);
  // "xxh3:<32 lowercase hex>" of everything updated so far.
  std::string Finish() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// A tree's hash, the one definition of it: fed the tree's entries (paths
// relative to the tree, '/'-separated) sorted as paths, component by
// component, it gives what HashArtifact gives the folder. Not thread-safe.
class TreeHasher {
 public:
  void AddFolder(std::string_view relative);
  void AddFile(std::string_view relative, std::string_view content_hash);
  std::string Finish() const { return hasher_.Finish(); }

 private:
  void Field(std::string_view text);  // NUL-terminated fields
  ContentHasher hasher_;
};

// The hash HashArtifact gives a folder holding exactly these files (their
// paths relative to the folder, '/'-separated, and their content hashes)
// and the folders on their paths, nothing else (no empty folders, no
// symlinks: what an object store can hold).
std::string TreeHashOfFiles(std::vector<std::pair<std::string, std::string>> files);

}  // namespace tierflow::storage
