// The codec against the contract: the architecture's JSON examples decode field for field,
// encoding prints the contract's names and forms, the content-type header picks the format,
// and every kind of bad input becomes a precise one-line reason (never a crash or a throw).

#include "events/codec.h"

#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/unknown_field_set.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <string>

#include "events/limits.h"
#include "events/validate.h"
#include "ffe/v1/outcomes.pb.h"
#include "tests/events/contract_examples.h"

namespace ffe::events {
namespace {

using google::protobuf::util::MessageDifferencer;
namespace ex = examples;

constexpr std::string_view kProtobuf = "application/x-protobuf";

template <class T>
T decoded(const Decoded<T>& result) {
  if (const auto* error = std::get_if<DecodeError>(&result)) {
    ADD_FAILURE() << "decode failed: " << error->reason;
    return T{};
  }
  return std::get<T>(result);
}

template <class T>
std::string reason(const Decoded<T>& result) {
  if (const auto* error = std::get_if<DecodeError>(&result)) return error->reason;
  return "(decoded: " + std::get<T>(result).ShortDebugString() + ")";
}

template <class T>
T decode_as(std::string_view bytes, ContentType type = ContentType::kJson) {
  T message;
  if (auto error = decode(bytes, type, message))
    ADD_FAILURE() << "decode failed: " << error->reason;
  return message;
}

// --- the contract's examples ------------------------------------------------------------

TEST(CodecContractExamples, PlaceOrderDecodesFieldForField) {
  const v1::OrderCommand command = decoded(decode_order_command(ex::kPlaceOrder, std::nullopt));
  ASSERT_TRUE(command.has_place_order());
  const v1::PlaceOrder& order = command.place_order();
  EXPECT_EQ(order.order_id(), "o-1001");
  EXPECT_EQ(order.customer_id(), "c-7");
  ASSERT_EQ(order.lines_size(), 1);
  EXPECT_EQ(order.lines(0).sku(), "sku-1");
  EXPECT_EQ(order.lines(0).qty(), 2);
  EXPECT_EQ(order.lines(0).unit_price_cents(), 1299);
  EXPECT_EQ(order.payment().method(), "card");
  EXPECT_EQ(order.payment().token(), "tok_visa");
  EXPECT_EQ(order.ship_to().name(), "A. Customer");
  EXPECT_EQ(order.ship_to().line1(), "1 Main St");
  EXPECT_EQ(order.ship_to().city(), "Springfield");
  EXPECT_EQ(order.ship_to().country(), "US");
  EXPECT_EQ(order.deadline_ms(), 30000);
  EXPECT_EQ(order.currency(), "");  // absent: the decider applies USD
}

TEST(CodecContractExamples, CancelOrderDecodes) {
  const v1::OrderCommand command = decoded(decode_order_command(ex::kCancelOrder, std::nullopt));
  ASSERT_TRUE(command.has_cancel_order());
  EXPECT_EQ(command.cancel_order().order_id(), "o-1001");
  EXPECT_EQ(command.cancel_order().reason(), "customer request");
}

TEST(CodecContractExamples, ReceiveStockDecodes) {
  const auto command = decoded(decode_inventory_command(ex::kReceiveStock, std::nullopt));
  ASSERT_TRUE(command.has_receive_stock());
  EXPECT_EQ(command.receive_stock().sku(), "sku-1");
  EXPECT_EQ(command.receive_stock().qty(), 100);
  EXPECT_EQ(command.receive_stock().receipt_id(), "r-77");
}

TEST(CodecContractExamples, AdjustStockDecodesANegativeDelta) {
  const auto command = decoded(decode_inventory_command(ex::kAdjustStock, std::nullopt));
  ASSERT_TRUE(command.has_adjust_stock());
  EXPECT_EQ(command.adjust_stock().sku(), "sku-1");
  EXPECT_EQ(command.adjust_stock().delta(), -3);
  EXPECT_EQ(command.adjust_stock().reason(), "cycle count");
  EXPECT_EQ(command.adjust_stock().adjustment_id(), "a-9");
}

TEST(CodecContractExamples, PaymentRequestsDecode) {
  const auto authorize = decoded(decode_payment_request(ex::kAuthorize, std::nullopt));
  EXPECT_EQ(authorize.command_id(), "o-1001:authorize:1");
  EXPECT_EQ(authorize.order_id(), "o-1001");
  ASSERT_TRUE(authorize.has_authorize());
  EXPECT_EQ(authorize.authorize().amount_cents(), 2598);
  EXPECT_EQ(authorize.authorize().currency(), "USD");
  EXPECT_EQ(authorize.authorize().token(), "tok_visa");

  const auto void_request = decoded(decode_payment_request(ex::kVoid, std::nullopt));
  EXPECT_EQ(void_request.command_id(), "o-1001:void:1");
  ASSERT_TRUE(void_request.has_void_());
  EXPECT_EQ(void_request.void_().payment_id(), "p-1");
  EXPECT_EQ(void_request.void_().authorize_command_id(), "o-1001:authorize:1");

  const auto refund = decoded(decode_payment_request(ex::kRefund, std::nullopt));
  EXPECT_EQ(refund.command_id(), "o-1001:refund:1");
  ASSERT_TRUE(refund.has_refund());
  EXPECT_EQ(refund.refund().payment_id(), "p-1");
  EXPECT_EQ(refund.refund().amount_cents(), 2598);
}

TEST(CodecContractExamples, PaymentReplyDecodes) {
  const auto reply = decoded(decode_payment_reply(ex::kPaymentReply, std::nullopt));
  EXPECT_EQ(reply.command_id(), "o-1001:authorize:1");
  EXPECT_EQ(reply.order_id(), "o-1001");
  EXPECT_EQ(reply.status(), v1::PaymentReply::APPROVED);
  EXPECT_EQ(reply.payment_id(), "p-1");
  EXPECT_EQ(reply.reason(), "");
}

TEST(CodecContractExamples, EveryPaymentStatusNameDecodes) {
  for (const auto& [name, status] : {std::pair{"APPROVED", v1::PaymentReply::APPROVED},
                                     std::pair{"DECLINED", v1::PaymentReply::DECLINED},
                                     std::pair{"FAILED", v1::PaymentReply::FAILED}}) {
    const std::string json =
        std::string(R"({"commandId": "o-1:authorize:1", "orderId": "o-1", "status": ")") + name +
        R"(", "reason": "card expired"})";
    EXPECT_EQ(decoded(decode_payment_reply(json, std::nullopt)).status(), status) << name;
  }
}

TEST(CodecContractExamples, AnEnumMayBeItsNumberBareOrQuotedAsProtobufReadsIt) {
  auto status_of = [](const std::string& value) {
    return decode_payment_reply(R"({"commandId": "o-1:authorize:1", "orderId": "o-1", "status": )" + value + "}",
                                std::nullopt);
  };
  EXPECT_EQ(decoded(status_of("1")).status(), v1::PaymentReply::APPROVED);
  EXPECT_EQ(decoded(status_of(R"("1")")).status(), v1::PaymentReply::APPROVED);
  EXPECT_EQ(decoded(status_of(R"("2")")).status(), v1::PaymentReply::DECLINED);
  // A name must be exact, and a quoted number must be one.
  EXPECT_NE(reason(status_of(R"("approved")")).find(R"(unknown value "approved")"), std::string::npos);
  EXPECT_NE(reason(status_of(R"("1x")")).find(R"(unknown value "1x")"), std::string::npos);
}

TEST(CodecContractExamples, ShipmentRequestsDecode) {
  const auto create = decoded(decode_shipment_request(ex::kCreateShipment, std::nullopt));
  EXPECT_EQ(create.command_id(), "o-1001:ship:1");
  ASSERT_TRUE(create.has_create());
  ASSERT_EQ(create.create().lines_size(), 1);
  EXPECT_EQ(create.create().lines(0).sku(), "sku-1");
  EXPECT_EQ(create.create().lines(0).qty(), 2);
  EXPECT_EQ(create.create().ship_to().country(), "US");

  const auto cancel = decoded(decode_shipment_request(ex::kCancelShipment, std::nullopt));
  EXPECT_EQ(cancel.command_id(), "o-1001:cancel-shipment:1");
  ASSERT_TRUE(cancel.has_cancel());
  EXPECT_EQ(cancel.cancel().shipment_id(), "s-1");
  EXPECT_EQ(cancel.cancel().create_command_id(), "o-1001:ship:1");
}

TEST(CodecContractExamples, ShipmentReplyDecodes) {
  const auto reply = decoded(decode_shipment_reply(ex::kShipmentReply, std::nullopt));
  EXPECT_EQ(reply.command_id(), "o-1001:ship:1");
  EXPECT_EQ(reply.status(), v1::ShipmentReply::CREATED);
  EXPECT_EQ(reply.shipment_id(), "s-1");
  for (const char* name : {"FAILED", "CANCELLED"}) {
    const std::string json =
        std::string(R"({"commandId": "o-1:ship:1", "orderId": "o-1", "status": ")") + name + "\"}";
    EXPECT_TRUE(
        std::holds_alternative<v1::ShipmentReply>(decode_shipment_reply(json, std::nullopt)))
        << name;
  }
}

TEST(CodecContractExamples, OutcomeDecodesWithRevisionAsString) {
  const auto outcome = decode_as<v1::OrderOutcome>(ex::kOutcome);
  EXPECT_EQ(outcome.order_id(), "o-1001");
  EXPECT_EQ(outcome.state(), v1::FULFILLED);
  EXPECT_EQ(outcome.reason(), "");
  EXPECT_EQ(outcome.shard(), 3);
  EXPECT_EQ(outcome.revision(), 4812);
  ASSERT_EQ(outcome.lines_size(), 1);
  EXPECT_EQ(outcome.lines(0).qty(), 2);
  EXPECT_EQ(outcome.payment_id(), "p-1");
  EXPECT_EQ(outcome.shipment_id(), "s-1");
}

TEST(CodecContractExamples, Int64ArrivesAsStringOrNumber) {
  const auto as_numbers = decode_as<v1::OrderOutcome>(
      R"({"orderId": "o-1", "state": "FULFILLED", "shard": 3, "revision": 4812})");
  const auto as_strings = decode_as<v1::OrderOutcome>(
      R"({"orderId": "o-1", "state": "FULFILLED", "shard": "3", "revision": "4812"})");
  EXPECT_EQ(as_numbers.revision(), 4812);
  EXPECT_TRUE(MessageDifferencer::Equals(as_numbers, as_strings));

  const auto line = decoded(decode_order_command(
      R"({"placeOrder": {"orderId": "o-1", "lines": [{"sku": "s", "qty": "2", "unitPriceCents": "1299"}]}})",
      std::nullopt));
  EXPECT_EQ(line.place_order().lines(0).qty(), 2);
  EXPECT_EQ(line.place_order().lines(0).unit_price_cents(), 1299);
}

TEST(CodecContractExamples, ProtoFieldNamesAreAcceptedToo) {
  // The canonical mapping lets a reader take the proto spelling as well.
  const auto command = decoded(decode_order_command(
      R"({"cancel_order": {"order_id": "o-1001", "reason": "r"}})", std::nullopt));
  EXPECT_EQ(command.cancel_order().order_id(), "o-1001");
}

TEST(CodecContractExamples, UnknownFieldsAreIgnored) {
  // A newer producer may add optional fields, with any JSON in them.
  const auto command = decoded(decode_order_command(
      R"({"traceId": "t-1", "cancelOrder": {"orderId": "o-1001", "priority": {"level": [1, 2, {"x": null}]},
          "note": "n"}})",
      std::nullopt));
  EXPECT_EQ(command.cancel_order().order_id(), "o-1001");
}

TEST(CodecContractExamples, UnknownFieldsInBinaryAreDroppedAsJsonIgnoresThem) {
  // A binary PlaceOrder from a newer producer: unknown fields at the top, in placeOrder and
  // in shipTo. Decoded, it is the same message as without them, so nothing unknown is
  // journaled or passed on to a participant.
  const auto known = decoded(decode_order_command(examples::kPlaceOrder, std::nullopt));
  v1::OrderCommand extended = known;
  auto unknown_of = [](google::protobuf::Message& message) {
    return message.GetReflection()->MutableUnknownFields(&message);
  };
  unknown_of(extended)->AddVarint(900, 7);
  unknown_of(*extended.mutable_place_order())->AddLengthDelimited(901, "more");
  unknown_of(*extended.mutable_place_order()->mutable_ship_to())->AddLengthDelimited(902, std::string(1000, 's'));
  const std::string bytes = extended.SerializeAsString();
  ASSERT_GT(bytes.size(), known.SerializeAsString().size() + 1000);

  const auto command = decoded(decode_order_command(bytes, kProtobuf));
  EXPECT_TRUE(MessageDifferencer::Equals(command, known));
  EXPECT_EQ(command.SerializeAsString(), known.SerializeAsString());
}

TEST(CodecContractExamples, NullMeansAbsent) {
  const auto command = decoded(decode_order_command(
      R"({"cancelOrder": {"orderId": "o-1001", "reason": null}, "placeOrder": null})",
      std::nullopt));
  ASSERT_TRUE(command.has_cancel_order());
  EXPECT_EQ(command.cancel_order().reason(), "");
}

// --- encoding ---------------------------------------------------------------------------

v1::OrderOutcome contract_outcome() {
  v1::OrderOutcome outcome;
  outcome.set_order_id("o-1001");
  outcome.set_state(v1::FULFILLED);
  outcome.set_shard(3);
  outcome.set_revision(4812);
  v1::ItemLine* line = outcome.add_lines();
  line->set_sku("sku-1");
  line->set_qty(2);
  outcome.set_payment_id("p-1");
  outcome.set_shipment_id("s-1");
  return outcome;
}

TEST(CodecEncode, OutcomeHasTheContractsNamesAndForms) {
  // int64 as strings, enums by name, "reason": "" printed though it is the default.
  EXPECT_EQ(encode_json(contract_outcome()),
            R"({"orderId":"o-1001","state":"FULFILLED","reason":"","shard":3,"revision":"4812",)"
            R"("lines":[{"sku":"sku-1","qty":"2"}],"paymentId":"p-1","shipmentId":"s-1"})");
}

TEST(CodecEncode, RejectedOutcomePrintsEmptyIdsAndNoLines) {
  v1::OrderOutcome outcome;
  outcome.set_order_id("o-9");
  outcome.set_state(v1::REJECTED);
  outcome.set_reason("placeOrder.lines[0].qty: must be between 1 and 1000000 (got 0)");
  outcome.set_shard(1);
  outcome.set_revision(7);
  EXPECT_EQ(
      encode_json(outcome),
      R"j({"orderId":"o-9","state":"REJECTED","reason":"placeOrder.lines[0].qty: must be between 1 )j"
      R"j(and 1000000 (got 0)","shard":1,"revision":"7","lines":[],"paymentId":"","shipmentId":""})j");
}

TEST(CodecEncode, PaymentRequestsHaveTheContractsNames) {
  v1::PaymentRequest authorize;
  authorize.set_command_id("o-1001:authorize:1");
  authorize.set_order_id("o-1001");
  authorize.mutable_authorize()->set_amount_cents(2598);
  authorize.mutable_authorize()->set_currency("USD");
  authorize.mutable_authorize()->set_token("tok_visa");
  EXPECT_EQ(encode_json(authorize),
            R"({"commandId":"o-1001:authorize:1","orderId":"o-1001",)"
            R"("authorize":{"amountCents":"2598","currency":"USD","token":"tok_visa"}})");

  v1::PaymentRequest void_request;
  void_request.set_command_id("o-1001:void:1");
  void_request.set_order_id("o-1001");
  void_request.mutable_void_()->set_authorize_command_id("o-1001:authorize:1");
  // Never answered: paymentId is printed, empty.
  EXPECT_EQ(encode_json(void_request),
            R"({"commandId":"o-1001:void:1","orderId":"o-1001",)"
            R"("void":{"paymentId":"","authorizeCommandId":"o-1001:authorize:1"}})");
}

TEST(CodecEncode, ShipmentRequestHasTheContractsNames) {
  const auto create = decoded(decode_shipment_request(ex::kCreateShipment, std::nullopt));
  EXPECT_EQ(
      encode_json(create),
      R"({"commandId":"o-1001:ship:1","orderId":"o-1001","create":{"lines":[{"sku":"sku-1","qty":"2"}],)"
      R"("shipTo":{"name":"A. Customer","line1":"1 Main St","city":"Springfield","country":"US",)"
      R"("line2":"","postalCode":"","region":""}}})");
}

TEST(CodecEncode, RepliesPrintAnEmptyReason) {
  v1::PaymentReply reply;
  reply.set_command_id("o-1001:authorize:1");
  reply.set_order_id("o-1001");
  reply.set_status(v1::PaymentReply::APPROVED);
  reply.set_payment_id("p-1");
  EXPECT_EQ(
      encode_json(reply),
      R"({"commandId":"o-1001:authorize:1","orderId":"o-1001","status":"APPROVED","paymentId":"p-1","reason":""})");

  v1::ShipmentReply shipment;
  shipment.set_command_id("o-1001:ship:1");
  shipment.set_order_id("o-1001");
  shipment.set_status(v1::ShipmentReply::CREATED);
  shipment.set_shipment_id("s-1");
  EXPECT_EQ(
      encode_json(shipment),
      R"({"commandId":"o-1001:ship:1","orderId":"o-1001","status":"CREATED","shipmentId":"s-1","reason":""})");
}

TEST(CodecEncode, EncodeFollowsTheContentType) {
  const v1::OrderOutcome outcome = contract_outcome();
  EXPECT_EQ(encode(outcome, ContentType::kJson), encode_json(outcome));
  EXPECT_EQ(encode(outcome, ContentType::kProtobuf), outcome.SerializeAsString());
  EXPECT_EQ(encode_binary(outcome), outcome.SerializeAsString());
}

template <class T>
void expect_round_trips(std::string_view json) {
  SCOPED_TRACE(json);
  const T from_json = decode_as<T>(json);
  const T from_binary = decode_as<T>(encode_binary(from_json), ContentType::kProtobuf);
  EXPECT_TRUE(MessageDifferencer::Equals(from_json, from_binary));
  const std::string printed = encode_json(from_binary);
  const T again = decode_as<T>(printed);
  EXPECT_TRUE(MessageDifferencer::Equals(from_json, again));
  EXPECT_EQ(encode_json(again), printed);  // printing is stable
}

TEST(CodecEncode, JsonToBinaryToJsonPreservesEveryContractMessage) {
  for (auto json : ex::kOrderCommands) expect_round_trips<v1::OrderCommand>(json);
  for (auto json : ex::kInventoryCommands) expect_round_trips<v1::InventoryCommand>(json);
  for (auto json : ex::kPaymentRequests) expect_round_trips<v1::PaymentRequest>(json);
  for (auto json : ex::kShipmentRequests) expect_round_trips<v1::ShipmentRequest>(json);
  expect_round_trips<v1::PaymentReply>(ex::kPaymentReply);
  expect_round_trips<v1::ShipmentReply>(ex::kShipmentReply);
  expect_round_trips<v1::OrderOutcome>(ex::kOutcome);
}

TEST(CodecEncode, TextOutsideAsciiSurvivesBothFormats) {
  const auto command = decoded(decode_order_command(
      R"({"cancelOrder": {"orderId": "o-1", "reason": "Kunde möchte nicht 🙂 \u00e9"}})",
      std::nullopt));
  EXPECT_EQ(command.cancel_order().reason(), "Kunde möchte nicht 🙂 é");
  expect_round_trips<v1::OrderCommand>(encode_json(command));
}

// --- content types ----------------------------------------------------------------------

ContentType content_type(std::optional<std::string_view> header) {
  auto result = parse_content_type(header);
  if (const auto* error = std::get_if<DecodeError>(&result)) {
    ADD_FAILURE() << "header " << (header ? *header : "(absent)") << ": " << error->reason;
    return ContentType::kJson;
  }
  return std::get<ContentType>(result);
}

TEST(CodecContentTypes, AbsentOrEmptyMeansJson) {
  EXPECT_EQ(content_type(std::nullopt), ContentType::kJson);
  EXPECT_EQ(content_type(""), ContentType::kJson);
  EXPECT_EQ(content_type("  "), ContentType::kJson);
}

TEST(CodecContentTypes, NamesAreCaseInsensitiveAndParametersIgnored) {
  EXPECT_EQ(content_type("application/json"), ContentType::kJson);
  EXPECT_EQ(content_type("Application/JSON; charset=utf-8"), ContentType::kJson);
  EXPECT_EQ(content_type(" application/json ;charset=UTF-8"), ContentType::kJson);
  EXPECT_EQ(content_type("application/x-protobuf"), ContentType::kProtobuf);
  EXPECT_EQ(content_type("APPLICATION/X-PROTOBUF"), ContentType::kProtobuf);
  EXPECT_EQ(content_type("application/protobuf"), ContentType::kProtobuf);
  EXPECT_EQ(content_type("application/vnd.google.protobuf; proto=ffe.v1.OrderCommand"),
            ContentType::kProtobuf);
}

TEST(CodecContentTypes, AnyOtherTypeIsAnError) {
  for (std::string_view header : {"text/plain", "application/xml", "application/json-seq", "json",
                                  "application/x-protobuf2"}) {
    auto result = parse_content_type(header);
    ASSERT_TRUE(std::holds_alternative<DecodeError>(result)) << header;
    EXPECT_EQ(std::get<DecodeError>(result).reason,
              "unsupported content-type \"" + std::string(header) +
                  "\": expected application/json or application/x-protobuf");
  }
}

TEST(CodecContentTypes, UnknownTypeFailsTheDecodeWithItsName) {
  EXPECT_EQ(reason(decode_order_command(ex::kCancelOrder, "text/plain")),
            "unsupported content-type \"text/plain\": expected application/json or "
            "application/x-protobuf");
}

TEST(CodecContentTypes, AHostileHeaderIsQuotedShortAndPrintable) {
  const std::string header = "text/\x01\n" + std::string(1000, 'x');
  const std::string text = reason(decode_order_command(ex::kCancelOrder, header));
  EXPECT_EQ(text.rfind("unsupported content-type \"text/\\x01\\nxxx", 0), 0u) << text;
  EXPECT_LT(text.size(), 160u);
}

TEST(CodecContentTypes, NamesForHeaders) {
  EXPECT_EQ(content_type_name(ContentType::kJson), "application/json");
  EXPECT_EQ(content_type_name(ContentType::kProtobuf), "application/x-protobuf");
  EXPECT_EQ(content_type(content_type_name(ContentType::kProtobuf)), ContentType::kProtobuf);
}

TEST(CodecContentTypes, BinaryWithTheProtobufHeaderDecodes) {
  const auto from_json = decoded(decode_order_command(ex::kPlaceOrder, std::nullopt));
  for (std::string_view header :
       {"application/x-protobuf", "application/protobuf", "application/vnd.google.protobuf"}) {
    const auto from_binary = decoded(decode_order_command(encode_binary(from_json), header));
    EXPECT_TRUE(MessageDifferencer::Equals(from_json, from_binary)) << header;
  }
}

TEST(CodecContentTypes, JsonWithTheProtobufHeaderFailsCleanly) {
  EXPECT_EQ(reason(decode_order_command(ex::kPlaceOrder, kProtobuf)),
            "invalid protobuf: cannot parse as ffe.v1.OrderCommand");
  EXPECT_EQ(reason(decode_payment_reply(ex::kPaymentReply, kProtobuf)),
            "invalid protobuf: cannot parse as ffe.v1.PaymentReply");
}

TEST(CodecContentTypes, BinaryWithoutAHeaderIsReadAsJsonAndFails) {
  const auto command = decoded(decode_order_command(ex::kCancelOrder, std::nullopt));
  const std::string text = reason(decode_order_command(encode_binary(command), std::nullopt));
  EXPECT_EQ(text.rfind("invalid JSON: ", 0), 0u) << text;
}

// --- what decode_order_command / decode_inventory_command check, and what they leave ---------

TEST(CodecInputCommands, UnknownCommandIsRefused) {
  for (std::string_view json :
       {R"({"shipOrder": {"orderId": "o-1"}})", "{}", R"({"placeOrder": null})"}) {
    EXPECT_EQ(reason(decode_order_command(json, std::nullopt)),
              "unknown command: expected one of placeOrder, cancelOrder")
        << json;
  }
  EXPECT_EQ(reason(decode_inventory_command(R"({"countStock": {"sku": "sku-1"}})", std::nullopt)),
            "unknown command: expected one of receiveStock, adjustStock");
}

TEST(CodecInputCommands, UnknownCommandInBinaryIsRefused) {
  // A future command in field 3 of the oneof: an older ffe skips it, then finds no command.
  const std::string future_command("\x1a\x05\x0a\x03o-1", 7);
  EXPECT_EQ(reason(decode_order_command(future_command, kProtobuf)),
            "unknown command: expected one of placeOrder, cancelOrder");
}

TEST(CodecInputCommands, AnUnusableIdIsRefusedWithItsPath) {
  EXPECT_EQ(reason(decode_order_command(R"({"placeOrder": {"customerId": "c-7"}})", std::nullopt)),
            "placeOrder.orderId: is required");
  EXPECT_EQ(reason(decode_order_command(R"({"cancelOrder": {"orderId": "o:1"}})", std::nullopt)),
            "cancelOrder.orderId: must match [A-Za-z0-9][A-Za-z0-9._-]{0,63} (got \"o:1\")");
  EXPECT_EQ(reason(decode_inventory_command(R"({"receiveStock": {"sku": "sku 1\n", "qty": 1}})",
                                            std::nullopt)),
            "receiveStock.sku: must match [A-Za-z0-9][A-Za-z0-9._-]{0,63} (got \"sku 1\\n\")");
  EXPECT_EQ(reason(decode_inventory_command(R"({"adjustStock": {"delta": 1}})", std::nullopt)),
            "adjustStock.sku: is required");
}

TEST(CodecInputCommands, APlaceOrderWithAUsableIdButBadLinesReachesTheDecider) {
  // Full validation is the decider's: this becomes a journaled REJECTED order, not a DLQ entry.
  const auto command = decode_order_command(
      R"({"placeOrder": {"orderId": "o-1", "lines": [{"sku": "sku-1", "qty": 0}]}})", std::nullopt);
  ASSERT_TRUE(std::holds_alternative<v1::OrderCommand>(command)) << reason(command);
  EXPECT_EQ(std::get<v1::OrderCommand>(command).place_order().lines(0).qty(), 0);
}

TEST(CodecInputCommands, ACancelOrderThatBreaksARuleIsRefusedWithItsPath) {
  // A cancel has no outcome of its own to carry a refusal: one that breaks a rule must end
  // in ff.dlq (invariant 6), so the codec refuses it whole, not only by its id.
  EXPECT_EQ(reason(decode_order_command(R"({"cancelOrder": {"orderId": "o-1", "reason": "changed\nmind"}})",
                                        std::nullopt)),
            "cancelOrder.reason: must not contain control characters (got \"changed\\nmind\")");
  const std::string long_reason(300, 'x');
  EXPECT_NE(reason(decode_order_command(
                       R"({"cancelOrder": {"orderId": "o-1", "reason": ")" + long_reason + R"("}})", std::nullopt))
                .find("cancelOrder.reason: "),
            std::string::npos);
  // Within the rules (no reason at all, or one line of text), it reaches the order.
  for (const char* ok : {R"({"cancelOrder": {"orderId": "o-1"}})",
                         R"({"cancelOrder": {"orderId": "o-1", "reason": "changed mind"}})"}) {
    EXPECT_TRUE(std::holds_alternative<v1::OrderCommand>(decode_order_command(ok, std::nullopt))) << ok;
  }
}

TEST(CodecInputCommands, AnInventoryCommandWithAUsableSkuButBadQtyReachesTheDecider) {
  const auto command =
      decode_inventory_command(R"({"receiveStock": {"sku": "sku-1", "qty": 0}})", std::nullopt);
  EXPECT_TRUE(std::holds_alternative<v1::InventoryCommand>(command)) << reason(command);
}

// --- bad input: each has a precise reason -------------------------------------------------

struct BadInput {
  const char* name;
  std::string bytes;
  std::string expected;  // the whole reason, or its start when `prefix_only`
  bool prefix_only = false;
};

std::string nested_arrays(int depth) {
  return R"({"cancelOrder": {"orderId": "o-1", "x": )" + std::string(depth, '[') +
         std::string(depth, ']') + "}}";
}

std::vector<BadInput> bad_order_commands() {
  const std::string too_big = R"({"cancelOrder": {"orderId": "o-1", "reason": ")" +
                              std::string(limits::message_bytes_max, 'a') + "\"}}";
  std::string too_deep = "invalid JSON: cancelOrder.x";
  for (int level = 3; level <= limits::json_depth_max; ++level) too_deep += "[0]";
  too_deep += ": nested deeper than 16 levels (at byte 54)";
  return {
      {"empty", "", "invalid JSON: empty message"},
      {"only spaces", "  \n ", "invalid JSON: no value"},
      {"not JSON", "hello", "invalid JSON: the top level must be an object (at byte 0)"},
      {"an array", "[]", "invalid JSON: the top level must be an object (at byte 0)"},
      {"truncated", R"({"cancelOrder": {"orderId": "o-1")",
       "invalid JSON: cancelOrder: expected ',' or '}' (at byte 33)"},
      {"unterminated string", R"({"cancelOrder": {"orderId": "o-1)",
       "invalid JSON: cancelOrder.orderId: unterminated string (at byte 32)"},
      {"trailing comma", R"({"cancelOrder": {"orderId": "o-1",}})",
       "invalid JSON: cancelOrder: expected a key in double quotes (at byte 34)"},
      {"single quotes", R"({'cancelOrder': {}})",
       "invalid JSON: expected a key in double quotes (at byte 1)"},
      {"trailing data", R"({"cancelOrder": {"orderId": "o-1"}} {})",
       "invalid JSON: unexpected data after the object (at byte 36)"},
      {"raw newline in a string", "{\"cancelOrder\": {\"orderId\": \"o-1\", \"reason\": \"a\nb\"}}",
       "invalid JSON: cancelOrder.reason: control character in a string (escape it) (at byte 47)"},
      {"bad escape", R"({"cancelOrder": {"orderId": "o\q"}})",
       "invalid JSON: cancelOrder.orderId: invalid escape in a string (at byte 30)"},
      {"lone surrogate", R"({"cancelOrder": {"orderId": "\ud800"}})",
       "invalid JSON: cancelOrder.orderId: \\u escape of a lone high surrogate (at byte 29)"},
      {"NaN", R"({"placeOrder": {"orderId": "o-1", "deadlineMs": NaN}})",
       "invalid JSON: placeOrder.deadlineMs: expected a value (at byte 48)"},
      {"qty as \"abc\"",
       R"({"placeOrder": {"orderId": "o-1", "lines": [{"sku": "sku-1", "qty": "abc"}]}})",
       "invalid JSON: (place_order.lines[0].qty): invalid value \"abc\" for type TYPE_INT64"},
      {"qty as 2.5",
       R"({"placeOrder": {"orderId": "o-1", "lines": [{"sku": "sku-1", "qty": 2.5}]}})",
       "invalid JSON: (place_order.lines[0].qty): invalid value 2.5 for type TYPE_INT64"},
      {"qty beyond int64",
       R"({"placeOrder": {"orderId": "o-1", "lines": [{"sku": "sku-1", "qty": 9223372036854775808}]}})",
       "invalid JSON: (place_order.lines[0].qty): invalid value 9223372036854775808 for type "
       "TYPE_INT64"},
      {"qty as an object", R"({"placeOrder": {"orderId": "o-1", "lines": [{"qty": {}}]}})",
       "invalid JSON: placeOrder.lines[0].qty: expected a number, got an object (at byte 52)"},
      {"lines as object",
       R"({"placeOrder": {"orderId": "o-1", "lines": {"sku": "sku-1", "qty": 1}}})",
       "invalid JSON: placeOrder.lines: expected an array, got an object (at byte 43)"},
      {"orderId as a number", R"({"cancelOrder": {"orderId": 1001}})",
       "invalid JSON: cancelOrder.orderId: expected a string, got a number (at byte 28)"},
      {"payment as a string", R"({"placeOrder": {"orderId": "o-1", "payment": "card"}})",
       "invalid JSON: placeOrder.payment: expected an object, got a string (at byte 45)"},
      {"command as an array", R"({"placeOrder": []})",
       "invalid JSON: placeOrder: expected an object, got an array (at byte 15)"},
      {"two commands", R"({"placeOrder": {"orderId": "o-1"}, "cancelOrder": {"orderId": "o-1"}})",
       "invalid JSON: cancelOrder: cannot be set together with placeOrder (at byte 35)"},
      {"a key twice", R"({"cancelOrder": {"orderId": "o-1", "orderId": "o-2"}})",
       "invalid JSON: cancelOrder.orderId: given twice (at byte 35)"},
      {"a key twice in two spellings", R"({"cancelOrder": {"orderId": "o-1", "order_id": "o-2"}})",
       "invalid JSON: cancelOrder.orderId: given twice (at byte 35)"},
      {"a key twice in an unknown field",
       R"({"cancelOrder": {"orderId": "o-1", "x": {"a": 1, "a": 2}}})",
       "invalid JSON: cancelOrder.x.a: given twice (at byte 49)"},
      {"an unknown key twice", R"({"v": 1, "cancelOrder": {"orderId": "o-1"}, "v": 2})",
       "invalid JSON: v: given twice (at byte 44)"},
      {"unknown command", R"({"shipOrder": {"orderId": "o-1"}})",
       "unknown command: expected one of placeOrder, cancelOrder"},
      {"empty object", "{}", "unknown command: expected one of placeOrder, cancelOrder"},
      {"huge payload", too_big,
       "message is " + std::to_string(too_big.size()) + " bytes, limit 65536"},
      // The outer object is level 1, cancelOrder level 2, so 15 arrays make 17 levels.
      {"deep nesting, 17 levels", nested_arrays(limits::json_depth_max - 1), too_deep},
      {"deep nesting, 10k '['", nested_arrays(10'000), too_deep},
      {"10k '[' alone", std::string(10'000, '['),
       "invalid JSON: the top level must be an object (at byte 0)"},
      {"invalid UTF-8", "{\"cancelOrder\": {\"orderId\": \"o-1\", \"reason\": \"caf\xe9\"}}",
       "invalid JSON: not valid UTF-8 (at byte 49)"},
      {"overlong UTF-8", "{\"cancelOrder\": {\"orderId\": \"\xc0\xaf\"}}",
       "invalid JSON: not valid UTF-8 (at byte 29)"},
      {"UTF-8 surrogate", "{\"cancelOrder\": {\"orderId\": \"\xed\xa0\x80\"}}",
       "invalid JSON: not valid UTF-8 (at byte 29)"},
      {"orderId with a control character", R"({"cancelOrder": {"orderId": "o-1\u0007"}})",
       "cancelOrder.orderId: must match [A-Za-z0-9][A-Za-z0-9._-]{0,63} (got \"o-1\\x07\")"},
      {"orderId with a space", R"({"cancelOrder": {"orderId": "o 1"}})",
       "cancelOrder.orderId: must match [A-Za-z0-9][A-Za-z0-9._-]{0,63} (got \"o 1\")"},
      {"orderId with ':'", R"({"placeOrder": {"orderId": "o-1:authorize"}})",
       "placeOrder.orderId: must match [A-Za-z0-9][A-Za-z0-9._-]{0,63} (got \"o-1:authorize\")"},
      {"orderId too long", R"({"cancelOrder": {"orderId": ")" + std::string(65, 'o') + "\"}}",
       "cancelOrder.orderId: must be at most 64 characters (got 65)"},
      {"orderId empty", R"({"cancelOrder": {"orderId": ""}})", "cancelOrder.orderId: is required"},
  };
}

TEST(CodecBadInput, EveryBadOrderCommandHasAPreciseReason) {
  for (const BadInput& input : bad_order_commands()) {
    EXPECT_EQ(reason(decode_order_command(input.bytes, std::nullopt)), input.expected)
        << input.name;
  }
}

// The contract's PlaceOrder with one piece replaced.
std::string place_order_with(std::string_view from, std::string_view to) {
  std::string json(ex::kPlaceOrder);
  const std::size_t at = json.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return at == std::string::npos ? json : json.replace(at, from.size(), to);
}

std::string lines_json(int count) {
  std::string lines = "[";
  for (int i = 0; i < count; ++i) {
    lines += (i ? ", " : "") + std::string(R"({"sku": "sku-)") + std::to_string(i) +
             R"(", "qty": 1, "unitPriceCents": 5})";
  }
  return lines + "]";
}

TEST(CodecBadInput, RuleBreakingOrdersReachTheDeciderWithAPreciseReason) {
  // These decode (the orderId is usable: they become REJECTED orders, not DLQ entries), and
  // validation, which the order decider runs, names the broken rule.
  const std::string line = R"([{"sku": "sku-1", "qty": 2, "unitPriceCents": 1299}])";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {place_order_with(R"("qty": 2)", R"("qty": -2)"),
       "placeOrder.lines[0].qty: must be between 1 and 1000000 (got -2)"},
      {place_order_with(R"("qty": 2)", R"("qty": "0")"),
       "placeOrder.lines[0].qty: must be between 1 and 1000000 (got 0)"},
      {place_order_with(line, "[]"), "placeOrder.lines: must have between 1 and 100 lines (got 0)"},
      {place_order_with(line, lines_json(101)),
       "placeOrder.lines: must have between 1 and 100 lines (got 101)"},
      {place_order_with(line, R"([{"sku": "a", "qty": 1}, {"sku": "b", "qty": 1},
                                  {"sku": "c", "qty": 1}, {"sku": "b", "qty": 1}])"),
       "placeOrder.lines[3].sku: duplicate of lines[1]"},
      {place_order_with(R"("sku": "sku-1")", R"("sku": "sku:1")"),
       "placeOrder.lines[0].sku: must match [A-Za-z0-9][A-Za-z0-9._-]{0,63} (got \"sku:1\")"},
      {place_order_with(R"("customerId": "c-7")", R"("customerId": "c 7")"),
       "placeOrder.customerId: must match [A-Za-z0-9][A-Za-z0-9._-]{0,63} (got \"c 7\")"},
      {place_order_with(R"("deadlineMs": 30000)", R"("deadlineMs": 99)"),
       "placeOrder.deadlineMs: must be 0 (the default, 30000) or between 100 and 86400000 (got "
       "99)"},
      {place_order_with(R"("deadlineMs": 30000)", R"("deadlineMs": "86400001")"),
       "placeOrder.deadlineMs: must be 0 (the default, 30000) or between 100 and 86400000 (got "
       "86400001)"},
      {place_order_with(R"("country": "US")", R"("country": "usa")"),
       "placeOrder.shipTo.country: must be 2 uppercase letters, ISO 3166-1 alpha-2 (got \"usa\")"},
      {place_order_with(R"("token": "tok_visa")", R"("token": "tok\nvisa")"),
       "placeOrder.payment.token: must not contain control characters (got \"tok\\nvisa\")"},
      {place_order_with(R"("payment": {"method": "card", "token": "tok_visa"},)", ""),
       "placeOrder.payment: is required"},
  };
  for (const auto& [json, expected] : cases) {
    const auto command = decode_order_command(json, std::nullopt);
    ASSERT_TRUE(std::holds_alternative<v1::OrderCommand>(command)) << reason(command);
    const Validation invalid = validate(std::get<v1::OrderCommand>(command));
    EXPECT_EQ(invalid ? invalid->to_string() : "valid", expected) << json;
  }
}

TEST(CodecBadInput, ProtobufSizeLimitAppliesToBinaryToo) {
  const std::string too_big(limits::message_bytes_max + 1, '\0');
  EXPECT_EQ(reason(decode_order_command(too_big, kProtobuf)),
            "message is 65537 bytes, limit 65536");
}

TEST(CodecBadInput, AMessageOfExactlyTheLimitIsDecoded) {
  std::string json = R"({"cancelOrder": {"orderId": "o-1", "padding": ")";
  json += std::string(limits::message_bytes_max - json.size() - 3, 'a') + "\"}}";
  ASSERT_EQ(json.size(), limits::message_bytes_max);
  EXPECT_TRUE(std::holds_alternative<v1::OrderCommand>(decode_order_command(json, std::nullopt)));
}

TEST(CodecBadInput, SixteenLevelsAreAccepted) {
  // The outer object, cancelOrder and 14 arrays; the contracts need 4.
  EXPECT_TRUE(std::holds_alternative<v1::OrderCommand>(
      decode_order_command(nested_arrays(limits::json_depth_max - 2), std::nullopt)));
}

TEST(CodecBadInput, BracketsInStringsDoNotCountAsNesting) {
  const std::string json =
      R"({"cancelOrder": {"orderId": "o-1", "reason": ")" + std::string(100, '[') + R"(\"[{"}})";
  EXPECT_TRUE(std::holds_alternative<v1::OrderCommand>(decode_order_command(json, std::nullopt)));
}

TEST(CodecBadInput, EmptyBinaryIsAnError) {
  EXPECT_EQ(reason(decode_order_command("", kProtobuf)), "invalid protobuf: empty message");
}

TEST(CodecBadInput, BinaryStringThatIsNotUtf8IsNamed) {
  // CancelOrder{order_id: "\xff\xfe\x41"} inside OrderCommand.cancel_order.
  const std::string bytes("\x12\x05\x0a\x03\xff\xfe\x41", 7);
  const std::string text = reason(decode_order_command(bytes, kProtobuf));
  EXPECT_EQ(text.rfind("invalid protobuf: cannot parse as ffe.v1.OrderCommand: String field "
                       "'ffe.v1.CancelOrder.order_id' contains invalid UTF-8",
                       0),
            0u)
      << text;
}

TEST(CodecBadInput, BinaryGarbageIsAnError) {
  for (std::string bytes : {std::string("\xff\xff\xff\xff", 4), std::string("\x0a\x7f", 2),
                            std::string("\x0a\x05\x0a\x03o-1\x18", 8)}) {
    EXPECT_EQ(reason(decode_order_command(bytes, kProtobuf)),
              "invalid protobuf: cannot parse as ffe.v1.OrderCommand");
  }
}

TEST(CodecBadInput, RepliesWithBadFieldsAreRefused) {
  EXPECT_EQ(
      reason(decode_payment_reply(
          R"({"commandId": "o-1:authorize:1", "orderId": "o-1", "status": "MAYBE"})",
          std::nullopt)),
      "invalid JSON: status: unknown value \"MAYBE\", expected one of APPROVED, DECLINED, FAILED "
      "(at byte 61)");
  EXPECT_EQ(reason(decode_payment_reply(R"({"commandId": "o-1:authorize:1", "orderId": "o-1"})",
                                        std::nullopt)),
            "status: must be one of APPROVED, DECLINED, FAILED (got STATUS_UNSPECIFIED)");
  EXPECT_EQ(reason(decode_payment_reply(
                R"({"commandId": "o-1:authorize:1", "orderId": "o 1", "status": "APPROVED"})",
                std::nullopt)),
            "orderId: must match [A-Za-z0-9][A-Za-z0-9._-]{0,63} (got \"o 1\")");
  EXPECT_EQ(reason(decode_shipment_reply(
                R"({"commandId": "", "orderId": "o-1", "status": "CREATED"})", std::nullopt)),
            "commandId: is required");
  EXPECT_EQ(reason(decode_shipment_reply(
                R"({"commandId": "o-1:ship:1", "orderId": "o-1", "status": 9})", std::nullopt)),
            "status: must be one of CREATED, FAILED, CANCELLED (got 9)");
}

TEST(CodecBadInput, RequestsWithoutARequestAreRefused) {
  EXPECT_EQ(
      reason(decode_payment_request(R"({"commandId": "o-1:x:1", "orderId": "o-1"})", std::nullopt)),
      "unknown request: expected one of authorize, void, refund");
  EXPECT_EQ(reason(decode_shipment_request(R"({"commandId": "o-1:x:1", "orderId": "o-1"})",
                                           std::nullopt)),
            "unknown request: expected one of create, cancel");
}

TEST(CodecBadInput, ReasonsAreOneLineOfAtMost512Bytes) {
  // A protobuf reason quoting a long hostile value is cut, and stays printable.
  const std::string json = R"({"placeOrder": {"orderId": "o-1", "lines": [{"sku": "s", "qty": ")" +
                           std::string(2000, '\x7f') + "\"}]}}";
  const std::string text = reason(decode_order_command(json, std::nullopt));
  EXPECT_LE(text.size(), 512u);
  EXPECT_EQ(text.substr(text.size() - 3), "...");
  EXPECT_EQ(text.find('\x7f'), std::string::npos);
}

TEST(CodecLimits, TheLargestValidOrderFitsTheMessageLimit) {
  // Every field at its limit must still be a message ffe accepts, in both formats.
  const std::string id(limits::id_length_max, 'i');
  const std::string text(limits::text_length_max, 't');
  v1::OrderCommand command;
  v1::PlaceOrder& order = *command.mutable_place_order();
  order.set_order_id(id);
  order.set_customer_id(id);
  for (std::size_t i = 0; i < limits::order_lines_max; ++i) {
    v1::OrderLine* line = order.add_lines();
    line->set_sku(std::to_string(i) + id.substr(std::to_string(i).size()));
    line->set_qty(limits::line_qty_max);
    line->set_unit_price_cents(limits::unit_price_cents_max);
  }
  order.mutable_payment()->set_method(text);
  order.mutable_payment()->set_token(text);
  for (auto* field :
       {order.mutable_ship_to()->mutable_name(), order.mutable_ship_to()->mutable_line1(),
        order.mutable_ship_to()->mutable_line2(), order.mutable_ship_to()->mutable_city(),
        order.mutable_ship_to()->mutable_region(),
        order.mutable_ship_to()->mutable_postal_code()}) {
    *field = text;
  }
  order.mutable_ship_to()->set_country("US");
  order.set_deadline_ms(limits::deadline_ms_max);
  order.set_currency("EUR");
  ASSERT_FALSE(validate(command).has_value()) << validate(command)->to_string();

  const std::string json = encode_json(command);
  EXPECT_LT(json.size(), limits::message_bytes_max / 2) << "docs/contracts.md quotes this size";
  EXPECT_TRUE(std::holds_alternative<v1::OrderCommand>(decode_order_command(json, std::nullopt)));
  EXPECT_TRUE(std::holds_alternative<v1::OrderCommand>(
      decode_order_command(encode_binary(command), kProtobuf)));
}

// --- decode() itself ----------------------------------------------------------------------

TEST(CodecDecode, ClearsTheOutputFirstAndOnFailure) {
  v1::OrderCommand command;
  ASSERT_FALSE(decode(ex::kPlaceOrder, ContentType::kJson, command));
  ASSERT_FALSE(decode(ex::kCancelOrder, ContentType::kJson, command));
  EXPECT_FALSE(command.has_place_order());
  EXPECT_TRUE(command.has_cancel_order());

  // A failure half-way through must not leave half a message behind.
  EXPECT_TRUE(
      decode(R"({"cancelOrder": {"orderId": "o-2", "reason": 7}})", ContentType::kJson, command));
  EXPECT_EQ(command.ByteSizeLong(), 0u);
  EXPECT_TRUE(decode("\x12\x05\x0a\x03o-", std::nullopt, command).has_value());
  EXPECT_EQ(command.ByteSizeLong(), 0u);
  EXPECT_TRUE(decode(ex::kCancelOrder, std::string_view("text/csv"), command).has_value());
  EXPECT_EQ(command.ByteSizeLong(), 0u);
}

TEST(CodecDecode, BadInputWritesNothingToStderr) {
  const std::string not_utf8("\x12\x05\x0a\x03\xff\xfe\x41", 7);
  testing::internal::CaptureStderr();
  for (int i = 0; i < 3; ++i) {
    (void)decode_order_command(not_utf8, kProtobuf);
    (void)decode_order_command("{\"cancelOrder\": {\"orderId\": \"\xff\"}}", std::nullopt);
    (void)decode_payment_reply(R"({"status": "MAYBE"})", std::nullopt);
  }
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
}

TEST(CodecDecode, ProtobufLogsOutsideADecodeStillReachStderr) {
  // The codec quiets what bad input makes protobuf say, not protobuf as a whole.
  (void)decode_order_command(std::string("\x12\x05\x0a\x03\xff\xfe\x41", 7), kProtobuf);
  testing::internal::CaptureStderr();
  GOOGLE_LOG(ERROR) << "a line ffe must see";
  EXPECT_NE(testing::internal::GetCapturedStderr().find("a line ffe must see"), std::string::npos);
}

}  // namespace
}  // namespace ffe::events
