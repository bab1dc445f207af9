// The live display's view of one run (`tierflow run`/`resume` and `tierflow
// watch`): a reader that keeps the store open read-only and takes snapshots
// of the run's progress (scheduler/progress_queries.h), timing each one so
// the caller can poll at a pace the store affords. Not thread-safe: one
// thread polls.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "scheduler/progress_queries.h"

namespace tierflow::api {

using scheduler::CopyInFlight;
using scheduler::EngineStatus;
using scheduler::ProgressLimits;
using scheduler::RunningTask;
using scheduler::RunProgress;
using scheduler::StageProgress;

class ProgressReader {
 public:
  // Opens the store `db` (a --db flag) read-only and finds `run` (an id, or
  // last/latest). NotFound naming the store or the run.
  static absl::StatusOr<std::unique_ptr<ProgressReader>> Open(const std::string& db,
                                                              const std::string& run);
  ~ProgressReader();

  const std::string& run_id() const { return run_id_; }
  absl::StatusOr<RunProgress> Read(const ProgressLimits& limits = {});
  // How long the last Read took.
  std::chrono::microseconds last_read() const { return last_read_; }
  // Task time per stage (attempts that ran), ms: the end summary's TASK TIME.
  absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> StageBusyMs();

 private:
  ProgressReader(std::unique_ptr<scheduler::Database> db, std::string run_id);
  std::unique_ptr<scheduler::Database> db_;
  std::string run_id_;
  std::chrono::microseconds last_read_{0};
};

}  // namespace tierflow::api
