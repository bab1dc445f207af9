#include "common/metrics.h"

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <iterator>
#include <sstream>
#include <utility>

namespace tierflow::metrics {

prometheus::Histogram::BucketBoundaries ExponentialBuckets(double start, double factor,
                                                           size_t count) {
  prometheus::Histogram::BucketBoundaries bounds;
  double bound = start;
  for (size_t i = 0; i < count; ++i) {
    bounds.push_back(bound);
    bound *= factor;
  }
  return bounds;
}

prometheus::Registry& Default() {
  static prometheus::Registry* registry = new prometheus::Registry();  // used until exit
  return *registry;
}

const EngineMetrics& Engine() {
  static const EngineMetrics* metrics = [] {
    prometheus::Registry& registry = Default();
    // 100 µs .. ~52 s, doubling.
    const prometheus::Histogram::BucketBoundaries latency = ExponentialBuckets(0.0001, 2, 20);
    return new EngineMetrics{
        prometheus::BuildHistogram()
            .Name("tierflow_scheduler_loop_seconds")
            .Help("Seconds one turn of the engine's scheduling loop took (applying reports and "
                  "copies, dispatching, committing).")
            .Register(registry)
            .Add({}, latency),
        prometheus::BuildHistogram()
            .Name("tierflow_sqlite_commit_seconds")
            .Help("Seconds one COMMIT of the engine's state store took.")
            .Register(registry)
            .Add({}, latency),
        prometheus::BuildGauge()
            .Name("tierflow_transfers_in_flight")
            .Help("Copies between storage tiers the engine is making now.")
            .Register(registry)
            .Add({}),
        prometheus::BuildCounter()
            .Name("tierflow_transfer_bytes_total")
            .Help("Bytes this process's engine copied between storage tiers, by tier and "
                  "direction (in: copied onto the tier, out: copied off it).")
            .Register(registry),
        prometheus::BuildCounter()
            .Name("tierflow_transfer_seconds_total")
            .Help("Seconds this process's engine spent copying between storage tiers, by tier "
                  "and direction; rate(tierflow_transfer_bytes_total) / "
                  "rate(tierflow_transfer_seconds_total) is the throughput.")
            .Register(registry),
        prometheus::BuildCounter()
            .Name("tierflow_storage_retries_total")
            .Help("Requests to a remote storage tier (s3) that failed (a 5xx, a reset, a "
                  "timeout, a BadDigest) and were tried again, by tier.")
            .Register(registry),
    };
  }();
  return *metrics;
}

// Four child lookups per finished copy (~1.3 µs, measured): small against
// the copy itself, so no cache of children here.
void EngineMetrics::RecordTransfer(const std::string& from, const std::string& to, uint64_t bytes,
                                   double seconds) const {
  transfer_bytes.Add({{"tier", from}, {"direction", "out"}}).Increment(static_cast<double>(bytes));
  transfer_bytes.Add({{"tier", to}, {"direction", "in"}}).Increment(static_cast<double>(bytes));
  transfer_seconds.Add({{"tier", from}, {"direction", "out"}}).Increment(seconds);
  transfer_seconds.Add({{"tier", to}, {"direction", "in"}}).Increment(seconds);
}

void EngineMetrics::RecordStorageRetry(const std::string& tier) const {
  storage_retries.Add({{"tier", tier}}).Increment();
}

std::string Render(std::initializer_list<const prometheus::Collectable*> sources) {
  std::vector<prometheus::MetricFamily> families;
  for (const prometheus::Collectable* source : sources) {
    std::vector<prometheus::MetricFamily> collected = source->Collect();
    families.insert(families.end(), std::make_move_iterator(collected.begin()),
                    std::make_move_iterator(collected.end()));
  }
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

}  // namespace tierflow::metrics
