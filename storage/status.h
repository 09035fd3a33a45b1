#pragma once
// Errors as values for the journal (STYLE habit 3): every operation that can fail for a
// reason outside the program (disk, data dir, caller input, revision bounds) returns a
// Status or a Result<T>; nothing throws across the storage API. Programmer errors (a
// broken internal invariant) hit FFE_ASSERT instead.
//
// Status is a small value type: a code (what a caller branches on) and a message (what an
// operator reads: it names the data dir, shard or file involved). Thread-safe as any
// value type; copy freely.

#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "events/assert.h"

namespace ffe::storage {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // caller input breaks the API's rules (limits, unknown shard, bad key)
  kCompacted,        // the revision asked for is below the shard's compacted revision
  kFutureRevision,   // the revision asked for is above the shard's current revision
  kBusy,             // the commit queue is full and the caller asked not to wait
  kStopped,          // the journal fail-stopped earlier (message: the original reason)
  kClosed,           // the journal is shutting down
  kIoError,          // a read or write failed (message: the underlying error)
  kNoSpace,          // the disk holding the data dir is full
  kReadOnly,         // the data dir cannot be written
  kInUse,            // another journal (process) holds the data dir
  kNotJournal,       // the data dir holds something that is not an ffe journal
  kFormat,           // an ffe journal of a format version this build cannot read
  kCorruption,       // data failed a checksum or a structural check
};

std::string_view status_code_name(StatusCode code);

class Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return {}; }

  bool is_ok() const { return code_ == StatusCode::kOk; }
  explicit operator bool() const { return is_ok(); }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "kCompacted: shard 3: revision 10 is below the compacted revision 20"
  std::string to_string() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Either a value or a non-OK Status (std::expected is C++23).
template <typename T>
class Result {
 public:
  Result(T value) : data_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : data_(std::in_place_index<1>, std::move(status)) {  // NOLINT
    FFE_ASSERT(!std::get<1>(data_).is_ok(), "a Result built from a Status needs an error");
  }

  bool is_ok() const { return data_.index() == 0; }
  explicit operator bool() const { return is_ok(); }

  const T& value() const& {
    FFE_ASSERT(is_ok(), "Result::value() on an error");
    return std::get<0>(data_);
  }
  T& value() & {
    FFE_ASSERT(is_ok(), "Result::value() on an error");
    return std::get<0>(data_);
  }
  T&& value() && {
    FFE_ASSERT(is_ok(), "Result::value() on an error");
    return std::get<0>(std::move(data_));
  }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }

  // OK when a value is held.
  Status status() const { return is_ok() ? Status::ok() : std::get<1>(data_); }

 private:
  std::variant<T, Status> data_;
};

}  // namespace ffe::storage
