// Bad data dirs: not ffe's, an unknown format, held by another journal (this process or
// another), read-only, damaged (corrupt SST or WAL, a gap in the log). Each is a clear
// error naming the dir, and nothing is written where it should not be.

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "storage/data_dir.h"
#include "storage/encoding.h"
#include "storage/journal.h"
#include "tests/storage/test_support.h"

namespace ffe::storage {
namespace {

using testing::CounterFolder;
using testing::TempDir;
using testing::commit_ok;
using testing::one_event;

constexpr ShardId kShard{0};

std::set<std::string> listing(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) names.insert(entry.path().string());
  return names;
}

void write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
}

class DataDirTest : public ::testing::Test {
 protected:
  JournalOptions options() {
    JournalOptions options;
    options.shards = {kShard};
    options.folder = &folder_;
    return options;
  }
  // A journal with `commands` commits, closed.
  // sequential: wait for each commit, so each is its own WAL record (pipelined commits
  // share group commits, and the last one may then span most of the WAL).
  void make_journal(int commands, bool flush_at_close = true, bool sequential = false) {
    auto opts = options();
    opts.flush_at_close = flush_at_close;
    auto journal = Journal::open(dir_.path(), opts);
    ASSERT_TRUE(journal.is_ok()) << journal.status().to_string();
    std::vector<std::future<CommitResult>> futures;
    for (int i = 0; i < commands; ++i) {
      futures.push_back((*journal)->commit(one_event(kShard, "e/" + std::to_string(i % 50), i)));
      if (sequential) futures.back().wait();
    }
    for (auto& future : futures) ASSERT_TRUE(future.get().status.is_ok());
  }
  TempDir dir_;
  CounterFolder folder_;
};

TEST_F(DataDirTest, ADirThatIsNotAJournalIsRefusedAndLeftUntouched) {
  write_file(dir_.sub("precious.txt"), "someone's data");
  std::filesystem::create_directory(dir_.sub("photos"));
  const auto before = listing(dir_.path());
  auto journal = Journal::open(dir_.path(), options());
  ASSERT_EQ(journal.status().code(), StatusCode::kNotJournal);
  EXPECT_NE(journal.status().message().find(dir_.path()), std::string::npos) << journal.status().to_string();
  EXPECT_NE(journal.status().message().find("not an ffe journal"), std::string::npos);
  EXPECT_EQ(listing(dir_.path()), before);  // nothing written
}

TEST_F(DataDirTest, AFileWhereTheDirShouldBeIsRefused) {
  write_file(dir_.sub("file"), "x");
  EXPECT_EQ(Journal::open(dir_.sub("file"), options()).status().code(), StatusCode::kNotJournal);
}

TEST_F(DataDirTest, AnUnknownFormatIsRefused) {
  make_journal(1);
  write_file(dir_.sub(kMarkerFile), "ffe-journal\nformat 2\n");
  auto journal = Journal::open(dir_.path(), options());
  EXPECT_EQ(journal.status().code(), StatusCode::kFormat) << journal.status().to_string();
}

TEST_F(DataDirTest, ASecondJournalInThisProcessIsRefused) {
  auto first = Journal::open(dir_.path(), options());
  ASSERT_TRUE(first.is_ok());
  auto second = Journal::open(dir_.path(), options());
  ASSERT_EQ(second.status().code(), StatusCode::kInUse);
  EXPECT_NE(second.status().message().find("in use by another ffe journal (pid " + std::to_string(::getpid()) +
                                           ", this process)"),
            std::string::npos)
      << second.status().to_string();
  first->reset();
  EXPECT_TRUE(Journal::open(dir_.path(), options()).is_ok());  // released on close
}

TEST_F(DataDirTest, AJournalHeldByAnotherProcessIsRefusedNamingItsPid) {
  testing::Child child = testing::spawn_child(FFE_JOURNAL_CHILD, {"hold", dir_.path()});
  auto ready = testing::read_line(child, 30000);
  ASSERT_TRUE(ready && ready->starts_with("ready ")) << (ready ? *ready : "no line");
  auto journal = Journal::open(dir_.path(), options());
  ASSERT_EQ(journal.status().code(), StatusCode::kInUse);
  EXPECT_NE(journal.status().message().find("(pid " + std::to_string(child.pid) + ")"), std::string::npos)
      << journal.status().to_string();
  EXPECT_EQ(testing::wait_child(child), 0);  // closing its stdin lets it close the journal
  EXPECT_TRUE(Journal::open(dir_.path(), options()).is_ok());
}

TEST_F(DataDirTest, AReadOnlyDirIsRefusedClearly) {
  // Tests run as root, for whom chmod changes nothing: the helper bind-mounts the dir
  // read-only in its own mount namespace instead.
  std::filesystem::create_directory(dir_.sub("empty"));
  {
    auto journal = Journal::open(dir_.sub("journal"), options());
    ASSERT_TRUE(journal.is_ok());
    commit_ok(**journal, one_event(kShard, "a", 1));
  }
  for (const std::string& dir : {dir_.sub("empty"), dir_.sub("journal")}) {
    testing::Child child = testing::spawn_child(FFE_JOURNAL_CHILD, {"readonly", dir});
    auto lines = testing::read_remaining_lines(child);
    int code = testing::wait_child(child);
    if (code == 77) GTEST_SKIP() << "cannot bind-mount read-only in a private mount namespace here";
    ASSERT_EQ(code, 0);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_TRUE(lines[0].starts_with("kReadOnly: data dir " + dir)) << lines[0];
    EXPECT_NE(lines[0].find("read-only"), std::string::npos) << lines[0];
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir_.sub("empty")));
}

TEST_F(DataDirTest, ACorruptSstRefusesToStart) {
  make_journal(2000);  // flushed at close: the data is in an SST
  auto ssts = testing::files_with_suffix(dir_.path(), ".sst");
  ASSERT_FALSE(ssts.empty());
  std::string biggest = ssts[0];
  for (const auto& sst : ssts) {
    if (std::filesystem::file_size(sst) > std::filesystem::file_size(biggest)) biggest = sst;
  }
  testing::flip_bytes(biggest, std::filesystem::file_size(biggest) / 3);
  auto journal = Journal::open(dir_.path(), options());
  ASSERT_EQ(journal.status().code(), StatusCode::kCorruption) << journal.status().to_string();
  EXPECT_NE(journal.status().message().find("refusing to start"), std::string::npos) << journal.status().to_string();
  EXPECT_NE(journal.status().message().find(std::filesystem::path(biggest).filename().string()), std::string::npos)
      << journal.status().to_string();
}

TEST_F(DataDirTest, ACorruptWalRefusesToStart) {
  // The data is only in the WAL, one record per command: the flipped bytes in the middle are
  // far from the last record (a corrupt LAST record reads as a write torn by a crash, which
  // RocksDB's kTolerateCorruptedTailRecords rightly drops).
  make_journal(500, /*flush_at_close=*/false, /*sequential=*/true);
  auto wals = testing::files_with_suffix(dir_.path(), ".log");
  std::erase_if(wals, [](const std::string& name) { return name.find("/LOG") != std::string::npos; });
  ASSERT_EQ(wals.size(), 1u);
  ASSERT_GT(std::filesystem::file_size(wals[0]), 10'000u);
  testing::flip_bytes(wals[0], std::filesystem::file_size(wals[0]) / 2);
  auto journal = Journal::open(dir_.path(), options());
  ASSERT_EQ(journal.status().code(), StatusCode::kCorruption) << journal.status().to_string();
  EXPECT_NE(journal.status().message().find("refusing to start"), std::string::npos);
  // RocksDB's own error does not name the file; the journal adds it from RocksDB's LOG.
  EXPECT_NE(journal.status().message().find(std::filesystem::path(wals[0]).filename().string()), std::string::npos)
      << journal.status().to_string();
}

TEST_F(DataDirTest, AGapInTheLogRefusesToStartNamingTheShard) {
  make_journal(20);
  {
    // Remove revision 7 behind the journal's back.
    rocksdb::DBOptions db_options;
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors = {
        {rocksdb::kDefaultColumnFamilyName, {}}, {shard_name(kShard), {}}};
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(db_options, dir_.sub(kRocksDbDir), descriptors, &handles, &db).ok());
    ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), handles[1], encoding::log_key(7)).ok());
    for (auto* handle : handles) db->DestroyColumnFamilyHandle(handle);
    delete db;
  }
  for (OpenVerification verification : {OpenVerification::kFull, OpenVerification::kTail}) {
    auto opts = options();
    opts.open_verification = verification;
    auto journal = Journal::open(dir_.path(), opts);
    ASSERT_EQ(journal.status().code(), StatusCode::kCorruption);
    EXPECT_NE(journal.status().message().find("shard-0000: the log jumps from revision 6 to 8"), std::string::npos)
        << journal.status().to_string();
  }
}

TEST_F(DataDirTest, RocksDbFilesWithoutCurrentRefuseToStart) {
  make_journal(1);
  std::filesystem::remove(dir_.sub(std::string(kRocksDbDir) + "/CURRENT"));
  auto journal = Journal::open(dir_.path(), options());
  EXPECT_EQ(journal.status().code(), StatusCode::kCorruption) << journal.status().to_string();
}

TEST_F(DataDirTest, AMarkerWithoutDataIsAJournalWhoseFirstOpenStoppedEarly) {
  write_file(dir_.sub(kMarkerFile), kMarkerContent);
  auto journal = Journal::open(dir_.path(), options());
  ASSERT_TRUE(journal.is_ok()) << journal.status().to_string();
  EXPECT_EQ(*(*journal)->revision(kShard), 0u);
}

// The WAL files of a journal (RocksDB's *.log, not its info LOG).
std::vector<std::string> wal_files(const std::string& dir) {
  auto wals = testing::files_with_suffix(dir, ".log");
  std::erase_if(wals, [](const std::string& name) { return name.find("/LOG") != std::string::npos; });
  return wals;
}

// RocksDB reads a WAL that is gone, or cut at a record boundary, as a clean end of the log
// (the tolerant tail mode that drops a torn write): without the heads file the journal would
// open at an older revision and lose acknowledged commits without a word.
TEST_F(DataDirTest, ADeletedWalRefusesToStartInsteadOfLosingAcknowledgedCommits) {
  make_journal(300, /*flush_at_close=*/false, /*sequential=*/true);  // the data only in the WAL
  auto wals = wal_files(dir_.path());
  ASSERT_FALSE(wals.empty());
  for (const auto& wal : wals) std::filesystem::remove(wal);
  for (bool read_only : {false, true}) {  // serve, and replay's read-only open
    auto opts = options();
    opts.read_only = read_only;
    auto journal = Journal::open(dir_.path(), opts);
    ASSERT_EQ(journal.status().code(), StatusCode::kCorruption) << read_only;
    EXPECT_NE(journal.status().message().find(
                  "shard-0000: the log ends at revision 0, but revision 300 was durable before (ffe.heads)"),
              std::string::npos)
        << journal.status().to_string();
  }
}

TEST_F(DataDirTest, AWalCutAtARecordBoundaryRefusesToStart) {
  make_journal(300, /*flush_at_close=*/false, /*sequential=*/true);
  auto wals = wal_files(dir_.path());
  ASSERT_EQ(wals.size(), 1u);
  std::filesystem::resize_file(wals[0], std::filesystem::file_size(wals[0]) / 2);
  auto journal = Journal::open(dir_.path(), options());
  ASSERT_EQ(journal.status().code(), StatusCode::kCorruption);
  EXPECT_NE(journal.status().message().find("but revision 300 was durable before"), std::string::npos)
      << journal.status().to_string();
}

// The read-only open (ffe replay, drift) of a dir that lost a table file: refused like the
// engine's open, not read as a shard with nothing in it.
TEST_F(DataDirTest, AMissingTableFileRefusesAReadOnlyOpenToo) {
  make_journal(2000);  // flushed at close: the data is in an SST, the format record in another
  auto ssts = testing::files_with_suffix(dir_.path(), ".sst");
  ASSERT_FALSE(ssts.empty());
  std::string biggest = ssts[0];
  for (const auto& sst : ssts) {
    if (std::filesystem::file_size(sst) > std::filesystem::file_size(biggest)) biggest = sst;
  }
  std::filesystem::remove(biggest);
  auto opts = options();
  opts.read_only = true;
  auto journal = Journal::open(dir_.path(), opts);
  ASSERT_FALSE(journal.is_ok()) << "opened at revision " << *(*journal)->revision(kShard);
  EXPECT_EQ(journal.status().code(), StatusCode::kCorruption) << journal.status().to_string();
  // And with every table file gone, the format record's too.
  for (const auto& sst : testing::files_with_suffix(dir_.path(), ".sst")) std::filesystem::remove(sst);
  for (bool read_only : {true, false}) {
    opts.read_only = read_only;
    auto again = Journal::open(dir_.path(), opts);
    EXPECT_EQ(again.status().code(), StatusCode::kCorruption) << again.status().to_string();
  }
}

TEST_F(DataDirTest, AMissingRocksDbDirWithHeadsRefusesToStartInsteadOfStartingEmpty) {
  make_journal(10);
  std::filesystem::remove_all(dir_.sub(kRocksDbDir));
  for (bool read_only : {true, false}) {  // replay's and drift's open say so too, not "no data yet"
    auto opts = options();
    opts.read_only = read_only;
    auto journal = Journal::open(dir_.path(), opts);
    ASSERT_EQ(journal.status().code(), StatusCode::kCorruption) << read_only << " " << journal.status().to_string();
    EXPECT_NE(journal.status().message().find("is missing, but ffe.heads says shard 0 was durable at revision 10"),
              std::string::npos)
        << journal.status().to_string();
  }
  EXPECT_FALSE(std::filesystem::exists(dir_.sub(std::string(kRocksDbDir) + "/CURRENT")));  // nothing made
}

TEST_F(DataDirTest, TheHeadsFileFollowsCommitsAndAMalformedOneRefusesToStart) {
  make_journal(25);
  auto heads = read_heads(dir_.path());
  ASSERT_TRUE(heads.is_ok()) << heads.status().to_string();
  EXPECT_EQ(*heads, (Heads{{0, 25}}));
  {
    auto journal = Journal::open(dir_.path(), options());  // reopens fine, at its head
    ASSERT_TRUE(journal.is_ok()) << journal.status().to_string();
    EXPECT_EQ(*(*journal)->revision(kShard), 25u);
  }
  write_file(dir_.sub(kHeadsFile), "ffe-journal-heads 1\n0 x\n");
  EXPECT_EQ(Journal::open(dir_.path(), options()).status().code(), StatusCode::kCorruption);
}

// A restore marks its new dir FFE_RESTORING before anything else and removes the mark only
// when it is whole: a restore cut short (kill -9, a full disk) leaves a dir that every open,
// for writing or read-only, refuses, where an unmarked prefix of the history would be served
// as if it were everything (the engine would then take every input topic from offset 0).
TEST_F(DataDirTest, ARestoreThatDidNotFinishIsRefusedByEveryOpen) {
  {
    auto opts = options();
    opts.restoring = true;
    auto journal = Journal::open(dir_.path(), opts);
    ASSERT_TRUE(journal.is_ok()) << journal.status().to_string();
    EXPECT_TRUE(std::filesystem::exists(dir_.sub(kRestoringFile)));
    EXPECT_TRUE(Journal::restore_unfinished(dir_.path()));
    commit_ok(**journal, one_event(kShard, "a", 1));
  }  // closed without finish_restore: what a restore cut short leaves
  auto reopened = Journal::open(dir_.path(), options());
  ASSERT_EQ(reopened.status().code(), StatusCode::kCorruption) << reopened.status().to_string();
  EXPECT_NE(reopened.status().message().find("did not finish"), std::string::npos) << reopened.status().to_string();
  auto read_only = options();
  read_only.read_only = true;
  EXPECT_EQ(Journal::open(dir_.path(), read_only).status().code(), StatusCode::kCorruption);

  ASSERT_TRUE(Journal::finish_restore(dir_.path()).is_ok());
  EXPECT_FALSE(Journal::restore_unfinished(dir_.path()));
  auto whole = Journal::open(dir_.path(), options());
  ASSERT_TRUE(whole.is_ok()) << whole.status().to_string();
  EXPECT_EQ(*(*whole)->revision(kShard), 1u);

  // Stopped while writing the mark itself (before the lock file and the marker are made):
  // the half-written mark counts, and the dir is not taken for a new one.
  const std::string early = dir_.sub("early");
  std::filesystem::create_directories(early);
  write_file(early + "/" + kRestoringFile + ".tmp", "");
  EXPECT_TRUE(Journal::restore_unfinished(early));
  EXPECT_EQ(Journal::open(early, options()).status().code(), StatusCode::kCorruption);
  EXPECT_FALSE(std::filesystem::exists(early + "/" + kMarkerFile)) << "taken for a new data dir";
}

}  // namespace
}  // namespace ffe::storage
