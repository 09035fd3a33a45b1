// KafkaEgress's wire conversion (no broker): what an outbox message looks like on Kafka.

#include <gtest/gtest.h>

#include "adapters/kafka/egress.h"
#include "events/codec.h"
#include "ffe/v1/outcomes.pb.h"
#include "ffe/v1/payments.pb.h"

namespace ffe::kafka {
namespace {

storage::OutboxMessage outcome_message() {
  v1::OrderOutcome outcome;
  outcome.set_order_id("o-1001");
  outcome.set_state(v1::FULFILLED);
  outcome.set_shard(3);
  outcome.set_revision(4812);
  storage::OutboxMessage message;
  message.topic = "ff.orders.outcomes";
  message.key = "o-1001";
  message.payload = outcome.SerializeAsString();
  message.headers = {{"content-type", "application/x-protobuf"}, {"trace-id", "t-1"}};
  return message;
}

std::optional<std::string> header(const Record& record, const std::string& name) {
  for (const Header& h : record.headers) {
    if (h.name == name) return h.value;
  }
  return std::nullopt;
}

TEST(KafkaEgressWire, JsonReencodesByTopicAndSaysSo) {
  const Record record = to_record(outcome_message(), Topics("ff."), Wire::kJson);
  EXPECT_EQ(record.topic, "ff.orders.outcomes");
  EXPECT_EQ(record.key, "o-1001");
  EXPECT_EQ(header(record, "content-type"), std::optional<std::string>("application/json"));
  EXPECT_EQ(header(record, "trace-id"), std::optional<std::string>("t-1"));
  std::size_t content_types = 0;
  for (const Header& h : record.headers) content_types += h.name == "content-type";
  EXPECT_EQ(content_types, 1u);
  // The contract's example, field for field: int64 as a string, enums by name.
  EXPECT_NE(record.value.find("\"revision\":\"4812\""), std::string::npos) << record.value;
  EXPECT_NE(record.value.find("\"state\":\"FULFILLED\""), std::string::npos) << record.value;
  v1::OrderOutcome back;
  ASSERT_FALSE(events::decode(record.value, events::ContentType::kJson, back));
  EXPECT_EQ(back.revision(), 4812);
}

TEST(KafkaEgressWire, ProtobufKeepsTheBinaryPayload) {
  const storage::OutboxMessage message = outcome_message();
  const Record record = to_record(message, Topics("ff."), Wire::kProtobuf);
  EXPECT_EQ(record.value, message.payload);
  EXPECT_EQ(header(record, "content-type"), std::optional<std::string>("application/x-protobuf"));
}

TEST(KafkaEgressWire, AnotherPrefixAndAnUnknownTopicPassThrough) {
  storage::OutboxMessage message = outcome_message();
  message.topic = "x.orders.outcomes";
  const Record prefixed = to_record(message, Topics("x."), Wire::kJson);
  EXPECT_EQ(header(prefixed, "content-type"), std::optional<std::string>("application/json"));
  // Under the wrong prefix the topic is not one of ffe's: sent as it is.
  const Record unknown = to_record(message, Topics("ff."), Wire::kJson);
  EXPECT_EQ(unknown.value, message.payload);
  EXPECT_EQ(header(unknown, "content-type"), std::optional<std::string>("application/x-protobuf"));
}

}  // namespace
}  // namespace ffe::kafka
