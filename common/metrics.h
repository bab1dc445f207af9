// Prometheus metrics on the prometheus-cpp client library (prometheus-cpp::core):
// the process's registry, the families the engine records into, and the one
// text rendering /metrics serves (prometheus::TextSerializer, exposition
// format 0.0.4). tierflow serves it through its own HTTP server
// (api/http_server.cc), never prometheus-cpp::pull's.
//
// Recording is cheap: a child (prometheus::Counter, Gauge, Histogram) is an
// atomic or a small mutex, and EngineMetrics hands the recording sites
// references looked up once. Looking a labelled child up
// (Family::Add(labels)) hashes the label map under the family's mutex:
// about 300 ns measured, against 5 ns for an Increment of a kept
// reference, so it is done only where a label value is known late and the
// event is rare (a finished copy, a retried request). Every function here is
// safe to call from any thread.
//
// Names follow Prometheus conventions: base units (seconds, bytes) in the
// name, counters end in `_total`, histograms have no `le` label. HELP texts
// must not hold a backslash or a newline: prometheus-cpp 1.0.1 writes them
// unescaped.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace tierflow::metrics {

// Histogram upper bounds start, start*factor, ... (`count` of them; the
// `+Inf` bucket is implied).
prometheus::Histogram::BucketBoundaries ExponentialBuckets(double start, double factor,
                                                           size_t count);

// The process's registry: what `/metrics` serves beside what it reads from
// the state store. Never destroyed (used until exit).
prometheus::Registry& Default();

// What the engine records, registered in Default() on first use (so they
// render, as 0, in any process that serves /metrics with an engine in it).
struct EngineMetrics {
  // One engine turn: applying reports and copies, dispatching, committing.
  prometheus::Histogram& scheduler_loop_seconds;
  // One SQLite COMMIT of the engine.
  prometheus::Histogram& sqlite_commit_seconds;
  // Copies between tiers being made now.
  prometheus::Gauge& transfers_in_flight;
  // tierflow_transfer_bytes_total / tierflow_transfer_seconds_total
  // {tier, direction}: a finished copy from tier `from` to tier `to` counts
  // for `from` as direction "out" and for `to` as "in"; rate(bytes) /
  // rate(seconds) is the throughput while copying.
  prometheus::Family<prometheus::Counter>& transfer_bytes;
  prometheus::Family<prometheus::Counter>& transfer_seconds;
  void RecordTransfer(const std::string& from, const std::string& to, uint64_t bytes,
                      double seconds) const;
  // tierflow_storage_retries_total{tier}: requests to a remote tier (s3)
  // that failed and were tried again.
  prometheus::Family<prometheus::Counter>& storage_retries;
  void RecordStorageRetry(const std::string& tier) const;
};
const EngineMetrics& Engine();

// Observes the seconds from construction to destruction into a histogram.
class ScopedTimer {
 public:
  explicit ScopedTimer(prometheus::Histogram& histogram)
      : histogram_(histogram), start_(std::chrono::steady_clock::now()) {}
  ~ScopedTimer() {
    histogram_.Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  }
  ScopedTimer(const ScopedTimer&) = delete;
  ScopedTimer& operator=(const ScopedTimer&) = delete;

 private:
  prometheus::Histogram& histogram_;
  std::chrono::steady_clock::time_point start_;
};

// The families of every source (Collect() of each, in the order given,
// concatenated) in one prometheus::TextSerializer pass. Within a registry
// prometheus-cpp orders families by type (counters, gauges, histograms) and
// children by a hash of their labels; labels within a sample are sorted by
// name. The sources must not share a family name.
std::string Render(std::initializer_list<const prometheus::Collectable*> sources);

// The content type of the text format.
inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace tierflow::metrics
