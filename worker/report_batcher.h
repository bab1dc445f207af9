// How a remote worker's task reports reach `tierflow server`: a STARTED
// report is held (up to the next Flush, every 50 ms from the session's
// heartbeat thread) and travels with whatever is sent next, so that a
// short task's start and end cross the stream as one message (a
// ReportBatch, rpc/tierflow.proto) instead of two. The engine records a
// start within 100 ms anyway (scheduler/turn_loop.h kStartedFlush); a
// final report is never held. Reports go out in the order they were added.
// With a server that takes no batches (older than them), every report is
// sent alone at once, as before. Thread-safe.
#pragma once

#include <functional>
#include <mutex>
#include <vector>

#include "common/task.h"
#include "rpc/tierflow.pb.h"

namespace tierflow::worker {

class ReportBatcher {
 public:
  // `send` writes one message on the stream (false: the stream is gone).
  using Send = std::function<bool(const v1::WorkerMessage&)>;
  ReportBatcher(Send send, bool batches);
  // Holds a start; sends anything else at once, with the starts held.
  void Add(const TaskReport& report);
  // Sends the starts held, if any.
  void Flush();

 private:
  void SendHeld(v1::TaskReport* last);  // mu_ held
  const Send send_;
  const bool batches_;
  std::mutex mu_;                     // held while sending: batches leave in the order of Add
  std::vector<v1::TaskReport> held_;  // guarded by mu_
};

}  // namespace tierflow::worker
