#include "events/rejection.h"

namespace ffe {

const char* to_string(RejectionCode code) {
  switch (code) {
    case RejectionCode::kInvalid: return "invalid";
    case RejectionCode::kOutOfStock: return "out of stock";
    case RejectionCode::kUnknownEntity: return "unknown entity";
    case RejectionCode::kAlreadyTerminal: return "already terminal";
    case RejectionCode::kClosed: return "closed";
    case RejectionCode::kUnexpected: return "unexpected";
    case RejectionCode::kTooLate: return "too late";
  }
  return "unknown rejection code";
}

}  // namespace ffe
