// Prometheus metrics without a client library: a registry of counters,
// gauges and histograms, each a family of children told apart by label
// values, rendered in the text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/).
//
// Recording is lock-free: a child is a few atomics, so the engine can
// record on its hot path. Looking a child up by its label values takes the
// family's mutex once; keep the reference (children live as long as their
// registry and never move). Registering and rendering take the registry's
// mutex. Every method is safe to call from any thread.
//
// Names follow Prometheus conventions, checked when a family is added:
// base units (seconds, bytes) in the name, counters end in `_total`,
// histograms have no `le` label.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace tierflow::metrics {

// A value that only goes up (a restart starts it from 0 again).
class Counter {
 public:
  // `by` must not be negative.
  void Increment(double by = 1);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// A value that goes up and down.
class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double delta);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Observations counted in buckets by upper bound (the `+Inf` bucket is
// implied), with their sum.
class Histogram {
 public:
  // `bounds`: strictly increasing, finite.
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf
    double sum = 0;
    uint64_t count = 0;  // == cumulative.back()
  };
  Snapshot Read() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1
  std::atomic<double> sum_{0};
};

// Buckets start, start*factor, ... (`count` of them).
std::vector<double> ExponentialBuckets(double start, double factor, size_t count);

// The children of one metric, by label values (given in the order of the
// family's label names).
template <typename Child>
class Family {
 public:
  Child& With(std::initializer_list<std::string_view> values) {
    return With(std::vector<std::string>(values.begin(), values.end()));
  }
  Child& With(const std::vector<std::string>& values);

 private:
  friend class Registry;
  Family(std::vector<std::string> labels, std::vector<double> bounds)
      : labels_(std::move(labels)), bounds_(std::move(bounds)) {}
  std::unique_ptr<Child> Make() const;

  const std::vector<std::string> labels_;
  const std::vector<double> bounds_;  // histograms
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<Child>> children_;  // guarded by mu_
};

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // A name registered twice returns the first family (its type, help and
  // labels must match). A family without labels has its one child at once,
  // so it renders (as 0) before anything is recorded.
  Family<Counter>& AddCounter(const std::string& name, const std::string& help,
                              std::vector<std::string> labels = {});
  Family<Gauge>& AddGauge(const std::string& name, const std::string& help,
                          std::vector<std::string> labels = {});
  Family<Histogram>& AddHistogram(const std::string& name, const std::string& help,
                                  std::vector<double> bounds, std::vector<std::string> labels = {});

  // Every family in the order added, children sorted by label values:
  // `# HELP`, `# TYPE`, then the samples. Families without children are
  // left out.
  void Render(std::ostream& out) const;
  std::string Render() const;

 private:
  struct Entry {
    std::string name;
    std::string help;
    std::string type;  // counter | gauge | histogram
    std::unique_ptr<Family<Counter>> counter;
    std::unique_ptr<Family<Gauge>> gauge;
    std::unique_ptr<Family<Histogram>> histogram;
  };
  Entry& Add(const std::string& name, const std::string& help, std::string_view type,
             const std::vector<std::string>& labels);

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Entry>> entries_;  // guarded by mu_
};

// The process's registry: what `/metrics` serves beside what it reads from
// the state store.
Registry& Default();

// What the engine records, registered in Default() on first use (so they
// render, as 0, in any process that serves /metrics with an engine in it).
struct EngineMetrics {
  // One engine turn: applying reports and copies, dispatching, committing.
  Histogram& scheduler_loop_seconds;
  // One SQLite COMMIT of the engine.
  Histogram& sqlite_commit_seconds;
  // Copies between tiers being made now.
  Gauge& transfers_in_flight;
  // tierflow_transfer_bytes_total / tierflow_transfer_seconds_total
  // {tier, direction}: a finished copy from tier `from` to tier `to` counts
  // for `from` as direction "out" and for `to` as "in"; rate(bytes) /
  // rate(seconds) is the throughput while copying.
  Family<Counter>& transfer_bytes;
  Family<Counter>& transfer_seconds;
  void RecordTransfer(const std::string& from, const std::string& to, uint64_t bytes,
                      double seconds) const;
  // tierflow_storage_retries_total{tier}: requests to a remote tier (s3)
  // that failed and were tried again.
  Family<Counter>& storage_retries;
};
const EngineMetrics& Engine();

// Observes the seconds from construction to destruction into a histogram.
class ScopedTimer {
 public:
  explicit ScopedTimer(Histogram& histogram)
      : histogram_(histogram), start_(std::chrono::steady_clock::now()) {}
  ~ScopedTimer() {
    histogram_.Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  }
  ScopedTimer(const ScopedTimer&) = delete;
  ScopedTimer& operator=(const ScopedTimer&) = delete;

 private:
  Histogram& histogram_;
  std::chrono::steady_clock::time_point start_;
};

// The text format's pieces, for tests and for renderers of other sources.
// A sample value: integers without a fraction, others in the shortest form
// that reads back exactly, and +Inf, -Inf, NaN.
std::string FormatValue(double value);
// A label value: backslash, double quote and newline escaped.
std::string EscapeLabelValue(std::string_view value);
// HELP text: backslash and newline escaped.
std::string EscapeHelp(std::string_view help);

// The content type of the text format.
inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace tierflow::metrics
