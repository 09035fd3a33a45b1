#include "tests/runtime/runtime_test_support.h"

#include <algorithm>
#include <future>
#include <memory>
#include <sstream>
#include <thread>

#include "actors/runtime/folder.h"
#include "ffe/v1/journal.pb.h"
#include "storage/journal.h"
#include "storage/sha256.h"

namespace ffe::runtime::testing {

// --- TestParticipants ---------------------------------------------------------------------

TestParticipants::TestParticipants(std::string topic_prefix)
    : payments_topic_(topic_prefix + "payments.requests"),
      shipments_topic_(topic_prefix + "shipments.requests"),
      outcomes_topic_(topic_prefix + "orders.outcomes") {}

void TestParticipants::attach(Runtime* runtime) { runtime_.store(runtime); }

void TestParticipants::detach() {
  runtime_.store(nullptr);
  while (publishing_.load() != 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

std::optional<v1::PaymentReply> TestParticipants::answer_payment(const v1::PaymentRequest& request) {
  // Caller holds mutex_.
  auto memo = payment_memo_.find(request.command_id());
  if (memo != payment_memo_.end()) {
    counts_.repeated_requests++;
    return memo->second.reply;
  }
  std::optional<v1::PaymentReply> reply;
  v1::PaymentReply base;
  base.set_command_id(request.command_id());
  base.set_order_id(request.order_id());
  if (request.has_authorize()) {
    counts_.authorizes++;
    const std::string& token = request.authorize().token();
    if (token == "tok_decline") {
      base.set_status(v1::PaymentReply::DECLINED);
      base.set_reason("card declined");
      reply = base;
    } else if (token == "tok_silent") {
      // never answered
    } else {
      base.set_status(v1::PaymentReply::APPROVED);
      base.set_payment_id("p-" + request.order_id());
      reply = base;
    }
  } else if (request.has_void_()) {
    counts_.voids++;
    voided_orders_.insert(request.order_id());
    base.set_status(v1::PaymentReply::APPROVED);
    base.set_payment_id(request.void_().payment_id().empty() ? "p-" + request.order_id()
                                                             : request.void_().payment_id());
    reply = base;
  } else if (request.has_refund()) {
    counts_.refunds++;
    base.set_status(v1::PaymentReply::APPROVED);
    base.set_payment_id(request.refund().payment_id());
    reply = base;
  } else {
    counts_.undecodable++;
  }
  payment_memo_[request.command_id()] = PaymentMemo{reply};
  return reply;
}

std::optional<v1::ShipmentReply> TestParticipants::answer_shipment(const v1::ShipmentRequest& request) {
  // Caller holds mutex_.
  auto memo = shipment_memo_.find(request.command_id());
  if (memo != shipment_memo_.end()) {
    counts_.repeated_requests++;
    return memo->second.reply;
  }
  std::optional<v1::ShipmentReply> reply;
  v1::ShipmentReply base;
  base.set_command_id(request.command_id());
  base.set_order_id(request.order_id());
  if (request.has_create()) {
    counts_.creates++;
    if (request.create().ship_to().country() == "XX") {
      base.set_status(v1::ShipmentReply::FAILED);
      base.set_reason("cannot ship to country XX");
    } else {
      base.set_status(v1::ShipmentReply::CREATED);
      base.set_shipment_id("s-" + request.order_id());
    }
    reply = base;
  } else if (request.has_cancel()) {
    counts_.cancels++;
    cancelled_shipments_.insert(request.order_id());
    base.set_status(v1::ShipmentReply::CANCELLED);
    base.set_shipment_id(request.cancel().shipment_id().empty() ? "s-" + request.order_id()
                                                                : request.cancel().shipment_id());
    reply = base;
  } else {
    counts_.undecodable++;
  }
  shipment_memo_[request.command_id()] = ShipmentMemo{reply};
  return reply;
}

bool TestParticipants::submit_reply(OrderCommand reply) {
  Runtime* runtime = runtime_.load();
  if (runtime == nullptr) return false;
  Status status = runtime->submit(
      std::move(reply),
      [this](const Ack& ack) {
        reply_acks_.fetch_add(1);
        if (!ack.status) reply_acks_not_ok_.fetch_add(1);
        if (ack.rejection) reply_rejections_.fetch_add(1);
      },
      Admission::kWait);
  if (!status) return false;
  std::lock_guard lock(mutex_);
  counts_.replies_submitted++;
  return true;
}

bool TestParticipants::publish(ShardId shard, const std::vector<storage::OutboxEntry>& entries) {
  publishing_.fetch_add(1);
  struct Leave {
    std::atomic<int>& counter;
    ~Leave() { counter.fetch_sub(1); }
  } leave{publishing_};
  {
    std::lock_guard lock(mutex_);
    counts_.publish_calls++;
  }
  if (runtime_.load() == nullptr) {
    std::lock_guard lock(mutex_);
    counts_.publish_refused++;
    return false;
  }
  // Decide every answer first (memoized by commandId, so offering the same entries again
  // after a false return answers them identically), then submit without holding the lock.
  std::vector<OrderCommand> replies;
  {
    std::lock_guard lock(mutex_);
    std::optional<storage::OutboxPosition> previous;
    auto handed_off = handed_off_.find(shard.value);
    for (const storage::OutboxEntry& entry : entries) {
      if (handed_off != handed_off_.end() && entry.position <= handed_off->second) counts_.reoffered_after_true++;
      if (previous && entry.position <= *previous) counts_.out_of_order++;
      previous = entry.position;
      const storage::OutboxMessage& message = entry.message;
      bool binary = false;
      for (const auto& header : message.headers) {
        if (header.name == "content-type" && header.value == "application/x-protobuf") binary = true;
      }
      if (!binary) counts_.wrong_content_type++;
      if (message.topic == payments_topic_) {
        v1::PaymentRequest request;
        if (!request.ParseFromString(message.payload)) {
          counts_.undecodable++;
          continue;
        }
        if (auto reply = answer_payment(request)) replies.emplace_back(std::move(*reply));
      } else if (message.topic == shipments_topic_) {
        v1::ShipmentRequest request;
        if (!request.ParseFromString(message.payload)) {
          counts_.undecodable++;
          continue;
        }
        if (auto reply = answer_shipment(request)) replies.emplace_back(std::move(*reply));
      } else if (message.topic == outcomes_topic_) {
        v1::OrderOutcome outcome;
        if (!outcome.ParseFromString(message.payload)) {
          counts_.undecodable++;
          continue;
        }
        if (outcome_positions_.emplace(shard.value, entry.position).second) {
          outcomes_[outcome.order_id()].push_back(std::move(outcome));
          outcome_messages_++;
        }
      } else {
        counts_.unknown_topics++;
      }
    }
  }
  outcome_cv_.notify_all();
  for (OrderCommand& reply : replies) {
    if (!submit_reply(std::move(reply))) {
      std::lock_guard lock(mutex_);
      counts_.publish_refused++;
      return false;  // offered again; the memo answers the same
    }
  }
  if (!entries.empty()) {
    std::lock_guard lock(mutex_);
    storage::OutboxPosition& last = handed_off_[shard.value];
    last = std::max(last, entries.back().position);
  }
  return true;
}

std::map<std::string, std::vector<v1::OrderOutcome>> TestParticipants::outcomes() const {
  std::lock_guard lock(mutex_);
  return outcomes_;
}

std::size_t TestParticipants::outcome_messages() const {
  std::lock_guard lock(mutex_);
  return outcome_messages_;
}

std::size_t TestParticipants::orders_with_outcome() const {
  std::lock_guard lock(mutex_);
  return outcomes_.size();
}

bool TestParticipants::wait_for_outcomes(std::size_t orders, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return outcome_cv_.wait_for(lock, timeout, [&] { return outcomes_.size() >= orders; });
}

TestParticipants::Counts TestParticipants::counts() const {
  std::lock_guard lock(mutex_);
  Counts counts = counts_;
  counts.reply_acks = reply_acks_.load();
  counts.reply_acks_not_ok = reply_acks_not_ok_.load();
  counts.reply_rejections = reply_rejections_.load();
  return counts;
}

std::set<std::string> TestParticipants::voided_orders() const {
  std::lock_guard lock(mutex_);
  return voided_orders_;
}

std::set<std::string> TestParticipants::cancelled_shipments() const {
  std::lock_guard lock(mutex_);
  return cancelled_shipments_;
}

// --- builders -------------------------------------------------------------------------------

v1::ReceiveStock receive_stock(std::string sku, std::int64_t qty, std::string receipt_id) {
  v1::ReceiveStock command;
  command.set_sku(std::move(sku));
  command.set_qty(qty);
  command.set_receipt_id(std::move(receipt_id));
  return command;
}

v1::AdjustStock adjust_stock(std::string sku, std::int64_t delta, std::string adjustment_id) {
  v1::AdjustStock command;
  command.set_sku(std::move(sku));
  command.set_delta(delta);
  command.set_reason("cycle count");
  command.set_adjustment_id(std::move(adjustment_id));
  return command;
}

v1::StockCommand reserve(std::string order_id, std::string sku, std::int64_t qty) {
  v1::StockCommand command;
  command.set_command_id(order_id + ":reserve:" + sku);
  command.set_order_id(std::move(order_id));
  command.set_sku(std::move(sku));
  command.set_qty(qty);
  command.set_kind(v1::StockCommand::RESERVE);
  return command;
}

v1::PlaceOrder place_order(std::string order_id, const std::vector<LineSpec>& lines, std::string token,
                           std::string country) {
  v1::PlaceOrder order;
  order.set_order_id(std::move(order_id));
  order.set_customer_id("c-1");
  for (const LineSpec& spec : lines) {
    v1::OrderLine* line = order.add_lines();
    line->set_sku(spec.sku);
    line->set_qty(spec.qty);
    line->set_unit_price_cents(100);
  }
  order.mutable_payment()->set_method("card");
  order.mutable_payment()->set_token(std::move(token));
  v1::Address* address = order.mutable_ship_to();
  address->set_name("A. Customer");
  address->set_line1("1 Main St");
  address->set_city("Springfield");
  address->set_country(std::move(country));
  return order;
}

v1::CancelOrder cancel_order(std::string order_id, std::string reason) {
  v1::CancelOrder cancel;
  cancel.set_order_id(std::move(order_id));
  cancel.set_reason(std::move(reason));
  return cancel;
}

namespace {

template <class Command>
std::optional<Ack> submit_and_wait_any(Runtime& runtime, Command command, std::chrono::milliseconds timeout,
                                       Status* refusal) {
  auto promise = std::make_shared<std::promise<Ack>>();
  std::future<Ack> future = promise->get_future();
  Status status = runtime.submit(std::move(command), [promise](const Ack& ack) { promise->set_value(ack); });
  if (!status) {
    if (refusal != nullptr) *refusal = status;
    return std::nullopt;
  }
  if (future.wait_for(timeout) != std::future_status::ready) {
    if (refusal != nullptr) *refusal = Status(storage::StatusCode::kBusy, "no ack within the timeout");
    return std::nullopt;
  }
  return future.get();
}

}  // namespace

std::optional<Ack> submit_and_wait(Runtime& runtime, InventoryCommand command, std::chrono::milliseconds timeout,
                                   Status* refusal) {
  return submit_and_wait_any(runtime, std::move(command), timeout, refusal);
}

std::optional<Ack> submit_and_wait(Runtime& runtime, OrderCommand command, std::chrono::milliseconds timeout,
                                   Status* refusal) {
  return submit_and_wait_any(runtime, std::move(command), timeout, refusal);
}

std::uint64_t fnv1a64(std::string_view bytes) {
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  for (unsigned char byte : bytes) {
    hash ^= byte;
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

// --- rebuild ------------------------------------------------------------------------------------

namespace {

struct EntityHistory {
  std::vector<std::string> events;
  std::vector<Revision> revisions;  // the revision of each event (a command may carry several)
  Revision last_revision = 0;
  // True when event `index` is the last one its command (revision) carries for this entity:
  // invariants hold between commands, not between the events of one command.
  bool ends_command(std::size_t index) const {
    return index + 1 == revisions.size() || revisions[index + 1] != revisions[index];
  }
};

// Evolves a SKU command by command, checking the stock invariants after each (a cheap subset
// of sku::check_invariants, which sums every reservation and would be quadratic here).
void check_sku_history(const std::string& key, const EntityHistory& history, std::vector<std::string>& failures) {
  const std::string id = key.substr(4);
  sku::State state;
  for (std::size_t index = 0; index < history.events.size(); ++index) {
    v1::SkuEvent event;
    if (!event.ParseFromString(history.events[index])) {
      failures.push_back(key + ": event " + std::to_string(index) + " does not parse");
      return;
    }
    sku::evolve(state, id, event);
    if (!history.ends_command(index)) continue;
    const std::string at = key + ": at revision " + std::to_string(history.revisions[index]);
    if (state.reserved < 0 || state.reserved > state.on_hand) {
      failures.push_back(at + " reserved " + std::to_string(state.reserved) + " outside [0, on_hand " +
                         std::to_string(state.on_hand) + "]");
      return;
    }
    if (state.shipped_total > state.received_total + state.adjusted_in_total) {
      failures.push_back(at + " shipped more than came in");
      return;
    }
  }
  if (auto broken = sku::check_invariants(state)) failures.push_back(key + ": final state: " + *broken);
}

void check_order_history(const std::string& key, const EntityHistory& history, std::vector<std::string>& failures) {
  order::State state;
  for (std::size_t index = 0; index < history.events.size(); ++index) {
    v1::OrderEvent event;
    if (!event.ParseFromString(history.events[index])) {
      failures.push_back(key + ": event " + std::to_string(index) + " does not parse");
      return;
    }
    if (state.terminal()) {
      failures.push_back(key + ": an event at revision " + std::to_string(history.revisions[index]) +
                         " after the terminal state " + v1::OrderState_Name(state.state));
      return;
    }
    order::evolve(state, event);
    if (!history.ends_command(index)) continue;
    if (auto broken = order::check_invariants(state)) {
      failures.push_back(key + ": at revision " + std::to_string(history.revisions[index]) + ": " + *broken);
      return;
    }
  }
}

std::string hex_prefix(const std::string& bytes) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < std::min<std::size_t>(bytes.size(), 24); ++i) {
    out += hex[static_cast<unsigned char>(bytes[i]) >> 4];
    out += hex[static_cast<unsigned char>(bytes[i]) & 15];
  }
  return out + (bytes.size() > 24 ? "..." : "") + " (" + std::to_string(bytes.size()) + " bytes)";
}

}  // namespace

RebuildReport rebuild_from_journal(const std::string& data_dir, std::uint32_t shards) {
  RebuildReport report;
  DomainFolder folder;
  storage::JournalOptions options;
  for (std::uint32_t s = 0; s < shards; ++s) options.shards.push_back(ShardId{s});
  options.folder = &folder;
  options.snapshot_every_events = 0;  // the rebuild must not write snapshots of its own
  auto opened = storage::Journal::open(data_dir, options);
  if (!opened) {
    report.failures.push_back("Journal::open(" + data_dir + "): " + opened.status().to_string());
    return report;
  }
  storage::Journal& journal = **opened;
  const std::vector<ShardId> served = journal.shards();
  report.shards = served.size();
  if (served.size() != shards) {
    report.failures.push_back("the journal serves " + std::to_string(served.size()) + " shards, expected " +
                              std::to_string(shards));
  }

  for (ShardId shard : served) {
    auto revision = journal.revision(shard);
    if (!revision) {
      report.failures.push_back("revision(shard " + std::to_string(shard.value) + "): " + revision.status().to_string());
      continue;
    }
    report.revisions[shard.value] = *revision;
    std::map<std::string, EntityHistory> histories;  // sorted by key: the digest's order
    auto watch = journal.watch(shard, "", 1);
    if (!watch) {
      report.failures.push_back("watch(shard " + std::to_string(shard.value) + "): " + watch.status().to_string());
      continue;
    }
    Revision expected = 1;
    for (;;) {
      auto records = watch->next(4096);
      if (!records) {
        report.failures.push_back("watch.next(shard " + std::to_string(shard.value) + "): " +
                                  records.status().to_string());
        break;
      }
      if (records->empty()) break;
      for (const storage::LogRecord& record : *records) {
        if (record.revision != expected) {
          report.failures.push_back("shard " + std::to_string(shard.value) + ": record at revision " +
                                    std::to_string(record.revision) + ", expected " + std::to_string(expected));
        }
        expected = record.revision + 1;
        ++report.records;
        if (record.events.empty()) {
          report.failures.push_back("shard " + std::to_string(shard.value) + ": revision " +
                                    std::to_string(record.revision) + " has no events");
        }
        for (const storage::Event& event : record.events) {
          EntityHistory& history = histories[event.entity_key];
          history.events.push_back(event.payload);
          history.revisions.push_back(record.revision);
          history.last_revision = record.revision;
          ++report.events;
        }
      }
    }
    if (expected != *revision + 1) {
      report.failures.push_back("shard " + std::to_string(shard.value) + ": the log ends at revision " +
                                std::to_string(expected - 1) + " but the shard is at " + std::to_string(*revision));
    }

    storage::Sha256 sha;
    for (auto& [key, history] : histories) {
      if (key.starts_with("sku/")) {
        check_sku_history(key, history, report.failures);
      } else if (key.starts_with("order/")) {
        check_order_history(key, history, report.failures);
      } else {
        report.failures.push_back("shard " + std::to_string(shard.value) + ": unknown entity key " + key);
        continue;
      }
      std::vector<std::string_view> views(history.events.begin(), history.events.end());
      std::string state = folder.fold(key, std::nullopt, views);
      auto live = journal.get(shard, key, *revision);
      if (!live) {
        report.failures.push_back(key + ": get: " + live.status().to_string());
      } else if (!live->has_value()) {
        report.failures.push_back(key + ": get at revision " + std::to_string(*revision) + " finds nothing");
      } else {
        if ((*live)->state != state) {
          report.failures.push_back(key + ": rebuilt state " + hex_prefix(state) + " != journal.get " +
                                    hex_prefix((*live)->state));
        }
        if ((*live)->mod_revision != history.last_revision) {
          report.failures.push_back(key + ": mod_revision " + std::to_string((*live)->mod_revision) +
                                    " != last event revision " + std::to_string(history.last_revision));
        }
      }
      sha.update_framed(key);
      sha.update_framed(state);
      if (report.states.contains(key)) {
        report.failures.push_back(key + ": has events in shard " + std::to_string(shard.value) + " and in shard " +
                                  std::to_string(report.shard_of_entity[key].value));
      }
      const std::string id = key.substr(key.find('/') + 1);
      if (runtime::shard_of(id, shards) != shard) {
        report.failures.push_back(key + ": lives in shard " + std::to_string(shard.value) + ", but its id hashes to " +
                                  std::to_string(runtime::shard_of(id, shards).value));
      }
      report.states[key] = std::move(state);
      report.shard_of_entity[key] = shard;
      ++report.entities;
    }
    const std::string rebuilt_digest = sha.hex_digest();
    auto digest = journal.digest(shard, *revision);
    if (!digest) {
      report.failures.push_back("digest(shard " + std::to_string(shard.value) + "): " + digest.status().to_string());
    } else if (*digest != rebuilt_digest) {
      report.failures.push_back("shard " + std::to_string(shard.value) + ": digest " + *digest +
                                " != rebuilt digest " + rebuilt_digest);
    }
  }
  return report;
}

// --- describe ---------------------------------------------------------------------------------

std::string describe(const sku::State& state) {
  std::ostringstream out;
  out << "sku " << state.sku << " on_hand=" << state.on_hand << " reserved=" << state.reserved
      << " received=" << state.received_total << " in=" << state.adjusted_in_total << " out=" << state.adjusted_out_total
      << " shipped=" << state.shipped_total << " reservations=" << state.reservations.size()
      << " closed=" << state.closed.size();
  return out.str();
}

std::string describe(const order::State& state) {
  std::ostringstream out;
  out << "order " << state.order_id << " " << v1::OrderState_Name(state.state) << " step "
      << v1::SagaStep_Name(state.step) << " reason '" << state.reason << "' lines [";
  for (const order::Line& line : state.lines) {
    out << line.sku << "x" << line.qty << ":" << static_cast<int>(line.status) << " ";
  }
  out << "] authorized=" << state.payment_authorized << " voided=" << state.payment_voided
      << " shipped=" << state.shipment_created << " cancelled=" << state.shipment_cancelled;
  return out.str();
}

}  // namespace ffe::runtime::testing
