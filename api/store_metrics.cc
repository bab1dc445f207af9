// /metrics (http_api.h RenderMetrics): what the state store holds, read at
// scrape time through scheduler/api_queries.h ReadStoreStats and written as
// Prometheus families, followed by what an engine in this process records
// (metrics::Default()). Stateless; safe from any thread.
#include <algorithm>
#include <memory>
#include <string>

#include "api/http_api.h"
#include "api/internal/http_json.h"
#include "api/internal/run_render.h"
#include "common/metrics.h"
#include "common/status.h"
#include "scheduler/api_queries.h"
#include "scheduler/store.h"

namespace tierflow::api {
namespace {

using scheduler::RunState;
using scheduler::StoreStats;
using scheduler::TaskState;

constexpr RunState kRunStates[] = {RunState::kRunning, RunState::kSucceeded, RunState::kFailed,
                                   RunState::kCancelled};
constexpr TaskState kTaskStates[] = {
    TaskState::kPending,  TaskState::kQueued,         TaskState::kRunning,
    TaskState::kRetrying, TaskState::kSucceeded,      TaskState::kCached,
    TaskState::kFailed,   TaskState::kUpstreamFailed, TaskState::kCancelled,
};

// What the store holds, measured at scrape time.
absl::Status StoreMetrics(scheduler::Database& db, metrics::Registry& registry) {
  TF_ASSIGN_OR_RETURN(StoreStats stats, scheduler::ReadStoreStats(db));

  metrics::Family<metrics::Gauge>& runs =
      registry.AddGauge("tierflow_runs", "Runs in the state store by state.", {"state"});
  for (RunState state : kRunStates) runs.With({StateWord(state)});
  for (const auto& [state, count] : stats.runs) {
    runs.With({StateWord(state)}).Set(static_cast<double>(count));
  }

  metrics::Family<metrics::Gauge>& tasks = registry.AddGauge(
      "tierflow_tasks", "Tasks in the state store (every run) by state and stage kind.",
      {"state", "kind"});
  for (const std::string& kind : stats.task_kinds) {
    for (TaskState state : kTaskStates) tasks.With({StateWord(state), kind});
  }
  for (const StoreStats::TaskCount& count : stats.tasks) {
    tasks.With({StateWord(count.state), count.kind}).Set(static_cast<double>(count.count));
  }

  registry
      .AddGauge("tierflow_queue_depth",
                "Tasks of running runs that are ready and wait for a slot (state queued).")
      .With({})
      .Set(static_cast<double>(stats.queue_depth));

  // 0.1 s .. ~7 h.
  metrics::Family<metrics::Histogram>& durations = registry.AddHistogram(
      "tierflow_task_duration_seconds",
      "Seconds each attempt that ran took, from start to end, by stage kind (cached attempts "
      "ran nothing and are left out).",
      {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800},
      {"kind"});
  for (const StoreStats::AttemptTime& attempt : stats.attempt_times) {
    durations.With({attempt.kind})
        .Observe(static_cast<double>(std::max<int64_t>(0, attempt.duration_ms)) / 1000.0);
  }

  metrics::Family<metrics::Counter>& moved = registry.AddCounter(
      "tierflow_bytes_moved_total",
      "Bytes copied between storage tiers (write-backs to a home, prefetches to a working "
      "tier), by tier and direction (in: copied onto the tier, out: copied off it).",
      {"tier", "direction"});
  metrics::Family<metrics::Counter>& written =
      registry.AddCounter("tierflow_bytes_written_total",
                          "Bytes tasks wrote as outputs, by the tier they wrote to.", {"tier"});
  for (const StoreStats::CopiedBytes& copy : stats.copied) {
    const double bytes = static_cast<double>(copy.bytes);
    if (!copy.source_tier) {
      written.With({copy.tier}).Increment(bytes);
    } else {
      moved.With({copy.tier, "in"}).Increment(bytes);
      moved.With({*copy.source_tier, "out"}).Increment(bytes);
    }
  }

  // 1 MB/s .. ~16 GB/s.
  metrics::Family<metrics::Histogram>& throughput = registry.AddHistogram(
      "tierflow_transfer_throughput_bytes_per_second",
      "Throughput of each finished copy between tiers still present (bytes over the time "
      "from its start to its end, at millisecond resolution), by destination tier.",
      metrics::ExponentialBuckets(1e6, 4, 8), {"tier"});
  for (const StoreStats::Transfer& transfer : stats.transfers) {
    const double seconds = static_cast<double>(std::max<int64_t>(1, transfer.elapsed_ms)) / 1000.0;
    throughput.With({transfer.tier}).Observe(static_cast<double>(transfer.bytes) / seconds);
  }

  metrics::Counter& waited =
      registry
          .AddCounter("tierflow_data_wait_seconds_total",
                      "Seconds tasks waited for data: for copies of their inputs once "
                      "otherwise ready, and for streamed files while they ran (docs/ui.md).")
          .With({});
  TF_ASSIGN_OR_RETURN(auto waits, scheduler::DataWaitSeconds(db, ""));
  for (const auto& [task, seconds] : waits) waited.Increment(seconds);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> RenderMetrics(const HttpApiOptions& options) {
  TF_ASSIGN_OR_RETURN(std::unique_ptr<scheduler::Database> db, OpenStore(options));
  metrics::Registry store;
  TF_RETURN_IF_ERROR(StoreMetrics(*db, store));
  return store.Render() + metrics::Default().Render();
}

}  // namespace tierflow::api
