#include "adapters/http/client.h"

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "adapters/http/address.h"
#include "events/validate.h"

namespace ffe::http {

using storage::Status;
using storage::StatusCode;

storage::Result<Response> get(std::string_view address, const std::string& target,
                              std::chrono::milliseconds timeout) {
  auto parsed = parse_address(address);
  if (!parsed.is_ok()) return parsed.status();
  httplib::Client client(parsed->host, parsed->port);
  client.set_connection_timeout(timeout);
  client.set_read_timeout(timeout);
  client.set_write_timeout(timeout);
  client.set_keep_alive(false);
  httplib::Result result = client.Get(target);
  if (!result) {
    return Status(StatusCode::kIoError, "GET http://" + format_address(*parsed) + target + ": " +
                                            httplib::to_string(result.error()));
  }
  Response response;
  response.status = result->status;
  response.body = result->body;
  response.content_type = result->get_header_value("Content-Type");
  return response;
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

  auto response = get(address, target);
  if (!response.is_ok()) {
    outcome.exit_code = 2;
    outcome.err = "ffe get: " + response.status().message() + "\n";
    return outcome;
  }
  if (response->status == 200) {
    outcome.exit_code = 0;
    outcome.out = response->body;
    if (outcome.out.empty() || outcome.out.back() != '\n') outcome.out += '\n';
    return outcome;
  }
  outcome.exit_code = response->status == 404 ? 1 : 2;
  outcome.err = "ffe get: " + error_message(*response) + " (HTTP " + std::to_string(response->status) + ")\n";
  return outcome;
}

}  // namespace ffe::http
