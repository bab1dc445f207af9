// What a cluster worker would leave behind if it died (kill -9): its
// tasks' process groups (each task runs in a group of its own and outlives
// the worker) and the folders it made on its node tiers. The worker keeps
// them in a file of its own, one per cluster and worker name
// (STATE_DIR/CLUSTER.NAME.json), so the next worker of that name for that
// cluster finds exactly its predecessor's leftovers through what was
// recorded, and never touches what a worker of the same name serving
// another cluster runs or keeps on the same host.
//
// Thread-safe. The file is rewritten whole (temporary file, then rename) on
// each change and needs no fsync: the processes it records do not survive
// a reboot, and a folder lost from the record after a power cut stays on
// the node tier rather than someone else's being removed.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/node_tiers.h"

namespace tierflow::worker {

class WorkerState {
 public:
  // Opens STATE_DIR/CLUSTER.NAME.json (creating STATE_DIR, mode 0700) and
  // takes its lock file for as long as the object lives. AlreadyExists,
  // naming the pid, when a live worker of this name for this cluster holds
  // it on this host.
  static absl::StatusOr<std::unique_ptr<WorkerState>> Open(const std::string& state_dir,
                                                           const std::string& cluster_id,
                                                           const std::string& name);
  ~WorkerState();  // releases the lock (the file stays)
  WorkerState(const WorkerState&) = delete;
  WorkerState& operator=(const WorkerState&) = delete;

  // A task recorded by an earlier worker: its process group and the start
  // time of the group's leader (clock ticks since boot, /proc/PID/stat),
  // which tells it from a later process that got the same pid.
  struct Task {
    int64_t attempt_id = 0;
    pid_t pgid = 0;
    uint64_t start_ticks = 0;
  };
  // What the file holds now (at Open: what the predecessor left).
  std::vector<Task> Tasks() const;
  std::vector<NodeFolder> Folders() const;

  // SIGKILLs the recorded groups that are still those tasks' and forgets
  // them; returns how many it killed. A group whose leader has exited but
  // whose members live on is killed too: its id cannot have been reused
  // while it exists.
  int KillRecordedTasks();

  // The task of `attempt_id` runs as process group `pgid` (its leader's pid).
  void TaskStarted(int64_t attempt_id, pid_t pgid);
  void TaskEnded(int64_t attempt_id);
  // Recorded before the folder is made; forgotten once it is deleted.
  void FolderMade(const NodeFolder& folder);
  void FolderGone(const NodeFolder& folder);
  void ForgetFolders();

  // Nothing is left: deletes the file and the lock file.
  void Remove();

  const std::string& path() const { return path_; }

 private:
  WorkerState(std::string path, std::string lock_path, int lock_fd);
  void Load();
  void Save();  // mu_ held

  const std::string path_;
  const std::string lock_path_;
  int lock_fd_ = -1;
  mutable std::mutex mu_;
  std::map<int64_t, Task> tasks_;                          // guarded by mu_
  std::set<std::pair<std::string, std::string>> folders_;  // (root, key), guarded by mu_
};

// The start time of process `pid` in clock ticks since boot (field 22 of
// /proc/PID/stat); 0 when there is no such process.
uint64_t ProcessStartTicks(pid_t pid);

}  // namespace tierflow::worker
