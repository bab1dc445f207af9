// What a watcher of a run (`tierflow submit --wait`, the server's WatchRun)
// shows of each task: its state, its attempt count, the worker of its
// latest attempt and its message. One query on the run's tasks, no attempt
// or artifact rows beyond the latest attempt's worker, so that a run of
// 10,000 tasks can be read a few times a second while it runs. Same
// contract as run_queries.h: runs on a Database the caller owns, leaves no
// statement open.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "scheduler/sqlite.h"
#include "scheduler/store.h"

namespace tierflow::scheduler {

struct WatchedTask {
  std::string id;
  TaskState state = TaskState::kPending;
  int64_t attempts = 0;
  std::string worker;  // of the latest attempt; "" before the first
  std::string message;
  bool operator==(const WatchedTask&) const = default;
};

// The tasks of `run_id` (an exact id) in plan order, as GetRunDetail orders
// them; empty for an unknown run.
absl::StatusOr<std::vector<WatchedTask>> ReadWatchedTasks(Database& db, const std::string& run_id);

}  // namespace tierflow::scheduler
