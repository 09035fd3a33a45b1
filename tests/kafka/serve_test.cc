// `ffe serve`'s Kafka side, in process: the embedded broker (librdkafka's mock cluster) with
// the contract topics, a serve::Server on a temp data dir, and plain librdkafka clients that
// play producers, participants and readers, so every check goes through the Kafka protocol
// and the contracts (ARCHITECTURE.md): ingress -> runtime, DLQ, resume from the journal's
// positions, egress JSON/Protobuf, ff.events, backpressure.

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <set>

#include "adapters/kafka/broker.h"
#include "adapters/kafka/events_publisher.h"
#include "adapters/kafka/ingress.h"
#include "adapters/kafka/topics.h"
#include "adapters/serve/serve.h"
#include "events/codec.h"
#include "ffe/v1/journal.pb.h"
#include "ffe/v1/outcomes.pb.h"
#include "storage/journal.h"
#include "tests/kafka/kafka_test_support.h"
#include "tests/storage/fault_file_system.h"
#include "tests/storage/test_support.h"

namespace ffe::kafka {
namespace {

using namespace std::chrono_literals;
using testing::eventually;
using testing::Message;
using testing::TestParticipants;
using testing::TestProducer;
using testing::TestReader;

constexpr int kPartitions = 4;

std::string receive_json(const std::string& sku, int qty, const std::string& receipt) {
  return R"({"receiveStock": {"sku": ")" + sku + R"(", "qty": )" + std::to_string(qty) + R"(, "receiptId": ")" +
         receipt + R"("}})";
}

std::string adjust_json(const std::string& sku, int delta, const std::string& id) {
  return R"({"adjustStock": {"sku": ")" + sku + R"(", "delta": )" + std::to_string(delta) +
         R"(, "reason": "count", "adjustmentId": ")" + id + R"("}})";
}

std::string place_json(const std::string& order, const std::string& sku, int qty, const std::string& token = "tok_visa") {
  return R"({"placeOrder": {"orderId": ")" + order + R"(", "customerId": "c-7", "lines": [{"sku": ")" + sku +
         R"(", "qty": )" + std::to_string(qty) + R"(, "unitPriceCents": 1299}], "payment": {"method": "card", "token": ")" +
         token +
         R"("}, "shipTo": {"name": "A. Customer", "line1": "1 Main St", "city": "Springfield", "country": "US"}, "deadlineMs": 60000}})";
}

storage::Revision revisions_total(runtime::Runtime& runtime) {
  storage::Revision total = 0;
  for (storage::ShardId shard : runtime.journal().shards()) total += *runtime.journal().revision(shard);
  return total;
}

// Every event in the journal, all shards.
std::size_t journal_events(runtime::Runtime& runtime) {
  std::size_t events = 0;
  for (storage::ShardId shard : runtime.journal().shards()) {
    auto watch = runtime.journal().watch(shard, "", 1);
    if (!watch) return 0;
    while (true) {
      auto records = watch->next();
      if (!records || records->empty()) break;
      for (const auto& record : *records) events += record.events.size();
    }
  }
  return events;
}

// Orders o-0..o-(n-1) are all REJECTED (terminal: nothing of theirs moves any more).
bool all_rejected(runtime::Runtime& runtime, int n) {
  for (int i = 0; i < n; ++i) {
    auto order = runtime.order("o-" + std::to_string(i));
    if (!order || !order->has_value() || (*order)->state != v1::REJECTED) return false;
  }
  return true;
}

class ServeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto broker = EmbeddedBroker::start();
    ASSERT_TRUE(broker) << broker.status().to_string();
    broker_ = std::move(*broker);
    ASSERT_TRUE(broker_->create_topics(Topics("ff.").all(), kPartitions));
    producer_ = std::make_unique<TestProducer>(broker_->bootstrap());
  }

  // The options every test starts from: the embedded broker, a temp data dir, no HTTP.
  serve::ServeOptions serve_options() {
    serve::ServeOptions options;
    options.brokers = broker_->bootstrap();
    options.data_dir = dir_.sub("data");
    options.http = "";
    options.out = nullptr;
    options.shards = kPartitions;
    return options;
  }

  std::unique_ptr<serve::Server> start_server(const std::function<void(serve::ServeOptions&)>& tune = {}) {
    serve::ServeOptions options = serve_options();
    if (tune) tune(options);
    auto server = serve::Server::start(options);
    EXPECT_TRUE(server) << server.status().to_string();
    if (!server) return nullptr;
    return std::move(*server);
  }

  // Sends and returns where it landed.
  std::pair<std::int32_t, std::int64_t> send(const std::string& topic, const std::optional<std::string>& key,
                                             const std::string& value,
                                             const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    auto at = producer_->send(topic, key, value, headers);
    EXPECT_TRUE(at) << "producing to " << topic;
    return at.value_or(std::make_pair(-1, -1));
  }

  // The "crash" of the redelivery tests: every input partition's resume position goes back
  // to 0, so the next start delivers every message again; then the server stops.
  static void rewind_and_stop(serve::Server& server) {
    storage::Journal& journal = server.runtime().journal();
    server.ingress().stop();
    for (const std::string& topic : Topics("ff.").inputs()) {
      for (std::int32_t p = 0; p < kPartitions; ++p) {
        storage::CommitRequest rewind;
        rewind.shard = storage::ShardId{static_cast<std::uint32_t>(p) % server.runtime().shard_count()};
        rewind.input = storage::InputPosition{Ingress::watermark_source(topic, p), 0};
        ASSERT_TRUE(journal.commit(std::move(rewind)).get().status);
      }
    }
    server.stop();
  }

  storage::testing::TempDir dir_;
  std::unique_ptr<EmbeddedBroker> broker_;
  std::unique_ptr<TestProducer> producer_;
};

TEST_F(ServeTest, PlaceOrderFromKafkaBecomesAnOrderAndItsPaymentRequestGoesOutAsJson) {
  auto server = start_server();
  ASSERT_TRUE(server);
  send("ff.inventory.commands", "sku-1", receive_json("sku-1", 10, "r-1"));
  send("ff.orders.commands", "o-1001", place_json("o-1001", "sku-1", 2));

  runtime::Runtime& runtime = server->runtime();
  ASSERT_TRUE(eventually(
      [&] {
        auto order = runtime.order("o-1001");
        return order && order->has_value() && (*order)->state == v1::AUTHORIZING;
      },
      20s));
  auto sku = runtime.sku("sku-1");
  ASSERT_TRUE(sku && sku->has_value());
  EXPECT_EQ((*sku)->on_hand, 10);
  EXPECT_EQ((*sku)->reserved, 2);

  // The authorize request left through the egress, as canonical JSON, keyed by the order.
  TestReader requests(broker_->bootstrap(), "ff.payments.requests");
  auto read = requests.read_until(1, 20s);
  ASSERT_EQ(read.size(), 1u);
  EXPECT_EQ(read[0].key, std::optional<std::string>("o-1001"));
  EXPECT_EQ(read[0].header("content-type"), std::optional<std::string>("application/json"));
  auto decoded = events::decode_payment_request(read[0].value, read[0].header("content-type"));
  ASSERT_TRUE(std::holds_alternative<v1::PaymentRequest>(decoded)) << read[0].value;
  const auto& request = std::get<v1::PaymentRequest>(decoded);
  EXPECT_EQ(request.command_id(), "o-1001:authorize:1");
  EXPECT_EQ(request.authorize().amount_cents(), 2598);
  EXPECT_NE(read[0].value.find("\"commandId\""), std::string::npos) << read[0].value;

  // Each command's own position travels with its effects.
  const std::string source = Ingress::position_source("ff.orders.commands", 0);
  bool found = false;
  for (storage::ShardId shard : runtime.journal().shards()) {
    auto positions = runtime.journal().input_positions(shard);
    ASSERT_TRUE(positions);
    for (const auto& position : *positions) {
      if (position.source.starts_with("ff.orders.commands/")) found = true;
    }
  }
  EXPECT_TRUE(found) << "no input position named like " << source;
}

TEST_F(ServeTest, BadInputLandsInTheDlqWithItsOriginalKeyBytesAndSourceHeaders) {
  auto server = start_server();
  ASSERT_TRUE(server);
  const std::string garbage("\x00\xff{not json", 11);
  const std::string unknown_command = R"({"shipOrder": {"orderId": "o-9"}})";
  const std::string empty_id = R"({"placeOrder": {"orderId": ""}})";
  const std::string cancel_unknown = R"({"cancelOrder": {"orderId": "o-nobody", "reason": "customer request"}})";
  // A cancel whose reason breaks a rule: refused by its reason, not as unknown order (it
  // would be refused the same way for an open order, which it must not silently leave be).
  const std::string cancel_bad_reason = R"({"cancelOrder": {"orderId": "o-nobody", "reason": "changed\nmind"}})";
  const std::string bad_binary = "\x0a\xff\xff";
  const std::string bad_receipt = R"({"receiveStock": {"sku": "", "qty": 1, "receiptId": "r-1"}})";
  std::map<std::string, std::tuple<std::string, std::string, std::pair<std::int32_t, std::int64_t>>> sent;
  sent["k-garbage"] = {"ff.orders.commands", garbage, send("ff.orders.commands", "k-garbage", garbage)};
  sent["k-unknown"] = {"ff.orders.commands", unknown_command,
                       send("ff.orders.commands", "k-unknown", unknown_command, {{"trace-id", "t-1"}})};
  sent["k-empty"] = {"ff.orders.commands", empty_id, send("ff.orders.commands", "k-empty", empty_id)};
  sent["k-cancel"] = {"ff.orders.commands", cancel_unknown, send("ff.orders.commands", "k-cancel", cancel_unknown)};
  sent["k-cancel-reason"] = {"ff.orders.commands", cancel_bad_reason,
                              send("ff.orders.commands", "k-cancel-reason", cancel_bad_reason)};
  sent["k-binary"] = {"ff.payments.replies", bad_binary,
                      send("ff.payments.replies", "k-binary", bad_binary,
                           {{"content-type", "application/x-protobuf"}})};
  sent["k-receipt"] = {"ff.inventory.commands", bad_receipt, send("ff.inventory.commands", "k-receipt", bad_receipt)};
  // No key at all: it goes to the DLQ without one.
  const std::string keyless = "keyless garbage";
  const auto keyless_at = send("ff.orders.commands", std::nullopt, keyless);

  TestReader dlq(broker_->bootstrap(), "ff.dlq");
  auto read = dlq.read_until(sent.size() + 1, 30s);
  ASSERT_EQ(read.size(), sent.size() + 1);
  std::set<std::string> seen;
  for (const Message& m : read) {
    if (!m.key) {
      EXPECT_EQ(m.value, keyless);
      EXPECT_EQ(m.header("ff-source-offset"), std::optional<std::string>(std::to_string(keyless_at.second)));
      continue;
    }
    auto it = sent.find(*m.key);
    ASSERT_NE(it, sent.end()) << *m.key;
    seen.insert(*m.key);
    const auto& [topic, bytes, at] = it->second;
    EXPECT_EQ(m.value, bytes) << *m.key;
    EXPECT_EQ(m.header("ff-source-topic"), std::optional<std::string>(topic)) << *m.key;
    EXPECT_EQ(m.header("ff-source-partition"), std::optional<std::string>(std::to_string(at.first))) << *m.key;
    EXPECT_EQ(m.header("ff-source-offset"), std::optional<std::string>(std::to_string(at.second))) << *m.key;
    ASSERT_TRUE(m.header("ff-error").has_value()) << *m.key;
    EXPECT_FALSE(m.header("ff-error")->empty()) << *m.key;
  }
  EXPECT_EQ(seen.size(), sent.size());
  auto by_key = [&](const std::string& key) {
    for (const Message& m : read) {
      if (m.key == key) return m;
    }
    return Message{};
  };
  EXPECT_EQ(by_key("k-cancel").header("ff-error"), std::optional<std::string>("unknown order"));
  EXPECT_EQ(by_key("k-cancel-reason").header("ff-error")->rfind("cancelOrder.reason: ", 0), 0u)
      << *by_key("k-cancel-reason").header("ff-error");
  EXPECT_NE(by_key("k-unknown").header("ff-error")->find("unknown command"), std::string::npos)
      << *by_key("k-unknown").header("ff-error");
  EXPECT_NE(by_key("k-empty").header("ff-error")->find("orderId"), std::string::npos)
      << *by_key("k-empty").header("ff-error");
  // The producer's own headers travel with the message.
  EXPECT_EQ(by_key("k-unknown").header("trace-id"), std::optional<std::string>("t-1"));
  EXPECT_EQ(by_key("k-binary").header("content-type"), std::optional<std::string>("application/x-protobuf"));

  // Nothing of it changed state, and every DLQ record counts as acknowledged.
  EXPECT_EQ(revisions_total(server->runtime()), 0u);
  ASSERT_TRUE(eventually([&] { return server->ingress().stats().dlq_delivered == sent.size() + 1; }, 10s));
  const auto stats = server->ingress().stats();
  EXPECT_EQ(stats.unknown_entity, 1u);
  EXPECT_EQ(stats.ack_errors, 0u);
}

// Input larger than ff.dlq takes (here above the producer's message.max.bytes, 1,000,000 by
// default; on a real cluster the broker's limit): its DLQ record goes without the original
// bytes and says so, and the partition goes on; it is not retried for ever, holding the
// partition's resume position at its offset so that a restart would deliver everything
// after it again.
TEST_F(ServeTest, InputTooLargeForTheDlqGoesThereWithoutItsBytesAndDoesNotHoldItsPartition) {
  auto server = start_server();
  ASSERT_TRUE(server);
  const std::string huge(1'100'000, 'x');
  const auto huge_at = send("ff.inventory.commands", "k-huge", huge, {{"content-type", "application/x-protobuf"}});
  ASSERT_GE(huge_at.second, 0);
  std::pair<std::int32_t, std::int64_t> last_at;
  for (int i = 0; i < 3; ++i) {
    auto at = producer_->send("ff.inventory.commands", std::nullopt, receive_json("sku-1", 1, "r-" + std::to_string(i)),
                              {}, huge_at.first);
    ASSERT_TRUE(at);
    last_at = *at;
  }

  TestReader dlq(broker_->bootstrap(), "ff.dlq");
  auto read = dlq.read_until(1, 30s);
  ASSERT_EQ(read.size(), 1u);
  EXPECT_EQ(read[0].key, std::optional<std::string>("k-huge"));
  EXPECT_TRUE(read[0].value.empty());
  const std::string error = read[0].header("ff-error").value_or("");
  EXPECT_NE(error.find("message is 1100000 bytes"), std::string::npos) << error;
  EXPECT_NE(error.find("(1100000 bytes) is too large for ff.dlq"), std::string::npos) << error;
  EXPECT_EQ(read[0].header("ff-source-offset"), std::optional<std::string>(std::to_string(huge_at.second)));
  EXPECT_FALSE(read[0].header("content-type").has_value());  // the original headers stay behind too

  ASSERT_TRUE(eventually([&] { return server->ingress().stats().dlq_delivered == 1; }, 20s));
  ASSERT_TRUE(eventually(
      [&] {
        auto sku = server->runtime().sku("sku-1");
        return sku && sku->has_value() && (*sku)->on_hand == 3;
      },
      20s));
  server->stop();
  server.reset();
  auto restarted = start_server();
  ASSERT_TRUE(restarted);
  auto recorded = Ingress::recorded_watermark(restarted->runtime().journal(), restarted->runtime().shard_count(),
                                              "ff.inventory.commands", huge_at.first);
  ASSERT_TRUE(recorded);
  EXPECT_EQ(*recorded, std::optional<std::int64_t>(last_at.second + 1));
}

// The step timeouts are the engine's options (`ffe serve --authorize-timeout`): an authorize
// left unanswered is given up after the configured time, not the runtime's default 10 s,
// well within the order's own deadline (60 s here); the order is then compensated.
TEST_F(ServeTest, AnUnansweredAuthorizeIsGivenUpAfterTheConfiguredStepTimeout) {
  auto server = start_server([](serve::ServeOptions& options) { options.order_policy.authorize_timeout_ms = 300; });
  ASSERT_TRUE(server);
  TestParticipants participants(broker_->bootstrap());
  send("ff.inventory.commands", "sku-1", receive_json("sku-1", 5, "r-1"));
  ASSERT_TRUE(eventually(
      [&] {
        auto sku = server->runtime().sku("sku-1");
        return sku && sku->has_value() && (*sku)->on_hand == 5;
      },
      20s));
  send("ff.orders.commands", "o-silent", place_json("o-silent", "sku-1", 2, "tok_silent"));
  ASSERT_TRUE(eventually(
      [&] {
        auto order = server->runtime().order("o-silent");
        return order && order->has_value() && (*order)->state == v1::CANCELLED;
      },
      30s));
  const order::State order = **server->runtime().order("o-silent");
  EXPECT_NE(order.reason.find("timed out"), std::string::npos) << order.reason;
  // Given up after the 300 ms timeout and the void's round trip, not after 10 s.
  EXPECT_LT(order.completed_at_ms - order.accepted_at_ms, 5'000) << order.reason;
  auto sku = server->runtime().sku("sku-1");
  ASSERT_TRUE(sku && sku->has_value());
  EXPECT_EQ((*sku)->reserved, 0);
  EXPECT_EQ((*sku)->on_hand, 5);
}

// What a clean stop records: every partition resumes exactly after what it consumed, so a
// restart consumes nothing old and applies the next message once.
TEST_F(ServeTest, ARestartResumesFromTheRecordedPositions) {
  std::map<std::pair<std::string, std::int32_t>, std::int64_t> next;  // (topic, partition) -> end offset
  storage::Revision revisions = 0;
  std::size_t messages = 0;
  {
    auto server = start_server();
    ASSERT_TRUE(server);
    for (int i = 0; i < 24; ++i) {
      const std::string sku = "sku-" + std::to_string(i % 6);
      auto at = send("ff.inventory.commands", sku, receive_json(sku, 1, "r-" + std::to_string(i)));
      next[{"ff.inventory.commands", at.first}] = at.second + 1;
      ++messages;
    }
    for (int i = 0; i < 4; ++i) {
      // No such SKU: REJECTED at once (terminal, no saga timers).
      const std::string order = "o-" + std::to_string(i);
      auto at = send("ff.orders.commands", order, place_json(order, "sku-none", 1));
      next[{"ff.orders.commands", at.first}] = at.second + 1;
      ++messages;
    }
    ASSERT_TRUE(eventually([&] { return server->ingress().stats().submitted == messages; }, 30s));
    ASSERT_TRUE(server->runtime().wait_quiet(10s));
    ASSERT_TRUE(eventually([&] { return all_rejected(server->runtime(), 4); }, 20s));
    ASSERT_TRUE(server->runtime().wait_quiet(10s));
    revisions = revisions_total(server->runtime());
    EXPECT_GE(revisions, messages);
    server->stop();
  }
  {
    auto server = start_server();
    ASSERT_TRUE(server);
    // Every partition's recorded position is the end of what was consumed.
    for (const auto& [where, end] : next) {
      auto recorded = Ingress::recorded_watermark(server->runtime().journal(), server->runtime().shard_count(),
                                                  where.first, where.second);
      ASSERT_TRUE(recorded);
      EXPECT_EQ(*recorded, std::optional<std::int64_t>(end)) << where.first << "/" << where.second;
    }
    std::this_thread::sleep_for(500ms);
    EXPECT_EQ(server->ingress().stats().consumed, 0u);
    send("ff.inventory.commands", "sku-0", receive_json("sku-0", 5, "r-new"));
    ASSERT_TRUE(eventually([&] { return server->ingress().stats().submitted == 1; }, 20s));
    ASSERT_TRUE(server->runtime().wait_quiet(10s));
    EXPECT_EQ(revisions_total(server->runtime()), revisions + 1);
    auto sku = server->runtime().sku("sku-0");
    ASSERT_TRUE(sku && sku->has_value());
    EXPECT_EQ((*sku)->on_hand, 4 + 5);
    // ff.events resumed after its cursors too: every journal event exactly once.
    const std::size_t events = journal_events(server->runtime());
    TestReader events_topic(broker_->bootstrap(), "ff.events");
    events_topic.read_until(events, 30s);
    EXPECT_EQ(events_topic.read_for(1s).size(), events);
  }
}

// What a crash leaves: positions behind what was applied. Rewind every recorded position to
// 0 (as if ffe died right after applying everything, before recording), restart: every
// message is delivered again and nothing is applied twice (invariant 3).
TEST_F(ServeTest, RedeliveryAfterACrashChangesNothing) {
  storage::Revision revisions = 0;
  std::size_t messages = 0;
  {
    auto server = start_server();
    ASSERT_TRUE(server);
    for (int i = 0; i < 20; ++i) {
      const std::string sku = "sku-" + std::to_string(i % 5);
      send("ff.inventory.commands", sku, receive_json(sku, 2, "r-" + std::to_string(i)));
      ++messages;
    }
    for (int i = 0; i < 5; ++i) {
      const std::string sku = "sku-" + std::to_string(i);
      send("ff.inventory.commands", sku, adjust_json(sku, -1, "a-" + std::to_string(i)));
      ++messages;
    }
    for (int i = 0; i < 3; ++i) {
      const std::string order = "o-" + std::to_string(i);
      send("ff.orders.commands", order, place_json(order, "sku-none", 1));
      ++messages;
    }
    ASSERT_TRUE(eventually([&] { return server->ingress().stats().submitted == messages; }, 30s));
    ASSERT_TRUE(server->runtime().wait_quiet(10s));
    ASSERT_TRUE(eventually([&] { return all_rejected(server->runtime(), 3); }, 20s));
    ASSERT_TRUE(server->runtime().wait_quiet(10s));
    revisions = revisions_total(server->runtime());
    EXPECT_GE(revisions, messages);
    rewind_and_stop(*server);
  }
  auto server = start_server();
  ASSERT_TRUE(server);
  ASSERT_TRUE(eventually([&] { return server->ingress().stats().submitted == messages; }, 30s))
      << server->ingress().stats().submitted;
  ASSERT_TRUE(server->runtime().wait_quiet(10s));
  EXPECT_EQ(revisions_total(server->runtime()), revisions) << "a redelivered message was applied again";
  for (int i = 0; i < 5; ++i) {
    auto sku = server->runtime().sku("sku-" + std::to_string(i));
    ASSERT_TRUE(sku && sku->has_value());
    EXPECT_EQ((*sku)->on_hand, 4 * 2 - 1) << "sku-" << i;
  }
  EXPECT_EQ(server->ingress().stats().dlq, 0u);
}

// Redelivery is recognised by the message's position, not by the SKU's id windows: a burst
// of more receipts and adjustments on one SKU than its windows hold (1,024 ids each), all
// delivered again, changes nothing. A repeat the window caught the first time stays a no-op
// though its id left the window since. A refused adjustment is refused again and goes to the
// DLQ again (at-least-once, docs/kafka.md), even one the receipts after it would now let pass.
TEST_F(ServeTest, ARedeliveredBurstLongerThanTheSkuWindowsIsNotAppliedAgain) {
  constexpr int kReceipts = 1'100;
  constexpr int kAdjustments = 1'030;
  std::size_t messages = 0;
  storage::Revision revisions = 0;
  auto sent = [&](const std::string& value) {
    send("ff.inventory.commands", "sku-burst", value);
    ++messages;
  };
  {
    auto server = start_server();
    ASSERT_TRUE(server);
    sent(receive_json("sku-burst", 1, "r-first"));
    sent(receive_json("sku-burst", 1, "r-first"));  // a producer's retry: a no-op
    sent(adjust_json("sku-burst", -5, "a-early"));  // refused: on hand is 1
    for (int i = 0; i < kReceipts; ++i) sent(receive_json("sku-burst", 1, "r-" + std::to_string(i)));
    for (int i = 0; i < kAdjustments; ++i) sent(adjust_json("sku-burst", 1, "a-" + std::to_string(i)));
    sent(adjust_json("sku-burst", -100'000, "a-refused"));
    ASSERT_TRUE(eventually([&] { return server->ingress().stats().submitted == messages; }, 60s))
        << server->ingress().stats().submitted << " of " << messages;
    ASSERT_TRUE(server->runtime().wait_quiet(10s));
    ASSERT_TRUE(eventually([&] { return server->ingress().stats().dlq_delivered == 2; }, 20s));
    revisions = revisions_total(server->runtime());
    EXPECT_EQ(revisions, 1u + kReceipts + kAdjustments);
    rewind_and_stop(*server);
  }
  auto server = start_server();
  ASSERT_TRUE(server);
  ASSERT_TRUE(eventually([&] { return server->ingress().stats().submitted == messages; }, 60s))
      << server->ingress().stats().submitted << " of " << messages;
  ASSERT_TRUE(server->runtime().wait_quiet(10s));
  EXPECT_EQ(revisions_total(server->runtime()), revisions) << "a redelivered message was applied again";
  auto sku = server->runtime().sku("sku-burst");
  ASSERT_TRUE(sku && sku->has_value());
  EXPECT_EQ((*sku)->received_total, 1 + kReceipts);
  EXPECT_EQ((*sku)->adjusted_in_total, kAdjustments);
  EXPECT_EQ((*sku)->adjusted_out_total, 0) << "a refused adjustment passed when delivered again";
  EXPECT_EQ((*sku)->on_hand, 1 + kReceipts + kAdjustments);
  EXPECT_EQ(server->runtime().stats().redelivered, messages - 2);
  EXPECT_TRUE(eventually([&] { return server->ingress().stats().dlq_delivered == 2; }, 20s))
      << "a refused adjustment did not reach the DLQ again";
}

TEST_F(ServeTest, AFulfilledOrderEndsWithOneJsonOutcomeAndTheJournalOnTheEventsTopic) {
  TestParticipants participants(broker_->bootstrap());
  auto server = start_server();
  ASSERT_TRUE(server);
  send("ff.inventory.commands", "sku-1", receive_json("sku-1", 10, "r-1"));
  send("ff.orders.commands", "o-ok", place_json("o-ok", "sku-1", 2));
  send("ff.orders.commands", "o-declined", place_json("o-declined", "sku-1", 3, "tok_decline"));

  TestReader outcomes(broker_->bootstrap(), "ff.orders.outcomes");
  auto read = outcomes.read_until(2, 60s);
  ASSERT_EQ(read.size(), 2u);
  std::map<std::string, v1::OrderOutcome> by_order;
  for (const Message& m : read) {
    EXPECT_EQ(m.header("content-type"), std::optional<std::string>("application/json"));
    v1::OrderOutcome outcome;
    ASSERT_FALSE(events::decode(m.value, m.header("content-type"), outcome)) << m.value;
    EXPECT_EQ(m.key, std::optional<std::string>(outcome.order_id()));
    by_order[outcome.order_id()] = outcome;
  }
  ASSERT_TRUE(by_order.contains("o-ok"));
  ASSERT_TRUE(by_order.contains("o-declined"));
  const v1::OrderOutcome& ok = by_order["o-ok"];
  EXPECT_EQ(ok.state(), v1::FULFILLED);
  EXPECT_EQ(ok.payment_id(), "p-o-ok");
  EXPECT_EQ(ok.shipment_id(), "s-o-ok");
  EXPECT_EQ(static_cast<std::uint32_t>(ok.shard()), server->runtime().shard_of("o-ok").value);
  auto order = server->runtime().order("o-ok");
  ASSERT_TRUE(order && order->has_value());
  EXPECT_GT(ok.revision(), 0);
  EXPECT_EQ(by_order["o-declined"].state(), v1::CANCELLED);
  EXPECT_EQ(participants.non_json_requests(), 0u);
  auto sku = server->runtime().sku("sku-1");
  ASSERT_TRUE(sku && sku->has_value());
  EXPECT_EQ((*sku)->on_hand, 8);
  EXPECT_EQ((*sku)->reserved, 0);

  // ff.events carries every journal event, in revision order per shard, as JournalEvents.
  ASSERT_TRUE(server->runtime().wait_quiet(10s));
  std::size_t journal_events = 0;
  std::map<std::uint32_t, storage::Revision> heads;
  for (storage::ShardId shard : server->runtime().journal().shards()) {
    auto watch = server->runtime().journal().watch(shard, "", 1);
    ASSERT_TRUE(watch);
    while (true) {
      auto records = watch->next();
      ASSERT_TRUE(records);
      if (records->empty()) break;
      for (const auto& record : *records) journal_events += record.events.size();
    }
    heads[shard.value] = *server->runtime().journal().revision(shard);
  }
  TestReader events_topic(broker_->bootstrap(), "ff.events");
  auto events_read = events_topic.read_until(journal_events, 30s);
  ASSERT_EQ(events_read.size(), journal_events);
  std::map<std::int32_t, std::int64_t> last_revision;
  for (const Message& m : events_read) {
    EXPECT_EQ(m.header("content-type"), std::optional<std::string>("application/x-protobuf"));
    v1::JournalEvent event;
    ASSERT_TRUE(event.ParseFromString(m.value));
    EXPECT_EQ(m.key, std::optional<std::string>(event.entity_key()));
    EXPECT_EQ(event.schema_version(), 2u);  // events/upcast.h: the current schema
    EXPECT_TRUE(event.has_sku() || event.has_order());
    EXPECT_EQ(event.has_sku(), event.entity_key().starts_with("sku/"));
    // Per shard (per key, within a partition) revisions never go back.
    EXPECT_GE(event.revision(), last_revision[event.shard()]);
    last_revision[event.shard()] = event.revision();
  }
  server->stop();
  // After a clean stop every shard's cursor is at its head.
  {
    storage::testing::CounterFolder folder;
    storage::JournalOptions options;
    options.folder = &folder;
    auto journal = storage::Journal::open(dir_.sub("data"), options);
    ASSERT_TRUE(journal) << journal.status().to_string();
    for (const auto& [shard, head] : heads) {
      auto cursor = EventsPublisher::stored_cursor(**journal, storage::ShardId{shard});
      ASSERT_TRUE(cursor);
      EXPECT_EQ(*cursor, head) << "shard " << shard;
    }
  }
}

// stop() (SIGTERM) ends while placements wait in paused partitions for room under the
// open-orders bound: those messages were never handed over (the next start reads them again).
// It used to hang for ever: librdkafka's consumer destroy waited for the messages still held.
TEST_F(ServeTest, StopEndsWhilePlacementsWaitForRoom) {
  auto server = start_server([](serve::ServeOptions& options) { options.max_open_orders = 1; });
  ASSERT_TRUE(server);
  send("ff.inventory.commands", "sku-1", receive_json("sku-1", 100, "r-1"));
  // No participant answers here: the first order stays open, and the rest wait in Kafka.
  for (int i = 0; i < 6; ++i) {
    const std::string id = "o-wait-" + std::to_string(i);
    send("ff.orders.commands", id, place_json(id, "sku-1", 1));
  }
  ASSERT_TRUE(eventually([&] { return server->runtime().stats().placements_refused > 0; }, 20s));
  // stop() on this thread, which started the server (CAF's actor system must end on the
  // thread that made it); a watchdog turns a hang into a failure. The stop's own waits add up
  // to about 40 s.
  std::atomic<bool> stopped{false};
  std::thread watchdog([&] {
    for (int i = 0; i < 900 && !stopped.load(); ++i) std::this_thread::sleep_for(100ms);
    if (stopped.load()) return;
    std::fprintf(stderr, "StopEndsWhilePlacementsWaitForRoom: stop() did not return in 90 s\n");
    std::abort();
  });
  server->stop();
  stopped.store(true);
  watchdog.join();
}

// A producer that spells the header as HTTP does ("Content-Type") is understood: Kafka header
// names are case-sensitive, but the contract names one header, whatever its case.
TEST_F(ServeTest, TheContentTypeHeaderIsFoundWhateverItsCase) {
  auto server = start_server();
  ASSERT_TRUE(server);
  v1::InventoryCommand command;
  command.mutable_receive_stock()->set_sku("sku-1");
  command.mutable_receive_stock()->set_qty(7);
  command.mutable_receive_stock()->set_receipt_id("r-bin");
  std::string binary;
  ASSERT_TRUE(command.SerializeToString(&binary));
  send("ff.inventory.commands", "sku-1", binary, {{"Content-Type", "application/x-protobuf"}});
  ASSERT_TRUE(eventually(
      [&] {
        auto sku = server->runtime().sku("sku-1");
        return sku && sku->has_value() && (*sku)->on_hand == 7;
      },
      20s));
  EXPECT_EQ(server->ingress().stats().dlq, 0u);
}

TEST_F(ServeTest, WireProtobufSendsBinaryMessages) {
  auto server = start_server([](serve::ServeOptions& options) { options.wire = Wire::kProtobuf; });
  ASSERT_TRUE(server);
  send("ff.inventory.commands", "sku-1", receive_json("sku-1", 10, "r-1"));
  send("ff.orders.commands", "o-bin", place_json("o-bin", "sku-1", 1));
  TestReader requests(broker_->bootstrap(), "ff.payments.requests");
  auto read = requests.read_until(1, 20s);
  ASSERT_EQ(read.size(), 1u);
  EXPECT_EQ(read[0].header("content-type"), std::optional<std::string>("application/x-protobuf"));
  v1::PaymentRequest request;
  ASSERT_TRUE(request.ParseFromString(read[0].value));
  EXPECT_EQ(request.order_id(), "o-bin");
}

// A runtime with 2 credits: the ingress gets kBusy again and again, pauses the partition and
// retries. Receipts and adjustments alternate on one SKU (one partition); an adjustment that
// overtook its receipt would be refused (it would take on_hand below 0), so the final counts
// prove that nothing was dropped and nothing reordered.
TEST_F(ServeTest, BackpressurePausesThePartitionAndLosesOrReordersNothing) {
  auto server = start_server([](serve::ServeOptions& options) {
    options.tune_runtime = [](runtime::Options& runtime) { runtime.max_in_flight = 2; };
  });
  ASSERT_TRUE(server);
  constexpr int kPairs = 150;
  for (int i = 0; i < kPairs; ++i) {
    producer_->send("ff.inventory.commands", "sku-bp", receive_json("sku-bp", 1, "r-" + std::to_string(i)));
    producer_->send("ff.inventory.commands", "sku-bp", adjust_json("sku-bp", -1, "a-" + std::to_string(i)));
  }
  ASSERT_TRUE(eventually([&] { return server->ingress().stats().submitted == 2 * kPairs; }, 60s))
      << server->ingress().stats().submitted;
  ASSERT_TRUE(server->runtime().wait_quiet(10s));
  auto sku = server->runtime().sku("sku-bp");
  ASSERT_TRUE(sku && sku->has_value());
  EXPECT_EQ((*sku)->received_total, kPairs);
  EXPECT_EQ((*sku)->adjusted_out_total, kPairs);
  EXPECT_EQ((*sku)->on_hand, 0);
  EXPECT_EQ(revisions_total(server->runtime()), 2u * kPairs);
  const auto stats = server->ingress().stats();
  EXPECT_EQ(stats.dlq, 0u);
  EXPECT_EQ(stats.consumed, 2u * kPairs + stats.refetched);
  EXPECT_GT(stats.busy, 0u) << "the test never hit backpressure";
}

// A slow disk pushes back to the edge (docs/runtime.md, "Backpressure"): while the journal's
// synced writes are held, nothing becomes durable, so nothing is acknowledged, the credits
// run out and the ingress stops taking commands (they wait in Kafka, their partitions
// paused). Once the disk answers, every command is applied exactly once.
TEST_F(ServeTest, AStalledDiskPausesTheIngressAndLosesNothing) {
  auto fs = std::make_shared<storage::testing::FaultFileSystem>();
  auto env = storage::testing::make_env(fs);
  constexpr std::size_t kCredits = 8;
  auto server = start_server([&](serve::ServeOptions& options) {
    options.tune_runtime = [&](runtime::Options& runtime) {
      runtime.journal_env = env.get();
      runtime.max_in_flight = kCredits;
    };
  });
  ASSERT_TRUE(server);
  // Whatever fails below, the disk answers again before the server closes (it would wait).
  struct Release {
    storage::testing::FaultFileSystem& fs;
    ~Release() { fs.block_syncs(false); }
  } release{*fs};
  runtime::Runtime& runtime = server->runtime();
  producer_->send("ff.inventory.commands", "sku-st", receive_json("sku-st", 1, "r-first"));
  ASSERT_TRUE(eventually([&] { return server->ingress().stats().submitted == 1; }, 30s));
  ASSERT_TRUE(runtime.wait_quiet(10s));
  const storage::Revision before = revisions_total(runtime);

  fs->block_syncs(true);
  constexpr int kPairs = 100;
  for (int i = 0; i < kPairs; ++i) {
    producer_->send("ff.inventory.commands", "sku-st", receive_json("sku-st", 1, "r-" + std::to_string(i)));
    producer_->send("ff.inventory.commands", "sku-st", adjust_json("sku-st", -1, "a-" + std::to_string(i)));
  }
  // The writer is inside a synced write and the ingress has met the credit bound.
  ASSERT_TRUE(eventually([&] { return fs->syncs_blocked_now() > 0 && server->ingress().stats().busy > 0; }, 30s))
      << "blocked syncs " << fs->syncs_blocked_now() << ", busy " << server->ingress().stats().busy;
  std::this_thread::sleep_for(500ms);  // time for anything that would leak past the bound
  const auto held = server->ingress().stats();
  EXPECT_LE(held.submitted, 1 + kCredits) << "commands were accepted beyond the credits while nothing was durable";
  EXPECT_EQ(revisions_total(runtime), before) << "a revision became visible while the disk held every sync";
  EXPECT_EQ(held.dlq, 0u);

  fs->block_syncs(false);
  ASSERT_TRUE(eventually([&] { return server->ingress().stats().submitted == 1 + 2 * kPairs; }, 60s))
      << server->ingress().stats().submitted;
  ASSERT_TRUE(runtime.wait_quiet(10s));
  auto sku = runtime.sku("sku-st");
  ASSERT_TRUE(sku && sku->has_value());
  EXPECT_EQ((*sku)->received_total, 1 + kPairs);
  EXPECT_EQ((*sku)->adjusted_out_total, kPairs);
  EXPECT_EQ((*sku)->on_hand, 1);
  EXPECT_EQ(revisions_total(runtime), before + 2u * kPairs);
  const auto stats = server->ingress().stats();
  EXPECT_EQ(stats.dlq, 0u);
  EXPECT_EQ(stats.ack_errors, 0u);
  EXPECT_EQ(stats.consumed, 1u + 2u * kPairs + stats.refetched);
}

// An overload of placements waits in Kafka, not inside the engine: with at most 2 open
// orders, 40 orders placed at once are taken two at a time (their partitions pause) while the
// payment and shipping replies keep flowing on their own topics; every order ends FULFILLED,
// once, and no placement is lost or applied twice.
TEST_F(ServeTest, PlacementsAboveMaxOpenOrdersWaitInKafkaAndAllComplete) {
  TestParticipants participants(broker_->bootstrap());
  auto server = start_server([](serve::ServeOptions& options) { options.max_open_orders = 2; });
  ASSERT_TRUE(server);
  constexpr int kOrders = 40;
  send("ff.inventory.commands", "sku-mo", receive_json("sku-mo", kOrders, "r-mo"));
  for (int i = 0; i < kOrders; ++i) {
    const std::string id = "mo-" + std::to_string(i);
    producer_->send("ff.orders.commands", id, place_json(id, "sku-mo", 1));
  }
  std::uint64_t open_max = 0;
  TestReader outcomes(broker_->bootstrap(), "ff.orders.outcomes");
  std::vector<Message> read;
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  while (read.size() < static_cast<std::size_t>(kOrders) && std::chrono::steady_clock::now() < deadline) {
    open_max = std::max(open_max, server->runtime().stats().open_orders);
    read = outcomes.read_until(kOrders, 100ms);  // everything read so far
  }
  ASSERT_EQ(read.size(), static_cast<std::size_t>(kOrders));
  std::map<std::string, int> per_order;
  for (const Message& m : read) {
    v1::OrderOutcome outcome;
    ASSERT_FALSE(events::decode(m.value, m.header("content-type"), outcome)) << m.value;
    EXPECT_EQ(outcome.state(), v1::FULFILLED) << outcome.order_id();
    ++per_order[outcome.order_id()];
  }
  EXPECT_EQ(per_order.size(), static_cast<std::size_t>(kOrders));
  for (const auto& [order, count] : per_order) EXPECT_EQ(count, 1) << order;
  EXPECT_LE(open_max, 2u);
  EXPECT_GT(server->runtime().stats().placements_refused, 0u) << "40 orders at once never met the bound of 2";
  EXPECT_EQ(server->ingress().stats().dlq, 0u);
  ASSERT_TRUE(server->runtime().wait_quiet(10s));
  auto sku = server->runtime().sku("sku-mo");
  ASSERT_TRUE(sku && sku->has_value());
  EXPECT_EQ((*sku)->on_hand, 0);
  EXPECT_EQ((*sku)->reserved, 0);
  EXPECT_EQ(server->runtime().stats().open_orders, 0u);
}

// Under the open-orders bound the backlog waits in Kafka, and the lag metric must show it:
// a paused partition is not fetched, so the end offset of its last fetch would stand still.
TEST_F(ServeTest, TheLagOfAPartitionPausedAtTheOpenOrdersBoundFollowsItsBacklog) {
  auto server = start_server([](serve::ServeOptions& options) {
    options.max_open_orders = 1;
    options.order_policy.authorize_timeout_ms = 600'000;  // lag-0 stays open (its deadline: 60 s)
  });
  ASSERT_TRUE(server);
  send("ff.inventory.commands", "sku-lag", receive_json("sku-lag", 100, "r-lag"));
  auto place = [&](int i) {
    const std::string id = "lag-" + std::to_string(i);
    ASSERT_TRUE(producer_->send("ff.orders.commands", id, place_json(id, "sku-lag", 1, "tok_silent"), {}, 0));
  };
  place(0);
  ASSERT_TRUE(eventually([&] { return server->runtime().stats().open_orders == 1; }, 30s));
  for (int i = 1; i <= 5; ++i) place(i);
  ASSERT_TRUE(eventually([&] { return server->runtime().stats().placements_refused > 0; }, 30s));
  for (int i = 6; i <= 25; ++i) place(i);
  // lag-0 is placed (acknowledged): the resume position is lag-1's offset, 1; the end is 26.
  auto lag_of_partition_0 = [&] {
    for (const auto& lag : server->ingress().lag()) {
      if (lag.topic == "ff.orders.commands" && lag.partition == 0) return lag.messages;
    }
    return std::int64_t{-1};
  };
  EXPECT_TRUE(eventually([&] { return lag_of_partition_0() == 25; }, 10s)) << lag_of_partition_0();
}

// --max-live: with a cap of 2 live actors per shard, 24 SKUs each received once end up
// mostly passivated, every one still holds its stock (restored from the journal on a read
// and on the next command), and a second receipt after passivation adds to the stock.
TEST_F(ServeTest, MaxLiveCapsLiveActorsAndPassivatedSkusKeepTheirStock) {
  auto server = start_server([](serve::ServeOptions& options) { options.max_live = 2; });
  ASSERT_TRUE(server);
  runtime::Runtime& runtime = server->runtime();
  constexpr int kSkus = 24;
  for (int i = 0; i < kSkus; ++i) {
    const std::string sku = "sku-ml-" + std::to_string(i);
    send("ff.inventory.commands", sku, receive_json(sku, 5, "r-ml-" + std::to_string(i)));
  }
  auto on_hand = [&](const std::string& sku) -> std::int64_t {
    auto state = runtime.sku(sku);
    return state && state->has_value() ? (*state)->on_hand : -1;
  };
  ASSERT_TRUE(eventually([&] { return on_hand("sku-ml-" + std::to_string(kSkus - 1)) == 5; }, 30s));
  ASSERT_TRUE(runtime.wait_quiet(10s));
  const std::uint64_t cap = 2ull * runtime.shard_count();
  EXPECT_TRUE(eventually([&] { return runtime.stats().live_entities <= cap; }, 20s))
      << runtime.stats().live_entities << " live, cap " << cap;
  for (int i = 0; i < kSkus; ++i) EXPECT_EQ(on_hand("sku-ml-" + std::to_string(i)), 5) << i;
  send("ff.inventory.commands", "sku-ml-0", receive_json("sku-ml-0", 3, "r-ml-again"));
  EXPECT_TRUE(eventually([&] { return on_hand("sku-ml-0") == 8; }, 30s)) << on_hand("sku-ml-0");
}

// The broker goes away for a few seconds while an order waits for its payment (its retry
// timer keeps resending the authorize into the outbox): ffe keeps its state, librdkafka
// retries, and once the broker is back the reply and a new order go through; nothing is
// lost and nothing reaches the DLQ.
TEST_F(ServeTest, ABrokerThatGoesAwayAndComesBackLosesNothing) {
  auto server = start_server([](serve::ServeOptions& options) {
    // Reconnect promptly once the broker is back (librdkafka's default backoff grows to 10 s).
    options.kafka_properties = {{"reconnect.backoff.max.ms", "500"}};
  });
  ASSERT_TRUE(server);
  send("ff.inventory.commands", "sku-1", receive_json("sku-1", 10, "r-1"));
  send("ff.orders.commands", "o-a", place_json("o-a", "sku-1", 1));
  runtime::Runtime& runtime = server->runtime();
  auto state_of = [&](const std::string& id) {
    auto order = runtime.order(id);
    return order && order->has_value() ? (*order)->state : v1::ORDER_STATE_UNSPECIFIED;
  };
  ASSERT_TRUE(eventually([&] { return state_of("o-a") == v1::AUTHORIZING; }, 20s));

  ASSERT_TRUE(broker_->set_available(false));
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(state_of("o-a"), v1::AUTHORIZING);  // the state is kept while the broker is away
  ASSERT_TRUE(broker_->set_available(true));

  // The participant answers the authorize (any copy of it: same commandId), and a new order
  // comes in.
  v1::PaymentReply reply;
  reply.set_command_id("o-a:authorize:1");
  reply.set_order_id("o-a");
  reply.set_status(v1::PaymentReply::APPROVED);
  reply.set_payment_id("p-a");
  ASSERT_TRUE(producer_->send("ff.payments.replies", "o-a", events::encode_json(reply)));
  ASSERT_TRUE(producer_->send("ff.orders.commands", "o-b", place_json("o-b", "sku-1", 1)));
  EXPECT_TRUE(eventually([&] { return state_of("o-a") == v1::SHIPPING; }, 30s)) << v1::OrderState_Name(state_of("o-a"));
  EXPECT_TRUE(eventually([&] { return state_of("o-b") == v1::AUTHORIZING; }, 30s));

  // The requests made while the broker was away went out once it was back.
  TestReader shipments(broker_->bootstrap(), "ff.shipments.requests");
  auto read = shipments.read_until(1, 30s);
  ASSERT_GE(read.size(), 1u);
  EXPECT_EQ(read[0].key, std::optional<std::string>("o-a"));
  TestReader payments(broker_->bootstrap(), "ff.payments.requests");
  std::set<std::string> ordered;
  for (const Message& m : payments.read_for(2s)) ordered.insert(m.key.value_or(""));
  EXPECT_TRUE(ordered.contains("o-a"));
  EXPECT_TRUE(ordered.contains("o-b"));
  EXPECT_EQ(server->ingress().stats().dlq, 0u);
  EXPECT_EQ(server->ingress().stats().ack_errors, 0u);
}

// A cluster without the Admin API (the embedded broker, `ffe broker`) under topics it does
// not have: the start fails naming the missing topics and how to make them, not with "no
// broker answered" about a broker that did answer (docs/kafka.md, start-up).
TEST_F(ServeTest, TopicsMissingOnAClusterThatCannotCreateThemAreNamedWithTheRemedy) {
  serve::ServeOptions options = serve_options();
  options.topic_prefix = "zz.";
  auto server = serve::Server::start(options);
  ASSERT_FALSE(server);
  const std::string message = server.status().to_string();
  EXPECT_NE(message.find("names no controller"), std::string::npos) << message;
  EXPECT_NE(message.find("ffe broker --topic-prefix zz."), std::string::npos) << message;
  EXPECT_EQ(message.find("no broker answered"), std::string::npos) << message;
}

// An address where no broker answers, on a new data dir without --shards (the partitions of
// the orders topic would give the shard count): named as such, not as a topic problem.
TEST_F(ServeTest, ABrokerThatDoesNotAnswerIsNamedAtTheFirstRequest) {
  serve::ServeOptions options = serve_options();
  options.brokers = "127.0.0.1:1";
  options.shards = 0;
  auto server = serve::Server::start(options);
  ASSERT_FALSE(server);
  const std::string message = server.status().to_string();
  EXPECT_NE(message.find("no broker answered at 127.0.0.1:1"), std::string::npos) << message;
}

// The admin HTTP address is bound first: a port in use fails the start before the data dir
// is made (so a retry may still choose its shard count), and never after the ingress began.
TEST_F(ServeTest, AnAdminPortInUseFailsTheStartBeforeTheDataDirIsMade) {
  auto first = start_server([&](serve::ServeOptions& options) {
    options.http = "127.0.0.1:0";
    options.data_dir = dir_.sub("first");
  });
  ASSERT_TRUE(first);
  const std::string taken = first->http_address();
  ASSERT_FALSE(taken.empty());
  serve::ServeOptions options = serve_options();
  options.http = taken;
  options.data_dir = dir_.sub("second");
  auto second = serve::Server::start(options);
  ASSERT_FALSE(second);
  EXPECT_NE(second.status().message().find("starting the admin HTTP server on " + taken), std::string::npos)
      << second.status().to_string();
  EXPECT_FALSE(std::filesystem::exists(dir_.sub("second"))) << "the data dir was made before the port was bound";
}

// A PostgreSQL --analytics that refuses the URL (here libpq itself: the port is not a
// number) fails the start before the data dir is made, like a busy admin port; a server that
// is merely down would not fail it (CdcPipelinePostgres tests).
TEST_F(ServeTest, ARefusedAnalyticsUrlFailsTheStartBeforeTheDataDirIsMade) {
  serve::ServeOptions options = serve_options();
  options.analytics = "postgresql://ffe@127.0.0.1:notaport/ffe";
  auto server = serve::Server::start(options);
  ASSERT_FALSE(server);
  EXPECT_EQ(server.status().code(), storage::StatusCode::kInvalidArgument) << server.status().to_string();
  EXPECT_NE(server.status().message().find("opening the analytics database"), std::string::npos)
      << server.status().to_string();
  EXPECT_FALSE(std::filesystem::exists(options.data_dir)) << "the data dir was made before the URL was refused";
}

TEST_F(ServeTest, AnExistingDataDirWithAnotherShardCountIsRefusedClearly) {
  { ASSERT_TRUE(start_server()); }
  serve::ServeOptions options;
  options.brokers = broker_->bootstrap();
  options.data_dir = dir_.sub("data");
  options.http = "";
  options.out = nullptr;
  options.shards = kPartitions + 1;
  auto server = serve::Server::start(options);
  ASSERT_FALSE(server);
  EXPECT_NE(server.status().message().find("shards"), std::string::npos) << server.status().to_string();
}

}  // namespace
}  // namespace ffe::kafka
