#include "storage_adapters/transfer.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "common/strings.h"
#include "storage_adapters/content_hash.h"
#include "storage_adapters/posix.h"
#include "storage_adapters/remote_store.h"

namespace tierflow::storage {

namespace {

// Attempts of a copy from a remote store whose bytes do not match.
constexpr int kVerifyAttempts = 3;

absl::Status Mismatch(Adapter& from, std::string_view key, std::string_view what,
                      std::string_view expected, std::string_view actual, int attempts) {
  return absl::DataLossError(
      StrCat("tier ", from.remote()->tier_name(), ": '", key, "' as read does not match ", what,
             ": expected ", expected, ", got ", actual, " (", attempts,
             attempts == 1 ? " attempt" : " attempts", "); the copy was not kept"));
}

// One attempt: streams `key` to `to_key`, hashing the bytes as they pass;
// commits only when they match `expected` (when set).
absl::StatusOr<TransferResult> StreamObject(Adapter& from, std::string_view key, Adapter& to,
                                            std::string_view to_key, const ObjectInfo& info,
                                            const TransferOptions& options,
                                            const std::string& expected, std::string* actual) {
  TF_ASSIGN_OR_RETURN(std::unique_ptr<ObjectReader> reader, from.OpenRead(key));
  TF_ASSIGN_OR_RETURN(std::unique_ptr<ObjectWriter> writer, to.OpenWrite(to_key));
  // A writer that must declare the hash first (a multipart upload): the
  // source's own, else the source read once more.
  writer->SetContentHashSource([&from, key = std::string(key), known = info.content_hash,
                                chunk = options.chunk_bytes]() -> absl::StatusOr<std::string> {
    if (!known.empty()) return known;
    TF_ASSIGN_OR_RETURN(std::unique_ptr<ObjectReader> again, from.OpenRead(key));
    ContentHasher hasher;
    std::vector<char> buffer(chunk);
    for (;;) {
      TF_ASSIGN_OR_RETURN(size_t n, again->Read(std::span<char>(buffer)));
      if (n == 0) return hasher.Finish();
      hasher.Update(std::string_view(buffer.data(), n));
    }
  });
  ContentHasher hasher;
  std::vector<char> buffer(options.chunk_bytes);
  uint64_t copied = 0;
  for (;;) {
    TF_ASSIGN_OR_RETURN(size_t n, reader->Read(std::span<char>(buffer)));
    if (n == 0) break;
    const std::string_view piece(buffer.data(), n);
    hasher.Update(piece);
    TF_RETURN_IF_ERROR(writer->Write(piece));
    copied += n;
  }
  if (copied != info.bytes) {
    return absl::DataLossError(StrCat("copying '", key, "': read ", copied, " bytes of ",
                                      info.bytes, " (it changed during the copy)"));
  }
  *actual = hasher.Finish();
  if (!expected.empty() && *actual != expected) {
    return absl::DataLossError("mismatch");  // the caller says what
  }
  TF_RETURN_IF_ERROR(writer->Commit());
  return TransferResult{copied, 1, *actual, !expected.empty()};
}

}  // namespace

absl::StatusOr<TransferResult> CopyObject(Adapter& from, std::string_view key, Adapter& to,
                                          std::string_view to_key, const TransferOptions& options,
                                          std::string_view expected) {
  TF_ASSIGN_OR_RETURN(ObjectInfo info, from.Stat(key));
  if (from.kind() == "posix" && to.kind() == "posix") {
    TF_RETURN_IF_ERROR(CopyBetweenPosixTiers(from, key, to, to_key, options.parallel));
    return TransferResult{info.bytes, 1};
  }
  // Bytes from a remote store are checked against the object's own hash,
  // else the one the caller expects.
  std::string check;
  if (from.remote() != nullptr) {
    check = !info.content_hash.empty() ? info.content_hash : std::string(expected);
  }
  for (int attempt = 1;; ++attempt) {
    std::string actual;
    absl::StatusOr<TransferResult> copied =
        StreamObject(from, key, to, to_key, info, options, check, &actual);
    if (copied.ok() || actual.empty() || actual == check) return copied;
    if (attempt >= kVerifyAttempts) {
      return Mismatch(from, key,
                      info.content_hash.empty() ? "its recorded hash" : "its own stored hash",
                      check, actual, attempt);
    }
    // Read again: a byte damaged on the way is rarely damaged twice. The
    // object itself may have been replaced, so ask again what it should be.
    TF_ASSIGN_OR_RETURN(info, from.Stat(key));
    if (!info.content_hash.empty()) check = info.content_hash;
  }
}

absl::StatusOr<TransferResult> CopyTree(Adapter& from, std::string_view prefix, Adapter& to,
                                        std::string_view to_prefix,
                                        const TransferOptions& options) {
  const std::string folder =
      prefix.empty() || prefix.back() == '/' ? std::string(prefix) : StrCat(prefix, "/");
  TF_ASSIGN_OR_RETURN(std::vector<ObjectInfo> objects, from.List(folder));
  // Objects `parallel` at a time (a tree of many small files is bound by
  // per-object latency, a request each on an object store), each copied
  // whole; a tree of one object gets the ranges instead.
  TransferOptions each = options;
  const size_t workers =
      std::min<size_t>(objects.size(), static_cast<size_t>(std::max(options.parallel, 1)));
  if (workers > 1) each.parallel = 1;
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> bytes{0};
  std::mutex mu;
  absl::Status first_error;  // guarded by mu
  std::atomic<bool> failed{false};
  // Each file's hash (where it was computed) and whether it was verified.
  std::vector<std::pair<std::string, std::string>> hashes(objects.size());
  std::atomic<size_t> verified{0};
  auto work = [&] {
    for (size_t i = next++; i < objects.size() && !failed; i = next++) {
      const std::string relative = objects[i].key.substr(folder.size());
      absl::StatusOr<TransferResult> one =
          CopyObject(from, objects[i].key, to, StrCat(to_prefix, "/", relative), each);
      if (!one.ok()) {
        std::lock_guard lock(mu);
        if (first_error.ok()) first_error = one.status();
        failed = true;
        return;
      }
      bytes += one->bytes;
      hashes[i] = {relative, one->content_hash};
      if (one->verified) ++verified;
    }
  };
  std::vector<std::thread> threads;
  for (size_t i = 1; i < workers; ++i) threads.emplace_back(work);
  work();
  for (std::thread& thread : threads) thread.join();
  TF_RETURN_IF_ERROR(first_error);
  TransferResult result{bytes.load(), objects.size()};
  result.verified = verified == objects.size();
  if (std::all_of(hashes.begin(), hashes.end(), [](const auto& h) { return !h.second.empty(); })) {
    result.content_hash = TreeHashOfFiles(std::move(hashes));
  }
  return result;
}

namespace {

// A tree copied from a remote store must be the tree that was recorded.
absl::Status CheckTree(Adapter& from, const std::string& key, const TransferResult& tree,
                       const std::string& expected_hash) {
  if (from.remote() == nullptr || expected_hash.empty() || tree.content_hash == expected_hash) {
    return absl::OkStatus();
  }
  std::string why = tree.verified ? " (every file matches its own stored hash, so the tree "
                                    "differs: folders without files and symlinks are not kept "
                                    "on an object store)"
                                  : "";
  return absl::DataLossError(StrCat(
      "tier ", from.remote()->tier_name(), ": '", key,
      "' as read does not match its recorded hash: expected ", expected_hash, ", got ",
      tree.content_hash.empty() ? "no hash" : tree.content_hash, why, "; the copy is not used"));
}

}  // namespace

absl::StatusOr<TransferResult> CopyArtifact(Adapter& from, const std::string& key, Adapter& to,
                                            const std::string& to_key,
                                            const std::string& expected_hash) {
  absl::StatusOr<ObjectInfo> file = from.Stat(key);
  if (file.ok()) {
    TF_ASSIGN_OR_RETURN(TransferResult one, CopyObject(from, key, to, to_key, {}, expected_hash));
    if (from.remote() != nullptr && !expected_hash.empty() && one.content_hash != expected_hash) {
      // It matched its own stored hash, which is not the recorded one: the
      // object was replaced since. Remove the copy: it is not the artifact.
      (void)to.Delete(to_key);
      return absl::DataLossError(StrCat("tier ", from.remote()->tier_name(), ": '", key,
                                        "' is not the artifact that was recorded: expected ",
                                        expected_hash, ", got ", one.content_hash));
    }
    return one;
  }
  if (file.status().code() != absl::StatusCode::kNotFound) return file.status();
  TF_ASSIGN_OR_RETURN(TransferResult tree, CopyTree(from, key, to, to_key));
  if (tree.objects == 0) {
    return absl::NotFoundError(StrCat("artifact '", key, "' is on no tier it was recorded on"));
  }
  if (absl::Status checked = CheckTree(from, key, tree, expected_hash); !checked.ok()) {
    (void)DeleteArtifact(to, to_key);
    return checked;
  }
  return tree;
}

absl::StatusOr<TransferResult> CopyCheckpoint(Adapter& from, Adapter& to, const std::string& key) {
  // A flush a crash cut off left part of this folder, and the temporary
  // files of its unfinished writes, which would then be part of it: the
  // folder is made again from nothing (it is not recorded as flushed yet).
  if (const std::shared_ptr<const TierRoot> root = PosixTierRoot(to)) {
    TF_RETURN_IF_ERROR(root->Remove(key + ".committed"));
    TF_RETURN_IF_ERROR(root->RemoveWithUnfinishedWrites(key));
    TF_RETURN_IF_ERROR(root->RemoveWithUnfinishedWrites(key + ".committed"));
  }
  TF_ASSIGN_OR_RETURN(TransferResult moved, CopyArtifact(from, key, to, key));
  TF_ASSIGN_OR_RETURN(TransferResult marker,
                      CopyObject(from, key + ".committed", to, key + ".committed"));
  moved.bytes += marker.bytes;
  moved.objects += marker.objects;
  return moved;
}

absl::Status DeleteArtifact(Adapter& adapter, const std::string& key) {
  // A file is an object; a folder (on posix) is not, and holds the tree.
  if (adapter.Stat(key).ok()) return adapter.Delete(key);
  TF_ASSIGN_OR_RETURN(std::vector<ObjectInfo> objects, adapter.List(StrCat(key, "/")));
  for (const ObjectInfo& object : objects) TF_RETURN_IF_ERROR(adapter.Delete(object.key));
  return absl::OkStatus();
}

absl::StatusOr<bool> ArtifactExists(Adapter& adapter, const std::string& key) {
  absl::StatusOr<ObjectInfo> file = adapter.Stat(key);
  if (file.ok()) return true;
  if (file.status().code() != absl::StatusCode::kNotFound) return file.status();
  TF_ASSIGN_OR_RETURN(std::vector<ObjectInfo> objects, adapter.List(StrCat(key, "/")));
  return !objects.empty();
}

absl::Status RemoveStreamFiles(const TierRoot& root, const std::string& path) {
  const std::string manifest = StrCat(path, kStreamManifestSuffix);
  TF_RETURN_IF_ERROR(root.Remove(manifest));
  TF_RETURN_IF_ERROR(root.Remove(manifest + ".next"));
  return root.Remove(manifest + ".failed");
}

absl::StatusOr<TransferResult> StreamArtifact(Adapter& from, const std::string& key, Adapter& to,
                                              const std::string& path,
                                              const StreamOptions& options) {
  bool first_told = false;
  auto started = [&] {
    if (!first_told && options.on_first) options.on_first();
    first_told = true;
  };
  // Every file beside the copy is made through the target's root.
  const std::shared_ptr<const TierRoot> root = PosixTierRoot(to);
  if (root == nullptr) {
    return absl::InvalidArgumentError(
        StrCat("a streamed copy of '", key, "' needs a posix target tier"));
  }
  auto copy = [&]() -> absl::StatusOr<TransferResult> {
    // `path` is `key` on `to`: every change there goes by key, through its root.
    const std::string manifest = StrCat(key, kStreamManifestSuffix);
    if (options.clear_first) TF_RETURN_IF_ERROR(root->RemoveTree(key));
    TF_RETURN_IF_ERROR(root->Remove(manifest + ".next"));
    TF_RETURN_IF_ERROR(root->Remove(manifest + ".failed"));
    absl::StatusOr<ObjectInfo> file = from.Stat(key);
    if (file.ok()) {  // one file: nothing to stream
      TF_ASSIGN_OR_RETURN(TransferResult moved,
                          CopyArtifact(from, key, to, key, options.expected_hash));
      started();
      return moved;
    }
    TF_ASSIGN_OR_RETURN(std::vector<ObjectInfo> objects, from.List(StrCat(key, "/")));
    std::sort(objects.begin(), objects.end(),
              [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
    std::string files;
    std::string sizes;
    for (const ObjectInfo& object : objects) {
      files += StrCat(files.empty() ? "" : ", ", JsonQuoted(object.key.substr(key.size() + 1)));
      sizes += StrCat(sizes.empty() ? "" : ", ", object.bytes);
    }
    TF_RETURN_IF_ERROR(root->WriteFile(
        manifest, StrCat("{\"files\": [", files, "], \"bytes\": [", sizes, "]}\n")));
    TF_RETURN_IF_ERROR(root->CreateFolders(key));
    TransferResult total;
    // From a remote store: each file's hash, for the check of the whole. A
    // first file stored without a hash of its own cannot be checked before
    // the reader opens it: then every file is copied first, the whole is
    // checked, and only then is the reader told (hold_back).
    const bool remote = from.remote() != nullptr;
    std::vector<std::pair<std::string, std::string>> hashes(objects.size());
    bool hold_back = false;
    // The reader may start now when the first file will be checked before
    // it appears (one HEAD tells, from a remote store).
    bool told_early = false;
    if (options.start_at_manifest && !objects.empty()) {
      bool checked_first = !remote;
      if (remote) {
        absl::StatusOr<ObjectInfo> first = from.Stat(objects[0].key);
        checked_first = first.ok() && !first->content_hash.empty();
      }
      if (checked_first) {
        started();
        told_early = true;
      }
    }
    struct InFlight {
      size_t index;
      std::future<absl::StatusOr<TransferResult>> copy;
    };
    std::deque<InFlight> in_flight;
    absl::Status failed;
    // Takes the ended copies at the front, and more until fewer than
    // `limit` are under way (1: all of them); the first failure, after all
    // under way have ended.
    auto take = [&](size_t limit) -> absl::Status {
      while (!in_flight.empty()) {
        const bool full = in_flight.size() >= limit || !failed.ok();
        if (!full &&
            in_flight.front().copy.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
          break;
        }
        InFlight done = std::move(in_flight.front());
        in_flight.pop_front();
        absl::StatusOr<TransferResult> moved = done.copy.get();
        if (!moved.ok()) {
          if (failed.ok()) failed = moved.status();
          continue;
        }
        total.bytes += moved->bytes;
        total.objects += moved->objects;
        hashes[done.index] = {objects[done.index].key.substr(key.size() + 1), moved->content_hash};
        if (remote && !moved->verified) {
          if (done.index == 0 && told_early) {
            // Its hash went between the HEAD and the copy; the reader, told
            // already, must not open an unchecked file.
            failed = absl::DataLossError(
                StrCat("tier ", from.remote()->tier_name(), ": '", objects[0].key,
                       "' lost its content hash while it was copied, so it cannot be checked "
                       "before its reader opens it"));
            continue;
          }
          if (done.index == 0) {
            hold_back = true;
          } else if (!hold_back) {
            failed = absl::DataLossError(
                StrCat("tier ", from.remote()->tier_name(), ": '", objects[done.index].key,
                       "' has no content hash of its own, so it cannot be checked before its "
                       "reader opens it"));
            continue;
          }
        }
        if (done.index == 0 && !hold_back) started();
      }
      return failed;
    };
    for (size_t j = 0; j < objects.size(); ++j) {
      // Within the window of what the reader has opened; waiting stops when
      // its readers have ended, or when none has moved for a minute.
      auto last_move = std::chrono::steady_clock::now();
      int64_t seen = -1;
      while (!hold_back && (!options.readers_done || !*options.readers_done)) {
        int64_t next = 0;
        std::ifstream progress(StrCat(path, kStreamManifestSuffix, ".next"));  // the reader's
        if (!(progress >> next)) next = 0;
        if (next != seen) {
          seen = next;
          last_move = std::chrono::steady_clock::now();
        }
        if (static_cast<int64_t>(j) < next + options.window ||
            std::chrono::steady_clock::now() - last_move > std::chrono::seconds(60)) {
          break;
        }
        TF_RETURN_IF_ERROR(take(options.parallel));  // meanwhile, what has ended
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      // A few files at once (an object store serves parallel GETs faster
      // than one), started in order; ended ones are taken in order too.
      const std::string& object = objects[j].key;
      in_flight.push_back({j, std::async(std::launch::async, [&from, &to, object] {
                             return CopyObject(from, object, to, object);
                           })});
      // The first file alone and at once: the reader starts on it.
      TF_RETURN_IF_ERROR(take(j == 0 ? 1 : options.parallel));
    }
    TF_RETURN_IF_ERROR(take(1));
    if (remote && !options.expected_hash.empty()) {
      total.content_hash = TreeHashOfFiles(std::move(hashes));
      total.verified = !hold_back;
      TF_RETURN_IF_ERROR(CheckTree(from, key, total, options.expected_hash));
    }
    if (objects.empty() || hold_back) started();
    return total;
  };
  absl::StatusOr<TransferResult> result = copy();
  if (!result.ok()) {
    // A reader waiting for a file that will not come learns why.
    (void)root->WriteFile(StrCat(key, kStreamManifestSuffix, ".failed"),
                          StrCat(result.status().message(), "\n"));
  }
  return result;
}

}  // namespace tierflow::storage
