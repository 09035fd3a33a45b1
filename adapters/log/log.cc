#include "adapters/log/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>

#include "adapters/log/redact.h"

namespace ffe::log {

namespace {

constexpr const char* kLoggerName = "ffe";

spdlog::level::level_enum to_spdlog(Level level) {
  switch (level) {
    case Level::kTrace: return spdlog::level::trace;
    case Level::kDebug: return spdlog::level::debug;
    case Level::kInfo: return spdlog::level::info;
    case Level::kWarn: return spdlog::level::warn;
    case Level::kError: return spdlog::level::err;
    case Level::kOff: return spdlog::level::off;
  }
  return spdlog::level::info;
}

// spdlog's short names say "err" and "critical"; the JSON says "error" like the CLI flag.
std::string_view level_name(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace: return "trace";
    case spdlog::level::debug: return "debug";
    case spdlog::level::info: return "info";
    case spdlog::level::warn: return "warn";
    case spdlog::level::err: return "error";
    case spdlog::level::critical: return "critical";
    default: return "off";
  }
}

// Length of the UTF-8 sequence starting at s[i] if it is well formed (RFC 3629: no overlong
// forms, no surrogates, at most U+10FFFF), else 0.
std::size_t utf8_length(std::string_view s, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return n;
}

std::string utc_timestamp(std::int64_t time_ms) {
  const std::time_t seconds = static_cast<std::time_t>(time_ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buffer[40];
  std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(time_ms % 1000));
  return buffer;
}

// One JSON object per record; the message is redacted, then escaped.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const std::int64_t time_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count();
    const std::string line = json_line(time_ms, level_name(msg.level),
                                       std::string_view(msg.logger_name.data(), msg.logger_name.size()),
                                       redact_secrets(std::string_view(msg.payload.data(), msg.payload.size())));
    dest.append(line.data(), line.data() + line.size());
    dest.push_back('\n');
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};

// spdlog's usual text pattern, on the redacted message: the pattern formatter formats a copy
// of the record whose payload is the redacted text.
class RedactingTextFormatter final : public spdlog::formatter {
 public:
  RedactingTextFormatter() : inner_(std::make_unique<spdlog::pattern_formatter>()) {}
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const std::string redacted = redact_secrets(std::string_view(msg.payload.data(), msg.payload.size()));
    spdlog::details::log_msg copy = msg;
    copy.payload = spdlog::string_view_t(redacted.data(), redacted.size());
    inner_->format(copy, dest);
    // The colour sink colours the level by the range the pattern marked (mutable fields).
    msg.color_range_start = copy.color_range_start;
    msg.color_range_end = copy.color_range_end;
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<RedactingTextFormatter>(); }

 private:
  std::unique_ptr<spdlog::formatter> inner_;
};

}  // namespace

std::optional<Level> parse_level(std::string_view name) {
  for (std::size_t i = 0; i < std::size(kLevelNames); ++i) {
    if (name == kLevelNames[i]) return static_cast<Level>(i);
  }
  return std::nullopt;
}

std::string json_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (std::size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      const std::size_t n = utf8_length(text, i);
      if (n == 0) {
        out += "\\ufffd";
        ++i;
      } else {
        out.append(text.substr(i, n));
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20 || c == 0x7F) {
          char buffer[8];
          std::snprintf(buffer, sizeof buffer, "\\u%04x", c);
          out += buffer;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
  return out;
}

std::string json_line(std::int64_t time_ms, std::string_view level, std::string_view logger,
                      std::string_view message) {
  std::string line = "{\"ts\":\"" + utc_timestamp(time_ms) + "\",\"level\":\"" + json_escape(level) +
                     "\",\"logger\":\"" + json_escape(logger) + "\",\"msg\":\"" + json_escape(message) + "\"}";
  return line;
}

namespace {
std::atomic<bool> json_lines{false};
std::atomic<Level> least_level{Level::kInfo};

void write_line(std::string_view level, std::string_view message) {
  const std::string redacted = redact_secrets(message);
  if (!json_lines.load()) {
    std::fprintf(stderr, "%s\n", redacted.c_str());
    return;
  }
  spdlog::default_logger()->flush();  // what was logged before comes first
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  std::fprintf(stderr, "%s\n", json_line(now_ms, level, kLoggerName, redacted).c_str());
}
}  // namespace

void fatal(std::string_view message) { write_line("error", message); }

bool json_format() { return json_lines.load(); }

void line(Level level, std::string_view message) {
  if (level == Level::kOff || level < least_level.load()) return;
  write_line(level_name(to_spdlog(level)), message);
}

void setup(Level level, bool json) {
  json_lines.store(json);
  least_level.store(level);
  // Drop a previous "ffe" logger (the registry refuses a second one of the same name).
  spdlog::drop(kLoggerName);
  // JSON goes to a plain sink: a colour sink would wrap the level in escape codes on a terminal.
  auto logger = json ? spdlog::stderr_logger_mt(kLoggerName) : spdlog::stderr_color_mt(kLoggerName);
  if (json) {
    logger->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    logger->set_formatter(std::make_unique<RedactingTextFormatter>());
  }
  logger->set_level(to_spdlog(level));
  spdlog::set_default_logger(logger);
}

}  // namespace ffe::log
