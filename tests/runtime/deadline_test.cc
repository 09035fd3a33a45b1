// Durable deadlines (runtime.h: "the journal's index holds every open order with its
// deadline; on open, every open order is restored, overdue deadlines fire and outstanding
// saga requests are sent again (with their same command ids)").
//
// A Runtime holding open orders is killed with SIGKILL (a helper process, runtime_child.cc
// mode orders) or closed cleanly (in this process); the data dir is reopened and the tests
// check that:
//   - an overdue deadline fires on recovery: the order is compensated as if the timed-out
//     step had succeeded (a void is sent for the unanswered authorize), ends CANCELLED with
//     its stock released, and publishes exactly one outcome;
//   - a deadline fires once: however often the runtime restarts around it, the order's
//     journal holds exactly one StepTimedOut;
//   - an outstanding request (an authorize the participant never saw answered) is sent again
//     on recovery with the same command id, and the order completes.
// Participants follow the simulators' conventions (tok_silent is never answered).

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "actors/runtime/runtime.h"
#include "sagas/fulfillment.h"
#include "storage/journal.h"
#include "tests/runtime/crash_support.h"
#include "tests/storage/test_support.h"

namespace ffe::runtime {
namespace {

using storage::testing::Child;
using storage::testing::TempDir;
using testing::ParticipantConfig;
using testing::ParticipantEgress;
using testing::Seen;
using testing::wall_ms;

constexpr std::uint32_t kShards = 4;

std::vector<std::string> split(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string word; in >> word;) out.push_back(word);
  return out;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string all;
  for (const auto& line : lines) all += "\n  " + line;
  return all;
}

// Reads the child's lines until `last` (or an "error" line, EOF, timeout). True if `last` came.
bool read_until(Child& child, const std::string& last, std::vector<std::string>& lines, int timeout_ms = 60000) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < until) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    auto line = storage::testing::read_line(child, std::max<int>(1, static_cast<int>(left.count())));
    if (!line) return false;
    lines.push_back(*line);
    if (*line == last) return true;
    if (line->starts_with("error")) return false;
  }
  return false;
}

// Keeps reading for `ms`, appending lines.
void read_for(Child& child, int ms, std::vector<std::string>& lines) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0) return;
    if (auto line = storage::testing::read_line(child, static_cast<int>(left.count()))) lines.push_back(*line);
  }
}

int kill9(Child& child, std::vector<std::string>& lines) {
  ::kill(child.pid, SIGKILL);
  for (auto& line : storage::testing::read_remaining_lines(child)) lines.push_back(std::move(line));
  return storage::testing::wait_child(child);
}

int close_cleanly(Child& child, std::vector<std::string>& lines) {
  ::close(child.stdin_fd);
  child.stdin_fd = -1;
  for (auto& line : storage::testing::read_remaining_lines(child)) lines.push_back(std::move(line));
  return storage::testing::wait_child(child);
}

Options options_for(const std::string& dir) {
  Options options;
  options.data_dir = dir;
  options.shards = kShards;
  options.scheduler_threads = 2;
  return options;
}

// A Runtime in this process with a participant egress attached; detaches before closing.
struct Opened {
  std::unique_ptr<ParticipantEgress> egress;
  std::unique_ptr<Runtime> runtime;
  std::int64_t opened_at_ms = 0;  // wall clock just before open()
  ~Opened() { close(); }
  void close() {
    if (egress) egress->detach();
    runtime.reset();
  }
};

std::unique_ptr<Opened> open_with(Options options, ParticipantConfig config) {
  auto opened = std::make_unique<Opened>();
  opened->egress = std::make_unique<ParticipantEgress>(config);
  options.egress = opened->egress.get();
  opened->opened_at_ms = wall_ms();
  auto runtime = Runtime::open(std::move(options));
  EXPECT_TRUE(runtime.is_ok()) << "Runtime::open: " << runtime.status().to_string();
  if (!runtime) return nullptr;
  opened->runtime = std::move(*runtime);
  opened->egress->attach(opened->runtime.get());
  return opened;
}

bool is_terminal(const order::State& state) { return state.terminal(); }

template <class Pred>
std::size_t count_events(const std::vector<v1::OrderEvent>& events, Pred pred) {
  return static_cast<std::size_t>(std::count_if(events.begin(), events.end(), pred));
}

std::string describe(const std::vector<v1::OrderEvent>& events) {
  std::string out;
  for (const auto& event : events) {
    out += "\n    ";
    const auto* field = v1::OrderEvent::descriptor()->FindFieldByNumber(event.event_case());
    out += field != nullptr ? field->name() : "?";
    if (event.has_step_started()) out += " " + v1::SagaStep_Name(event.step_started().step());
    if (event.has_step_timed_out()) {
      out += " " + v1::SagaStep_Name(event.step_timed_out().step()) + " at " + std::to_string(event.step_timed_out().at_ms());
    }
    if (event.has_completed()) out += " " + v1::OrderState_Name(event.completed().state());
  }
  return out;
}

// Waits until everything the runtime is doing settles, then a little longer, so a duplicate
// outcome (which would come right after the first) has had its chance to show.
void settle(Runtime& runtime) {
  EXPECT_TRUE(runtime.wait_quiet(std::chrono::seconds(10))) << "the runtime never got quiet";
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
}

// The order ended CANCELLED because its AUTHORIZE_PAYMENT step timed out in the run that
// opened at `reopened_at_ms`, with the unanswered authorize voided, exactly one outcome
// published (at the order's terminal revision) and exactly one StepTimedOut.
void expect_cancelled_by_timeout(Opened& opened, const std::string& id, std::int64_t timed_out_not_before_ms) {
  SCOPED_TRACE("order " + id);
  Runtime& runtime = *opened.runtime;
  auto state = testing::wait_order(runtime, id, is_terminal, std::chrono::seconds(20));
  ASSERT_TRUE(state.has_value()) << "the order is missing";
  ASSERT_EQ(state->state, v1::CANCELLED) << "the order is " << v1::OrderState_Name(state->state) << " (step "
                                          << v1::SagaStep_Name(state->step) << "), reason: " << state->reason;
  EXPECT_EQ(state->reason, "AUTHORIZE_PAYMENT timed out");
  EXPECT_TRUE(state->authorize_sent);
  EXPECT_TRUE(state->payment_voided) << "a timed-out authorize must be voided (as if it had succeeded)";

  const auto events = testing::order_events(runtime, id);
  const auto timeouts =
      count_events(events, [](const v1::OrderEvent& e) { return e.has_step_timed_out(); });
  EXPECT_EQ(timeouts, 1u) << "StepTimedOut events:" << describe(events);
  for (const auto& event : events) {
    if (!event.has_step_timed_out()) continue;
    EXPECT_EQ(event.step_timed_out().step(), v1::AUTHORIZE_PAYMENT);
    EXPECT_GE(event.step_timed_out().at_ms(), timed_out_not_before_ms)
        << "the deadline fired before the kill/close, not on recovery";
  }
  EXPECT_EQ(count_events(events, [](const v1::OrderEvent& e) { return e.has_payment_voided(); }), 1u) << describe(events);
  EXPECT_EQ(count_events(events, [](const v1::OrderEvent& e) { return e.has_completed(); }), 1u) << describe(events);

  // The void names the authorize it undoes (the participant never answered it).
  EXPECT_GE(opened.egress->count(Seen::kVoid, id), 1u) << "no void was requested";
  for (const Seen& seen : opened.egress->seen()) {
    if (seen.order_id != id || seen.kind != Seen::kVoid) continue;
    EXPECT_EQ(seen.command_id, saga::void_command_id(id));
    EXPECT_EQ(seen.detail, saga::authorize_command_id(id)) << "the void must name the authorize command id";
  }

  settle(runtime);
  const auto outcomes = opened.egress->outcomes_of(id);
  ASSERT_EQ(outcomes.size(), 1u) << "outcomes published for " << id;
  EXPECT_EQ(outcomes[0].state(), v1::CANCELLED);
  const ShardId shard = runtime.shard_of(id);
  EXPECT_EQ(outcomes[0].shard(), static_cast<std::int32_t>(shard.value));
  auto head = runtime.journal().revision(shard);
  ASSERT_TRUE(head.is_ok());
  auto entity = runtime.journal().get(shard, order_key(id), *head);
  ASSERT_TRUE(entity.is_ok() && entity->has_value());
  EXPECT_EQ(static_cast<storage::Revision>(outcomes[0].revision()), (*entity)->mod_revision)
      << "the outcome's revision is not the order's terminal revision";
}

// stats().open_orders_recovered: recovery runs in the actors after open() returns, so read it
// once the runtime is quiet (what it was right at open() is printed).
void expect_recovered(Runtime& runtime, std::size_t expected) {
  const std::uint64_t at_open = runtime.stats().open_orders_recovered;
  EXPECT_TRUE(runtime.wait_quiet(std::chrono::seconds(10))) << "the runtime never got quiet after open()";
  const std::uint64_t quiet = runtime.stats().open_orders_recovered;
  EXPECT_EQ(quiet, expected) << "stats().open_orders_recovered (it was " << at_open << " when open() returned)";
  std::printf("open_orders_recovered: %llu when open() returned, %llu once quiet (expected %zu)\n",
              static_cast<unsigned long long>(at_open), static_cast<unsigned long long>(quiet), expected);
}

void expect_stock_released(Runtime& runtime, const std::string& sku, std::int64_t on_hand) {
  auto state = runtime.sku(sku);
  ASSERT_TRUE(state.is_ok() && state->has_value()) << "sku " << sku;
  EXPECT_EQ((*state)->reserved, 0) << "sku " << sku << " still has units reserved";
  EXPECT_TRUE((*state)->reservations.empty()) << "sku " << sku;
  EXPECT_EQ((*state)->on_hand, on_hand) << "sku " << sku;
  EXPECT_EQ(sku::check_invariants(**state), std::nullopt);
}

// Every shard's digest (and every entity) equals a rebuild from its events.
void expect_rebuild_equal(Runtime& runtime) {
  runtime.wait_quiet(std::chrono::seconds(10));
  for (std::uint32_t s = 0; s < runtime.shard_count(); ++s) {
    auto head = runtime.journal().revision(ShardId{s});
    ASSERT_TRUE(head.is_ok());
    for (const auto& problem : testing::check_shard_rebuild(runtime.journal(), ShardId{s}, *head)) ADD_FAILURE() << problem;
  }
}

// ---------------------------------------------------------------------------------------

TEST(DurableDeadlines, OverdueDeadlineFiresOnRecovery) {
  // The child runs with a frozen clock, so no deadline can fire before the kill however slow
  // the machine is; this process reopens with the real clock, past every deadline.
  TempDir temp;
  const std::string dir = temp.sub("data");
  const std::vector<std::string> ids = {"od-1", "od-2", "od-3", "od-4"};
  std::vector<std::string> args = {"orders", dir, std::to_string(kShards), "--frozen-clock",
                                   "--authorize-timeout", "300", "--deadline", "2000",
                                   "--stock", "od-a=10", "--wait-authorizing"};
  for (const auto& id : ids) {
    args.push_back("--place");
    args.push_back(id + ",od-a,2,tok_silent,0");
  }
  Child child = storage::testing::spawn_child(FFE_RUNTIME_CHILD, args);
  std::vector<std::string> lines;
  const bool ready = read_until(child, "ready", lines);
  std::int64_t last_step_deadline = 0;
  std::map<std::string, int> authorizes_seen;
  for (const auto& line : lines) {
    auto words = split(line);
    if (words.size() == 3 && words[0] == "authorizing") last_step_deadline = std::max<std::int64_t>(last_step_deadline, std::stoll(words[2]));
    if (words.size() >= 4 && words[0] == "seen" && words[1] == "authorize") ++authorizes_seen[words[2]];
  }
  const int code = kill9(child, lines);
  ASSERT_TRUE(ready) << "the child did not get its orders to AUTHORIZING; it said:" << joined(lines);
  EXPECT_EQ(code, 128 + SIGKILL);
  for (const auto& id : ids) EXPECT_GE(authorizes_seen[id], 1) << id << ": the authorize was never published";

  // Wait past the step deadlines (the clock the child froze + 300 ms), then reopen.
  while (wall_ms() <= last_step_deadline + 100) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  Options options = options_for(dir);
  options.order_policy.authorize_timeout_ms = 300;
  options.order_policy.default_deadline_ms = 2000;
  auto opened = open_with(options, ParticipantConfig{});
  ASSERT_TRUE(opened);
  expect_recovered(*opened->runtime, ids.size());
  for (const auto& id : ids) expect_cancelled_by_timeout(*opened, id, opened->opened_at_ms);
  expect_stock_released(*opened->runtime, "od-a", 10);
  expect_rebuild_equal(*opened->runtime);
  const Stats stats = opened->runtime->stats();
  EXPECT_GE(stats.expired, ids.size()) << "stats().expired (\"deadlines that fired\") does not count the "
                                           "deadlines that fired on recovery";
  std::printf("overdue after kill: %llu open orders recovered, %llu deadlines fired, %llu retries\n",
              static_cast<unsigned long long>(stats.open_orders_recovered),
              static_cast<unsigned long long>(stats.expired), static_cast<unsigned long long>(stats.retries));
}

TEST(DurableDeadlines, OverdueDeadlineFiresOnRecoveryAfterCleanClose) {
  // The same, closing the Runtime cleanly in this process: the first run's clock is frozen
  // (Options::clock), the second run's is the real one.
  TempDir temp;
  const std::string dir = temp.sub("data");
  const std::vector<std::string> ids = {"cc-1", "cc-2", "cc-3"};
  Options options = options_for(dir);
  options.order_policy.authorize_timeout_ms = 300;
  options.order_policy.default_deadline_ms = 2000;
  std::int64_t last_step_deadline = 0;
  {
    Options first = options;
    const std::int64_t frozen_at = wall_ms();
    first.clock = [frozen_at] { return frozen_at; };
    auto opened = open_with(first, ParticipantConfig{});
    ASSERT_TRUE(opened);
    Runtime& runtime = *opened->runtime;
    auto stocked = testing::submit_and_wait(runtime, InventoryCommand{testing::receive("cc-a", 10, "r-cc-a")});
    ASSERT_TRUE(stocked && stocked->status.is_ok());
    for (const auto& id : ids) {
      auto placed = testing::submit_and_wait(runtime, OrderCommand{testing::place_order(id, "cc-a", 1, "tok_silent")});
      ASSERT_TRUE(placed && placed->status.is_ok()) << id;
    }
    for (const auto& id : ids) {
      auto state = testing::wait_order(runtime, id, [](const order::State& s) { return s.state != v1::RESERVING; },
                                       std::chrono::seconds(20));
      ASSERT_TRUE(state && state->state == v1::AUTHORIZING)
          << id << " is " << (state ? v1::OrderState_Name(state->state) : std::string("missing"));
      last_step_deadline = std::max(last_step_deadline, state->step_deadline_at_ms);
      EXPECT_TRUE(opened->egress->wait_count(Seen::kAuthorize, id, 1, std::chrono::seconds(10))) << id;
    }
    opened->close();
  }
  while (wall_ms() <= last_step_deadline + 100) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto opened = open_with(options, ParticipantConfig{});
  ASSERT_TRUE(opened);
  expect_recovered(*opened->runtime, ids.size());
  for (const auto& id : ids) expect_cancelled_by_timeout(*opened, id, opened->opened_at_ms);
  expect_stock_released(*opened->runtime, "cc-a", 10);
}

TEST(DurableDeadlines, DeadlineFiresOnceAcrossRestarts) {
  // Real clock. Three orders whose authorize is never answered, with order deadlines 1.5, 2
  // and 2.5 s; the runtime is killed (or closed cleanly) again and again while the deadlines
  // pass, sometimes with the void answered, sometimes not. However often it restarts, each
  // order's journal holds exactly one StepTimedOut, and the order ends CANCELLED.
  std::uint64_t seed = std::random_device{}();
  if (const char* fixed = std::getenv("FFE_CRASH_SEED")) seed = std::strtoull(fixed, nullptr, 10);
  std::printf("deadline restarts seed %llu (FFE_CRASH_SEED replays)\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  TempDir temp;
  const std::string dir = temp.sub("data");
  const std::vector<std::pair<std::string, int>> orders = {{"once-1", 1500}, {"once-2", 2000}, {"once-3", 2500}};
  auto common = [&](bool answer_voids) {
    std::vector<std::string> args = {"orders", dir, std::to_string(kShards), "--retry-initial", "100",
                                     "--retry-max", "400", "--answer-voids", answer_voids ? "1" : "0"};
    return args;
  };

  std::int64_t placed_at = 0;
  {
    auto args = common(false);
    for (const char* arg : {"--stock", "once-a=10"}) args.push_back(arg);
    for (const auto& [id, deadline] : orders) {
      args.push_back("--place");
      args.push_back(id + ",once-a,1,tok_silent," + std::to_string(deadline));
    }
    placed_at = wall_ms();
    Child child = storage::testing::spawn_child(FFE_RUNTIME_CHILD, args);
    std::vector<std::string> lines;
    const bool ready = read_until(child, "ready", lines);
    read_for(child, std::uniform_int_distribution<int>(100, 1000)(rng), lines);
    kill9(child, lines);
    ASSERT_TRUE(ready) << "the first start failed:" << joined(lines);
    for (const auto& [id, deadline] : orders) {
      bool placed = false;
      for (const auto& line : lines) placed |= line.starts_with("placed " + id + " ") && line.find("error") == std::string::npos;
      ASSERT_TRUE(placed) << id << " was not placed:" << joined(lines);
    }
  }

  // Restart until well past the last deadline: every start recovers the open orders.
  const std::int64_t last_deadline = placed_at + orders.back().second;
  int kills = 1, clean = 0, starts = 1, starts_across_deadlines = 0;
  std::uniform_int_distribution<int> run_ms(0, 450);
  std::uniform_int_distribution<int> coin(0, 2);
  while (starts < 16 && (starts < 7 || wall_ms() < last_deadline + 1000)) {
    ++starts;
    const bool answer_voids = coin(rng) == 0;
    const std::int64_t started_at = wall_ms();
    Child child = storage::testing::spawn_child(FFE_RUNTIME_CHILD, common(answer_voids));
    std::vector<std::string> lines;
    const bool ready = read_until(child, "ready", lines);
    read_for(child, run_ms(rng), lines);
    if (coin(rng) == 0) {
      const int code = close_cleanly(child, lines);
      ++clean;
      EXPECT_EQ(code, 0) << "start " << starts << " did not close cleanly"
                         << (code > 128 ? " (killed by signal " + std::to_string(code - 128) + " during ~Runtime)" : "")
                         << "; it said:" << joined(lines);
    } else {
      kill9(child, lines);
      ++kills;
    }
    ASSERT_TRUE(ready) << "start " << starts << " failed:" << joined(lines);
    if (started_at <= last_deadline && wall_ms() >= placed_at + orders.front().second) ++starts_across_deadlines;
  }

  auto opened = open_with(options_for(dir), ParticipantConfig{});
  ASSERT_TRUE(opened);
  Runtime& runtime = *opened->runtime;
  for (const auto& [id, deadline] : orders) {
    SCOPED_TRACE("order " + id);
    auto state = testing::wait_order(runtime, id, is_terminal, std::chrono::seconds(20));
    ASSERT_TRUE(state.has_value());
    EXPECT_EQ(state->state, v1::CANCELLED) << v1::OrderState_Name(state->state) << " " << state->reason;
    const auto events = testing::order_events(runtime, id);
    EXPECT_EQ(count_events(events, [](const v1::OrderEvent& e) { return e.has_step_timed_out(); }), 1u)
        << "StepTimedOut must be committed exactly once; the order's events:" << describe(events);
    EXPECT_EQ(count_events(events, [](const v1::OrderEvent& e) { return e.has_compensation_started(); }), 1u)
        << describe(events);
    EXPECT_EQ(count_events(events, [](const v1::OrderEvent& e) { return e.has_payment_voided(); }), 1u)
        << describe(events);
    EXPECT_EQ(count_events(events, [](const v1::OrderEvent& e) { return e.has_completed(); }), 1u) << describe(events);
    ASSERT_FALSE(events.empty());
    EXPECT_TRUE(events.back().has_completed()) << "something followed the terminal event:" << describe(events);
    std::int64_t step_deadline = 0;
    for (const auto& event : events) {
      if (event.has_step_started() && event.step_started().step() == v1::AUTHORIZE_PAYMENT) {
        step_deadline = event.step_started().deadline_at_ms();
      }
      if (event.has_step_timed_out()) {
        EXPECT_EQ(event.step_timed_out().step(), v1::AUTHORIZE_PAYMENT);
        EXPECT_GE(event.step_timed_out().at_ms(), step_deadline) << "the deadline fired early";
      }
    }
  }
  expect_stock_released(runtime, "once-a", 10);
  expect_rebuild_equal(runtime);
  std::printf("deadline restarts: %d starts (%d SIGKILL, %d clean), %d of them while deadlines passed; seed %llu\n",
              starts, kills, clean, starts_across_deadlines, static_cast<unsigned long long>(seed));
}

// Run 2 of the resend tests: a participant that answers; the order must complete FULFILLED
// through the authorize sent again on recovery, with the same command id.
void expect_resent_and_fulfilled(const std::string& dir, const std::string& id, const std::string& sku,
                                 const Options& base) {
  auto opened = open_with(base, ParticipantConfig{});
  ASSERT_TRUE(opened);
  Runtime& runtime = *opened->runtime;
  expect_recovered(runtime, 1);
  EXPECT_TRUE(opened->egress->wait_count(Seen::kAuthorize, id, 1, std::chrono::seconds(15)))
      << "the outstanding authorize was not sent again on recovery";
  for (const Seen& seen : opened->egress->seen()) {
    if (seen.order_id != id || seen.kind != Seen::kAuthorize) continue;
    EXPECT_EQ(seen.command_id, saga::authorize_command_id(id)) << "a resend must carry the same command id";
    EXPECT_EQ(seen.detail, "tok_visa");
  }
  auto state = testing::wait_order(runtime, id, is_terminal, std::chrono::seconds(15));
  ASSERT_TRUE(state.has_value());
  ASSERT_EQ(state->state, v1::FULFILLED) << v1::OrderState_Name(state->state) << " (step "
                                         << v1::SagaStep_Name(state->step) << ") " << state->reason;
  EXPECT_EQ(state->payment_id, "p-" + id);
  EXPECT_EQ(state->shipment_id, "s-" + id);
  const auto events = testing::order_events(runtime, id);
  EXPECT_EQ(count_events(events,
                         [](const v1::OrderEvent& e) {
                           return e.has_step_started() && e.step_started().step() == v1::AUTHORIZE_PAYMENT;
                         }),
            1u)
      << "the authorize step must not start twice:" << describe(events);
  EXPECT_EQ(count_events(events, [](const v1::OrderEvent& e) { return e.has_step_timed_out(); }), 0u) << describe(events);
  settle(runtime);
  const auto outcomes = opened->egress->outcomes_of(id);
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(outcomes[0].state(), v1::FULFILLED);
  auto stock = runtime.sku(sku);
  ASSERT_TRUE(stock.is_ok() && stock->has_value());
  EXPECT_EQ((*stock)->reserved, 0);
  EXPECT_EQ((*stock)->shipped_total, 2);
  EXPECT_EQ((*stock)->on_hand, 8);
}

TEST(DurableDeadlines, OpenOrdersResendOutstandingOnRecovery) {
  // Run 1: the participant loses the authorize (never answers it) and the retry timer is a
  // minute away; the runtime closes cleanly (so the outbox entry is marked sent: only the
  // recovery can send it again). Run 2, same long retry timer: the recovery resends it.
  TempDir temp;
  const std::string dir = temp.sub("data");
  const std::string id = "rs-1";
  Options options = options_for(dir);
  options.retry.initial_ms = 60'000;
  options.retry.max_ms = 60'000;
  {
    ParticipantConfig lossy;
    lossy.answer_authorize = false;
    auto opened = open_with(options, lossy);
    ASSERT_TRUE(opened);
    Runtime& runtime = *opened->runtime;
    auto stocked = testing::submit_and_wait(runtime, InventoryCommand{testing::receive("rs-a", 10, "r-rs-a")});
    ASSERT_TRUE(stocked && stocked->status.is_ok());
    auto placed = testing::submit_and_wait(runtime, OrderCommand{testing::place_order(id, "rs-a", 2, "tok_visa")});
    ASSERT_TRUE(placed && placed->status.is_ok());
    auto state = testing::wait_order(runtime, id, [](const order::State& s) { return s.state != v1::RESERVING; },
                                     std::chrono::seconds(20));
    ASSERT_TRUE(state && state->state == v1::AUTHORIZING);
    ASSERT_TRUE(opened->egress->wait_count(Seen::kAuthorize, id, 1, std::chrono::seconds(10)));
    settle(runtime);
    EXPECT_EQ(opened->egress->count(Seen::kAuthorize, id), 1u) << "resent before the retry timer was due";
    opened->close();
  }
  expect_resent_and_fulfilled(dir, id, "rs-a", options);
}

TEST(DurableDeadlines, OpenOrdersResendOutstandingAfterKill) {
  // The same with a SIGKILL instead of a clean close (the lost mark_sent may also make the
  // relay offer the entry again: at-least-once, same command id either way).
  TempDir temp;
  const std::string dir = temp.sub("data");
  const std::string id = "rk-1";
  Child child = storage::testing::spawn_child(
      FFE_RUNTIME_CHILD, {"orders", dir, std::to_string(kShards), "--retry-initial", "60000", "--retry-max", "60000",
                          "--answer-authorize", "0", "--stock", "rk-a=10", "--place", id + ",rk-a,2,tok_visa,0",
                          "--wait-authorizing"});
  std::vector<std::string> lines;
  const bool ready = read_until(child, "ready", lines);
  kill9(child, lines);
  ASSERT_TRUE(ready) << "the child failed:" << joined(lines);
  Options options = options_for(dir);
  options.retry.initial_ms = 60'000;
  options.retry.max_ms = 60'000;
  expect_resent_and_fulfilled(dir, id, "rk-a", options);
}

}  // namespace
}  // namespace ffe::runtime
