#pragma once
// "host:port" addresses of the admin HTTP API (`--http ADDR`), shared by the server and
// the client. No httplib here.

#include <cstdint>
#include <string>
#include <string_view>

#include "storage/status.h"

namespace ffe::http {

// The admin API's default: loopback only.
inline constexpr std::string_view kDefaultAddress = "127.0.0.1:8080";

struct HostPort {
  std::string host;  // "127.0.0.1", "localhost", "::1" (no brackets)
  std::uint16_t port = 0;
};

// Accepts "host:port", "[v6]:port", ":port" (loopback) and, for the client's sake, an
// "http://" prefix and a trailing "/". Port 0..65535 (0: the server picks a free port).
// kInvalidArgument naming what is wrong otherwise.
storage::Result<HostPort> parse_address(std::string_view address);

// "127.0.0.1:8080", "[::1]:8080".
std::string format_address(const HostPort& address);

// 127.0.0.0/8, ::1 and "localhost".
bool is_loopback(std::string_view host);

}  // namespace ffe::http
