// The commit path: open, revisions, no-ops, input positions, group commit, pipelining,
// recovery. Real RocksDB in temp dirs.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "storage/data_dir.h"
#include "storage/journal.h"
#include "tests/storage/test_support.h"

namespace ffe::storage {
namespace {

using testing::CounterFolder;
using testing::TempDir;
using testing::commit_ok;
using testing::one_event;

constexpr ShardId kShard{3};
constexpr ShardId kOther{7};

class JournalTest : public ::testing::Test {
 protected:
  JournalOptions options() {
    JournalOptions options;
    options.shards = {kShard, kOther};
    options.folder = &folder_;
    return options;
  }
  std::unique_ptr<Journal> open(JournalOptions opts) {
    auto journal = Journal::open(dir_.path(), std::move(opts));
    EXPECT_TRUE(journal.is_ok()) << journal.status().to_string();
    return journal ? std::move(*journal) : nullptr;
  }
  std::unique_ptr<Journal> open() { return open(options()); }

  TempDir dir_;
  CounterFolder folder_;
};

TEST_F(JournalTest, OpenCreatesMarkerAndEmptyShards) {
  auto journal = open();
  ASSERT_TRUE(journal);
  EXPECT_TRUE(std::filesystem::exists(dir_.sub(kMarkerFile)));
  EXPECT_EQ(journal->shards(), (std::vector<ShardId>{kShard, kOther}));
  EXPECT_EQ(*journal->revision(kShard), 0u);
  EXPECT_EQ(*journal->compacted_revision(kShard), 0u);
  EXPECT_TRUE(journal->status().is_ok());
  EXPECT_EQ(journal->revision(ShardId{99}).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(JournalTest, RevisionsRiseByOnePerCommandWithEvents) {
  auto journal = open();
  for (Revision expected = 1; expected <= 5; ++expected) {
    EXPECT_EQ(commit_ok(*journal, one_event(kShard, "a", 1)), expected);
  }
  EXPECT_EQ(*journal->revision(kShard), 5u);
  EXPECT_EQ(*journal->revision(kOther), 0u);  // each shard has its own counter
  EXPECT_EQ(commit_ok(*journal, one_event(kOther, "b", 1)), 1u);
}

TEST_F(JournalTest, ConcurrentCommitsGetEveryRevisionExactlyOnce) {
  auto journal = open();
  constexpr int kThreads = 4, kPerThread = 50;
  std::mutex mu;
  std::vector<Revision> seen;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Revision revision = commit_ok(*journal, one_event(kShard, "e/" + std::to_string(t), 1));
        std::lock_guard lock(mu);
        seen.push_back(revision);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  std::sort(seen.begin(), seen.end());
  ASSERT_EQ(seen.size(), static_cast<std::size_t>(kThreads * kPerThread));
  for (std::size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], i + 1);
  // Many commands shared a synced write.
  EXPECT_LT(journal->stats().batches, journal->stats().commands);
}

TEST_F(JournalTest, NoopCommandRecordsItsInputWithoutANewRevision) {
  auto journal = open();
  EXPECT_EQ(commit_ok(*journal, one_event(kShard, "a", 1, InputPosition{"orders/0", 10})), 1u);
  CommitRequest noop;
  noop.shard = kShard;
  noop.input = InputPosition{"orders/0", 11};
  CommitResult result = journal->commit(noop).get();
  ASSERT_TRUE(result.status.is_ok());
  EXPECT_EQ(result.revision, 1u);
  EXPECT_FALSE(result.new_revision);
  EXPECT_EQ(*journal->revision(kShard), 1u);
  EXPECT_EQ(journal->input_offset(kShard, "orders/0")->value(), 11);
  EXPECT_EQ(journal->stats().noop_commands, 1u);
  // The next command with events still gets revision 2: no gap.
  EXPECT_EQ(commit_ok(*journal, one_event(kShard, "a", 1)), 2u);
}

TEST_F(JournalTest, InputPositionsArePerShardAndSourceAndSurviveReopen) {
  {
    auto journal = open();
    commit_ok(*journal, one_event(kShard, "a", 1, InputPosition{"orders/0", 5}));
    commit_ok(*journal, one_event(kShard, "a", 1, InputPosition{"orders/1", 7}));
    commit_ok(*journal, one_event(kShard, "a", 1, InputPosition{"orders/0", 6}));
    commit_ok(*journal, one_event(kOther, "b", 1, InputPosition{"orders/0", 100}));
    EXPECT_FALSE(journal->input_offset(kShard, "orders/9")->has_value());
  }
  auto journal = open();
  EXPECT_EQ(journal->input_offset(kShard, "orders/0")->value(), 6);
  EXPECT_EQ(journal->input_offset(kShard, "orders/1")->value(), 7);
  EXPECT_EQ(journal->input_offset(kOther, "orders/0")->value(), 100);
  auto positions = journal->input_positions(kShard);
  ASSERT_TRUE(positions.is_ok());
  EXPECT_EQ(*positions, (std::vector<InputPosition>{{"orders/0", 6}, {"orders/1", 7}}));
}

TEST_F(JournalTest, PipelinedCommitsCompleteInQueueOrderPerShard) {
  auto journal = open();
  constexpr int kCommands = 2000;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<int, Revision>> done;  // (submit index, revision) in completion order
  for (int i = 0; i < kCommands; ++i) {
    Status status = journal->submit(one_event(kShard, "e/" + std::to_string(i % 10), 1), [&, i](const CommitResult& r) {
      EXPECT_TRUE(r.status.is_ok());
      std::lock_guard lock(mu);
      done.emplace_back(i, r.revision);
      cv.notify_all();
    });
    ASSERT_TRUE(status.is_ok());
  }
  std::unique_lock lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return done.size() == kCommands; }));
  for (int i = 0; i < kCommands; ++i) {
    EXPECT_EQ(done[i].first, i);  // completed in submit order
    EXPECT_EQ(done[i].second, static_cast<Revision>(i + 1));  // revision = queue position
  }
  EXPECT_LT(journal->stats().batches, static_cast<std::uint64_t>(kCommands));
}

TEST_F(JournalTest, BatchSizeIsBounded) {
  auto opts = options();
  opts.commit_batch_commands = 8;
  opts.commit_wait = std::chrono::microseconds(2000);
  auto journal = open(opts);
  std::vector<std::future<CommitResult>> futures;
  for (int i = 0; i < 64; ++i) futures.push_back(journal->commit(one_event(kShard, "a", 1)));
  for (auto& future : futures) ASSERT_TRUE(future.get().status.is_ok());
  JournalStats stats = journal->stats();
  EXPECT_EQ(stats.commands, 64u);
  EXPECT_GE(stats.batches, 8u);  // never more than 8 commands per synced write
}

TEST_F(JournalTest, RecoveryContinuesTheRevisionSequence) {
  {
    auto journal = open();
    for (int i = 0; i < 10; ++i) commit_ok(*journal, one_event(kShard, "a", i));
  }
  for (bool flush : {true, false}) {
    auto opts = options();
    opts.flush_at_close = flush;  // false: the next open replays the WAL
    auto journal = open(opts);
    Revision before = *journal->revision(kShard);
    EXPECT_EQ(commit_ok(*journal, one_event(kShard, "a", 1)), before + 1);
  }
  auto journal = open();
  EXPECT_EQ(*journal->revision(kShard), 12u);
  EXPECT_EQ(journal->get(kShard, "a", 12)->value().state, CounterFolder::state(12, 45 + 2));
}

TEST_F(JournalTest, ShardsAddedLaterAndShardsNotListedStayServed) {
  {
    auto journal = open();
    commit_ok(*journal, one_event(kShard, "a", 1));
  }
  JournalOptions opts;
  opts.shards = {ShardId{11}};
  opts.folder = &folder_;
  auto journal = open(opts);
  EXPECT_EQ(journal->shards(), (std::vector<ShardId>{kShard, kOther, ShardId{11}}));
  EXPECT_EQ(*journal->revision(kShard), 1u);
}

TEST_F(JournalTest, InvalidCommandsAreRefusedAndNeverCompleted) {
  auto journal = open();
  int called = 0;
  auto done = [&](const CommitResult&) { ++called; };
  auto expect_invalid = [&](CommitRequest request) {
    Status status = journal->submit(std::move(request), done);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.to_string();
  };
  expect_invalid(one_event(ShardId{99}, "a", 1));                   // unknown shard
  expect_invalid(one_event(kShard, "", 1));                         // empty key
  expect_invalid(one_event(kShard, std::string("a\0b", 3), 1));     // NUL in key
  expect_invalid(one_event(kShard, std::string(limits::entity_key_bytes_max + 1, 'k'), 1));
  CommitRequest too_many;
  too_many.shard = kShard;
  for (std::size_t i = 0; i <= limits::command_events_max; ++i) too_many.events.push_back(Event{"a", "1"});
  expect_invalid(too_many);
  CommitRequest orphan_snapshot = one_event(kShard, "a", 1);
  orphan_snapshot.snapshots.push_back(EntitySnapshot{"b", "n=1;s=1"});
  expect_invalid(orphan_snapshot);
  CommitRequest no_topic = one_event(kShard, "a", 1);
  no_topic.outbox.push_back(OutboxMessage{"", "k", "v", {}});
  expect_invalid(no_topic);
  CommitRequest empty_source = one_event(kShard, "a", 1, InputPosition{"", 1});
  expect_invalid(empty_source);
  EXPECT_EQ(called, 0);
  EXPECT_EQ(*journal->revision(kShard), 0u);
  EXPECT_TRUE(journal->status().is_ok());
}

TEST_F(JournalTest, CloseCommitsWhatIsStillQueued) {
  std::atomic<int> ok{0};
  {
    auto journal = open();
    for (int i = 0; i < 500; ++i) {
      ASSERT_TRUE(journal->submit(one_event(kShard, "a", 1), [&](const CommitResult& r) { ok += r.status.is_ok(); }).is_ok());
    }
  }  // the destructor drains the queue
  EXPECT_EQ(ok.load(), 500);
  auto journal = open();
  EXPECT_EQ(*journal->revision(kShard), 500u);
}

TEST_F(JournalTest, InvalidOptionsAreRefusedBeforeTouchingTheDir) {
  auto opts = options();
  opts.commit_batch_commands = limits::commit_batch_commands_max + 1;
  auto journal = Journal::open(dir_.sub("x"), opts);
  EXPECT_EQ(journal.status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(dir_.sub("x")));
  opts = options();
  opts.shards = {ShardId{limits::shards_max}};
  EXPECT_EQ(Journal::open(dir_.sub("y"), opts).status().code(), StatusCode::kInvalidArgument);
  opts.shards = {};
  EXPECT_EQ(Journal::open(dir_.sub("z"), opts).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ffe::storage
