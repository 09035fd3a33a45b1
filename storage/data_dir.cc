#include "storage/data_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace ffe::storage {
namespace {

std::string join(const std::string& dir, const char* name) { return dir + "/" + name; }

bool read_small_file(const std::string& path, std::string& out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buffer[256];
  out.clear();
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buffer, static_cast<std::size_t>(n));
    if (out.size() > 4096) break;  // a marker or pid file is tiny; anything else is not ours
  }
  ::close(fd);
  return true;
}

Result<std::vector<std::string>> list_dir(const std::string& dir) {
  DIR* handle = ::opendir(dir.c_str());
  if (handle == nullptr) return errno_status(errno, "data dir " + dir);
  std::vector<std::string> names;
  while (dirent* entry = ::readdir(handle)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  ::closedir(handle);
  return names;
}

Status write_all(int fd, std::string_view bytes, const std::string& what) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_status(errno, what);
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return Status::ok();
}

Status fsync_path(const std::string& path, const std::string& what) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_status(errno, what);
  int rc = ::fsync(fd);
  int error = errno;
  ::close(fd);
  if (rc != 0) return errno_status(error, what);
  return Status::ok();
}

// <dir>/<name> = content, whole or not at all: write <name>.tmp, fsync, rename, fsync the dir.
Status write_file_atomically(const std::string& dir, const char* name, std::string_view content) {
  const std::string path = join(dir, name);
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno_status(errno, "data dir " + dir + ": creating " + tmp);
  Status status = write_all(fd, content, "data dir " + dir + ": writing " + tmp);
  if (status.is_ok() && ::fsync(fd) != 0) status = errno_status(errno, "data dir " + dir + ": syncing " + tmp);
  ::close(fd);
  if (!status.is_ok()) return status;
  if (::rename(tmp.c_str(), path.c_str()) != 0) return errno_status(errno, "data dir " + dir + ": renaming " + tmp);
  return fsync_path(dir, "data dir " + dir + ": syncing the directory");
}

Status write_marker(const std::string& dir) { return write_file_atomically(dir, kMarkerFile, kMarkerContent); }

}  // namespace

DataDirLock::~DataDirLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
}

Status errno_status(int error, const std::string& what) {
  std::string reason = what + ": " + std::strerror(error);
  switch (error) {
    case EROFS:
      return {StatusCode::kReadOnly, what + " is on a read-only file system (" + std::strerror(error) +
                                         "): the journal must write to its data dir"};
    case EACCES:
    case EPERM:
      return {StatusCode::kReadOnly, what + " cannot be written (" + std::strerror(error) +
                                         "): the journal must write to its data dir"};
    case ENOSPC:
    case EDQUOT:
      return {StatusCode::kNoSpace, what + ": no space left on the device (" + std::strerror(error) + ")"};
    default:
      return {StatusCode::kIoError, reason};
  }
}

Status unfinished_restore(const std::string& dir) {
  // The .tmp too: a restore stopped while writing the mark itself has begun.
  if (::access(join(dir, kRestoringFile).c_str(), F_OK) != 0 &&
      ::access((join(dir, kRestoringFile) + ".tmp").c_str(), F_OK) != 0) {
    return Status::ok();
  }
  return Status(StatusCode::kCorruption,
                "data dir " + dir + ": a restore into it (ffe replay --from-kafka) did not finish (" + kRestoringFile +
                    " is still there), so it holds only part of the history; remove the dir and restore again");
}

Status finish_restore(const std::string& dir) {
  if (::unlink(join(dir, kRestoringFile).c_str()) != 0 && errno != ENOENT) {
    return errno_status(errno, "data dir " + dir + ": removing " + kRestoringFile);
  }
  return fsync_path(dir, "data dir " + dir + ": syncing the directory");
}

Result<ClaimedDataDir> claim_data_dir(const std::string& dir, bool restoring) {
  struct stat info {};
  if (::stat(dir.c_str(), &info) != 0) {
    if (errno != ENOENT) return errno_status(errno, "data dir " + dir);
    std::error_code error;
    std::filesystem::create_directories(dir, error);
    if (error) return errno_status(error.value(), "data dir " + dir + " (creating it)");
  } else if (!S_ISDIR(info.st_mode)) {
    return Status(StatusCode::kNotJournal, "data dir " + dir + " is not a directory");
  }

  auto names = list_dir(dir);
  if (!names) return names.status();
  bool has_marker = false;
  bool has_restoring = false;
  std::vector<std::string> foreign;
  for (const auto& name : *names) {
    if (name == kMarkerFile) {
      has_marker = true;
    } else if (name == kRestoringFile || name == std::string(kRestoringFile) + ".tmp") {
      has_restoring = true;
    } else if (name != kLockFile && name != std::string(kMarkerFile) + ".tmp") {
      foreign.push_back(name);
    }
  }
  if (has_restoring && !restoring) return unfinished_restore(dir);
  if (has_marker) {
    std::string content;
    if (!read_small_file(join(dir, kMarkerFile), content))
      return errno_status(errno, "data dir " + dir + ": reading " + kMarkerFile);
    if (content != kMarkerContent) {
      return Status(StatusCode::kFormat, "data dir " + dir + ": " + kMarkerFile +
                                             " names a journal format this build cannot read (expected \"" +
                                             "format 1\"); refusing to open it");
    }
  } else if (!foreign.empty()) {
    // Never write into a directory that may hold someone else's data.
    std::string sample;
    for (std::size_t i = 0; i < foreign.size() && i < 3; ++i) sample += (i ? ", " : "") + foreign[i];
    return Status(StatusCode::kNotJournal,
                  "data dir " + dir + " is not an ffe journal: it is not empty (" + sample +
                      (foreign.size() > 3 ? ", ..." : "") + ") and has no " + kMarkerFile +
                      " marker; refusing to write to it");
  }

  // A restore marks a new dir before anything else is made in it, the lock file included: a
  // restore stopped at any later point leaves a dir every open refuses.
  if (restoring && !has_marker && !has_restoring) {
    if (Status status = write_file_atomically(dir, kRestoringFile, "restore in progress\n"); !status) return status;
  }
  const std::string lock_path = join(dir, kLockFile);
  int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return errno_status(errno, "data dir " + dir);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int error = errno;
    ::close(fd);
    if (error != EWOULDBLOCK) return errno_status(error, "data dir " + dir + ": locking " + lock_path);
    std::string holder;
    read_small_file(lock_path, holder);
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    std::string who = holder.empty() ? "pid unknown" : "pid " + holder;
    if (!holder.empty() && holder == std::to_string(::getpid())) who += ", this process";
    return Status(StatusCode::kInUse, "data dir " + dir + " is in use by another ffe journal (" + who + ")");
  }
  auto lock = std::make_unique<DataDirLock>(fd);
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0) return errno_status(errno, "data dir " + dir + ": writing " + lock_path);
  if (::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))
    return errno_status(errno, "data dir " + dir + ": writing " + lock_path);

  if (!has_marker) {
    Status status = write_marker(dir);
    if (!status.is_ok()) return status;
  }

  ClaimedDataDir claimed;
  claimed.lock = std::move(lock);
  claimed.rocksdb_path = join(dir, kRocksDbDir);
  // A marker with no RocksDB files yet is a journal whose first open stopped early: create.
  // A rocksdb dir with files but no CURRENT is damage, not a fresh journal.
  auto rocks_names = list_dir(claimed.rocksdb_path);
  if (rocks_names) {
    // The journal's own info log is created before RocksDB's files.
    std::erase_if(*rocks_names, [](const std::string& name) { return name.starts_with("LOG"); });
  }
  if (!rocks_names) {
    claimed.create_database = true;
  } else if (rocks_names->empty()) {
    claimed.create_database = true;
  } else if (::access(join(claimed.rocksdb_path, "CURRENT").c_str(), F_OK) != 0) {
    return Status(StatusCode::kCorruption, "data dir " + dir + ": " + claimed.rocksdb_path +
                                               " holds files but no CURRENT file; refusing to start");
  }
  return claimed;
}

namespace {
constexpr std::string_view kHeadsFirstLine = "ffe-journal-heads 1\n";
}  // namespace

Result<Heads> read_heads(const std::string& dir) {
  const std::string path = join(dir, kHeadsFile);
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return Heads{};
    return errno_status(errno, "data dir " + dir + ": reading " + kHeadsFile);
  }
  std::ostringstream content;
  content << in.rdbuf();
  const std::string text = content.str();
  auto malformed = [&] {
    return Status(StatusCode::kCorruption,
                  "data dir " + dir + ": " + kHeadsFile + " is malformed; refusing to start");
  };
  if (!text.starts_with(kHeadsFirstLine)) return malformed();
  Heads heads;
  std::string_view rest = std::string_view(text).substr(kHeadsFirstLine.size());
  while (!rest.empty()) {
    const std::size_t end = rest.find('\n');
    if (end == std::string_view::npos) return malformed();
    const std::string_view line = rest.substr(0, end);
    rest.remove_prefix(end + 1);
    const std::size_t space = line.find(' ');
    if (space == std::string_view::npos) return malformed();
    std::uint32_t shard = 0;
    std::uint64_t revision = 0;
    const auto [shard_end, shard_error] = std::from_chars(line.data(), line.data() + space, shard);
    const auto [revision_end, revision_error] =
        std::from_chars(line.data() + space + 1, line.data() + line.size(), revision);
    if (shard_error != std::errc() || shard_end != line.data() + space || revision_error != std::errc() ||
        revision_end != line.data() + line.size() || !heads.emplace(shard, revision).second) {
      return malformed();
    }
  }
  return heads;
}

Status write_heads(const std::string& dir, const Heads& heads) {
  std::string text(kHeadsFirstLine);
  for (const auto& [shard, revision] : heads) text += std::to_string(shard) + " " + std::to_string(revision) + "\n";
  return write_file_atomically(dir, kHeadsFile, text);
}

}  // namespace ffe::storage
