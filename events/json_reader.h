#pragma once
// The JSON fast path of codec.cc's decode(): a reader for the inbound contracts that is about
// ten times cheaper than protobuf's JSON parser, and that answers only where its answer is
// certainly the one the full path (UTF-8 check, JsonShapeCheck, protobuf's parser) gives.
//
// It reads a strict subset of JSON, for the six inbound roots (v1::OrderCommand,
// InventoryCommand, PaymentRequest, PaymentReply, ShipmentRequest, ShipmentReply) and the
// messages under them:
//   - one object at the top, whitespace only ' ', '\t', '\n', '\r' around tokens;
//   - keys spelled as a field's JSON name or its proto name (no escapes in keys), each field
//     at most once per object and at most one member of a oneof;
//   - string fields: a string of well-formed UTF-8 with no raw control characters; escapes
//     \" \\ \/ \b \f \n \r \t and \uXXXX (a surrogate pair when the code unit is one);
//   - int64 fields: -?(0|[1-9][0-9]{0,17}) bare or in quotes, except -0 (always in range);
//   - enum fields: a value's exact name in quotes, or a declared value's number, bare;
//   - message fields: an object; repeated message fields: an array of objects.
// Anything else (null, an unknown or doubled key, another field type, a number with a
// fraction or exponent, 19 digits, a lone surrogate, a type not listed above) is "not
// handled": the full path then runs unchanged, and every error comes from it. So the fast
// path changes how long a decode takes, never its result; tests/events/json_reader_test.cc
// checks that differentially against the full path.
//
// Thread-safe: the per-type tables are built once, on first use, and only read after.

#include <string_view>

#include <google/protobuf/message.h>

namespace ffe::events::json_reader {

// Reads `json` into `out` (which must be empty, as decode() leaves it) and returns true if
// `json` is in the subset above for out's type. Otherwise returns false with `out` cleared.
// Any bytes are safe to give; input that is not well-formed UTF-8 is never handled.
bool read(std::string_view json, google::protobuf::Message& out);

}  // namespace ffe::events::json_reader
