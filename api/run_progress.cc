// ProgressReader (run_progress.h).
#include "api/run_progress.h"

#include "api/internal/run_render.h"
#include "common/status.h"

namespace tierflow::api {

absl::StatusOr<std::unique_ptr<ProgressReader>> ProgressReader::Open(const std::string& db,
                                                                     const std::string& run) {
  TF_ASSIGN_OR_RETURN(std::unique_ptr<scheduler::Database> store, OpenReadOnly(db));
  TF_ASSIGN_OR_RETURN(std::string run_id, scheduler::ResolveRunId(*store, run));
  return std::unique_ptr<ProgressReader>(new ProgressReader(std::move(store), std::move(run_id)));
}

ProgressReader::ProgressReader(std::unique_ptr<scheduler::Database> db, std::string run_id)
    : db_(std::move(db)), run_id_(std::move(run_id)) {}

ProgressReader::~ProgressReader() = default;

absl::StatusOr<RunProgress> ProgressReader::Read(const ProgressLimits& limits) {
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<RunProgress> progress = scheduler::GetRunProgress(*db_, run_id_, limits);
  last_read_ = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - start);
  return progress;
}

absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> ProgressReader::StageBusyMs() {
  return scheduler::StageBusyMs(*db_, run_id_);
}

}  // namespace tierflow::api
