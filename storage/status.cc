#include "storage/status.h"

namespace ffe::storage {

std::string_view status_code_name(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "kOk";
    case StatusCode::kInvalidArgument: return "kInvalidArgument";
    case StatusCode::kCompacted: return "kCompacted";
    case StatusCode::kFutureRevision: return "kFutureRevision";
    case StatusCode::kBusy: return "kBusy";
    case StatusCode::kStopped: return "kStopped";
    case StatusCode::kClosed: return "kClosed";
    case StatusCode::kIoError: return "kIoError";
    case StatusCode::kNoSpace: return "kNoSpace";
    case StatusCode::kReadOnly: return "kReadOnly";
    case StatusCode::kInUse: return "kInUse";
    case StatusCode::kNotJournal: return "kNotJournal";
    case StatusCode::kFormat: return "kFormat";
    case StatusCode::kCorruption: return "kCorruption";
  }
  return "kUnknown";
}

std::string Status::to_string() const {
  if (is_ok()) return "kOk";
  return std::string(status_code_name(code_)) + ": " + message_;
}

}  // namespace ffe::storage
