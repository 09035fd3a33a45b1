// Read-only journal opens (JournalOptions::read_only, Journal::refresh; docs/journal.md,
// "Read-only opens"): a RocksDB secondary instance beside a live writer, in this process and
// in another one; refresh() sees what the writer made durable since; every write is refused;
// a dir that is not a journal is refused; nothing in the data dir changes.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>

#include "storage/journal.h"
#include "tests/storage/crash_workload.h"
#include "tests/storage/test_support.h"

namespace ffe::storage {
namespace {

using testing::CounterFolder;
using testing::TempDir;
using testing::commit_ok;
using testing::one_event;

constexpr ShardId kShard0{0};
constexpr ShardId kShard1{1};

JournalOptions writable_options(StateFolder* folder) {
  JournalOptions options;
  options.shards = {kShard0, kShard1};
  options.folder = folder;
  options.snapshot_every_events = 4;  // journal-made snapshots too
  options.flush_at_close = true;
  return options;
}

JournalOptions read_only_options(StateFolder* folder) {
  JournalOptions options;
  options.folder = folder;
  options.read_only = true;
  return options;
}

// Every file under dir (relative name -> content), except RocksDB's info logs.
std::map<std::string, std::string> files_of(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    const std::string name = entry.path().filename().string();
    if (name.starts_with("LOG")) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream content;
    content << in.rdbuf();
    files[std::filesystem::relative(entry.path(), dir).string()] = content.str();
  }
  return files;
}

// Points TMPDIR at a dir of the test's own for the secondary instance's temp dir, so the
// test can see it is removed at close. Restores the old value when it goes.
class ScopedTmpdir {
 public:
  explicit ScopedTmpdir(const std::string& dir) {
    if (const char* old = std::getenv("TMPDIR")) old_ = old;
    std::filesystem::create_directories(dir);
    ::setenv("TMPDIR", dir.c_str(), 1);
  }
  ~ScopedTmpdir() {
    if (old_) {
      ::setenv("TMPDIR", old_->c_str(), 1);
    } else {
      ::unsetenv("TMPDIR");
    }
  }

 private:
  std::optional<std::string> old_;
};

void expect_writes_refused(Journal& journal) {
  auto committed = journal.commit(one_event(kShard0, "a", 1)).get();
  EXPECT_EQ(committed.status.code(), StatusCode::kReadOnly) << committed.status.to_string();
  Status submitted = journal.submit(one_event(kShard0, "a", 1), [](const CommitResult&) {
    ADD_FAILURE() << "a refused submit's callback ran";
  });
  EXPECT_EQ(submitted.code(), StatusCode::kReadOnly) << submitted.to_string();
  EXPECT_EQ(journal.compact(kShard0, 1).code(), StatusCode::kReadOnly);
  EXPECT_EQ(journal.mark_sent(kShard0, OutboxPosition{1, 0}).code(), StatusCode::kReadOnly);
}

TEST(ReadOnlyJournal, BesideALiveWriterInTheSameProcessSeesWhatRefreshCatchesUp) {
  TempDir dir;
  CounterFolder folder;
  auto writer = Journal::open(dir.path(), writable_options(&folder));
  ASSERT_TRUE(writer.is_ok()) << writer.status().to_string();
  for (int i = 0; i < 30; ++i) commit_ok(**writer, one_event(i % 2 ? kShard1 : kShard0, "e" + std::to_string(i % 3), i));

  // The writer holds the dir (flock, RocksDB's LOCK); a read-only open claims neither.
  auto reader = Journal::open(dir.path(), read_only_options(&folder));
  ASSERT_TRUE(reader.is_ok()) << reader.status().to_string();
  EXPECT_EQ((*reader)->shards(), (std::vector<ShardId>{kShard0, kShard1}));
  for (ShardId shard : {kShard0, kShard1}) {
    ASSERT_EQ(*(*reader)->revision(shard), 15u);
    for (Revision at : {Revision{0}, Revision{7}, Revision{15}}) {
      EXPECT_EQ(*(*reader)->digest(shard, at), *(*writer)->digest(shard, at)) << "shard " << shard.value << " @" << at;
    }
    EXPECT_EQ((*reader)->digest(shard, 16).status().code(), StatusCode::kFutureRevision);
  }
  EXPECT_EQ(**(*reader)->get(kShard0, "e0", 15), **(*writer)->get(kShard0, "e0", 15));

  // The view stays as of open() until refresh().
  for (int i = 30; i < 50; ++i) commit_ok(**writer, one_event(kShard0, "e" + std::to_string(i % 3), i));
  EXPECT_EQ(*(*reader)->revision(kShard0), 15u);
  auto watch = (*reader)->watch(kShard0, "", 1);
  ASSERT_TRUE(watch.is_ok());
  auto first = watch->next(100);
  ASSERT_TRUE(first.is_ok());
  EXPECT_EQ(first->size(), 15u);
  ASSERT_TRUE((*reader)->refresh().is_ok());
  EXPECT_EQ(*(*reader)->revision(kShard0), 35u);
  EXPECT_EQ(*(*reader)->revision(kShard1), 15u);
  EXPECT_EQ(*(*reader)->digest(kShard0, 35), *(*writer)->digest(kShard0, 35));
  auto rest = watch->next(100);
  ASSERT_TRUE(rest.is_ok());
  ASSERT_EQ(rest->size(), 20u);
  EXPECT_EQ(rest->front().revision, 16u);
  EXPECT_EQ(rest->back().revision, 35u);

  // Compaction by the writer shows after a refresh; reads below it fail as on the writer.
  ASSERT_TRUE((*writer)->compact(kShard0, 20).is_ok());
  ASSERT_TRUE((*reader)->refresh().is_ok());
  EXPECT_EQ(*(*reader)->compacted_revision(kShard0), 20u);
  EXPECT_EQ((*reader)->digest(kShard0, 19).status().code(), StatusCode::kCompacted);
  EXPECT_EQ(*(*reader)->digest(kShard0, 20), *(*writer)->digest(kShard0, 20));
  EXPECT_EQ(*(*reader)->digest(kShard0, 35), *(*writer)->digest(kShard0, 35));

  expect_writes_refused(**reader);
  EXPECT_EQ((*writer)->refresh().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE((*writer)->status().is_ok());
  // A second reader beside the first and the writer.
  auto second = Journal::open(dir.path(), read_only_options(&folder));
  ASSERT_TRUE(second.is_ok()) << second.status().to_string();
  EXPECT_EQ(*(*second)->revision(kShard0), 35u);
}

TEST(ReadOnlyJournal, BesideARunningEngineInAnotherProcess) {
  TempDir dir;
  const std::string data = dir.sub("data");
  testing::Child child = testing::spawn_child(FFE_JOURNAL_CHILD, {"load", data, "2"});
  // The highest revision per shard the child reported durable; read_report() takes one more
  // line ("ok <revision> <thread>") and says what went wrong, if anything.
  Revision reported[2] = {0, 0};
  auto read_report = [&]() -> std::string {
    auto line = testing::read_line(child, 30000);
    if (!line || !line->starts_with("ok ")) return line ? *line : "no line from the child";
    unsigned long long revision = 0;
    int thread = 0;
    std::sscanf(line->c_str(), "ok %llu %d", &revision, &thread);
    Revision& top = reported[testing::crash_shard(thread).value];
    top = std::max<Revision>(top, revision);
    return "";
  };
  // Wait until the child has made a few hundred commits durable.
  for (int lines = 0; lines < 300; ++lines) {
    const std::string wrong = read_report();
    ASSERT_TRUE(wrong.empty()) << wrong;
  }
  CounterFolder folder;
  auto reader = Journal::open(data, read_only_options(&folder));
  ASSERT_TRUE(reader.is_ok()) << reader.status().to_string();
  Revision seen[2];
  for (ShardId shard : testing::kCrashShards) {
    seen[shard.value] = *(*reader)->revision(shard);
    // Everything reported durable before the open is visible.
    EXPECT_GE(seen[shard.value], reported[shard.value]) << "shard " << shard.value;
    EXPECT_TRUE((*reader)->digest(shard, seen[shard.value]).is_ok());
  }
  expect_writes_refused(**reader);
  // The engine goes on; refresh() sees its later commits. Read the child's reports until
  // each shard has one past what the open saw (its lines can lag behind its commits, so a
  // fixed count of lines may all be of commits the open already saw).
  while (reported[0] <= seen[0] || reported[1] <= seen[1]) {
    const std::string wrong = read_report();
    ASSERT_TRUE(wrong.empty()) << wrong;
  }
  ASSERT_TRUE((*reader)->refresh().is_ok());
  Revision refreshed[2];
  std::string digest_at_refresh[2];
  for (ShardId shard : testing::kCrashShards) {
    refreshed[shard.value] = *(*reader)->revision(shard);
    EXPECT_GT(refreshed[shard.value], seen[shard.value]) << "shard " << shard.value;
    auto digest = (*reader)->digest(shard, refreshed[shard.value]);
    ASSERT_TRUE(digest.is_ok()) << digest.status().to_string();
    digest_at_refresh[shard.value] = *digest;
  }

  ::kill(child.pid, SIGKILL);
  testing::read_remaining_lines(child);
  testing::wait_child(child);
  reader->reset();
  // The engine's own view of those revisions, after its crash, is the same state.
  auto writer = Journal::open(data, testing::crash_journal_options(&folder));
  ASSERT_TRUE(writer.is_ok()) << writer.status().to_string();
  for (ShardId shard : testing::kCrashShards) {
    EXPECT_EQ(*(*writer)->digest(shard, refreshed[shard.value]), digest_at_refresh[shard.value]) << "shard " << shard.value;
  }
}

TEST(ReadOnlyJournal, ChangesNothingInTheDataDirAndRemovesItsTempDir) {
  TempDir dir;
  const std::string data = dir.sub("data");
  CounterFolder folder;
  {
    auto writer = Journal::open(data, writable_options(&folder));
    ASSERT_TRUE(writer.is_ok());
    for (int i = 0; i < 40; ++i) commit_ok(**writer, one_event(kShard0, "e" + std::to_string(i % 4), i));
  }
  {
    // The last commits in the WAL only (as after a crash): a close without a flush, so the
    // read-only open replays a WAL too, into its own memory.
    JournalOptions options = writable_options(&folder);
    options.flush_at_close = false;
    auto writer = Journal::open(data, options);
    ASSERT_TRUE(writer.is_ok());
    for (int i = 40; i < 60; ++i) commit_ok(**writer, one_event(kShard0, "e" + std::to_string(i % 4), i));
  }
  const auto before = files_of(data);
  ASSERT_FALSE(before.empty());
  ScopedTmpdir tmp(dir.sub("tmp"));
  {
    auto reader = Journal::open(data, read_only_options(&folder));
    ASSERT_TRUE(reader.is_ok()) << reader.status().to_string();
    EXPECT_EQ(*(*reader)->revision(kShard0), 60u);
    // Reads that fold many events (read repair would write a snapshot on a writable
    // journal) write nothing here.
    for (Revision at = 1; at <= 60; at += 7) EXPECT_TRUE((*reader)->digest(kShard0, at).is_ok());
    EXPECT_TRUE((*reader)->range(kShard0, "", 60).is_ok());
    EXPECT_TRUE((*reader)->refresh().is_ok());
    expect_writes_refused(**reader);
    (*reader)->wait_for_snapshots();  // returns at once: no snapshot thread
    EXPECT_FALSE(std::filesystem::is_empty(dir.sub("tmp")));  // the secondary's own dir
  }
  EXPECT_EQ(files_of(data), before);
  EXPECT_TRUE(std::filesystem::is_empty(dir.sub("tmp")));
}

TEST(ReadOnlyJournal, RefusesWhatIsNotAJournalWithoutCreatingAnything) {
  TempDir dir;
  CounterFolder folder;
  auto open = [&](const std::string& path) { return Journal::open(path, read_only_options(&folder)); };

  auto missing = open(dir.sub("missing"));
  EXPECT_EQ(missing.status().code(), StatusCode::kNotJournal) << missing.status().to_string();
  EXPECT_NE(missing.status().message().find("does not exist"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir.sub("missing")));  // a typo never creates a dir

  std::filesystem::create_directory(dir.sub("empty"));
  EXPECT_EQ(open(dir.sub("empty")).status().code(), StatusCode::kNotJournal);
  EXPECT_TRUE(std::filesystem::is_empty(dir.sub("empty")));

  std::filesystem::create_directory(dir.sub("foreign"));
  std::ofstream(dir.sub("foreign") + "/data.txt") << "someone else's";
  EXPECT_EQ(open(dir.sub("foreign")).status().code(), StatusCode::kNotJournal);

  std::ofstream(dir.sub("file")) << "x";
  EXPECT_EQ(open(dir.sub("file")).status().code(), StatusCode::kNotJournal);

  std::filesystem::create_directory(dir.sub("future"));
  std::ofstream(dir.sub("future") + "/FFE_JOURNAL") << "ffe-journal\nformat 9\n";
  EXPECT_EQ(open(dir.sub("future")).status().code(), StatusCode::kFormat);

  std::filesystem::create_directory(dir.sub("marker-only"));
  std::ofstream(dir.sub("marker-only") + "/FFE_JOURNAL") << "ffe-journal\nformat 1\n";
  auto marker_only = open(dir.sub("marker-only"));
  EXPECT_EQ(marker_only.status().code(), StatusCode::kNotJournal) << marker_only.status().to_string();
  EXPECT_EQ(files_of(dir.sub("marker-only")).size(), 1u);

  // A journal, asked for a shard it does not have: a read-only open cannot create one.
  {
    auto writer = Journal::open(dir.sub("journal"), writable_options(&folder));
    ASSERT_TRUE(writer.is_ok());
  }
  JournalOptions options = read_only_options(&folder);
  options.shards = {ShardId{7}};
  auto unknown = Journal::open(dir.sub("journal"), options);
  EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidArgument) << unknown.status().to_string();
}

}  // namespace
}  // namespace ffe::storage
