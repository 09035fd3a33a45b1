#pragma once
// A tiny Prometheus registry: counters, gauges and histograms with labels, rendered in the
// Prometheus text exposition format 0.0.4 (what `GET /metrics` serves; docs/http.md).
//
// No dependency beyond the standard library (and events/assert.h): the runtime, the journal
// and every adapter may use it without paying for httplib, JSON or protobuf.
//
// Conventions (https://prometheus.io/docs/practices/naming/), enforced where cheap:
//  - names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* and never
//    start with "__"; a histogram may not use the label "le".
//  - a counter's name always ends in `_total`: the registry appends it when missing, so
//    counter("ffe_commands") and counter("ffe_commands_total") are the same family.
//  - base units in names and values: `_seconds`, `_bytes` (never ms or KiB).
//  - histograms are cumulative: `_bucket{le="..."}` counts observations <= le, the last
//    bucket is le="+Inf" (== `_count`), then `_sum` and `_count`.
// A broken convention is a programmer error (names are constants in code): FFE_ASSERT.
//
// Thread safety: every method of every class may be called from any thread. Counter,
// Gauge and Histogram updates are lock-free atomics (the hot path); creating a metric and
// render() take the registry's mutex; collectors run under the collectors' mutex.
//
// Collectors: a callback run at each render() (each scrape) that reports values it reads
// from somewhere else (Runtime::stats(), Journal::stats()), so those components never
// depend on this library. adapters/metrics/runtime_metrics.h registers the runtime's.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ffe::metrics {

// Label name -> value, rendered in the order given.
using Labels = std::vector<std::pair<std::string, std::string>>;

// The Content-Type of render()'s output.
inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

// A monotonically increasing value (events, bytes). Reset only by a restart.
class Counter {
 public:
  // amount >= 0 (a negative amount is a programmer error).
  void inc(double amount = 1);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// A value that goes up and down (live actors, in-flight commands).
class Gauge {
 public:
  void set(double value) { value_.store(value, std::memory_order_relaxed); }
  void inc(double amount = 1);
  void dec(double amount = 1) { inc(-amount); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Observations counted into buckets by upper bound (latencies in seconds, sizes in bytes).
class Histogram {
 public:
  // upper_bounds: finite, strictly increasing, at least one; "+Inf" is implicit.
  explicit Histogram(std::vector<double> upper_bounds);

  // Counts `value` in the first bucket whose bound is >= value (NaN and values above every
  // bound: the +Inf bucket) and adds it to the sum.
  void observe(double value);

  struct Snapshot {
    std::vector<double> upper_bounds;             // without +Inf
    std::vector<std::uint64_t> cumulative_counts;  // one per bound, then +Inf (== count)
    double sum = 0;
    std::uint64_t count = 0;
  };
  // A consistent-enough view for a scrape: count is the +Inf bucket, so _count and the
  // buckets always agree; _sum may lag an observation racing with the scrape.
  Snapshot snapshot() const;
  const std::vector<double>& upper_bounds() const { return upper_bounds_; }

 private:
  std::vector<double> upper_bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // per bucket (not cumulative) + Inf
  std::atomic<double> sum_{0};
};

// Bucket helpers. start > 0, factor > 1, count >= 1: start, start*factor, ...
std::vector<double> exponential_buckets(double start, double factor, std::size_t count);
// start, start+width, ...; width > 0, count >= 1.
std::vector<double> linear_buckets(double start, double width, std::size_t count);
// Latencies from 100 us to 10 s (seconds): commit, saga step and request latencies.
std::vector<double> latency_buckets_seconds();
// Sizes from 64 B to 64 MiB (bytes), by factors of 4.
std::vector<double> size_buckets_bytes();

// What a collector reports at scrape time. Values are taken as they are (a counter's value
// is the cumulative count the collector read); the same conventions as the registry apply.
// A family reported with two types is a programmer error; the help text of whoever
// reported the family first wins. Not thread-safe: one Scrape per render(), used by one collector at a time.
class Scrape {
 public:
  void counter(std::string_view name, std::string_view help, const Labels& labels, double value);
  void gauge(std::string_view name, std::string_view help, const Labels& labels, double value);
  void histogram(std::string_view name, std::string_view help, const Labels& labels,
                 const Histogram::Snapshot& snapshot);

  class Families;  // the families being rendered (metrics.cc)

 private:
  friend class Registry;
  explicit Scrape(Families& families) : families_(families) {}
  Families& families_;
};

// Runs at every render(); must be quick, must not throw, and must not call back into the
// registry (add_collector, a Registration's reset, render: it would deadlock).
using Collector = std::function<void(Scrape&)>;

class Registry;

// Keeps a collector registered; destroying or reset()ting it removes the collector, waiting
// for a render() that is running it. Safe to outlive the Registry (it then does nothing).
class [[nodiscard]] Registration {
 public:
  Registration() = default;
  Registration(Registration&& other) noexcept;
  Registration& operator=(Registration&& other) noexcept;
  Registration(const Registration&) = delete;
  Registration& operator=(const Registration&) = delete;
  ~Registration() { reset(); }
  void reset();
  bool active() const { return id_ != 0; }

  struct Collectors;  // shared with the Registry (metrics.cc)

 private:
  friend class Registry;
  Registration(std::weak_ptr<Collectors> collectors, std::uint64_t id)
      : collectors_(std::move(collectors)), id_(id) {}
  std::weak_ptr<Collectors> collectors_;
  std::uint64_t id_ = 0;
};

// Registry — owner: whoever serves /metrics (the `ffe serve` process builds one and hands
// it to the components that record and to the AdminServer that renders). Metrics live as
// long as the registry; the references it returns stay valid until it is destroyed.
class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The metric of that name and labels, created on first use (the same object after). The
  // help text is set by the first call; a family keeps one type (and, for histograms, one
  // set of buckets): asking for another is a programmer error.
  Counter& counter(std::string_view name, std::string_view help, const Labels& labels = {});
  Gauge& gauge(std::string_view name, std::string_view help, const Labels& labels = {});
  Histogram& histogram(std::string_view name, std::string_view help,
                       std::vector<double> upper_bounds, const Labels& labels = {});

  Registration add_collector(Collector collector);

  // Every family, registered and collected, sorted by name; within a family the samples
  // sorted by their rendered labels. Each family: "# HELP", "# TYPE", its samples.
  std::string render() const;

  struct Family;

 private:
  Family& family(std::string_view name, std::string_view help, int type);
  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<Family>, std::less<>> families_;
  std::shared_ptr<Registration::Collectors> collectors_;
};

// --- the text format's pieces (exposed for tests and for other renderers) ---------------------
bool is_valid_metric_name(std::string_view name);
bool is_valid_label_name(std::string_view name);
// A sample value: integers below 2^53 without a fraction ("42"), else the shortest
// round-trip form ("0.25", "1e+300"); "NaN", "+Inf", "-Inf".
std::string format_value(double value);
// `\` -> `\\`, `"` -> `\"`, newline -> `\n`.
std::string escape_label_value(std::string_view value);
// `\` -> `\\`, newline -> `\n`.
std::string escape_help(std::string_view help);

}  // namespace ffe::metrics
