#include "storage_adapters/s3.h"

#include <algorithm>
#include <cstdlib>
#include <utility>
#include <vector>

#include "common/status.h"
#include "common/strings.h"
#include "storage_adapters/artifact_key.h"
#include "storage_adapters/remote_store.h"
#include "storage_adapters/s3_client.h"
#include "storage_adapters/s3_multipart.h"
#include "storage_adapters/s3_reader.h"
#include "storage_adapters/s3_request.h"
#include "storage_adapters/s3_wire.h"

namespace tierflow::storage {
namespace {

using s3_internal::DownloadFile;
using s3_internal::Head;
using s3_internal::MakeS3Writer;
using s3_internal::OpenS3Reader;
using s3_internal::ParseTimeMs;
using s3_internal::Request;
using s3_internal::Response;
using s3_internal::S3Client;
using s3_internal::UploadFile;
using s3_internal::XmlElements;
using s3_internal::XmlText;

// The Adapter and RemoteStore interfaces over one S3Client: keys are
// normalised and mapped to bucket names here; the client sends, the reader
// and the writer stream.
class S3Adapter final : public Adapter, public RemoteStore {
 public:
  explicit S3Adapter(std::unique_ptr<S3Client> client) : client_(std::move(client)) {}

  std::string_view kind() const override { return "s3"; }
  RemoteStore* remote() override { return this; }
  const std::string& tier_name() const override { return client_->config().tier; }

  void Watch(std::function<void(const RetryNotice&)> on_retry,
             std::shared_ptr<const std::atomic<bool>> cancel) override {
    client_->Watch(std::move(on_retry), std::move(cancel));
  }
  absl::Status CheckReachable() override { return client_->CheckReachable(); }
  absl::StatusOr<int> AbortUnfinishedUploads(std::string_view prefix) override;

  absl::StatusOr<std::unique_ptr<ObjectWriter>> OpenWrite(std::string_view key) override;
  absl::StatusOr<std::unique_ptr<ObjectReader>> OpenRead(std::string_view key, uint64_t offset,
                                                         std::optional<uint64_t> length) override;
  absl::StatusOr<ObjectInfo> Stat(std::string_view key) override;
  absl::StatusOr<std::vector<ObjectInfo>> List(std::string_view prefix) override;
  absl::Status Delete(std::string_view key) override;
  absl::Status PutFile(std::string_view key, const std::string& local_path) override;
  absl::Status GetFile(std::string_view key, const std::string& local_path) override;

 private:
  const std::unique_ptr<S3Client> client_;
};

absl::StatusOr<int> S3Adapter::AbortUnfinishedUploads(std::string_view prefix) {
  TF_ASSIGN_OR_RETURN(std::string normal, NormalizeArtifactKey(prefix));
  std::string object = client_->ObjectName(normal);
  if (!prefix.empty() && prefix.back() == '/') object += "/";
  Request request{"list the unfinished uploads under", std::string(prefix), "GET", ""};
  std::vector<std::pair<std::string, std::string>> uploads;  // object, upload id
  std::string key_marker, id_marker;
  for (;;) {
    request.query = {{"uploads", ""}, {"prefix", object}};
    if (!key_marker.empty()) request.query.emplace_back("key-marker", key_marker);
    if (!id_marker.empty()) request.query.emplace_back("upload-id-marker", id_marker);
    TF_ASSIGN_OR_RETURN(Response response, client_->Send(request));
    for (std::string_view upload : XmlElements(response.body, "Upload")) {
      std::string name = XmlText(upload, "Key").value_or("");
      std::string id = XmlText(upload, "UploadId").value_or("");
      if (name.compare(0, object.size(), object) == 0 && !id.empty()) {
        uploads.emplace_back(std::move(name), std::move(id));
      }
    }
    if (XmlText(response.body, "IsTruncated").value_or("false") != "true") break;
    std::string next_key = XmlText(response.body, "NextKeyMarker").value_or("");
    std::string next_id = XmlText(response.body, "NextUploadIdMarker").value_or("");
    if (next_key.empty() || (next_key == key_marker && next_id == id_marker)) break;
    key_marker = std::move(next_key);
    id_marker = std::move(next_id);
  }
  const S3Config& config = client_->config();
  const std::string root = config.prefix.empty() ? "" : StrCat(config.prefix, "/");
  int aborted = 0;
  for (const auto& [name, id] : uploads) {
    Request abort{"abort the unfinished upload of",
                  name.substr(root.size()),
                  "DELETE",
                  name,
                  {{"uploadId", id}}};
    abort.also_accept = {404};  // gone meanwhile
    TF_ASSIGN_OR_RETURN(Response response, client_->Send(abort));
    if (response.status != 404) ++aborted;
  }
  return aborted;
}

// ---------------------------------------------------------------------------
// The Adapter interface.

absl::StatusOr<std::unique_ptr<ObjectWriter>> S3Adapter::OpenWrite(std::string_view key) {
  TF_ASSIGN_OR_RETURN(std::string normal, NormalizeArtifactKey(key));
  std::string object = client_->ObjectName(normal);
  TF_RETURN_IF_ERROR(client_->RefuseOverwrite(normal, object));
  return MakeS3Writer(client_.get(), std::move(normal), std::move(object));
}

absl::StatusOr<std::unique_ptr<ObjectReader>> S3Adapter::OpenRead(std::string_view key,
                                                                  uint64_t offset,
                                                                  std::optional<uint64_t> length) {
  TF_ASSIGN_OR_RETURN(std::string normal, NormalizeArtifactKey(key));
  std::string object = client_->ObjectName(normal);
  return OpenS3Reader(client_.get(), std::move(normal), std::move(object), offset, length);
}

absl::StatusOr<ObjectInfo> S3Adapter::Stat(std::string_view key) {
  TF_ASSIGN_OR_RETURN(std::string normal, NormalizeArtifactKey(key));
  TF_ASSIGN_OR_RETURN(Head head, client_->HeadObject("stat", normal, client_->ObjectName(normal)));
  return ObjectInfo{normal, head.bytes, head.modified_ms, head.content_hash};
}

absl::StatusOr<std::vector<ObjectInfo>> S3Adapter::List(std::string_view prefix) {
  const S3Config& config = client_->config();
  const std::string root = config.prefix.empty() ? "" : StrCat(config.prefix, "/");
  Request request{"list", std::string(prefix), "GET", ""};
  std::vector<ObjectInfo> objects;
  std::string token;
  for (;;) {
    request.query = {{"list-type", "2"}, {"prefix", StrCat(root, prefix)}};
    if (!token.empty()) request.query.emplace_back("continuation-token", token);
    TF_ASSIGN_OR_RETURN(Response response, client_->Send(request));
    for (std::string_view contents : XmlElements(response.body, "Contents")) {
      const std::string name = XmlText(contents, "Key").value_or("");
      if (name.size() <= root.size() || name.compare(0, root.size(), root) != 0) continue;
      std::string key = name.substr(root.size());
      // Objects other tools stored under names no tier key can have (a
      // "..", a double slash) cannot be addressed here: not listed.
      absl::StatusOr<std::string> normal = NormalizeArtifactKey(key);
      if (!normal.ok() || *normal != key) continue;
      ObjectInfo info{std::move(key), 0, 0};
      info.bytes = std::strtoull(XmlText(contents, "Size").value_or("0").c_str(), nullptr, 10);
      info.modified_ms = ParseTimeMs(XmlText(contents, "LastModified").value_or(""), true);
      objects.push_back(std::move(info));
    }
    if (XmlText(response.body, "IsTruncated").value_or("false") != "true") break;
    std::string next = XmlText(response.body, "NextContinuationToken").value_or("");
    if (next.empty() || next == token) {
      return client_->Error(request, absl::StatusCode::kInternal,
                            "the listing is truncated but names no next page");
    }
    token = std::move(next);
  }
  std::sort(objects.begin(), objects.end(),
            [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
  return objects;
}

absl::Status S3Adapter::Delete(std::string_view key) {
  TF_ASSIGN_OR_RETURN(std::string normal, NormalizeArtifactKey(key));
  const std::string object = client_->ObjectName(normal);
  const S3Config& config = client_->config();
  if (config.write_once) {
    return absl::FailedPreconditionError(StrCat(
        "tier ", config.tier, " is an archive (write-once): '", normal, "' cannot be deleted"));
  }
  // S3 deletes missing keys without complaint; the interface says NotFound.
  TF_RETURN_IF_ERROR(client_->HeadObject("delete", normal, object).status());
  Request request{"delete", normal, "DELETE", object};
  return client_->Send(request).status();
}

absl::Status S3Adapter::PutFile(std::string_view key, const std::string& local_path) {
  TF_ASSIGN_OR_RETURN(std::string normal, NormalizeArtifactKey(key));
  const std::string object = client_->ObjectName(normal);
  return UploadFile(*client_, normal, object, local_path);
}

absl::Status S3Adapter::GetFile(std::string_view key, const std::string& local_path) {
  TF_ASSIGN_OR_RETURN(std::string normal, NormalizeArtifactKey(key));
  const std::string object = client_->ObjectName(normal);
  return DownloadFile(*client_, normal, object, local_path);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Adapter>> MakeS3Adapter(S3Config config) {
  TF_ASSIGN_OR_RETURN(std::unique_ptr<S3Client> client, S3Client::Make(std::move(config)));
  return std::unique_ptr<Adapter>(std::make_unique<S3Adapter>(std::move(client)));
}

absl::Status CreateS3Bucket(const S3Config& config) {
  TF_ASSIGN_OR_RETURN(std::unique_ptr<S3Client> client, S3Client::Make(config));
  return client->CreateBucket();
}

}  // namespace tierflow::storage
