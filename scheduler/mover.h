// The engine's data mover: copies artifacts between tiers (prefetch to a
// consumer's working tier, write-back to the home tier) and deletes evicted
// working copies, on threads of its own, so that the engine's loop never
// waits on storage. The engine records every job in the store before it
// submits it, and applies each result in a turn of its own.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/units.h"
#include "storage_adapters/adapter.h"
#include "storage_adapters/transfer.h"

namespace tierflow::scheduler {

struct MoveJob {
  // kRun: `run` does the work (a checkpoint's flush, restore or removal).
  enum class Kind { kCopy, kDelete, kRun };
  Kind kind = Kind::kCopy;
  int64_t copy_id = 0;               // the artifact_copies row it makes or removes
  storage::Adapter* from = nullptr;  // kCopy: the source tier
  storage::Adapter* to = nullptr;    // kCopy: the target tier; kDelete: the tier to delete on
  std::string key;                   // the artifact's key, the same on every tier
  // kDelete on a posix tier: the artifact's path (root/key), removed whole,
  // folders included; kCopy: where the target is, on a posix target.
  std::string posix_path;
  // kCopy: an earlier copy to the target failed or was interrupted; remove
  // what it left (a tree's finished files, unfinished temporaries) first.
  bool clear_first = false;
  // kCopy: the key on `to`, when not `key` (a cached output restored from
  // an earlier run into this one's staging).
  std::string to_key;
  std::function<absl::StatusOr<storage::TransferResult>()> run;  // kRun
  // kCopy: the artifact's recorded hash, that a copy from a remote store
  // must match (storage::CopyArtifact).
  std::string expected_hash = {};
};

struct MoveResult {
  MoveJob::Kind kind = MoveJob::Kind::kCopy;
  int64_t copy_id = 0;
  absl::Status status;  // Cancelled for a job dropped before it started
  storage::TransferResult moved;
  Duration elapsed{0};
  // A streamed copy (kRun) says so once its first file is there, before its
  // final result; the job goes on.
  bool started = false;
};

class Mover {
 public:
  using DoneCallback = std::function<void(MoveResult)>;
  // `done` is called on a mover thread for every submitted job, once.
  Mover(int threads, DoneCallback done);
  // Drops the jobs not yet started (reporting them Cancelled) and waits for
  // the ones under way.
  ~Mover();
  Mover(const Mover&) = delete;
  Mover& operator=(const Mover&) = delete;

  void Submit(MoveJob job);
  // Reports every job not yet started as Cancelled, now.
  void DropQueued();

 private:
  void Work();

  DoneCallback done_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<MoveJob> queue_;  // guarded by mu_
  bool stopping_ = false;      // guarded by mu_
  std::vector<std::thread> threads_;
};

// Whole artifacts, file or tree (storage_adapters/transfer.h).
using storage::ArtifactExists;
using storage::CopyArtifact;
using storage::DeleteArtifact;

}  // namespace tierflow::scheduler
