// Journal-made snapshots by events AND bytes (JournalOptions::snapshot_every_events,
// snapshot_bytes_ratio): a big state that grows with every event is snapshotted O(log n)
// times, not every N events, and reads of it stay bounded by (1 + ratio) x its size; small
// states still snapshot every N events; read repair follows the same rule; the snapshot
// thread's memory is capped (snapshot_tracked_entities_max) and a forgotten entity just
// counts again. Real RocksDB in temp dirs.

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <deque>
#include <future>
#include <limits>

#include "storage/journal.h"
#include "tests/storage/test_support.h"

namespace ffe::storage {
namespace {

using testing::CounterFolder;
using testing::TempDir;
using testing::commit_ok;
using testing::one_event;

constexpr ShardId kShard{0};

// The state is every payload so far, concatenated: it grows with every event (a SKU that
// holds one more reservation per command). Path-independent by construction. Records, over
// its calls, the most events folded and the most event bytes folded beyond the snapshot's
// own size (the (1 + ratio) x state bound, at ratio 1). Thread-safe (atomics).
class AppendFolder : public StateFolder {
 public:
  std::string fold(std::string_view, std::optional<std::string_view> snapshot,
                   std::span<const std::string_view> events) override {
    std::string state(snapshot.value_or(""));
    for (auto event : events) state.append(event);
    raise(max_events, static_cast<std::int64_t>(events.size()));
    raise(max_event_bytes_over_snapshot,
          static_cast<std::int64_t>(state.size()) - 2 * static_cast<std::int64_t>(snapshot ? snapshot->size() : 0));
    return state;
  }
  void reset() {
    max_events = 0;
    max_event_bytes_over_snapshot = 0;
  }
  std::atomic<std::int64_t> max_events{0};
  std::atomic<std::int64_t> max_event_bytes_over_snapshot{0};

 private:
  static void raise(std::atomic<std::int64_t>& max, std::int64_t value) {
    std::int64_t seen = max.load();
    while (value > seen && !max.compare_exchange_weak(seen, value)) {
    }
  }
};

class JournalSnapshotTest : public ::testing::Test {
 protected:
  JournalOptions options(StateFolder* folder, std::uint32_t every, double ratio = 1.0) {
    JournalOptions options;
    options.shards = {kShard};
    options.folder = folder;
    options.snapshot_every_events = every;
    options.snapshot_bytes_ratio = ratio;
    return options;
  }
  std::unique_ptr<Journal> open(JournalOptions opts, const std::string& sub = "") {
    auto journal = Journal::open(sub.empty() ? dir_.path() : dir_.sub(sub), std::move(opts));
    EXPECT_TRUE(journal.is_ok()) << journal.status().to_string();
    return journal ? std::move(*journal) : nullptr;
  }

  TempDir dir_;
};

// Commits `count` one-event commands on `entity` with `payload`, 64 in flight, in order.
void commit_many(Journal& journal, const std::string& entity, const std::string& payload, int count) {
  std::deque<std::future<CommitResult>> window;
  for (int i = 0; i < count; ++i) {
    CommitRequest request;
    request.shard = kShard;
    request.events.push_back(Event{entity, payload});
    window.push_back(journal.commit(std::move(request)));
    if (window.size() >= 64) {
      ASSERT_TRUE(window.front().get().status.is_ok());
      window.pop_front();
    }
  }
  for (auto& result : window) ASSERT_TRUE(result.get().status.is_ok());
}

TEST_F(JournalSnapshotTest, ABigGrowingStateIsSnapshottedByBytesNotEveryNEvents) {
  constexpr std::uint32_t kEvery = 8;
  constexpr int kEvents = 3000;
  const std::string entity = "sku/hot";
  const std::string payload(100, 'r');  // one more "reservation" per event
  const std::uint64_t event_bytes = entity.size() + payload.size();
  const std::uint64_t total_event_bytes = kEvents * event_bytes;
  struct Run {
    std::uint64_t snapshots = 0, snapshot_bytes = 0;
    std::int64_t read_excess = 0;  // the most event bytes a read folded beyond its snapshot's size
  };
  auto run = [&](double ratio, const std::string& sub) {
    AppendFolder folder;
    auto journal = open(options(&folder, kEvery, ratio), sub);
    commit_many(*journal, entity, payload, kEvents);
    journal->wait_for_snapshots();
    Run result;
    result.snapshots = journal->stats().snapshots_made;
    result.snapshot_bytes = journal->stats().snapshot_bytes_made;
    // Reads at revisions spread over the history: right, and bounded by the rule.
    folder.reset();
    for (Revision r = 1; r <= kEvents; r += 97) {
      auto got = journal->get(kShard, entity, r);
      EXPECT_TRUE(got.is_ok() && got->has_value());
      if (got.is_ok() && got->has_value()) {
        EXPECT_EQ((*got)->state.size(), r * payload.size()) << r;
      }
    }
    result.read_excess = folder.max_event_bytes_over_snapshot.load();
    // The reads found nothing to repair: the snapshot thread kept up with the rule.
    EXPECT_EQ(journal->stats().snapshots_made, result.snapshots);
    return result;
  };

  // ratio 1 (the default): the k-th snapshot waits for as many event bytes as the state
  // had, so the state at least about doubles between snapshots: O(log n) snapshots.
  const Run by_bytes = run(1.0, "bytes");
  // The bound, from the rule: snapshots at event counts k1 = kEvery, then k' >= k + max(kEvery,
  // k * payload / event_bytes); each at least multiplies k by (1 + payload / event_bytes).
  const double growth = 1.0 + static_cast<double>(payload.size()) / static_cast<double>(event_bytes);
  const auto log_bound =
      static_cast<std::uint64_t>(std::ceil(std::log(static_cast<double>(kEvents) / kEvery) / std::log(growth))) + 1;
  EXPECT_GE(by_bytes.snapshots, 3u);
  EXPECT_LE(by_bytes.snapshots, log_bound);
  // Snapshot bytes written: each snapshot is at most its predecessor (paid for by at least
  // as many event bytes, ratio 1) plus the new payloads, so within 2 x the event bytes.
  EXPECT_LE(by_bytes.snapshot_bytes, 2 * total_event_bytes);
  // A read folds at most about (1 + ratio) x the state: its snapshot and at most ratio x the
  // snapshot's size in events (or one interval of events, for a small state).
  EXPECT_LE(by_bytes.read_excess, static_cast<std::int64_t>(kEvery * payload.size()));

  // ratio 0 is the count alone (the old rule): a snapshot every kEvery events, and the
  // snapshot bytes grow with the square of the history.
  const Run by_count = run(0.0, "count");
  EXPECT_EQ(by_count.snapshots, kEvents / kEvery);
  EXPECT_GT(by_count.snapshot_bytes, 20 * total_event_bytes);
  std::printf("3000 events of 100 bytes into one growing state: ratio 1: %llu snapshots, %llu bytes; "
              "ratio 0: %llu snapshots, %llu bytes (events: %llu bytes)\n",
              static_cast<unsigned long long>(by_bytes.snapshots),
              static_cast<unsigned long long>(by_bytes.snapshot_bytes),
              static_cast<unsigned long long>(by_count.snapshots),
              static_cast<unsigned long long>(by_count.snapshot_bytes),
              static_cast<unsigned long long>(total_event_bytes));
}

TEST_F(JournalSnapshotTest, SmallStatesStillSnapshotEveryNEvents) {
  // "n=<count>;s=<sum>" stays far smaller than N events of its key + payload, so the
  // count decides, exactly as before the bytes rule.
  CounterFolder folder;
  auto journal = open(options(&folder, /*every=*/8));
  for (int i = 0; i < 200; ++i) {
    CommitRequest request = one_event(kShard, "small/a", 1);
    request.events.push_back(Event{"small/b", "2"});
    commit_ok(*journal, request);
  }
  journal->wait_for_snapshots();
  EXPECT_EQ(journal->stats().snapshots_made, 2u * 200 / 8);
  folder.reset_counts();
  EXPECT_EQ((*journal->get(kShard, "small/b", 199))->state, CounterFolder::state(199, 398));
  EXPECT_LE(folder.max_events_per_call.load(), 8u);
  // Two events of one entity in one command count as two.
  CommitRequest twice = one_event(kShard, "small/c", 1);
  twice.events.push_back(Event{"small/c", "1"});
  for (int i = 0; i < 4; ++i) commit_ok(*journal, twice);
  journal->wait_for_snapshots();
  EXPECT_EQ(journal->stats().snapshots_made, 2u * 200 / 8 + 1);
}

TEST_F(JournalSnapshotTest, ACallerSnapshotResetsTheCountAndGivesTheSize) {
  // After a caller-supplied snapshot of a 200-byte state, the journal waits for 200 event
  // bytes (and at least 4 events) before it makes one itself.
  AppendFolder folder;
  auto journal = open(options(&folder, /*every=*/4));
  const std::string big(200, 'x');
  CommitRequest with_snapshot = one_event(kShard, "e", 0);
  with_snapshot.events[0].payload = big;
  with_snapshot.snapshots.push_back(EntitySnapshot{"e", big});  // the state after it
  commit_ok(*journal, with_snapshot);
  const std::string payload(10, 'x');
  commit_many(*journal, "e", payload, 18);  // 18 x 11 bytes = 198 < 200
  journal->wait_for_snapshots();
  EXPECT_EQ(journal->stats().snapshots_made, 0u);
  EXPECT_EQ(journal->stats().snapshots_given, 1u);
  commit_many(*journal, "e", payload, 1);  // 209 >= 200
  journal->wait_for_snapshots();
  EXPECT_EQ(journal->stats().snapshots_made, 1u);
  EXPECT_EQ(journal->stats().snapshot_bytes_made, 200u + 19 * payload.size());
}

TEST_F(JournalSnapshotTest, AForgottenSnapshotSizeIsLearnedFromTheDiskNotBySnapshotting) {
  // After a restart the snapshot thread knows no sizes; when its count says "due" it checks
  // the rule against the latest snapshot on disk first, so a big state is not rewritten
  // after every restart.
  AppendFolder folder;
  const std::string payload(100, 'r');  // + "big": 103 bytes per event
  {
    auto journal = open(options(&folder, /*every=*/4));
    commit_many(*journal, "big", payload, 100);  // snapshots at 4, 8, 16, 32, 64 (6,400 bytes)
    journal->wait_for_snapshots();
    EXPECT_EQ(journal->stats().snapshots_made, 5u);
  }
  auto journal = open(options(&folder, /*every=*/4));
  // 36 + 8 events of 103 bytes after the 6,400-byte snapshot: due by count, not by bytes.
  commit_many(*journal, "big", payload, 8);
  journal->wait_for_snapshots();
  EXPECT_EQ(journal->stats().snapshots_made, 0u);
  // The 63rd event after it brings 6,489 bytes: due.
  commit_many(*journal, "big", payload, 19);
  journal->wait_for_snapshots();
  EXPECT_EQ(journal->stats().snapshots_made, 1u);
  EXPECT_EQ(journal->stats().snapshot_bytes_made, 127u * payload.size());
}

TEST_F(JournalSnapshotTest, ReadRepairFollowsTheBytesRule) {
  // Journal-made snapshots off while writing (every = 0), so only reads can repair.
  AppendFolder folder;
  const std::string entity = "big";
  const std::string payload(100, 'r');
  auto session = [&](std::uint32_t every) { return open(options(&folder, every, 1.0)); };
  auto read_head = [&](Journal& journal) {
    const Revision head = *journal.revision(kShard);
    auto got = journal.get(kShard, entity, head);
    ASSERT_TRUE(got.is_ok() && got->has_value());
    EXPECT_EQ((*got)->state.size(), head * payload.size());
  };
  {
    auto journal = session(0);
    commit_many(*journal, entity, payload, 200);
  }
  {
    // No snapshot yet: 200 events, over 2 x 4, and any bytes are over 2 x 0: repaired.
    auto journal = session(4);
    read_head(*journal);
    EXPECT_EQ(journal->stats().snapshots_made, 1u);
    EXPECT_EQ(journal->stats().snapshot_bytes_made, 200u * payload.size());
  }
  {
    auto journal = session(0);
    commit_many(*journal, entity, payload, 30);
  }
  {
    // 30 events after a 20,000-byte snapshot: over 2 x 4 events but 3,090 bytes, under
    // 2 x 20,000: no repair, the read folds what the snapshot thread would have allowed.
    auto journal = session(4);
    read_head(*journal);
    EXPECT_EQ(journal->stats().snapshots_made, 0u);
  }
  {
    auto journal = session(0);
    commit_many(*journal, entity, payload, 400);
  }
  {
    // 430 events of 103 bytes (44,290) after it: over 2 x 20,000: repaired.
    auto journal = session(4);
    read_head(*journal);
    EXPECT_EQ(journal->stats().snapshots_made, 1u);
    folder.reset();
    read_head(*journal);
    EXPECT_EQ(folder.max_events.load(), 0);  // the snapshot alone
    EXPECT_EQ(journal->stats().snapshots_made, 1u);
  }
}

TEST_F(JournalSnapshotTest, TrackedEntitiesAreCappedAndAForgottenEntityCountsAgain) {
  CounterFolder folder;
  // Each command: "hot" first, then `cold` entities never seen before. With a cap of 64 the
  // snapshot thread keeps two generations of 32: ten cold entities between two events of
  // "hot" keep it in memory; a hundred push it out, and it starts counting from zero.
  auto run = [&](int cold, const std::string& sub) {
    auto opts = options(&folder, /*every=*/8);
    opts.snapshot_tracked_entities_max = 64;
    auto journal = open(opts, sub);
    std::uint64_t most_tracked = 0;
    for (int command = 0; command < 16; ++command) {
      CommitRequest request = one_event(kShard, "hot", 1);
      for (int i = 0; i < cold; ++i) {
        request.events.push_back(Event{"cold/" + std::to_string(command) + "/" + std::to_string(i), "1"});
      }
      commit_ok(*journal, request);
      journal->wait_for_snapshots();
      most_tracked = std::max(most_tracked, journal->stats().snapshot_tracked_entities);
    }
    EXPECT_GT(most_tracked, 0u);
    EXPECT_LE(most_tracked, 64u);
    return journal->stats().snapshots_made;
  };
  EXPECT_EQ(run(10, "ten"), 2u);       // "hot" at its 8th and 16th event
  EXPECT_EQ(run(100, "hundred"), 0u);  // forgotten every time: it never reaches 8
}

TEST_F(JournalSnapshotTest, BadSnapshotOptionsAreRefused) {
  CounterFolder folder;
  for (double ratio : {-0.5, limits::snapshot_bytes_ratio_max * 2, std::numeric_limits<double>::quiet_NaN()}) {
    auto opened = Journal::open(dir_.sub("r"), options(&folder, 8, ratio));
    EXPECT_EQ(opened.status().code(), StatusCode::kInvalidArgument) << ratio;
  }
  for (std::size_t tracked : {std::size_t{0}, std::size_t{1}, limits::snapshot_tracked_entities_max + 1}) {
    auto opts = options(&folder, 8);
    opts.snapshot_tracked_entities_max = tracked;
    auto opened = Journal::open(dir_.sub("t"), opts);
    EXPECT_EQ(opened.status().code(), StatusCode::kInvalidArgument) << tracked;
    EXPECT_NE(opened.status().message().find("snapshot_tracked_entities_max"), std::string::npos);
  }
  EXPECT_TRUE(Journal::open(dir_.sub("ok"), options(&folder, 8, 0.0)).is_ok());
}

}  // namespace
}  // namespace ffe::storage
