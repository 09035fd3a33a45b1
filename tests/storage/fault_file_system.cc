#include "tests/storage/fault_file_system.h"

#include <string>

namespace ffe::storage::testing {
namespace {

bool is_wal(const std::string& name) { return name.size() > 4 && name.compare(name.size() - 4, 4, ".log") == 0; }

rocksdb::IOStatus make_error(Fault fault, const char* what) {
  if (fault == Fault::kNoSpace) return rocksdb::IOStatus::NoSpace(what, "injected: No space left on device");
  return rocksdb::IOStatus::IOError(what, "injected I/O error");
}

class FaultWritableFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FaultWritableFile(std::unique_ptr<rocksdb::FSWritableFile> file, FaultFileSystem* fs, bool wal)
      : FSWritableFileOwnerWrapper(std::move(file)), fs_(fs), wal_(wal) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
    if (auto status = fs_->on_append(wal_); !status.ok()) return status;
    return FSWritableFileOwnerWrapper::Append(data, options, dbg);
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           const rocksdb::DataVerificationInfo& info, rocksdb::IODebugContext* dbg) override {
    if (auto status = fs_->on_append(wal_); !status.ok()) return status;
    return FSWritableFileOwnerWrapper::Append(data, options, info, dbg);
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset, const rocksdb::IOOptions& options,
                                     rocksdb::IODebugContext* dbg) override {
    if (auto status = fs_->on_append(wal_); !status.ok()) return status;
    return FSWritableFileOwnerWrapper::PositionedAppend(data, offset, options, dbg);
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    if (auto status = fs_->on_sync(wal_); !status.ok()) return status;
    return FSWritableFileOwnerWrapper::Sync(options, dbg);
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    if (auto status = fs_->on_sync(wal_); !status.ok()) return status;
    return FSWritableFileOwnerWrapper::Fsync(options, dbg);
  }

 private:
  FaultFileSystem* fs_;
  bool wal_;
};

}  // namespace

FaultFileSystem::FaultFileSystem(std::shared_ptr<rocksdb::FileSystem> base) : FileSystemWrapper(std::move(base)) {}

void FaultFileSystem::fail_sync(Fault fault, bool wal_only) {
  sync_wal_only_.store(wal_only);
  sync_fault_.store(fault);
}

void FaultFileSystem::fail_append(Fault fault, bool wal_only) {
  append_wal_only_.store(wal_only);
  append_fault_.store(fault);
}

void FaultFileSystem::block_syncs(bool blocked) {
  {
    std::lock_guard lock(block_mu_);
    blocked_ = blocked;
  }
  block_cv_.notify_all();
}

rocksdb::IOStatus FaultFileSystem::on_append(bool wal) {
  Fault fault = append_fault_.load();
  if (fault != Fault::kNone && (wal || !append_wal_only_.load())) return make_error(fault, "append");
  return rocksdb::IOStatus::OK();
}

rocksdb::IOStatus FaultFileSystem::on_sync(bool wal) {
  {
    std::unique_lock lock(block_mu_);
    if (blocked_ && wal) {
      ++blocked_now_;
      block_cv_.wait(lock, [&] { return !blocked_; });
      --blocked_now_;
    }
  }
  ++syncs_;
  Fault fault = sync_fault_.load();
  if (fault != Fault::kNone && (wal || !sync_wal_only_.load())) return make_error(fault, "sync");
  return rocksdb::IOStatus::OK();
}

rocksdb::IOStatus FaultFileSystem::NewWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                                                   std::unique_ptr<rocksdb::FSWritableFile>* result,
                                                   rocksdb::IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSWritableFile> file;
  auto status = target()->NewWritableFile(name, options, &file, dbg);
  if (status.ok()) result->reset(new FaultWritableFile(std::move(file), this, is_wal(name)));
  return status;
}

rocksdb::IOStatus FaultFileSystem::ReopenWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                                                      std::unique_ptr<rocksdb::FSWritableFile>* result,
                                                      rocksdb::IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSWritableFile> file;
  auto status = target()->ReopenWritableFile(name, options, &file, dbg);
  if (status.ok()) result->reset(new FaultWritableFile(std::move(file), this, is_wal(name)));
  return status;
}

rocksdb::IOStatus FaultFileSystem::ReuseWritableFile(const std::string& name, const std::string& old_name,
                                                     const rocksdb::FileOptions& options,
                                                     std::unique_ptr<rocksdb::FSWritableFile>* result,
                                                     rocksdb::IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSWritableFile> file;
  auto status = target()->ReuseWritableFile(name, old_name, options, &file, dbg);
  if (status.ok()) result->reset(new FaultWritableFile(std::move(file), this, is_wal(name)));
  return status;
}

std::unique_ptr<rocksdb::Env> make_env(const std::shared_ptr<FaultFileSystem>& fs) {
  return rocksdb::NewCompositeEnv(fs);
}

}  // namespace ffe::storage::testing
