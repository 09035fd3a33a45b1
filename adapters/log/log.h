#pragma once
// ffe's logging set-up (issue 9): spdlog's default logger, named "ffe", on stderr (stdout
// carries what scripts read: status lines and JSON results), as text or as JSON lines.
//
// Every line goes through redact_secrets() (adapters/log/redact.h) before it is written, so
// a URL with a password or a `password=` value never reaches a log even when a caller forgot
// to redact it; callers still redact at the call site (redact_url), this is the safety net.
//
// JSON lines: one object per line, {"ts":"2026-11-23T20:50:01.123Z","level":"info",
// "logger":"ffe","msg":"..."}: ts in UTC with milliseconds, level one of trace, debug, info,
// warn, error, critical; strings escaped per RFC 8259 (control characters as \u00XX, bytes
// that are not UTF-8 as U+FFFD), so every line parses whatever the message holds.
//
// Thread safety: setup() replaces the default logger; call it from main() before starting
// threads that log (spdlog's loggers themselves are thread-safe, the `_mt` sinks).
// spdlog stays out of this header: it is included by main.cc and tests only.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ffe::log {

enum class Level { kTrace, kDebug, kInfo, kWarn, kError, kOff };

// The names the CLI accepts, in order of verbosity: --log-level trace|debug|info|warn|error|off.
inline constexpr std::string_view kLevelNames[] = {"trace", "debug", "info", "warn", "error", "off"};

// "trace" .. "off" (exactly those names); nullopt otherwise.
std::optional<Level> parse_level(std::string_view name);

// Makes the default logger "ffe" on stderr at `level`: spdlog's text pattern (colours only on
// a terminal) or, when `json`, one JSON object per line. Safe to call again (it replaces the
// logger: main() sets up text/info first, then what the flags ask for).
void setup(Level level, bool json);

// A command's last word on stderr, why it cannot go on (serve's start failing, say): the
// plain line `message` with the text format, where people and scripts read it as it is, or a
// JSON line at level "error" with the JSON format, so every line of a JSON log parses.
// Redacted like any log line; written whatever --log-level says.
void fatal(std::string_view message);

// A tool's own line on stderr (`ffe sim`, `ffe produce`: what they report as they run): the
// plain line `message` with the text format, as people and scripts have always read it, or a
// JSON line at `level` with the JSON format. Dropped below --log-level; redacted like any log
// line.
void line(Level level, std::string_view message);

// Whether setup() chose JSON lines (--log-format json).
bool json_format();

// One JSON log line without the newline, as the JSON format writes it (exposed for tests).
// `time_ms`: milliseconds since the Unix epoch; `level`: "info", "warn", ...
std::string json_line(std::int64_t time_ms, std::string_view level, std::string_view logger,
                      std::string_view message);

// `text` as the contents of a JSON string (without the quotes), RFC 8259: `"` and `\` escaped,
// control characters as \n, \t, ... or \u00XX, invalid UTF-8 bytes as \ufffd.
std::string json_escape(std::string_view text);

}  // namespace ffe::log
