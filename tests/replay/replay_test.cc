// Replay (adapters/replay/replay.h, docs/replay.md): invariant 8, replay of the journal to
// revision R yields exactly the live state at R (the same digest). The journal is built by
// the real runtime (CAF actors, the deciders, the saga, in-process participants), so the
// log holds what an engine writes: stock received, reserved, released, committed; orders
// fulfilled, declined, unshippable, cancelled, rejected.

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "actors/runtime/folder.h"
#include "adapters/replay/replay.h"
#include "storage/encoding.h"
#include "storage/journal.h"
#include "tests/runtime/runtime_test_support.h"

namespace ffe::replay {
namespace {

using runtime::InventoryCommand;
using runtime::OrderCommand;
using runtime::testing::TempDir;
using runtime::testing::TestParticipants;
using runtime::testing::place_order;
using runtime::testing::receive_stock;
using runtime::testing::submit_and_wait;
using storage::Revision;
using storage::ShardId;
using storage::StatusCode;

constexpr std::uint32_t kShards = 3;
constexpr int kOrders = 60;

// A runtime on a fresh data dir with a finished mixed workload. Owner: one test.
class ReplayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    runtime::Options options;
    options.data_dir = data_dir();
    options.shards = kShards;
    options.egress = &participants_;
    options.scheduler_threads = 2;
    auto opened = runtime::Runtime::open(options);
    ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
    runtime_ = std::move(*opened);
    participants_.attach(runtime_.get());
    std::mt19937_64 rng(7);
    for (int s = 1; s <= 5; ++s) {
      const std::string sku = "sku-" + std::to_string(s);
      auto ack = submit_and_wait(*runtime_, InventoryCommand{receive_stock(sku, 12, "r-" + sku)});
      ASSERT_TRUE(ack && ack->status.is_ok());
    }
    for (int i = 0; i < kOrders; ++i) {
      const std::string id = "o-" + std::to_string(i);
      const int kind = static_cast<int>(rng() % 6);
      v1::PlaceOrder place = place_order(id, {{"sku-" + std::to_string(1 + rng() % 5), 1 + static_cast<std::int64_t>(rng() % 3)},
                                              {"sku-" + std::to_string(1 + rng() % 5), 1}},
                                         kind == 1 ? "tok_decline" : "tok_visa", kind == 2 ? "XX" : "US");
      ASSERT_TRUE(runtime_->submit(OrderCommand{place}, [](const runtime::Ack&) {}).is_ok());
      if (kind == 3) {
        ASSERT_TRUE(runtime_->submit(OrderCommand{runtime::testing::cancel_order(id)}, [](const runtime::Ack&) {}).is_ok());
      }
    }
    ASSERT_TRUE(participants_.wait_for_outcomes(kOrders, std::chrono::seconds(45)))
        << participants_.orders_with_outcome() << " of " << kOrders << " orders reached an outcome";
    ASSERT_TRUE(runtime_->wait_quiet(std::chrono::seconds(30)));
  }

  void TearDown() override {
    participants_.detach();
    runtime_.reset();
  }

  std::string data_dir() const { return dir_.sub("data"); }
  storage::Journal& journal() { return runtime_->journal(); }
  Revision head(ShardId shard) { return *journal().revision(shard); }

  TempDir dir_;
  TestParticipants participants_;
  std::unique_ptr<runtime::Runtime> runtime_;
};

TEST_F(ReplayTest, DigestEqualsTheLiveDigestAtTheHeadAndAtEarlierRevisions) {
  for (std::uint32_t s = 0; s < kShards; ++s) {
    const ShardId shard{s};
    const Revision top = head(shard);
    ASSERT_GT(top, 10u) << "shard " << s << " holds too little to prove anything";
    std::uint64_t events_at_top = 0;
    for (Revision at : {Revision{0}, Revision{1}, top / 3, top / 2, top - 1, top}) {
      auto replayed = replay_shard(journal(), shard, at);
      ASSERT_TRUE(replayed.is_ok()) << replayed.status().to_string();
      EXPECT_EQ(replayed->revision, at);
      EXPECT_EQ(replayed->digest, *journal().digest(shard, at)) << "shard " << s << " at revision " << at;
      if (at == top) events_at_top = replayed->events;
    }
    // Every event of the log was folded: at least one per revision.
    EXPECT_GE(events_at_top, top);
    auto current = replay_shard(journal(), shard, std::nullopt);
    ASSERT_TRUE(current.is_ok());
    EXPECT_EQ(current->revision, top);
  }
}

TEST_F(ReplayTest, ReadOnlyBesideTheRunningEngineAndOneShard) {
  // The engine still holds the data dir: replay opens it read-only.
  ReplayOptions options;
  options.data_dir = data_dir();
  auto all = replay(options);
  ASSERT_TRUE(all.is_ok()) << all.status().to_string();
  ASSERT_EQ(all->size(), kShards);
  for (const ShardReplay& result : *all) {
    EXPECT_EQ(result.revision, head(ShardId{result.shard}));
    EXPECT_EQ(result.digest, *journal().digest(ShardId{result.shard}, result.revision)) << "shard " << result.shard;
  }
  options.shard = 1;
  options.to_revision = head(ShardId{1}) / 2;
  auto one = replay(options);
  ASSERT_TRUE(one.is_ok()) << one.status().to_string();
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ(one->front().shard, 1u);
  EXPECT_EQ(one->front().digest, *journal().digest(ShardId{1}, head(ShardId{1}) / 2));
  EXPECT_EQ(to_json(one->front()), "{\"shard\":1,\"revision\":" + std::to_string(head(ShardId{1}) / 2) +
                                       ",\"events\":" + std::to_string(one->front().events) + ",\"digest\":\"" +
                                       one->front().digest + "\"}");

  options.to_revision = head(ShardId{1}) + 1;
  auto future = replay(options);
  EXPECT_EQ(future.status().code(), StatusCode::kFutureRevision);
  options.shard = 9;
  options.to_revision.reset();
  EXPECT_EQ(replay(options).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(ReplayTest, AfterCompactionStartsFromTheCompactedStateAndRefusesOlderRevisions) {
  const ShardId shard{0};
  const Revision top = head(shard);
  const Revision compacted = top / 2;
  const std::string live_at_top = *journal().digest(shard, top);
  const std::string live_at_compacted = *journal().digest(shard, compacted);
  ASSERT_TRUE(journal().compact(shard, compacted).is_ok());

  for (Revision at : {compacted, compacted + 1, top}) {
    auto replayed = replay_shard(journal(), shard, at);
    ASSERT_TRUE(replayed.is_ok()) << replayed.status().to_string();
    EXPECT_EQ(replayed->base_revision, compacted);
    EXPECT_GT(replayed->base_entities, 0u);
    EXPECT_EQ(replayed->events > 0, at > compacted);
    EXPECT_EQ(replayed->digest, *journal().digest(shard, at)) << "at " << at;
  }
  EXPECT_EQ(replay_shard(journal(), shard, top)->digest, live_at_top);
  EXPECT_EQ(replay_shard(journal(), shard, compacted)->digest, live_at_compacted);
  auto below = replay_shard(journal(), shard, compacted - 1);
  ASSERT_EQ(below.status().code(), StatusCode::kCompacted);
  EXPECT_NE(below.status().message().find("compacted revision " + std::to_string(compacted)), std::string::npos)
      << below.status().to_string();
}

// Runs the ffe binary; its stdout, stderr and exit code.
struct CliRun {
  std::string out, err;
  int code = -1;
};
CliRun run_ffe(const std::string& args, const std::string& err_path) {
  CliRun run;
  const std::string command = std::string(FFE_BINARY) + " " + args + " 2>'" + err_path + "'";
  if (FILE* pipe = ::popen(command.c_str(), "r")) {
    char buffer[4096];
    std::size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) run.out.append(buffer, n);
    const int status = ::pclose(pipe);
    run.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::ifstream in(err_path);
  std::stringstream err;
  err << in.rdbuf();
  run.err = err.str();
  return run;
}

TEST_F(ReplayTest, TheCommandLinePrintsOneJsonLinePerShardOnAStoppedEngine) {
  std::map<std::uint32_t, std::pair<Revision, std::string>> live;
  for (std::uint32_t s = 0; s < kShards; ++s) live[s] = {head(ShardId{s}), *journal().digest(ShardId{s}, head(ShardId{s}))};
  const std::string mid_digest = *journal().digest(ShardId{2}, live[2].first / 2);
  TearDown();  // the engine stops: a stopped engine's data dir

  const std::string err_path = dir_.sub("stderr");
  CliRun run = run_ffe("replay --data-dir '" + data_dir() + "' --json", err_path);
  EXPECT_EQ(run.code, 0) << run.err;
  std::string expected_prefix;
  std::istringstream lines(run.out);
  std::string line;
  std::uint32_t s = 0;
  while (std::getline(lines, line)) {
    const std::string prefix = "{\"shard\":" + std::to_string(s) + ",\"revision\":" + std::to_string(live[s].first) + ",\"events\":";
    EXPECT_TRUE(line.starts_with(prefix)) << line;
    EXPECT_TRUE(line.ends_with(",\"digest\":\"" + live[s].second + "\"}")) << line;
    ++s;
  }
  EXPECT_EQ(s, kShards) << run.out;
  EXPECT_EQ(run.err, "");  // --json: no progress bar, nothing else

  run = run_ffe("replay --data-dir '" + data_dir() + "' --shard 2 --to-revision " + std::to_string(live[2].first / 2),
                err_path);
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_NE(run.out.find("{\"shard\":2,\"revision\":" + std::to_string(live[2].first / 2) + ","), std::string::npos);
  EXPECT_NE(run.out.find(mid_digest), std::string::npos) << run.out;

  run = run_ffe("replay --data-dir '" + data_dir() + "' --shard 2 --to-revision 999999", err_path);
  EXPECT_EQ(run.code, 2);
  EXPECT_EQ(run.out, "");
  EXPECT_NE(run.err.find("ffe replay: kFutureRevision: shard-0002: revision 999999 is in the future"), std::string::npos)
      << run.err;

  run = run_ffe("replay --data-dir '" + dir_.sub("nothing-here") + "'", err_path);
  EXPECT_EQ(run.code, 2);
  EXPECT_NE(run.err.find("no ffe data dir"), std::string::npos) << run.err;
}

// A journal written directly (the journal is domain-free): events an engine never writes.
class BadLogTest : public ::testing::Test {
 protected:
  std::string data_dir(const std::string& name = "data") const { return dir_.sub(name); }
  void write(const std::vector<storage::Event>& events, const std::string& name = "data") {
    storage::JournalOptions options;
    options.shards = {ShardId{0}};
    auto journal = storage::Journal::open(data_dir(name), options);
    ASSERT_TRUE(journal.is_ok()) << journal.status().to_string();
    for (const auto& event : events) {
      storage::CommitRequest request;
      request.shard = ShardId{0};
      request.events.push_back(event);
      ASSERT_TRUE((*journal)->commit(std::move(request)).get().status.is_ok());
    }
  }
  static std::string received(std::int64_t qty, const std::string& id) {
    v1::SkuEvent event;
    event.mutable_received()->set_qty(qty);
    event.mutable_received()->set_receipt_id(id);
    return event.SerializeAsString();
  }
  TempDir dir_;
};

TEST_F(BadLogTest, AGapInTheLogIsRefusedNamingIt) {
  std::vector<storage::Event> events;
  for (int i = 1; i <= 20; ++i) events.push_back({"sku/s-1", received(1, "r-" + std::to_string(i))});
  write(events);
  {
    // Remove log record 8 behind the journal's back.
    rocksdb::DBOptions db_options;
    std::vector<rocksdb::ColumnFamilyDescriptor> families = {{rocksdb::kDefaultColumnFamilyName, {}},
                                                             {storage::shard_name(ShardId{0}), {}}};
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(db_options, data_dir() + "/rocksdb", families, &handles, &db).ok());
    ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), handles[1], storage::encoding::log_key(8)).ok());
    for (auto* handle : handles) db->DestroyColumnFamilyHandle(handle);
    delete db;
  }
  // Replay opens without reading the log's middle first (it checks as it reads): the gap
  // is found by the read itself.
  runtime::DomainFolder folder;
  storage::JournalOptions options;
  options.folder = &folder;
  options.read_only = true;
  options.open_verification = storage::OpenVerification::kTail;
  options.open_verify_tail_revisions = 2;
  auto journal = storage::Journal::open(data_dir(), options);
  ASSERT_TRUE(journal.is_ok()) << journal.status().to_string();
  auto replayed = replay_shard(**journal, ShardId{0}, std::nullopt);
  ASSERT_EQ(replayed.status().code(), StatusCode::kCorruption);
  EXPECT_NE(replayed.status().message().find("revision 8"), std::string::npos) << replayed.status().to_string();
  // Up to the revision before the gap is fine.
  EXPECT_TRUE(replay_shard(**journal, ShardId{0}, 7).is_ok());
  journal->reset();

  // Through replay() (whose open checks only each shard's first and last record), the same.
  ReplayOptions replay_options;
  replay_options.data_dir = data_dir();
  auto all = replay(replay_options);
  ASSERT_EQ(all.status().code(), StatusCode::kCorruption);
  EXPECT_NE(all.status().message().find("no revision 8 though the shard is at 20 (a gap)"), std::string::npos)
      << all.status().to_string();
}

TEST_F(BadLogTest, UndecodableEventsAndUnknownKeysAreRefusedNamingTheRevision) {
  write({{"sku/s-1", received(5, "r-1")}, {"sku/s-1", "\xff\xff\xff garbage"}});
  ReplayOptions options;
  options.data_dir = data_dir();
  auto replayed = replay(options);
  ASSERT_EQ(replayed.status().code(), StatusCode::kCorruption);
  EXPECT_NE(replayed.status().message().find("revision 2, entity 'sku/s-1': an undecodable SKU event"),
            std::string::npos)
      << replayed.status().to_string();
  options.to_revision = 1;
  EXPECT_TRUE(replay(options).is_ok());

  write({{"widget/w-1", received(5, "r-1")}}, "other");
  options.data_dir = data_dir("other");
  options.to_revision.reset();
  replayed = replay(options);
  ASSERT_EQ(replayed.status().code(), StatusCode::kCorruption);
  EXPECT_NE(replayed.status().message().find("'widget/w-1': an entity key ffe does not know"), std::string::npos)
      << replayed.status().to_string();
}

}  // namespace
}  // namespace ffe::replay
