#pragma once
// Internal to storage/: claiming a data dir before RocksDB touches it. Checks that the dir is
// empty or already an ffe journal (the FFE_JOURNAL marker, with its format version), takes
// an exclusive flock on <dir>/ffe.lock and writes our pid there so a second process (or a
// second Journal in this process) is refused with a message naming the holder.
//
// DataDirLock — owner: the Journal::Impl. Lifecycle: created by claim_data_dir(), releases
// the flock when destroyed (after RocksDB is closed). Not thread-safe; never shared.

#include <memory>
#include <string>

#include "storage/status.h"

namespace ffe::storage {

inline constexpr const char* kMarkerFile = "FFE_JOURNAL";
inline constexpr const char* kLockFile = "ffe.lock";
inline constexpr const char* kRocksDbDir = "rocksdb";
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
Result<ClaimedDataDir> claim_data_dir(const std::string& dir);

// Maps an errno from a file operation on `what` to a Status with a clear message.
Status errno_status(int error, const std::string& what);

}  // namespace ffe::storage
