#include "common/metrics.h"

#include <algorithm>
#include <cassert>
#include <charconv>
#include <cmath>
#include <sstream>
#include <utility>

namespace tierflow::metrics {
namespace {

[[maybe_unused]] bool ValidName(std::string_view name, bool colon) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (!letter && !(colon && c == ':') && !(i > 0 && digit)) return false;
  }
  return true;
}

[[maybe_unused]] bool EndsWith(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

void AddAtomic(std::atomic<double>& target, double delta) {
  target.fetch_add(delta, std::memory_order_relaxed);
}

// `{a="x",b="y"` (no closing brace: a histogram bucket adds `le`), or ""
// when there are no labels.
std::string LabelsOpen(const std::vector<std::string>& names,
                       const std::vector<std::string>& values) {
  if (names.empty()) return "";
  std::string text = "{";
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) text += ',';
    text += names[i];
    text += "=\"";
    text += EscapeLabelValue(values[i]);
    text += '"';
  }
  return text;
}

std::string Labels(const std::vector<std::string>& names, const std::vector<std::string>& values) {
  std::string open = LabelsOpen(names, values);
  return open.empty() ? open : open + "}";
}

template <typename Child>
void RenderSimple(const std::string& name, const std::vector<std::string>& label_names,
                  const std::map<std::vector<std::string>, std::unique_ptr<Child>>& children,
                  std::ostream& out) {
  for (const auto& [values, child] : children) {
    out << name << Labels(label_names, values) << ' ' << FormatValue(child->Value()) << '\n';
  }
}

}  // namespace

void Counter::Increment(double by) {
  assert(by >= 0);
  AddAtomic(value_, by);
}

void Gauge::Add(double delta) { AddAtomic(value_, delta); }

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      buckets_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {
  assert(std::is_sorted(bounds_.begin(), bounds_.end()) &&
         std::adjacent_find(bounds_.begin(), bounds_.end()) == bounds_.end());
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double value) {
  // The first bucket whose upper bound is >= value (bounds are inclusive).
  const size_t bucket = static_cast<size_t>(
      std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  AddAtomic(sum_, value);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot snapshot;
  snapshot.bounds = bounds_;
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
    snapshot.cumulative.push_back(total);
  }
  snapshot.count = total;
  snapshot.sum = sum_.load(std::memory_order_relaxed);
  return snapshot;
}

std::vector<double> ExponentialBuckets(double start, double factor, size_t count) {
  std::vector<double> bounds;
  double bound = start;
  for (size_t i = 0; i < count; ++i) {
    bounds.push_back(bound);
    bound *= factor;
  }
  return bounds;
}

template <typename Child>
Child& Family<Child>::With(const std::vector<std::string>& values) {
  assert(values.size() == labels_.size());
  std::lock_guard lock(mu_);
  std::unique_ptr<Child>& child = children_[values];
  if (!child) child = Make();
  return *child;
}

template <>
std::unique_ptr<Counter> Family<Counter>::Make() const {
  return std::make_unique<Counter>();
}
template <>
std::unique_ptr<Gauge> Family<Gauge>::Make() const {
  return std::make_unique<Gauge>();
}
template <>
std::unique_ptr<Histogram> Family<Histogram>::Make() const {
  return std::make_unique<Histogram>(bounds_);
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

Registry::Entry& Registry::Add(const std::string& name, const std::string& help,
                               std::string_view type, const std::vector<std::string>& labels) {
  assert(ValidName(name, /*colon=*/true));
  for (const std::string& label : labels) {
    assert(ValidName(label, /*colon=*/false) && label.rfind("__", 0) != 0);
    (void)label;
  }
  for (const auto& entry : entries_) {
    if (entry->name == name) {
      assert(entry->type == type);
      return *entry;
    }
  }
  auto entry = std::make_unique<Entry>();
  entry->name = name;
  entry->help = help;
  entry->type = std::string(type);
  entries_.push_back(std::move(entry));
  return *entries_.back();
}

Family<Counter>& Registry::AddCounter(const std::string& name, const std::string& help,
                                      std::vector<std::string> labels) {
  assert(EndsWith(name, "_total"));
  std::lock_guard lock(mu_);
  Entry& entry = Add(name, help, "counter", labels);
  if (!entry.counter) {
    const bool unlabeled = labels.empty();
    entry.counter.reset(new Family<Counter>(std::move(labels), {}));
    if (unlabeled) entry.counter->With(std::vector<std::string>{});
  }
  return *entry.counter;
}

Family<Gauge>& Registry::AddGauge(const std::string& name, const std::string& help,
                                  std::vector<std::string> labels) {
  std::lock_guard lock(mu_);
  Entry& entry = Add(name, help, "gauge", labels);
  if (!entry.gauge) {
    const bool unlabeled = labels.empty();
    entry.gauge.reset(new Family<Gauge>(std::move(labels), {}));
    if (unlabeled) entry.gauge->With(std::vector<std::string>{});
  }
  return *entry.gauge;
}

Family<Histogram>& Registry::AddHistogram(const std::string& name, const std::string& help,
                                          std::vector<double> bounds,
                                          std::vector<std::string> labels) {
  assert(std::find(labels.begin(), labels.end(), "le") == labels.end());
  std::lock_guard lock(mu_);
  Entry& entry = Add(name, help, "histogram", labels);
  if (!entry.histogram) {
    const bool unlabeled = labels.empty();
    entry.histogram.reset(new Family<Histogram>(std::move(labels), std::move(bounds)));
    if (unlabeled) entry.histogram->With(std::vector<std::string>{});
  }
  return *entry.histogram;
}

void Registry::Render(std::ostream& out) const {
  std::lock_guard lock(mu_);
  for (const auto& entry : entries_) {
    std::ostringstream samples;
    if (entry->counter) {
      std::lock_guard family(entry->counter->mu_);
      RenderSimple(entry->name, entry->counter->labels_, entry->counter->children_, samples);
    } else if (entry->gauge) {
      std::lock_guard family(entry->gauge->mu_);
      RenderSimple(entry->name, entry->gauge->labels_, entry->gauge->children_, samples);
    } else if (entry->histogram) {
      const Family<Histogram>& family = *entry->histogram;
      std::lock_guard family_lock(family.mu_);
      for (const auto& [values, child] : family.children_) {
        const Histogram::Snapshot snapshot = child->Read();
        std::string open = LabelsOpen(family.labels_, values);
        open += open.empty() ? "{" : ",";
        for (size_t i = 0; i <= snapshot.bounds.size(); ++i) {
          samples << entry->name << "_bucket" << open << "le=\""
                  << (i < snapshot.bounds.size() ? FormatValue(snapshot.bounds[i]) : "+Inf")
                  << "\"} " << snapshot.cumulative[i] << '\n';
        }
        const std::string labels = Labels(family.labels_, values);
        samples << entry->name << "_sum" << labels << ' ' << FormatValue(snapshot.sum) << '\n';
        samples << entry->name << "_count" << labels << ' ' << snapshot.count << '\n';
      }
    }
    const std::string text = samples.str();
    if (text.empty()) continue;
    out << "# HELP " << entry->name << ' ' << EscapeHelp(entry->help) << '\n';
    out << "# TYPE " << entry->name << ' ' << entry->type << '\n';
    out << text;
  }
}

std::string Registry::Render() const {
  std::ostringstream out;
  Render(out);
  return out.str();
}

Registry& Default() {
  static Registry* registry = new Registry();  // never destroyed: used until exit
  return *registry;
}

const EngineMetrics& Engine() {
  static const EngineMetrics* metrics = [] {
    Registry& registry = Default();
    // 100 µs .. ~52 s, doubling.
    const std::vector<double> latency = ExponentialBuckets(0.0001, 2, 20);
    return new EngineMetrics{
        registry
            .AddHistogram("tierflow_scheduler_loop_seconds",
                          "Seconds one turn of the engine's scheduling loop took (applying "
                          "reports and copies, dispatching, committing).",
                          latency)
            .With({}),
        registry
            .AddHistogram("tierflow_sqlite_commit_seconds",
                          "Seconds one COMMIT of the engine's state store took.", latency)
            .With({}),
        registry
            .AddGauge("tierflow_transfers_in_flight",
                      "Copies between storage tiers the engine is making now.")
            .With({}),
        registry.AddCounter("tierflow_transfer_bytes_total",
                            "Bytes this process's engine copied between storage tiers, by tier "
                            "and direction (in: copied onto the tier, out: copied off it).",
                            {"tier", "direction"}),
        registry.AddCounter("tierflow_transfer_seconds_total",
                            "Seconds this process's engine spent copying between storage tiers, "
                            "by tier and direction; rate(tierflow_transfer_bytes_total) / "
                            "rate(tierflow_transfer_seconds_total) is the throughput.",
                            {"tier", "direction"}),
        registry.AddCounter("tierflow_storage_retries_total",
                            "Requests to a remote storage tier (s3) that failed (a 5xx, a "
                            "reset, a timeout, a BadDigest) and were tried again, by tier.",
                            {"tier"}),
    };
  }();
  return *metrics;
}

void EngineMetrics::RecordTransfer(const std::string& from, const std::string& to, uint64_t bytes,
                                   double seconds) const {
  transfer_bytes.With({from, "out"}).Increment(static_cast<double>(bytes));
  transfer_bytes.With({to, "in"}).Increment(static_cast<double>(bytes));
  transfer_seconds.With({from, "out"}).Increment(seconds);
  transfer_seconds.With({to, "in"}).Increment(seconds);
}

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::trunc(value) && std::fabs(value) < 1e15) {
    return std::to_string(static_cast<int64_t>(value));
  }
  // Plain decimals where they stay short (le="0.0005", not "5e-04"); the
  // shortest round-trip form either way.
  const double magnitude = std::fabs(value);
  const std::chars_format format =
      magnitude >= 1e-6 && magnitude < 1e15 ? std::chars_format::fixed : std::chars_format::general;
  char text[400];
  auto [end, error] = std::to_chars(text, text + sizeof text, value, format);
  (void)error;
  return std::string(text, end);
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string EscapeHelp(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace tierflow::metrics
