// /metrics (http_api.h RenderMetrics): what the state store holds, read at
// scrape time through scheduler/api_queries.h ReadStoreStats into a
// prometheus-cpp registry built for the scrape, followed by what an engine
// in this process records (metrics::Default()), in one TextSerializer pass.
// Stateless; safe from any thread.
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

// What the store holds, measured at scrape time, into `registry`.
//
// A registry built per scrape, not a custom prometheus::Collectable: every
// figure here is a total the store already holds (a counter's value is the
// sum of rows, a histogram's buckets are over every attempt still present),
// so a fresh registry gets each counter created at 0 and incremented once to
// the store's total; prometheus::Counter cannot be set, and need not be. The
// library still checks names, types and bucket bounds, and serializes the
// result; a Collectable would write MetricFamily structs by hand, which is
// the hand-written exposition this replaced. Building it costs a few
// hundred child lookups per scrape, small against the store's queries.
absl::Status StoreMetrics(scheduler::Database& db, prometheus::Registry& registry) {
  TF_ASSIGN_OR_RETURN(StoreStats stats, scheduler::ReadStoreStats(db));

  prometheus::Family<prometheus::Gauge>& runs = prometheus::BuildGauge()
                                                    .Name("tierflow_runs")
                                                    .Help("Runs in the state store by state.")
                                                    .Register(registry);
  for (RunState state : kRunStates) runs.Add({{"state", StateWord(state)}});
  for (const auto& [state, count] : stats.runs) {
    runs.Add({{"state", StateWord(state)}}).Set(static_cast<double>(count));
  }

  prometheus::Family<prometheus::Gauge>& tasks =
      prometheus::BuildGauge()
          .Name("tierflow_tasks")
          .Help("Tasks in the state store (every run) by state and stage kind.")
          .Register(registry);
  for (const std::string& kind : stats.task_kinds) {
    for (TaskState state : kTaskStates) {
      tasks.Add({{"state", StateWord(state)}, {"kind", kind}});
    }
  }
  for (const StoreStats::TaskCount& count : stats.tasks) {
    tasks.Add({{"state", StateWord(count.state)}, {"kind", count.kind}})
        .Set(static_cast<double>(count.count));
  }

  prometheus::BuildGauge()
      .Name("tierflow_queue_depth")
      .Help("Tasks of running runs that are ready and wait for a slot (state queued).")
      .Register(registry)
      .Add({})
      .Set(static_cast<double>(stats.queue_depth));

  // 0.1 s .. ~7 h.
  const prometheus::Histogram::BucketBoundaries duration_bounds = {
      0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800};
  prometheus::Family<prometheus::Histogram>& durations =
      prometheus::BuildHistogram()
          .Name("tierflow_task_duration_seconds")
          .Help(
              "Seconds each attempt that ran took, from start to end, by stage kind (cached "
              "attempts ran nothing and are left out).")
          .Register(registry);
  for (const StoreStats::AttemptTime& attempt : stats.attempt_times) {
    durations.Add({{"kind", attempt.kind}}, duration_bounds)
        .Observe(static_cast<double>(std::max<int64_t>(0, attempt.duration_ms)) / 1000.0);
  }

  prometheus::Family<prometheus::Counter>& moved =
      prometheus::BuildCounter()
          .Name("tierflow_bytes_moved_total")
          .Help(
              "Bytes copied between storage tiers (write-backs to a home, prefetches to a "
              "working tier), by tier and direction (in: copied onto the tier, out: copied "
              "off it).")
          .Register(registry);
  prometheus::Family<prometheus::Counter>& written =
      prometheus::BuildCounter()
          .Name("tierflow_bytes_written_total")
          .Help("Bytes tasks wrote as outputs, by the tier they wrote to.")
          .Register(registry);
  for (const StoreStats::CopiedBytes& copy : stats.copied) {
    const double bytes = static_cast<double>(copy.bytes);
    if (!copy.source_tier) {
      written.Add({{"tier", copy.tier}}).Increment(bytes);
    } else {
      moved.Add({{"tier", copy.tier}, {"direction", "in"}}).Increment(bytes);
      moved.Add({{"tier", *copy.source_tier}, {"direction", "out"}}).Increment(bytes);
    }
  }

  // 1 MB/s .. ~16 GB/s.
  const prometheus::Histogram::BucketBoundaries throughput_bounds =
      metrics::ExponentialBuckets(1e6, 4, 8);
  prometheus::Family<prometheus::Histogram>& throughput =
      prometheus::BuildHistogram()
          .Name("tierflow_transfer_throughput_bytes_per_second")
          .Help(
              "Throughput of each finished copy between tiers still present (bytes over the "
              "time from its start to its end, at millisecond resolution), by destination "
              "tier.")
          .Register(registry);
  for (const StoreStats::Transfer& transfer : stats.transfers) {
    const double seconds = static_cast<double>(std::max<int64_t>(1, transfer.elapsed_ms)) / 1000.0;
    throughput.Add({{"tier", transfer.tier}}, throughput_bounds)
        .Observe(static_cast<double>(transfer.bytes) / seconds);
  }

  prometheus::Counter& waited =
      prometheus::BuildCounter()
          .Name("tierflow_data_wait_seconds_total")
          .Help(
              "Seconds tasks waited for data: for copies of their inputs once otherwise "
              "ready, and for streamed files while they ran (docs/ui.md).")
          .Register(registry)
          .Add({});
  TF_ASSIGN_OR_RETURN(auto waits, scheduler::DataWaitSeconds(db, ""));
  for (const auto& [task, seconds] : waits) waited.Increment(seconds);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> RenderMetrics(const HttpApiOptions& options) {
  TF_ASSIGN_OR_RETURN(std::unique_ptr<scheduler::Database> db, OpenStore(options));
  prometheus::Registry store;
  TF_RETURN_IF_ERROR(StoreMetrics(*db, store));
  return metrics::Render({&store, &metrics::Default()});
}

}  // namespace tierflow::api
