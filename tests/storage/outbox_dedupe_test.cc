// The outbox (order, mark_sent, restart) and dedupe keys (revision, retention).

#include <gtest/gtest.h>

#include <thread>

#include "storage/journal.h"
#include "tests/storage/test_support.h"

namespace ffe::storage {
namespace {

using testing::CounterFolder;
using testing::TempDir;
using testing::commit_ok;
using testing::one_event;

constexpr ShardId kShard{1};

OutboxMessage message(std::string payload) {
  return OutboxMessage{"ff.payments.requests", "o-1", std::move(payload), {{"content-type", "application/json"}}};
}

CommitRequest with_outbox(bool events, std::vector<std::string> payloads) {
  CommitRequest request;
  request.shard = kShard;
  if (events) request.events.push_back(Event{"order/o-1", "1"});
  for (auto& payload : payloads) request.outbox.push_back(message(std::move(payload)));
  return request;
}

std::vector<std::pair<OutboxPosition, std::string>> read_all(Journal& journal, OutboxPosition from) {
  auto entries = journal.outbox_read(kShard, from, 1000);
  EXPECT_TRUE(entries.is_ok()) << entries.status().to_string();
  std::vector<std::pair<OutboxPosition, std::string>> out;
  for (auto& entry : *entries) out.emplace_back(entry.position, entry.message.payload);
  return out;
}

class OutboxDedupeTest : public ::testing::Test {
 protected:
  std::unique_ptr<Journal> open() {
    JournalOptions options;
    options.shards = {kShard};
    options.folder = &folder_;
    auto journal = Journal::open(dir_.path(), options);
    EXPECT_TRUE(journal.is_ok()) << journal.status().to_string();
    return journal ? std::move(*journal) : nullptr;
  }
  TempDir dir_;
  CounterFolder folder_;
};

using Entries = std::vector<std::pair<OutboxPosition, std::string>>;

TEST_F(OutboxDedupeTest, OutboxEntriesAreReadInCommitOrderWithTheirPositions) {
  auto journal = open();
  commit_ok(*journal, with_outbox(true, {"a", "b"}));   // r1
  commit_ok(*journal, with_outbox(false, {"c"}));       // no-op at r1: after a, b
  commit_ok(*journal, with_outbox(true, {"d"}));        // r2
  commit_ok(*journal, with_outbox(false, {"e", "f"}));  // no-op at r2
  EXPECT_EQ(read_all(*journal, {}), (Entries{{{1, 0}, "a"}, {{1, 1}, "b"}, {{1, 2}, "c"},
                                             {{2, 0}, "d"}, {{2, 1}, "e"}, {{2, 2}, "f"}}));
  auto entries = journal->outbox_read(kShard, {}, 1);
  ASSERT_EQ(entries->size(), 1u);
  EXPECT_EQ(entries->front().message, message("a"));  // topic, key and headers kept
  EXPECT_EQ(read_all(*journal, {1, 2}), (Entries{{{1, 2}, "c"}, {{2, 0}, "d"}, {{2, 1}, "e"}, {{2, 2}, "f"}}));
}

TEST_F(OutboxDedupeTest, MarkSentAdvancesACursorAndUnsentEntriesComeBackAfterRestart) {
  {
    auto journal = open();
    commit_ok(*journal, with_outbox(true, {"a", "b"}));
    commit_ok(*journal, with_outbox(true, {"c"}));
    EXPECT_EQ(*journal->outbox_cursor(kShard), (OutboxPosition{0, 0}));
    ASSERT_TRUE(journal->mark_sent(kShard, {1, 1}).is_ok());
    EXPECT_EQ(*journal->outbox_cursor(kShard), (OutboxPosition{1, 2}));
    ASSERT_TRUE(journal->mark_sent(kShard, {1, 0}).is_ok());  // behind the cursor: no-op
    EXPECT_EQ(*journal->outbox_cursor(kShard), (OutboxPosition{1, 2}));
    EXPECT_EQ(journal->mark_sent(kShard, {2, 1}).code(), StatusCode::kInvalidArgument);  // not an entry yet
    EXPECT_EQ(journal->mark_sent(kShard, {9, 0}).code(), StatusCode::kInvalidArgument);
    commit_ok(*journal, with_outbox(false, {"d"}));
  }
  auto journal = open();
  const OutboxPosition cursor = *journal->outbox_cursor(kShard);
  EXPECT_EQ(cursor, (OutboxPosition{1, 2}));
  EXPECT_EQ(read_all(*journal, cursor), (Entries{{{2, 0}, "c"}, {{2, 1}, "d"}}));
  // The log itself still holds what was sent (only compaction removes it).
  EXPECT_EQ(read_all(*journal, {}).size(), 4u);
  // Numbering continues after the restart.
  commit_ok(*journal, with_outbox(false, {"e"}));
  EXPECT_EQ(read_all(*journal, {2, 2}), (Entries{{{2, 2}, "e"}}));
}

// mark_sent writes nothing itself (a write of its own waited behind the writer's fsync): the
// next batch stores the cursor, and so does a clean close.
TEST_F(OutboxDedupeTest, TheCursorIsStoredByTheNextBatchAndAtClose) {
  auto stored_cursor = [&] {
    JournalOptions options;
    options.folder = &folder_;
    options.read_only = true;
    auto reader = Journal::open(dir_.path(), options);
    EXPECT_TRUE(reader.is_ok()) << reader.status().to_string();
    return reader ? *(*reader)->outbox_cursor(kShard) : OutboxPosition{};
  };
  {
    auto journal = open();
    commit_ok(*journal, with_outbox(true, {"a", "b"}));  // r1
    ASSERT_TRUE(journal->mark_sent(kShard, {1, 1}).is_ok());
    EXPECT_EQ(*journal->outbox_cursor(kShard), (OutboxPosition{1, 2}));
    EXPECT_EQ(stored_cursor(), (OutboxPosition{0, 0}));  // not yet on disk
    commit_ok(*journal, with_outbox(true, {"c"}));      // r2 carries it
    EXPECT_EQ(stored_cursor(), (OutboxPosition{1, 2}));
    ASSERT_TRUE(journal->mark_sent(kShard, {2, 0}).is_ok());
    EXPECT_EQ(stored_cursor(), (OutboxPosition{1, 2}));
  }
  auto journal = open();  // the close stored the last mark
  EXPECT_EQ(*journal->outbox_cursor(kShard), (OutboxPosition{2, 1}));
  EXPECT_TRUE(read_all(*journal, {2, 1}).empty());
}

TEST_F(OutboxDedupeTest, WaitForOutboxWakesOnADurableEntryIncludingNoops) {
  auto journal = open();
  EXPECT_FALSE(journal->wait_for_outbox(kShard, {}, std::chrono::milliseconds(20)));
  std::thread committer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    commit_ok(*journal, with_outbox(false, {"x"}));
  });
  EXPECT_TRUE(journal->wait_for_outbox(kShard, {}, std::chrono::seconds(10)));
  committer.join();
  EXPECT_EQ(read_all(*journal, {}), (Entries{{{0, 0}, "x"}}));
}

TEST_F(OutboxDedupeTest, CompactionRemovesOnlySentEntriesBelowTheRevision) {
  auto journal = open();
  commit_ok(*journal, with_outbox(true, {"a"}));  // r1
  commit_ok(*journal, with_outbox(true, {"b"}));  // r2
  commit_ok(*journal, with_outbox(true, {"c"}));  // r3
  ASSERT_TRUE(journal->mark_sent(kShard, {1, 0}).is_ok());
  ASSERT_TRUE(journal->compact(kShard, 3).is_ok());
  // a was sent and below 3: gone. b is below 3 but unsent: kept. c is at 3: kept.
  EXPECT_EQ(read_all(*journal, {}), (Entries{{{2, 0}, "b"}, {{3, 0}, "c"}}));
}

TEST_F(OutboxDedupeTest, DedupeKeysRecordTheirRevisionAndExpireWithCompaction) {
  auto journal = open();
  CommitRequest first = one_event(kShard, "a", 1);
  first.dedupe_keys = {"cmd-1"};
  EXPECT_EQ(commit_ok(*journal, first), 1u);
  CommitRequest noop;
  noop.shard = kShard;
  noop.dedupe_keys = {"cmd-2"};
  commit_ok(*journal, noop);  // recorded at the current revision, 1
  CommitRequest third = one_event(kShard, "a", 1);
  third.dedupe_keys = {"cmd-3", "cmd-3b"};
  EXPECT_EQ(commit_ok(*journal, third), 2u);
  CommitRequest again = one_event(kShard, "a", 1);
  again.dedupe_keys = {"cmd-1"};  // rewritten at a newer revision
  EXPECT_EQ(commit_ok(*journal, again), 3u);

  EXPECT_EQ(journal->dedupe_revision(kShard, "cmd-1")->value(), 3u);
  EXPECT_EQ(journal->dedupe_revision(kShard, "cmd-2")->value(), 1u);
  EXPECT_EQ(journal->dedupe_revision(kShard, "cmd-3b")->value(), 2u);
  EXPECT_FALSE(journal->dedupe_revision(kShard, "never")->has_value());

  // Retention: kept until compaction passes their revision.
  ASSERT_TRUE(journal->compact(kShard, 2).is_ok());
  EXPECT_FALSE(journal->dedupe_revision(kShard, "cmd-2")->has_value());
  EXPECT_EQ(journal->dedupe_revision(kShard, "cmd-1")->value(), 3u);  // its newer write survives
  EXPECT_EQ(journal->dedupe_revision(kShard, "cmd-3")->value(), 2u);
  ASSERT_TRUE(journal->compact(kShard, 3).is_ok());
  EXPECT_FALSE(journal->dedupe_revision(kShard, "cmd-3")->has_value());
  EXPECT_EQ(journal->dedupe_revision(kShard, "cmd-1")->value(), 3u);
  // The log record keeps the keys it wrote, for replay.
  auto watch = journal->watch(kShard, "", 3);
  EXPECT_EQ(watch->next()->front().dedupe_keys, (std::vector<std::string>{"cmd-1"}));
}

}  // namespace
}  // namespace ffe::storage
