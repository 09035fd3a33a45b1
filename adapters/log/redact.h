#pragma once
// Secrets never reach a log line (issue 9): URLs are logged with their password masked.
// Header-only so every adapter can use it without a link dependency.
//
// redact_url() is for a value known to be a URL or a libpq connection string (call sites
// that log --analytics, --brokers, ...); redact_secrets() is for free text and is what the
// logger (adapters/log/log.h) applies to every line as a safety net.

#include <cstddef>
#include <string>
#include <string_view>

namespace ffe::log {

inline constexpr std::string_view kRedacted = "***";

namespace redact_detail {

inline bool ends_value(char c) {
  return c == '&' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '"' || c == '\'' || c == ';' ||
         c == ',';
}

inline char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// Position of `needle` (lower case) in `text` at or after `from`, ignoring ASCII case; npos if none.
inline std::size_t find_nocase(const std::string& text, std::string_view needle, std::size_t from) {
  if (needle.empty() || text.size() < needle.size()) return std::string::npos;
  for (std::size_t i = from; i + needle.size() <= text.size(); ++i) {
    std::size_t k = 0;
    while (k < needle.size() && lower(text[i + k]) == needle[k]) ++k;
    if (k == needle.size()) return i;
  }
  return std::string::npos;
}

// Masks the password of the URL whose "://" is at `scheme`; the authority ends at / ? # or at
// anything that cannot be in a URL's authority in free text (space, quote, ...). Returns the
// position after the authority.
inline std::size_t mask_userinfo(std::string& out, std::size_t scheme) {
  const std::size_t authority = scheme + 3;
  std::size_t end = authority;
  while (end < out.size() && out[end] != '/' && out[end] != '?' && out[end] != '#' && out[end] != ' ' &&
         out[end] != '\t' && out[end] != '\n' && out[end] != '"' && out[end] != '\'' && out[end] != '<' &&
         out[end] != '>' && out[end] != ',') {
    ++end;
  }
  const std::size_t at = out.rfind('@', end == 0 ? 0 : end - 1);
  if (at == std::string::npos || at < authority) return end;
  const std::size_t colon = out.find(':', authority);
  if (colon == std::string::npos || colon >= at) return end;
  out.replace(colon + 1, at - colon - 1, kRedacted);
  return colon + 1 + kRedacted.size() + (end - at);
}

// Masks the value after every `key` (lower case, ending in '='), ignoring case.
inline void mask_assignments(std::string& out, std::string_view key) {
  for (std::size_t pos = find_nocase(out, key, 0); pos != std::string::npos;
       pos = find_nocase(out, key, pos + 1)) {
    const std::size_t value = pos + key.size();
    std::size_t stop = value;
    while (stop < out.size() && !ends_value(out[stop])) ++stop;
    if (stop == value) continue;
    out.replace(value, stop - value, kRedacted);
  }
}

// Masks the string value of every JSON member named `key` (with its quotes, e.g. "\"token\"").
inline void mask_json_member(std::string& out, std::string_view quoted_key) {
  for (std::size_t pos = out.find(quoted_key); pos != std::string::npos; pos = out.find(quoted_key, pos + 1)) {
    std::size_t i = pos + quoted_key.size();
    while (i < out.size() && (out[i] == ' ' || out[i] == '\t')) ++i;
    if (i >= out.size() || out[i] != ':') continue;
    ++i;
    while (i < out.size() && (out[i] == ' ' || out[i] == '\t')) ++i;
    if (i >= out.size() || out[i] != '"') continue;
    const std::size_t value = i + 1;
    std::size_t stop = value;
    while (stop < out.size() && out[stop] != '"') stop += (out[stop] == '\\' && stop + 1 < out.size()) ? 2 : 1;
    out.replace(value, stop - value, kRedacted);
  }
}

}  // namespace redact_detail

// "postgresql://ffe:secret@127.0.0.1:5432/db" -> "postgresql://ffe:***@127.0.0.1:5432/db";
// also masks a `password=...` key of a libpq keyword/value string or URL query. Anything
// else is returned unchanged.
inline std::string redact_url(std::string_view url) {
  std::string out(url);
  const auto scheme = out.find("://");
  if (scheme != std::string::npos) {
    const auto authority = scheme + 3;
    const auto end = out.find_first_of("/?#", authority);
    const auto at = out.rfind('@', end == std::string::npos ? out.size() : end);
    if (at != std::string::npos && at > authority) {
      const auto colon = out.find(':', authority);
      if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, kRedacted);
    }
  }
  redact_detail::mask_assignments(out, "password=");
  return out;
}

// Free text (a log message): masks the password of every URL in it (scheme://user:PASS@host),
// every `password=VALUE` (libpq, URL queries, librdkafka's sasl.password=), and the value of
// every JSON member "password", "token" or "secret" (a logged payload's payment token). Text
// without any of these is returned unchanged.
inline std::string redact_secrets(std::string_view text) {
  std::string out(text);
  for (std::size_t scheme = out.find("://"); scheme != std::string::npos; scheme = out.find("://", scheme)) {
    scheme = redact_detail::mask_userinfo(out, scheme);
  }
  redact_detail::mask_assignments(out, "password=");
  redact_detail::mask_assignments(out, "secret=");
  redact_detail::mask_json_member(out, "\"password\"");
  redact_detail::mask_json_member(out, "\"token\"");
  redact_detail::mask_json_member(out, "\"secret\"");
  return out;
}

}  // namespace ffe::log
