#pragma once
// A small client of the admin HTTP API, for the command line (`ffe get`, later `ffe
// confirm`, `ffe watch`, `ffe compact`) and tests. httplib stays in client.cc.

#include <chrono>
#include <cstdint>
#include <functional>
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

// POST http://ADDRESS + target with an empty body; errors as get().
storage::Result<Response> post(std::string_view address, const std::string& target,
                               std::chrono::milliseconds timeout = std::chrono::seconds(60));

// GET a streamed answer: `on_line` gets each complete line (without its newline) as it
// arrives while the status is 200, and may return false to stop. `response` receives the
// status and, for anything but 200, the body. Not OK only when no answer came (as get()).
// `read_timeout`: the longest wait for the next bytes (a following stream may see nothing for
// as long as nothing changes).
storage::Status get_lines(std::string_view address, const std::string& target,
                          const std::function<bool(std::string_view line)>& on_line, Response& response,
                          std::chrono::milliseconds read_timeout);

// Why `response` did not come from ffe's admin API, or nullopt when it did: ffe answers every
// route with `expected_type` (application/json, or application/x-ndjson for a watch stream)
// on success and with a JSON object {"error": ...} otherwise. Another server on the --http
// address (a 404 page, a 200 from a proxy) must not read as "not found" or as success.
std::optional<std::string> not_ffe(const Response& response, std::string_view expected_type);

// The "error" field of a JSON error body, or the body itself (trimmed) if it has none.
std::string error_message(const Response& response);

// Percent-encodes everything but [A-Za-z0-9._~-], for one path segment.
std::string encode_path_segment(std::string_view segment);

enum class EntityKind { kOrder, kSku };

// What a command of the CLI prints and returns.
struct CliOutcome {
  int exit_code = 2;
  std::string out;  // for stdout: one JSON line, newline-terminated
  std::string err;  // for stderr: "ffe <cmd>: <the server's message> (HTTP 410)"
};

// What `ffe get order|sku ID [--revision R] [--http ADDR]` prints and returns: exit 0 found
// (the entity's JSON), 1 not found (404), 2 anything else.
using GetOutcome = CliOutcome;
GetOutcome get_entity(EntityKind kind, std::string_view id, std::optional<std::uint64_t> revision,
                      std::string_view address);

// What `ffe confirm ORDER_ID [--http ADDR]` prints and returns: the order's terminal
// confirmation, checked through the public reads anyone can make. The order must be
// terminal now; its state as of its terminal revision R (or, when R was compacted, as of the
// compacted revision, which still holds the terminal state and R as its revision) must equal
// its state now, field for field (all but asOf). Exit 0: confirmed; the line printed is
// {"orderId","state","reason","shard","revision","confirmed":true,"checkedRevisions":[...]}.
// Exit 1: not terminal (yet), or unknown (404). Exit 3: terminal but NOT stable (the state
// changed after R: invariant 4 broken). Exit 2: anything else.
using ConfirmOutcome = CliOutcome;
ConfirmOutcome confirm_order(std::string_view order_id, std::string_view address);

// What `ffe compact --shard S --revision R [--force] [--http ADDR]` prints and returns:
// exit 0 and {"shard","compactedRevision"}; 1 when refused (a reader's cursor is below R:
// HTTP 409, or R is below the compacted revision: 410); 2 otherwise.
using CompactCliOutcome = CliOutcome;
CompactCliOutcome compact(std::uint32_t shard, std::uint64_t revision, bool force, std::string_view address);

// `ffe watch PREFIX --from-revision R [--shard S] [--follow] [--limit N] [--http ADDR]`:
// streams each change line to `out` as it arrives. Exit 0 at the end of the stream (or
// the limit); 1 when R (or later the stream) was compacted: the message names the
// compacted revision to resume from; 2 otherwise. Lines go through `out` unchanged.
struct WatchArgs {
  std::string prefix;
  std::uint64_t from_revision = 0;
  std::optional<std::uint32_t> shard;
  bool follow = false;
  std::uint64_t limit = 0;
  std::string address;
  // The longest wait for the next bytes; 0: a day with follow, a minute without (the server
  // sends each revision as it scans).
  std::chrono::milliseconds read_timeout{0};
};
int watch(const WatchArgs& args, const std::function<void(std::string_view line)>& out,
          const std::function<void(std::string_view message)>& err);

}  // namespace ffe::http
