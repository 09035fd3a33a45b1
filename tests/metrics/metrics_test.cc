// The Prometheus registry (adapters/metrics/metrics.h): the exact text exposition format,
// the conventions it enforces, collectors, thread safety, and `promtool check metrics` on a
// rendered sample when promtool (Debian's prometheus package) is installed.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "adapters/metrics/metrics.h"
#include "tests/metrics/promtool.h"

namespace ffe::metrics {
namespace {

TEST(MetricsFormat, CounterGetsHelpTypeAndTotalSuffix) {
  Registry registry;
  registry.counter("ffe_orders", "Orders placed").inc();
  registry.counter("ffe_orders_total", "ignored: the first help wins").inc(2);
  EXPECT_EQ(registry.render(),
            "# HELP ffe_orders_total Orders placed\n"
            "# TYPE ffe_orders_total counter\n"
            "ffe_orders_total 3\n");
}

TEST(MetricsFormat, FamiliesSortByNameAndSamplesByLabels) {
  Registry registry;
  registry.gauge("ffe_b", "B").set(2.5);
  registry.counter("ffe_a_total", "A", {{"shard", "1"}}).inc(7);
  registry.counter("ffe_a_total", "A", {{"shard", "0"}}).inc(1);
  registry.gauge("ffe_b", "B", {{"kind", "x"}, {"shard", "3"}}).set(-1);
  EXPECT_EQ(registry.render(),
            "# HELP ffe_a_total A\n"
            "# TYPE ffe_a_total counter\n"
            "ffe_a_total{shard=\"0\"} 1\n"
            "ffe_a_total{shard=\"1\"} 7\n"
            "# HELP ffe_b B\n"
            "# TYPE ffe_b gauge\n"
            "ffe_b 2.5\n"
            "ffe_b{kind=\"x\",shard=\"3\"} -1\n");
}

TEST(MetricsFormat, HistogramIsCumulativeWithInfSumAndCount) {
  Registry registry;
  Histogram& latency =
      registry.histogram("ffe_commit_latency_seconds", "Commit latency", {0.25, 0.5, 1}, {{"shard", "2"}});
  latency.observe(0.125);
  latency.observe(0.25);  // == a bound: counted in that bucket (le is "<=")
  latency.observe(0.75);
  latency.observe(3);     // above every bound: +Inf only
  // The labels go on _sum and _count too; "le" comes last on the buckets.
  EXPECT_EQ(registry.render(),
            "# HELP ffe_commit_latency_seconds Commit latency\n"
            "# TYPE ffe_commit_latency_seconds histogram\n"
            "ffe_commit_latency_seconds_bucket{shard=\"2\",le=\"0.25\"} 2\n"
            "ffe_commit_latency_seconds_bucket{shard=\"2\",le=\"0.5\"} 2\n"
            "ffe_commit_latency_seconds_bucket{shard=\"2\",le=\"1\"} 3\n"
            "ffe_commit_latency_seconds_bucket{shard=\"2\",le=\"+Inf\"} 4\n"
            "ffe_commit_latency_seconds_sum{shard=\"2\"} 4.125\n"
            "ffe_commit_latency_seconds_count{shard=\"2\"} 4\n");
}

TEST(MetricsFormat, HistogramWithoutLabels) {
  Registry registry;
  Histogram& size = registry.histogram("ffe_batch_bytes", "Batch size", {64, 1024});
  size.observe(100);
  size.observe(std::nan(""));  // NaN: the +Inf bucket (as client_golang does)
  const std::string text = registry.render();
  EXPECT_EQ(text.substr(0, text.find("ffe_batch_bytes_sum")),
            "# HELP ffe_batch_bytes Batch size\n"
            "# TYPE ffe_batch_bytes histogram\n"
            "ffe_batch_bytes_bucket{le=\"64\"} 0\n"
            "ffe_batch_bytes_bucket{le=\"1024\"} 1\n"
            "ffe_batch_bytes_bucket{le=\"+Inf\"} 2\n");
  EXPECT_NE(text.find("ffe_batch_bytes_sum NaN\n"), std::string::npos) << text;
  EXPECT_NE(text.find("ffe_batch_bytes_count 2\n"), std::string::npos) << text;
}

TEST(MetricsFormat, EscapesLabelValuesAndHelp) {
  Registry registry;
  registry.gauge("ffe_x", "line one\nback\\slash \"quotes\" stay", {{"path", "a\\b\"c\nd"}}).set(1);
  EXPECT_EQ(registry.render(),
            "# HELP ffe_x line one\\nback\\\\slash \"quotes\" stay\n"
            "# TYPE ffe_x gauge\n"
            "ffe_x{path=\"a\\\\b\\\"c\\nd\"} 1\n");
}

TEST(MetricsFormat, ValuesAreIntegersOrShortestRoundTrip) {
  EXPECT_EQ(format_value(0), "0");
  EXPECT_EQ(format_value(-0.0), "0");
  EXPECT_EQ(format_value(42), "42");
  EXPECT_EQ(format_value(-7), "-7");
  EXPECT_EQ(format_value(1e15), "1000000000000000");
  EXPECT_EQ(format_value(0.25), "0.25");
  EXPECT_EQ(format_value(0.1), "0.1");
  EXPECT_EQ(format_value(1e300), "1e+300");
  EXPECT_EQ(format_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(format_value(std::nan("")), "NaN");
  EXPECT_EQ(std::stod(format_value(1.0 / 3)), 1.0 / 3);  // round trip
}

TEST(MetricsFormat, NamesFollowThePrometheusGrammar) {
  EXPECT_TRUE(is_valid_metric_name("ffe_commands_total"));
  EXPECT_TRUE(is_valid_metric_name("ns:rule_name"));
  EXPECT_TRUE(is_valid_metric_name("_x"));
  EXPECT_FALSE(is_valid_metric_name(""));
  EXPECT_FALSE(is_valid_metric_name("1x"));
  EXPECT_FALSE(is_valid_metric_name("ffe-commands"));
  EXPECT_FALSE(is_valid_metric_name("ffe commands"));
  EXPECT_TRUE(is_valid_label_name("shard"));
  EXPECT_TRUE(is_valid_label_name("_x9"));
  EXPECT_FALSE(is_valid_label_name("__reserved"));
  EXPECT_FALSE(is_valid_label_name("a:b"));
  EXPECT_FALSE(is_valid_label_name("9a"));
  EXPECT_FALSE(is_valid_label_name(""));
}

TEST(MetricsFormat, EmptyRegistryRendersNothing) {
  Registry registry;
  EXPECT_EQ(registry.render(), "");
}

TEST(MetricsFormat, ContentTypeIsTextFormat004) {
  EXPECT_EQ(kContentType, "text/plain; version=0.0.4; charset=utf-8");
}

TEST(MetricsRegistry, SameNameAndLabelsIsTheSameMetric) {
  Registry registry;
  Counter& a = registry.counter("ffe_c_total", "C", {{"k", "v"}});
  Counter& b = registry.counter("ffe_c", "C", {{"k", "v"}});
  Counter& other = registry.counter("ffe_c_total", "C", {{"k", "w"}});
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &other);
  Gauge& g1 = registry.gauge("ffe_g", "G");
  Gauge& g2 = registry.gauge("ffe_g", "G");
  EXPECT_EQ(&g1, &g2);
  g1.inc(5);
  g2.dec(2);
  EXPECT_EQ(g1.value(), 3);
}

TEST(MetricsRegistryDeathTest, ConventionsAreEnforced) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH({ Registry r; r.counter("ffe-bad", "x"); }, "metric name");
  EXPECT_DEATH({ Registry r; r.gauge("ffe_g_total", "x"); }, "only a counter");
  EXPECT_DEATH({ Registry r; r.gauge("ffe_g", "x", {{"__name", "v"}}); }, "label name");
  EXPECT_DEATH({ Registry r; r.histogram("ffe_h_seconds", "x", {1}, {{"le", "1"}}); }, "label le");
  EXPECT_DEATH({ Registry r; r.histogram("ffe_h_seconds", "x", {2, 1}); }, "increase strictly");
  EXPECT_DEATH({ Registry r; r.histogram("ffe_h_count", "x", {1}); }, "_count");
  EXPECT_DEATH({ Registry r; r.counter("ffe_c", "x").inc(-1); }, "only goes up");
  EXPECT_DEATH(
      {
        Registry r;
        r.gauge("ffe_twice", "x");
        r.histogram("ffe_twice", "x", {1});
      },
      "two types");
}

TEST(MetricsCollectors, RunAtRenderAndMergeWithRegisteredFamilies) {
  Registry registry;
  registry.gauge("ffe_shard_revision", "Revision", {{"shard", "0"}}).set(5);
  int calls = 0;
  Registration registration = registry.add_collector([&calls](Scrape& scrape) {
    ++calls;
    scrape.gauge("ffe_shard_revision", "Revision", {{"shard", "1"}}, 9);
    scrape.counter("ffe_events", "Events", {}, 12);
    Histogram::Snapshot snapshot;
    snapshot.upper_bounds = {1};
    snapshot.cumulative_counts = {1, 3};
    snapshot.count = 3;
    snapshot.sum = 4.5;
    scrape.histogram("ffe_wait_seconds", "Waits", {}, snapshot);
  });
  EXPECT_TRUE(registration.active());
  EXPECT_EQ(registry.render(),
            "# HELP ffe_events_total Events\n"
            "# TYPE ffe_events_total counter\n"
            "ffe_events_total 12\n"
            "# HELP ffe_shard_revision Revision\n"
            "# TYPE ffe_shard_revision gauge\n"
            "ffe_shard_revision{shard=\"0\"} 5\n"
            "ffe_shard_revision{shard=\"1\"} 9\n"
            "# HELP ffe_wait_seconds Waits\n"
            "# TYPE ffe_wait_seconds histogram\n"
            "ffe_wait_seconds_bucket{le=\"1\"} 1\n"
            "ffe_wait_seconds_bucket{le=\"+Inf\"} 3\n"
            "ffe_wait_seconds_sum 4.5\n"
            "ffe_wait_seconds_count 3\n");
  EXPECT_EQ(calls, 1);
  registry.render();
  EXPECT_EQ(calls, 2);

  registration.reset();
  EXPECT_FALSE(registration.active());
  EXPECT_EQ(registry.render(),
            "# HELP ffe_shard_revision Revision\n"
            "# TYPE ffe_shard_revision gauge\n"
            "ffe_shard_revision{shard=\"0\"} 5\n");
  EXPECT_EQ(calls, 2);
}

TEST(MetricsCollectors, RegistrationMovesAndMayOutliveTheRegistry) {
  Registration kept;
  {
    Registry registry;
    Registration first = registry.add_collector([](Scrape& scrape) { scrape.gauge("ffe_one", "1", {}, 1); });
    kept = std::move(first);
    EXPECT_FALSE(first.active());  // NOLINT(bugprone-use-after-move): moved-from is inactive
    EXPECT_TRUE(kept.active());
    EXPECT_NE(registry.render().find("ffe_one 1\n"), std::string::npos);
  }
  kept.reset();  // the registry is gone: nothing to do, no crash
  EXPECT_FALSE(kept.active());
}

TEST(MetricsConcurrency, UpdatesFromManyThreadsAreNotLost) {
  Registry registry;
  Counter& counter = registry.counter("ffe_hits_total", "Hits");
  Gauge& gauge = registry.gauge("ffe_level", "Level");
  Histogram& histogram = registry.histogram("ffe_op_seconds", "Ops", {0.5});
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        counter.inc();
        gauge.inc();
        histogram.observe(t % 2 == 0 ? 0.25 : 1.0);
        if (i % 5000 == 0) registry.render();  // scrapes race with updates
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(counter.value(), kThreads * kPerThread);
  EXPECT_EQ(gauge.value(), kThreads * kPerThread);
  const Histogram::Snapshot snapshot = histogram.snapshot();
  EXPECT_EQ(snapshot.count, static_cast<std::uint64_t>(kThreads * kPerThread));
  EXPECT_EQ(snapshot.cumulative_counts[0], static_cast<std::uint64_t>(kThreads / 2 * kPerThread));
  EXPECT_DOUBLE_EQ(snapshot.sum, kThreads / 2 * kPerThread * 0.25 + kThreads / 2 * kPerThread * 1.0);
}

TEST(MetricsBuckets, HelpersBuildIncreasingBounds) {
  EXPECT_EQ(exponential_buckets(1, 2, 4), (std::vector<double>{1, 2, 4, 8}));
  EXPECT_EQ(linear_buckets(0, 5, 3), (std::vector<double>{0, 5, 10}));
  const std::vector<double> latency = latency_buckets_seconds();
  EXPECT_EQ(latency.front(), 0.0001);
  EXPECT_EQ(latency.back(), 10);
  const std::vector<double> sizes = size_buckets_bytes();
  EXPECT_EQ(sizes.front(), 64);
  EXPECT_EQ(sizes.back(), 64.0 * 1024 * 1024);
  Registry registry;
  registry.histogram("ffe_l_seconds", "L", latency);  // valid (strictly increasing, finite)
  registry.histogram("ffe_s_bytes", "S", sizes);
}

// promtool (Debian's prometheus package, scripts/setup.sh installs it) lints the format and
// the naming conventions: _total on counters, base units, help text, no type in the name.
TEST(MetricsPromtool, RenderedSamplePassesPromtoolCheckMetrics) {
  if (!testing::promtool_available()) GTEST_SKIP() << "promtool not installed (apt-get install prometheus)";
  Registry registry;
  registry.counter("ffe_commands_total", "Commands decided").inc(3);
  registry.counter("ffe_journal_written_bytes_total", "Bytes written", {{"shard", "0"}}).inc(4096);
  registry.gauge("ffe_actors_live", "Live actors").set(12);
  Histogram& latency = registry.histogram("ffe_commit_latency_seconds", "Commit latency",
                                          latency_buckets_seconds(), {{"shard", "0"}});
  latency.observe(0.002);
  latency.observe(0.3);
  registry.histogram("ffe_batch_size_bytes", "Batch sizes", size_buckets_bytes()).observe(5000);
  Registration registration = registry.add_collector([](Scrape& scrape) {
    scrape.gauge("ffe_shard_revision", "The shard's revision", {{"shard", "0"}}, 17);
    scrape.counter("ffe_late_replies", "Late replies", {}, 2);
  });
  const testing::PromtoolResult result = testing::promtool_check(registry.render());
  EXPECT_EQ(result.exit_code, 0) << result.output << "\n--- input ---\n" << registry.render();
  EXPECT_EQ(result.output, "") << registry.render();
}

TEST(MetricsPromtool, PromtoolCatchesABrokenSample) {
  // Proves the check above is not vacuous: promtool fails a counter without _total.
  if (!testing::promtool_available()) GTEST_SKIP() << "promtool not installed (apt-get install prometheus)";
  const testing::PromtoolResult result = testing::promtool_check(
      "# HELP ffe_requests Requests\n# TYPE ffe_requests counter\nffe_requests 1\n");
  EXPECT_NE(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("_total"), std::string::npos) << result.output;
}

}  // namespace
}  // namespace ffe::metrics
