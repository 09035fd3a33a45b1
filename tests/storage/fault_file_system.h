#pragma once
// A fault-injecting RocksDB FileSystem for the journal's tests (STYLE: LevelDB's
// fault_injection_test). Wraps the default FileSystem; on demand, Append or Sync/Fsync of
// writable files fails (as an I/O error or as "no space"), or Sync blocks until released
// (to hold the writer inside a synced write while a test fills the queue).
//
// FaultFileSystem — owner: the test (shared_ptr, also held by the Env made from it).
// Thread-safe: the switches are atomics/mutex-guarded; RocksDB calls in from its threads.

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>

namespace ffe::storage::testing {

enum class Fault { kNone, kIoError, kNoSpace };

class FaultFileSystem : public rocksdb::FileSystemWrapper {
 public:
  explicit FaultFileSystem(std::shared_ptr<rocksdb::FileSystem> base = rocksdb::FileSystem::Default());
  static const char* kClassName() { return "FfeFaultFileSystem"; }
  const char* Name() const override { return kClassName(); }

  // Faults apply to WAL files ("*.log") only when wal_only, else to every writable file.
  void fail_sync(Fault fault, bool wal_only = true);
  void fail_append(Fault fault, bool wal_only = true);
  void block_syncs(bool blocked);
  int syncs_blocked_now() const { return blocked_now_.load(); }
  long syncs() const { return syncs_.load(); }

  rocksdb::IOStatus NewWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(const std::string& name, const std::string& old_name,
                                      const rocksdb::FileOptions& options,
                                      std::unique_ptr<rocksdb::FSWritableFile>* result,
                                      rocksdb::IODebugContext* dbg) override;

  // Called by the wrapped files.
  rocksdb::IOStatus on_append(bool is_wal);
  rocksdb::IOStatus on_sync(bool is_wal);

 private:
  std::atomic<Fault> sync_fault_{Fault::kNone};
  std::atomic<bool> sync_wal_only_{true};
  std::atomic<Fault> append_fault_{Fault::kNone};
  std::atomic<bool> append_wal_only_{true};
  std::atomic<long> syncs_{0};
  std::atomic<int> blocked_now_{0};
  std::mutex block_mu_;
  std::condition_variable block_cv_;
  bool blocked_ = false;
};

// An Env whose FileSystem is `fs` (keeps it alive).
std::unique_ptr<rocksdb::Env> make_env(const std::shared_ptr<FaultFileSystem>& fs);

}  // namespace ffe::storage::testing
