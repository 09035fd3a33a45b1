// adapters/log: the JSON line format parses as JSON whatever the message holds, and secrets
// never survive redaction (issue 9: "no secret (tokens, URLs with passwords) in a log").
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>

#include "adapters/log/log.h"
#include "adapters/log/redact.h"

namespace ffe::log {
namespace {

TEST(LogJson, ALineIsOneObjectWithTsLevelLoggerMsg) {
  // 2026-11-29T20:50:01.123Z
  const std::string line = json_line(1795985401123, "info", "ffe", "serve: ready");
  const auto parsed = nlohmann::json::parse(line);
  EXPECT_EQ(parsed.size(), 4u);
  EXPECT_EQ(parsed["ts"], "2026-11-29T20:50:01.123Z");
  EXPECT_EQ(parsed["level"], "info");
  EXPECT_EQ(parsed["logger"], "ffe");
  EXPECT_EQ(parsed["msg"], "serve: ready");
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

TEST(LogJson, HostileMessagesStillParseAndRoundTrip) {
  const std::string cases[] = {
      "quote \" backslash \\ slash /",
      "new\nline\r\ttab\b\f",
      std::string("nul \0 bell \x07 del \x7f", 18),
      "utf-8: \xc3\xa9\xe2\x82\xac\xf0\x9f\x93\xa6",  // é € 📦 stay as they are
      "{\"placeOrder\": {\"orderId\": \"o-1\"}}",
  };
  for (const std::string& message : cases) {
    const auto parsed = nlohmann::json::parse(json_line(0, "warn", "ffe", message));
    EXPECT_EQ(parsed["msg"].get<std::string>(), message);
  }
}

TEST(LogJson, BytesThatAreNotUtf8BecomeReplacementCharacters) {
  // A DLQ reason may quote undecodable input: the line must still be valid JSON (UTF-8).
  const std::string message = std::string("bad \xff\xfe bytes \xc3(") + " overlong \xc0\xaf surrogate \xed\xa0\x80";
  const std::string line = json_line(0, "error", "ffe", message);
  const auto parsed = nlohmann::json::parse(line);  // throws on invalid UTF-8
  EXPECT_EQ(parsed["msg"].get<std::string>().find("\xff"), std::string::npos);
  EXPECT_NE(line.find("\\ufffd"), std::string::npos);
}

TEST(LogLevels, TheCliNamesParseAndNothingElse) {
  EXPECT_EQ(parse_level("trace"), Level::kTrace);
  EXPECT_EQ(parse_level("debug"), Level::kDebug);
  EXPECT_EQ(parse_level("info"), Level::kInfo);
  EXPECT_EQ(parse_level("warn"), Level::kWarn);
  EXPECT_EQ(parse_level("error"), Level::kError);
  EXPECT_EQ(parse_level("off"), Level::kOff);
  EXPECT_FALSE(parse_level("INFO"));
  EXPECT_FALSE(parse_level("warning"));
  EXPECT_FALSE(parse_level(""));
}

TEST(Redact, UrlPasswordsAreMasked) {
  EXPECT_EQ(redact_url("postgresql://ffe:secret@127.0.0.1:5432/ffe"), "postgresql://ffe:***@127.0.0.1:5432/ffe");
  EXPECT_EQ(redact_url("postgresql://ffe@127.0.0.1:5432/ffe"), "postgresql://ffe@127.0.0.1:5432/ffe");
  EXPECT_EQ(redact_url("postgresql://u:p%40ss@h/db?sslmode=disable&password=x"),
            "postgresql://u:***@h/db?sslmode=disable&password=***");
  EXPECT_EQ(redact_url("host=h user=u password=secret dbname=d"), "host=h user=u password=*** dbname=d");
  EXPECT_EQ(redact_url("sqlite:/tmp/a.db"), "sqlite:/tmp/a.db");
}

TEST(Redact, FreeTextLosesEverySecretAndKeepsTheRest) {
  const std::string text =
      "cdc: connecting to postgresql://ffe:secret1@pg:5432/ffe failed; retry postgresql://a:secret2@b/c, "
      "kafka sasl.password=secret3 and PASSWORD=secret4; payload {\"payment\": {\"method\": \"card\", "
      "\"token\": \"secret5\"}, \"password\":\"secret6\"}";
  const std::string out = redact_secrets(text);
  EXPECT_EQ(out.find("secret"), std::string::npos) << out;
  EXPECT_NE(out.find("postgresql://ffe:***@pg:5432/ffe failed"), std::string::npos) << out;
  EXPECT_NE(out.find("postgresql://a:***@b/c,"), std::string::npos) << out;
  EXPECT_NE(out.find("\"method\": \"card\""), std::string::npos) << out;
  const std::string plain = "serve: created topic ff.orders.commands (8 partitions) at 127.0.0.1:9092";
  EXPECT_EQ(redact_secrets(plain), plain);
}

}  // namespace
}  // namespace ffe::log
