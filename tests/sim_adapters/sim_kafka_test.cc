// The simulators and the producer as Kafka clients, against librdkafka's mock cluster
// in-process: requests in, replies out (content types, keys, silence, undecodable input),
// and `produce` writing exactly the messages it reports, each decodable by events/codec.h.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <variant>

#include "adapters/sim/producer.h"
#include "adapters/sim/sim_runner.h"
#include "events/codec.h"
#include "events/validate.h"
#include "tests/sim_adapters/kafka_support.h"

namespace ffe::participants {
namespace {

using testing::MockCluster;
using testing::Record;

constexpr int kPartitions = 3;
const std::string kJson(events::kJsonContentType);
const std::string kProtobuf(events::kProtobufContentType);

// A participant on its own thread, stopped (and its exit code checked) at scope end.
class RunningParticipant {
 public:
  RunningParticipant(Kind kind, const std::string& brokers) {
    options_.brokers = brokers;
    options_.stop = &stop_;
    options_.stats_interval_s = 1;
    // ../shared/STACK.md: the mock needs these for a timely join.
    options_.kafka_config = {{"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "500"}};
    thread_ = std::thread([this, kind] { exit_code_ = run_participant(kind, options_); });
  }
  ~RunningParticipant() { stop(); }
  int stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    return exit_code_;
  }

 private:
  SimOptions options_;
  std::atomic<bool> stop_{false};
  std::atomic<int> exit_code_{-1};
  std::thread thread_;
};

Record json_record(const google::protobuf::Message& message, const std::string& key) {
  return {key, events::encode_json(message), kJson, 0};
}

std::string text(const Record& record) {
  return record.key + " " + record.content_type.value_or("(none)") + " " + record.value;
}

TEST(SimKafka, PaymentSimulatorAnswersRequestsInTheirContentType) {
  MockCluster cluster;
  cluster.create_topic("ff.payments.requests", kPartitions);
  cluster.create_topic("ff.payments.replies", kPartitions);
  RunningParticipant participant(Kind::kPayment, cluster.bootstraps());

  auto request = [](const std::string& json) {
    v1::PaymentRequest parsed;
    EXPECT_FALSE(events::decode(json, events::ContentType::kJson, parsed)) << json;
    return parsed;
  };
  const v1::PaymentRequest visa = request(
      R"({"commandId":"o-1:authorize:1","orderId":"o-1","authorize":{"amountCents":2598,"currency":"USD","token":"tok_visa"}})");
  const v1::PaymentRequest silent = request(
      R"({"commandId":"o-2:authorize:1","orderId":"o-2","authorize":{"amountCents":100,"currency":"USD","token":"tok_silent"}})");
  const v1::PaymentRequest void_silent = request(
      R"({"commandId":"o-2:void:1","orderId":"o-2","void":{"paymentId":"","authorizeCommandId":"o-2:authorize:1"}})");
  const v1::PaymentRequest decline = request(
      R"({"commandId":"o-3:authorize:1","orderId":"o-3","authorize":{"amountCents":100,"currency":"USD","token":"tok_decline"}})");

  testing::produce(cluster.bootstraps(), "ff.payments.requests",
                   {
                       {"o-0", "this is not json", kJson, 0},                // skipped
                       {"o-0", R"({"commandId":"x"})", std::nullopt, 0},    // invalid: skipped
                       {"o-0", "{}", std::string("text/plain"), 0},         // bad type: skipped
                       json_record(visa, "o-1"),
                       {"o-1", events::encode_json(visa), std::nullopt, 0},  // repeat, no header
                       json_record(silent, "o-2"),
                       json_record(void_silent, "o-2"),
                       {"o-3", events::encode_binary(decline), kProtobuf, 0},
                   });

  const std::vector<Record> replies =
      testing::read(cluster.bootstraps(), "ff.payments.replies", kPartitions, 4);
  ASSERT_EQ(replies.size(), 4u) << [&] {
    std::string all;
    for (const Record& r : replies) all += text(r) + "\n";
    return all;
  }();
  std::map<std::string, std::vector<v1::PaymentReply>> by_command;
  for (const Record& record : replies) {
    auto decoded = events::decode_payment_reply(record.value, record.content_type);
    ASSERT_TRUE(std::holds_alternative<v1::PaymentReply>(decoded)) << text(record);
    const v1::PaymentReply& reply = std::get<v1::PaymentReply>(decoded);
    EXPECT_EQ(record.key, reply.order_id()) << "replies are keyed by the order id";
    // Same content type as the request (a request without the header is JSON).
    EXPECT_EQ(record.content_type, reply.order_id() == "o-3" ? kProtobuf : kJson) << text(record);
    by_command[reply.command_id()].push_back(reply);
  }
  ASSERT_EQ(by_command["o-1:authorize:1"].size(), 2u) << "a repeated request is answered again";
  for (const v1::PaymentReply& reply : by_command["o-1:authorize:1"]) {
    EXPECT_EQ(reply.status(), v1::PaymentReply::APPROVED);
    EXPECT_EQ(reply.payment_id(), "p-o-1");
  }
  EXPECT_EQ(by_command.count("o-2:authorize:1"), 0u) << "tok_silent is never answered";
  ASSERT_EQ(by_command["o-2:void:1"].size(), 1u);
  EXPECT_EQ(by_command["o-2:void:1"][0].status(), v1::PaymentReply::APPROVED);
  EXPECT_EQ(by_command["o-2:void:1"][0].payment_id(), "p-o-2") << "the ghost was found and voided";
  ASSERT_EQ(by_command["o-3:authorize:1"].size(), 1u);
  EXPECT_EQ(by_command["o-3:authorize:1"][0].status(), v1::PaymentReply::DECLINED);

  EXPECT_EQ(participant.stop(), 0);
}

TEST(SimKafka, ShippingSimulatorCreatesFailsAndCancels) {
  MockCluster cluster;
  cluster.create_topic("ff.shipments.requests", kPartitions);
  cluster.create_topic("ff.shipments.replies", kPartitions);
  RunningParticipant participant(Kind::kShipping, cluster.bootstraps());

  auto create = [](const std::string& order, const std::string& country) {
    v1::ShipmentRequest request;
    request.set_command_id(order + ":ship:1");
    request.set_order_id(order);
    v1::ItemLine& line = *request.mutable_create()->add_lines();
    line.set_sku("sku-1");
    line.set_qty(2);
    v1::Address& to = *request.mutable_create()->mutable_ship_to();
    to.set_name("A. Customer");
    to.set_line1("1 Main St");
    to.set_city("Springfield");
    to.set_country(country);
    return request;
  };
  v1::ShipmentRequest cancel_first;
  cancel_first.set_command_id("o-3:cancel-shipment:1");
  cancel_first.set_order_id("o-3");
  cancel_first.mutable_cancel()->set_create_command_id("o-3:ship:1");

  testing::produce(cluster.bootstraps(), "ff.shipments.requests",
                   {json_record(create("o-1", "US"), "o-1"), json_record(create("o-2", "XX"), "o-2"),
                    json_record(cancel_first, "o-3"), json_record(create("o-3", "US"), "o-3")});

  const std::vector<Record> replies =
      testing::read(cluster.bootstraps(), "ff.shipments.replies", kPartitions, 4);
  ASSERT_EQ(replies.size(), 4u);
  std::map<std::string, v1::ShipmentReply> by_command;
  for (const Record& record : replies) {
    auto decoded = events::decode_shipment_reply(record.value, record.content_type);
    ASSERT_TRUE(std::holds_alternative<v1::ShipmentReply>(decoded)) << text(record);
    const v1::ShipmentReply& reply = std::get<v1::ShipmentReply>(decoded);
    EXPECT_EQ(record.key, reply.order_id());
    EXPECT_EQ(record.content_type, kJson);
    by_command[reply.command_id()] = reply;
  }
  EXPECT_EQ(by_command["o-1:ship:1"].status(), v1::ShipmentReply::CREATED);
  EXPECT_EQ(by_command["o-1:ship:1"].shipment_id(), "s-o-1");
  EXPECT_EQ(by_command["o-2:ship:1"].status(), v1::ShipmentReply::FAILED);
  EXPECT_EQ(by_command["o-3:cancel-shipment:1"].status(), v1::ShipmentReply::CANCELLED);
  EXPECT_EQ(by_command["o-3:ship:1"].status(), v1::ShipmentReply::FAILED);
  EXPECT_EQ(by_command["o-3:ship:1"].reason(), "cancelled before created");

  EXPECT_EQ(participant.stop(), 0);
}

TEST(SimKafka, StopsWithinSecondsWhenTheBrokerIsGone) {
  // KafkaConsumer::close() blocks while the broker is unreachable; the simulator bounds it.
  auto cluster = std::make_unique<MockCluster>();
  cluster->create_topic("ff.payments.requests", 1);
  cluster->create_topic("ff.payments.replies", 1);
  RunningParticipant participant(Kind::kPayment, cluster->bootstraps());
  v1::PaymentRequest request;
  request.set_command_id("o-1:authorize:1");
  request.set_order_id("o-1");
  request.mutable_authorize()->set_amount_cents(1);
  request.mutable_authorize()->set_currency("USD");
  request.mutable_authorize()->set_token("tok_visa");
  testing::produce(cluster->bootstraps(), "ff.payments.requests", {json_record(request, "o-1")});
  ASSERT_EQ(testing::read(cluster->bootstraps(), "ff.payments.replies", 1, 1).size(), 1u)
      << "joined and answering";
  cluster.reset();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(participant.stop(), 0);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 15.0);
}

// Runs run_produce with its summary captured.
struct Produced {
  int exit_code = -1;
  std::string summary;
};
Produced produce_with(ProduceOptions options) {
  std::FILE* out = std::tmpfile();
  options.summary_out = out;
  options.quiet = true;
  Produced result;
  result.exit_code = run_produce(options);
  std::rewind(out);
  char buffer[1024] = {};
  if (std::fgets(buffer, sizeof buffer, out) != nullptr) result.summary = buffer;
  std::fclose(out);
  return result;
}

TEST(ProduceKafka, StockWritesExactlyOneReceiptPerSku) {
  MockCluster cluster;
  cluster.create_topic("ff.inventory.commands", kPartitions);
  ProduceOptions options;
  options.what = ProduceWhat::kStock;
  options.brokers = cluster.bootstraps();
  options.skus = 25;
  options.stock_qty = 500;
  const Produced produced = produce_with(options);
  ASSERT_EQ(produced.exit_code, 0) << produced.summary;
  EXPECT_NE(produced.summary.find("\"produced\":25,\"failed\":0,"), std::string::npos)
      << produced.summary;

  EXPECT_EQ(testing::message_count(cluster.bootstraps(), "ff.inventory.commands", kPartitions), 25);
  const std::vector<Record> records =
      testing::read(cluster.bootstraps(), "ff.inventory.commands", kPartitions, 25);
  ASSERT_EQ(records.size(), 25u);
  std::set<std::string> skus;
  std::set<std::string> receipts;
  for (const Record& record : records) {
    EXPECT_EQ(record.content_type, kJson);
    auto decoded = events::decode_inventory_command(record.value, record.content_type);
    ASSERT_TRUE(std::holds_alternative<v1::InventoryCommand>(decoded)) << text(record);
    const v1::InventoryCommand& command = std::get<v1::InventoryCommand>(decoded);
    ASSERT_TRUE(command.has_receive_stock()) << text(record);
    EXPECT_FALSE(events::validate(command));
    EXPECT_EQ(record.key, command.receive_stock().sku()) << "keyed by SKU";
    EXPECT_EQ(command.receive_stock().qty(), 500);
    skus.insert(command.receive_stock().sku());
    receipts.insert(command.receive_stock().receipt_id());
  }
  EXPECT_EQ(skus.size(), 25u);
  EXPECT_TRUE(skus.count("sku-1") && skus.count("sku-25"));
  EXPECT_EQ(receipts.size(), 25u) << "receipt ids are unique";
}

TEST(ProduceKafka, OrdersAreValidKeyedMixedAndDeterministic) {
  MockCluster cluster;
  cluster.create_topic("a.orders.commands", kPartitions);
  cluster.create_topic("b.orders.commands", kPartitions);
  ProduceOptions options;
  options.what = ProduceWhat::kOrders;
  options.brokers = cluster.bootstraps();
  options.count = 300;
  options.skus = 5;
  options.seed = 7;
  options.id_prefix = "t";
  options.decline_pct = 10;
  options.silent_pct = 10;
  options.fail_ship_pct = 10;
  options.cancel_pct = 10;
  options.protobuf = true;
  options.topic_prefix = "a.";
  const Produced first = produce_with(options);
  ASSERT_EQ(first.exit_code, 0) << first.summary;
  options.topic_prefix = "b.";
  const Produced second = produce_with(options);
  ASSERT_EQ(second.exit_code, 0) << second.summary;

  const std::int64_t total = testing::message_count(cluster.bootstraps(), "a.orders.commands", kPartitions);
  ASSERT_GT(total, 300);  // 300 orders plus their cancels
  std::vector<Record> records = testing::read(cluster.bootstraps(), "a.orders.commands", kPartitions,
                                              static_cast<std::size_t>(total));
  ASSERT_EQ(static_cast<std::int64_t>(records.size()), total);
  std::map<std::string, int> tokens;
  std::set<std::string> orders;
  int cancels = 0, unshippable = 0;
  for (const Record& record : records) {
    EXPECT_EQ(record.content_type, kProtobuf);
    auto decoded = events::decode_order_command(record.value, record.content_type);
    ASSERT_TRUE(std::holds_alternative<v1::OrderCommand>(decoded)) << text(record);
    const v1::OrderCommand& command = std::get<v1::OrderCommand>(decoded);
    EXPECT_FALSE(events::validate(command)) << command.ShortDebugString();
    if (command.has_cancel_order()) {
      ++cancels;
      EXPECT_EQ(record.key, command.cancel_order().order_id());
      EXPECT_TRUE(orders.count(command.cancel_order().order_id()))
          << "a cancel follows its order on the same partition";
      continue;
    }
    const v1::PlaceOrder& order = command.place_order();
    EXPECT_EQ(record.key, order.order_id()) << "keyed by the order id";
    EXPECT_EQ(order.order_id().rfind("o-t-", 0), 0u) << order.order_id();
    EXPECT_GE(order.lines_size(), 1);
    EXPECT_LE(order.lines_size(), 3);
    std::set<std::string> skus;
    for (const v1::OrderLine& line : order.lines()) skus.insert(line.sku());
    EXPECT_EQ(skus.size(), static_cast<std::size_t>(order.lines_size())) << "distinct SKUs";
    orders.insert(order.order_id());
    tokens[order.payment().token()]++;
    unshippable += order.ship_to().country() == "XX";
  }
  EXPECT_EQ(orders.size(), 300u);
  EXPECT_EQ(cancels, total - 300);
  EXPECT_NE(first.summary.find("\"cancels\":" + std::to_string(cancels) + ","), std::string::npos)
      << first.summary;
  EXPECT_GT(tokens["tok_visa"], 200);
  EXPECT_GT(tokens["tok_decline"], 10);
  EXPECT_GT(tokens["tok_silent"], 10);
  EXPECT_GT(unshippable, 10);

  // The same seed and id prefix: the same messages.
  std::vector<Record> again = testing::read(cluster.bootstraps(), "b.orders.commands", kPartitions,
                                            static_cast<std::size_t>(total));
  auto values = [](const std::vector<Record>& rs) {
    std::multiset<std::string> all;
    for (const Record& r : rs) all.insert(r.value);
    return all;
  };
  EXPECT_EQ(values(again), values(records));
}

TEST(ProduceKafka, RateIsLimitedByTheTokenBucket) {
  MockCluster cluster;
  cluster.create_topic("ff.inventory.commands", 1);
  ProduceOptions options;
  options.what = ProduceWhat::kStock;
  options.brokers = cluster.bootstraps();
  options.count = 100;
  options.rate = 200;
  const auto start = std::chrono::steady_clock::now();
  const Produced produced = produce_with(options);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(produced.exit_code, 0) << produced.summary;
  EXPECT_GE(seconds, 0.45) << "100 messages at 200/s take about half a second";
  EXPECT_LT(seconds, 5.0);
  EXPECT_EQ(testing::message_count(cluster.bootstraps(), "ff.inventory.commands", 1), 100);
}

TEST(ProduceKafka, BadOptionsAreRefusedBeforeConnecting) {
  ProduceOptions options;
  options.brokers = "127.0.0.1:1";
  options.id_prefix = "has space";
  EXPECT_EQ(produce_with(options).exit_code, 2);
  options.id_prefix = "ok";
  options.decline_pct = 60;
  options.silent_pct = 60;
  EXPECT_EQ(produce_with(options).exit_code, 2);
  options = {};
  EXPECT_EQ(produce_with(options).exit_code, 2) << "--brokers is required";
}

// A cluster that does not answer is named within seconds and before anything is sent, not
// after each message's delivery timeout (a minute); Ctrl-C during that wait ends it (130).
TEST(ProduceKafka, AClusterThatDoesNotAnswerIsNamedBeforeAnythingIsSent) {
  ProduceOptions options;
  options.what = ProduceWhat::kStock;
  options.brokers = "127.0.0.1:1";  // nothing listens on port 1
  options.count = 3;
  auto start = std::chrono::steady_clock::now();
  const Produced produced = produce_with(options);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(produced.exit_code, 1);
  EXPECT_EQ(produced.summary, "") << "no summary: nothing was sent";
  EXPECT_LT(took, 30.0) << "waited for the delivery timeout instead";

  std::atomic<bool> stop{false};
  options.stop = &stop;
  std::thread interrupt([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    stop.store(true);
  });
  start = std::chrono::steady_clock::now();
  EXPECT_EQ(produce_with(options).exit_code, 130);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 5.0);
  interrupt.join();
}

TEST(SimKafka, BadKafkaSettingIsRefused) {
  SimOptions options;
  options.brokers = "127.0.0.1:1";
  options.kafka_config = {{"no.such.setting", "1"}};
  options.quiet = true;
  EXPECT_EQ(run_participant(Kind::kPayment, options), 2);
  std::vector<std::pair<std::string, std::string>> parsed;
  EXPECT_TRUE(parse_kafka_settings({"novalue"}, parsed).has_value());
  EXPECT_FALSE(parse_kafka_settings({"linger.ms=5", "a=b=c"}, parsed).has_value());
  ASSERT_EQ(parsed.size(), 2u);
  EXPECT_EQ(parsed[1].second, "b=c");
}

}  // namespace
}  // namespace ffe::participants
