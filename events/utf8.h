#pragma once
// UTF-8 (and JSON's \u escapes), the one way ffe reads and writes them: validate.cc's
// is_valid_utf8, the codec's UTF-8 check and shape check, and the JSON fast path
// (json_reader.cc) must agree byte for byte on what is well-formed, so they share these.

#include <cstddef>
#include <string>
#include <string_view>

namespace ffe::events::utf8 {

// Length of the well-formed character starting at text[at] (1 for ASCII), or 0 if none
// starts there: no overlong forms, no surrogates, nothing above U+10FFFF, no truncation.
// Its code point goes to `code_point_out` (unchanged when 0 is returned).
inline std::size_t decode(std::string_view text, std::size_t at, char32_t& code_point_out) {
  const auto lead = static_cast<unsigned char>(text[at]);
  if (lead < 0x80) {
    code_point_out = lead;
    return 1;
  }
  std::size_t length = 0;
  char32_t min = 0;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2, min = 0x80;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3, min = 0x800;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4, min = 0x10000;
  } else {
    return 0;  // a continuation byte, an overlong lead (c0, c1) or beyond U+10FFFF
  }
  if (text.size() - at < length) return 0;
  char32_t code_point = lead & (0x3fu >> (length - 1));
  for (std::size_t k = 1; k < length; ++k) {
    const auto next = static_cast<unsigned char>(text[at + k]);
    if ((next & 0xc0) != 0x80) return 0;
    code_point = (code_point << 6) | (next & 0x3f);
  }
  if (code_point < min || code_point > 0x10ffff) return 0;
  if (code_point >= 0xd800 && code_point <= 0xdfff) return 0;
  code_point_out = code_point;
  return length;
}

// The same, for when only the length matters.
inline std::size_t char_length(std::string_view text, std::size_t at) {
  char32_t code_point = 0;
  return decode(text, at, code_point);
}

// Byte offset of the first character of `text` that is not well-formed UTF-8, or
// text.size() if every one is.
inline std::size_t first_invalid(std::string_view text) {
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t length = char_length(text, at);
    if (length == 0) return at;
    at += length;
  }
  return at;
}

// The UTF-16 code unit of a JSON `\uXXXX` escape's four hex digits at the start of `text`,
// or false if they are not there.
inline bool hex4(std::string_view text, char32_t& unit) {
  if (text.size() < 4) return false;
  unit = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    const char c = text[i];
    unit <<= 4;
    if (c >= '0' && c <= '9') {
      unit |= c - '0';
    } else if (c >= 'a' && c <= 'f') {
      unit |= c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      unit |= c - 'A' + 10;
    } else {
      return false;
    }
  }
  return true;
}

// Appends `code_point` (at most U+10FFFF, not a surrogate) as UTF-8.
inline void append(std::string& out, char32_t code_point) {
  if (code_point < 0x80) {
    out += static_cast<char>(code_point);
  } else if (code_point < 0x800) {
    out += static_cast<char>(0xc0 | (code_point >> 6));
    out += static_cast<char>(0x80 | (code_point & 0x3f));
  } else if (code_point < 0x10000) {
    out += static_cast<char>(0xe0 | (code_point >> 12));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (code_point & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (code_point >> 18));
    out += static_cast<char>(0x80 | ((code_point >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (code_point & 0x3f));
  }
}

}  // namespace ffe::events::utf8
