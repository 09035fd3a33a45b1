#include "adapters/http/client.h"

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "adapters/http/address.h"
#include "events/validate.h"

namespace ffe::http {

using storage::Status;
using storage::StatusCode;

namespace {

// httplib names its errors by enum ("Connection"); say what happened, and what to check.
std::string describe(httplib::Error error) {
  switch (error) {
    case httplib::Error::Connection:
      return "cannot connect (is ffe serve running with its admin HTTP on this address? --http)";
    case httplib::Error::ConnectionTimeout: return "the connection timed out";
    case httplib::Error::Read:
      return "no complete HTTP answer (the connection timed out or was closed: the server is stalled or busy, or "
             "this is not ffe's admin HTTP address)";
    case httplib::Error::Write: return "the request could not be sent";
    default: return "HTTP error " + httplib::to_string(error);
  }
}

// One request without a body, on a fresh connection (the CLI makes one or two).
storage::Result<Response> send_request(std::string_view address, const char* method, const std::string& target,
                                       std::chrono::milliseconds timeout) {
  auto parsed = parse_address(address);
  if (!parsed.is_ok()) return parsed.status();
  httplib::Client client(parsed->host, parsed->port);
  client.set_connection_timeout(timeout);
  client.set_read_timeout(timeout);
  client.set_write_timeout(timeout);
  client.set_keep_alive(false);
  httplib::Result result = std::string_view(method) == "POST" ? client.Post(target) : client.Get(target);
  if (!result) {
    return Status(StatusCode::kIoError, std::string(method) + " http://" + format_address(*parsed) + target + ": " +
                                            describe(result.error()));
  }
  Response response;
  response.status = result->status;
  response.body = result->body;
  response.content_type = result->get_header_value("Content-Type");
  return response;
}

}  // namespace

std::optional<std::string> not_ffe(const Response& response, std::string_view expected_type) {
  const std::string_view type = std::string_view(response.content_type).substr(0, response.content_type.find(';'));
  const bool json_error = response.status != 200 && type == "application/json";
  if (type != expected_type && !json_error) {
    std::string seen = response.content_type.empty() ? "no Content-Type" : "Content-Type " + response.content_type;
    return "the answer (HTTP " + std::to_string(response.status) + ", " + seen +
           ") is not from ffe's admin API: is --http the address of ffe serve's admin HTTP?";
  }
  if (type == "application/json") {
    const auto parsed = nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
    if (!parsed.is_object() ||
        (response.status != 200 && (!parsed.contains("error") || !parsed["error"].is_string()))) {
      return "the answer (HTTP " + std::to_string(response.status) +
             ") is not a JSON object as ffe's admin API sends: is --http the address of ffe serve's admin HTTP?";
    }
  }
  return std::nullopt;
}

storage::Result<Response> get(std::string_view address, const std::string& target,
                              std::chrono::milliseconds timeout) {
  return send_request(address, "GET", target, timeout);
}

std::string error_message(const Response& response) {
  const auto parsed = nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object()) {
    const auto it = parsed.find("error");
    if (it != parsed.end() && it->is_string()) return it->get<std::string>();
  }
  std::string text = response.body;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.pop_back();
  return text.empty() ? "HTTP " + std::to_string(response.status) : text;
}

std::string encode_path_segment(std::string_view segment) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (const char c : segment) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '.' || c == '_' || c == '~' || c == '-';
    if (plain) {
      out += c;
    } else {
      const auto byte = static_cast<unsigned char>(c);
      out += '%';
      out += kHex[byte >> 4];
      out += kHex[byte & 0x0f];
    }
  }
  return out;
}

namespace {

constexpr std::string_view kJsonType = "application/json";

// Whether `body` is an entity as ffe's admin API serves it: `id_field` equal to `id`, and its
// revision, asOf and shard unsigned numbers (`ffe get`, and `ffe confirm` before its own checks).
template <class Json>
bool is_entity(const Json& body, const std::string& id_field, std::string_view id) {
  auto unsigned_field = [&](const char* field) { return body.contains(field) && body[field].is_number_unsigned(); };
  return body.is_object() && body.contains(id_field) && body[id_field].is_string() &&
         body[id_field].template get<std::string>() == id && unsigned_field("revision") && unsigned_field("asOf") &&
         unsigned_field("shard");
}

// The answer of a one-request command: a 200 body on stdout (exit 0), else the server's
// message and status on stderr with the exit code `failure_exit` gives for the status; no
// answer at all: exit 2.
// `shaped` says whether a 200 body holds what ffe sends on that route (a JSON object with the
// route's fields, of their types): `{}` or another entity from another server is no success.
CliOutcome command_outcome(const char* command, const storage::Result<Response>& response,
                           int (*failure_exit)(int status), const std::function<bool(const nlohmann::json&)>& shaped) {
  CliOutcome outcome;
  if (!response.is_ok()) {
    outcome.err = std::string("ffe ") + command + ": " + response.status().message() + "\n";
    return outcome;
  }
  if (auto foreign = not_ffe(*response, kJsonType)) {
    outcome.err = std::string("ffe ") + command + ": " + *foreign + "\n";
    return outcome;
  }
  if (response->status == 200 && !shaped(nlohmann::json::parse(response->body, nullptr, /*allow_exceptions=*/false))) {
    outcome.err = std::string("ffe ") + command + ": the answer (HTTP 200) is not what ffe's admin API sends there: " +
                  response->body.substr(0, 200) + " (is --http the address of ffe serve's admin HTTP?)\n";
    return outcome;
  }
  if (response->status == 200) {
    outcome.exit_code = 0;
    outcome.out = response->body;
    if (outcome.out.empty() || outcome.out.back() != '\n') outcome.out += '\n';
    return outcome;
  }
  outcome.exit_code = failure_exit(response->status);
  outcome.err = std::string("ffe ") + command + ": " + error_message(*response) + " (HTTP " +
                std::to_string(response->status) + ")\n";
  return outcome;
}

}  // namespace

GetOutcome get_entity(EntityKind kind, std::string_view id, std::optional<std::uint64_t> revision,
                      std::string_view address) {
  GetOutcome outcome;
  // Checked here too, so an id with a '/' or a space is named as what it is, not a 404.
  if (auto invalid = events::validate_id(id, kind == EntityKind::kOrder ? "orderId" : "sku")) {
    outcome.err = "ffe get: " + invalid->to_string() + "\n";
    return outcome;
  }
  std::string target = kind == EntityKind::kOrder ? "/v1/orders/" : "/v1/skus/";
  target += encode_path_segment(id);
  if (revision) target += "?revision=" + std::to_string(*revision);

  const std::string id_field = kind == EntityKind::kOrder ? "orderId" : "sku";
  return command_outcome("get", get(address, target), [](int status) { return status == 404 ? 1 : 2; },
                         [&](const nlohmann::json& body) { return is_entity(body, id_field, id); });
}

}  // namespace ffe::http

namespace ffe::http {

storage::Result<Response> post(std::string_view address, const std::string& target,
                               std::chrono::milliseconds timeout) {
  return send_request(address, "POST", target, timeout);
}

storage::Status get_lines(std::string_view address, const std::string& target,
                          const std::function<bool(std::string_view line)>& on_line, Response& response,
                          std::chrono::milliseconds read_timeout) {
  auto parsed = parse_address(address);
  if (!parsed.is_ok()) return parsed.status();
  httplib::Client client(parsed->host, parsed->port);
  client.set_connection_timeout(std::chrono::seconds(10));
  client.set_read_timeout(read_timeout);
  client.set_keep_alive(false);
  std::string pending;
  bool stopped = false;
  httplib::Result result = client.Get(
      target,
      [&](const httplib::Response& head) {
        response.status = head.status;
        response.content_type = head.get_header_value("Content-Type");
        return true;
      },
      [&](const char* data, std::size_t length) {
        if (response.status != 200) {
          response.body.append(data, length);
          return true;
        }
        pending.append(data, length);
        std::size_t start = 0;
        for (std::size_t newline = pending.find('\n'); newline != std::string::npos;
             newline = pending.find('\n', start)) {
          if (!on_line(std::string_view(pending).substr(start, newline - start))) {
            stopped = true;
            return false;
          }
          start = newline + 1;
        }
        pending.erase(0, start);
        return true;
      });
  if (!result && !stopped) {
    return Status(StatusCode::kIoError, "GET http://" + format_address(*parsed) + target + ": " +
                                            describe(result.error()));
  }
  if (!pending.empty() && !stopped) on_line(pending);
  return Status::ok();
}

namespace {

using json = nlohmann::ordered_json;
constexpr std::string_view kNdjsonType = "application/x-ndjson";

std::string with_status(const Response& response) {
  return error_message(response) + " (HTTP " + std::to_string(response.status) + ")";
}

// The order as JSON without the field that says when it was read.
json without_as_of(json order) {
  order.erase("asOf");
  return order;
}

}  // namespace

ConfirmOutcome confirm_order(std::string_view order_id, std::string_view address) {
  ConfirmOutcome outcome;
  const std::string who = "ffe confirm: ";
  if (auto invalid = events::validate_id(order_id, "orderId")) {
    outcome.err = who + invalid->to_string() + "\n";
    return outcome;
  }
  const std::string target = "/v1/orders/" + encode_path_segment(order_id);
  auto now = get(address, target);
  if (!now.is_ok()) {
    outcome.err = who + now.status().message() + "\n";
    return outcome;
  }
  if (auto foreign = not_ffe(*now, kJsonType)) {
    outcome.err = who + *foreign + "\n";
    return outcome;
  }
  if (now->status != 200) {
    outcome.exit_code = now->status == 404 ? 1 : 2;
    outcome.err = who + with_status(*now) + "\n";
    return outcome;
  }
  const json current = json::parse(now->body, nullptr, /*allow_exceptions=*/false);
  const bool order_like =
      is_entity(current, "orderId", order_id) && current.contains("terminal") && current["terminal"].is_boolean() &&
      current.contains("state") && current["state"].is_string() &&
      (!current["terminal"].get<bool>() ||
       (current.contains("terminalRevision") && current["terminalRevision"].is_number_unsigned()));
  if (!order_like) {
    outcome.err = who + "the server's answer is not the order: " + now->body + "\n";
    return outcome;
  }
  if (!current["terminal"].get<bool>()) {
    outcome.exit_code = 1;
    outcome.err = who + "order " + std::string(order_id) + " is " + current["state"].get<std::string>() +
                  " at revision " + current["asOf"].dump() + " of shard " + current["shard"].dump() +
                  ": not terminal (yet)\n";
    return outcome;
  }
  const std::uint64_t terminal = current["terminalRevision"].get<std::uint64_t>();
  std::uint64_t checked = terminal;
  auto then = get(address, target + "?revision=" + std::to_string(terminal));
  if (then.is_ok() && then->status == 410) {
    // The terminal revision was compacted: the compacted revision is the oldest readable,
    // and a terminal order's state there is its terminal state, with R as its revision.
    const json body = json::parse(then->body, nullptr, false);
    if (!body.is_object() || !body.contains("compactedRevision") || !body["compactedRevision"].is_number_unsigned()) {
      outcome.err = who + with_status(*then) + "\n";
      return outcome;
    }
    checked = body["compactedRevision"].get<std::uint64_t>();
    then = get(address, target + "?revision=" + std::to_string(checked));
  }
  if (!then.is_ok()) {
    outcome.err = who + then.status().message() + "\n";
    return outcome;
  }
  if (auto foreign = not_ffe(*then, kJsonType)) {
    outcome.err = who + *foreign + "\n";
    return outcome;
  }
  if (then->status != 200) {
    outcome.err = who + "reading the order at revision " + std::to_string(checked) + ": " + with_status(*then) + "\n";
    return outcome;
  }
  const json at_terminal = json::parse(then->body, nullptr, false);
  if (without_as_of(at_terminal) != without_as_of(current)) {
    outcome.exit_code = 3;
    outcome.err = who + "order " + std::string(order_id) + " is NOT stable: as of revision " +
                  std::to_string(checked) + " it was " + then->body + " and now it is " + now->body;
    return outcome;
  }
  json line = json::object();
  line["orderId"] = current["orderId"];
  line["state"] = current["state"];
  line["reason"] = current.value("reason", "");
  line["shard"] = current["shard"];
  line["revision"] = terminal;
  line["confirmed"] = true;
  line["checkedRevisions"] = json::array({checked, current["asOf"]});
  outcome.exit_code = 0;
  outcome.out = line.dump() + "\n";
  return outcome;
}

CompactCliOutcome compact(std::uint32_t shard, std::uint64_t revision, bool force, std::string_view address) {
  std::string target = "/v1/shards/" + std::to_string(shard) + "/compact?revision=" + std::to_string(revision);
  if (force) target += "&force=true";
  return command_outcome("compact", post(address, target),
                         [](int status) { return status == 409 || status == 410 ? 1 : 2; },
                         [&](const nlohmann::json& body) {
                           return body.is_object() && body.contains("shard") && body["shard"] == shard &&
                                  body.contains("compactedRevision") && body["compactedRevision"].is_number_unsigned();
                         });
}

int watch(const WatchArgs& args, const std::function<void(std::string_view line)>& out,
          const std::function<void(std::string_view message)>& err) {
  std::string target = "/v1/watch?prefix=" + encode_path_segment(args.prefix) +
                       "&fromRevision=" + std::to_string(args.from_revision);
  if (args.shard) target += "&shard=" + std::to_string(*args.shard);
  if (args.follow) target += "&follow=true";
  if (args.limit > 0) target += "&limit=" + std::to_string(args.limit);
  Response response;
  int exit_code = 0;
  std::string end_message;
  // A following stream may carry nothing for as long as nothing changes (a day bounds a wedged
  // connection); a one-shot stream is a read like any other: the server sends each revision
  // as it scans, and a minute without a byte means it, or the connection, is stuck.
  const std::chrono::milliseconds read_timeout =
      args.read_timeout.count() > 0 ? args.read_timeout
      : args.follow                 ? std::chrono::milliseconds(std::chrono::hours(24))
                                    : std::chrono::milliseconds(std::chrono::seconds(60));
  std::string foreign_line;
  std::optional<std::uint64_t> last_revision;  // of the last event printed
  const Status status = get_lines(args.address, target, [&](std::string_view line) {
    if (not_ffe(response, kNdjsonType)) return false;  // named below
    // A stream that compaction overtook, or that the server's stop cut short, ends with an
    // error line instead of an event.
    if (line.starts_with("{\"error\"")) {
      const json body = json::parse(line, nullptr, false);
      end_message = body.is_object() ? body.value("error", std::string(line)) : std::string(line);
      if (body.is_object() && body.contains("compactedRevision")) {
        end_message += "; resume with --from-revision " + body["compactedRevision"].dump() + " or later";
        exit_code = 1;
      } else {
        if (body.is_object() && body.contains("resumeFromRevision")) {
          end_message += "; resume with --from-revision " + body["resumeFromRevision"].dump();
        }
        exit_code = 2;
      }
      return false;
    }
    const json event = json::parse(line, nullptr, false);
    if (!event.is_object() || !event.contains("revision") || !event["revision"].is_number_unsigned() ||
        !event.contains("key") || !event["key"].is_string()) {
      foreign_line = std::string(line.substr(0, 200));
      return false;
    }
    last_revision = event["revision"].get<std::uint64_t>();
    out(line);
    return true;
  }, response, read_timeout);
  if (!foreign_line.empty()) {
    err("ffe watch: a line of the stream is not an event as ffe's admin API sends them: " + foreign_line +
        " (is --http the address of ffe serve's admin HTTP?)");
    return 2;
  }
  if (auto why = not_ffe(response, kNdjsonType); why && response.status != 0) {
    err("ffe watch: " + *why);
    return 2;
  }
  if (!status.is_ok()) {
    std::string message = "ffe watch: " + status.message();
    if (response.status == 200) {
      // The stream broke off after it began: not the end of the log. Resume after the last
      // whole revision (a cut inside a revision resends that revision).
      message = "ffe watch: the stream broke off before its end (the server stopped, or the connection or the "
                "reader stalled); resume with --from-revision " +
                std::to_string(last_revision.value_or(args.from_revision));
    }
    err(message);
    return 2;
  }
  if (response.status != 200) {
    std::string message = "ffe watch: " + with_status(response);
    const json body = json::parse(response.body, nullptr, false);
    if (response.status == 410 && body.is_object() && body.contains("compactedRevision")) {
      message += "; the oldest readable revision is " + body["compactedRevision"].dump();
    }
    err(message);
    return response.status == 410 ? 1 : 2;
  }
  if (exit_code != 0) err("ffe watch: " + end_message);
  return exit_code;
}

}  // namespace ffe::http
