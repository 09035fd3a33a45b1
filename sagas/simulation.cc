// The deterministic simulation of ffe's pure core (see simulation.h for what it promises and
// docs/simulation.md for what it models and how to reproduce a failing seed).
//
// One World owns everything: the SKUs and orders (state + event log each), the network of
// in-flight messages, the two participants, the outcome collector and the virtual clock.
// Every random choice comes from one seeded generator, and every loop walks a std::map or
// a vector, so a seed replays the same run step for step. The world drives only the public
// functions of the deciders and the saga; it never edits their state except through
// evolve() (the one deliberate exception is Fault::kReserveWithoutDecide, which exists to
// prove the checks can fail).

#include "sagas/simulation.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <algorithm>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "actors/order/order.h"
#include "actors/sku/sku.h"
#include "events/assert.h"
#include "events/json_text.h"
#include "events/limits.h"
#include "ffe/v1/journal.pb.h"
#include "ffe/v1/outcomes.pb.h"
#include "ffe/v1/payments.pb.h"
#include "ffe/v1/shipments.pb.h"
#include "sagas/fulfillment.h"

namespace ffe::sim {
namespace {

// --- the shape of the generated load -------------------------------------------------------
// Kept here rather than in Options: they shape what an order looks like, not how hard the
// world is pushed, and a seed's meaning should not depend on more knobs than it must.
constexpr int order_lines_min = 1;
constexpr int order_lines_max = 3;
constexpr std::int64_t line_qty_min = 1;
constexpr std::int64_t line_qty_max = 3;
constexpr std::int64_t unit_price_cents_min = 100;
constexpr std::int64_t unit_price_cents_max = 5'000;
constexpr double p_token_decline = 0.06;
constexpr double p_token_silent = 0.05;
constexpr double p_invalid_order = 0.03;   // a PlaceOrder that must become REJECTED at once
constexpr double p_country_fails = 0.06;   // shipTo country "XX": CreateShipment FAILED
constexpr double p_short_deadline = 0.08;  // deadlineMs short enough to fire mid-saga
constexpr std::int64_t short_deadline_ms = 2'000;
constexpr double p_replace_order = 0.01;   // per step: re-send a PlaceOrder for an existing id
constexpr double p_cancel_unknown = 0.10;  // of cancels: an id that was never placed
constexpr double p_cancel_any = 0.20;      // of cancels: any order, terminal ones included
constexpr std::int64_t receipt_qty_min = 1;
constexpr std::int64_t receipt_qty_max = 40;
constexpr double p_receipt_repeat = 0.10;  // of receipts: a receipt id already applied

// --- the participants (simulated payment and shipping services) -----------------------------
constexpr double p_payment_failed = 0.03;   // tok_visa answered FAILED
constexpr double p_shipment_silent = 0.03;  // a create never answered
constexpr double p_ghost = 0.5;             // of silent requests: acted on without answering
constexpr double p_answer_twice = 0.05;     // a participant sends its answer twice

// --- the drain --------------------------------------------------------------------------------
// During the drain every open order resends its outstanding requests this often, in steps,
// as the runtime's retry timer would.
constexpr std::int64_t drain_retry_interval_steps = 50;
// A drain that neither commits an event nor shrinks the network for drain_stall_steps() is
// stuck: by then every deadline has passed, every lagging message has landed and every retry
// has been resent many times. Failing there rather than at drain_steps_max names the stuck
// order in a second.
constexpr std::int64_t drain_stall_steps_base = 5'000;

// A bound on the network: the default load stays far below it (tens of messages). Reaching
// it means more is sent than delivered, until every order times out (congestion collapse),
// or a reaction that multiplies messages: a failure either way, never unbounded growth.
constexpr std::size_t network_messages_max = 200'000;

// Deterministic on every standard library (unlike std::uniform_int_distribution): the same
// seed must give the same run wherever ffe is built.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : engine_(seed) {}
  // Uniform in [0, n). Modulo bias is at most n / 2^64: irrelevant for these n.
  std::uint64_t below(std::uint64_t n) {
    FFE_ASSERT(n > 0, "Rng::below needs a non-empty range");
    return engine_() % n;
  }
  std::int64_t between(std::int64_t low, std::int64_t high) {
    FFE_ASSERT(low <= high, "Rng::between needs low <= high");
    return low + static_cast<std::int64_t>(below(static_cast<std::uint64_t>(high - low) + 1));
  }
  bool chance(double p) { return static_cast<double>(engine_() >> 11) * 0x1.0p-53 < p; }

 private:
  std::mt19937_64 engine_;
};

std::string deterministic_bytes(const google::protobuf::Message& message) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return out;
}

std::string order_state_name(v1::OrderState state) { return v1::OrderState_Name(state); }

// --- messages on the network -----------------------------------------------------------------

using Message = std::variant<v1::StockCommand, v1::StockReply, v1::PaymentRequest, v1::PaymentReply,
                             v1::ShipmentRequest, v1::ShipmentReply, v1::OrderOutcome>;

struct InFlight {
  Message message;
  bool delivered_before = false;   // a copy of a message already delivered once
  std::int64_t ready_at_step = 0;  // held back (lagging) until this step
};

// --- aggregates ---------------------------------------------------------------------------------

// What the SKU's log says about one order at this SKU: the harness's own model, built from
// the events alone, to check the decider's state and the "no duplicate effects" rules.
struct Hold {
  bool reserved = false;   // a StockReserved was committed
  bool released = false;   // a StockReleased was committed
  bool committed = false;  // a StockCommitted was committed
  std::int64_t held = 0;   // units held now
  std::int64_t committed_qty = 0;
};

struct SkuEntity {
  sku::State state;
  std::vector<v1::SkuEvent> log;
  std::map<std::string, Hold> holds;  // order id -> what this SKU's log did for it
  std::int64_t model_reserved = 0;
  std::int64_t model_received = 0;
  std::int64_t model_shipped = 0;
};

struct OrderEntity {
  order::State state;
  std::vector<v1::OrderEvent> log;
  bool terminal_recorded = false;
  std::size_t terminal_log_size = 0;
  order::State terminal_state;
  std::size_t open_index = 0;  // position in World::open_orders_ while not terminal
  bool open = false;
};

// --- participants -------------------------------------------------------------------------------
// Both follow the contract: a repeated commandId gets the same answer (or the same silence),
// and an undo (void, cancel) names the request it undoes. An undo that arrives before the
// request it names (the network reorders) leaves a tombstone, so the late request is refused
// rather than acted on: without it no saga could ever undo a reordered request.

struct Authorization {
  std::string order_id;
  std::string payment_id;
  bool live = false;
  bool tombstone = false;  // voided before the authorize arrived
};

struct Shipment {
  std::string order_id;
  std::string shipment_id;
  bool live = false;
  bool tombstone = false;  // cancelled before the create arrived
};

// --- the world ---------------------------------------------------------------------------------

// Owns the whole simulated system for one run; single-threaded, used once (run()).
class World {
 public:
  explicit World(const Options& options) : options_(options), rng_(options.seed) {
    report_.seed = options.seed;
  }

  Report run();

 private:
  // Failure: the first one wins and stops the run.
  void fail(const std::string& what) {
    if (!failure_) failure_ = what;
  }
  bool failed() const { return failure_.has_value(); }

  void send(Message message) {
    if (network_.size() >= network_messages_max) {
      fail("network holds " + std::to_string(network_.size()) +
           " messages (network_messages_max): more is sent than delivered (raise "
           "deliveries_per_step_max for this load) or a reaction multiplies messages");
      return;
    }
    // Most messages are deliverable at once, in a random order; a few lag far behind, so
    // replies arrive after their step timed out and undos overtake what they undo.
    const std::int64_t ready_at_step =
        rng_.chance(options_.p_delay) ? step_ + rng_.between(1, options_.delay_steps_max) : 0;
    network_.push_back(InFlight{std::move(message), false, ready_at_step});
  }

  // Setup and load.
  void create_skus();
  void receive_stock();
  void place_order();
  void replace_order();
  void cancel_order();
  void expire_due_orders();
  void retry_order(const std::string& order_id);
  void retry_random_order();
  void inject_fault();

  // Network.
  void deliver_one();
  void deliver(const Message& message);
  void deliver_stock_command(const v1::StockCommand& command);
  void deliver_payment_request(const v1::PaymentRequest& request);
  void deliver_shipment_request(const v1::ShipmentRequest& request);
  void deliver_outcome(const v1::OrderOutcome& outcome);

  // Aggregates.
  void apply_sku_events(const std::string& key, SkuEntity& entity,
                        const std::vector<v1::SkuEvent>& events);
  void apply_sku_event(const std::string& key, SkuEntity& entity, const v1::SkuEvent& event);
  order::Decision command_order(const std::string& order_id, const order::Command& command);
  void note_terminal(const std::string& order_id, OrderEntity& entity);
  void close_open(const std::string& order_id, OrderEntity& entity);

  // Checks.
  void check_step();
  void check_sku(const std::string& key, const SkuEntity& entity);
  void check_order(const std::string& order_id, const OrderEntity& entity);
  void check_settled(const std::string& order_id, const OrderEntity& entity);
  void crash();
  void check_drained();

  void step(bool load);
  // Steps without progress (no event, no smaller network) after which the drain counts as stuck:
  // the base, plus the longest lag, plus four times the steps the clock needs (on average) to pass
  // the default deadline.
  std::int64_t drain_stall_steps() const {
    const std::int64_t clock_step_ms_mean =
        std::max<std::int64_t>(1, options_.max_clock_step_ms / 2);
    return drain_stall_steps_base + options_.delay_steps_max +
           4 * limits::deadline_ms_default / clock_step_ms_mean;
  }
  void count_final_states();

  const Options options_;
  Rng rng_;
  Report report_;
  std::optional<std::string> failure_;
  std::int64_t step_ = 0;
  std::int64_t last_event_step_ = 0;  // the last step that committed an event
  std::int64_t now_ms_ = 0;
  order::Policy policy_;

  std::map<std::string, SkuEntity> skus_;
  std::vector<std::string> sku_keys_;
  std::map<std::string, OrderEntity> orders_;
  std::vector<std::string> order_ids_;    // every order placed, in placing order
  std::vector<std::string> open_orders_;  // non-terminal, swap-removed when terminal
  std::int64_t next_order_ = 1;
  std::int64_t next_receipt_ = 1;
  std::int64_t next_unknown_ = 1;
  std::vector<v1::ReceiveStock> receipts_;  // for repeats

  std::vector<InFlight> network_;
  // The SKUs' first RELEASED / COMMITTED answer to each release / commit command id.
  std::map<std::string, v1::StockReply::Status> close_answers_;

  // Payment participant.
  std::map<std::string, std::optional<v1::PaymentReply>> payment_answers_;  // by commandId
  std::map<std::string, Authorization> authorizations_;  // by authorize commandId
  std::map<std::string, std::string> authorize_by_payment_id_;
  std::int64_t next_payment_ = 1;
  // Shipping participant.
  std::map<std::string, std::optional<v1::ShipmentReply>> shipment_answers_;
  std::map<std::string, Shipment> shipments_;  // by create commandId
  std::map<std::string, std::string> create_by_shipment_id_;
  std::int64_t next_shipment_ = 1;
  // The ledgers the checks read: live authorizations and shipments per order.
  std::map<std::string, int> live_authorizations_;
  std::map<std::string, int> live_shipments_;

  // Outcome collector: the first outcome of each order; later ones must be identical.
  std::map<std::string, v1::OrderOutcome> outcomes_;
  std::map<std::string, std::string> outcome_bytes_;

  // Touched in the current step, checked at its end.
  std::set<std::string> touched_skus_;
  std::set<std::string> touched_orders_;

  bool fault_injected_ = false;
};

// ---- setup and load --------------------------------------------------------------------------

void World::create_skus() {
  for (int i = 0; i < options_.skus; ++i) {
    std::string key = "sku-" + std::to_string(i);
    sku_keys_.push_back(key);
    SkuEntity& entity = skus_[key];
    if (options_.initial_stock <= 0) continue;
    v1::ReceiveStock receipt;
    receipt.set_sku(key);
    receipt.set_qty(options_.initial_stock);
    receipt.set_receipt_id("r-initial-" + std::to_string(i));
    sku::Decision decision = sku::decide(entity.state, receipt, now_ms_);
    if (decision.rejected() || decision.events.empty()) {
      fail("initial ReceiveStock for " + key + " produced no events" +
           (decision.rejected() ? ": " + decision.rejection->reason : std::string()));
      return;
    }
    apply_sku_events(key, entity, decision.events);
    receipts_.push_back(receipt);
  }
}

void World::receive_stock() {
  if (sku_keys_.empty()) return;
  // Sometimes a receipt the SKU already applied: the dedupe window must make it a no-op.
  if (!receipts_.empty() && rng_.chance(p_receipt_repeat)) {
    const v1::ReceiveStock receipt = receipts_[rng_.below(receipts_.size())];
    SkuEntity& entity = skus_.at(receipt.sku());
    sku::Decision decision = sku::decide(entity.state, receipt, now_ms_);
    if (!decision.events.empty()) {
      fail("repeated ReceiveStock {" + receipt.ShortDebugString() + "} at " + receipt.sku() +
           " produced events: " + decision.events.front().ShortDebugString());
    }
    return;
  }
  const std::string& key = sku_keys_[rng_.below(sku_keys_.size())];
  v1::ReceiveStock receipt;
  receipt.set_sku(key);
  receipt.set_qty(rng_.between(receipt_qty_min, receipt_qty_max));
  receipt.set_receipt_id("r-" + std::to_string(next_receipt_++));
  SkuEntity& entity = skus_.at(key);
  sku::Decision decision = sku::decide(entity.state, receipt, now_ms_);
  if (decision.rejected() || decision.events.size() != 1) {
    fail("ReceiveStock {" + receipt.ShortDebugString() + "} was not applied" +
         (decision.rejected() ? ": " + decision.rejection->reason : std::string()));
    return;
  }
  apply_sku_events(key, entity, decision.events);
  receipts_.push_back(receipt);
}

void World::place_order() {
  const std::string order_id = "o-" + std::to_string(next_order_++);
  v1::PlaceOrder place;
  place.set_order_id(order_id);
  place.set_customer_id("c-" + std::to_string(rng_.between(1, 50)));
  // Lines on distinct SKUs: pick from a shuffled copy of the keys.
  std::vector<std::string> keys = sku_keys_;
  const int lines = static_cast<int>(std::min<std::int64_t>(
      rng_.between(order_lines_min, order_lines_max), static_cast<std::int64_t>(keys.size())));
  for (int i = 0; i < lines; ++i) {
    std::size_t pick = i + rng_.below(keys.size() - i);
    std::swap(keys[i], keys[pick]);
    v1::OrderLine* line = place.add_lines();
    line->set_sku(keys[i]);
    line->set_qty(rng_.between(line_qty_min, line_qty_max));
    line->set_unit_price_cents(rng_.between(unit_price_cents_min, unit_price_cents_max));
  }
  place.mutable_payment()->set_method("card");
  const double token_roll = static_cast<double>(rng_.below(1'000'000)) / 1'000'000.0;
  place.mutable_payment()->set_token(token_roll < p_token_decline                    ? "tok_decline"
                                     : token_roll < p_token_decline + p_token_silent ? "tok_silent"
                                                                                     : "tok_visa");
  v1::Address* ship_to = place.mutable_ship_to();
  ship_to->set_name("A. Customer");
  ship_to->set_line1("1 Main St");
  ship_to->set_city("Springfield");
  ship_to->set_country(rng_.chance(p_country_fails) ? "XX" : "US");
  if (rng_.chance(p_short_deadline)) place.set_deadline_ms(short_deadline_ms);

  bool invalid = rng_.chance(p_invalid_order);
  if (invalid) {
    // One broken rule; validation must catch it and the order must be REJECTED at once.
    switch (rng_.below(3)) {
      case 0: place.mutable_lines(0)->set_qty(0); break;
      case 1: place.clear_lines(); break;
      default: place.mutable_lines(0)->set_unit_price_cents(-1); break;
    }
  }

  order_ids_.push_back(order_id);
  report_.orders++;
  order::Decision decision = command_order(order_id, place);
  if (failed()) return;
  const OrderEntity& entity = orders_.at(order_id);
  if (decision.rejected() || decision.events.empty()) {
    fail("PlaceOrder {" + place.ShortDebugString() + "} produced no events" +
         (decision.rejected() ? ": " + decision.rejection->reason : std::string()));
    return;
  }
  if (invalid && entity.state.state != v1::REJECTED) {
    fail("invalid PlaceOrder {" + place.ShortDebugString() + "} left " + order_id + " " +
         order_state_name(entity.state.state) + ", not REJECTED");
  }
  if (!invalid && entity.state.terminal()) {
    fail("valid PlaceOrder {" + place.ShortDebugString() + "} made " + order_id + " " +
         order_state_name(entity.state.state) + " at once (reason: " + entity.state.reason + ")");
  }
}

void World::replace_order() {
  if (order_ids_.empty()) return;
  const std::string& order_id = order_ids_[rng_.below(order_ids_.size())];
  const OrderEntity& entity = orders_.at(order_id);
  // Whatever its body, a PlaceOrder for an existing id changes nothing.
  v1::PlaceOrder place;
  place.set_order_id(order_id);
  place.set_customer_id("c-other");
  v1::OrderLine* line = place.add_lines();
  line->set_sku(sku_keys_.front());
  line->set_qty(1);
  line->set_unit_price_cents(100);
  place.mutable_payment()->set_method("card");
  place.mutable_payment()->set_token("tok_visa");
  place.mutable_ship_to()->set_name("B. Other");
  place.mutable_ship_to()->set_line1("2 Side St");
  place.mutable_ship_to()->set_city("Shelbyville");
  place.mutable_ship_to()->set_country("US");
  const order::State before = entity.state;
  order::Decision decision = command_order(order_id, place);
  if (failed()) return;
  if (!decision.events.empty() || !(orders_.at(order_id).state == before)) {
    fail("repeated PlaceOrder for existing " + order_id + " (" + order_state_name(before.state) +
         ") was not a no-op: " +
         (decision.events.empty() ? std::string("state changed")
                                  : decision.events.front().ShortDebugString()));
  }
}

void World::cancel_order() {
  v1::CancelOrder cancel;
  cancel.set_reason("customer request");
  if (order_ids_.empty() || rng_.chance(p_cancel_unknown)) {
    // Decided against the empty state directly: an unknown id must never become an entity.
    const std::string order_id = "o-unknown-" + std::to_string(next_unknown_++);
    cancel.set_order_id(order_id);
    const order::Decision decision = order::decide(order::State{}, cancel, now_ms_, policy_);
    if (!decision.events.empty() || !decision.rejected() ||
        decision.rejection->code != RejectionCode::kUnknownEntity) {
      fail("CancelOrder for unknown " + order_id + " was not rejected kUnknownEntity" +
           (decision.rejected() ? std::string(" (got ") + to_string(decision.rejection->code) + ")"
                                : " (" + std::to_string(decision.events.size()) + " events)"));
    }
    return;
  }
  std::string order_id;
  if (open_orders_.empty() || rng_.chance(p_cancel_any)) {
    order_id = order_ids_[rng_.below(order_ids_.size())];
  } else {
    order_id = open_orders_[rng_.below(open_orders_.size())];
  }
  cancel.set_order_id(order_id);
  const bool was_terminal = orders_.at(order_id).state.terminal();
  order::Decision decision = command_order(order_id, cancel);
  if (failed()) return;
  if (was_terminal && !decision.events.empty()) {
    fail("CancelOrder for terminal " + order_id +
         " produced events: " + decision.events.front().ShortDebugString());
  }
}

void World::expire_due_orders() {
  // Copy: expiring can make an order terminal, which edits open_orders_.
  const std::vector<std::string> open = open_orders_;
  for (const std::string& order_id : open) {
    const order::State& state = orders_.at(order_id).state;
    if (state.terminal() || state.step_deadline_at_ms == 0 || state.step_deadline_at_ms > now_ms_)
      continue;
    order::Decision decision = command_order(order_id, order::Expire{});
    if (failed()) return;
    if (decision.rejected()) {
      fail("Expire for " + order_id + " (" + order_state_name(state.state) + ", step deadline " +
           std::to_string(state.step_deadline_at_ms) + " <= now " + std::to_string(now_ms_) +
           ") was rejected: " + decision.rejection->reason);
      return;
    }
  }
}

void World::retry_order(const std::string& order_id) {
  for (saga::Outbound& outbound : saga::outstanding(orders_.at(order_id).state)) {
    std::visit([this](auto& message) { send(Message{std::move(message)}); }, outbound);
  }
}

void World::retry_random_order() {
  if (open_orders_.empty()) return;
  retry_order(open_orders_[rng_.below(open_orders_.size())]);
}

// Test-only: break the world on purpose so the tests can prove the checks are not vacuous.
void World::inject_fault() {
  if (fault_injected_ || options_.inject_fault != Fault::kReserveWithoutDecide) return;
  if (step_ < options_.inject_fault_at_step) return;
  // An extra StockReserved, applied straight to the state and log (skipping decide), for an
  // order that does not exist. It keeps the SKU's own invariants (so evolve accepts it), but
  // it is an effect nobody asked for.
  for (const std::string& key : sku_keys_) {
    SkuEntity& entity = skus_.at(key);
    if (entity.state.available() < 1) continue;
    v1::SkuEvent event;
    event.mutable_reserved()->set_order_id("o-fault");
    event.mutable_reserved()->set_qty(1);
    apply_sku_event(key, entity, event);
    fault_injected_ = true;
    return;
  }
}

// ---- network -----------------------------------------------------------------------------------

void World::deliver_one() {
  if (network_.empty()) return;
  const std::size_t index = rng_.below(network_.size());
  // A lagging message: this delivery finds nothing (a poll that came back empty).
  if (network_[index].ready_at_step > step_) return;
  InFlight in_flight;
  if (rng_.chance(options_.p_duplicate)) {
    // Redelivered later: the copy stays on the network.
    in_flight = network_[index];
    network_[index].delivered_before = true;
    if (rng_.chance(options_.p_delay))
      network_[index].ready_at_step = step_ + rng_.between(1, options_.delay_steps_max);
  } else {
    in_flight = std::move(network_[index]);
    if (index + 1 != network_.size()) network_[index] = std::move(network_.back());
    network_.pop_back();
  }
  report_.messages++;
  if (in_flight.delivered_before) report_.duplicates++;
  deliver(in_flight.message);
}

void World::deliver(const Message& message) {
  std::visit(
      [this](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, v1::StockCommand>) {
          deliver_stock_command(m);
        } else if constexpr (std::is_same_v<T, v1::PaymentRequest>) {
          deliver_payment_request(m);
        } else if constexpr (std::is_same_v<T, v1::ShipmentRequest>) {
          deliver_shipment_request(m);
        } else if constexpr (std::is_same_v<T, v1::OrderOutcome>) {
          deliver_outcome(m);
        } else {
          // StockReply, PaymentReply, ShipmentReply: back to the order.
          if (orders_.find(m.order_id()) == orders_.end()) {
            fail("a reply for unknown order " + m.order_id() + ": " + m.ShortDebugString());
            return;
          }
          order::Decision decision = command_order(m.order_id(), m);
          if (failed() || !decision.rejected()) return;
          const RejectionCode code = decision.rejection->code;
          if (code == RejectionCode::kUnexpected || code == RejectionCode::kAlreadyTerminal) {
            report_.late_replies++;
            // As the runtime does: a RESERVED the order no longer expects is released.
            if constexpr (std::is_same_v<T, v1::StockReply>) {
              for (saga::Outbound& out :
                   saga::answer_unexpected(orders_.at(m.order_id()).state, m)) {
                report_.unexpected_releases++;
                send(std::visit([](auto&& x) -> Message { return Message(std::move(x)); },
                                std::move(out)));
              }
            }
          } else {
            fail(m.GetTypeName() + " {" + m.ShortDebugString() + "} to " + m.order_id() +
                 " rejected " + to_string(code) + ": " + decision.rejection->reason);
          }
        }
      },
      message);
}

void World::deliver_stock_command(const v1::StockCommand& command) {
  auto found = skus_.find(command.sku());
  if (found == skus_.end()) {
    fail("StockCommand for a SKU the world never created: " + command.ShortDebugString());
    return;
  }
  SkuEntity& entity = found->second;
  sku::Decision decision = sku::decide(entity.state, command, now_ms_);
  if (decision.rejected() && !decision.events.empty()) {
    fail("sku::decide returned a rejection with events for " + command.ShortDebugString());
    return;
  }
  if (decision.rejected() && decision.rejection->code != RejectionCode::kClosed &&
      decision.rejection->code != RejectionCode::kOutOfStock) {
    fail("StockCommand {" + command.ShortDebugString() + "} rejected " +
         to_string(decision.rejection->code) + ": " + decision.rejection->reason);
    return;
  }
  if (decision.rejected() && decision.rejection->code == RejectionCode::kClosed &&
      command.kind() == v1::StockCommand::RESERVE) {
    report_.refused_reserves++;
  }
  apply_sku_events(command.sku(), entity, decision.events);
  if (failed()) return;
  v1::StockReply reply = sku::answer(entity.state, command, decision);
  if (reply.command_id() != command.command_id() || reply.order_id() != command.order_id() ||
      reply.sku() != command.sku()) {
    fail("StockReply {" + reply.ShortDebugString() + "} does not answer {" +
         command.ShortDebugString() + "}");
    return;
  }
  // A close is final: once a SKU answered a release RELEASED or a commit COMMITTED, every
  // repeat of that command gets the same answer (sku.h, idempotency).
  if (reply.status() == v1::StockReply::RELEASED || reply.status() == v1::StockReply::COMMITTED) {
    auto [first, inserted] = close_answers_.emplace(command.command_id(), reply.status());
    if (!inserted && first->second != reply.status()) {
      fail("sku " + command.sku() + " answered " + command.command_id() + " " +
           v1::StockReply::Status_Name(first->second) + ", then " +
           v1::StockReply::Status_Name(reply.status()) + " on a repeat");
      return;
    }
  } else if (auto first = close_answers_.find(command.command_id());
             first != close_answers_.end()) {
    fail("sku " + command.sku() + " answered " + command.command_id() + " " +
         v1::StockReply::Status_Name(first->second) + ", then " +
         v1::StockReply::Status_Name(reply.status()) + " on a repeat" +
         (decision.rejected() ? " (" + decision.rejection->reason + ")" : std::string()));
    return;
  }
  send(Message{std::move(reply)});
}

void World::deliver_payment_request(const v1::PaymentRequest& request) {
  auto answer_with = [&](const std::optional<v1::PaymentReply>& reply) {
    if (!reply) return;  // silent: never answered, not even on a repeat
    send(Message{*reply});
    if (rng_.chance(p_answer_twice)) send(Message{*reply});
  };
  auto memo = payment_answers_.find(request.command_id());
  if (memo != payment_answers_.end()) {
    answer_with(memo->second);
    return;
  }
  std::optional<v1::PaymentReply> reply;
  v1::PaymentReply base;
  base.set_command_id(request.command_id());
  base.set_order_id(request.order_id());
  if (request.has_authorize()) {
    Authorization& authorization = authorizations_[request.command_id()];
    authorization.order_id = request.order_id();
    const std::string& token = request.authorize().token();
    if (authorization.tombstone) {
      base.set_status(v1::PaymentReply::FAILED);
      base.set_reason("voided before it was authorized");
      reply = base;
    } else if (token == "tok_decline") {
      base.set_status(v1::PaymentReply::DECLINED);
      base.set_reason("card declined");
      reply = base;
    } else if (token == "tok_silent") {
      // Never answered; maybe acted on all the same (the "ghost" the saga must void).
      if (rng_.chance(p_ghost)) {
        report_.ghosts++;
        authorization.payment_id = "p-" + std::to_string(next_payment_++);
        authorization.live = true;
        authorize_by_payment_id_[authorization.payment_id] = request.command_id();
        live_authorizations_[request.order_id()]++;
      }
    } else if (rng_.chance(p_payment_failed)) {
      base.set_status(v1::PaymentReply::FAILED);
      base.set_reason("processor unavailable");
      reply = base;
    } else {
      authorization.payment_id = "p-" + std::to_string(next_payment_++);
      authorization.live = true;
      authorize_by_payment_id_[authorization.payment_id] = request.command_id();
      live_authorizations_[request.order_id()]++;
      base.set_status(v1::PaymentReply::APPROVED);
      base.set_payment_id(authorization.payment_id);
      reply = base;
    }
  } else if (request.has_void_() || request.has_refund()) {
    // Void (and refund, treated alike: v1 never captures) finds the authorization by the
    // command id it names, or by payment id.
    std::string authorize_command_id;
    std::string payment_id;
    if (request.has_void_()) {
      authorize_command_id = request.void_().authorize_command_id();
      payment_id = request.void_().payment_id();
    } else {
      payment_id = request.refund().payment_id();
    }
    if (authorize_command_id.empty()) {
      auto by_id = authorize_by_payment_id_.find(payment_id);
      if (by_id != authorize_by_payment_id_.end()) authorize_command_id = by_id->second;
    }
    if (!authorize_command_id.empty()) {
      Authorization& authorization = authorizations_[authorize_command_id];
      if (authorization.order_id.empty()) {
        authorization.order_id = request.order_id();
        authorization.tombstone = true;
      }
      if (authorization.live && options_.inject_fault != Fault::kParticipantIgnoresVoid) {
        authorization.live = false;
        live_authorizations_[authorization.order_id]--;
      }
      if (payment_id.empty()) payment_id = authorization.payment_id;
    }
    base.set_status(v1::PaymentReply::APPROVED);
    base.set_payment_id(payment_id);
    reply = base;
  } else {
    fail("PaymentRequest with no request set: " + request.ShortDebugString());
    return;
  }
  if (live_authorizations_[request.order_id()] > 1) {
    fail("payment participant holds " + std::to_string(live_authorizations_[request.order_id()]) +
         " live authorizations for " + request.order_id());
    return;
  }
  payment_answers_[request.command_id()] = reply;
  answer_with(reply);
}

void World::deliver_shipment_request(const v1::ShipmentRequest& request) {
  auto answer_with = [&](const std::optional<v1::ShipmentReply>& reply) {
    if (!reply) return;
    send(Message{*reply});
    if (rng_.chance(p_answer_twice)) send(Message{*reply});
  };
  auto memo = shipment_answers_.find(request.command_id());
  if (memo != shipment_answers_.end()) {
    answer_with(memo->second);
    return;
  }
  std::optional<v1::ShipmentReply> reply;
  v1::ShipmentReply base;
  base.set_command_id(request.command_id());
  base.set_order_id(request.order_id());
  if (request.has_create()) {
    Shipment& shipment = shipments_[request.command_id()];
    shipment.order_id = request.order_id();
    if (shipment.tombstone) {
      base.set_status(v1::ShipmentReply::FAILED);
      base.set_reason("cancelled before it was created");
      reply = base;
    } else if (request.create().ship_to().country() == "XX") {
      base.set_status(v1::ShipmentReply::FAILED);
      base.set_reason("cannot ship to country XX");
      reply = base;
    } else if (rng_.chance(p_shipment_silent)) {
      if (rng_.chance(p_ghost)) {
        report_.ghosts++;
        shipment.shipment_id = "s-" + std::to_string(next_shipment_++);
        shipment.live = true;
        create_by_shipment_id_[shipment.shipment_id] = request.command_id();
        live_shipments_[request.order_id()]++;
      }
    } else {
      shipment.shipment_id = "s-" + std::to_string(next_shipment_++);
      shipment.live = true;
      create_by_shipment_id_[shipment.shipment_id] = request.command_id();
      live_shipments_[request.order_id()]++;
      base.set_status(v1::ShipmentReply::CREATED);
      base.set_shipment_id(shipment.shipment_id);
      reply = base;
    }
  } else if (request.has_cancel()) {
    std::string create_command_id = request.cancel().create_command_id();
    std::string shipment_id = request.cancel().shipment_id();
    if (create_command_id.empty()) {
      auto by_id = create_by_shipment_id_.find(shipment_id);
      if (by_id != create_by_shipment_id_.end()) create_command_id = by_id->second;
    }
    if (!create_command_id.empty()) {
      Shipment& shipment = shipments_[create_command_id];
      if (shipment.order_id.empty()) {
        shipment.order_id = request.order_id();
        shipment.tombstone = true;
      }
      if (shipment.live) {
        shipment.live = false;
        live_shipments_[shipment.order_id]--;
      }
      if (shipment_id.empty()) shipment_id = shipment.shipment_id;
    }
    base.set_status(v1::ShipmentReply::CANCELLED);
    base.set_shipment_id(shipment_id);
    reply = base;
  } else {
    fail("ShipmentRequest with no request set: " + request.ShortDebugString());
    return;
  }
  if (live_shipments_[request.order_id()] > 1) {
    fail("shipping participant holds " + std::to_string(live_shipments_[request.order_id()]) +
         " live shipments for " + request.order_id());
    return;
  }
  shipment_answers_[request.command_id()] = reply;
  answer_with(reply);
}

void World::deliver_outcome(const v1::OrderOutcome& outcome) {
  auto order = orders_.find(outcome.order_id());
  if (order == orders_.end()) {
    fail("an outcome for unknown order: " + outcome.ShortDebugString());
    return;
  }
  const order::State& state = order->second.state;
  if (!state.terminal() || outcome.state() != state.state) {
    fail("outcome {" + outcome.ShortDebugString() + "} but " + outcome.order_id() + " is " +
         order_state_name(state.state));
    return;
  }
  std::string bytes = deterministic_bytes(outcome);
  auto seen = outcome_bytes_.find(outcome.order_id());
  if (seen == outcome_bytes_.end()) {
    outcome_bytes_.emplace(outcome.order_id(), std::move(bytes));
    outcomes_.emplace(outcome.order_id(), outcome);
  } else if (seen->second != bytes) {
    fail(outcome.order_id() + " got two distinct outcomes: {" +
         outcomes_.at(outcome.order_id()).ShortDebugString() + "} and {" +
         outcome.ShortDebugString() + "}");
  }
}

// ---- aggregates --------------------------------------------------------------------------------

void World::apply_sku_events(const std::string& key, SkuEntity& entity,
                             const std::vector<v1::SkuEvent>& events) {
  for (const v1::SkuEvent& event : events) {
    apply_sku_event(key, entity, event);
    if (failed()) return;
  }
}

void World::apply_sku_event(const std::string& key, SkuEntity& entity, const v1::SkuEvent& event) {
  // The "no duplicate effects" rules, checked on the SKU's log as each event commits.
  auto broke = [&](const std::string& rule) {
    fail("sku " + key + ": " + rule + " (event " + event.ShortDebugString() + ")");
  };
  switch (event.event_case()) {
    case v1::SkuEvent::kReceived: entity.model_received += event.received().qty(); break;
    case v1::SkuEvent::kReserved: {
      Hold& hold = entity.holds[event.reserved().order_id()];
      if (hold.reserved) return broke("a second StockReserved for the same order");
      if (hold.released || hold.committed) return broke("StockReserved after the order's close");
      if (event.reserved().qty() < 1) return broke("StockReserved of fewer than 1 unit");
      hold.reserved = true;
      hold.held = event.reserved().qty();
      entity.model_reserved += hold.held;
      break;
    }
    case v1::SkuEvent::kReleased: {
      Hold& hold = entity.holds[event.released().order_id()];
      if (hold.released) return broke("a second StockReleased for the same order");
      if (hold.committed) return broke("StockReleased after StockCommitted");
      if (event.released().qty() != hold.held)
        return broke("StockReleased of " + std::to_string(event.released().qty()) +
                     " units while the order held " + std::to_string(hold.held));
      entity.model_reserved -= hold.held;
      hold.held = 0;
      hold.released = true;
      break;
    }
    case v1::SkuEvent::kCommitted: {
      Hold& hold = entity.holds[event.committed().order_id()];
      if (hold.committed) return broke("a second StockCommitted for the same order");
      if (hold.released) return broke("StockCommitted after StockReleased");
      if (hold.held < 1 || event.committed().qty() != hold.held)
        return broke("StockCommitted of " + std::to_string(event.committed().qty()) +
                     " units while the order held " + std::to_string(hold.held));
      entity.model_reserved -= hold.held;
      entity.model_shipped += hold.held;
      hold.committed_qty = hold.held;
      hold.held = 0;
      hold.committed = true;
      break;
    }
    case v1::SkuEvent::kAdjusted: return broke("an adjustment, which the simulation never sends");
    case v1::SkuEvent::EVENT_NOT_SET: return broke("an event with nothing set");
  }
  entity.log.push_back(event);
  sku::evolve(entity.state, key, event);
  report_.events++;
  last_event_step_ = step_;
  touched_skus_.insert(key);
}

order::Decision World::command_order(const std::string& order_id, const order::Command& command) {
  OrderEntity& entity = orders_[order_id];
  const bool was_terminal = entity.state.terminal();
  order::Decision decision = order::decide(entity.state, command, now_ms_, policy_);
  if (decision.rejected() && !decision.events.empty()) {
    fail("order::decide returned a rejection with events for " + order_id);
    return decision;
  }
  if (was_terminal && !decision.events.empty()) {
    fail("terminal " + order_id + " (" + order_state_name(entity.state.state) +
         ") took a new event: " + decision.events.front().ShortDebugString());
    return decision;
  }
  if (decision.events.empty()) return decision;
  const bool existed = entity.state.exists();
  for (const v1::OrderEvent& event : decision.events) {
    entity.log.push_back(event);
    order::evolve(entity.state, event);
    report_.events++;
    if (event.has_step_timed_out()) report_.timeouts++;
    last_event_step_ = step_;
    for (saga::Outbound& outbound : saga::react(entity.state, event)) {
      std::visit([this](auto& message) { send(Message{std::move(message)}); }, outbound);
    }
  }
  touched_orders_.insert(order_id);
  if (!existed && entity.state.exists() && !entity.state.terminal()) {
    entity.open = true;
    entity.open_index = open_orders_.size();
    open_orders_.push_back(order_id);
  }
  if (entity.state.terminal() && !entity.terminal_recorded) note_terminal(order_id, entity);
  return decision;
}

void World::close_open(const std::string& order_id, OrderEntity& entity) {
  if (!entity.open) return;
  const std::size_t index = entity.open_index;
  FFE_ASSERT(index < open_orders_.size() && open_orders_[index] == order_id,
             "open_orders_ index out of step");
  if (index + 1 != open_orders_.size()) {
    open_orders_[index] = std::move(open_orders_.back());
    orders_.at(open_orders_[index]).open_index = index;
  }
  open_orders_.pop_back();
  entity.open = false;
}

void World::note_terminal(const std::string& order_id, OrderEntity& entity) {
  entity.terminal_recorded = true;
  entity.terminal_log_size = entity.log.size();
  entity.terminal_state = entity.state;
  close_open(order_id, entity);
  check_settled(order_id, entity);
}

// ---- checks ------------------------------------------------------------------------------------

// When an order turns terminal, everything it did at the SKUs is settled: an order becomes
// terminal only once each SKU has acknowledged, and a SKU applies before it answers.
void World::check_settled(const std::string& order_id, const OrderEntity& entity) {
  const order::State& state = entity.state;
  for (const order::Line& line : state.lines) {
    auto sku = skus_.find(line.sku);
    if (sku == skus_.end()) continue;  // an invalid order may name anything
    const SkuEntity& sku_entity = sku->second;
    auto hold = sku_entity.holds.find(order_id);
    const bool held_here = sku_entity.state.reservations.count(order_id) != 0 ||
                           (hold != sku_entity.holds.end() && hold->second.held != 0);
    if (held_here) {
      fail(order_id + " is " + order_state_name(state.state) + " but sku " + line.sku +
           " still holds a reservation for it");
      return;
    }
    const bool committed = hold != sku_entity.holds.end() && hold->second.committed;
    if (state.state == v1::FULFILLED) {
      if (!committed || hold->second.committed_qty != line.qty) {
        fail(order_id + " is FULFILLED but sku " + line.sku + " did not commit its line of " +
             std::to_string(line.qty) + " units");
        return;
      }
    } else if (committed) {
      fail(order_id + " is " + order_state_name(state.state) + " but sku " + line.sku +
           " committed " + std::to_string(hold->second.committed_qty) + " units for it");
      return;
    }
  }
}

void World::check_sku(const std::string& key, const SkuEntity& entity) {
  const sku::State& state = entity.state;
  if (auto broken = sku::check_invariants(state)) {
    fail("sku " + key + " breaks its invariants: " + *broken);
    return;
  }
  // Invariant 1 of the architecture, spelled out (check_invariants must agree).
  if (state.reserved < 0 || state.reserved > state.on_hand ||
      state.shipped_total > state.received_total + state.adjusted_in_total) {
    fail("sku " + key + " oversold: on_hand " + std::to_string(state.on_hand) + " reserved " +
         std::to_string(state.reserved) + " shipped " + std::to_string(state.shipped_total) +
         " received " + std::to_string(state.received_total));
    return;
  }
  // The state agrees with what its log says happened.
  if (state.reserved != entity.model_reserved || state.shipped_total != entity.model_shipped ||
      state.received_total != entity.model_received ||
      state.on_hand != entity.model_received - entity.model_shipped) {
    fail("sku " + key + " state disagrees with its log: reserved " +
         std::to_string(state.reserved) + " (log " + std::to_string(entity.model_reserved) +
         "), shipped " + std::to_string(state.shipped_total) + " (log " +
         std::to_string(entity.model_shipped) + "), received " +
         std::to_string(state.received_total) + " (log " + std::to_string(entity.model_received) +
         "), on_hand " + std::to_string(state.on_hand));
    return;
  }
  // Every reservation belongs to an order that exists and is still open. The smallest bad
  // id is reported, so the message does not depend on the hash map's order.
  std::optional<std::string> bad;
  for (const auto& [order_id, qty] : state.reservations) {
    auto order = orders_.find(order_id);
    if (order != orders_.end() && order->second.state.exists() && !order->second.state.terminal())
      continue;
    if (!bad || order_id < *bad) bad = order_id;
  }
  if (bad) {
    auto order = orders_.find(*bad);
    fail("sku " + key + " holds a reservation for " + *bad + ", which is " +
         (order == orders_.end() || !order->second.state.exists()
              ? std::string("no order")
              : order_state_name(order->second.state.state)));
  }
}

void World::check_order(const std::string& order_id, const OrderEntity& entity) {
  if (auto broken = order::check_invariants(entity.state)) {
    fail("order " + order_id + " breaks its invariants: " + *broken + " (state " +
         order_state_name(entity.state.state) + ")");
    return;
  }
  if (entity.terminal_recorded &&
      (entity.log.size() != entity.terminal_log_size || !(entity.state == entity.terminal_state))) {
    fail("terminal " + order_id + " changed after it became " +
         order_state_name(entity.terminal_state.state) + ": now " +
         order_state_name(entity.state.state) + " with " + std::to_string(entity.log.size()) +
         " events (was " + std::to_string(entity.terminal_log_size) + ")");
  }
}

void World::check_step() {
  for (const std::string& key : touched_skus_) {
    check_sku(key, skus_.at(key));
    if (failed()) return;
  }
  for (const std::string& order_id : touched_orders_) {
    check_order(order_id, orders_.at(order_id));
    if (failed()) return;
  }
  touched_skus_.clear();
  touched_orders_.clear();
}

// A crash: every aggregate is rebuilt from its log and must equal the live one, through
// evolve and through a snapshot round trip; then the world goes on with the rebuilt states.
// The network survives (Kafka keeps its messages); so do the participants.
void World::crash() {
  report_.crashes++;
  for (auto& [key, entity] : skus_) {
    sku::State rebuilt;
    for (const v1::SkuEvent& event : entity.log) sku::evolve(rebuilt, key, event);
    if (!(rebuilt == entity.state)) {
      fail("sku " + key + " rebuilt from its " + std::to_string(entity.log.size()) +
           " events differs from the live state: {" + sku::to_snapshot(rebuilt).ShortDebugString() +
           "} vs {" + sku::to_snapshot(entity.state).ShortDebugString() + "}");
      return;
    }
    const v1::SkuSnapshot snapshot = sku::to_snapshot(rebuilt);
    if (!(sku::from_snapshot(snapshot) == rebuilt)) {
      fail("sku " + key + " does not survive a snapshot round trip: {" +
           snapshot.ShortDebugString() + "}");
      return;
    }
    if (deterministic_bytes(snapshot) != deterministic_bytes(sku::to_snapshot(entity.state))) {
      fail("sku " + key + " snapshot bytes of the rebuilt and live states differ");
      return;
    }
    entity.state = std::move(rebuilt);
  }
  for (auto& [order_id, entity] : orders_) {
    order::State rebuilt;
    for (const v1::OrderEvent& event : entity.log) order::evolve(rebuilt, event);
    if (!(rebuilt == entity.state)) {
      fail("order " + order_id + " rebuilt from its " + std::to_string(entity.log.size()) +
           " events differs from the live state: {" +
           order::to_snapshot(rebuilt).ShortDebugString() + "} vs {" +
           order::to_snapshot(entity.state).ShortDebugString() + "}");
      return;
    }
    const v1::OrderSnapshot snapshot = order::to_snapshot(rebuilt);
    if (!(order::from_snapshot(snapshot) == rebuilt)) {
      fail("order " + order_id + " does not survive a snapshot round trip: {" +
           snapshot.ShortDebugString() + "}");
      return;
    }
    if (deterministic_bytes(snapshot) != deterministic_bytes(order::to_snapshot(entity.state))) {
      fail("order " + order_id + " snapshot bytes of the rebuilt and live states differ");
      return;
    }
    entity.state = std::move(rebuilt);
  }
}

void World::check_drained() {
  for (const auto& [order_id, entity] : orders_) {
    const order::State& state = entity.state;
    if (!state.terminal()) {
      fail("order " + order_id + " not terminal after drain: state " +
           order_state_name(state.state) + ", step " + v1::SagaStep_Name(state.step) +
           ", step deadline " + std::to_string(state.step_deadline_at_ms) + ", now " +
           std::to_string(now_ms_));
      return;
    }
    check_settled(order_id, entity);
    if (failed()) return;
    const int authorizations =
        live_authorizations_.count(order_id) ? live_authorizations_.at(order_id) : 0;
    const int shipments = live_shipments_.count(order_id) ? live_shipments_.at(order_id) : 0;
    auto outcome = outcomes_.find(order_id);
    if (outcome == outcomes_.end()) {
      fail("order " + order_id + " is " + order_state_name(state.state) +
           " but no outcome arrived");
      return;
    }
    if (outcome->second.state() != state.state) {
      fail("order " + order_id + " is " + order_state_name(state.state) + " but its outcome says " +
           order_state_name(outcome->second.state()));
      return;
    }
    if (state.state == v1::FULFILLED) {
      if (authorizations != 1 || shipments != 1) {
        fail("FULFILLED order " + order_id + " has " + std::to_string(authorizations) +
             " live authorizations and " + std::to_string(shipments) +
             " live shipments at the participants (want 1 and 1)");
        return;
      }
      const Authorization& authorization = authorizations_.at(saga::authorize_command_id(order_id));
      const Shipment& shipment = shipments_.at(saga::ship_command_id(order_id));
      if (outcome->second.payment_id() != authorization.payment_id ||
          outcome->second.shipment_id() != shipment.shipment_id) {
        fail("FULFILLED order " + order_id + " outcome names payment " +
             outcome->second.payment_id() + " and shipment " + outcome->second.shipment_id() +
             " but the participants hold " + authorization.payment_id + " and " +
             shipment.shipment_id);
        return;
      }
    } else if (authorizations != 0 || shipments != 0) {
      fail(order_state_name(state.state) + " order " + order_id + " left " +
           std::to_string(authorizations) + " live authorizations and " +
           std::to_string(shipments) + " live shipments at the participants (want none)");
      return;
    }
  }
  std::int64_t shipped = 0;
  for (const auto& [key, entity] : skus_) {
    check_sku(key, entity);
    if (failed()) return;
    if (entity.state.reserved != 0 || !entity.state.reservations.empty()) {
      fail("sku " + key + " still holds " + std::to_string(entity.state.reserved) +
           " reserved units after drain");
      return;
    }
    if (entity.state.on_hand != entity.state.received_total - entity.state.shipped_total) {
      fail("sku " + key + " on_hand " + std::to_string(entity.state.on_hand) + " != received " +
           std::to_string(entity.state.received_total) + " - shipped " +
           std::to_string(entity.state.shipped_total));
      return;
    }
    shipped += entity.state.shipped_total;
  }
  std::int64_t fulfilled_units = 0;
  for (const auto& [order_id, entity] : orders_) {
    if (entity.state.state != v1::FULFILLED) continue;
    for (const order::Line& line : entity.state.lines) fulfilled_units += line.qty;
  }
  if (shipped != fulfilled_units) {
    fail("SKUs shipped " + std::to_string(shipped) + " units but FULFILLED orders hold " +
         std::to_string(fulfilled_units));
  }
}

// ---- the run -----------------------------------------------------------------------------------

void World::step(bool load) {
  step_++;
  now_ms_ += rng_.between(0, options_.max_clock_step_ms);
  if (load) {
    if (rng_.chance(options_.p_place)) place_order();
    if (!failed() && rng_.chance(p_replace_order)) replace_order();
    if (!failed() && rng_.chance(options_.p_receive)) receive_stock();
    if (!failed() && rng_.chance(options_.p_cancel)) cancel_order();
  }
  if (!failed() && (!load || rng_.chance(options_.p_expire))) expire_due_orders();
  if (!failed() && load && rng_.chance(options_.p_retry)) retry_random_order();
  if (!failed() && !load && step_ % drain_retry_interval_steps == 0) {
    const std::vector<std::string> open = open_orders_;
    for (const std::string& order_id : open) {
      retry_order(order_id);
      if (failed()) break;
    }
  }
  // The drain always delivers at least one message, so it makes progress.
  const std::int64_t deliveries = rng_.between(load ? 0 : 1, options_.deliveries_per_step_max);
  for (std::int64_t i = 0; i < deliveries && !failed(); ++i) deliver_one();
  if (!failed()) inject_fault();
  if (!failed() && rng_.chance(options_.p_crash)) {
    check_step();  // the live states were good before the crash compares against them
    if (!failed()) crash();
    // A restarted runtime resends what every open order is waiting on (fulfillment.h).
    const std::vector<std::string> open = open_orders_;
    for (const std::string& order_id : open) {
      if (failed()) break;
      retry_order(order_id);
    }
  }
  if (!failed()) check_step();
  if (network_.size() > static_cast<std::size_t>(report_.in_flight_max))
    report_.in_flight_max = static_cast<std::int64_t>(network_.size());
}

void World::count_final_states() {
  for (const auto& [order_id, entity] : orders_) {
    switch (entity.state.state) {
      case v1::FULFILLED: report_.fulfilled++; break;
      case v1::CANCELLED: report_.cancelled++; break;
      case v1::REJECTED: report_.rejected++; break;
      default: break;
    }
  }
  for (const auto& [key, entity] : skus_) report_.units_shipped += entity.state.shipped_total;
}

// Options a run cannot work with: a failure of the run (it is input), not an assertion.
std::optional<std::string> invalid_options(const Options& options) {
  auto probability = [](double p) { return p >= 0.0 && p <= 1.0; };
  if (options.steps < 0) return "steps must be >= 0";
  if (options.skus < 1) return "skus must be >= 1";
  if (options.initial_stock < 0) return "initial_stock must be >= 0";
  if (!probability(options.p_place) || !probability(options.p_receive) ||
      !probability(options.p_cancel) || !probability(options.p_duplicate) ||
      !probability(options.p_delay) || !probability(options.p_expire) ||
      !probability(options.p_retry) || !probability(options.p_crash))
    return "every p_* must be between 0 and 1";
  if (options.delay_steps_max < 1) return "delay_steps_max must be >= 1";
  if (options.max_clock_step_ms < 0) return "max_clock_step_ms must be >= 0";
  if (options.deliveries_per_step_max < 1) return "deliveries_per_step_max must be >= 1";
  if (options.drain_steps_max < 1) return "drain_steps_max must be >= 1";
  return std::nullopt;
}

Report World::run() {
  if (auto invalid = invalid_options(options_)) {
    report_.failure =
        "seed " + std::to_string(options_.seed) + " step 0: invalid options: " + *invalid;
    return report_;
  }
  create_skus();
  if (!failed()) check_step();
  while (!failed() && step_ < options_.steps) step(/*load=*/true);
  const std::int64_t load_steps = step_;
  // Progress in the drain: an event committed, or the network smaller than ever before.
  std::size_t network_min = network_.size();
  std::int64_t last_progress_step = step_;
  while (!failed() && (!network_.empty() || !open_orders_.empty())) {
    if (network_.size() < network_min) {
      network_min = network_.size();
      last_progress_step = step_;
    }
    last_progress_step = std::max(last_progress_step, last_event_step_);
    const bool stalled = step_ - last_progress_step >= drain_stall_steps();
    if (stalled || step_ - load_steps >= options_.drain_steps_max) {
      const std::string order_id = open_orders_.empty() ? std::string() : open_orders_.front();
      const std::string drained = std::to_string(step_ - load_steps) + " drain steps, the last " +
                                  std::to_string(step_ - last_progress_step) + " without progress";
      if (order_id.empty()) {
        fail("network still holds " + std::to_string(network_.size()) + " messages after " +
             drained + " (first: " +
             std::visit(
                 [](const auto& m) { return m.GetTypeName() + " {" + m.ShortDebugString() + "}"; },
                 network_.front().message) +
             ")");
      } else {
        const order::State& state = orders_.at(order_id).state;
        fail("order " + order_id + " not terminal after drain (" + drained + "): state " +
             order_state_name(state.state) + ", step " + v1::SagaStep_Name(state.step) +
             ", step deadline " + std::to_string(state.step_deadline_at_ms) + ", now " +
             std::to_string(now_ms_) + ", outstanding " +
             std::to_string(saga::outstanding(state).size()) + " requests");
      }
      break;
    }
    step(/*load=*/false);
  }
  report_.drain_steps = step_ - load_steps;
  if (!failed()) check_drained();
  report_.steps = step_;
  count_final_states();
  if (failure_) {
    report_.failure = "seed " + std::to_string(options_.seed) + " step " + std::to_string(step_) +
                      ": " + *failure_;
  }
  return report_;
}

}  // namespace

Report run(const Options& options) {
  World world(options);
  return world.run();
}

std::string to_json(const Report& report) {
  std::string out = "{";
  auto field = [&](std::string_view name, std::int64_t value) {
    if (out.size() > 1) out += ",";
    events::json::append_string(out, name);
    out += ":" + std::to_string(value);
  };
  out += "\"seed\":" + std::to_string(report.seed);
  field("steps", report.steps);
  field("drainSteps", report.drain_steps);
  field("orders", report.orders);
  field("fulfilled", report.fulfilled);
  field("cancelled", report.cancelled);
  field("rejected", report.rejected);
  field("events", report.events);
  field("messages", report.messages);
  field("duplicates", report.duplicates);
  field("lateReplies", report.late_replies);
  field("crashes", report.crashes);
  field("timeouts", report.timeouts);
  field("ghosts", report.ghosts);
  field("refusedReserves", report.refused_reserves);
  field("unexpectedReleases", report.unexpected_releases);
  field("unitsShipped", report.units_shipped);
  field("inFlightMax", report.in_flight_max);
  out += ",\"failure\":";
  if (report.failure) {
    events::json::append_string(out, *report.failure);
  } else {
    out += "null";
  }
  out += "}";
  return out;
}

}  // namespace ffe::sim
