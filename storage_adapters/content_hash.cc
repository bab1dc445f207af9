#include "storage_adapters/content_hash.h"

#include <xxhash.h>

#include <algorithm>
#include <filesystem>
#include <set>

namespace tierflow::storage {
namespace fs = std::filesystem;
namespace {

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

}  // namespace

struct ContentHasher::State {
  XXH3_state_t* xxh = XXH3_createState();
  ~State() { XXH3_freeState(xxh); }
};

ContentHasher::ContentHasher() : state_(std::make_unique<State>()) {
  XXH3_128bits_reset(state_->xxh);
}
ContentHasher::~ContentHasher() = default;
ContentHasher::ContentHasher(ContentHasher&&) noexcept = default;
ContentHasher& ContentHasher::operator=(ContentHasher&&) noexcept = default;

void ContentHasher::Update(std::string_view bytes) {
  XXH3_128bits_update(state_->xxh, bytes.data(), bytes.size());
}

std::string ContentHasher::Finish() const { return Hex(XXH3_128bits_digest(state_->xxh)); }

std::string TreeHashOfFiles(std::vector<std::pair<std::string, std::string>> files) {
  // HashArtifact sorts the tree's entries as paths (component by
  // component), folders included, and feeds each as type, path, hash.
  struct Entry {
    fs::path path;
    const std::string* hash;  // null: a folder
  };
  std::vector<Entry> entries;
  std::set<std::string> folders;
  for (const auto& [relative, hash] : files) {
    entries.push_back({fs::path(relative), &hash});
    for (fs::path parent = fs::path(relative).parent_path(); !parent.empty();
         parent = parent.parent_path()) {
      if (!folders.insert(parent.string()).second) break;
    }
  }
  for (const std::string& folder : folders) entries.push_back({fs::path(folder), nullptr});
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.path < b.path; });
  TreeHasher tree;
  for (const Entry& entry : entries) {
    if (entry.hash == nullptr) {
      tree.AddFolder(entry.path.string());
    } else {
      tree.AddFile(entry.path.string(), *entry.hash);
    }
  }
  return tree.Finish();
}

void TreeHasher::Field(std::string_view text) {
  hasher_.Update(text);
  hasher_.Update(std::string_view("", 1));
}

void TreeHasher::AddFolder(std::string_view relative) {
  Field("D");
  Field(relative);
}

void TreeHasher::AddFile(std::string_view relative, std::string_view content_hash) {
  Field("F");
  Field(relative);
  Field(content_hash);
}

}  // namespace tierflow::storage
