// The runtime under kill -9 (`ctest -R Crash`): a child process (runtime_child.cc, mode
// flash) runs a flash sale on one hot SKU from several threads and prints each reservation's
// answer only from its Ack callback, that is only once it is durable. The test kills it with
// SIGKILL at random moments, restarting it on the same data dir each time (at least
// kKillsMin kills), lets a last start stop cleanly, then opens the Runtime itself and checks:
//   - no acknowledged reservation is lost: every order acknowledged RESERVED holds its unit;
//   - no oversell: reserved == the number of reservations <= the stock received;
//   - no duplicate: each order holds exactly 1 unit;
//   - every order acknowledged INSUFFICIENT holds nothing;
//   - each shard's digest, and each entity's state, equal a rebuild that folds every event
//     from scratch (runtime::DomainFolder);
//   - idempotency across crashes: re-submitting a reservation acknowledged RESERVED before a
//     crash answers RESERVED again with no new revision and reserved unchanged (each start
//     re-submits a few, and the test re-submits more at the end).
// The seed is printed; FFE_CRASH_SEED=<n> replays one run's kill timings.

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "actors/runtime/runtime.h"
#include "storage/journal.h"
#include "tests/runtime/crash_support.h"
#include "tests/storage/test_support.h"

namespace ffe::runtime {
namespace {

using storage::testing::Child;
using storage::testing::TempDir;

constexpr std::uint32_t kShards = 4;
constexpr int kThreads = 3;
constexpr int kInFlightPerThread = 64;
constexpr std::int64_t kHotStock = 20'000;
constexpr std::int64_t kOtherStock = 1000;  // runtime_child.cc receives this on sku-a/b/c
constexpr int kKillsMin = 20;
constexpr int kKillsPlanned = 40;
// Past this budget the test adds no kills beyond kKillsMin.
constexpr auto kBudget = std::chrono::seconds(50);
constexpr std::size_t kResubmitPerStart = 8;
constexpr std::size_t kResubmitAtEnd = 300;

const std::vector<std::string> kSkus = {"hot", "sku-a", "sku-b", "sku-c"};

std::int64_t stock_of(const std::string& sku) { return sku == "hot" ? kHotStock : kOtherStock; }

struct Acked {
  std::unordered_map<std::string, std::string> reserved;      // order -> sku
  std::unordered_map<std::string, std::string> insufficient;  // order -> sku
  std::vector<std::pair<std::string, std::string>> reserved_in_order;
  std::uint64_t resubmits_answered = 0;
  std::uint64_t errors = 0;  // "E" lines: not applied (closing)
};

std::vector<std::string> split(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string word; in >> word;) out.push_back(word);
  return out;
}

// Parses one start's lines into `acked`; every problem becomes a test failure naming `start`.
void absorb(const std::vector<std::string>& lines, int start, Acked& acked) {
  for (const std::string& line : lines) {
    const auto words = split(line);
    if (words.empty()) continue;
    const std::string& kind = words[0];
    if (kind == "open" || kind == "stocked" || kind == "go" || kind == "bye") continue;
    if ((kind == "R" || kind == "I" || kind == "E") && words.size() == 3) {
      const std::string& order = words[1];
      const std::string& sku = words[2];
      if (kind == "E") {
        ++acked.errors;
        continue;
      }
      auto& mine = kind == "R" ? acked.reserved : acked.insufficient;
      auto& other = kind == "R" ? acked.insufficient : acked.reserved;
      EXPECT_FALSE(other.contains(order)) << "start " << start << ": order " << order << " acknowledged both RESERVED and INSUFFICIENT";
      EXPECT_TRUE(mine.emplace(order, sku).second) << "start " << start << ": order " << order << " acknowledged twice";
      if (kind == "R") acked.reserved_in_order.emplace_back(order, sku);
      continue;
    }
    if (kind == "D" && words.size() == 5) {
      // A reservation acknowledged RESERVED by an earlier start, sent again after the crash.
      EXPECT_EQ(words[3], "RESERVED") << "start " << start << ": re-submitted reservation " << words[1] << " on "
                                      << words[2] << " answered " << words[3];
      EXPECT_EQ(words[4], "0") << "start " << start << ": re-submitted reservation " << words[1]
                               << " committed a new revision (applied twice?)";
      ++acked.resubmits_answered;
      continue;
    }
    ADD_FAILURE() << "start " << start << ": the child reported: " << line;
  }
}

struct FinalCheck {
  std::int64_t hot_reserved = 0;
  std::uint64_t unacknowledged_reservations = 0;  // held, but the ack died with the child
  std::size_t entities = 0;
  std::uint64_t revisions = 0;
};

// Opens the Runtime on the data dir and checks everything in the header comment.
FinalCheck verify(const std::string& dir, const Acked& acked, std::mt19937_64& rng) {
  FinalCheck result;
  Options options;
  options.data_dir = dir;
  options.shards = kShards;
  options.scheduler_threads = 2;
  auto opened = Runtime::open(options);
  EXPECT_TRUE(opened.is_ok()) << "reopen after the crashes: " << opened.status().to_string();
  if (!opened) return result;
  Runtime& runtime = **opened;

  std::map<std::string, sku::State> states;
  for (const std::string& sku : kSkus) {
    auto read = runtime.sku(sku);
    EXPECT_TRUE(read.is_ok()) << read.status().to_string();
    if (!read || !read->has_value()) {
      ADD_FAILURE() << "sku " << sku << " is missing after the crashes";
      continue;
    }
    const sku::State& state = **read;
    states[sku] = state;
    EXPECT_EQ(state.on_hand, stock_of(sku)) << "sku " << sku << ": the receipt applied other than once";
    EXPECT_EQ(state.received_total, stock_of(sku)) << "sku " << sku;
    std::int64_t held = 0;
    std::size_t not_one = 0;
    for (const auto& [order, qty] : state.reservations) {
      held += qty;
      if (qty != 1) {
        if (++not_one <= 5) ADD_FAILURE() << "sku " << sku << ": order " << order << " holds " << qty << " units, not 1";
      }
    }
    EXPECT_EQ(not_one, 0u) << "sku " << sku << ": orders holding other than 1 unit (a duplicate reservation)";
    EXPECT_EQ(state.reserved, held) << "sku " << sku << ": reserved != sum of its reservations";
    EXPECT_EQ(state.reserved, static_cast<std::int64_t>(state.reservations.size())) << "sku " << sku;
    EXPECT_LE(state.reserved, stock_of(sku)) << "sku " << sku << ": OVERSOLD";
    EXPECT_LE(state.reserved, state.on_hand) << "sku " << sku << ": OVERSOLD";
    EXPECT_EQ(sku::check_invariants(state), std::nullopt) << "sku " << sku;
  }
  result.hot_reserved = states.contains("hot") ? states["hot"].reserved : 0;

  // No acknowledged reservation lost.
  std::size_t lost = 0;
  for (const auto& [order, sku] : acked.reserved) {
    auto it = states.find(sku);
    if (it == states.end()) continue;
    if (!it->second.reservations.contains(order)) {
      if (++lost <= 10) ADD_FAILURE() << "acknowledged reservation of " << order << " on " << sku << " was LOST";
    }
  }
  EXPECT_EQ(lost, 0u) << "acknowledged reservations lost (of " << acked.reserved.size() << ")";
  // INSUFFICIENT holds nothing.
  std::size_t holding = 0;
  for (const auto& [order, sku] : acked.insufficient) {
    auto it = states.find(sku);
    if (it == states.end()) continue;
    if (it->second.reservations.contains(order)) {
      if (++holding <= 10) ADD_FAILURE() << "order " << order << " was answered INSUFFICIENT on " << sku << " but holds stock";
    }
  }
  EXPECT_EQ(holding, 0u);
  // Reservations held whose ack the child never printed (it died first): allowed, counted.
  for (const auto& [sku, state] : states) {
    for (const auto& [order, qty] : state.reservations) {
      if (!acked.reserved.contains(order)) ++result.unacknowledged_reservations;
    }
  }

  // Digests and entity states equal a rebuild from the events.
  storage::Journal& journal = runtime.journal();
  for (std::uint32_t s = 0; s < runtime.shard_count(); ++s) {
    const ShardId shard{s};
    auto head = journal.revision(shard);
    if (!head) {
      ADD_FAILURE() << "revision of shard " << s << ": " << head.status().to_string();
      continue;
    }
    std::size_t entities = 0;
    for (const std::string& problem : testing::check_shard_rebuild(journal, shard, *head, &entities)) {
      ADD_FAILURE() << problem;
    }
    // And as of an older revision (reads through snapshots taken before it).
    for (const std::string& problem : testing::check_shard_rebuild(journal, shard, *head / 2)) {
      ADD_FAILURE() << "at half the head: " << problem;
    }
    result.entities += entities;
    result.revisions += *head;
  }

  // Idempotency across crashes: reservations acknowledged before some crash, sent again.
  std::vector<storage::Revision> heads_before;
  for (std::uint32_t s = 0; s < runtime.shard_count(); ++s) heads_before.push_back(*journal.revision(ShardId{s}));
  std::vector<std::pair<std::string, std::string>> sample = acked.reserved_in_order;
  std::shuffle(sample.begin(), sample.end(), rng);
  if (sample.size() > kResubmitAtEnd) sample.resize(kResubmitAtEnd);
  std::vector<std::pair<std::size_t, std::future<Ack>>> answers;
  for (std::size_t i = 0; i < sample.size(); ++i) {
    auto promise = std::make_shared<std::promise<Ack>>();
    std::future<Ack> future = promise->get_future();
    Status submitted = runtime.submit(InventoryCommand{testing::reserve(sample[i].first, sample[i].second, 1)},
                                      [promise](const Ack& ack) { promise->set_value(ack); });
    EXPECT_TRUE(submitted.is_ok()) << submitted.to_string();
    if (submitted) answers.emplace_back(i, std::move(future));
  }
  for (auto& [i, future] : answers) {
    const auto& [order, sku] = sample[i];
    if (future.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
      ADD_FAILURE() << "no ack for the re-submitted reserve of " << order;
      continue;
    }
    const Ack ack = future.get();
    EXPECT_TRUE(ack.status.is_ok()) << ack.status.to_string();
    if (!ack.stock_reply) {
      ADD_FAILURE() << "re-submitted reserve of " << order << ": no stock reply";
      continue;
    }
    EXPECT_EQ(ack.stock_reply->status(), v1::StockReply::RESERVED)
        << "re-submitted reserve of " << order << " on " << sku << " answered "
        << v1::StockReply::Status_Name(ack.stock_reply->status());
    EXPECT_FALSE(ack.new_revision) << "re-submitted reserve of " << order << " made a new revision";
  }
  for (const std::string& sku : kSkus) {
    auto read = runtime.sku(sku);
    if (read.is_ok() && read->has_value() && states.contains(sku)) {
      EXPECT_EQ((*read)->reserved, states[sku].reserved) << "re-submitting acknowledged reservations changed " << sku;
    }
  }
  for (std::uint32_t s = 0; s < runtime.shard_count(); ++s) {
    EXPECT_EQ(*journal.revision(ShardId{s}), heads_before[s]) << "re-submits advanced shard " << s;
  }
  return result;
}

TEST(RuntimeCrash, FlashSaleSurvivesKill9) {
  std::uint64_t seed = std::random_device{}();
  if (const char* fixed = std::getenv("FFE_CRASH_SEED")) seed = std::strtoull(fixed, nullptr, 10);
  std::printf("runtime crash test seed %llu (FFE_CRASH_SEED=%llu replays the kill timings)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> delay_ms(50, 900);

  TempDir temp;
  const std::string dir = temp.sub("data");
  Acked acked;
  const auto started = std::chrono::steady_clock::now();
  int kills = 0, start = 0;
  long max_open_ms = 0;

  auto resubmit_args = [&] {
    std::vector<std::string> args;
    if (acked.reserved_in_order.empty()) return args;
    std::uniform_int_distribution<std::size_t> pick(0, acked.reserved_in_order.size() - 1);
    for (std::size_t i = 0; i < kResubmitPerStart; ++i) {
      const auto& [order, sku] = acked.reserved_in_order[pick(rng)];
      args.push_back(order + "," + sku);
    }
    return args;
  };
  auto child_args = [&](int n) {
    std::vector<std::string> args = {"flash",
                                     dir,
                                     std::to_string(kShards),
                                     "s" + std::to_string(n),
                                     std::to_string(kHotStock),
                                     std::to_string(kThreads),
                                     std::to_string(kInFlightPerThread)};
    for (auto& arg : resubmit_args()) args.push_back(std::move(arg));
    return args;
  };
  // Reads until "go"; false (with the lines read) if the child failed to start.
  auto until_go = [&](Child& child, std::vector<std::string>& lines) {
    while (true) {
      auto line = storage::testing::read_line(child, 60000);
      if (!line) return false;
      if (line->starts_with("open ")) {
        const auto words = split(*line);
        if (words.size() >= 5) max_open_ms = std::max(max_open_ms, std::stol(words[4]));
      }
      if (*line == "go") return true;
      lines.push_back(*line);
      if (line->starts_with("error")) return false;
    }
  };

  while (kills < kKillsMin || (kills < kKillsPlanned && std::chrono::steady_clock::now() - started < kBudget)) {
    ++start;
    Child child = storage::testing::spawn_child(FFE_RUNTIME_CHILD, child_args(start));
    std::vector<std::string> lines;
    if (!until_go(child, lines)) {
      ::kill(child.pid, SIGKILL);
      for (auto& line : storage::testing::read_remaining_lines(child)) lines.push_back(std::move(line));
      const int code = storage::testing::wait_child(child);
      std::string all;
      for (const auto& line : lines) all += "\n  " + line;
      FAIL() << "start " << start << " (after " << kills << " kills, seed " << seed << ") did not get going; exit "
             << code << "; it said:" << all;
    }
    const auto kill_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(delay_ms(rng));
    while (std::chrono::steady_clock::now() < kill_at) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(kill_at - std::chrono::steady_clock::now());
      auto line = storage::testing::read_line(child, std::max<int>(1, static_cast<int>(left.count())));
      if (line) lines.push_back(*line);
    }
    ::kill(child.pid, SIGKILL);
    for (auto& line : storage::testing::read_remaining_lines(child)) lines.push_back(std::move(line));
    const int code = storage::testing::wait_child(child);
    EXPECT_EQ(code, 128 + SIGKILL) << "start " << start << ": the child died on its own (exit " << code << ")";
    ++kills;
    absorb(lines, start, acked);
    if (::testing::Test::HasFailure()) FAIL() << "after kill " << kills << " (seed " << seed << ")";
  }

  // A last start that stops cleanly (stdin closed): it finishes what it accepted.
  ++start;
  {
    Child child = storage::testing::spawn_child(FFE_RUNTIME_CHILD, child_args(start));
    std::vector<std::string> lines;
    const bool going = until_go(child, lines);
    if (going) {
      const auto stop_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
      while (std::chrono::steady_clock::now() < stop_at) {
        if (auto line = storage::testing::read_line(child, 50)) lines.push_back(*line);
      }
    }
    ::close(child.stdin_fd);
    child.stdin_fd = -1;
    for (auto& line : storage::testing::read_remaining_lines(child)) lines.push_back(std::move(line));
    const int code = storage::testing::wait_child(child);
    ASSERT_TRUE(going) << "the last start did not get going";
    EXPECT_EQ(code, 0) << "the last start did not stop cleanly";
    ASSERT_FALSE(lines.empty());
    EXPECT_EQ(lines.back(), "bye") << "the last start did not stop cleanly";
    lines.pop_back();
    absorb(lines, start, acked);
  }

  const FinalCheck final = verify(dir, acked, rng);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf(
      "runtime crash test: %d SIGKILLs + 1 clean stop in %.1f s (slowest open %ld ms); %zu reservations acknowledged "
      "RESERVED, %zu INSUFFICIENT, %llu re-submits after a crash answered; hot SKU reserved %lld of %lld; "
      "%llu reservations held without a printed ack; %zu entities, %llu revisions rebuilt; seed %llu\n",
      kills, seconds, max_open_ms, acked.reserved.size(), acked.insufficient.size(),
      static_cast<unsigned long long>(acked.resubmits_answered), static_cast<long long>(final.hot_reserved),
      static_cast<long long>(kHotStock), static_cast<unsigned long long>(final.unacknowledged_reservations),
      final.entities, static_cast<unsigned long long>(final.revisions), static_cast<unsigned long long>(seed));
  EXPECT_GE(kills, kKillsMin);
  EXPECT_GT(acked.reserved.size(), static_cast<std::size_t>(kills)) << "too little work between kills to mean much";
  EXPECT_GT(acked.resubmits_answered, 0u) << "no re-submit after a crash was ever answered";
}

}  // namespace
}  // namespace ffe::runtime
