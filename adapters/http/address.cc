#include "adapters/http/address.h"

#include <charconv>

#include "events/validate.h"

namespace ffe::http {

using storage::Status;
using storage::StatusCode;

storage::Result<HostPort> parse_address(std::string_view address) {
  const std::string_view original = address;
  auto bad = [&](std::string_view why) {
    return Status(StatusCode::kInvalidArgument,
                  "address " + events::quote(original) + ": " + std::string(why) +
                      " (expected HOST:PORT, e.g. 127.0.0.1:8080)");
  };
  if (address.substr(0, 7) == "http://") address.remove_prefix(7);
  if (address.find("://") != std::string_view::npos) {
    return bad("only http:// is served (the admin API has no TLS)");
  }
  if (!address.empty() && address.back() == '/') address.remove_suffix(1);
  const std::size_t colon = address.rfind(':');
  if (colon == std::string_view::npos) return bad("no port");
  std::string_view host = address.substr(0, colon);
  const std::string_view port_text = address.substr(colon + 1);
  if (!host.empty() && host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return bad("an IPv6 host needs [brackets]");
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return bad("an IPv6 host needs [brackets]");
  }
  for (char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == ':' || c == '_';
    if (!ok) return bad("the host has a character that is not allowed");
  }
  if (port_text.find('/') != std::string_view::npos) return bad("a path is not part of the address");
  unsigned long port = 0;
  const auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || error != std::errc() || end != port_text.data() + port_text.size() || port > 65535) {
    return bad("the port must be a number 0..65535");
  }
  HostPort result;
  result.host = host.empty() ? "127.0.0.1" : std::string(host);
  result.port = static_cast<std::uint16_t>(port);
  return result;
}

std::string format_address(const HostPort& address) {
  const bool v6 = address.host.find(':') != std::string::npos;
  return (v6 ? "[" + address.host + "]" : address.host) + ":" + std::to_string(address.port);
}

bool is_loopback(std::string_view host) {
  return host == "localhost" || host == "::1" || host.substr(0, 4) == "127.";
}

}  // namespace ffe::http
