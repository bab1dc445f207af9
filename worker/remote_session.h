// The remote worker (`tierflow worker`, DESIGN.md "Modes" 2): one session
// per connection to `tierflow server` over rpc/: it registers, kills the
// tasks and clears the node-tier folders an earlier worker of its name for
// that cluster left behind (worker/worker_state.h), runs what it is leased
// on its own local pool (staging inputs onto its node tiers and relaying
// checkpoints first), reports each attempt and sends heartbeats; when the
// connection ends it stops every task it started and reconnects with
// backoff. RunWorker blocks its caller; it may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <ostream>
#include <string>

#include "absl/status/status.h"

namespace tierflow::worker {

struct WorkerOptions {
  std::string scheduler;  // HOST:PORT
  std::string token;
  std::string name;     // "" : HOST:PID
  int slots = 0;        // 0: CPUs
  double cpus = 0;      // 0: CPUs
  uint64_t memory = 0;  // bytes; 0: the machine's memory
  uint32_t gpus = 0;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> tiers;  // node tier name -> path
  // Its own folder: what it must find again if it dies (its tasks' process
  // groups, the folders it made on node tiers), one file per cluster and
  // worker name (worker/worker_state.h).
  std::string state_dir = ".tierflow/workers";
};

// Connects, registers and runs leased tasks until `stop` becomes true or
// the server refuses it (wrong token); reconnects after a lost connection.
absl::Status RunWorker(const WorkerOptions& options, const std::atomic<bool>& stop,
                       std::ostream& log);

}  // namespace tierflow::worker
