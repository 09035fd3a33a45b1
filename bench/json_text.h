#pragma once
// One JSON string literal for the benchmarks' hand-written result objects: quotes and
// backslashes escaped, control characters as \u00XX. Shared by bench/reserve and bench/e2e.

#include <cstdio>
#include <string>
#include <string_view>

namespace ffe::bench {

inline std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buffer[8];
      std::snprintf(buffer, sizeof buffer, "\\u%04x", c);
      out += buffer;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace ffe::bench
