// The embedded mode's worker: runs tasks as local subprocesses, each in its
// own process group. One event thread waits on every child at once (pidfd +
// epoll) and on their deadlines, so the pool costs no thread per task and
// never polls; a small thread pool hashes and publishes outputs so a large
// artifact never delays the reaping of other tasks. The scheduler decides
// how many tasks run at once; the pool runs what it is given. Task
// timeouts and the kill grace are on an injected clock (a FakeClock that
// is advanced wakes the event thread); the I/O samples are on real time.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/task.h"

namespace tierflow::worker {

struct LocalPoolOptions {
  // Threads that hash and publish outputs (and materialise cache hits).
  int finisher_threads = 2;
  // What task timeouts and the kill grace are timed on; outlives the pool.
  const Clock* clock = &SystemClock();
};

// Starts the pool's threads. The destructor kills every task still running
// (KILL to each process group) and joins the threads; no report is
// delivered after it returns.
absl::StatusOr<std::unique_ptr<Executor>> StartLocalPool(Executor::ReportCallback on_report,
                                                         const LocalPoolOptions& options = {});

}  // namespace tierflow::worker
