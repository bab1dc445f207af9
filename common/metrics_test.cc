// What common/metrics owns on top of prometheus-cpp: bucket bounds, the
// engine's families in the process registry, the recording helpers, and the
// one rendering of several registries (docs/ui.md's metrics section lists
// the format details asserted here).
#include "common/metrics.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace tierflow::metrics {
namespace {

// The value of the sample line `sample ` in `text`, or -1 when absent.
double SampleValue(const std::string& text, const std::string& sample) {
  const std::string prefix = sample + " ";
  for (size_t at = text.find(prefix); at != std::string::npos; at = text.find(prefix, at + 1)) {
    if (at == 0 || text[at - 1] == '\n') {
      return std::stod(text.substr(at + prefix.size()));
    }
  }
  return -1;
}

TEST(MetricsTest, ExponentialBucketsMultiplyFromStart) {
  EXPECT_EQ(ExponentialBuckets(1e6, 4, 4),
            (prometheus::Histogram::BucketBoundaries{1e6, 4e6, 16e6, 64e6}));
  EXPECT_TRUE(ExponentialBuckets(1, 2, 0).empty());
}

TEST(MetricsTest, RendersSourcesInOrderInOnePass) {
  prometheus::Registry store;
  prometheus::BuildGauge()
      .Name("tierflow_queue_depth")
      .Help("Tasks ready.")
      .Register(store)
      .Add({})
      .Set(3);
  prometheus::Registry engine;
  prometheus::BuildCounter()
      .Name("tierflow_transfer_bytes_total")
      .Help("Bytes copied.")
      .Register(engine)
      .Add({{"tier", "ram"}, {"direction", "in"}})
      .Increment(1024);
  EXPECT_EQ(Render({&store, &engine}),
            "# HELP tierflow_queue_depth Tasks ready.\n"
            "# TYPE tierflow_queue_depth gauge\n"
            "tierflow_queue_depth 3\n"
            "# HELP tierflow_transfer_bytes_total Bytes copied.\n"
            "# TYPE tierflow_transfer_bytes_total counter\n"
            // Labels sorted by name, not in the order given.
            "tierflow_transfer_bytes_total{direction=\"in\",tier=\"ram\"} 1024\n");
}

TEST(MetricsTest, LabeledFamilyWithoutChildrenIsLeftOut) {
  prometheus::Registry registry;
  prometheus::BuildGauge().Name("tierflow_tasks").Help("Tasks.").Register(registry);
  EXPECT_EQ(Render({&registry}), "");
}

TEST(MetricsTest, HistogramBoundsAreInclusiveAndWrittenInFull) {
  prometheus::Registry registry;
  prometheus::Histogram& throughput = prometheus::BuildHistogram()
                                          .Name("tierflow_transfer_throughput_bytes_per_second")
                                          .Help("Throughput.")
                                          .Register(registry)
                                          .Add({{"tier", "ram"}}, ExponentialBuckets(1e6, 4, 8));
  throughput.Observe(1e6);  // upper bounds are inclusive
  throughput.Observe(2e6);
  throughput.Observe(1e11);
  const std::string text = Render({&registry});
  const std::string bucket =
      "tierflow_transfer_throughput_bytes_per_second_bucket{tier=\"ram\",le=";
  EXPECT_EQ(SampleValue(text, bucket + "\"1000000\"}"), 1);
  EXPECT_EQ(SampleValue(text, bucket + "\"4000000\"}"), 2);
  EXPECT_EQ(SampleValue(text, bucket + "\"16384000000\"}"), 2);
  EXPECT_EQ(SampleValue(text, bucket + "\"+Inf\"}"), 3);
  EXPECT_EQ(SampleValue(text, "tierflow_transfer_throughput_bytes_per_second_count{tier=\"ram\"}"),
            3);
  EXPECT_EQ(SampleValue(text, "tierflow_transfer_throughput_bytes_per_second_sum{tier=\"ram\"}"),
            1e11 + 3e6);
}

TEST(MetricsTest, EngineLatencyBoundsKeepTheirDecimals) {
  Engine();  // registers the engine's families
  const std::string registered = Render({&Default()});
  for (const char* le : {"0.0001", "0.0002", "0.0512", "52.4288", "+Inf"}) {
    EXPECT_NE(
        registered.find(std::string("tierflow_scheduler_loop_seconds_bucket{le=\"") + le + "\"}"),
        std::string::npos)
        << le << " in\n"
        << registered;
  }
}

TEST(MetricsTest, EngineMetricsAreRegisteredInTheDefaultRegistry) {
  const EngineMetrics& engine = Engine();
  const std::string before = Render({&Default()});
  EXPECT_NE(before.find("# TYPE tierflow_scheduler_loop_seconds histogram\n"), std::string::npos);
  EXPECT_EQ(SampleValue(before, "tierflow_transfers_in_flight"), 0);
  const double commits = SampleValue(before, "tierflow_sqlite_commit_seconds_count");
  { ScopedTimer timer(engine.sqlite_commit_seconds); }
  engine.transfers_in_flight.Increment();
  const std::string after = Render({&Default()});
  EXPECT_EQ(SampleValue(after, "tierflow_sqlite_commit_seconds_count"), commits + 1);
  EXPECT_EQ(SampleValue(after, "tierflow_transfers_in_flight"), 1);
  engine.transfers_in_flight.Decrement();
}

TEST(MetricsTest, RecordTransferCountsOutOfTheSourceAndIntoTheDestination) {
  const EngineMetrics& engine = Engine();
  engine.RecordTransfer("test-bulk", "test-ram", 1000, 0.5);
  engine.RecordTransfer("test-bulk", "test-ram", 24, 0.25);
  const std::string text = Render({&Default()});
  EXPECT_EQ(
      SampleValue(text, "tierflow_transfer_bytes_total{direction=\"out\",tier=\"test-bulk\"}"),
      1024);
  EXPECT_EQ(SampleValue(text, "tierflow_transfer_bytes_total{direction=\"in\",tier=\"test-ram\"}"),
            1024);
  EXPECT_EQ(SampleValue(text, "tierflow_transfer_bytes_total{direction=\"in\",tier=\"test-bulk\"}"),
            -1);
  EXPECT_EQ(
      SampleValue(text, "tierflow_transfer_seconds_total{direction=\"out\",tier=\"test-bulk\"}"),
      0.75);
  EXPECT_EQ(
      SampleValue(text, "tierflow_transfer_seconds_total{direction=\"in\",tier=\"test-ram\"}"),
      0.75);
}

TEST(MetricsTest, StorageRetriesCountByTierFromManyThreads) {
  const EngineMetrics& engine = Engine();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) engine.RecordStorageRetry("test-s3");
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(SampleValue(Render({&Default()}), "tierflow_storage_retries_total{tier=\"test-s3\"}"),
            4000);
}

}  // namespace
}  // namespace tierflow::metrics
