#include "scheduler/mover.h"

#include <chrono>
#include <system_error>
#include <utility>

#include "common/status.h"
#include "common/strings.h"
#include "storage_adapters/posix.h"
#include "storage_adapters/tier_root.h"

namespace tierflow::scheduler {

namespace {

// What RemoveUnderRoot removes besides `path`.
enum class AlsoRemove : uint8_t {
  // What a copy that a crash cut off left beside `path`: the temporary
  // files of its unfinished writes (among the items a gathered folder's
  // readers list). Lists the folder: only before a copy is made again.
  kUnfinishedWrites,
  // A streamed copy's manifest and its reader's progress beside `path`
  // (eviction of a finished copy: no folder listing on this path).
  kStreamFiles,
};

// Removes `path` (file or tree) on the posix tier `tier`, through its root:
// a symlink beneath the root is unlinked, never followed, and no mount is
// crossed (storage_adapters/tier_root.h).
absl::Status RemoveUnderRoot(const storage::Adapter& tier, const std::string& path,
                             AlsoRemove also) {
  const std::shared_ptr<const storage::TierRoot> root = storage::PosixTierRoot(tier);
  if (root == nullptr) return absl::InternalError("not a posix tier");
  if (also == AlsoRemove::kUnfinishedWrites) return root->RemoveWithUnfinishedWrites(path);
  TF_RETURN_IF_ERROR(storage::RemoveStreamFiles(*root, path));
  return root->RemoveTree(path);
}

}  // namespace

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
        if (absl::Status cleared =
                RemoveUnderRoot(*job.to, job.posix_path, AlsoRemove::kUnfinishedWrites);
            !cleared.ok()) {
          result.status =
              absl::Status(cleared.code(), StrCat("cannot clear what an earlier copy left at ",
                                                  job.posix_path, ": ", cleared.message()));
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
      if (absl::Status removed = RemoveUnderRoot(*job.to, job.posix_path, AlsoRemove::kStreamFiles);
          !removed.ok()) {
        result.status = absl::Status(
            removed.code(), StrCat("cannot delete ", job.posix_path, ": ", removed.message()));
      }
    } else {
      result.status = DeleteArtifact(*job.to, job.key);
    }
    result.elapsed = std::chrono::duration_cast<Duration>(std::chrono::steady_clock::now() - start);
    done_(std::move(result));
  }
}

}  // namespace tierflow::scheduler
