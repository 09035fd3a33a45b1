// Revision reads (etcd-style): get/range/watch/compact/digest, their errors, and the
// snapshots that keep a read's work bounded. Real RocksDB in temp dirs; the toy domain is
// CounterFolder (events are deltas, state is "n=<count>;s=<sum>").

#include <gtest/gtest.h>

#include <map>

#include <rocksdb/db.h>

#include "storage/data_dir.h"
#include "storage/encoding.h"
#include "storage/journal.h"
#include "storage/sha256.h"
#include "tests/storage/test_support.h"

namespace ffe::storage {
namespace {

using testing::CounterFolder;
using testing::TempDir;
using testing::commit_ok;
using testing::one_event;

constexpr ShardId kShard{0};

class RevisionReadTest : public ::testing::Test {
 protected:
  std::unique_ptr<Journal> open(std::uint32_t snapshot_every = 64, const std::string& sub = "") {
    JournalOptions options;
    options.shards = {kShard};
    options.folder = &folder_;
    options.snapshot_every_events = snapshot_every;
    auto journal = Journal::open(sub.empty() ? dir_.path() : dir_.sub(sub), options);
    EXPECT_TRUE(journal.is_ok()) << journal.status().to_string();
    return journal ? std::move(*journal) : nullptr;
  }
  // r1: a+1, r2: b+10, r3: a+2, r4: c/x+5 and a+3 (one command, two entities)
  void commit_sample(Journal& journal) {
    commit_ok(journal, one_event(kShard, "a", 1));
    commit_ok(journal, one_event(kShard, "b", 10));
    commit_ok(journal, one_event(kShard, "a", 2));
    CommitRequest two;
    two.shard = kShard;
    two.events = {Event{"c/x", "5"}, Event{"a", "3"}};
    commit_ok(journal, two);
  }

  TempDir dir_;
  CounterFolder folder_;
};

std::optional<EntityState> get_ok(Journal& journal, std::string_view key, Revision revision) {
  auto got = journal.get(kShard, key, revision);
  EXPECT_TRUE(got.is_ok()) << got.status().to_string();
  return got ? *got : std::nullopt;
}

TEST_F(RevisionReadTest, GetReturnsTheEntityAsOfEachRevision) {
  auto journal = open();
  commit_sample(*journal);
  EXPECT_EQ(get_ok(*journal, "a", 0), std::nullopt);
  EXPECT_EQ(get_ok(*journal, "a", 1), (EntityState{CounterFolder::state(1, 1), 1}));
  EXPECT_EQ(get_ok(*journal, "a", 2), (EntityState{CounterFolder::state(1, 1), 1}));  // mod_revision stays 1
  EXPECT_EQ(get_ok(*journal, "a", 3), (EntityState{CounterFolder::state(2, 3), 3}));
  EXPECT_EQ(get_ok(*journal, "a", 4), (EntityState{CounterFolder::state(3, 6), 4}));
  EXPECT_EQ(get_ok(*journal, "b", 1), std::nullopt);
  EXPECT_EQ(get_ok(*journal, "b", 4), (EntityState{CounterFolder::state(1, 10), 2}));
  EXPECT_EQ(get_ok(*journal, "c/x", 4), (EntityState{CounterFolder::state(1, 5), 4}));
  EXPECT_EQ(get_ok(*journal, "nobody", 4), std::nullopt);
}

TEST_F(RevisionReadTest, ReadsAboveTheCurrentRevisionAreFutureRevisionErrors) {
  auto journal = open();
  commit_sample(*journal);
  EXPECT_EQ(journal->get(kShard, "a", 5).status().code(), StatusCode::kFutureRevision);
  EXPECT_EQ(journal->range(kShard, "", 5).status().code(), StatusCode::kFutureRevision);
  EXPECT_EQ(journal->digest(kShard, 99).status().code(), StatusCode::kFutureRevision);
  EXPECT_EQ(journal->watch(kShard, "", 6).status().code(), StatusCode::kFutureRevision);
  EXPECT_TRUE(journal->watch(kShard, "", 5).is_ok());  // the next revision: waits for it
  EXPECT_EQ(journal->compact(kShard, 5).code(), StatusCode::kFutureRevision);
  EXPECT_EQ(journal->get(ShardId{42}, "a", 1).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(RevisionReadTest, RangeListsEntitiesUnderAPrefixInKeyOrderAndPages) {
  auto journal = open();
  commit_sample(*journal);
  auto all = journal->range(kShard, "", 4);
  ASSERT_TRUE(all.is_ok());
  std::vector<std::string> keys;
  for (const auto& entry : all->entries) keys.push_back(entry.entity_key);
  EXPECT_EQ(keys, (std::vector<std::string>{"a", "b", "c/x"}));
  EXPECT_FALSE(all->more);

  auto at1 = journal->range(kShard, "", 1);
  ASSERT_EQ(at1->entries.size(), 1u);  // only "a" existed at revision 1
  EXPECT_EQ(at1->entries[0].entity.state, CounterFolder::state(1, 1));

  auto prefixed = journal->range(kShard, "c/", 4);
  ASSERT_EQ(prefixed->entries.size(), 1u);
  EXPECT_EQ(prefixed->entries[0].entity_key, "c/x");

  auto page1 = journal->range(kShard, "", 4, "", 2);
  ASSERT_EQ(page1->entries.size(), 2u);
  EXPECT_TRUE(page1->more);
  auto page2 = journal->range(kShard, "", 4, page1->entries.back().entity_key, 2);
  ASSERT_EQ(page2->entries.size(), 1u);
  EXPECT_EQ(page2->entries[0].entity_key, "c/x");
  EXPECT_FALSE(page2->more);
}

TEST_F(RevisionReadTest, WatchIsOrderedFilteredAndResumable) {
  auto journal = open();
  commit_sample(*journal);
  auto watch = journal->watch(kShard, "", 1);
  ASSERT_TRUE(watch.is_ok());
  auto records = watch->next(2);
  ASSERT_TRUE(records.is_ok());
  ASSERT_EQ(records->size(), 2u);
  EXPECT_EQ((*records)[0].revision, 1u);
  EXPECT_EQ((*records)[1].revision, 2u);
  EXPECT_EQ(watch->position(), 3u);
  // Resume from a new cursor, as after a restart.
  auto resumed = journal->watch(kShard, "", watch->position());
  records = resumed->next();
  ASSERT_EQ(records->size(), 2u);
  EXPECT_EQ((*records)[0].revision, 3u);
  EXPECT_EQ((*records)[1].events.size(), 2u);
  EXPECT_TRUE(resumed->next()->empty());  // caught up

  // A prefix keeps only matching events and skips records with none.
  auto only_a = journal->watch(kShard, "a", 0);
  records = only_a->next();
  ASSERT_EQ(records->size(), 3u);
  EXPECT_EQ((*records)[2].revision, 4u);
  ASSERT_EQ((*records)[2].events.size(), 1u);
  EXPECT_EQ((*records)[2].events[0].entity_key, "a");

  // wait() wakes for the next durable revision.
  EXPECT_FALSE(resumed->wait(std::chrono::milliseconds(20)));
  commit_ok(*journal, one_event(kShard, "b", 1));
  EXPECT_TRUE(resumed->wait(std::chrono::milliseconds(5000)));
  records = resumed->next();
  ASSERT_EQ(records->size(), 1u);
  EXPECT_EQ((*records)[0].revision, 5u);
}

TEST_F(RevisionReadTest, CompactionMakesOlderRevisionsUnreadableAndKeepsNewerOnesExact) {
  auto journal = open();
  commit_sample(*journal);
  commit_ok(*journal, one_event(kShard, "b", 1));  // r5
  std::map<Revision, std::string> digests;
  std::map<Revision, std::optional<EntityState>> a_at, b_at;
  for (Revision r = 3; r <= 5; ++r) {
    digests[r] = *journal->digest(kShard, r);
    a_at[r] = get_ok(*journal, "a", r);
    b_at[r] = get_ok(*journal, "b", r);
  }
  auto stale_watch = journal->watch(kShard, "", 1);
  ASSERT_TRUE(stale_watch.is_ok());

  ASSERT_TRUE(journal->compact(kShard, 3).is_ok());
  EXPECT_EQ(*journal->compacted_revision(kShard), 3u);
  EXPECT_EQ(journal->get(kShard, "a", 2).status().code(), StatusCode::kCompacted);
  EXPECT_EQ(journal->range(kShard, "", 1).status().code(), StatusCode::kCompacted);
  EXPECT_EQ(journal->digest(kShard, 2).status().code(), StatusCode::kCompacted);
  EXPECT_EQ(journal->watch(kShard, "", 2).status().code(), StatusCode::kCompacted);
  EXPECT_EQ(stale_watch->next().status().code(), StatusCode::kCompacted);  // compaction passed the cursor
  EXPECT_EQ(journal->compact(kShard, 2).code(), StatusCode::kCompacted);
  EXPECT_TRUE(journal->compact(kShard, 3).is_ok());  // idempotent
  for (Revision r = 3; r <= 5; ++r) {
    EXPECT_EQ(*journal->digest(kShard, r), digests[r]) << r;
    EXPECT_EQ(get_ok(*journal, "a", r), a_at[r]) << r;
    EXPECT_EQ(get_ok(*journal, "b", r), b_at[r]) << r;
  }
  auto watch = journal->watch(kShard, "", 3);
  ASSERT_TRUE(watch.is_ok());
  EXPECT_EQ(watch->next()->front().revision, 3u);

  // Persisted: after reopen the same errors and the same states.
  journal.reset();
  journal = open();
  EXPECT_EQ(*journal->compacted_revision(kShard), 3u);
  EXPECT_EQ(journal->get(kShard, "a", 2).status().code(), StatusCode::kCompacted);
  for (Revision r = 3; r <= 5; ++r) EXPECT_EQ(*journal->digest(kShard, r), digests[r]) << r;
  // Compact to the head: everything but the last revision goes; state stays.
  ASSERT_TRUE(journal->compact(kShard, 5).is_ok());
  EXPECT_EQ(*journal->digest(kShard, 5), digests[5]);
  EXPECT_EQ(get_ok(*journal, "a", 5), a_at[5]);
  EXPECT_EQ(commit_ok(*journal, one_event(kShard, "a", 4)), 6u);
  EXPECT_EQ(get_ok(*journal, "a", 6)->state, CounterFolder::state(4, 10));
}

// A compaction after the first visits only the entities changed since the last one (the
// retention policy compacts every 10 s: its cost must follow what changed, not everything
// ever stored), and leaves every readable revision exactly as a full one would.
TEST_F(RevisionReadTest, ACompactionAfterTheFirstVisitsOnlyTheEntitiesChangedSinceAndKeepsEveryStateExact) {
  auto journal = open(/*snapshot_every=*/4);
  constexpr int kEntities = 50;
  for (int round = 0; round < 3; ++round) {
    for (int e = 0; e < kEntities; ++e) commit_ok(*journal, one_event(kShard, "e" + std::to_string(e), 1));
  }
  const Revision first = *journal->revision(kShard);
  ASSERT_TRUE(journal->compact(kShard, first).is_ok());
  JournalStats after_first = journal->stats();
  EXPECT_EQ(after_first.compactions_full, 1u);
  EXPECT_EQ(after_first.compaction_entities, static_cast<std::uint64_t>(kEntities));

  // Three entities change, one of them twice, one in a command with another.
  commit_ok(*journal, one_event(kShard, "e1", 5));
  commit_ok(*journal, one_event(kShard, "e2", 5));
  CommitRequest two;
  two.shard = kShard;
  two.events = {Event{"e1", "7"}, Event{"e3", "2"}};
  commit_ok(*journal, two);
  commit_ok(*journal, one_event(kShard, "e4", 1));  // after the second compaction's revision
  const Revision head = *journal->revision(kShard);
  std::map<Revision, std::string> digests;
  std::map<std::string, std::map<Revision, std::optional<EntityState>>> states;
  for (Revision r = head - 1; r <= head; ++r) {
    digests[r] = *journal->digest(kShard, r);
    for (const char* key : {"e0", "e1", "e2", "e3", "e4"}) states[key][r] = get_ok(*journal, key, r);
  }

  ASSERT_TRUE(journal->compact(kShard, head - 1).is_ok());
  JournalStats after_second = journal->stats();
  EXPECT_EQ(after_second.compactions, 2u);
  EXPECT_EQ(after_second.compactions_full, 1u) << "the second compaction visited every entity";
  // The records in [first, head - 1): e49's at `first` itself, e1's and e2's (e1 and e3 change
  // again at head - 1, which stays).
  EXPECT_EQ(after_second.compaction_entities - after_first.compaction_entities, 3u);
  EXPECT_EQ(journal->get(kShard, "e1", head - 2).status().code(), StatusCode::kCompacted);
  for (Revision r = head - 1; r <= head; ++r) {
    EXPECT_EQ(*journal->digest(kShard, r), digests[r]) << r;
    for (const char* key : {"e0", "e1", "e2", "e3", "e4"}) EXPECT_EQ(get_ok(*journal, key, r), states[key][r]) << key << " at " << r;
  }

  // After a reopen: the same states, and the next compaction is incremental too.
  journal.reset();
  journal = open(/*snapshot_every=*/4);
  for (Revision r = head - 1; r <= head; ++r) {
    EXPECT_EQ(*journal->digest(kShard, r), digests[r]) << r;
    for (const char* key : {"e0", "e1", "e2", "e3", "e4"}) EXPECT_EQ(get_ok(*journal, key, r), states[key][r]) << key << " at " << r;
  }
  ASSERT_TRUE(journal->compact(kShard, head).is_ok());
  EXPECT_EQ(journal->stats().compactions_full, 0u);
  EXPECT_EQ(journal->stats().compaction_entities, 2u);  // e1 and e3 (revision head - 1)
  EXPECT_EQ(*journal->digest(kShard, head), digests[head]);
  for (const char* key : {"e0", "e1", "e2", "e3", "e4"}) EXPECT_EQ(get_ok(*journal, key, head), states[key][head]) << key;
}

TEST_F(RevisionReadTest, JournalMadeSnapshotsBoundTheWorkOfAGet) {
  constexpr std::uint32_t kEvery = 8;
  constexpr int kEvents = 400;
  auto journal = open(kEvery);
  std::vector<Revision> hot_revisions;
  for (int i = 0; i < kEvents; ++i) {
    hot_revisions.push_back(commit_ok(*journal, one_event(kShard, "hot", 1)));
    if (i % 3 == 0) commit_ok(*journal, one_event(kShard, "cold/" + std::to_string(i), 1));
  }
  journal->wait_for_snapshots();
  EXPECT_GT(journal->stats().snapshots_made, static_cast<std::uint64_t>(kEvents / kEvery / 2));
  const Revision head = *journal->revision(kShard);
  folder_.reset_counts();
  std::size_t seen = 0;
  for (Revision r = 1; r <= head; ++r) {
    while (seen < hot_revisions.size() && hot_revisions[seen] <= r) ++seen;
    auto state = get_ok(*journal, "hot", r);
    ASSERT_TRUE(state);
    // Every revision reads the right state...
    ASSERT_EQ(*state, (EntityState{CounterFolder::state(seen, seen), hot_revisions[seen - 1]})) << r;
  }
  // ...and no read folded more than one snapshot interval of events.
  EXPECT_LE(folder_.max_events_per_call.load(), kEvery);
  EXPECT_GT(folder_.calls_with_snapshot.load(), 0u);
}

TEST_F(RevisionReadTest, WithoutSnapshotsAGetFoldsTheWholeHistory) {
  // The contrast to the test above: snapshots are what bounds the work.
  auto journal = open(/*snapshot_every=*/0);
  for (int i = 0; i < 200; ++i) commit_ok(*journal, one_event(kShard, "hot", 1));
  folder_.reset_counts();
  EXPECT_EQ(get_ok(*journal, "hot", 200)->state, CounterFolder::state(200, 200));
  EXPECT_EQ(folder_.max_events_per_call.load(), 200u);
}

TEST_F(RevisionReadTest, DenseAndSparseHistoriesReadTheSameEventsAtEveryRevision) {
  // A get reads an entity's log records by one scan of the log when they are dense in their
  // span (a hot entity) and by point lookups when sparse; both must give exactly the events
  // up to the revision asked for. "hot" changes at 5 of every 6 revisions (and twice in one
  // command), "warm" at every 3rd (near the boundary), "cold" at every 11th; the deltas differ,
  // so a missed, repeated or foreign event shows in the sum.
  auto journal = open(/*snapshot_every=*/0);
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> expected;  // count, sum
  std::map<std::string, Revision> changed_at;
  std::vector<std::map<std::string, std::pair<std::int64_t, std::int64_t>>> at_revision(1);
  for (int i = 1; i <= 600; ++i) {
    CommitRequest request;
    request.shard = kShard;
    auto add = [&](const std::string& key, std::int64_t delta) {
      request.events.push_back(Event{key, std::to_string(delta)});
      expected[key].first += 1;
      expected[key].second += delta;
      changed_at[key] = static_cast<Revision>(i);
    };
    if (i % 6 != 0) add("hot", i);
    if (i % 7 == 0) add("hot", 1000 + i);
    if (i % 3 == 0) add("warm", 2 * i);
    if (i % 11 == 0) add("cold", 3 * i);
    if (request.events.empty()) add("filler", 1);
    ASSERT_EQ(commit_ok(*journal, request), static_cast<Revision>(i));
    at_revision.push_back(expected);
  }
  std::map<std::string, Revision> last_change;
  for (Revision r = 1; r <= 600; ++r) {
    for (const std::string key : {"hot", "warm", "cold"}) {
      auto got = journal->get(kShard, key, r);
      ASSERT_TRUE(got.is_ok()) << key << "@" << r << ": " << got.status().to_string();
      auto want = at_revision[r].find(key);
      if (want == at_revision[r].end()) {
        EXPECT_EQ(*got, std::nullopt) << key << "@" << r;
        continue;
      }
      ASSERT_TRUE(got->has_value()) << key << "@" << r;
      EXPECT_EQ((*got)->state, CounterFolder::state(want->second.first, want->second.second)) << key << "@" << r;
      if (at_revision[r - 1].count(key) == 0 || at_revision[r - 1].at(key) != want->second) last_change[key] = r;
      EXPECT_EQ((*got)->mod_revision, last_change[key]) << key << "@" << r;
    }
  }
  EXPECT_EQ(last_change["hot"], changed_at["hot"]);
}

TEST_F(RevisionReadTest, ALogRecordMissingUnderAHotOrAColdEntityIsCorruptionNamingIt) {
  // The version index names a revision whose log record is gone (damage behind the journal's
  // back): the scan and the point lookups both refuse it, naming the revision.
  // hot: 100 records among about 300 (dense); cold: 10 (too few to scan).
  std::vector<Revision> hot;
  std::vector<Revision> cold;
  {
    auto journal = open(/*snapshot_every=*/0);
    for (int i = 1; i <= 100; ++i) {
      hot.push_back(commit_ok(*journal, one_event(kShard, "hot", 1)));
      if (i % 10 != 0) continue;
      cold.push_back(commit_ok(*journal, one_event(kShard, "cold", 1)));
      for (int k = 0; k < 19; ++k) commit_ok(*journal, one_event(kShard, "filler", 1));
    }
  }
  const Revision hot_gone = hot[40];
  const Revision cold_gone = cold[3];
  {
    rocksdb::DBOptions db_options;
    std::vector<rocksdb::ColumnFamilyDescriptor> families = {{rocksdb::kDefaultColumnFamilyName, {}},
                                                             {shard_name(kShard), {}}};
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(db_options, dir_.path() + "/" + kRocksDbDir, families, &handles, &db).ok());
    ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), handles[1], encoding::log_key(hot_gone)).ok());
    ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), handles[1], encoding::log_key(cold_gone)).ok());
    for (auto* handle : handles) db->DestroyColumnFamilyHandle(handle);
    delete db;
  }
  JournalOptions options;
  options.shards = {kShard};
  options.folder = &folder_;
  options.snapshot_every_events = 0;
  options.open_verification = OpenVerification::kTail;  // the open would find the gap itself
  options.open_verify_tail_revisions = 2;
  auto journal = Journal::open(dir_.path(), options);
  ASSERT_TRUE(journal.is_ok()) << journal.status().to_string();
  for (const auto& [key, gone] : {std::pair<std::string, Revision>{"hot", hot_gone}, {"cold", cold_gone}}) {
    auto got = (*journal)->get(kShard, key, hot.back());
    ASSERT_EQ(got.status().code(), StatusCode::kCorruption) << key << ": " << got.status().to_string();
    EXPECT_NE(got.status().message().find("revision " + std::to_string(gone)), std::string::npos)
        << got.status().to_string();
    // Below the missing record the entity reads as before.
    EXPECT_TRUE((*journal)->get(kShard, key, gone - 1).is_ok()) << key;
  }
}

TEST_F(RevisionReadTest, ReadRepairSnapshotsAnEntityWhoseCountWasForgotten) {
  // The snapshot thread's counts restart with the process: seven events per session, below
  // the interval of 8, leave 35 events without a snapshot after five sessions.
  for (int session = 0; session < 5; ++session) {
    auto journal = open(/*snapshot_every=*/8);
    for (int i = 0; i < 7; ++i) commit_ok(*journal, one_event(kShard, "a", 1));
    journal->wait_for_snapshots();
    EXPECT_EQ(journal->stats().snapshots_made, 0u);
  }
  auto journal = open(/*snapshot_every=*/8);
  folder_.reset_counts();
  EXPECT_EQ(get_ok(*journal, "a", 35)->state, CounterFolder::state(35, 35));
  EXPECT_EQ(folder_.max_events_per_call.load(), 35u);  // the first read pays once...
  EXPECT_EQ(journal->stats().snapshots_made, 1u);      // ...and leaves a snapshot behind
  folder_.reset_counts();
  EXPECT_EQ(get_ok(*journal, "a", 35)->state, CounterFolder::state(35, 35));
  EXPECT_EQ(folder_.max_events_per_call.load(), 0u);
}

TEST_F(RevisionReadTest, CallerSuppliedSnapshotsAreUsed) {
  auto journal = open(/*snapshot_every=*/0);
  for (int i = 0; i < 10; ++i) commit_ok(*journal, one_event(kShard, "a", 2));
  CommitRequest with_snapshot = one_event(kShard, "a", 2);
  with_snapshot.snapshots.push_back(EntitySnapshot{"a", CounterFolder::state(11, 22)});
  const Revision at = commit_ok(*journal, with_snapshot);
  commit_ok(*journal, one_event(kShard, "a", 2));
  folder_.reset_counts();
  EXPECT_EQ(get_ok(*journal, "a", at)->state, CounterFolder::state(11, 22));
  EXPECT_EQ(get_ok(*journal, "a", at + 1)->state, CounterFolder::state(12, 24));
  EXPECT_EQ(folder_.max_events_per_call.load(), 1u);  // the snapshot, then one event
  EXPECT_EQ(folder_.calls_with_snapshot.load(), 2u);
  EXPECT_EQ(journal->stats().snapshots_given, 1u);
}

// The digest of the test's own rebuild: fold every event from scratch, sorted by key.
std::string rebuild_digest(Journal& journal, Revision revision) {
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> state;
  auto watch = journal.watch(kShard, "", 1);
  EXPECT_TRUE(watch.is_ok());
  while (true) {
    auto records = watch->next();
    EXPECT_TRUE(records.is_ok());
    if (records->empty()) break;
    for (const auto& record : *records) {
      if (record.revision > revision) break;
      for (const auto& event : record.events) {
        state[event.entity_key].first += 1;
        state[event.entity_key].second += std::stoll(event.payload);
      }
    }
  }
  Sha256 sha;
  for (const auto& [key, value] : state) {
    sha.update_framed(key);
    sha.update_framed(CounterFolder::state(value.first, value.second));
  }
  return sha.hex_digest();
}

TEST_F(RevisionReadTest, DigestDependsOnStateOnlyNotOnSnapshotsOrHistory) {
  auto with_snapshots = open(/*snapshot_every=*/2, "with");
  auto without = open(/*snapshot_every=*/0, "without");
  for (int i = 0; i < 60; ++i) {
    for (Journal* journal : {with_snapshots.get(), without.get()}) {
      CommitRequest request;
      request.shard = kShard;
      request.events = {Event{"k/" + std::to_string(i % 7), std::to_string(i)},
                        Event{"z/" + std::to_string(i % 3), "-1"}};
      commit_ok(*journal, request);
    }
  }
  with_snapshots->wait_for_snapshots();
  ASSERT_GT(with_snapshots->stats().snapshots_made, 0u);
  for (Revision r : {Revision{0}, Revision{1}, Revision{17}, Revision{60}}) {
    const std::string digest = *with_snapshots->digest(kShard, r);
    EXPECT_EQ(digest, *without->digest(kShard, r)) << r;
    EXPECT_EQ(digest, rebuild_digest(*without, r)) << r;
    EXPECT_EQ(digest.size(), 64u);
  }
  EXPECT_NE(*without->digest(kShard, 59), *without->digest(kShard, 60));
  // Compaction changes history, not state.
  const std::string at60 = *with_snapshots->digest(kShard, 60);
  ASSERT_TRUE(with_snapshots->compact(kShard, 40).is_ok());
  EXPECT_EQ(*with_snapshots->digest(kShard, 60), at60);
  EXPECT_EQ(*with_snapshots->digest(kShard, 40), *without->digest(kShard, 40));
}

}  // namespace
}  // namespace ffe::storage
