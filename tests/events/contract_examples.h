#pragma once
// The JSON examples of the architecture's "Public contracts (v1)" section, verbatim (line
// breaks included). They are the contract: every one must decode, field for field.
//
// The one place where the architecture elides a value, the shipment request's
// "shipTo": {...}, is filled in with the PlaceOrder example's address.

#include <string_view>
#include <vector>

namespace ffe::events::examples {

inline constexpr std::string_view kPlaceOrder =
    R"({"placeOrder": {"orderId": "o-1001", "customerId": "c-7",
  "lines": [{"sku": "sku-1", "qty": 2, "unitPriceCents": 1299}],
  "payment": {"method": "card", "token": "tok_visa"},
  "shipTo": {"name": "A. Customer", "line1": "1 Main St", "city": "Springfield", "country": "US"},
  "deadlineMs": 30000}})";
inline constexpr std::string_view kCancelOrder =
    R"({"cancelOrder": {"orderId": "o-1001", "reason": "customer request"}})";

inline constexpr std::string_view kReceiveStock =
    R"({"receiveStock": {"sku": "sku-1", "qty": 100, "receiptId": "r-77"}})";
inline constexpr std::string_view kAdjustStock =
    R"({"adjustStock": {"sku": "sku-1", "delta": -3, "reason": "cycle count", "adjustmentId": "a-9"}})";

inline constexpr std::string_view kAuthorize =
    R"({"commandId": "o-1001:authorize:1", "orderId": "o-1001",
                        "authorize": {"amountCents": 2598, "currency": "USD", "token": "tok_visa"}})";
inline constexpr std::string_view kVoid = R"({"commandId": "o-1001:void:1", "orderId": "o-1001",
                        "void": {"paymentId": "p-1", "authorizeCommandId": "o-1001:authorize:1"}})";
inline constexpr std::string_view kRefund =
    R"({"commandId": "o-1001:refund:1", "orderId": "o-1001", "refund": {"paymentId": "p-1", "amountCents": 2598}})";
inline constexpr std::string_view kPaymentReply =
    R"({"commandId": "o-1001:authorize:1", "orderId": "o-1001",
                        "status": "APPROVED", "paymentId": "p-1", "reason": ""})";

inline constexpr std::string_view kCreateShipment =
    R"({"commandId": "o-1001:ship:1", "orderId": "o-1001",
                        "create": {"lines": [{"sku": "sku-1", "qty": 2}], "shipTo": {"name": "A. Customer", "line1": "1 Main St", "city": "Springfield", "country": "US"}}})";
inline constexpr std::string_view kCancelShipment =
    R"({"commandId": "o-1001:cancel-shipment:1", "orderId": "o-1001",
                        "cancel": {"shipmentId": "s-1", "createCommandId": "o-1001:ship:1"}})";
inline constexpr std::string_view kShipmentReply =
    R"({"commandId": "o-1001:ship:1", "orderId": "o-1001",
                        "status": "CREATED", "shipmentId": "s-1", "reason": ""})";

inline constexpr std::string_view kOutcome =
    R"({"orderId": "o-1001", "state": "FULFILLED", "reason": "", "shard": 3, "revision": "4812",
 "lines": [{"sku": "sku-1", "qty": 2}], "paymentId": "p-1", "shipmentId": "s-1"})";

inline const std::vector<std::string_view> kOrderCommands = {kPlaceOrder, kCancelOrder};
inline const std::vector<std::string_view> kInventoryCommands = {kReceiveStock, kAdjustStock};
inline const std::vector<std::string_view> kPaymentRequests = {kAuthorize, kVoid, kRefund};
inline const std::vector<std::string_view> kShipmentRequests = {kCreateShipment, kCancelShipment};

}  // namespace ffe::events::examples
