#pragma once
// A business rejection: the expected "no" of a decider, as a value (never an exception).
// A rejection changes no state. The runtime decides where it goes: a REJECTED outcome, a
// StockReply, ff.dlq with `reason` in the ff-error header, or only a counter.

#include <string>

namespace ffe {

enum class RejectionCode {
  kInvalid,          // the command breaks a validation rule; reason = "<field path>: <rule>"
  kOutOfStock,       // a reserve asked for more than is available
  kUnknownEntity,    // the command needs an entity that does not exist (cancel unknown order)
  kAlreadyTerminal,  // the order is terminal: the command changes nothing
  kClosed,           // the order's reservation on this SKU was closed the other way
  kUnexpected,       // a reply that answers no outstanding request (late or duplicate)
  kTooLate,          // the order passed the point where this command can act (cancel while committing)
};

const char* to_string(RejectionCode code);

struct Rejection {
  RejectionCode code;
  std::string reason;
};

}  // namespace ffe
