#pragma once
// A small client of the admin HTTP API, for the command line (`ffe get`, later `ffe
// confirm`, `ffe watch`, `ffe compact`) and tests. httplib stays in client.cc.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "adapters/http/address.h"  // kDefaultAddress, parse_address
#include "storage/status.h"

namespace ffe::http {

struct Response {
  int status = 0;
  std::string body;
  std::string content_type;
};

// GET http://ADDRESS + target ("/v1/orders/o-1?revision=3"). Not OK only when no answer came:
// kInvalidArgument (a malformed address), kIoError (connection refused, timeout, ...: the
// message names the address and httplib's error). Any HTTP status is an OK Result.
storage::Result<Response> get(std::string_view address, const std::string& target,
                              std::chrono::milliseconds timeout = std::chrono::seconds(10));

// The "error" field of a JSON error body, or the body itself (trimmed) if it has none.
std::string error_message(const Response& response);

// Percent-encodes everything but [A-Za-z0-9._~-], for one path segment.
std::string encode_path_segment(std::string_view segment);

enum class EntityKind { kOrder, kSku };

// What `ffe get order|sku ID [--revision R] [--http ADDR]` prints and returns.
struct GetOutcome {
  int exit_code = 2;  // 0 found, 1 not found (404), 2 anything else
  std::string out;    // the entity's JSON (one line, newline-terminated) when found
  std::string err;    // "ffe get: <the server's message> (HTTP 410)" otherwise
};
GetOutcome get_entity(EntityKind kind, std::string_view id, std::optional<std::uint64_t> revision,
                      std::string_view address);

}  // namespace ffe::http
