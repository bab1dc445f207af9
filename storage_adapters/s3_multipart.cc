#include "storage_adapters/s3_multipart.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "common/status.h"
#include "common/strings.h"
#include "storage_adapters/content_hash.h"
#include "storage_adapters/fd.h"
#include "storage_adapters/s3_wire.h"

namespace tierflow::storage::s3_internal {
namespace {

// The largest part PutFile picks itself.
constexpr uint64_t kMaxAutoPartSize = uint64_t{1} << 30;

// Buffers one part; when it fills, starts a multipart upload (once) and
// sends the part from a thread of its own, so that up to `parallel` parts
// (the one being filled included) are in memory at once. Commit sends a
// small object in one PUT, or completes the upload; any failure, and a
// writer destroyed before Commit, aborts the upload. The object's content
// hash goes with it as metadata: a small object's is computed from its
// bytes; a multipart upload's must be known when it starts, from the hash
// source (SetContentHashSource), and is checked against the bytes written
// before the upload completes. Without a source, a large object is stored
// without one (readers then check it only as part of its artifact).
class S3Writer final : public ObjectWriter {
 public:
  S3Writer(S3Client* client, std::string key, std::string object)
      : client_(client), key_(std::move(key)), object_(std::move(object)) {}

  ~S3Writer() override {
    JoinAll();
    if (!finished_ && !upload_id_.empty()) AbortUpload(*client_, key_, object_, upload_id_);
  }

  void SetContentHashSource(std::function<absl::StatusOr<std::string>()> source) override {
    hash_source_ = std::move(source);
  }

  absl::Status Write(std::string_view data) override {
    if (finished_) return Finished();
    TF_RETURN_IF_ERROR(Failure());
    hasher_.Update(data);
    const uint64_t part_size = client_->config().part_size;
    while (!data.empty()) {
      const size_t n =
          static_cast<size_t>(std::min<uint64_t>(data.size(), part_size - buffer_.size()));
      if (buffer_.size() + n > buffer_.capacity()) {
        // Grow as usual, but never past one part.
        buffer_.reserve(static_cast<size_t>(std::min<uint64_t>(
            part_size, std::max<uint64_t>(2 * buffer_.capacity(), buffer_.size() + n))));
      }
      buffer_.append(data.substr(0, n));
      data.remove_prefix(n);
      if (buffer_.size() < part_size) continue;
      if (absl::Status status = SendPart(); !status.ok()) {
        Fail(status);
        return status;
      }
    }
    return absl::OkStatus();
  }

  absl::Status Commit() override {
    if (finished_) return Finished();
    absl::Status status = Failure();
    if (status.ok()) status = CommitParts();
    JoinAll();
    if (!status.ok() && !upload_id_.empty()) AbortUpload(*client_, key_, object_, upload_id_);
    finished_ = true;
    buffer_ = std::string();
    return status;
  }

 private:
  absl::Status CommitParts() {
    const std::string written = hasher_.Finish();
    if (upload_id_.empty()) {
      return client_->PutObject(key_, object_, MemoryBody(buffer_), written);
    }
    if (!buffer_.empty()) TF_RETURN_IF_ERROR(SendPart());
    JoinAll();
    TF_RETURN_IF_ERROR(Failure());
    if (!declared_hash_.empty() && declared_hash_ != written) {
      return absl::DataLossError(StrCat("tier ", client_->config().tier, ": '", key_,
                                        "' was declared with content hash ", declared_hash_,
                                        " but the bytes written hash to ", written,
                                        " (its source changed while it was copied)"));
    }
    std::vector<Part> parts;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      parts = parts_;
    }
    return CompleteUpload(*client_, key_, object_, upload_id_, std::move(parts));
  }

  absl::Status SendPart() {
    if (upload_id_.empty()) {
      if (hash_source_) {
        absl::StatusOr<std::string> hash = hash_source_();
        // Without it the object is still checked, as part of its artifact.
        if (hash.ok()) declared_hash_ = *hash;
      }
      TF_ASSIGN_OR_RETURN(upload_id_, InitiateUpload(*client_, key_, object_, declared_hash_));
    }
    if (static_cast<uint64_t>(next_part_) > kMaxParts) {
      return absl::ResourceExhaustedError(
          StrCat("tier ", client_->config().tier, ": '", key_, "' is larger than ", kMaxParts,
                 " parts of ", client_->config().part_size, " bytes; raise the part size"));
    }
    in_flight_.emplace_back([this, number = next_part_++, part = std::move(buffer_)] {
      absl::StatusOr<Part> sent =
          UploadPart(*client_, key_, object_, upload_id_, number, MemoryBody(part));
      if (!sent.ok()) return Fail(sent.status());
      std::lock_guard<std::mutex> lock(mutex_);
      parts_.push_back(*std::move(sent));
    });
    buffer_ = std::string();
    while (in_flight_.size() >= static_cast<size_t>(client_->config().parallel)) {
      in_flight_.front().join();
      in_flight_.pop_front();
    }
    return Failure();
  }

  void JoinAll() {
    for (std::thread& thread : in_flight_) thread.join();
    in_flight_.clear();
  }

  absl::Status Failure() {
    std::lock_guard<std::mutex> lock(mutex_);
    return failure_;
  }
  // Remembers the first failure: every later call reports it.
  void Fail(const absl::Status& status) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (failure_.ok()) failure_ = status;
  }

  absl::Status Finished() const {
    return absl::FailedPreconditionError(StrCat(
        "tier ", client_->config().tier, ": the writer of '", key_, "' has already committed"));
  }

  S3Client* client_;
  const std::string key_;
  const std::string object_;
  std::string buffer_;     // the part being filled
  std::string upload_id_;  // once the first part is full
  ContentHasher hasher_;   // of every byte written
  std::function<absl::StatusOr<std::string>()> hash_source_;
  std::string declared_hash_;  // the multipart upload's metadata
  int next_part_ = 1;
  std::deque<std::thread> in_flight_;
  bool finished_ = false;
  std::mutex mutex_;
  std::vector<Part> parts_ ABSL_GUARDED_BY(mutex_);
  absl::Status failure_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace

absl::StatusOr<std::string> InitiateUpload(S3Client& client, const std::string& key,
                                           const std::string& object,
                                           const std::string& content_hash) {
  Request request{"write", key, "POST", object, {{"uploads", ""}}};
  if (!content_hash.empty()) request.headers.emplace_back(kHashHeader, content_hash);
  TF_ASSIGN_OR_RETURN(Response response, client.Send(request));
  std::optional<std::string> id = XmlText(response.body, "UploadId");
  if (!id || id->empty()) {
    return client.Error(request, absl::StatusCode::kInternal,
                        "the reply to starting a multipart upload has no UploadId");
  }
  return *id;
}

absl::StatusOr<Part> UploadPart(S3Client& client, const std::string& key, const std::string& object,
                                const std::string& upload_id, int number, const Body& body) {
  Request request{"write",
                  key,
                  "PUT",
                  object,
                  {{"partNumber", std::to_string(number)}, {"uploadId", upload_id}}};
  request.what = StrCat("write part ", number, " of");
  request.body = body;
  TF_ASSIGN_OR_RETURN(Response response, client.Send(request));
  Part part{number, BareEtag(response.Header("etag")),
            body.md5_while_sending ? response.sent_md5 : body.md5};
  if (part.md5.empty()) {
    return client.Error(request, absl::StatusCode::kDataLoss,
                        "the part was not sent whole in order, so its MD5 is unknown");
  }
  if (EtagIsMd5(response) && part.etag != HexEncode(part.md5)) {
    return client.Error(request, absl::StatusCode::kDataLoss,
                        StrCat("the server stored something else: its ETag ", part.etag,
                               " is not the MD5 of what was sent, ", HexEncode(part.md5)));
  }
  return part;
}

absl::Status CompleteUpload(S3Client& client, const std::string& key, const std::string& object,
                            const std::string& upload_id, std::vector<Part> parts) {
  std::sort(parts.begin(), parts.end(),
            [](const Part& a, const Part& b) { return a.number < b.number; });
  std::string xml = "<CompleteMultipartUpload>";
  Digest md5s(Digest::Kind::kMd5);
  for (const Part& part : parts) {
    xml += StrCat("<Part><PartNumber>", part.number, "</PartNumber><ETag>&quot;",
                  XmlEscape(part.etag), "&quot;</ETag></Part>");
    md5s.Update(part.md5);
  }
  xml += "</CompleteMultipartUpload>";
  // S3's ETag of a multipart object: the MD5 of the parts' MD5s, "-", count.
  const std::string expected = StrCat(HexEncode(md5s.Finish()), "-", parts.size());
  TF_RETURN_IF_ERROR(client.RefuseOverwrite(key, object));

  Request request{"write", key, "POST", object, {{"uploadId", upload_id}}};
  request.headers = {{"content-type", "application/xml"}};
  request.body = MemoryBody(xml);
  absl::StatusOr<Response> response;
  const auto started = std::chrono::steady_clock::now();
  for (int attempt = 1;; ++attempt) {
    response = client.Send(request);
    if (absl::IsNotFound(response.status())) {
      // An earlier attempt may have completed it and lost the reply: the
      // object is ours if it carries the ETag of these parts.
      absl::StatusOr<Head> head = client.HeadObject("write", key, object);
      if (head.ok() && head->etag == expected) return absl::OkStatus();
    }
    if (!response.ok()) return response.status();
    // Completing can fail after the 200 has been sent: the error is the body.
    if (response->body.find("<Error>") == std::string::npos) break;
    const std::string code = XmlText(response->body, "Code").value_or("");
    S3Client::Attempt failed;
    failed.response = *response;
    failed.response.status = 400;
    if (code == "InternalError" || code == "SlowDown" || code == "ServiceUnavailable") {
      failed.response.status = 503;
      const std::chrono::milliseconds wait = client.Backoff(attempt - 1);
      if (std::chrono::steady_clock::now() - started + wait <= client.config().timing.budget) {
        if (!client.RetryAfter(client.Failure(request, failed, attempt), attempt, wait)) {
          return client.Error(request, absl::StatusCode::kCancelled, "the transfer was cancelled");
        }
        continue;
      }
    }
    if (code == "EntityTooLarge" || code == "QuotaExceeded") failed.response.status = 507;
    return client.Failure(request, failed, attempt);
  }
  const std::string etag = BareEtag(XmlText(response->body, "ETag").value_or(""));
  if (etag.find('-') != std::string::npos && etag != expected) {
    return client.Error(request, absl::StatusCode::kDataLoss,
                        StrCat("the server assembled something else: its ETag ", etag,
                               " is not the one of the parts sent, ", expected));
  }
  return absl::OkStatus();
}

void AbortUpload(S3Client& client, const std::string& key, const std::string& object,
                 const std::string& upload_id) {
  Request request{"abort the upload of", key, "DELETE", object, {{"uploadId", upload_id}}};
  (void)client.Send(request);  // best effort: the server expires abandoned uploads too
}

std::unique_ptr<ObjectWriter> MakeS3Writer(S3Client* client, std::string key, std::string object) {
  return std::make_unique<S3Writer>(client, std::move(key), std::move(object));
}

absl::Status UploadFile(S3Client& client, const std::string& normal, const std::string& object,
                        const std::string& local_path) {
  const S3Config& config = client.config();
  TF_RETURN_IF_ERROR(client.RefuseOverwrite(normal, object));
  Fd file(open(local_path.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat info {};
  if (file.get() < 0 || fstat(file.get(), &info) != 0) {
    return absl::NotFoundError(StrCat("cannot read ", local_path, ": ", ErrnoText(errno)));
  }
  if (!S_ISREG(info.st_mode)) {
    return absl::InvalidArgumentError(StrCat(local_path, " is not a file"));
  }
  const uint64_t size = static_cast<uint64_t>(info.st_size);
  std::string content_hash;
  if (size <= config.part_size) {
    TF_ASSIGN_OR_RETURN(Body body, FileBody(file.get(), 0, size, &content_hash));
    return client.PutObject(normal, object, body, content_hash);
  }
  // A multipart upload's metadata is set when it starts: the whole file is
  // hashed first (one more read of it, from the page cache at best).
  TF_ASSIGN_OR_RETURN(content_hash, HashFileRange(file.get(), size));

  // One part per stream, of at least part_size and at most 1 GiB (a
  // retry sends a part again): every part costs a request and, on the
  // server, an object of its own (with Swift, 8 MiB parts made a 256 MiB
  // upload 20% slower than 64 MiB ones, bench/README.md); never more than
  // S3's 10000 parts.
  const uint64_t streams = static_cast<uint64_t>(std::max(config.parallel, 1));
  uint64_t part_size = std::max(config.part_size, (size + streams - 1) / streams);
  part_size = std::min<uint64_t>(part_size, kMaxAutoPartSize);
  part_size = std::max(part_size, (size + kMaxParts - 1) / kMaxParts);
  part_size = std::min<uint64_t>((part_size + kMiB - 1) / kMiB * kMiB, kMaxPartSize);
  const uint64_t count = (size + part_size - 1) / part_size;
  TF_ASSIGN_OR_RETURN(std::string upload_id, InitiateUpload(client, normal, object, content_hash));
  std::vector<Part> parts(count);
  absl::Status status = RunParallel(count, config.parallel, [&](uint64_t index) {
    const uint64_t offset = index * part_size;
    const Body body = FilePartBody(file.get(), offset, std::min(part_size, size - offset));
    TF_ASSIGN_OR_RETURN(parts[index], UploadPart(client, normal, object, upload_id,
                                                 static_cast<int>(index + 1), body));
    return absl::OkStatus();
  });
  if (status.ok()) status = CompleteUpload(client, normal, object, upload_id, std::move(parts));
  if (!status.ok()) AbortUpload(client, normal, object, upload_id);
  return status;
}

}  // namespace tierflow::storage::s3_internal
