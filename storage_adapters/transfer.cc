#include "storage_adapters/transfer.h"

#include <string>
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
  TransferResult total;
  for (const ObjectInfo& object : objects) {
    const std::string relative = object.key.substr(folder.size());
    TF_ASSIGN_OR_RETURN(TransferResult one, CopyObject(from, object.key, to,
                                                       StrCat(to_prefix, "/", relative), options));
    total.bytes += one.bytes;
    total.objects += one.objects;
  }
  return total;
}

}  // namespace tierflow::storage
