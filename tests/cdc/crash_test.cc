// CDC under kill -9 (`ctest -R Crash`): a child process (cdc_child.cc) runs the Runtime and
// the CDC pipeline into SQLite while it places orders; the test kills it with SIGKILL,
// several times, on the same data dir and database: at random moments, and (every other
// start) from inside the pipeline right after the sink committed a batch and before the
// pipeline recorded anything (the crash the checkpoint guard is for). Then the test opens
// the data dir itself, lets CDC catch up and checks:
//   - zero drift: every order, order line and SKU row equals the engine's state at the
//     checkpoint (so every row's revision equals the journal's);
//   - no change applied twice: a trigger audit records every write of an order row; no
//     (order_id, revision) was written twice, and every checkpoint move started where the
//     previous one ended (no batch skipped, none repeated).
// The seed is printed; FFE_CRASH_SEED=<n> replays one run's kill timings.

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>

#include "adapters/cdc/pipeline.h"
#include "tests/cdc/cdc_test_support.h"
#include "tests/runtime/crash_support.h"
#include "tests/storage/test_support.h"

namespace ffe::cdc {
namespace {

using storage::testing::Child;
using storage::testing::TempDir;
using namespace std::chrono_literals;

constexpr int kStarts = 6;             // killed starts; the test reopens the dir after them
constexpr int kOrdersPerStart = 400;
constexpr std::uint32_t kShards = 3;

TEST(CdcCrash, KillNineDuringCdcThenDriftIsCleanAndNothingAppliedTwice) {
  std::uint64_t seed = std::random_device{}();
  if (const char* fixed = std::getenv("FFE_CRASH_SEED")) seed = std::strtoull(fixed, nullptr, 10);
  std::printf("FFE_CRASH_SEED=%llu\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 random(seed);

  TempDir dir;
  const std::string data_dir = dir.sub("data");
  const std::string url = "sqlite:" + dir.sub("analytics.db");
  {
    auto sink = open_sink(url);
    ASSERT_TRUE(sink) << sink.status().to_string();
  }
  ASSERT_EQ(testing::install_sqlite_audit(url), "");

  int killed_inside = 0;
  for (int start = 0; start < kStarts; ++start) {
    const bool inside = start % 2 == 1;
    // Crash inside the pipeline after a few batches of this start (1..8).
    const int crash_after = inside ? 1 + static_cast<int>(random() % 8) : 0;
    Child child = storage::testing::spawn_child(
        FFE_CDC_CHILD, {data_dir, url, std::to_string(kShards), "s" + std::to_string(start),
                        std::to_string(kOrdersPerStart), std::to_string(crash_after)});
    bool ready = false;
    bool crashed = false;  // inside the pipeline, possibly while catching up before "ready"
    while (auto line = storage::testing::read_line(child, 30'000)) {
      if (line->starts_with("error")) ADD_FAILURE() << "start " << start << ": " << *line;
      if (*line == "crash") crashed = true;
      if (*line == "ready" || crashed) {
        ready = true;
        break;
      }
    }
    ASSERT_TRUE(ready) << "start " << start << ": the child never got ready";
    if (crashed) {
      ++killed_inside;
      EXPECT_EQ(storage::testing::wait_child(child), 128 + SIGKILL);
    } else if (inside) {
      // It kills itself ("crash" first); bound the wait (it may be done before the count).
      const auto until = std::chrono::steady_clock::now() + 20s;
      while (std::chrono::steady_clock::now() < until) {
        auto line = storage::testing::read_line(child, 1'000);
        if (line && *line == "crash") {
          ++killed_inside;
          break;
        }
      }
      ::kill(child.pid, SIGKILL);
      EXPECT_EQ(storage::testing::wait_child(child), 128 + SIGKILL);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(200 + random() % 600));
      ::kill(child.pid, SIGKILL);
      EXPECT_EQ(storage::testing::wait_child(child), 128 + SIGKILL);
    }
  }
  EXPECT_GT(killed_inside, 0);

  // Reopen: the open orders finish, CDC resumes from the sink's checkpoint and catches up.
  runtime::testing::ParticipantEgress egress;
  runtime::Options options;
  options.data_dir = data_dir;
  options.shards = kShards;
  options.scheduler_threads = 2;
  options.egress = &egress;
  auto rt = runtime::Runtime::open(std::move(options));
  ASSERT_TRUE(rt) << rt.status().to_string();
  egress.attach(rt->get());
  auto sink = open_sink(url);
  ASSERT_TRUE(sink);
  CdcPipeline pipeline((*rt)->journal(), std::move(*sink), Migration{});
  ASSERT_TRUE(pipeline.start());
  ASSERT_TRUE((*rt)->wait_quiet(20s));
  ASSERT_TRUE(pipeline.wait_caught_up(30s));
  const PipelineStats stats = pipeline.stats();
  EXPECT_EQ(stats.guard_refusals, 0u);
  pipeline.stop();

  auto reader = open_sink(url);
  ASSERT_TRUE(reader);
  std::uint64_t orders = 0;
  EXPECT_EQ(testing::drift_of((*rt)->journal(), **reader, &orders), "");
  EXPECT_GT(orders, 0u);
  const testing::Audit audit = testing::read_sqlite_audit(url);
  ASSERT_EQ(audit.error, "");
  EXPECT_EQ(audit.duplicate_writes, 0u) << audit.first_problem;
  EXPECT_EQ(audit.chain_breaks, 0u) << audit.first_problem;
  EXPECT_GT(audit.checkpoint_moves, static_cast<std::uint64_t>(kStarts));
  std::printf("orders %llu, order row writes %llu, checkpoint moves %llu, crashes inside the pipeline %d\n",
              static_cast<unsigned long long>(orders), static_cast<unsigned long long>(audit.order_writes),
              static_cast<unsigned long long>(audit.checkpoint_moves), killed_inside);
  egress.detach();
}

}  // namespace
}  // namespace ffe::cdc
