// ffe_journal_bench: the journal's commit throughput and latency at 1, 16, 256 and 4096
// commands per synced batch, set against the raw RocksDB synced-WriteBatch ceiling measured
// in the same run (../shared/peers/rocksdb_ceiling.sh, whose output --ceiling reads); the
// restart (open + recovery) time of a journal holding 1M events; and the cost of a get at
// an old revision as history grows. Prints one JSON object. bench/journal.sh runs it.
//
// A command here is what the ceiling's entry is: one 200-byte event (15-byte entity key +
// 185-byte payload), plus the input position every real command carries. Commands are
// pipelined from one producer thread with 3 x batch in flight, so the writer always finds a
// full batch queued; the journal caps each synced write at the batch size.
//
// Benchmarks never assert on time (STYLE); this one only measures and reports.
//
// Usage: ffe bench journal [--seconds S] [--rounds R] [--ceiling-command CMD | --ceiling FILE]
//                          [--dir DIR] [--restart-events N] [--batches 1,16,256,4096]
// Diagnostics (environment): FFE_BENCH_CPU=1 prints CPU seconds per thread after each case;
// FFE_BENCH_WINDOW=k keeps k x batch commands in flight (default 3);
// FFE_BENCH_NO_SNAPSHOTS=1 turns journal-made snapshots off.

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/journal/journal_bench.h"
#include "storage/journal.h"

using namespace ffe::storage;
using Clock = std::chrono::steady_clock;

namespace {

constexpr ShardId kShard{0};
constexpr std::size_t kEventBytes = 200;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

double percentile(std::vector<double>& values, double p) {
  if (values.empty()) return 0;
  std::size_t i = std::min(values.size() - 1, static_cast<std::size_t>(p * values.size()));
  std::nth_element(values.begin(), values.begin() + i, values.end());
  return values[i];
}

// The toy domain of the tests: events are decimal deltas; state "n=<count>;s=<sum>".
class CounterFolder : public StateFolder {
 public:
  std::string fold(std::string_view, std::optional<std::string_view> snapshot,
                   std::span<const std::string_view> events) override {
    long long count = 0, sum = 0;
    if (snapshot) std::sscanf(std::string(*snapshot).c_str(), "n=%lld;s=%lld", &count, &sum);
    for (auto event : events) {
      ++count;
      sum += std::atoll(std::string(event.substr(0, event.find(' '))).c_str());
    }
    events_folded.fetch_add(events.size(), std::memory_order_relaxed);
    return "n=" + std::to_string(count) + ";s=" + std::to_string(sum);
  }
  std::atomic<std::uint64_t> events_folded{0};
};

std::string entity_of(std::uint64_t i) {
  char key[32];
  std::snprintf(key, sizeof key, "bench/e-%06llu", static_cast<unsigned long long>(i % 100000));  // 15 bytes
  return key;
}

CommitRequest bench_command(std::uint64_t seq, const std::string& entity) {
  CommitRequest request;
  request.shard = kShard;
  std::string payload = "1 ";
  payload.resize(kEventBytes - entity.size(), 'p');  // "1 ppp...": a delta of 1, padded
  request.events.push_back(Event{entity, std::move(payload)});
  request.input = InputPosition{"bench/0", static_cast<std::int64_t>(seq)};
  return request;
}

std::string fresh_dir(const std::string& base, const std::string& name) {
  std::string dir = base + "/" + name;
  std::filesystem::remove_all(dir);
  return dir;
}

struct CaseResult {
  std::size_t batch = 0;
  double commits_per_s = 0, p50_us = 0, p99_us = 0, avg_batch = 0;
  // The median time inside RocksDB's synced Write (what the ceiling measures as its latency):
  // the rest of a commit's latency is the journal's own (queueing, hand-offs, callbacks).
  double write_p50_us = 0;
  std::uint64_t commands = 0;
};

// CPU seconds per thread name of this process, from /proc (so the report shows where the
// time went: the commit writer, the snapshot thread, the producer, RocksDB's flushes).
std::map<std::string, double> thread_cpu_seconds() {
  std::map<std::string, double> out;
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream stat(task.path() / "stat");
    std::string line;
    std::getline(stat, line);
    auto open = line.find('('), close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    std::string name = line.substr(open + 1, close - open - 1);
    std::istringstream rest(line.substr(close + 2));
    std::string field;
    double utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
      if (i == 14) utime = std::atof(field.c_str());
      if (i == 15) stime = std::atof(field.c_str());
    }
    out[name] += (utime + stime) / ticks;
  }
  return out;
}

CaseResult run_case(const std::string& base, std::size_t batch, double seconds) {
  // Start each case from a settled disk: the peer script (or the previous case) leaves
  // dirty pages whose write-back would otherwise slow this case's fsyncs.
  ::sync();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  CounterFolder folder;
  JournalOptions options;
  options.shards = {kShard};
  options.folder = &folder;
  if (std::getenv("FFE_BENCH_NO_SNAPSHOTS")) options.snapshot_every_events = 0;
  options.commit_batch_commands = batch;
  options.commit_queue_commands = std::max<std::size_t>(4 * batch, 64);
  std::atomic<bool> measuring{false};
  std::vector<double> write_us;  // appended on the journal's writer thread only
  write_us.reserve(1'000'000);
  options.on_batch = [&](const BatchObservation& batch_seen) {
    if (measuring.load(std::memory_order_relaxed)) {
      write_us.push_back(std::chrono::duration<double, std::micro>(batch_seen.write).count());
    }
  };
  auto opened = Journal::open(fresh_dir(base, "case-" + std::to_string(batch)), options);
  if (!opened) {
    std::fprintf(stderr, "open: %s\n", opened.status().to_string().c_str());
    std::exit(1);
  }
  Journal& journal = **opened;

  const std::size_t window_factor = std::getenv("FFE_BENCH_WINDOW") ? std::atoi(std::getenv("FFE_BENCH_WINDOW")) : 3;
  const std::size_t window = std::max<std::size_t>(window_factor * batch, 1);
  const std::size_t low_water = window > batch ? window - batch : 0;
  std::atomic<std::int64_t> in_flight{0};
  std::vector<double> latencies;  // written by the writer thread (callbacks) only
  latencies.reserve(4'000'000);
  std::atomic<std::uint64_t> completed{0}, failed{0};

  const auto warmup = std::chrono::duration<double>(std::min(1.0, seconds / 3));
  const auto start = Clock::now();
  Clock::time_point measure_start, measure_end;
  JournalStats stats_start{};
  std::uint64_t completed_start = 0;
  std::uint64_t seq = 0;
  while (true) {
    const auto now = Clock::now();
    if (!measuring && now - start >= warmup) {
      completed_start = completed.load();
      stats_start = journal.stats();
      measure_start = now;
      measuring = true;
    }
    if (measuring && seconds_since(measure_start) >= seconds) break;
    // When the window is full, wait until a whole batch completed (the callbacks wake this
    // thread once per batch, not once per command).
    std::int64_t current = in_flight.load();
    while (current >= static_cast<std::int64_t>(window)) {
      in_flight.wait(current);
      current = in_flight.load();
      if (current > static_cast<std::int64_t>(low_water)) current = static_cast<std::int64_t>(window);
    }
    const std::string entity = entity_of(seq);
    const auto submitted = Clock::now();
    in_flight.fetch_add(1);
    Status status = journal.submit(bench_command(seq, entity), [&, submitted](const CommitResult& result) {
      if (!result.status) failed.fetch_add(1);
      if (measuring.load(std::memory_order_relaxed)) {
        latencies.push_back(std::chrono::duration<double, std::micro>(Clock::now() - submitted).count());
      }
      completed.fetch_add(1, std::memory_order_relaxed);
      if (in_flight.fetch_sub(1) - 1 <= static_cast<std::int64_t>(low_water)) in_flight.notify_one();
    });
    if (!status) {
      std::fprintf(stderr, "submit: %s\n", status.to_string().c_str());
      std::exit(1);
    }
    ++seq;
  }
  measure_end = Clock::now();
  const std::uint64_t completed_end = completed.load();
  if (std::getenv("FFE_BENCH_CPU")) {
    for (const auto& [name, cpu] : thread_cpu_seconds()) std::fprintf(stderr, "  cpu %-16s %.2f s\n", name.c_str(), cpu);
  }
  const JournalStats stats_end = journal.stats();
  measuring = false;
  // Drain before reading the latencies (the writer appends to them).
  while (in_flight.load() > 0) in_flight.wait(in_flight.load());
  if (failed.load() > 0) {
    std::fprintf(stderr, "%llu commits failed\n", static_cast<unsigned long long>(failed.load()));
    std::exit(1);
  }
  CaseResult result;
  result.batch = batch;
  const double elapsed = std::chrono::duration<double>(measure_end - measure_start).count();
  result.commands = completed_end - completed_start;
  result.commits_per_s = result.commands / elapsed;
  const std::uint64_t batches = stats_end.batches - stats_start.batches;
  result.avg_batch = batches ? static_cast<double>(stats_end.commands - stats_start.commands) / batches : 0;
  result.p50_us = percentile(latencies, 0.50);
  result.p99_us = percentile(latencies, 0.99);
  result.write_p50_us = percentile(write_us, 0.50);
  return result;
}

// Fills a journal with `events` commands of one event each (every 10th on one hot entity),
// in batches of 4096, pipelined.
void fill(Journal& journal, std::uint64_t from, std::uint64_t events) {
  std::atomic<std::int64_t> in_flight{0};
  for (std::uint64_t seq = from; seq < from + events; ++seq) {
    std::int64_t current = in_flight.load();
    while (current >= 8192) {
      in_flight.wait(current);
      current = in_flight.load();
    }
    in_flight.fetch_add(1);
    const std::string entity = seq % 10 == 0 ? std::string("bench/hot-000") : entity_of(seq);
    Status status = journal.submit(bench_command(seq, entity), [&](const CommitResult& result) {
      if (!result.status) {
        std::fprintf(stderr, "fill: %s\n", result.status.to_string().c_str());
        std::exit(1);
      }
      in_flight.fetch_sub(1);
      in_flight.notify_one();
    });
    if (!status) std::exit(1);
  }
  while (in_flight.load() > 0) in_flight.wait(in_flight.load());
}

struct GetCost {
  double us = 0;
  double events_folded = 0;
};

// The mean cost of get(hot entity) at `samples` revisions spread over the whole history.
GetCost measure_gets(Journal& journal, CounterFolder& folder, int samples) {
  const Revision head = *journal.revision(kShard);
  folder.events_folded = 0;
  const auto start = Clock::now();
  for (int i = 1; i <= samples; ++i) {
    Revision at = head * i / samples;
    auto got = journal.get(kShard, "bench/hot-000", at);
    if (!got) {
      std::fprintf(stderr, "get: %s\n", got.status().to_string().c_str());
      std::exit(1);
    }
  }
  return GetCost{seconds_since(start) * 1e6 / samples, static_cast<double>(folder.events_folded.load()) / samples};
}

struct RestartResult {
  std::uint64_t events = 0;
  double fill_s = 0;
  double open_full_ms = 0, open_tail_ms = 0, open_unflushed_ms = 0;
  GetCost get_small, get_large;
  std::uint64_t history_small = 0;
  std::uint64_t wal_events = 100'000;
};

double time_open_ms(const std::string& dir, JournalOptions options, bool flush_at_close = true) {
  options.flush_at_close = flush_at_close;
  const auto start = Clock::now();
  auto journal = Journal::open(dir, options);
  const double ms = seconds_since(start) * 1e3;
  if (!journal) {
    std::fprintf(stderr, "reopen: %s\n", journal.status().to_string().c_str());
    std::exit(1);
  }
  return ms;
}

RestartResult run_restart(const std::string& base, std::uint64_t events) {
  RestartResult result;
  result.events = events;
  CounterFolder folder;
  JournalOptions options;
  options.shards = {kShard};
  options.folder = &folder;
  options.commit_batch_commands = 4096;
  const std::string dir = fresh_dir(base, "restart");
  {
    auto journal = Journal::open(dir, options);
    if (!journal) std::exit(1);
    const auto start = Clock::now();
    result.history_small = events / 10;
    fill(**journal, 0, result.history_small);
    (*journal)->wait_for_snapshots();
    result.get_small = measure_gets(**journal, folder, 200);
    fill(**journal, result.history_small, events - result.history_small);
    result.fill_s = seconds_since(start);
    (*journal)->wait_for_snapshots();
    result.get_large = measure_gets(**journal, folder, 200);
  }  // closed: memtables flushed
  options.open_verification = OpenVerification::kFull;
  result.open_full_ms = time_open_ms(dir, options);
  options.open_verification = OpenVerification::kTail;
  result.open_tail_ms = time_open_ms(dir, options);
  // A restart after a crash: the memtable was never flushed, so open replays the WAL. A
  // close without flush leaves the same files a SIGKILL would.
  {
    JournalOptions no_flush = options;
    no_flush.flush_at_close = false;
    auto journal = Journal::open(dir, no_flush);
    if (!journal) std::exit(1);
    fill(**journal, events, result.wal_events);
  }
  options.open_verification = OpenVerification::kTail;
  result.open_unflushed_ms = time_open_ms(dir, options);
  return result;
}

// "RESULT name=rocksdb_write mode=sync threads=1 entries_per_batch=N ... entries_per_s=X"
std::map<std::size_t, std::map<std::string, double>> read_ceiling(const std::string& path) {
  std::map<std::size_t, std::map<std::string, double>> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("name=rocksdb_write") == std::string::npos || line.find("mode=sync ") == std::string::npos ||
        line.find("threads=1 ") == std::string::npos) {
      continue;
    }
    std::map<std::string, double> fields;
    std::istringstream words(line);
    std::string word;
    while (words >> word) {
      auto eq = word.find('=');
      if (eq != std::string::npos) fields[word.substr(0, eq)] = std::atof(word.substr(eq + 1).c_str());
    }
    out[static_cast<std::size_t>(fields["entries_per_batch"])] = fields;
  }
  return out;
}

// Runs the ceiling command and parses its RESULT lines (its stderr passes through).
std::map<std::size_t, std::map<std::string, double>> run_ceiling(const std::string& command, const std::string& base) {
  const std::string out = base + "/ceiling.txt";
  const std::string line = command + " > " + out;
  if (std::system(line.c_str()) != 0) {
    std::fprintf(stderr, "the ceiling command failed: %s\n", command.c_str());
    std::exit(1);
  }
  return read_ceiling(out);
}

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

std::string json_array(const std::vector<double>& values, const char* format) {
  std::string out = "[";
  char buffer[64];
  for (std::size_t i = 0; i < values.size(); ++i) {
    std::snprintf(buffer, sizeof buffer, format, values[i]);
    out += (i ? "," : "") + std::string(buffer);
  }
  return out + "]";
}

}  // namespace

namespace ffe::bench {

int journal_bench_main(int argc, char** argv) {
  double seconds = 2;
  int rounds = 3;
  std::string ceiling_path, ceiling_command;
  std::string base = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") + "/ffe-journal-bench-" +
                     std::to_string(::getpid());
  std::uint64_t restart_events = 1'000'000;
  std::vector<std::size_t> batches = {1, 16, 256, 4096};
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--seconds") seconds = std::atof(next().c_str());
    else if (arg == "--rounds") rounds = std::max(1, std::atoi(next().c_str()));
    else if (arg == "--ceiling") ceiling_path = next();
    else if (arg == "--ceiling-command") ceiling_command = next();
    else if (arg == "--dir") base = next();
    else if (arg == "--restart-events") restart_events = std::strtoull(next().c_str(), nullptr, 10);
    else if (arg == "--batches") {
      batches.clear();
      std::stringstream list(next());
      std::string item;
      while (std::getline(list, item, ',')) batches.push_back(std::stoul(item));
    } else {
      std::fprintf(stderr,
                   "usage: %s [--seconds S] [--rounds R] [--ceiling-command CMD | --ceiling FILE] [--dir DIR]\n"
                   "          [--restart-events N] [--batches 1,16,...]\n",
                   argv[0]);
      return 2;
    }
  }
  std::filesystem::create_directories(base);
  if (!ceiling_path.empty()) rounds = 1;

  // Rounds of (journal, ceiling, journal): the journal's cases run just before the ceiling
  // (in reverse order, so the small batches sit next to the ceiling's first cases) and just
  // after it, and a round's ratio sets their mean against the ceiling between them. The
  // disk's sync time on this shared machine drifts by 2x between minutes; bracketing cancels
  // the drift that is linear over a round and keeps each pair within seconds. The reported
  // figures are medians over every journal run, the ratio the median of per-round ratios.
  struct PerBatch {
    std::vector<double> commits, p50, p99, avg_batch, write_p50, ceiling, ceiling_p50, ceiling_p99, ratio;
  };
  std::map<std::size_t, PerBatch> results;
  const bool bracket = !ceiling_command.empty();
  // One pass over the batch sizes; returns commits/s per batch size.
  auto journal_pass = [&](bool reverse) {
    std::map<std::size_t, double> commits;
    std::vector<std::size_t> order = batches;
    if (reverse) std::reverse(order.begin(), order.end());
    for (std::size_t batch : order) {
      CaseResult r = run_case(base, batch, seconds);
      std::filesystem::remove_all(base + "/case-" + std::to_string(batch));
      PerBatch& out = results[batch];
      out.commits.push_back(r.commits_per_s);
      out.p50.push_back(r.p50_us);
      out.p99.push_back(r.p99_us);
      out.avg_batch.push_back(r.avg_batch);
      out.write_p50.push_back(r.write_p50_us);
      commits[batch] = r.commits_per_s;
    }
    return commits;
  };
  for (int round = 0; round < rounds; ++round) {
    std::map<std::size_t, double> before;
    if (bracket) {
      std::fprintf(stderr, "round %d/%d: the journal (before the ceiling)...\n", round + 1, rounds);
      before = journal_pass(/*reverse=*/true);
    }
    std::map<std::size_t, std::map<std::string, double>> ceiling;
    if (bracket) {
      std::fprintf(stderr, "round %d/%d: raw RocksDB ceiling...\n", round + 1, rounds);
      ceiling = run_ceiling(ceiling_command, base);
    } else if (!ceiling_path.empty()) {
      ceiling = read_ceiling(ceiling_path);
    }
    std::fprintf(stderr, "round %d/%d: the journal%s...\n", round + 1, rounds, bracket ? " (after the ceiling)" : "");
    std::map<std::size_t, double> after = journal_pass(/*reverse=*/false);
    for (std::size_t batch : batches) {
      PerBatch& out = results[batch];
      const double journal = bracket ? (before[batch] + after[batch]) / 2 : after[batch];
      auto c = ceiling.find(batch);
      if (c != ceiling.end() && c->second["entries_per_s"] > 0) {
        out.ceiling.push_back(c->second["entries_per_s"]);
        out.ceiling_p50.push_back(c->second["p50_us"]);
        out.ceiling_p99.push_back(c->second["p99_us"]);
        out.ratio.push_back(journal / c->second["entries_per_s"]);
      }
      if (bracket) {
        std::fprintf(stderr, "  %zu commands/batch: %.0f then %.0f commits/s, ceiling %.0f entries/s between\n", batch,
                     before[batch], after[batch], out.ceiling.empty() ? 0.0 : out.ceiling.back());
      } else {
        std::fprintf(stderr, "  %zu commands/batch: %.0f commits/s (ceiling %.0f entries/s)\n", batch, journal,
                     out.ceiling.empty() ? 0.0 : out.ceiling.back());
      }
    }
  }

  std::string json = "{\"benchmark\":\"journal\",\"seconds_per_case\":" + std::to_string(seconds) +
                     ",\"rounds\":" + std::to_string(rounds) + ",\"journal_runs_per_round\":" + (bracket ? "2" : "1") + ",\"event_bytes\":" + std::to_string(kEventBytes) +
                     ",\"cases\":[";
  bool all_at_target = true, have_ceiling = false;
  double worst_ratio = 1e9;
  bool first = true;
  for (std::size_t batch : batches) {
    const PerBatch& r = results[batch];
    char buffer[512];
    std::snprintf(buffer, sizeof buffer,
                  "%s{\"commands_per_batch\":%zu,\"commits_per_s\":%.0f,\"p50_us\":%.0f,\"p99_us\":%.0f,"
                  "\"avg_commands_per_sync\":%.1f,\"synced_write_p50_us\":%.0f,\"commits_per_s_rounds\":%s",
                  first ? "" : ",", batch, median(r.commits), median(r.p50), median(r.p99), median(r.avg_batch),
                  median(r.write_p50),
                  json_array(r.commits, "%.0f").c_str());
    first = false;
    json += buffer;
    if (!r.ratio.empty()) {
      have_ceiling = true;
      const double ratio = median(r.ratio);
      worst_ratio = std::min(worst_ratio, ratio);
      all_at_target &= ratio >= 0.70;
      std::snprintf(buffer, sizeof buffer,
                    ",\"ceiling_entries_per_s\":%.0f,\"ceiling_p50_us\":%.0f,\"ceiling_p99_us\":%.0f,"
                    "\"ceiling_rounds\":%s,\"ratio\":%.2f,\"ratio_rounds\":%s",
                    median(r.ceiling), median(r.ceiling_p50), median(r.ceiling_p99),
                    json_array(r.ceiling, "%.0f").c_str(), ratio, json_array(r.ratio, "%.2f").c_str());
      json += buffer;
    } else {
      all_at_target = false;
    }
    json += "}";
  }
  json += "]";
  if (have_ceiling) {
    char buffer[128];
    std::snprintf(buffer, sizeof buffer, ",\"target_ratio\":0.70,\"worst_ratio\":%.2f,\"all_at_target\":%s",
                  worst_ratio, all_at_target ? "true" : "false");
    json += buffer;
  }
  if (restart_events > 0) {
    std::fprintf(stderr, "restart: filling a journal with %llu events...\n", static_cast<unsigned long long>(restart_events));
    RestartResult r = run_restart(base, restart_events);
    char buffer[1024];
    std::snprintf(buffer, sizeof buffer,
                  ",\"restart\":{\"events\":%llu,\"fill_s\":%.1f,\"open_full_verification_ms\":%.0f,"
                  "\"open_tail_verification_ms\":%.0f,\"open_replaying_wal_tail_verification_ms\":%.0f,\"wal_events\":%llu},"
                  "\"get_hot_entity_old_revisions\":{\"history_events\":[%llu,%llu],\"mean_us\":[%.1f,%.1f],"
                  "\"mean_events_folded\":[%.1f,%.1f]}",
                  static_cast<unsigned long long>(r.events), r.fill_s, r.open_full_ms, r.open_tail_ms, r.open_unflushed_ms,
                  static_cast<unsigned long long>(r.wal_events),
                  static_cast<unsigned long long>(r.history_small), static_cast<unsigned long long>(r.events),
                  r.get_small.us, r.get_large.us, r.get_small.events_folded, r.get_large.events_folded);
    json += buffer;
  }
  json += "}";
  std::printf("%s\n", json.c_str());
  std::filesystem::remove_all(base);
  return 0;
}

}  // namespace ffe::bench
