#include "tests/runtime/crash_support.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <future>
#include <memory>
#include <span>

#include "actors/runtime/folder.h"
#include "storage/journal.h"
#include "storage/sha256.h"

namespace ffe::runtime::testing {

const char* kind_name(Seen::Kind kind) {
  switch (kind) {
    case Seen::kAuthorize: return "authorize";
    case Seen::kVoid: return "void";
    case Seen::kRefund: return "refund";
    case Seen::kCreate: return "create";
    case Seen::kCancel: return "cancel";
    case Seen::kOutcome: return "outcome";
    case Seen::kUnknown: break;
  }
  return "unknown";
}

ParticipantEgress::ParticipantEgress(ParticipantConfig config) : config_(std::move(config)) {
  worker_ = std::thread([this] { worker(); });
}

ParticipantEgress::~ParticipantEgress() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    runtime_ = nullptr;
  }
  changed_.notify_all();
  worker_.join();
}

void ParticipantEgress::attach(Runtime* runtime) {
  {
    std::lock_guard lock(mutex_);
    runtime_ = runtime;
  }
  changed_.notify_all();
}

void ParticipantEgress::detach() {
  std::unique_lock lock(mutex_);
  runtime_ = nullptr;
  pending_.clear();
  // The worker may be inside submit() right now, with the lock released: wait it out.
  changed_.notify_all();
  changed_.wait(lock, [this] { return !submitting_; });
}

void ParticipantEgress::set_on_seen(std::function<void(const Seen&)> hook) {
  std::lock_guard lock(mutex_);
  on_seen_ = std::move(hook);
}

void ParticipantEgress::worker() {
  std::unique_lock lock(mutex_);
  while (true) {
    changed_.wait(lock, [this] { return stopping_ || (runtime_ != nullptr && !pending_.empty()); });
    if (stopping_) return;
    OrderCommand command = std::move(pending_.front());
    pending_.pop_front();
    Runtime* runtime = runtime_;
    submitting_ = true;
    lock.unlock();
    // kTry in a loop rather than kWait: detach() must never wait behind a full runtime.
    while (true) {
      Status status = runtime->submit(command, [](const Ack&) {}, Admission::kTry);
      if (status.is_ok()) {
        replies_submitted_.fetch_add(1);
        break;
      }
      if (status.code() != storage::StatusCode::kBusy) break;  // closing or stopped: dropped
      {
        std::lock_guard check(mutex_);
        if (runtime_ == nullptr || stopping_) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    lock.lock();
    submitting_ = false;
    changed_.notify_all();
  }
}

std::optional<OrderCommand> ParticipantEgress::answer(const Seen& seen) {
  switch (seen.kind) {
    case Seen::kAuthorize: {
      if (!config_.answer_authorize || seen.detail == "tok_silent") return std::nullopt;
      int& ignored = authorizes_ignored_[seen.order_id];
      if (ignored < config_.ignore_first_authorizes) {
        ++ignored;
        return std::nullopt;
      }
      v1::PaymentReply reply;
      reply.set_command_id(seen.command_id);
      reply.set_order_id(seen.order_id);
      if (seen.detail == "tok_decline") {
        reply.set_status(v1::PaymentReply::DECLINED);
        reply.set_reason("card declined");
      } else {
        reply.set_status(v1::PaymentReply::APPROVED);
        reply.set_payment_id("p-" + seen.order_id);
      }
      return OrderCommand{std::move(reply)};
    }
    case Seen::kVoid:
    case Seen::kRefund: {
      if (seen.kind == Seen::kVoid ? !config_.answer_voids : !config_.answer_refunds) return std::nullopt;
      v1::PaymentReply reply;
      reply.set_command_id(seen.command_id);
      reply.set_order_id(seen.order_id);
      reply.set_status(v1::PaymentReply::APPROVED);
      return OrderCommand{std::move(reply)};
    }
    case Seen::kCreate: {
      if (!config_.answer_creates) return std::nullopt;
      v1::ShipmentReply reply;
      reply.set_command_id(seen.command_id);
      reply.set_order_id(seen.order_id);
      if (seen.detail == "XX") {
        reply.set_status(v1::ShipmentReply::FAILED);
        reply.set_reason("cannot ship there");
      } else {
        reply.set_status(v1::ShipmentReply::CREATED);
        reply.set_shipment_id("s-" + seen.order_id);
      }
      return OrderCommand{std::move(reply)};
    }
    case Seen::kCancel: {
      if (!config_.answer_cancels) return std::nullopt;
      v1::ShipmentReply reply;
      reply.set_command_id(seen.command_id);
      reply.set_order_id(seen.order_id);
      reply.set_status(v1::ShipmentReply::CANCELLED);
      return OrderCommand{std::move(reply)};
    }
    default: break;
  }
  return std::nullopt;
}

bool ParticipantEgress::publish(ShardId shard, const std::vector<storage::OutboxEntry>& entries) {
  std::vector<Seen> decoded;
  decoded.reserve(entries.size());
  for (const storage::OutboxEntry& entry : entries) {
    Seen seen;
    seen.shard = shard;
    seen.position = entry.position;
    seen.topic = entry.message.topic;
    const std::string& payload = entry.message.payload;
    if (seen.topic == config_.topic_prefix + "payments.requests") {
      v1::PaymentRequest request;
      if (request.ParseFromString(payload)) {
        seen.order_id = request.order_id();
        seen.command_id = request.command_id();
        switch (request.request_case()) {
          case v1::PaymentRequest::kAuthorize:
            seen.kind = Seen::kAuthorize;
            seen.detail = request.authorize().token();
            break;
          case v1::PaymentRequest::kVoid:
            seen.kind = Seen::kVoid;
            seen.detail = request.void_().authorize_command_id();
            break;
          case v1::PaymentRequest::kRefund: seen.kind = Seen::kRefund; break;
          default: break;
        }
      }
    } else if (seen.topic == config_.topic_prefix + "shipments.requests") {
      v1::ShipmentRequest request;
      if (request.ParseFromString(payload)) {
        seen.order_id = request.order_id();
        seen.command_id = request.command_id();
        switch (request.request_case()) {
          case v1::ShipmentRequest::kCreate:
            seen.kind = Seen::kCreate;
            seen.detail = request.create().ship_to().country();
            break;
          case v1::ShipmentRequest::kCancel:
            seen.kind = Seen::kCancel;
            seen.detail = request.cancel().create_command_id();
            break;
          default: break;
        }
      }
    } else if (seen.topic == config_.topic_prefix + "orders.outcomes") {
      if (seen.outcome.ParseFromString(payload)) {
        seen.kind = Seen::kOutcome;
        seen.order_id = seen.outcome.order_id();
        seen.detail = v1::OrderState_Name(seen.outcome.state());
      }
    }
    decoded.push_back(std::move(seen));
  }
  // The hook runs first, so whoever waits for a message (wait_count) finds it already
  // reported (the child prints "seen ..." before it can print "ready").
  std::function<void(const Seen&)> hook;
  {
    std::lock_guard lock(mutex_);
    hook = on_seen_;
  }
  if (hook) {
    for (const Seen& seen : decoded) hook(seen);
  }
  {
    std::lock_guard lock(mutex_);
    for (const Seen& seen : decoded) {
      seen_.push_back(seen);
      if (auto reply = answer(seen)) pending_.push_back(std::move(*reply));
    }
  }
  changed_.notify_all();
  return true;
}

std::vector<Seen> ParticipantEgress::seen() const {
  std::lock_guard lock(mutex_);
  return seen_;
}

std::size_t ParticipantEgress::count(Seen::Kind kind, std::string_view order_id) const {
  std::lock_guard lock(mutex_);
  std::size_t n = 0;
  for (const Seen& seen : seen_) n += seen.kind == kind && seen.order_id == order_id;
  return n;
}

std::vector<v1::OrderOutcome> ParticipantEgress::outcomes_of(std::string_view order_id) const {
  std::lock_guard lock(mutex_);
  std::vector<v1::OrderOutcome> out;
  for (const Seen& seen : seen_) {
    if (seen.kind == Seen::kOutcome && seen.order_id == order_id) out.push_back(seen.outcome);
  }
  return out;
}

bool ParticipantEgress::wait_count(Seen::Kind kind, std::string_view order_id, std::size_t n,
                                   std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] {
    std::size_t found = 0;
    for (const Seen& seen : seen_) found += seen.kind == kind && seen.order_id == order_id;
    return found >= n;
  });
}

// --- builders ------------------------------------------------------------------------------

v1::ReceiveStock receive(std::string sku, std::int64_t qty, std::string receipt_id) {
  v1::ReceiveStock command;
  command.set_sku(std::move(sku));
  command.set_qty(qty);
  command.set_receipt_id(std::move(receipt_id));
  return command;
}

v1::StockCommand reserve(std::string order_id, std::string sku, std::int64_t qty) {
  v1::StockCommand command;
  command.set_command_id(saga::reserve_command_id(order_id, sku));
  command.set_order_id(std::move(order_id));
  command.set_sku(std::move(sku));
  command.set_qty(qty);
  command.set_kind(v1::StockCommand::RESERVE);
  return command;
}

v1::PlaceOrder place_order(std::string order_id, std::string sku, std::int64_t qty, std::string token,
                           std::int64_t deadline_ms, std::string country) {
  v1::PlaceOrder place;
  place.set_order_id(std::move(order_id));
  place.set_customer_id("c-1");
  v1::OrderLine* line = place.add_lines();
  line->set_sku(std::move(sku));
  line->set_qty(qty);
  line->set_unit_price_cents(1299);
  place.mutable_payment()->set_method("card");
  place.mutable_payment()->set_token(std::move(token));
  place.mutable_ship_to()->set_name("A. Customer");
  place.mutable_ship_to()->set_line1("1 Main St");
  place.mutable_ship_to()->set_city("Springfield");
  place.mutable_ship_to()->set_country(std::move(country));
  place.set_deadline_ms(deadline_ms);
  return place;
}

namespace {
template <class Command>
std::optional<Ack> submit_and_wait_impl(Runtime& runtime, Command command, std::chrono::milliseconds timeout) {
  auto promise = std::make_shared<std::promise<Ack>>();
  std::future<Ack> future = promise->get_future();
  Status status = runtime.submit(std::move(command), [promise](const Ack& ack) { promise->set_value(ack); });
  if (!status) return std::nullopt;
  if (future.wait_for(timeout) != std::future_status::ready) return std::nullopt;
  return future.get();
}
}  // namespace

std::optional<Ack> submit_and_wait(Runtime& runtime, InventoryCommand command, std::chrono::milliseconds timeout) {
  return submit_and_wait_impl(runtime, std::move(command), timeout);
}

std::optional<Ack> submit_and_wait(Runtime& runtime, OrderCommand command, std::chrono::milliseconds timeout) {
  return submit_and_wait_impl(runtime, std::move(command), timeout);
}

std::optional<order::State> wait_order(const Runtime& runtime, std::string_view order_id,
                                       const std::function<bool(const order::State&)>& pred,
                                       std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  std::optional<order::State> last;
  while (true) {
    auto read = runtime.order(order_id);
    if (read.is_ok()) {
      last = *read;
      if (last && pred(*last)) return last;
    }
    if (std::chrono::steady_clock::now() >= until) return last;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// --- the journal, read back ------------------------------------------------------------------

ShardLog read_shard_log(const storage::Journal& journal, ShardId shard, storage::Revision head) {
  ShardLog log;
  auto watch = journal.watch(shard, "", 1);
  if (!watch) {
    log.error = "watch: " + watch.status().to_string();
    return log;
  }
  storage::Revision expected = 1;
  while (expected <= head) {
    auto records = watch->next(1024);
    if (!records) {
      log.error = "watch.next: " + records.status().to_string();
      return log;
    }
    if (records->empty()) break;
    for (const storage::LogRecord& record : *records) {
      if (record.revision > head) break;
      if (record.revision != expected) {
        log.error = "shard " + std::to_string(shard.value) + ": expected revision " + std::to_string(expected) +
                    ", the log has " + std::to_string(record.revision);
        return log;
      }
      ++expected;
      ++log.records;
      for (const storage::Event& event : record.events) {
        EntityEvents& entity = log.entities[event.entity_key];
        entity.key = event.entity_key;
        entity.revisions.push_back(record.revision);
        entity.payloads.push_back(event.payload);
      }
    }
  }
  if (expected != head + 1) {
    log.error = "shard " + std::to_string(shard.value) + ": the log ends at " + std::to_string(expected - 1) +
                ", the shard's revision is " + std::to_string(head);
  }
  return log;
}

std::vector<v1::OrderEvent> order_events(const Runtime& runtime, std::string_view order_id) {
  std::vector<v1::OrderEvent> out;
  const storage::Journal& journal = runtime.journal();
  const ShardId shard = runtime.shard_of(order_id);
  auto head = journal.revision(shard);
  if (!head) return out;
  const std::string key = order_key(order_id);
  auto watch = journal.watch(shard, key, 1);
  if (!watch) return out;
  while (watch->position() <= *head) {
    auto records = watch->next(1024);
    if (!records || records->empty()) break;
    for (const storage::LogRecord& record : *records) {
      for (const storage::Event& event : record.events) {
        if (event.entity_key != key) continue;  // the prefix also matches "order/<id>x"
        v1::OrderEvent decoded;
        if (decoded.ParseFromString(event.payload)) out.push_back(std::move(decoded));
      }
    }
  }
  return out;
}

std::vector<std::string> check_shard_rebuild(const storage::Journal& journal, ShardId shard, storage::Revision head,
                                             std::size_t* entities) {
  std::vector<std::string> problems;
  ShardLog log = read_shard_log(journal, shard, head);
  if (!log.error.empty()) {
    problems.push_back(log.error);
    return problems;
  }
  if (entities != nullptr) *entities = log.entities.size();
  DomainFolder folder;
  storage::Sha256 sha;
  for (const auto& [key, entity] : log.entities) {  // std::map: sorted by key
    std::vector<std::string_view> views(entity.payloads.begin(), entity.payloads.end());
    const std::string rebuilt = folder.fold(key, std::nullopt, std::span<const std::string_view>(views));
    sha.update_framed(key);
    sha.update_framed(rebuilt);
    auto live = journal.get(shard, key, head);
    if (!live) {
      problems.push_back("get(" + key + ", " + std::to_string(head) + "): " + live.status().to_string());
    } else if (!live->has_value()) {
      problems.push_back("get(" + key + ", " + std::to_string(head) + "): no such entity, the log has " +
                         std::to_string(entity.payloads.size()) + " events of it");
    } else {
      if ((*live)->state != rebuilt) {
        problems.push_back("shard " + std::to_string(shard.value) + " entity " + key + " at " +
                           std::to_string(head) + ": journal.get differs from the rebuild of its " +
                           std::to_string(entity.payloads.size()) + " events");
      }
      if ((*live)->mod_revision != entity.revisions.back()) {
        problems.push_back("entity " + key + ": mod_revision " + std::to_string((*live)->mod_revision) +
                           ", its last event is at " + std::to_string(entity.revisions.back()));
      }
    }
  }
  const std::string expected = sha.hex_digest();
  auto digest = journal.digest(shard, head);
  if (!digest) {
    problems.push_back("digest(" + std::to_string(shard.value) + ", " + std::to_string(head) +
                       "): " + digest.status().to_string());
  } else if (*digest != expected) {
    problems.push_back("shard " + std::to_string(shard.value) + " at " + std::to_string(head) + ": digest " +
                       *digest + " != rebuild " + expected + " (" + std::to_string(log.entities.size()) +
                       " entities)");
  }
  return problems;
}

void say(const std::string& line) {
  std::string out = line + "\n";
  const char* data = out.data();
  std::size_t left = out.size();
  while (left > 0) {
    ssize_t n = ::write(STDOUT_FILENO, data, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data += n;
    left -= static_cast<std::size_t>(n);
  }
}

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace ffe::runtime::testing
