#include "storage_adapters/s3_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <utility>

#include "common/status.h"
#include "common/strings.h"
#include "storage_adapters/fd.h"

namespace tierflow::storage::s3_internal {
namespace {

constexpr std::string_view kTempMarker = ".tierflow-tmp-";

std::string RandomHex() {
  static thread_local std::mt19937_64 random(std::random_device{}());
  char text[17];
  snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(random()));
  return text;
}

// Streams an object (or a range) in chunks of one part, one ranged GET
// each: memory stays at one chunk whatever the object's size.
class S3Reader final : public ObjectReader {
 public:
  S3Reader(S3Client* client, std::string key, std::string object, uint64_t offset,
           std::optional<uint64_t> length)
      : client_(client),
        key_(std::move(key)),
        object_(std::move(object)),
        next_(offset),
        left_(length) {}

  // Fetches the next chunk; at the end, leaves it empty.
  absl::Status Fill() {
    chunk_.clear();
    used_ = 0;
    uint64_t want = client_->config().part_size;
    if (left_) want = std::min(want, *left_);
    if (want == 0) {
      done_ = true;
      return absl::OkStatus();
    }
    Sink sink = [this](uint64_t position, std::string_view data) {
      chunk_.resize(static_cast<size_t>(position));  // a retry starts again at 0
      chunk_.append(data);
      return absl::OkStatus();
    };
    TF_ASSIGN_OR_RETURN(RangeReply reply, client_->GetRange(key_, object_, next_, want, sink));
    if (reply.beyond_end) {
      chunk_.clear();
      done_ = true;
      return absl::OkStatus();
    }
    if (!etag_.empty() && reply.etag != etag_) {
      return absl::AbortedError(StrCat("tier ", client_->config().tier, ": '", key_,
                                       "' was replaced while it was read; read it again"));
    }
    etag_ = reply.etag;
    next_ += chunk_.size();
    if (left_) *left_ -= chunk_.size();
    if (chunk_.size() < want || next_ >= reply.total) done_ = true;
    return absl::OkStatus();
  }

  absl::StatusOr<size_t> Read(std::span<char> buffer) override {
    if (buffer.empty()) return 0;
    if (used_ == chunk_.size()) {
      if (done_) return 0;
      TF_RETURN_IF_ERROR(Fill());
      if (chunk_.empty()) return 0;
    }
    const size_t n = std::min(buffer.size(), chunk_.size() - used_);
    std::memcpy(buffer.data(), chunk_.data() + used_, n);
    used_ += n;
    return n;
  }

 private:
  S3Client* client_;
  std::string key_;
  std::string object_;
  uint64_t next_;                 // where the next chunk starts
  std::optional<uint64_t> left_;  // bytes of the range not yet fetched
  std::string chunk_;
  size_t used_ = 0;
  bool done_ = false;
  std::string etag_;  // of the first chunk: all must come from one object
};

}  // namespace

uint64_t DownloadRangeBytes(uint64_t object_bytes, uint64_t part_size, int parallel) {
  const uint64_t streams = static_cast<uint64_t>(std::max(parallel, 1));
  const uint64_t even = (object_bytes + streams - 1) / streams;
  return std::max(part_size, std::min(even, kMaxDownloadRange));
}

absl::StatusOr<std::unique_ptr<ObjectReader>> OpenS3Reader(S3Client* client, std::string key,
                                                           std::string object, uint64_t offset,
                                                           std::optional<uint64_t> length) {
  // The first chunk now, so that a missing object is an error here (an
  // empty range fetches nothing: ask whether the object is there).
  if (length == 0) TF_RETURN_IF_ERROR(client->HeadObject("read", key, object).status());
  auto reader =
      std::make_unique<S3Reader>(client, std::move(key), std::move(object), offset, length);
  TF_RETURN_IF_ERROR(reader->Fill());
  return std::unique_ptr<ObjectReader>(std::move(reader));
}

absl::Status DownloadFile(S3Client& client, const std::string& normal, const std::string& object,
                          const std::string& local_path) {
  const S3Config& config = client.config();
  TF_ASSIGN_OR_RETURN(Head head, client.HeadObject("read", normal, object));

  std::error_code ignored;
  std::filesystem::create_directories(std::filesystem::path(local_path).parent_path(), ignored);
  const std::string temp = StrCat(local_path, kTempMarker, RandomHex());
  Fd out(open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (out.get() < 0) {
    return absl::PermissionDeniedError(StrCat("cannot write ", temp, ": ", ErrnoText(errno)));
  }
  const uint64_t step = DownloadRangeBytes(head.bytes, config.part_size, config.parallel);
  const uint64_t count = (head.bytes + step - 1) / step;
  absl::Status status = RunParallel(count, config.parallel, [&](uint64_t index) {
    const uint64_t offset = index * step;
    const uint64_t length = std::min(step, head.bytes - offset);
    Sink sink = [&](uint64_t position, std::string_view data) -> absl::Status {
      while (!data.empty()) {
        const ssize_t n =
            pwrite(out.get(), data.data(), data.size(), static_cast<off_t>(offset + position));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          const absl::StatusCode code = errno == ENOSPC || errno == EDQUOT
                                            ? absl::StatusCode::kResourceExhausted
                                            : absl::StatusCode::kInternal;
          return absl::Status(code, StrCat("cannot write ", temp, ": ", ErrnoText(errno)));
        }
        data.remove_prefix(static_cast<size_t>(n));
        position += static_cast<uint64_t>(n);
      }
      return absl::OkStatus();
    };
    TF_ASSIGN_OR_RETURN(RangeReply reply, client.GetRange(normal, object, offset, length, sink));
    if (reply.beyond_end || reply.bytes != length || reply.etag != head.etag) {
      return absl::AbortedError(StrCat("tier ", config.tier, ": '", normal,
                                       "' changed while it was downloaded; try again"));
    }
    return absl::OkStatus();
  });
  if (status.ok() && rename(temp.c_str(), local_path.c_str()) != 0) {
    status = absl::InternalError(
        StrCat("cannot rename ", temp, " to ", local_path, ": ", ErrnoText(errno)));
  }
  if (!status.ok()) unlink(temp.c_str());
  return status;
}

}  // namespace tierflow::storage::s3_internal
