// events/json_text.h: a hand-written JSON string must be what protobuf's JSON printer prints
// for the same text (the simulators' replies are compared with protobuf's output byte for
// byte), and must read back as the text it came from.

#include <gtest/gtest.h>

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/wrappers.pb.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <iterator>
#include <random>
#include <string>

#include "events/json_text.h"
#include "events/utf8.h"

namespace ffe::events {
namespace {

// protobuf prints a StringValue as the bare JSON string of its value.
std::string protobuf_quoted(const std::string& text) {
  google::protobuf::StringValue value;
  value.set_value(text);
  std::string out;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(value, &out).ok());
  return out;
}

TEST(JsonText, EveryAsciiCharacterIsEscapedAsProtobufEscapesIt) {
  for (int c = 0; c < 0x80; ++c) {
    const std::string text = std::string("a") + static_cast<char>(c) + "b";
    EXPECT_EQ(json::quoted(text), protobuf_quoted(text)) << "character " << c;
    EXPECT_EQ(nlohmann::json::parse(json::quoted(text)).get<std::string>(), text) << "character " << c;
  }
}

TEST(JsonText, EveryCodePointIsWrittenAsProtobufWritesIt) {
  for (char32_t cp = 0x80; cp <= 0x10ffff; ++cp) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;  // surrogates are not characters
    std::string text = "x";
    utf8::append(text, cp);
    const std::string ours = json::quoted(text);
    ASSERT_EQ(ours, protobuf_quoted(text)) << "U+" << std::hex << static_cast<std::uint32_t>(cp);
  }
  // A few of the escaped ones, spelled out: protobuf escapes invisible formatting characters.
  EXPECT_EQ(json::quoted("\xc2\xad"), "\"\\u00ad\"");
  EXPECT_EQ(json::quoted("\xe2\x80\xa8"), "\"\\u2028\"");
  EXPECT_EQ(json::quoted("\xf3\xa0\x80\x81"), "\"\\udb40\\udc01\"");
}

TEST(JsonText, Utf8PassesThrough) {
  const std::string text = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa6 \"<x>\"\n";
  std::string out = "[";
  json::append_string(out, text);
  EXPECT_EQ(out, "[" + protobuf_quoted(text));
  EXPECT_EQ(nlohmann::json::parse(out + "]")[0].get<std::string>(), text);

  EXPECT_EQ(json::quoted("plain ascii"), "\"plain ascii\"");
  EXPECT_EQ(json::quoted(""), "\"\"");
}

TEST(JsonText, RandomTextsMatchProtobuf) {
  std::mt19937_64 rng(0x15'0a7e);
  const std::string pieces[] = {"a", "Z", "0", " ", "\"", "\\", "/", "<", ">", "&", "\x7f", "\x01",
                                "\x1f", "\t", "\n", "\xc3\xa9", "\xe2\x80\xa8", "\xf0\x9f\x98\x80"};
  std::uniform_int_distribution<std::size_t> pick(0, std::size(pieces) - 1), length(0, 40);
  for (int i = 0; i < 2'000; ++i) {
    std::string text;
    for (std::size_t n = length(rng); n > 0; --n) text += pieces[pick(rng)];
    ASSERT_EQ(json::quoted(text), protobuf_quoted(text)) << "text #" << i;
  }
}

}  // namespace
}  // namespace ffe::events
