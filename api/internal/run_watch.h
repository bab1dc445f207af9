// The server's WatchRun asked for changes only (rpc/tierflow.proto
// GetRunRequest.changes_only): the whole run first, then, each time any of
// it changes, the run's own fields with only the tasks that changed. It
// reads the store through scheduler/watch_queries.h (one light query a
// poll) on one connection for the watch's life, instead of the run's whole
// detail, so that watching a run of 10,000 tasks costs the server little
// beside the run itself. Runs on the calling gRPC handler's thread.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "rpc/tierflow.pb.h"

namespace tierflow::scheduler {
struct RunSummary;
}  // namespace tierflow::scheduler

namespace tierflow::api::internal {

// The run's own fields (id, pipeline, state, times, message, task counts),
// as ListRuns and WatchRun's whole runs carry them.
void SetRunFields(const scheduler::RunSummary& summary, v1::Run& out);

// Why the engine driving `run_id` stopped at or after `since_ms`, if it did.
using StoppedSince =
    std::function<std::optional<std::string>(const std::string& run_id, int64_t since_ms)>;

// Polls every `interval` until the run ends, the client goes, or the
// engine driving the run stops (ABORTED, saying why).
grpc::Status WatchRunChanges(const std::string& db_path, const std::string& run,
                             grpc::ServerContext& context, grpc::ServerWriter<v1::Run>& writer,
                             const StoppedSince& stopped_since, std::chrono::milliseconds interval);

}  // namespace tierflow::api::internal
