// Fault injection on the write path (a RocksDB FileSystem that fails or blocks on demand):
// fail-stop after a failed sync or append, push-back when the queue is full, and a real
// full disk (a tiny tmpfs in a private mount namespace, via the helper process).

#include <gtest/gtest.h>

#include <mutex>
#include <thread>

#include "storage/journal.h"
#include "tests/storage/fault_file_system.h"
#include "tests/storage/test_support.h"

namespace ffe::storage {
namespace {

using testing::CounterFolder;
using testing::Fault;
using testing::FaultFileSystem;
using testing::TempDir;
using testing::commit_ok;
using testing::one_event;

constexpr ShardId kShard{0};

class FaultTest : public ::testing::Test {
 protected:
  FaultTest() : fs_(std::make_shared<FaultFileSystem>()), env_(testing::make_env(fs_)) {}

  JournalOptions options(bool faulty = true) {
    JournalOptions options;
    options.shards = {kShard};
    options.folder = &folder_;
    if (faulty) options.env = env_.get();
    return options;
  }
  std::unique_ptr<Journal> open(JournalOptions opts) {
    auto journal = Journal::open(dir_.path(), std::move(opts));
    EXPECT_TRUE(journal.is_ok()) << journal.status().to_string();
    return journal ? std::move(*journal) : nullptr;
  }

  // Submits `count` pipelined commands and waits for all of them; their results in order.
  std::vector<CommitResult> submit_many(Journal& journal, int count) {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<CommitResult> results(count);
    int done = 0;
    for (int i = 0; i < count; ++i) {
      Status status = journal.submit(one_event(kShard, "e/" + std::to_string(i % 4), 1), [&, i](const CommitResult& r) {
        std::lock_guard lock(mu);
        results[i] = r;
        ++done;
        cv.notify_all();
      });
      if (!status) {
        std::lock_guard lock(mu);
        results[i].status = status;
        ++done;
      }
    }
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return done == count; });
    return results;
  }

  // Reopens without faults and checks what a restart sees: contiguous revisions (open
  // verifies), and every acknowledged commit there.
  void expect_acknowledged_survive(Revision acknowledged) {
    auto journal = open(options(/*faulty=*/false));
    ASSERT_TRUE(journal);
    const Revision head = *journal->revision(kShard);
    EXPECT_GE(head, acknowledged);
    auto watch = journal->watch(kShard, "", 1);
    Revision expected = 1;
    while (true) {
      auto records = watch->next();
      ASSERT_TRUE(records.is_ok()) << records.status().to_string();
      if (records->empty()) break;
      for (const auto& record : *records) EXPECT_EQ(record.revision, expected++);
    }
    EXPECT_EQ(expected, head + 1);
  }

  TempDir dir_;
  CounterFolder folder_;
  std::shared_ptr<FaultFileSystem> fs_;
  std::unique_ptr<rocksdb::Env> env_;
};

TEST_F(FaultTest, AFailedSyncStopsTheJournalAndNothingLaterIsAcknowledged) {
  Revision acknowledged = 0;
  {
    auto journal = open(options());
    for (int i = 0; i < 10; ++i) acknowledged = commit_ok(*journal, one_event(kShard, "a", 1));
    fs_->fail_sync(Fault::kIoError);
    auto results = submit_many(*journal, 200);
    // The failing batch gets the I/O error; everything queued behind it, kStopped.
    EXPECT_EQ(results[0].status.code(), StatusCode::kIoError) << results[0].status.to_string();
    for (const auto& result : results) {
      EXPECT_FALSE(result.status.is_ok());
      EXPECT_TRUE(result.status.code() == StatusCode::kIoError || result.status.code() == StatusCode::kStopped)
          << result.status.to_string();
    }
    EXPECT_EQ(journal->status().code(), StatusCode::kIoError);
    EXPECT_NE(journal->status().message().find("injected I/O error"), std::string::npos);

    // Healthy disk again: the journal stays stopped (it never limps on).
    fs_->fail_sync(Fault::kNone);
    CommitResult later = journal->commit(one_event(kShard, "a", 1)).get();
    EXPECT_EQ(later.status.code(), StatusCode::kStopped);
    EXPECT_NE(later.status.message().find("injected"), std::string::npos);  // names the original reason
    EXPECT_EQ(journal->submit(one_event(kShard, "a", 1), [](const CommitResult&) { FAIL(); }).code(),
              StatusCode::kStopped);
    EXPECT_EQ(journal->compact(kShard, 1).code(), StatusCode::kStopped);
    EXPECT_EQ(*journal->revision(kShard), acknowledged);  // reads still work, at the last durable revision
    EXPECT_EQ(journal->get(kShard, "a", acknowledged)->value().state, CounterFolder::state(10, 10));
  }
  expect_acknowledged_survive(acknowledged);
}

TEST_F(FaultTest, TheJournalShowsNoIndexWriteBeforeItIsDurableNorAnyOfAFailedBatch) {
  auto index_keys = [](Journal& journal, std::string_view prefix) {
    std::vector<std::string> keys;
    auto entries = journal.index_scan(kShard, prefix);
    EXPECT_TRUE(entries.is_ok()) << entries.status().to_string();
    if (entries) {
      for (const auto& entry : *entries) keys.push_back(entry.key);
    }
    return keys;
  };
  // Command i of the failing run: event on "lost/i", index key "lost/i".
  auto lost_command = [](int i) {
    CommitRequest request = one_event(kShard, "lost/" + std::to_string(i), 1);
    request.index_put = {{"lost/" + std::to_string(i), "v"}};
    return request;
  };
  {
    auto journal = open(options());
    CommitRequest kept = one_event(kShard, "a", 1);
    kept.index_put = {{"kept", "1"}};
    commit_ok(*journal, kept);

    // Held inside its synced write: nothing of the batch is visible, not even to the index.
    fs_->block_syncs(true);
    CommitRequest held = one_event(kShard, "a", 1);
    held.index_put = {{"held", "1"}};
    held.index_delete = {"kept"};
    auto future = journal->commit(held);
    for (int i = 0; i < 500 && fs_->syncs_blocked_now() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_EQ(fs_->syncs_blocked_now(), 1);
    EXPECT_EQ(index_keys(*journal, ""), std::vector<std::string>{"kept"});
    fs_->block_syncs(false);
    ASSERT_TRUE(future.get().status.is_ok());
    EXPECT_EQ(index_keys(*journal, ""), std::vector<std::string>{"held"});

    // A failed sync: the failing batch and everything behind it leave no index write.
    fs_->fail_sync(Fault::kIoError);
    std::vector<std::future<CommitResult>> results;
    for (int i = 0; i < 50; ++i) results.push_back(journal->commit(lost_command(i)));
    for (auto& result : results) EXPECT_FALSE(result.get().status.is_ok());
    EXPECT_EQ(index_keys(*journal, ""), std::vector<std::string>{"held"});
    fs_->fail_sync(Fault::kNone);
  }
  // After a restart the failed batch may or may not be there (its bytes may have reached
  // the disk), but whole: each index key exactly with its command's event.
  auto journal = open(options(/*faulty=*/false));
  ASSERT_TRUE(journal);
  const Revision head = *journal->revision(kShard);
  auto page = journal->range(kShard, "lost/", head);
  ASSERT_TRUE(page.is_ok()) << page.status().to_string();
  std::vector<std::string> entities;
  for (const auto& entry : page->entries) entities.push_back(entry.entity_key);
  EXPECT_EQ(index_keys(*journal, "lost/"), entities);
  EXPECT_EQ(index_keys(*journal, "held"), std::vector<std::string>{"held"});
  EXPECT_TRUE(index_keys(*journal, "kept").empty());
}

TEST_F(FaultTest, AFailedAppendForLackOfSpaceStopsTheJournalWithNoSpace) {
  Revision acknowledged = 0;
  {
    auto journal = open(options());
    acknowledged = commit_ok(*journal, one_event(kShard, "a", 1));
    fs_->fail_append(Fault::kNoSpace);
    auto results = submit_many(*journal, 50);
    EXPECT_EQ(results[0].status.code(), StatusCode::kNoSpace) << results[0].status.to_string();
    for (const auto& result : results) EXPECT_FALSE(result.status.is_ok());
    EXPECT_EQ(journal->status().code(), StatusCode::kNoSpace);
    EXPECT_NE(journal->status().message().find("no space"), std::string::npos) << journal->status().to_string();
    fs_->fail_append(Fault::kNone);
    EXPECT_EQ(journal->commit(one_event(kShard, "a", 1)).get().status.code(), StatusCode::kStopped);
  }
  expect_acknowledged_survive(acknowledged);
}

TEST_F(FaultTest, AFullQueuePushesBackAndNeverDrops) {
  auto opts = options();
  opts.commit_queue_commands = 4;
  opts.commit_batch_commands = 1;
  auto journal = open(opts);
  fs_->block_syncs(true);
  std::atomic<int> ok{0};
  auto count = [&](const CommitResult& r) { ok += r.status.is_ok(); };
  ASSERT_TRUE(journal->submit(one_event(kShard, "a", 1), count).is_ok());
  // Wait until the writer is inside the synced write of the first command.
  for (int i = 0; i < 500 && fs_->syncs_blocked_now() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(fs_->syncs_blocked_now(), 1);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(journal->submit(one_event(kShard, "a", 1), count, Admission::kTry).is_ok());
  Status busy = journal->submit(one_event(kShard, "a", 1), count, Admission::kTry);
  EXPECT_EQ(busy.code(), StatusCode::kBusy) << busy.to_string();
  std::atomic<bool> returned{false};
  std::thread waiter([&] {
    EXPECT_TRUE(journal->submit(one_event(kShard, "a", 1), count, Admission::kWait).is_ok());
    returned = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(returned.load());  // blocked: push-back, not a drop
  EXPECT_EQ(ok.load(), 0);        // nothing acknowledged before its sync returned
  fs_->block_syncs(false);
  waiter.join();
  ASSERT_TRUE(journal->wait_for_revision(kShard, 6, std::chrono::seconds(30)));
  for (int i = 0; i < 500 && ok.load() < 6; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(ok.load(), 6);
  EXPECT_EQ(journal->get(kShard, "a", 6)->value().state, CounterFolder::state(6, 6));
}

TEST_F(FaultTest, ARealFullDiskStopsTheJournalCleanly) {
  // A 3 MiB tmpfs in the helper's own mount namespace: a real ENOSPC, no fault injection.
  testing::Child child = testing::spawn_child(FFE_JOURNAL_CHILD, {"fulldisk", dir_.path(), "3072"});
  std::vector<std::string> lines = testing::read_remaining_lines(child);
  int code = testing::wait_child(child);
  if (code == 77) GTEST_SKIP() << "cannot mount a tmpfs in a private mount namespace here (needs CAP_SYS_ADMIN)";
  ASSERT_EQ(code, 0);
  std::string all;
  for (const auto& line : lines) all += line + "\n";
  ASSERT_EQ(lines.size(), 4u) << all;
  EXPECT_NE(lines[0], "committed 0") << all;
  EXPECT_EQ(lines[1], "acknowledged_after_failure 0") << all;
  EXPECT_TRUE(lines[2].starts_with("first_error kNoSpace")) << all;
  EXPECT_TRUE(lines[3].starts_with("status kNoSpace")) << all;
}

}  // namespace
}  // namespace ffe::storage
