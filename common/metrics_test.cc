#include "common/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <thread>
#include <vector>

namespace tierflow::metrics {
namespace {

TEST(MetricsTest, RendersCounterWithHelpTypeAndLabels) {
  Registry registry;
  Family<Counter>& moved =
      registry.AddCounter("tierflow_bytes_moved_total", "Bytes copied.", {"tier", "direction"});
  moved.With({"ram", "in"}).Increment(1024);
  moved.With({"bulk", "out"}).Increment(3);
  moved.With({"bulk", "out"}).Increment(2);
  EXPECT_EQ(registry.Render(),
            "# HELP tierflow_bytes_moved_total Bytes copied.\n"
            "# TYPE tierflow_bytes_moved_total counter\n"
            "tierflow_bytes_moved_total{tier=\"bulk\",direction=\"out\"} 5\n"
            "tierflow_bytes_moved_total{tier=\"ram\",direction=\"in\"} 1024\n");
}

TEST(MetricsTest, UnlabeledFamiliesRenderZeroBeforeAnythingIsRecorded) {
  Registry registry;
  registry.AddGauge("tierflow_queue_depth", "Tasks ready.");
  registry.AddCounter("tierflow_data_wait_seconds_total", "Waiting.");
  EXPECT_EQ(registry.Render(),
            "# HELP tierflow_queue_depth Tasks ready.\n"
            "# TYPE tierflow_queue_depth gauge\n"
            "tierflow_queue_depth 0\n"
            "# HELP tierflow_data_wait_seconds_total Waiting.\n"
            "# TYPE tierflow_data_wait_seconds_total counter\n"
            "tierflow_data_wait_seconds_total 0\n");
}

TEST(MetricsTest, LabeledFamilyWithoutChildrenIsLeftOut) {
  Registry registry;
  registry.AddGauge("tierflow_tasks", "Tasks.", {"state"});
  EXPECT_EQ(registry.Render(), "");
}

TEST(MetricsTest, EscapesLabelValuesAndHelp) {
  Registry registry;
  registry.AddGauge("g", "a \\ backslash\nand a newline, \"quotes\" kept", {"name"})
      .With({"x\\y\"z\nw"})
      .Set(-2.5);
  EXPECT_EQ(registry.Render(),
            "# HELP g a \\\\ backslash\\nand a newline, \"quotes\" kept\n"
            "# TYPE g gauge\n"
            "g{name=\"x\\\\y\\\"z\\nw\"} -2.5\n");
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  Registry registry;
  Histogram& h =
      registry.AddHistogram("tierflow_task_duration_seconds", "Durations.", {0.5, 1, 2.5}, {"kind"})
          .With({"train"});
  h.Observe(0.5);  // upper bounds are inclusive
  h.Observe(0.75);
  h.Observe(2);
  h.Observe(100);
  EXPECT_EQ(registry.Render(),
            "# HELP tierflow_task_duration_seconds Durations.\n"
            "# TYPE tierflow_task_duration_seconds histogram\n"
            "tierflow_task_duration_seconds_bucket{kind=\"train\",le=\"0.5\"} 1\n"
            "tierflow_task_duration_seconds_bucket{kind=\"train\",le=\"1\"} 2\n"
            "tierflow_task_duration_seconds_bucket{kind=\"train\",le=\"2.5\"} 3\n"
            "tierflow_task_duration_seconds_bucket{kind=\"train\",le=\"+Inf\"} 4\n"
            "tierflow_task_duration_seconds_sum{kind=\"train\"} 103.25\n"
            "tierflow_task_duration_seconds_count{kind=\"train\"} 4\n");
}

TEST(MetricsTest, UnlabeledHistogramHasOnlyLe) {
  Registry registry;
  registry.AddHistogram("tierflow_sqlite_commit_seconds", "Commits.", {0.001})
      .With({})
      .Observe(0.0005);
  EXPECT_EQ(registry.Render(),
            "# HELP tierflow_sqlite_commit_seconds Commits.\n"
            "# TYPE tierflow_sqlite_commit_seconds histogram\n"
            "tierflow_sqlite_commit_seconds_bucket{le=\"0.001\"} 1\n"
            "tierflow_sqlite_commit_seconds_bucket{le=\"+Inf\"} 1\n"
            "tierflow_sqlite_commit_seconds_sum 0.0005\n"
            "tierflow_sqlite_commit_seconds_count 1\n");
}

TEST(MetricsTest, FormatsValuesExactly) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(42), "42");
  EXPECT_EQ(FormatValue(-7), "-7");
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(1e-4), "0.0001");
  EXPECT_EQ(FormatValue(1e20), "1e+20");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatValue(std::nan("")), "NaN");
}

TEST(MetricsTest, RegisteringANameTwiceReturnsTheSameFamily) {
  Registry registry;
  Family<Counter>& first = registry.AddCounter("c_total", "C.", {"a"});
  Family<Counter>& second = registry.AddCounter("c_total", "C.", {"a"});
  EXPECT_EQ(&first, &second);
  EXPECT_EQ(&first.With({"x"}), &second.With({"x"}));
}

TEST(MetricsTest, ConcurrentIncrementsAreAllCounted) {
  Registry registry;
  Counter& counter = registry.AddCounter("c_total", "C.").With({});
  Histogram& histogram = registry.AddHistogram("h_seconds", "H.", {1}).With({});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        counter.Increment();
        histogram.Observe(0.5);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(counter.Value(), 40000);
  Histogram::Snapshot snapshot = histogram.Read();
  EXPECT_EQ(snapshot.count, 40000u);
  EXPECT_EQ(snapshot.sum, 20000);
}

TEST(MetricsTest, EngineMetricsAreRegisteredInTheDefaultRegistry) {
  const EngineMetrics& engine = Engine();
  { ScopedTimer timer(engine.sqlite_commit_seconds); }
  engine.transfers_in_flight.Add(1);
  const std::string text = Default().Render();
  EXPECT_NE(text.find("# TYPE tierflow_scheduler_loop_seconds histogram\n"), std::string::npos);
  EXPECT_NE(text.find("tierflow_sqlite_commit_seconds_count 1\n"), std::string::npos);
  EXPECT_NE(text.find("tierflow_transfers_in_flight 1\n"), std::string::npos);
  engine.transfers_in_flight.Add(-1);
}

}  // namespace
}  // namespace tierflow::metrics
