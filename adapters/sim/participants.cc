#include "adapters/sim/participants.h"

#include <algorithm>
#include <type_traits>
#include <utility>

namespace ffe::participants {

using Life = Ledger::Life;
using Entry = Ledger::Entry;

// --- Ledger ---------------------------------------------------------------------------------

Ledger::Ledger(std::size_t capacity) : capacity_(std::max<std::size_t>(capacity, 4)) {
  by_command_.reserve(std::min<std::size_t>(capacity_, std::size_t{1} << 16));
}

void Ledger::touch(List::iterator it) { lru_.splice(lru_.begin(), lru_, it); }

Entry* Ledger::find(std::string_view command_id) {
  auto it = by_command_.find(command_id);
  if (it == by_command_.end()) return nullptr;
  touch(it->second);
  return &*it->second;
}

Entry* Ledger::find_by_order(std::string_view order_id) {
  if (order_id.empty()) return nullptr;
  auto it = by_order_.find(order_id);
  if (it == by_order_.end()) return nullptr;
  touch(it->second);
  return &*it->second;
}

Entry& Ledger::insert(std::string_view command_id, std::string_view order_id) {
  if (lru_.size() >= capacity_) {
    Entry& oldest = lru_.back();
    if (oldest.indexed) {
      auto indexed = by_order_.find(oldest.order_id());
      if (indexed != by_order_.end() && &*indexed->second == &oldest) by_order_.erase(indexed);
    }
    by_command_.erase(oldest.command_id);
    lru_.pop_back();
    ++forgotten_;
  }
  lru_.emplace_front();
  Entry& entry = lru_.front();
  entry.command_id.assign(command_id);
  if (!order_id.empty() && order_id.size() < 256 && command_id.size() > order_id.size() &&
      command_id.substr(0, order_id.size()) == order_id && command_id[order_id.size()] == ':') {
    entry.order_length = static_cast<std::uint8_t>(order_id.size());
  } else {
    entry.other_order_id.assign(order_id);
  }
  by_command_.emplace(std::string_view(entry.command_id), lru_.begin());
  return entry;
}

void Ledger::index_by_order(Entry& entry) {
  auto it = by_command_.find(entry.command_id);
  if (it == by_command_.end() || entry.order_id().empty()) return;
  entry.indexed = true;
  by_order_.insert_or_assign(entry.order_id(), it->second);
}

// --- shared ---------------------------------------------------------------------------------

std::string payment_id_for(std::string_view order_id) { return "p-" + std::string(order_id); }
std::string shipment_id_for(std::string_view order_id) { return "s-" + std::string(order_id); }

namespace {

void answer(Entry& entry, int status, const char* why, bool with_id = false) {
  entry.answered = true;
  entry.status = static_cast<std::uint8_t>(status);
  entry.reason = why;
  entry.reply_has_id = with_id;
}

// Repeats the stored answer of a command id already received; nullopt if it was silent.
template <class Reply>
std::optional<Reply> stored_reply(const Entry& entry, Stats& stats) {
  if (!entry.answered) {
    ++stats.silent;
    return std::nullopt;
  }
  Reply reply;
  reply.set_command_id(entry.command_id);
  reply.set_order_id(std::string(entry.order_id()));
  reply.set_status(static_cast<typename Reply::Status>(entry.status));
  reply.set_reason(entry.reason);
  if constexpr (std::is_same_v<Reply, v1::PaymentReply>) {
    if (entry.reply_has_id) reply.set_payment_id(payment_id_for(entry.order_id()));
  } else {
    if (entry.reply_has_id) reply.set_shipment_id(shipment_id_for(entry.order_id()));
  }
  if (entry.status > 0 && entry.status < static_cast<int>(stats.answers.size())) {
    ++stats.answers[static_cast<std::size_t>(entry.status)];
  }
  return reply;
}

// The entry for a request arriving now: its tombstone if an undo named it first, else new.
Entry& entry_for(Ledger& ledger, Entry* tombstone, std::string_view command_id,
                 std::string_view order_id) {
  Entry& entry = tombstone ? *tombstone : ledger.insert(command_id, order_id);
  entry.received = true;
  return entry;
}

// The order a minted id ("p-<orderId>") belongs to; "" if it is not one of ours.
std::string_view order_of(std::string_view minted_id, std::string_view prefix) {
  if (minted_id.size() <= prefix.size() || minted_id.substr(0, prefix.size()) != prefix) return {};
  return minted_id.substr(prefix.size());
}

// The request an undo names: by its command id, else by the id it minted. If neither is
// known, a tombstone so that the request, should it still arrive, is refused. nullptr only
// when the undo names no command id at all (never from the runner: validation requires one).
Entry* undo_target(Ledger& ledger, std::string_view do_command_id, std::string_view minted_id,
                   std::string_view prefix, std::string_view order_id) {
  Entry* target = do_command_id.empty() ? nullptr : ledger.find(do_command_id);
  if (target == nullptr) target = ledger.find_by_order(order_of(minted_id, prefix));
  if (target != nullptr || do_command_id.empty()) return target;
  Entry& tombstone = ledger.insert(do_command_id, order_id);
  tombstone.life = Life::kUndoneBeforeDone;
  return &tombstone;
}

Life life_of(const Entry* entry) { return entry ? entry->life : Life::kNone; }

// A request of no kind this participant knows: FAILED, answered but not remembered.
template <class Reply, class Request>
Reply unknown_request(const Request& request, Stats& stats) {
  Reply reply;
  reply.set_command_id(request.command_id());
  reply.set_order_id(request.order_id());
  reply.set_status(Reply::FAILED);
  reply.set_reason(reason::kUnknownRequest);
  ++stats.answers[Reply::FAILED];
  return reply;
}

}  // namespace

// --- payments -------------------------------------------------------------------------------

std::optional<v1::PaymentReply> answer_payment(const v1::PaymentRequest& request,
                                               PaymentState& state) {
  using Reply = v1::PaymentReply;
  Ledger& ledger = state.ledger;
  Stats& stats = state.stats;
  ++stats.requests;

  Entry* known = ledger.find(request.command_id());
  if (known != nullptr && known->received) {
    ++stats.duplicates;
    return stored_reply<Reply>(*known, stats);
  }

  switch (request.request_case()) {
    case v1::PaymentRequest::kAuthorize: {
      Entry& entry = entry_for(ledger, known, request.command_id(), request.order_id());
      const std::string& token = request.authorize().token();
      if (entry.life == Life::kUndoneBeforeDone) {
        // The void came first: never a live authorization. A silent token stays silent.
        ++stats.undo_before_do;
        if (token != kTokenSilent) answer(entry, Reply::DECLINED, reason::kVoidedBeforeAuthorized);
      } else if (token == kTokenDecline) {
        entry.life = Life::kRefused;
        answer(entry, Reply::DECLINED, reason::kCardDeclined);
      } else {
        entry.life = Life::kLive;
        ledger.index_by_order(entry);
        // tok_silent: authorized but never answered (the ghost the saga must void).
        if (token != kTokenSilent) answer(entry, Reply::APPROVED, reason::kNone, true);
      }
      return stored_reply<Reply>(entry, stats);
    }

    case v1::PaymentRequest::kVoid: {
      const v1::Void& undo = request.void_();
      Entry* target = undo_target(ledger, undo.authorize_command_id(), undo.payment_id(), "p-",
                                  request.order_id());
      Entry& entry = entry_for(ledger, known, request.command_id(), request.order_id());
      switch (life_of(target)) {
        case Life::kLive:
          target->life = Life::kUndone;
          answer(entry, Reply::APPROVED, reason::kVoided, true);
          break;
        case Life::kUndone: answer(entry, Reply::APPROVED, reason::kAlreadyVoided, true); break;
        case Life::kRefused: answer(entry, Reply::DECLINED, reason::kNothingToVoidDeclined); break;
        case Life::kNone:
        case Life::kUndoneBeforeDone:
          answer(entry, Reply::DECLINED, reason::kNothingToVoidNeverAuthorized);
          break;
      }
      return stored_reply<Reply>(entry, stats);
    }

    case v1::PaymentRequest::kRefund: {
      // v1 never captures, so a refund releases the authorization like a void.
      Entry* target = ledger.find_by_order(order_of(request.refund().payment_id(), "p-"));
      Entry& entry = entry_for(ledger, known, request.command_id(), request.order_id());
      if (target != nullptr && target->life == Life::kLive) {
        target->life = Life::kUndone;
        answer(entry, Reply::APPROVED, reason::kRefunded, true);
      } else if (target != nullptr && target->life == Life::kUndone) {
        answer(entry, Reply::APPROVED, reason::kAlreadyVoided, true);
      } else {
        answer(entry, Reply::DECLINED, reason::kUnknownPayment);
      }
      return stored_reply<Reply>(entry, stats);
    }

    case v1::PaymentRequest::REQUEST_NOT_SET: break;
  }
  // Not reached from the runner (decode_payment_request validates); answered, not remembered.
  return unknown_request<Reply>(request, stats);
}

// --- shipments ------------------------------------------------------------------------------

std::optional<v1::ShipmentReply> answer_shipment(const v1::ShipmentRequest& request,
                                                 ShipmentState& state) {
  using Reply = v1::ShipmentReply;
  Ledger& ledger = state.ledger;
  Stats& stats = state.stats;
  ++stats.requests;

  Entry* known = ledger.find(request.command_id());
  if (known != nullptr && known->received) {
    ++stats.duplicates;
    return stored_reply<Reply>(*known, stats);
  }

  switch (request.request_case()) {
    case v1::ShipmentRequest::kCreate: {
      Entry& entry = entry_for(ledger, known, request.command_id(), request.order_id());
      if (entry.life == Life::kUndoneBeforeDone) {
        ++stats.undo_before_do;
        answer(entry, Reply::FAILED, reason::kCancelledBeforeCreated);
      } else if (request.create().ship_to().country() == kCountryFail) {
        entry.life = Life::kRefused;
        answer(entry, Reply::FAILED, reason::kCannotShip);
      } else {
        entry.life = Life::kLive;
        ledger.index_by_order(entry);
        answer(entry, Reply::CREATED, reason::kNone, true);
      }
      return stored_reply<Reply>(entry, stats);
    }

    case v1::ShipmentRequest::kCancel: {
      // Always CANCELLED: it is the only status that acknowledges a cancel-shipment.
      const v1::CancelShipment& undo = request.cancel();
      Entry* target = undo_target(ledger, undo.create_command_id(), undo.shipment_id(), "s-",
                                  request.order_id());
      Entry& entry = entry_for(ledger, known, request.command_id(), request.order_id());
      switch (life_of(target)) {
        case Life::kLive:
          target->life = Life::kUndone;
          answer(entry, Reply::CANCELLED, reason::kCancelled, true);
          break;
        case Life::kUndone: answer(entry, Reply::CANCELLED, reason::kAlreadyCancelled, true); break;
        case Life::kRefused:
          answer(entry, Reply::CANCELLED, reason::kNothingToCancelFailed);
          break;
        case Life::kNone:
        case Life::kUndoneBeforeDone:
          answer(entry, Reply::CANCELLED, reason::kNothingToCancelNeverCreated);
          break;
      }
      return stored_reply<Reply>(entry, stats);
    }

    case v1::ShipmentRequest::REQUEST_NOT_SET: break;
  }
  return unknown_request<Reply>(request, stats);
}

}  // namespace ffe::participants
