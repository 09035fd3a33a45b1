#include "adapters/metrics/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <system_error>

#include "events/assert.h"

namespace ffe::metrics {

namespace {

enum Type { kCounter = 0, kGauge = 1, kHistogram = 2 };

const char* type_name(int type) {
  switch (type) {
    case kCounter: return "counter";
    case kGauge: return "gauge";
    default: return "histogram";
  }
}

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

std::string counter_name(std::string_view name) {
  std::string full(name);
  if (!ends_with(full, "_total")) full += "_total";
  return full;
}

void check_name(std::string_view name, int type) {
  FFE_ASSERT(is_valid_metric_name(name), "metric name must match [a-zA-Z_:][a-zA-Z0-9_:]*");
  if (type != kCounter) {
    FFE_ASSERT(!ends_with(name, "_total"), "only a counter's name ends in _total");
  }
  if (type == kHistogram) {
    FFE_ASSERT(!ends_with(name, "_bucket") && !ends_with(name, "_sum") && !ends_with(name, "_count"),
               "a histogram's name must not end in _bucket, _sum or _count");
  }
}

// `a="x",b="y"` (no braces): the key of a child within its family and its rendered labels.
std::string render_labels(const Labels& labels, int type) {
  std::string out;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const auto& [name, value] = labels[i];
    FFE_ASSERT(is_valid_label_name(name), "label name must match [a-zA-Z_][a-zA-Z0-9_]* without a __ prefix");
    FFE_ASSERT(type != kHistogram || name != "le", "a histogram may not use the label le");
    for (std::size_t j = 0; j < i; ++j) FFE_ASSERT(labels[j].first != name, "a label name repeats");
    if (!out.empty()) out += ',';
    out += name;
    out += "=\"";
    out += escape_label_value(value);
    out += '"';
  }
  return out;
}

void check_buckets(const std::vector<double>& bounds) {
  FFE_ASSERT(!bounds.empty(), "a histogram needs at least one bucket");
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    FFE_ASSERT(std::isfinite(bounds[i]), "histogram bucket bounds must be finite (+Inf is implicit)");
    FFE_ASSERT(i == 0 || bounds[i - 1] < bounds[i], "histogram bucket bounds must increase strictly");
  }
}

void atomic_add(std::atomic<double>& target, double amount) {
  target.fetch_add(amount, std::memory_order_relaxed);
}

}  // namespace

// --- the metrics ------------------------------------------------------------------------------

void Counter::inc(double amount) {
  FFE_ASSERT(amount >= 0, "a counter only goes up");
  atomic_add(value_, amount);
}

void Gauge::inc(double amount) { atomic_add(value_, amount); }

Histogram::Histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)),
      counts_(new std::atomic<std::uint64_t>[upper_bounds_.size() + 1]) {
  check_buckets(upper_bounds_);
  for (std::size_t i = 0; i <= upper_bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::observe(double value) {
  std::size_t bucket = upper_bounds_.size();  // +Inf (also NaN)
  if (!std::isnan(value)) {
    bucket = static_cast<std::size_t>(
        std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value) - upper_bounds_.begin());
  }
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  atomic_add(sum_, value);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot snapshot;
  snapshot.upper_bounds = upper_bounds_;
  snapshot.cumulative_counts.reserve(upper_bounds_.size() + 1);
  std::uint64_t running = 0;
  for (std::size_t i = 0; i <= upper_bounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    snapshot.cumulative_counts.push_back(running);
  }
  snapshot.count = running;
  snapshot.sum = sum_.load(std::memory_order_relaxed);
  return snapshot;
}

std::vector<double> exponential_buckets(double start, double factor, std::size_t count) {
  FFE_ASSERT(start > 0 && factor > 1 && count >= 1, "exponential_buckets(start > 0, factor > 1, count >= 1)");
  std::vector<double> bounds;
  double bound = start;
  for (std::size_t i = 0; i < count; ++i, bound *= factor) bounds.push_back(bound);
  return bounds;
}

std::vector<double> linear_buckets(double start, double width, std::size_t count) {
  FFE_ASSERT(width > 0 && count >= 1, "linear_buckets(start, width > 0, count >= 1)");
  std::vector<double> bounds;
  for (std::size_t i = 0; i < count; ++i) bounds.push_back(start + width * static_cast<double>(i));
  return bounds;
}

std::vector<double> latency_buckets_seconds() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,     10};
}

std::vector<double> size_buckets_bytes() { return exponential_buckets(64, 4, 11); }  // 64 B .. 64 MiB

// --- families: what render() prints -----------------------------------------------------------

namespace {

// One child's values at render time.
struct Sample {
  double value = 0;
  Histogram::Snapshot histogram;
};

struct FamilyView {
  int type = kCounter;
  std::string help;
  std::map<std::string, Sample> samples;  // rendered labels -> values
};

}  // namespace

class Scrape::Families {
 public:
  std::map<std::string, FamilyView, std::less<>> families;

  FamilyView& family(std::string name, std::string_view help, int type) {
    auto it = families.find(name);
    if (it == families.end()) {
      FamilyView view;
      view.type = type;
      view.help = std::string(help);
      it = families.emplace(std::move(name), std::move(view)).first;
    }
    FFE_ASSERT(it->second.type == type, "a metric family is reported with two types");
    return it->second;
  }
};

void Scrape::counter(std::string_view name, std::string_view help, const Labels& labels, double value) {
  const std::string full = counter_name(name);
  check_name(full, kCounter);
  families_.family(full, help, kCounter).samples[render_labels(labels, kCounter)].value = value;
}

void Scrape::gauge(std::string_view name, std::string_view help, const Labels& labels, double value) {
  check_name(name, kGauge);
  families_.family(std::string(name), help, kGauge).samples[render_labels(labels, kGauge)].value = value;
}

void Scrape::histogram(std::string_view name, std::string_view help, const Labels& labels,
                       const Histogram::Snapshot& snapshot) {
  check_name(name, kHistogram);
  check_buckets(snapshot.upper_bounds);
  FFE_ASSERT(snapshot.cumulative_counts.size() == snapshot.upper_bounds.size() + 1,
             "a histogram snapshot needs one cumulative count per bound plus +Inf");
  families_.family(std::string(name), help, kHistogram).samples[render_labels(labels, kHistogram)].histogram =
      snapshot;
}

// --- registry --------------------------------------------------------------------------------

struct Registry::Family {
  int type = kCounter;
  std::string help;
  std::vector<double> upper_bounds;  // histograms
  struct Child {
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
  };
  std::map<std::string, Child> children;  // rendered labels -> metric
};

struct Registration::Collectors {
  std::mutex mutex;  // held while collectors run and while one is removed
  std::uint64_t next_id = 1;
  std::map<std::uint64_t, Collector> callbacks;  // in registration order
};

Registration::Registration(Registration&& other) noexcept
    : collectors_(std::move(other.collectors_)), id_(std::exchange(other.id_, 0)) {}

Registration& Registration::operator=(Registration&& other) noexcept {
  if (this != &other) {
    reset();
    collectors_ = std::move(other.collectors_);
    id_ = std::exchange(other.id_, 0);
  }
  return *this;
}

void Registration::reset() {
  if (id_ == 0) return;
  if (auto collectors = collectors_.lock()) {
    std::lock_guard lock(collectors->mutex);
    collectors->callbacks.erase(id_);
  }
  collectors_.reset();
  id_ = 0;
}

Registry::Registry() : collectors_(std::make_shared<Registration::Collectors>()) {}
Registry::~Registry() = default;

Registry::Family& Registry::family(std::string_view name, std::string_view help, int type) {
  auto it = families_.find(name);
  if (it == families_.end()) {
    auto family = std::make_unique<Family>();
    family->type = type;
    family->help = std::string(help);
    it = families_.emplace(std::string(name), std::move(family)).first;
  }
  FFE_ASSERT(it->second->type == type, "a metric family is registered with two types");
  return *it->second;
}

Counter& Registry::counter(std::string_view name, std::string_view help, const Labels& labels) {
  const std::string full = counter_name(name);
  check_name(full, kCounter);
  const std::string key = render_labels(labels, kCounter);
  std::lock_guard lock(mutex_);
  Family::Child& child = family(full, help, kCounter).children[key];
  if (!child.counter) child.counter = std::make_unique<Counter>();
  return *child.counter;
}

Gauge& Registry::gauge(std::string_view name, std::string_view help, const Labels& labels) {
  check_name(name, kGauge);
  const std::string key = render_labels(labels, kGauge);
  std::lock_guard lock(mutex_);
  Family::Child& child = family(name, help, kGauge).children[key];
  if (!child.gauge) child.gauge = std::make_unique<Gauge>();
  return *child.gauge;
}

Histogram& Registry::histogram(std::string_view name, std::string_view help,
                               std::vector<double> upper_bounds, const Labels& labels) {
  check_name(name, kHistogram);
  check_buckets(upper_bounds);
  const std::string key = render_labels(labels, kHistogram);
  std::lock_guard lock(mutex_);
  Family& fam = family(name, help, kHistogram);
  if (fam.upper_bounds.empty()) fam.upper_bounds = upper_bounds;
  FFE_ASSERT(fam.upper_bounds == upper_bounds, "a histogram family is registered with two sets of buckets");
  Family::Child& child = fam.children[key];
  if (!child.histogram) child.histogram = std::make_unique<Histogram>(std::move(upper_bounds));
  return *child.histogram;
}

Registration Registry::add_collector(Collector collector) {
  FFE_ASSERT(collector != nullptr, "add_collector needs a callback");
  std::lock_guard lock(collectors_->mutex);
  const std::uint64_t id = collectors_->next_id++;
  collectors_->callbacks.emplace(id, std::move(collector));
  return Registration(collectors_, id);
}

namespace {

void append_sample(std::string& out, std::string_view name, std::string_view suffix,
                   const std::string& labels, std::string_view extra_label, double value) {
  out += name;
  out += suffix;
  if (!labels.empty() || !extra_label.empty()) {
    out += '{';
    out += labels;
    if (!labels.empty() && !extra_label.empty()) out += ',';
    out += extra_label;
    out += '}';
  }
  out += ' ';
  out += format_value(value);
  out += '\n';
}

}  // namespace

std::string Registry::render() const {
  Scrape::Families collected;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [name, family] : families_) {
      FamilyView& view = collected.family(name, family->help, family->type);
      for (const auto& [labels, child] : family->children) {
        Sample& sample = view.samples[labels];
        if (child.counter) sample.value = child.counter->value();
        if (child.gauge) sample.value = child.gauge->value();
        if (child.histogram) sample.histogram = child.histogram->snapshot();
      }
    }
  }
  {
    std::lock_guard lock(collectors_->mutex);
    Scrape scrape(collected);
    for (const auto& [id, callback] : collectors_->callbacks) callback(scrape);
  }

  std::string out;
  for (const auto& [name, family] : collected.families) {
    if (family.samples.empty()) continue;
    out += "# HELP ";
    out += name;
    out += ' ';
    out += escape_help(family.help);
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type_name(family.type);
    out += '\n';
    for (const auto& [labels, sample] : family.samples) {
      if (family.type != kHistogram) {
        append_sample(out, name, "", labels, "", sample.value);
        continue;
      }
      const Histogram::Snapshot& h = sample.histogram;
      for (std::size_t i = 0; i < h.upper_bounds.size(); ++i) {
        append_sample(out, name, "_bucket", labels, "le=\"" + format_value(h.upper_bounds[i]) + "\"",
                      static_cast<double>(h.cumulative_counts[i]));
      }
      append_sample(out, name, "_bucket", labels, "le=\"+Inf\"", static_cast<double>(h.count));
      append_sample(out, name, "_sum", labels, "", h.sum);
      append_sample(out, name, "_count", labels, "", static_cast<double>(h.count));
    }
  }
  return out;
}

// --- the text format's pieces ----------------------------------------------------------------

bool is_valid_metric_name(std::string_view name) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    const bool digit = c >= '0' && c <= '9';
    if (!(alpha || (i > 0 && digit))) return false;
  }
  return true;
}

bool is_valid_label_name(std::string_view name) {
  if (name.empty() || name.substr(0, 2) == "__") return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (!(alpha || (i > 0 && digit))) return false;
  }
  return true;
}

std::string format_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  constexpr double kExact = 9007199254740992.0;  // 2^53
  if (value == std::floor(value) && std::fabs(value) < kExact) {
    return std::to_string(static_cast<std::int64_t>(value));  // also turns -0 into "0"
  }
  char buffer[64];
  const auto [end, error] = std::to_chars(buffer, buffer + sizeof buffer, value);
  FFE_ASSERT(error == std::errc(), "to_chars of a double fits in 64 bytes");
  return std::string(buffer, end);
}

std::string escape_label_value(std::string_view value) {
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

std::string escape_help(std::string_view help) {
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

}  // namespace ffe::metrics
