#include "scheduler/mover.h"

#include <chrono>
#include <filesystem>
#include <system_error>
#include <utility>

#include "common/status.h"
#include "common/strings.h"

namespace tierflow::scheduler {

namespace fs = std::filesystem;

Mover::Mover(int threads, DoneCallback done) : done_(std::move(done)) {
  for (int i = 0; i < std::max(threads, 1); ++i) threads_.emplace_back([this] { Work(); });
}

Mover::~Mover() {
  DropQueued();
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& thread : threads_) thread.join();
}

void Mover::Submit(MoveJob job) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(job));
  }
  cv_.notify_one();
}

void Mover::DropQueued() {
  std::deque<MoveJob> dropped;
  {
    std::lock_guard lock(mu_);
    dropped.swap(queue_);
  }
  for (const MoveJob& job : dropped) {
    done_({job.kind,
           job.copy_id,
           absl::CancelledError("the run stopped before this copy began"),
           {},
           Duration(0)});
  }
}

void Mover::Work() {
  for (;;) {
    MoveJob job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    const auto start = std::chrono::steady_clock::now();
    MoveResult result;
    result.kind = job.kind;
    result.copy_id = job.copy_id;
    if (job.kind == MoveJob::Kind::kCopy && job.clear_first) {
      if (!job.posix_path.empty()) {
        std::error_code error;
        fs::remove_all(job.posix_path, error);
        if (error) {
          result.status = absl::InternalError(StrCat("cannot clear what an earlier copy left at ",
                                                     job.posix_path, ": ", error.message()));
        }
      } else if (absl::Status cleared = DeleteArtifact(*job.to, job.key);
                 !cleared.ok() && !absl::IsNotFound(cleared)) {
        result.status = cleared;
      }
    }
    if (!result.status.ok()) {
      // The target could not be cleared: no copy over its leftovers.
    } else if (job.kind == MoveJob::Kind::kRun) {
      absl::StatusOr<storage::TransferResult> done = job.run();
      if (done.ok()) {
        result.moved = *done;
      } else {
        result.status = done.status();
      }
    } else if (job.kind == MoveJob::Kind::kCopy) {
      absl::StatusOr<storage::TransferResult> moved =
          CopyArtifact(*job.from, job.key, *job.to, job.to_key.empty() ? job.key : job.to_key,
                       job.expected_hash);
      if (moved.ok()) {
        result.moved = *moved;
      } else {
        result.status = moved.status();
      }
    } else if (!job.posix_path.empty()) {
      std::error_code error;
      // A streamed copy's manifest and its reader's progress, beside it.
      storage::RemoveStreamFiles(job.posix_path);
      fs::remove_all(job.posix_path, error);
      if (error) {
        result.status =
            absl::InternalError(StrCat("cannot delete ", job.posix_path, ": ", error.message()));
      }
    } else {
      result.status = DeleteArtifact(*job.to, job.key);
    }
    result.elapsed = std::chrono::duration_cast<Duration>(std::chrono::steady_clock::now() - start);
    done_(std::move(result));
  }
}

}  // namespace tierflow::scheduler
