#pragma once
// Internal to storage/: claiming a data dir before RocksDB touches it. Checks that the dir is
// empty or already an ffe journal (the FFE_JOURNAL marker, with its format version), takes
// an exclusive flock on <dir>/ffe.lock and writes our pid there so a second process (or a
// second Journal in this process) is refused with a message naming the holder.
//
// DataDirLock — owner: the Journal::Impl. Lifecycle: created by claim_data_dir(), releases
// the flock when destroyed (after RocksDB is closed). Not thread-safe; never shared.

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "storage/status.h"

namespace ffe::storage {

inline constexpr const char* kMarkerFile = "FFE_JOURNAL";
inline constexpr const char* kLockFile = "ffe.lock";
inline constexpr const char* kRocksDbDir = "rocksdb";
// Present while a restore (`ffe replay --from-kafka`) fills the data dir: the first thing
// written there (before the lock file and the FFE_JOURNAL marker; a half-written .tmp counts)
// and removed only once everything the restore writes is durable, so a restore that stopped
// partway leaves a dir every open refuses (docs/replay.md).
inline constexpr const char* kRestoringFile = "FFE_RESTORING";
// The marker's content; a different second line is a different on-disk format.
inline constexpr const char* kMarkerContent = "ffe-journal\nformat 1\n";

class DataDirLock {
 public:
  explicit DataDirLock(int fd) : fd_(fd) {}
  ~DataDirLock();
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;

 private:
  int fd_;
};

struct ClaimedDataDir {
  std::unique_ptr<DataDirLock> lock;
  std::string rocksdb_path;
  bool create_database = false;  // no RocksDB files yet: RocksDB may create them
};

// Errors: kNotJournal, kFormat, kInUse, kReadOnly, kNoSpace, kIoError, kCorruption.
// `restoring`: a restore claims a new dir (FFE_RESTORING is written before the lock file and
// the marker); otherwise a dir holding FFE_RESTORING (or its .tmp) is refused
// (unfinished_restore).
Result<ClaimedDataDir> claim_data_dir(const std::string& dir, bool restoring = false);
// kCorruption naming the unfinished restore when `dir` holds FFE_RESTORING or its .tmp; else ok.
Status unfinished_restore(const std::string& dir);
// Removes FFE_RESTORING and syncs the dir: the restore is whole.
Status finish_restore(const std::string& dir);

// The heads file, <dir>/ffe.heads: each shard's revision known durable, rewritten by the
// journal about once a second while it commits, and at close. RocksDB's recovery reads a WAL
// that was deleted or cut at a record boundary as a clean end (the tolerant tail mode the
// journal needs for torn writes), so at open a shard whose log ends below its recorded head
// has lost acknowledged commits, and the open is refused (docs/journal.md, "Bad data dirs").
inline constexpr const char* kHeadsFile = "ffe.heads";
using Heads = std::map<std::uint32_t, std::uint64_t>;  // shard -> revision
// Empty when there is no heads file (a journal that never committed, or one an older ffe
// wrote). kCorruption when it does not parse.
Result<Heads> read_heads(const std::string& dir);
// Whole or not at all: a temp file, fsync, rename, fsync of the dir.
Status write_heads(const std::string& dir, const Heads& heads);

// Maps an errno from a file operation on `what` to a Status with a clear message.
Status errno_status(int error, const std::string& what);

}  // namespace ffe::storage
