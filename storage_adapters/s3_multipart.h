// Writing objects to an s3 tier (s3.cc uses it): the multipart upload's
// requests, the streaming writer (S3Writer: one PUT for an object up to one
// part, else a multipart upload `parallel` parts at a time), and whole files
// sent as parallel parts. Every part's ETag is checked against the MD5 of
// what was sent and the completed object's against the parts'; any failure
// aborts the upload, so nothing partial ever becomes visible. An internal
// header. The functions are thread-safe; a writer is for one thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage_adapters/adapter.h"
#include "storage_adapters/s3_client.h"
#include "storage_adapters/s3_request.h"

namespace tierflow::storage::s3_internal {

struct Part {
  int number = 0;
  std::string etag;  // bare, as the server returned it
  std::string md5;   // raw, of what we sent
};

// `content_hash`: stored with the object as kHashHeader ("" for none).
absl::StatusOr<std::string> InitiateUpload(S3Client& client, const std::string& key,
                                           const std::string& object,
                                           const std::string& content_hash);
absl::StatusOr<Part> UploadPart(S3Client& client, const std::string& key, const std::string& object,
                                const std::string& upload_id, int number, const Body& body);
// Refuses on a write-once tier whose key appeared meanwhile; a reply lost
// after the upload completed is recognised by the object's ETag.
absl::Status CompleteUpload(S3Client& client, const std::string& key, const std::string& object,
                            const std::string& upload_id, std::vector<Part> parts);
// Best effort: the server expires abandoned uploads too.
void AbortUpload(S3Client& client, const std::string& key, const std::string& object,
                 const std::string& upload_id);

// The writer of `key` (its bucket name `object`); `client` must outlive it.
std::unique_ptr<ObjectWriter> MakeS3Writer(S3Client* client, std::string key, std::string object);

// Adapter::PutFile: `local_path` stored under `key` with its content hash.
absl::Status UploadFile(S3Client& client, const std::string& key, const std::string& object,
                        const std::string& local_path);

}  // namespace tierflow::storage::s3_internal
