#pragma once
// A JSON string literal, the one way ffe writes one by hand: escaped exactly as protobuf
// 3.21's JSON printer escapes it, so text written here is byte for byte what
// MessageToJsonString prints for the same string (tests/events/json_text_test.cc checks
// every code point). Quote and backslash, and \b \f \n \r \t, by name; other control
// characters, DEL, '<' and '>' as \u00XX; the code points protobuf also escapes (C1
// controls, invisible formatting characters such as U+00AD, U+200B-U+200F, U+2028-U+202E,
// U+FEFF, and the tag characters) as \uXXXX, above U+FFFF as a surrogate pair; everything
// else, UTF-8 included, as is. Text that is not well-formed UTF-8 is copied byte for byte.
// Used by the JSON writer (events/json_writer.h), the simulation's report (sagas/),
// `ffe drift`'s line and the benchmarks' result objects (bench/). The log's writer
// (adapters/log) is not one of them: it also repairs invalid UTF-8.

#include <cstddef>
#include <string>
#include <string_view>

#include "events/utf8.h"

namespace ffe::events::json {

// The code points above U+007F that protobuf's printer writes as \u escapes.
inline bool protobuf_escapes(char32_t cp) {
  return cp <= 0x9f || cp == 0xad || (cp >= 0x600 && cp <= 0x603) || cp == 0x6dd || cp == 0x70f ||
         cp == 0x17b4 || cp == 0x17b5 || (cp >= 0x200b && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202e) ||
         (cp >= 0x2060 && cp <= 0x2064) || (cp >= 0x206a && cp <= 0x206f) || cp == 0xfeff ||
         (cp >= 0xfff9 && cp <= 0xfffb) || (cp >= 0x1d173 && cp <= 0x1d17a) || cp == 0xe0001 ||
         (cp >= 0xe0020 && cp <= 0xe007f);
}

// Appends `text` to `out` as a quoted JSON string.
inline void append_string(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  auto unit = [&](char32_t u) {
    out.append("\\u");
    for (int shift = 12; shift >= 0; shift -= 4) out.push_back(kHex[(u >> shift) & 0xf]);
  };
  for (std::size_t at = 0; at < text.size();) {
    const char c = text[at];
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x80) {
      char32_t cp = 0;
      const std::size_t length = utf8::decode(text, at, cp);
      if (length == 0) {  // not well-formed: as is
        out.push_back(c);
        ++at;
        continue;
      }
      if (!protobuf_escapes(cp)) {
        out.append(text.substr(at, length));
      } else if (cp < 0x10000) {
        unit(cp);
      } else {
        unit(0xd800 + ((cp - 0x10000) >> 10));
        unit(0xdc00 + ((cp - 0x10000) & 0x3ff));
      }
      at += length;
      continue;
    }
    ++at;
    switch (c) {
      case '"': out.append("\\\""); continue;
      case '\\': out.append("\\\\"); continue;
      case '\b': out.append("\\b"); continue;
      case '\f': out.append("\\f"); continue;
      case '\n': out.append("\\n"); continue;
      case '\r': out.append("\\r"); continue;
      case '\t': out.append("\\t"); continue;
      default: break;
    }
    if (byte < 0x20 || byte == 0x7f || c == '<' || c == '>') {
      unit(byte);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

// The same as a new string.
inline std::string quoted(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  append_string(out, text);
  return out;
}

}  // namespace ffe::events::json
