// GET /api/v1/artifacts/ID/download (internal/http_data.h): one artifact's
// bytes, read only through the TierRoot of the tier its copy is on, so
// neither a symlink planted in the tier nor a uri rewritten in the store
// reaches a file outside the tier's root.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <memory>
#include <span>
#include <utility>

#include "api/internal/http_data.h"
#include "api/internal/http_json.h"
#include "common/status.h"
#include "common/strings.h"
#include "scheduler/run_queries.h"
#include "scheduler/run_tiers.h"
#include "storage_adapters/content_hash.h"
#include "storage_adapters/tier_factory.h"
#include "storage_adapters/tier_root.h"

namespace tierflow::api {
namespace {

namespace fs = std::filesystem;

// A refusal with the reason as a word and what to use instead.
ApiResponse Refusal(int status, std::string_view reason, const std::string& message,
                    const std::string& ref) {
  Json body = Json::parse(ErrorResponse(status, message).body);
  body["reason"] = reason;
  body["instead"] = StrCat("tierflow lineage ", ShellQuote(ref),
                           " shows where the artifact lives; copy it from there");
  ApiResponse response;
  response.status = status;
  response.body = DumpJson(body);
  return response;
}

// The file name offered to the browser, TASK-OUTPUT: in `filename` with
// only characters every browser and file system takes (RFC 6266), and as
// it is in `filename*` (RFC 8187).
std::string ContentDisposition(const scheduler::ArtifactRow& artifact) {
  const std::string name = StrCat(artifact.task_id, "-", artifact.name);
  std::string plain;
  for (char c : name) {
    const bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '-' || c == '_';
    plain += safe ? c : '_';
  }
  if (plain.front() == '.') plain.front() = '_';
  return StrCat("attachment; filename=\"", plain, "\"; filename*=UTF-8''", PercentEncode(name));
}

// `bytes` when they hash to `content_hash`; else why not.
absl::StatusOr<std::string> Checked(std::string bytes, const std::string& content_hash,
                                    const std::string& uri, const std::string& tier) {
  storage::ContentHasher hasher;
  hasher.Update(bytes);
  if (hasher.Finish() != content_hash) {
    return absl::FailedPreconditionError(
        StrCat(uri, " on tier ", tier, " no longer holds the bytes recorded (", content_hash, ")"));
  }
  return bytes;
}

// The bytes of the file `uri` beneath the posix tier `tier`'s root.
absl::StatusOr<std::string> ReadPosixCopy(const storage::TierConfig& tier, const std::string& uri) {
  TF_ASSIGN_OR_RETURN(std::shared_ptr<const storage::TierRoot> root,
                      storage::TierRoot::Open(tier.root));
  TF_ASSIGN_OR_RETURN(std::string relative, root->Relative(uri));
  if (relative.empty()) {
    return absl::FailedPreconditionError(StrCat(uri, " is the root of tier ", tier.name));
  }
  TF_ASSIGN_OR_RETURN(storage::Fd fd, root->OpenRead(relative));
  struct stat info {};
  if (fstat(fd.get(), &info) != 0) return root->Error("cannot stat", relative, errno);
  if (!S_ISREG(info.st_mode)) {
    return absl::FailedPreconditionError(
        StrCat(uri, " on tier ", tier.name, " is not a regular file"));
  }
  if (info.st_size > kMaxDownloadBytes) {
    return absl::ResourceExhaustedError(
        StrCat(uri, " on tier ", tier.name, " holds ", info.st_size, " bytes"));
  }
  std::string bytes(static_cast<size_t>(info.st_size), '\0');
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n =
        pread(fd.get(), bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return root->Error("cannot read", relative, errno);
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  bytes.resize(done);
  return bytes;
}

// The bytes of the object `uri` (s3://BUCKET/PREFIX/KEY) in the s3 tier
// `tier`, through its adapter: a uri outside the tier's bucket and prefix
// is refused, and the adapter refuses a key that is not a clean path.
absl::StatusOr<std::string> ReadS3Copy(const storage::TierConfig& tier, const std::string& uri) {
  const std::string base =
      StrCat("s3://", tier.bucket, "/", tier.prefix.empty() ? "" : StrCat(tier.prefix, "/"));
  if (uri.size() <= base.size() || uri.compare(0, base.size(), base) != 0) {
    return absl::InvalidArgumentError(
        StrCat("'", uri, "' is not under the tier's bucket and prefix ", base));
  }
  const std::string key = uri.substr(base.size());
  TF_ASSIGN_OR_RETURN(std::unique_ptr<storage::Adapter> adapter, storage::OpenTier(tier));
  TF_ASSIGN_OR_RETURN(storage::ObjectInfo info, adapter->Stat(key));
  if (info.bytes > static_cast<uint64_t>(kMaxDownloadBytes)) {
    return absl::ResourceExhaustedError(
        StrCat(uri, " on tier ", tier.name, " holds ", info.bytes, " bytes"));
  }
  TF_ASSIGN_OR_RETURN(std::unique_ptr<storage::ObjectReader> reader,
                      adapter->OpenRead(key, 0, static_cast<uint64_t>(kMaxDownloadBytes) + 1));
  std::string bytes;
  std::string buffer(1 << 16, '\0');
  for (;;) {
    TF_ASSIGN_OR_RETURN(size_t n, reader->Read(std::span<char>(buffer.data(), buffer.size())));
    if (n == 0) break;
    bytes.append(buffer.data(), n);
    if (bytes.size() > static_cast<size_t>(kMaxDownloadBytes)) {
      return absl::ResourceExhaustedError(
          StrCat(uri, " on tier ", tier.name, " is over ", kMaxDownloadBytes, " bytes"));
    }
  }
  return bytes;
}

// The bytes of the copy `uri` on `tier` when it is one file of at most
// kMaxDownloadBytes whose hash is `content_hash`; else why not.
absl::StatusOr<std::string> ReadCopy(const storage::TierConfig& tier, const std::string& uri,
                                     const std::string& content_hash) {
  absl::StatusOr<std::string> bytes;
  if (tier.adapter == "posix") {
    bytes = ReadPosixCopy(tier, uri);
  } else if (tier.adapter == "s3") {
    bytes = ReadS3Copy(tier, uri);
  } else {
    return absl::FailedPreconditionError(
        StrCat("tier ", tier.name, " is ", tier.adapter, ": only posix and s3 tiers are read"));
  }
  if (!bytes.ok()) return bytes.status();
  return Checked(std::move(*bytes), content_hash, uri, tier.name);
}

}  // namespace

absl::StatusOr<ApiResponse> DownloadArtifact(const HttpApiOptions& options,
                                             const std::string& target,
                                             std::string_view raw_query) {
  TF_ASSIGN_OR_RETURN(Query query, ParseParams(raw_query, {}));
  std::string name = target;
  if (!name.empty() &&
      std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    name = "#" + name;
  }
  if (!scheduler::IsArtifactRef(name)) {
    return absl::InvalidArgumentError(
        StrCat("'", CEscape(target), "' is not an artifact: give its id or RUN/TASK/OUTPUT"));
  }
  TF_ASSIGN_OR_RETURN(scheduler::ArtifactRef ref, scheduler::ParseArtifactRef(name));
  TF_ASSIGN_OR_RETURN(std::unique_ptr<scheduler::Database> db, OpenStore(options));
  TF_ASSIGN_OR_RETURN(scheduler::ArtifactRow artifact, scheduler::ResolveArtifact(*db, ref));
  const std::string shown = StrCat("artifact #", artifact.id, " (", artifact.Ref(), ")");
  if (artifact.files != 1) {
    return Refusal(409, "directory",
                   StrCat(shown, " is a folder of ", artifact.files,
                          " files: only a single file can be downloaded"),
                   artifact.Ref());
  }
  if (artifact.bytes > kMaxDownloadBytes) {
    return Refusal(413, "too_large",
                   StrCat(shown, " is ", artifact.bytes, " bytes, over the ", kMaxDownloadBytes,
                          " bytes (16 MiB) a download may be"),
                   artifact.Ref());
  }
  std::error_code error;
  const std::string state_dir = fs::absolute(fs::path(options.db_path).parent_path(), error);
  TF_ASSIGN_OR_RETURN(std::vector<storage::TierConfig> tiers,
                      scheduler::RecordedRunTiers(*db, artifact.run_id, state_dir));
  db.reset();
  std::vector<std::string> refused;
  bool too_large = false;
  for (const scheduler::CopyRow& copy : artifact.copies) {
    if (copy.state != scheduler::ArtifactCopyState::kPresent) continue;
    auto tier = std::find_if(tiers.begin(), tiers.end(),
                             [&](const storage::TierConfig& t) { return t.name == copy.tier; });
    if (tier == tiers.end()) {
      refused.push_back(
          StrCat("tier ", copy.tier, " is not among the tiers run ", artifact.run_id, " recorded"));
      continue;
    }
    absl::StatusOr<std::string> bytes = ReadCopy(*tier, copy.uri, artifact.content_hash);
    if (!bytes.ok()) {
      too_large = too_large || absl::IsResourceExhausted(bytes.status());
      refused.push_back(std::string(bytes.status().message()));
      continue;
    }
    ApiResponse response{
        .status = 200, .content_type = "application/octet-stream", .body = std::move(*bytes)};
    response.headers.emplace_back("Content-Disposition", ContentDisposition(artifact));
    return response;
  }
  if (refused.empty()) {
    return Refusal(409, "no_present_copy", StrCat(shown, " has no present copy on any tier"),
                   artifact.Ref());
  }
  std::string why;
  for (const std::string& reason : refused) why += StrCat(why.empty() ? "" : "; ", reason);
  if (too_large) {
    return Refusal(413, "too_large", StrCat(shown, " cannot be downloaded: ", why), artifact.Ref());
  }
  return Refusal(409, "no_readable_copy",
                 StrCat(shown, " has no copy that can be read safely: ", why), artifact.Ref());
}

}  // namespace tierflow::api
