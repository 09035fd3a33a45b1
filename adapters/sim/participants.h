#pragma once
// The participant simulators' decisions, as pure functions over an in-memory State: what the
// payment service and the shipping service answer to each request of the contract
// (../shared/ARCHITECTURE.md, "Saga participants"). No Kafka here: sim_runner.cc feeds these
// from the request topics and publishes what they return. docs/participants.md explains the
// conventions; in short:
//
//   authorize   APPROVED, paymentId "p-<orderId>"; token tok_decline: DECLINED;
//               token tok_silent: never answered, but authorized all the same (a "ghost",
//               remembered so that the void finds it).
//   void        finds the authorization by authorizeCommandId (else by paymentId). Live or
//               ghost: voided, APPROVED. Declined, or never seen: DECLINED "nothing to void".
//               Both acknowledge the void (actors/order/order.cc).
//   refund      finds the authorization by paymentId: APPROVED (refunded), else DECLINED.
//   create      CREATED, shipmentId "s-<orderId>"; shipTo.country "XX": FAILED.
//   cancel      always CANCELLED (the only status that acknowledges a cancel): cancels a live
//               shipment, or notes there was nothing to cancel.
//
// Dedupe: a repeated commandId gets exactly the answer the first one got (none for a silent
// authorize). Undo before do: an undo naming a request not seen yet leaves a tombstone, and
// that request, when it arrives, is refused ("voided before authorized" / "cancelled before
// created") instead of creating a live authorization or shipment.
//
// Memory is bounded: every command id (and every tombstone) is one entry of an LRU of
// `capacity` entries (about 280 bytes each with ffe's ids); the least recently used is
// forgotten first.

#include <array>
#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "ffe/v1/payments.pb.h"
#include "ffe/v1/shipments.pb.h"

namespace ffe::participants {

inline constexpr std::size_t kDefaultDedupeCapacity = 1'000'000;

inline constexpr std::string_view kTokenDecline = "tok_decline";
inline constexpr std::string_view kTokenSilent = "tok_silent";
inline constexpr std::string_view kCountryFail = "XX";

// Reasons the simulators put in replies (stable: tests and docs quote them).
namespace reason {
inline constexpr const char* kNone = "";
inline constexpr const char* kCardDeclined = "card declined";
inline constexpr const char* kVoidedBeforeAuthorized = "voided before authorized";
inline constexpr const char* kVoided = "voided";
inline constexpr const char* kAlreadyVoided = "already voided";
inline constexpr const char* kNothingToVoidDeclined = "nothing to void: the authorization was declined";
inline constexpr const char* kNothingToVoidNeverAuthorized = "nothing to void: never authorized";
inline constexpr const char* kRefunded = "refunded";
inline constexpr const char* kUnknownPayment = "unknown payment";
inline constexpr const char* kCannotShip = "cannot ship to country XX";
inline constexpr const char* kCancelledBeforeCreated = "cancelled before created";
inline constexpr const char* kCancelled = "cancelled";
inline constexpr const char* kAlreadyCancelled = "already cancelled";
inline constexpr const char* kNothingToCancelFailed = "nothing to cancel: the shipment failed";
inline constexpr const char* kNothingToCancelNeverCreated = "nothing to cancel: never created";
inline constexpr const char* kUnknownRequest = "unknown request";
}  // namespace reason

// What a participant remembers: one LRU of entries keyed by command id. A "do" entry
// (authorize, create) also carries the life of what it created, and is findable by its order
// id (the ids it mints are "p-<orderId>" / "s-<orderId>"); an undo that names a request not
// seen yet inserts that request's entry as a tombstone (received == false).
class Ledger {
 public:
  enum class Life : std::uint8_t {
    kNone,              // an undo's or refund's own entry
    kLive,              // authorized / created (answered or not)
    kRefused,           // declined / failed: nothing was created
    kUndone,            // voided, refunded / cancelled
    kUndoneBeforeDone,  // tombstone: the undo came first; the request will be refused
  };
  struct Entry {
    std::string command_id;
    // The order id is usually the command id's prefix ("o-1" of "o-1:authorize:1"): then it
    // is not stored twice (order_length > 0); otherwise it is kept here.
    std::string other_order_id;
    std::uint8_t order_length = 0;
    Life life = Life::kNone;
    bool received = false;      // the request with this command id arrived
    bool answered = false;      // false: silent (never answered, not even on a repeat)
    bool reply_has_id = false;  // the reply carries the order's minted id (p-/s-<orderId>)
    bool indexed = false;       // findable by its order id (a do-entry that created something)
    std::uint8_t status = 0;    // the reply's status enum value
    const char* reason = reason::kNone;

    std::string_view order_id() const {
      return order_length > 0 ? std::string_view(command_id).substr(0, order_length)
                              : std::string_view(other_order_id);
    }
  };

  explicit Ledger(std::size_t capacity = kDefaultDedupeCapacity);
  Ledger(const Ledger&) = delete;
  Ledger& operator=(const Ledger&) = delete;

  // Finds and marks most recently used; nullptr if unknown (or forgotten).
  Entry* find(std::string_view command_id);
  // The newest indexed do-entry of an order; marks it used.
  Entry* find_by_order(std::string_view order_id);
  // A new entry (the command id must be unknown), forgetting the least recently used entry
  // when full. Pointers to the two entries found or inserted just before stay valid (the
  // capacity is at least 4).
  Entry& insert(std::string_view command_id, std::string_view order_id);
  // Makes `entry` findable by its order id (the newest such entry of an order wins).
  void index_by_order(Entry& entry);

  std::size_t size() const { return lru_.size(); }
  std::size_t capacity() const { return capacity_; }
  std::uint64_t forgotten() const { return forgotten_; }

 private:
  using List = std::list<Entry>;
  void touch(List::iterator it);
  std::size_t capacity_;
  std::uint64_t forgotten_ = 0;
  List lru_;  // front: most recently used
  // Keys view the entries' own strings (list nodes never move, their strings never change).
  std::unordered_map<std::string_view, List::iterator> by_command_;
  std::unordered_map<std::string_view, List::iterator> by_order_;
};

// Counters for the periodic stderr line and for tests.
struct Stats {
  std::uint64_t requests = 0;        // every request handed to answer_*
  std::uint64_t duplicates = 0;      // a command id already answered (or silent)
  std::uint64_t silent = 0;          // requests left unanswered (tok_silent), repeats included
  std::uint64_t undo_before_do = 0;  // requests refused because their undo came first
  std::uint64_t undecodable = 0;     // counted by the runner (skipped, never answered)
  std::array<std::uint64_t, 4> answers{};  // by reply status enum value (index 0 unused)
};

struct PaymentState {
  explicit PaymentState(std::size_t capacity = kDefaultDedupeCapacity) : ledger(capacity) {}
  Ledger ledger;
  Stats stats;
};

struct ShipmentState {
  explicit ShipmentState(std::size_t capacity = kDefaultDedupeCapacity) : ledger(capacity) {}
  Ledger ledger;
  Stats stats;
};

// The payment service's answer to one request; nullopt: no answer (silent).
std::optional<v1::PaymentReply> answer_payment(const v1::PaymentRequest& request,
                                               PaymentState& state);
// The shipping service's answer to one request (always answers).
std::optional<v1::ShipmentReply> answer_shipment(const v1::ShipmentRequest& request,
                                                 ShipmentState& state);

std::string payment_id_for(std::string_view order_id);   // "p-<orderId>"
std::string shipment_id_for(std::string_view order_id);  // "s-<orderId>"

}  // namespace ffe::participants
