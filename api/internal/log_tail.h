// Tail: reads a growing log file from where it left off, for `tierflow
// logs -f` (log_follow.cc) and the logs of a whole run (run_logs.cc). Private
// to api/. One Tail per reader; not shared between threads.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ostream>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "api/internal/run_render.h"
#include "common/strings.h"

namespace tierflow::api {

// Reads a growing file from where it left off.
class Tail {
 public:
  explicit Tail(std::string path) : path_(std::move(path)) {}
  ~Tail() {
    if (fd_ >= 0) close(fd_);
  }
  Tail(const Tail&) = delete;
  Tail& operator=(const Tail&) = delete;

  const std::string& path() const { return path_; }
  bool open() const { return fd_ >= 0; }

  // Opens the file if it exists now; errors other than "not there yet".
  absl::Status TryOpen() {
    if (fd_ >= 0) return absl::OkStatus();
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ >= 0 || errno == ENOENT) return absl::OkStatus();
    return absl::PermissionDeniedError(
        StrCat("cannot read the log ", path_, ": ", std::strerror(errno)));
  }

  // Copies what was appended since the last call to `out`.
  absl::Status Drain(std::ostream& out) {
    if (fd_ < 0) return absl::OkStatus();
    struct stat info;
    // A log rewritten from the start (truncated) is read again from there.
    if (fstat(fd_, &info) == 0 && info.st_size < offset_) {
      offset_ = 0;
    }
    char buffer[1 << 16];
    for (;;) {
      const ssize_t n = pread(fd_, buffer, sizeof buffer, offset_);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        return absl::DataLossError(
            StrCat("cannot read the log ", path_, ": ", std::strerror(errno)));
      }
      if (n == 0) break;
      out.write(buffer, n);
      offset_ += n;
    }
    out.flush();
    if (!out) return absl::UnavailableError("the output was closed");
    return absl::OkStatus();
  }

 private:
  std::string path_;
  int fd_ = -1;
  off_t offset_ = 0;
};

// A cached attempt ran nothing: the log worth showing is that of the
// attempt whose outputs it reused (following the chain, boundedly), which
// `notes` is told. NotFound when there is no log (log_follow.cc).
absl::StatusOr<AttemptRow> AttemptWithLog(Database& db, AttemptRow attempt, std::ostream& notes);

// The run's state and engine (scheduler::GetRunStatus), read again when
// its engine looks gone: an engine that just ended the run is not gone.
absl::StatusOr<scheduler::RunStatus> SettledRunStatus(Database& db, const std::string& run_id);

}  // namespace tierflow::api
