// The shard index (CommitRequest::index_put/index_delete, Journal::index_scan): current-state
// keys written in the command's own atomic batch. Puts, deletes and overwrites within a
// command and across commands (also inside one synced batch), no-op commands, reopen (with
// and without WAL replay), prefix scans in key order with paging, the limits, and that
// compaction, the digest, get/range/watch never see the index. Atomicity under a failed
// sync and "nothing visible before it is durable" are in fault_test.cc; survival of SIGKILL
// in crash_test.cc. Real RocksDB in temp dirs.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <random>

#include "storage/journal.h"
#include "tests/storage/test_support.h"

namespace ffe::storage {
namespace {

using testing::CounterFolder;
using testing::TempDir;
using testing::commit_ok;
using testing::one_event;

constexpr ShardId kShard{0};
constexpr ShardId kOther{1};

class JournalIndexTest : public ::testing::Test {
 protected:
  JournalOptions options() {
    JournalOptions options;
    options.shards = {kShard, kOther};
    options.folder = &folder_;
    return options;
  }
  std::unique_ptr<Journal> open(JournalOptions opts, const std::string& sub = "") {
    auto journal = Journal::open(sub.empty() ? dir_.path() : dir_.sub(sub), std::move(opts));
    EXPECT_TRUE(journal.is_ok()) << journal.status().to_string();
    return journal ? std::move(*journal) : nullptr;
  }
  std::unique_ptr<Journal> open() { return open(options()); }

  TempDir dir_;
  CounterFolder folder_;
};

// A no-op command (no events) with index changes.
CommitRequest index_only(ShardId shard, std::vector<IndexEntry> put, std::vector<std::string> del = {}) {
  CommitRequest request;
  request.shard = shard;
  request.index_put = std::move(put);
  request.index_delete = std::move(del);
  return request;
}

std::vector<IndexEntry> scan(Journal& journal, std::string_view prefix = "", std::string_view start_after = {},
                             std::size_t limit = limits::index_scan_entries_max, ShardId shard = kShard) {
  auto entries = journal.index_scan(shard, prefix, start_after, limit);
  EXPECT_TRUE(entries.is_ok()) << entries.status().to_string();
  return entries ? *entries : std::vector<IndexEntry>{};
}

TEST_F(JournalIndexTest, PutsDeletesAndOverwritesWithinACommandAndAcrossCommands) {
  auto journal = open();
  EXPECT_TRUE(scan(*journal).empty());

  // With events: the index changes ride on the command that advances the revision.
  CommitRequest first = one_event(kShard, "order/o-1", 1);
  first.index_put = {{"open/o-1", "deadline=100"}, {"open/o-2", "deadline=200"}, {"open/o-3", "deadline=300"}};
  EXPECT_EQ(commit_ok(*journal, first), 1u);
  EXPECT_EQ(scan(*journal), (std::vector<IndexEntry>{
                                {"open/o-1", "deadline=100"}, {"open/o-2", "deadline=200"}, {"open/o-3", "deadline=300"}}));

  // A no-op: deletes first, then puts, in the order given; the revision stays.
  CommitResult noop = journal
                          ->commit(index_only(kShard,
                                              {{"open/o-1", "deadline=150"},  // overwrite
                                               {"open/o-3", "reopened"},      // deleted and put: put wins
                                               {"open/o-4", "first"},
                                               {"open/o-4", "second"}},  // two puts: the later wins
                                              {"open/o-2", "open/o-3", "open/never-there"}))
                          .get();
  ASSERT_TRUE(noop.status.is_ok()) << noop.status.to_string();
  EXPECT_FALSE(noop.new_revision);
  EXPECT_EQ(noop.revision, 1u);
  EXPECT_EQ(*journal->revision(kShard), 1u);
  EXPECT_EQ(scan(*journal), (std::vector<IndexEntry>{
                                {"open/o-1", "deadline=150"}, {"open/o-3", "reopened"}, {"open/o-4", "second"}}));

  // Across commands: a later command's delete removes what an earlier one put.
  CommitRequest close = one_event(kShard, "order/o-1", 1);
  close.index_delete = {"open/o-1"};
  EXPECT_EQ(commit_ok(*journal, close), 2u);
  EXPECT_EQ(scan(*journal), (std::vector<IndexEntry>{{"open/o-3", "reopened"}, {"open/o-4", "second"}}));

  // Shards have separate indexes.
  commit_ok(*journal, index_only(kOther, {{"open/o-3", "other shard"}}));
  EXPECT_EQ(scan(*journal, "", {}, 100, kOther), (std::vector<IndexEntry>{{"open/o-3", "other shard"}}));
  EXPECT_EQ(scan(*journal).size(), 2u);
}

TEST_F(JournalIndexTest, WithinOneSyncedBatchTheLaterCommandWins) {
  auto opts = options();
  opts.commit_wait = std::chrono::milliseconds(50);  // the pipelined commands below share one batch
  auto journal = open(opts);
  std::vector<std::future<CommitResult>> results;
  results.push_back(journal->commit(index_only(kShard, {{"k/put-then-delete", "1"}, {"k/put-then-put", "1"}})));
  results.push_back(journal->commit(index_only(kShard, {{"k/put-then-put", "2"}}, {"k/put-then-delete"})));
  results.push_back(journal->commit(index_only(kShard, {}, {"k/delete-then-put"})));
  results.push_back(journal->commit(index_only(kShard, {{"k/delete-then-put", "3"}})));
  for (auto& result : results) ASSERT_TRUE(result.get().status.is_ok());
  EXPECT_LE(journal->stats().batches, 2u);  // (one, unless the first went before the rest queued)
  EXPECT_EQ(scan(*journal, "k/"), (std::vector<IndexEntry>{{"k/delete-then-put", "3"}, {"k/put-then-put", "2"}}));
}

TEST_F(JournalIndexTest, SurvivesReopenWithAndWithoutWalReplay) {
  for (bool flush : {true, false}) {
    const std::string sub = flush ? "flushed" : "wal";
    std::vector<IndexEntry> expected;
    {
      auto opts = options();
      opts.flush_at_close = flush;  // false: the next open replays the WAL, as after a crash
      auto journal = open(opts, sub);
      for (int i = 0; i < 20; ++i) {
        CommitRequest request = one_event(kShard, "order/o-" + std::to_string(i), 1);
        request.index_put = {{"open/" + std::to_string(100 + i), "v" + std::to_string(i)}};
        if (i % 4 == 3) request.index_delete = {"open/" + std::to_string(100 + i - 1)};
        commit_ok(*journal, request);
      }
      expected = scan(*journal);
      EXPECT_EQ(expected.size(), 15u);
    }
    auto journal = open(options(), sub);
    EXPECT_EQ(scan(*journal), expected) << sub;
    EXPECT_EQ(*journal->revision(kShard), 20u);
  }
}

TEST_F(JournalIndexTest, PrefixScansAreInKeyOrderAndPageWithStartAfter) {
  auto journal = open();
  // 150 keys under "open/", in a shuffled order over many commands, plus neighbours that a
  // scan of "open/" must not return.
  std::vector<std::string> keys;
  for (int i = 0; i < 150; ++i) {
    char key[32];
    std::snprintf(key, sizeof key, "open/%04d", i * 7);
    keys.push_back(key);
  }
  std::vector<std::string> shuffled = keys;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(7));
  for (std::size_t at = 0; at < shuffled.size(); at += limits::index_entries_per_command_max) {
    std::vector<IndexEntry> put;
    for (std::size_t i = at; i < std::min(shuffled.size(), at + limits::index_entries_per_command_max); ++i) {
      put.push_back({shuffled[i], "value of " + shuffled[i]});
    }
    commit_ok(*journal, index_only(kShard, std::move(put)));
  }
  commit_ok(*journal, index_only(kShard, {{"open", "no slash"}, {"ope", "short"}, {"open0", "after the prefix"},
                                          {"opem/z", "before"}, {std::string("open\xff", 5), "0xff"}}));
  std::vector<IndexEntry> expected;
  for (const auto& key : keys) expected.push_back({key, "value of " + key});

  EXPECT_EQ(scan(*journal, "open/"), expected);
  // Pages of 40: start_after = the last key returned; a short page is the last.
  std::vector<IndexEntry> paged;
  std::string after;
  int pages = 0;
  while (true) {
    auto page = scan(*journal, "open/", after, 40);
    ++pages;
    paged.insert(paged.end(), page.begin(), page.end());
    if (page.size() < 40) break;
    after = page.back().key;
  }
  EXPECT_EQ(paged, expected);
  EXPECT_EQ(pages, 4);
  // start_after need not be a key; before the prefix it means from the start; past it, nothing.
  auto from_middle = scan(*journal, "open/", "open/0500");
  ASSERT_FALSE(from_middle.empty());
  EXPECT_EQ(from_middle.front().key, "open/0504");
  EXPECT_EQ(scan(*journal, "open/", "a"), expected);
  EXPECT_TRUE(scan(*journal, "open/", "open/9").empty());
  EXPECT_TRUE(scan(*journal, "open/", "p").empty());
  // The whole index in key order; limit 0 is read as 1; prefixes with 0xff bytes.
  auto all = scan(*journal);
  ASSERT_EQ(all.size(), 155u);
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.key < b.key; }));
  EXPECT_EQ(scan(*journal, "ope", {}, 0), (std::vector<IndexEntry>{{"ope", "short"}}));
  EXPECT_EQ(scan(*journal, std::string("open\xff", 5)), (std::vector<IndexEntry>{{std::string("open\xff", 5), "0xff"}}));
  EXPECT_EQ(scan(*journal, "open", "open/9"), (std::vector<IndexEntry>{{"open0", "after the prefix"},
                                                                       {std::string("open\xff", 5), "0xff"}}));
  EXPECT_TRUE(scan(*journal, "nothing/").empty());
  EXPECT_EQ(journal->index_scan(ShardId{9}, "").status().code(), StatusCode::kInvalidArgument);
}

TEST_F(JournalIndexTest, ChangesOverTheLimitsAreRefusedAndNeverCompleted) {
  auto journal = open();
  auto refused = [&](CommitRequest request, std::string_view limit) {
    Status status = journal->submit(std::move(request), [](const CommitResult&) { FAIL() << "completed"; });
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.to_string();
    EXPECT_NE(status.message().find(limit), std::string::npos) << status.to_string();
  };
  refused(index_only(kShard, {{"", "v"}}), "empty");
  refused(index_only(kShard, {}, {""}), "empty");
  refused(index_only(kShard, {{std::string(limits::index_key_bytes_max + 1, 'k'), "v"}}), "index_key_bytes_max");
  refused(index_only(kShard, {}, {std::string(limits::index_key_bytes_max + 1, 'k')}), "index_key_bytes_max");
  refused(index_only(kShard, {{"k", std::string(limits::index_value_bytes_max + 1, 'v')}}), "index_value_bytes_max");
  std::vector<IndexEntry> puts;
  std::vector<std::string> deletes;
  for (std::size_t i = 0; i < limits::index_entries_per_command_max; ++i) {
    if (i % 2 == 0) {
      puts.push_back({"k/" + std::to_string(i), "v"});
    } else {
      deletes.push_back("d/" + std::to_string(i));
    }
  }
  deletes.push_back("one too many");
  refused(index_only(kShard, puts, deletes), "index_entries_per_command_max");
  // A refused command changes nothing, not even its other parts.
  CommitRequest with_event = one_event(kShard, "a", 1, InputPosition{"in/0", 5});
  with_event.index_put = {{"k", std::string(limits::index_value_bytes_max + 1, 'v')}};
  refused(with_event, "index_value_bytes_max");
  EXPECT_EQ(*journal->revision(kShard), 0u);
  EXPECT_EQ(*journal->input_offset(kShard, "in/0"), std::nullopt);
  EXPECT_TRUE(scan(*journal).empty());

  // Exactly at every limit is fine.
  deletes.pop_back();
  puts.front() = {std::string(limits::index_key_bytes_max, 'k'), std::string(limits::index_value_bytes_max, 'v')};
  commit_ok(*journal, index_only(kShard, puts, deletes));
  EXPECT_EQ(scan(*journal).size(), puts.size());
}

TEST_F(JournalIndexTest, CompactionDigestAndEntityReadsIgnoreTheIndex) {
  auto with_index = open(options(), "with");
  auto without = open(options(), "without");
  for (int i = 0; i < 30; ++i) {
    for (Journal* journal : {with_index.get(), without.get()}) {
      CommitRequest request = one_event(kShard, "order/o-" + std::to_string(i % 4), i);
      if (journal == with_index.get()) {
        // Index keys that look like entity keys and sort among them: still invisible to reads.
        request.index_put = {{"order/o-" + std::to_string(i % 4), "open"}, {"order/o-9", "never an entity"}};
        if (i % 5 == 4) request.index_delete = {"order/o-" + std::to_string((i + 1) % 4)};
      }
      commit_ok(*journal, request);
    }
  }
  const auto index = scan(*with_index);
  ASSERT_FALSE(index.empty());
  const Revision head = *with_index->revision(kShard);
  EXPECT_EQ(head, 30u);
  for (Revision r : {Revision{0}, Revision{10}, head}) {
    EXPECT_EQ(*with_index->digest(kShard, r), *without->digest(kShard, r)) << r;
  }
  EXPECT_EQ(*with_index->get(kShard, "order/o-9", head), std::nullopt);
  auto page = with_index->range(kShard, "order/", head);
  ASSERT_TRUE(page.is_ok());
  EXPECT_EQ(page->entries.size(), 4u);
  auto watch = with_index->watch(kShard, "", 1);
  auto records = watch->next();
  ASSERT_TRUE(records.is_ok());
  EXPECT_EQ(records->size(), 30u);
  for (const auto& record : *records) EXPECT_EQ(record.events.size(), 1u);

  // Compaction to the head leaves the index exactly as it was; the digest stays equal.
  ASSERT_TRUE(with_index->compact(kShard, head).is_ok());
  ASSERT_TRUE(without->compact(kShard, head).is_ok());
  EXPECT_EQ(scan(*with_index), index);
  EXPECT_EQ(*with_index->digest(kShard, head), *without->digest(kShard, head));
  with_index.reset();
  with_index = open(options(), "with");
  EXPECT_EQ(scan(*with_index), index);
}

}  // namespace
}  // namespace ffe::storage
