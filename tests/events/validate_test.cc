// Validation against events/limits.h: each rule, at its bound and one past it, with the
// exact reason a user reads in a REJECTED outcome or an ff-error header.

#include "events/validate.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "events/codec.h"
#include "events/limits.h"
#include "tests/events/contract_examples.h"

namespace ffe::events {
namespace {

constexpr std::string_view kIdRule = "must match [A-Za-z0-9][A-Za-z0-9._-]{0,63}";

std::string describe(const Validation& result) { return result ? result->to_string() : "valid"; }

template <class T>
T from_json(std::string_view json) {
  T message;
  if (auto error = decode(json, ContentType::kJson, message)) ADD_FAILURE() << error->reason;
  return message;
}

v1::PlaceOrder contract_order() {
  return from_json<v1::OrderCommand>(examples::kPlaceOrder).place_order();
}

// --- ids -----------------------------------------------------------------------------------

TEST(ValidateIds, UserIds) {
  for (std::string_view id : {"o-1001", "c-7", "sku-1", "A", "9", "a.b_c-d"}) {
    EXPECT_TRUE(is_valid_id(id)) << id;
  }
  const std::string longest(limits::id_length_max, 'a');
  EXPECT_TRUE(is_valid_id(longest));
  EXPECT_FALSE(is_valid_id(longest + "a"));
  using namespace std::string_view_literals;
  for (std::string_view id : {""sv, "-o"sv, ".o"sv, "_o"sv, "o 1"sv, "o:1"sv, "o/1"sv, "o\n"sv,
                              "o\t1"sv, "ö"sv, "o\0"sv, "o@1"sv, " o"sv}) {
    EXPECT_FALSE(is_valid_id(id)) << id;
  }
}

TEST(ValidateIds, ExternalIds) {
  EXPECT_TRUE(is_valid_external_id("o-1001:authorize:1"));
  EXPECT_TRUE(is_valid_external_id("p_{[~]}!"));
  EXPECT_TRUE(is_valid_external_id(std::string(limits::external_id_length_max, '~')));
  EXPECT_FALSE(is_valid_external_id(std::string(limits::external_id_length_max + 1, 'p')));
  for (std::string_view id : {"", "p 1", "p\x7f", "p\n", "pé"}) {
    EXPECT_FALSE(is_valid_external_id(id)) << id;
  }
}

TEST(ValidateIds, ValidateIdNamesTheRule) {
  EXPECT_EQ(describe(validate_id("sku-1", "x.sku")), "valid");
  EXPECT_EQ(describe(validate_id("", "x.sku")), "x.sku: is required");
  EXPECT_EQ(describe(validate_id(std::string(65, 's'), "x.sku")),
            "x.sku: must be at most 64 characters (got 65)");
  EXPECT_EQ(describe(validate_id("sku 1\n", "receiveStock.sku")),
            "receiveStock.sku: " + std::string(kIdRule) + " (got \"sku 1\\n\")");
}

TEST(ValidateIds, OffendingValuesAreQuotedEscapedAndCut) {
  const std::string hostile = "a\"b\\c\x01" + std::string(200, 'z');
  const std::string reason = describe(validate_id(hostile, "p"));
  EXPECT_EQ(reason, "p: must be at most 64 characters (got 206)");
  const std::string short_hostile = std::string("a\"b\\c\x01\xff") + std::string(50, 'z');
  EXPECT_EQ(describe(validate_id(short_hostile, "p")), "p: " + std::string(kIdRule) +
                                                           " (got \"a\\\"b\\\\c\\x01\\xff" +
                                                           std::string(49, 'z') + "...\")");
}

TEST(ValidateUtf8, WellFormedOnly) {
  for (std::string_view text : {"", "plain", "Zürich", "東京", "🙂", "\x7f"}) {
    EXPECT_TRUE(is_valid_utf8(text)) << text;
  }
  for (std::string_view text : {"\xff", "\xc3", "caf\xe9", "\xc0\xaf", "\xe0\x80\xaf",
                                "\xed\xa0\x80", "\xf4\x90\x80\x80", "\x80", "\xf0\x9f\x99"}) {
    EXPECT_FALSE(is_valid_utf8(text)) << testing::PrintToString(text);
  }
}

// --- PlaceOrder ----------------------------------------------------------------------------

TEST(ValidatePlaceOrder, TheContractExampleIsValid) {
  EXPECT_EQ(describe(validate(contract_order())), "valid");
}

struct Case {
  const char* name;
  std::function<void(v1::PlaceOrder&)> change;
  std::string expected;  // "valid" or the whole reason
};

void add_lines(v1::PlaceOrder& order, int count) {
  order.clear_lines();
  for (int i = 0; i < count; ++i) {
    v1::OrderLine* line = order.add_lines();
    line->set_sku("sku-" + std::to_string(i));
    line->set_qty(1);
    line->set_unit_price_cents(100);
  }
}

TEST(ValidatePlaceOrder, EachRuleAtItsBound) {
  const std::vector<Case> cases = {
      {"orderId missing", [](auto& o) { o.clear_order_id(); }, "placeOrder.orderId: is required"},
      {"orderId with a space", [](auto& o) { o.set_order_id("o 1"); },
       "placeOrder.orderId: " + std::string(kIdRule) + " (got \"o 1\")"},
      {"customerId missing", [](auto& o) { o.clear_customer_id(); },
       "placeOrder.customerId: is required"},
      {"customerId with ':'", [](auto& o) { o.set_customer_id("c:7"); },
       "placeOrder.customerId: " + std::string(kIdRule) + " (got \"c:7\")"},
      {"no lines", [](auto& o) { o.clear_lines(); },
       "placeOrder.lines: must have between 1 and 100 lines (got 0)"},
      {"100 lines", [](auto& o) { add_lines(o, 100); }, "valid"},
      {"101 lines", [](auto& o) { add_lines(o, 101); },
       "placeOrder.lines: must have between 1 and 100 lines (got 101)"},
      {"sku missing", [](auto& o) { o.mutable_lines(0)->clear_sku(); },
       "placeOrder.lines[0].sku: is required"},
      {"sku with a control character", [](auto& o) { o.mutable_lines(0)->set_sku("sku\x01"); },
       "placeOrder.lines[0].sku: " + std::string(kIdRule) + " (got \"sku\\x01\")"},
      {"zero qty", [](auto& o) { o.mutable_lines(0)->set_qty(0); },
       "placeOrder.lines[0].qty: must be between 1 and 1000000 (got 0)"},
      {"negative qty", [](auto& o) { o.mutable_lines(0)->set_qty(-2); },
       "placeOrder.lines[0].qty: must be between 1 and 1000000 (got -2)"},
      {"qty at the limit", [](auto& o) { o.mutable_lines(0)->set_qty(limits::line_qty_max); },
       "valid"},
      {"qty past the limit", [](auto& o) { o.mutable_lines(0)->set_qty(limits::line_qty_max + 1); },
       "placeOrder.lines[0].qty: must be between 1 and 1000000 (got 1000001)"},
      {"free line", [](auto& o) { o.mutable_lines(0)->set_unit_price_cents(0); }, "valid"},
      {"negative price", [](auto& o) { o.mutable_lines(0)->set_unit_price_cents(-1); },
       "placeOrder.lines[0].unitPriceCents: must be between 0 and 100000000 (got -1)"},
      {"price past the limit",
       [](auto& o) { o.mutable_lines(0)->set_unit_price_cents(limits::unit_price_cents_max + 1); },
       "placeOrder.lines[0].unitPriceCents: must be between 0 and 100000000 (got 100000001)"},
      {"first broken line is named",
       [](auto& o) {
         add_lines(o, 5);
         o.mutable_lines(2)->set_qty(0);
         o.mutable_lines(4)->set_qty(0);
       },
       "placeOrder.lines[2].qty: must be between 1 and 1000000 (got 0)"},
      {"duplicate sku",
       [](auto& o) {
         add_lines(o, 4);
         o.mutable_lines(3)->set_sku("sku-1");
       },
       "placeOrder.lines[3].sku: duplicate of lines[1]"},
      {"payment missing", [](auto& o) { o.clear_payment(); }, "placeOrder.payment: is required"},
      {"payment method empty", [](auto& o) { o.mutable_payment()->clear_method(); },
       "placeOrder.payment.method: is required"},
      {"payment token blank", [](auto& o) { o.mutable_payment()->set_token("   "); },
       "placeOrder.payment.token: is required"},
      {"payment token with a newline", [](auto& o) { o.mutable_payment()->set_token("tok\nvisa"); },
       "placeOrder.payment.token: must not contain control characters (got \"tok\\nvisa\")"},
      {"payment token too long",
       [](auto& o) {
         o.mutable_payment()->set_token(std::string(limits::text_length_max + 1, 't'));
       },
       "placeOrder.payment.token: must be at most 256 bytes (got 257)"},
      {"payment token at the limit",
       [](auto& o) { o.mutable_payment()->set_token(std::string(limits::text_length_max, 't')); },
       "valid"},
      {"shipTo missing", [](auto& o) { o.clear_ship_to(); }, "placeOrder.shipTo: is required"},
      {"shipTo name empty", [](auto& o) { o.mutable_ship_to()->clear_name(); },
       "placeOrder.shipTo.name: is required"},
      {"shipTo line1 empty", [](auto& o) { o.mutable_ship_to()->clear_line1(); },
       "placeOrder.shipTo.line1: is required"},
      {"shipTo city empty", [](auto& o) { o.mutable_ship_to()->clear_city(); },
       "placeOrder.shipTo.city: is required"},
      {"shipTo name in any script",
       [](auto& o) { o.mutable_ship_to()->set_name("Zoë 東京 🙂"); }, "valid"},
      {"shipTo name with a C1 control",
       [](auto& o) {
         o.mutable_ship_to()->set_name(
             "A\xc2\x85"
             "B");
       },
       "placeOrder.shipTo.name: must not contain control characters (got \"A\\xc2\\x85B\")"},
      {"shipTo line2 with a tab", [](auto& o) { o.mutable_ship_to()->set_line2("Apt\t4"); },
       "placeOrder.shipTo.line2: must not contain control characters (got \"Apt\\t4\")"},
      {"shipTo postalCode too long",
       [](auto& o) { o.mutable_ship_to()->set_postal_code(std::string(300, '9')); },
       "placeOrder.shipTo.postalCode: must be at most 256 bytes (got 300)"},
      {"shipTo region not UTF-8", [](auto& o) { o.mutable_ship_to()->set_region("\xff"); },
       "placeOrder.shipTo.region: must be valid UTF-8"},
      {"country lowercase", [](auto& o) { o.mutable_ship_to()->set_country("us"); },
       "placeOrder.shipTo.country: must be 2 uppercase letters, ISO 3166-1 alpha-2 (got \"us\")"},
      {"country three letters", [](auto& o) { o.mutable_ship_to()->set_country("USA"); },
       "placeOrder.shipTo.country: must be 2 uppercase letters, ISO 3166-1 alpha-2 (got \"USA\")"},
      {"country empty", [](auto& o) { o.mutable_ship_to()->clear_country(); },
       "placeOrder.shipTo.country: must be 2 uppercase letters, ISO 3166-1 alpha-2 (got \"\")"},
      {"country XX (the simulator's failing shipment) is valid",
       [](auto& o) { o.mutable_ship_to()->set_country("XX"); }, "valid"},
      {"deadline default", [](auto& o) { o.set_deadline_ms(0); }, "valid"},
      {"deadline at the minimum", [](auto& o) { o.set_deadline_ms(limits::deadline_ms_min); },
       "valid"},
      {"deadline at the maximum", [](auto& o) { o.set_deadline_ms(limits::deadline_ms_max); },
       "valid"},
      {"deadline too short", [](auto& o) { o.set_deadline_ms(limits::deadline_ms_min - 1); },
       "placeOrder.deadlineMs: must be 0 (the default, 30000) or between 100 and 86400000 (got "
       "99)"},
      {"deadline too long", [](auto& o) { o.set_deadline_ms(limits::deadline_ms_max + 1); },
       "placeOrder.deadlineMs: must be 0 (the default, 30000) or between 100 and 86400000 (got "
       "86400001)"},
      {"deadline negative", [](auto& o) { o.set_deadline_ms(-1); },
       "placeOrder.deadlineMs: must be 0 (the default, 30000) or between 100 and 86400000 (got "
       "-1)"},
      {"currency EUR", [](auto& o) { o.set_currency("EUR"); }, "valid"},
      {"currency lowercase", [](auto& o) { o.set_currency("usd"); },
       "placeOrder.currency: must be 3 uppercase letters, ISO 4217, or empty for USD (got "
       "\"usd\")"},
      {"currency symbol", [](auto& o) { o.set_currency("$"); },
       "placeOrder.currency: must be 3 uppercase letters, ISO 4217, or empty for USD (got \"$\")"},
  };
  for (const Case& c : cases) {
    v1::PlaceOrder order = contract_order();
    c.change(order);
    EXPECT_EQ(describe(validate(order)), c.expected) << c.name;
  }
}

TEST(ValidatePlaceOrder, PathPrefixIsTheCallers) {
  v1::PlaceOrder order = contract_order();
  order.mutable_lines(0)->set_qty(0);
  EXPECT_EQ(describe(validate(order, "order")),
            "order.lines[0].qty: must be between 1 and 1000000 (got 0)");
}

TEST(ValidatePlaceOrder, ValidateTheWholeCommand) {
  v1::OrderCommand command;
  EXPECT_EQ(describe(validate(command)),
            "unknown command: expected one of placeOrder, cancelOrder");
  *command.mutable_place_order() = contract_order();
  EXPECT_EQ(describe(validate(command)), "valid");
  command.mutable_place_order()->set_currency("eur");
  EXPECT_EQ(
      describe(validate(command)),
      "placeOrder.currency: must be 3 uppercase letters, ISO 4217, or empty for USD (got \"eur\")");
  command.mutable_cancel_order()->set_order_id("o-1");
  EXPECT_EQ(describe(validate(command)), "valid");
  command.mutable_cancel_order()->set_reason("why\x1b[31m");
  EXPECT_EQ(describe(validate(command)),
            "cancelOrder.reason: must not contain control characters (got \"why\\x1b[31m\")");
}

TEST(ValidateOrderAmount, SumsQtyTimesPrice) {
  EXPECT_EQ(order_amount_cents(contract_order()), 2598);  // the contract's Authorize amount
  v1::PlaceOrder order = contract_order();
  order.mutable_lines(0)->set_unit_price_cents(0);
  EXPECT_EQ(order_amount_cents(order), 0);
}

TEST(ValidateOrderAmount, TheLargestValidOrderFits) {
  v1::PlaceOrder order = contract_order();
  add_lines(order, static_cast<int>(limits::order_lines_max));
  for (v1::OrderLine& line : *order.mutable_lines()) {
    line.set_qty(limits::line_qty_max);
    line.set_unit_price_cents(limits::unit_price_cents_max);
  }
  ASSERT_EQ(describe(validate(order)), "valid");
  EXPECT_EQ(order_amount_cents(order), 10'000'000'000'000'000);
}

TEST(ValidateOrderAmountDeathTest, AnUnvalidatedOrderIsAProgrammerError) {
  v1::PlaceOrder order = contract_order();
  order.mutable_lines(0)->set_qty(limits::line_qty_max + 1);
  EXPECT_DEATH(order_amount_cents(order),
               "order_amount_cents needs a PlaceOrder that passed validate");
}

// --- CancelOrder and inventory -----------------------------------------------------------------

TEST(ValidateCancelOrder, ReasonIsOptionalText) {
  v1::CancelOrder cancel;
  cancel.set_order_id("o-1001");
  EXPECT_EQ(describe(validate(cancel)), "valid");
  cancel.set_reason(std::string(limits::text_length_max + 1, 'r'));
  EXPECT_EQ(describe(validate(cancel)), "cancelOrder.reason: must be at most 256 bytes (got 257)");
  cancel.clear_order_id();
  EXPECT_EQ(describe(validate(cancel)), "cancelOrder.orderId: is required");
}

TEST(ValidateInventory, TheContractExamplesAreValid) {
  for (auto json : examples::kInventoryCommands) {
    EXPECT_EQ(describe(validate(from_json<v1::InventoryCommand>(json))), "valid") << json;
  }
  EXPECT_EQ(describe(validate(v1::InventoryCommand{})),
            "unknown command: expected one of receiveStock, adjustStock");
}

TEST(ValidateInventory, ReceiveStock) {
  v1::ReceiveStock receipt =
      from_json<v1::InventoryCommand>(examples::kReceiveStock).receive_stock();
  receipt.set_qty(0);
  EXPECT_EQ(describe(validate(receipt)),
            "receiveStock.qty: must be between 1 and 1000000000 (got 0)");
  receipt.set_qty(limits::receipt_qty_max);
  EXPECT_EQ(describe(validate(receipt)), "valid");
  receipt.set_qty(limits::receipt_qty_max + 1);
  EXPECT_EQ(describe(validate(receipt)),
            "receiveStock.qty: must be between 1 and 1000000000 (got 1000000001)");
  receipt.set_qty(1);
  receipt.clear_receipt_id();
  EXPECT_EQ(describe(validate(receipt)), "receiveStock.receiptId: is required");
  receipt.set_receipt_id("r:77");
  EXPECT_EQ(describe(validate(receipt)),
            "receiveStock.receiptId: " + std::string(kIdRule) + " (got \"r:77\")");
  receipt.set_sku("");
  EXPECT_EQ(describe(validate(receipt)), "receiveStock.sku: is required");
}

TEST(ValidateInventory, AdjustStock) {
  v1::AdjustStock adjustment =
      from_json<v1::InventoryCommand>(examples::kAdjustStock).adjust_stock();
  for (std::int64_t delta : {std::int64_t{1}, std::int64_t{-1}, limits::adjustment_delta_max,
                             -limits::adjustment_delta_max}) {
    adjustment.set_delta(delta);
    EXPECT_EQ(describe(validate(adjustment)), "valid") << delta;
  }
  for (std::int64_t delta :
       {std::int64_t{0}, limits::adjustment_delta_max + 1, -limits::adjustment_delta_max - 1}) {
    adjustment.set_delta(delta);
    EXPECT_EQ(describe(validate(adjustment)),
              "adjustStock.delta: must be non-zero and between -1000000000 and 1000000000 (got " +
                  std::to_string(delta) + ")");
  }
  adjustment.set_delta(-3);
  adjustment.set_adjustment_id("");
  EXPECT_EQ(describe(validate(adjustment)), "adjustStock.adjustmentId: is required");
  adjustment.set_adjustment_id("a-9");
  adjustment.set_reason("count\r\n");
  EXPECT_EQ(describe(validate(adjustment)),
            "adjustStock.reason: must not contain control characters (got \"count\\r\\n\")");
}

// --- participants' messages -------------------------------------------------------------------

TEST(ValidateReplies, TheContractExamplesAreValid) {
  EXPECT_EQ(describe(validate(from_json<v1::PaymentReply>(examples::kPaymentReply))), "valid");
  EXPECT_EQ(describe(validate(from_json<v1::ShipmentReply>(examples::kShipmentReply))), "valid");
}

TEST(ValidateReplies, PaymentReplyRules) {
  const v1::PaymentReply good = from_json<v1::PaymentReply>(examples::kPaymentReply);
  v1::PaymentReply reply = good;
  reply.clear_command_id();
  EXPECT_EQ(describe(validate(reply)), "commandId: is required");
  reply.set_command_id("o-1001 authorize");
  EXPECT_EQ(describe(validate(reply)),
            "commandId: must be printable ASCII without spaces (got \"o-1001 authorize\")");
  reply.set_command_id(std::string(limits::external_id_length_max + 1, 'c'));
  EXPECT_EQ(describe(validate(reply)), "commandId: must be at most 160 characters (got 161)");

  reply = good;
  reply.set_order_id("o\n");
  EXPECT_EQ(describe(validate(reply)), "orderId: " + std::string(kIdRule) + " (got \"o\\n\")");

  reply = good;
  reply.set_status(v1::PaymentReply::STATUS_UNSPECIFIED);
  EXPECT_EQ(describe(validate(reply)),
            "status: must be one of APPROVED, DECLINED, FAILED (got STATUS_UNSPECIFIED)");
  reply.set_status(static_cast<v1::PaymentReply::Status>(42));  // a newer participant's status
  EXPECT_EQ(describe(validate(reply)),
            "status: must be one of APPROVED, DECLINED, FAILED (got 42)");

  reply = good;
  reply.clear_payment_id();  // a DECLINED answer may have none
  reply.set_status(v1::PaymentReply::DECLINED);
  reply.set_reason("insufficient funds — try another card");
  EXPECT_EQ(describe(validate(reply)), "valid");
  reply.set_payment_id("p 1");
  EXPECT_EQ(describe(validate(reply)),
            "paymentId: must be printable ASCII without spaces (got \"p 1\")");
  reply.set_payment_id("p-1");
  reply.set_reason("line1\nline2");
  EXPECT_EQ(describe(validate(reply)),
            "reason: must not contain control characters (got \"line1\\nline2\")");
}

TEST(ValidateReplies, ShipmentReplyRules) {
  v1::ShipmentReply reply = from_json<v1::ShipmentReply>(examples::kShipmentReply);
  reply.set_status(v1::ShipmentReply::STATUS_UNSPECIFIED);
  EXPECT_EQ(describe(validate(reply)),
            "status: must be one of CREATED, FAILED, CANCELLED (got STATUS_UNSPECIFIED)");
  reply.set_status(v1::ShipmentReply::FAILED);
  reply.set_shipment_id("");
  EXPECT_EQ(describe(validate(reply)), "valid");
  reply.set_shipment_id(std::string(161, 's'));
  EXPECT_EQ(describe(validate(reply)), "shipmentId: must be at most 160 characters (got 161)");
  reply.set_shipment_id("s-1");
  reply.set_reason(std::string(257, 'r'));
  EXPECT_EQ(describe(validate(reply)), "reason: must be at most 256 bytes (got 257)");
  EXPECT_EQ(describe(validate(reply, "reply")),
            "reply.reason: must be at most 256 bytes (got 257)");
}

TEST(ValidateRequests, TheContractExamplesAreValid) {
  for (auto json : examples::kPaymentRequests) {
    EXPECT_EQ(describe(validate(from_json<v1::PaymentRequest>(json))), "valid") << json;
  }
  for (auto json : examples::kShipmentRequests) {
    EXPECT_EQ(describe(validate(from_json<v1::ShipmentRequest>(json))), "valid") << json;
  }
}

TEST(ValidateRequests, PaymentRequestRules) {
  v1::PaymentRequest request = from_json<v1::PaymentRequest>(examples::kAuthorize);
  request.mutable_authorize()->set_amount_cents(-1);
  EXPECT_EQ(describe(validate(request)),
            "authorize.amountCents: must be between 0 and 10000000000000000 (got -1)");
  request.mutable_authorize()->set_amount_cents(0);  // an order of free lines
  EXPECT_EQ(describe(validate(request)), "valid");
  request.mutable_authorize()->clear_currency();
  EXPECT_EQ(describe(validate(request)),
            "authorize.currency: must be 3 uppercase letters, ISO 4217 (got \"\")");
  request.mutable_authorize()->set_currency("USD");
  request.mutable_authorize()->clear_token();
  EXPECT_EQ(describe(validate(request)), "authorize.token: is required");

  request = from_json<v1::PaymentRequest>(examples::kVoid);
  request.mutable_void_()->clear_payment_id();  // the authorize was never answered
  EXPECT_EQ(describe(validate(request)), "valid");
  request.mutable_void_()->clear_authorize_command_id();
  EXPECT_EQ(describe(validate(request)), "void.authorizeCommandId: is required");

  request = from_json<v1::PaymentRequest>(examples::kRefund);
  request.mutable_refund()->set_amount_cents(0);
  EXPECT_EQ(describe(validate(request)),
            "refund.amountCents: must be between 1 and 10000000000000000 (got 0)");
  request.mutable_refund()->set_amount_cents(1);
  request.mutable_refund()->clear_payment_id();
  EXPECT_EQ(describe(validate(request)), "refund.paymentId: is required");

  request.clear_refund();
  EXPECT_EQ(describe(validate(request)),
            "unknown request: expected one of authorize, void, refund");
  EXPECT_EQ(describe(validate(request, "request")),
            "request: unknown request: expected one of authorize, void, refund");
}

TEST(ValidateRequests, ShipmentRequestRules) {
  v1::ShipmentRequest request = from_json<v1::ShipmentRequest>(examples::kCreateShipment);
  request.mutable_create()->mutable_lines(0)->set_qty(0);
  EXPECT_EQ(describe(validate(request)),
            "create.lines[0].qty: must be between 1 and 1000000 (got 0)");
  request.mutable_create()->mutable_lines(0)->set_qty(2);
  *request.mutable_create()->add_lines() = request.create().lines(0);
  EXPECT_EQ(describe(validate(request)), "create.lines[1].sku: duplicate of lines[0]");
  request.mutable_create()->mutable_lines()->RemoveLast();
  request.mutable_create()->clear_ship_to();
  EXPECT_EQ(describe(validate(request)), "create.shipTo: is required");
  request.mutable_create()->clear_lines();
  EXPECT_EQ(describe(validate(request)), "create.lines: must have between 1 and 100 lines (got 0)");

  request = from_json<v1::ShipmentRequest>(examples::kCancelShipment);
  request.mutable_cancel()->clear_shipment_id();  // the create was never answered
  EXPECT_EQ(describe(validate(request)), "valid");
  request.mutable_cancel()->set_create_command_id("o-1001:ship 1");
  EXPECT_EQ(
      describe(validate(request)),
      "cancel.createCommandId: must be printable ASCII without spaces (got \"o-1001:ship 1\")");
  request.clear_cancel();
  EXPECT_EQ(describe(validate(request)), "unknown request: expected one of create, cancel");
}

TEST(ValidateReasons, AreAlwaysOnePrintableLine) {
  // Whatever a field holds, the reason quoting it is printable ASCII and short.
  v1::CancelOrder cancel;
  cancel.set_order_id("o-1");
  std::string nasty;
  for (int c = 1; c < 0x20; ++c) nasty += static_cast<char>(c);
  nasty += "\xc2\x9b\"\\" + std::string(500, 'x');
  cancel.set_reason(nasty.substr(0, limits::text_length_max));
  const std::string reason = describe(validate(cancel));
  EXPECT_LT(reason.size(), 160u) << reason;
  for (char c : reason) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << reason;
}

}  // namespace
}  // namespace ffe::events
