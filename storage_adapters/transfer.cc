#include "storage_adapters/transfer.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "common/strings.h"
#include "storage_adapters/posix.h"

namespace tierflow::storage {

absl::StatusOr<TransferResult> CopyObject(Adapter& from, std::string_view key, Adapter& to,
                                          std::string_view to_key, const TransferOptions& options) {
  TF_ASSIGN_OR_RETURN(ObjectInfo info, from.Stat(key));
  if (from.kind() == "posix" && to.kind() == "posix") {
    TF_RETURN_IF_ERROR(CopyBetweenPosixTiers(from, key, to, to_key, options.parallel));
    return TransferResult{info.bytes, 1};
  }
  TF_ASSIGN_OR_RETURN(std::unique_ptr<ObjectReader> reader, from.OpenRead(key));
  TF_ASSIGN_OR_RETURN(std::unique_ptr<ObjectWriter> writer, to.OpenWrite(to_key));
  std::vector<char> buffer(options.chunk_bytes);
  uint64_t copied = 0;
  for (;;) {
    TF_ASSIGN_OR_RETURN(size_t n, reader->Read(std::span<char>(buffer)));
    if (n == 0) break;
    TF_RETURN_IF_ERROR(writer->Write(std::string_view(buffer.data(), n)));
    copied += n;
  }
  if (copied != info.bytes) {
    return absl::DataLossError(StrCat("copying '", key, "': read ", copied, " bytes of ",
                                      info.bytes, " (it changed during the copy)"));
  }
  TF_RETURN_IF_ERROR(writer->Commit());
  return TransferResult{copied, 1};
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
    }
  };
  std::vector<std::thread> threads;
  for (size_t i = 1; i < workers; ++i) threads.emplace_back(work);
  work();
  for (std::thread& thread : threads) thread.join();
  TF_RETURN_IF_ERROR(first_error);
  return TransferResult{bytes.load(), objects.size()};
}

absl::StatusOr<TransferResult> CopyArtifact(Adapter& from, const std::string& key, Adapter& to,
                                            const std::string& to_key) {
  absl::StatusOr<ObjectInfo> file = from.Stat(key);
  if (file.ok()) return CopyObject(from, key, to, to_key);
  if (file.status().code() != absl::StatusCode::kNotFound) return file.status();
  TF_ASSIGN_OR_RETURN(TransferResult tree, CopyTree(from, key, to, to_key));
  if (tree.objects == 0) {
    return absl::NotFoundError(StrCat("artifact '", key, "' is on no tier it was recorded on"));
  }
  return tree;
}

absl::Status DeleteArtifact(Adapter& adapter, const std::string& key) {
  absl::Status file = adapter.Delete(key);
  if (file.code() != absl::StatusCode::kNotFound) return file;
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

}  // namespace tierflow::storage
