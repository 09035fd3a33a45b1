#include "adapters/http/admin_server.h"

#include <pthread.h>
#include <httplib.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <exception>
#include <atomic>
#include <mutex>
#include <optional>
#include <regex>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>

#include <google/protobuf/util/json_util.h>
#include <nlohmann/json.hpp>

#include "actors/order/order.h"
#include "actors/runtime/retention.h"
#include "actors/sku/sku.h"
#include "events/upcast.h"
#include "events/validate.h"
#include "ffe/v1/journal.pb.h"
#include "storage/journal.h"

namespace ffe::http {

namespace {

using json = nlohmann::ordered_json;
using storage::Revision;
using storage::ShardId;
using storage::Status;
using storage::StatusCode;

// Worker threads answering requests: the admin API is for operators, tools and scrapers,
// not for traffic. cpp-httplib gives a connection a worker from its first byte to its last
// and times out each read (5 s), not the request: a client that trickles its request, or
// sends half of one and stops, holds a worker that long, and with every worker held even
// /healthz waits. Sixteen (idle threads cost little) keep a few such clients, two following
// watches and a slow digest from starving a liveness probe or a scrape.
constexpr std::size_t kWorkers = 16;
constexpr std::size_t kPayloadMaxBytes = 64 * 1024;  // GETs and a body-less POST
constexpr std::string_view kJson = "application/json";

// The route patterns (httplib matches the whole decoded path).
// An id is everything after the prefix, '/' included: cpp-httplib decodes %2F before routing,
// so "/v1/orders/o%2Fa" arrives as "/v1/orders/o/a" and must be answered as the invalid id
// "o/a" (400, as `ffe get` says), not as an unknown path.
constexpr const char* kOrderRoute = R"(/v1/orders/(.+))";
constexpr const char* kSkuRoute = R"(/v1/skus/(.+))";
constexpr const char* kShardsRoute = R"(/v1/shards)";
constexpr const char* kShardRoute = R"(/v1/shards/([^/]+))";
constexpr const char* kCompactRoute = R"(/v1/shards/([^/]+)/compact)";
constexpr const char* kWatchRoute = R"(/v1/watch)";
// Watches that follow the log hold a worker each: at most this many at once, so reads,
// scrapes and probes always find a free worker.
constexpr int kFollowingWatchesMax = 2;
// Log records read per chunk of a watch stream, and how long a following watch waits for
// a new revision before it checks the connection and the server again.
constexpr std::size_t kWatchChunkRecords = 256;
constexpr std::chrono::milliseconds kWatchPoll{200};
constexpr std::string_view kNdjson = "application/x-ndjson";

struct Reply {
  int status = 200;
  std::string body;
  std::string content_type = std::string(kJson);
};

// Never throws on bad UTF-8 (ids are validated, but an error may quote anything).
std::string dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

Reply json_reply(int status, const json& body) { return Reply{status, dump(body)}; }

Reply error_reply(int status, std::string message, json extra = json::object()) {
  json body = json::object();
  body["error"] = std::move(message);
  for (auto& [key, value] : extra.items()) body[key] = value;
  return json_reply(status, body);
}

// ?name=N: absent (nullopt), a non-negative integer, or a 400.
std::variant<std::optional<std::uint64_t>, Reply> parse_number(const httplib::Request& request, const char* name) {
  if (!request.has_param(name)) return std::optional<std::uint64_t>{};
  if (request.get_param_value_count(name) > 1) {
    return error_reply(400, std::string(name) + ": give it once");
  }
  const std::string text = request.get_param_value(name);
  std::uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
    return error_reply(400, std::string(name) + ": must be a non-negative integer below 2^64 (got " +
                                events::quote(text) + ")");
  }
  return std::optional<std::uint64_t>{value};
}

// ?revision=R: absent (nullopt), a revision, or a 400.
std::variant<std::optional<Revision>, Reply> parse_revision(const httplib::Request& request) {
  return parse_number(request, "revision");
}

// ?name=true|false: absent or "false" (false), "true", or a 400.
std::variant<bool, Reply> parse_flag(const httplib::Request& request, const char* name) {
  const std::string text = request.get_param_value(name);
  if (!text.empty() && text != "true" && text != "false") {
    return error_reply(400, std::string(name) + ": must be true or false (got " + events::quote(text) + ")");
  }
  return text == "true";
}

// A journal error as an answer: 410 below the compacted revision, 400 above the current
// one, 503 while the journal is stopped or closing, 500 otherwise.
Reply storage_error(const Status& status, const storage::Journal& journal, ShardId shard) {
  json extra = json::object();
  extra["shard"] = shard.value;
  switch (status.code()) {
    case StatusCode::kCompacted:
      if (auto compacted = journal.compacted_revision(shard); compacted.is_ok()) {
        extra["compactedRevision"] = *compacted;
      }
      return error_reply(410, status.message(), std::move(extra));
    case StatusCode::kFutureRevision:
      if (auto current = journal.revision(shard); current.is_ok()) extra["currentRevision"] = *current;
      return error_reply(400, status.message(), std::move(extra));
    case StatusCode::kStopped:
    case StatusCode::kClosed:
      return error_reply(503, status.to_string(), std::move(extra));
    default:
      return error_reply(500, status.to_string(), std::move(extra));
  }
}

const char* line_status_name(order::LineStatus status) {
  switch (status) {
    case order::LineStatus::kPending: return "PENDING";
    case order::LineStatus::kReserved: return "RESERVED";
    case order::LineStatus::kFailed: return "FAILED";
    case order::LineStatus::kCommitted: return "COMMITTED";
    case order::LineStatus::kReleased: return "RELEASED";
  }
  return "UNSPECIFIED";
}

json order_json(const order::State& order, ShardId shard, Revision mod_revision, Revision as_of) {
  json body = json::object();
  body["orderId"] = order.order_id;
  body["state"] = v1::OrderState_Name(order.state);
  body["terminal"] = order.terminal();
  body["shard"] = shard.value;
  body["revision"] = mod_revision;
  body["asOf"] = as_of;
  // Terminal is absorbing (invariant 4): the last change of a terminal order is the one
  // that made it terminal.
  if (order.terminal()) body["terminalRevision"] = mod_revision;
  body["customerId"] = order.customer_id;
  json lines = json::array();
  for (const order::Line& line : order.lines) {
    json item = json::object();
    item["sku"] = line.sku;
    item["qty"] = line.qty;
    item["unitPriceCents"] = line.unit_price_cents;
    item["status"] = line_status_name(line.status);
    lines.push_back(std::move(item));
  }
  body["lines"] = std::move(lines);
  body["amountCents"] = order.amount_cents;
  body["currency"] = order.currency;
  if (order.step != v1::SAGA_STEP_UNSPECIFIED && !order.terminal()) {
    body["step"] = v1::SagaStep_Name(order.step);
  }
  if (order.state == v1::COMPENSATING) body["targetState"] = v1::OrderState_Name(order.target_state);
  body["reason"] = order.reason;
  body["paymentId"] = order.payment_id;
  body["shipmentId"] = order.shipment_id;
  body["acceptedAtMs"] = order.accepted_at_ms;
  body["deadlineAtMs"] = order.deadline_at_ms;
  if (order.terminal()) body["completedAtMs"] = order.completed_at_ms;
  return body;
}

json sku_json(const sku::State& sku, ShardId shard, Revision mod_revision, Revision as_of) {
  json body = json::object();
  body["sku"] = sku.sku;
  body["onHand"] = sku.on_hand;
  body["reserved"] = sku.reserved;
  body["available"] = sku.available();
  body["shard"] = shard.value;
  body["revision"] = mod_revision;
  body["asOf"] = as_of;
  body["receivedTotal"] = sku.received_total;
  body["adjustedInTotal"] = sku.adjusted_in_total;
  body["adjustedOutTotal"] = sku.adjusted_out_total;
  body["shippedTotal"] = sku.shipped_total;
  body["openReservations"] = sku.reservations.size();
  return body;
}

}  // namespace

class AdminServer::Impl {
 public:
  Impl(metrics::Registry& registry, std::function<bool()> ready) : registry_(registry), ready_(std::move(ready)) {}

  // The runtime the routes read, once attached (the routes that need it answer 503 before).
  runtime::Runtime& runtime() const { return *runtime_.load(std::memory_order_acquire); }
  // Sends 503 and returns true while no runtime is attached (ffe serve is still recovering).
  bool starting(httplib::Response& response) const;

  void install_routes();
  Reply entity(std::string_view kind, const std::string& id, const httplib::Request& request) const;
  Reply shards() const;
  Reply shard(const std::string& text, const httplib::Request& request) const;
  Reply compact(const std::string& text, const httplib::Request& request);
  void watch(const httplib::Request& request, httplib::Response& response);
  std::variant<ShardId, Reply> parse_shard(const std::string& text) const;

  std::atomic<runtime::Runtime*> runtime_{nullptr};
  metrics::Registry& registry_;
  std::function<bool()> ready_;
  httplib::Server server_;
  std::thread listener_;
  HostPort bound_;
  std::mutex stop_mutex_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> following_watches_{0};
  std::atomic<int> watch_streams_{0};  // every watch stream in progress, following or not
};

namespace {

void send(httplib::Response& response, const Reply& reply) {
  response.status = reply.status;
  response.set_content(reply.body, reply.content_type.c_str());
}

}  // namespace

bool AdminServer::Impl::starting(httplib::Response& response) const {
  if (runtime_.load(std::memory_order_acquire) != nullptr) return false;
  send(response, error_reply(503, "ffe is starting (recovering the journal, reaching the cluster); /readyz answers 200 when it is done"));
  response.set_header("Retry-After", "1");
  return true;
}

namespace {

// Whether the request's raw target (before cpp-httplib decoded it) has a '/' after `prefix`:
// then it names a deeper path, which does not exist; a '/' that came from %2F is part of an
// id (an invalid one).
bool raw_path_goes_deeper(const httplib::Request& request, std::string_view prefix) {
  const std::string_view raw = std::string_view(request.target).substr(0, request.target.find('?'));
  return raw.starts_with(prefix) && raw.substr(prefix.size()).find('/') != std::string_view::npos;
}

Reply no_such_path(const httplib::Request& request) {
  return error_reply(404, "no such path: " + events::quote(request.path));
}

bool is_known_path(const std::string& path) {
  // One segment after /v1/orders/ and /v1/skus/ (the routes take more, for ids with %2F).
  static const std::regex routes(std::string(R"(/v1/orders/[^/]+|/v1/skus/[^/]+)") + "|" + kShardsRoute + "|" +
                                 kShardRoute + "|" + kCompactRoute + "|" + kWatchRoute +
                                 "|/healthz|/readyz|/metrics");
  return std::regex_match(path, routes);
}

}  // namespace

// GET /v1/orders/{id}, /v1/skus/{sku}: the entity as of ?revision=R or the shard's current
// revision, with its mod_revision ("revision") and the revision served at ("asOf").
Reply AdminServer::Impl::entity(std::string_view kind, const std::string& id,
                                const httplib::Request& request) const {
  const bool is_order = kind == "order";
  const char* field = is_order ? "orderId" : "sku";
  if (auto invalid = events::validate_id(id, field)) return error_reply(400, invalid->to_string());
  auto revision_param = parse_revision(request);
  if (auto* reply = std::get_if<Reply>(&revision_param)) return *reply;
  const std::optional<Revision> asked = std::get<std::optional<Revision>>(revision_param);

  const storage::Journal& journal = runtime().journal();
  const ShardId shard = runtime().shard_of(id);
  Revision as_of = 0;
  if (asked) {
    as_of = *asked;
  } else {
    auto current = journal.revision(shard);
    if (!current.is_ok()) return storage_error(current.status(), journal, shard);
    as_of = *current;
  }
  const std::string key = is_order ? runtime::order_key(id) : runtime::sku_key(id);
  auto got = journal.get(shard, key, as_of);
  if (!got.is_ok()) return storage_error(got.status(), journal, shard);

  auto not_found = [&] {
    json extra = json::object();
    extra["shard"] = shard.value;
    extra["asOf"] = as_of;
    return error_reply(404, std::string(kind) + " " + events::quote(id) + " not found at revision " +
                                std::to_string(as_of) + " of shard " + std::to_string(shard.value),
                       std::move(extra));
  };
  if (!got->has_value()) return not_found();
  const storage::EntityState& entity = **got;

  if (is_order) {
    v1::OrderSnapshot snapshot;
    if (!snapshot.ParseFromString(entity.state)) {
      return error_reply(500, "the journal's state of " + key + " does not parse as an OrderSnapshot");
    }
    const order::State state = order::from_snapshot(snapshot);
    if (!state.exists()) return not_found();
    return json_reply(200, order_json(state, shard, entity.mod_revision, as_of));
  }
  v1::SkuSnapshot snapshot;
  if (!snapshot.ParseFromString(entity.state)) {
    return error_reply(500, "the journal's state of " + key + " does not parse as a SkuSnapshot");
  }
  const sku::State state = sku::from_snapshot(snapshot);
  if (!state.exists()) return not_found();
  return json_reply(200, sku_json(state, shard, entity.mod_revision, as_of));
}

// GET /v1/shards: every shard's current revision, compacted revision and live digest.
Reply AdminServer::Impl::shards() const {
  const storage::Journal& journal = runtime().journal();
  json body = json::array();
  for (std::uint32_t i = 0; i < runtime().shard_count(); ++i) {
    const ShardId shard{i};
    auto revision = journal.revision(shard);
    if (!revision.is_ok()) return storage_error(revision.status(), journal, shard);
    auto compacted = journal.compacted_revision(shard);
    if (!compacted.is_ok()) return storage_error(compacted.status(), journal, shard);
    auto digest = journal.digest(shard, *revision);
    if (!digest.is_ok()) return storage_error(digest.status(), journal, shard);
    json item = json::object();
    item["shard"] = i;
    item["revision"] = *revision;
    item["compactedRevision"] = *compacted;
    item["digest"] = *digest;
    body.push_back(std::move(item));
  }
  return json_reply(200, body);
}

std::variant<ShardId, Reply> AdminServer::Impl::parse_shard(const std::string& text) const {
  std::uint32_t index = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), index);
  const bool decimal = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
  if (!decimal) {
    return error_reply(400, "shard: must be a non-negative integer (got " + events::quote(text) + ")");
  }
  const bool past_2_32 = error != std::errc() || end != text.data() + text.size();  // no such shard either
  if (past_2_32 || index >= runtime().shard_count()) {
    return error_reply(404, "shard " + (past_2_32 ? text : std::to_string(index)) + " not found (shards: 0.." +
                                std::to_string(runtime().shard_count() - 1) + ")");
  }
  return ShardId{index};
}

// POST /v1/shards/{shard}/compact?revision=R[&force=true]: makes revisions below R
// unreadable (actors/runtime/retention.h). 409 when a reader of the log (ff.events, CDC)
// has not processed up to R yet and force is not set.
Reply AdminServer::Impl::compact(const std::string& text, const httplib::Request& request) {
  auto parsed_shard = parse_shard(text);
  if (auto* reply = std::get_if<Reply>(&parsed_shard)) return *reply;
  const ShardId shard = std::get<ShardId>(parsed_shard);
  auto revision_param = parse_revision(request);
  if (auto* reply = std::get_if<Reply>(&revision_param)) return *reply;
  const std::optional<Revision> revision = std::get<std::optional<Revision>>(revision_param);
  if (!revision) return error_reply(400, "revision: required (compact below which revision?)");
  auto force = parse_flag(request, "force");
  if (auto* reply = std::get_if<Reply>(&force)) return *reply;
  storage::Journal& journal = runtime().journal();
  const runtime::CompactOutcome outcome = runtime::compact_shard(journal, shard, *revision, std::get<bool>(force));
  if (!outcome.status.is_ok()) {
    if (outcome.status.code() == StatusCode::kInvalidArgument && outcome.blocked_by) {
      json extra = json::object();
      extra["shard"] = shard.value;
      extra["cursor"] = outcome.blocked_by->name;
      extra["cursorRevision"] = outcome.blocked_by->revision;
      extra["compactedRevision"] = outcome.compacted_revision;
      return error_reply(409, outcome.status.message(), std::move(extra));
    }
    return storage_error(outcome.status, journal, shard);
  }
  json body = json::object();
  body["shard"] = shard.value;
  body["compactedRevision"] = outcome.compacted_revision;
  return json_reply(200, body);
}

namespace {

// One event of the log as a watch line: {"shard","revision","committedAtMs","key","event"},
// the event in Protobuf's canonical JSON (lowerCamel field names).
// What the admin API never serves (docs/http.md): the payment token (printed as "***") and
// the shipping address (left out), which an order's placement carries. ff.events keeps them
// for replay.
void redact_placement(v1::PlaceOrder& order) {
  if (!order.payment().token().empty()) order.mutable_payment()->set_token("***");
  order.clear_ship_to();
}

std::string watch_line(ShardId shard, const storage::LogRecord& record, const storage::Event& event) {
  json line = json::object();
  line["shard"] = shard.value;
  line["revision"] = record.revision;
  line["committedAtMs"] = record.committed_at_ms;
  line["key"] = event.entity_key;
  std::string text;
  google::protobuf::util::JsonPrintOptions options;
  bool decoded = false;
  if (event.entity_key.starts_with("order/")) {
    v1::OrderEvent decoded_event;
    // In the current schema even when an older ffe journaled it (events/upcast.h).
    decoded = decoded_event.ParseFromString(event.payload) && events::upcast(decoded_event).ok();
    if (decoded_event.has_placed()) redact_placement(*decoded_event.mutable_placed()->mutable_order());
    if (decoded_event.has_rejected()) redact_placement(*decoded_event.mutable_rejected()->mutable_order());
    decoded = decoded && google::protobuf::util::MessageToJsonString(decoded_event, &text, options).ok();
  } else if (event.entity_key.starts_with("sku/")) {
    v1::SkuEvent decoded_event;
    decoded = decoded_event.ParseFromString(event.payload) &&
              google::protobuf::util::MessageToJsonString(decoded_event, &text, options).ok();
  }
  if (decoded) {
    line["event"] = json::parse(text, nullptr, /*allow_exceptions=*/false);
  } else {
    line["event"] = nullptr;
    line["error"] = "the event does not decode";
  }
  return dump(line);
}

}  // namespace

// GET /v1/watch?prefix=P&fromRevision=R[&shard=S][&follow=true][&limit=N]: the events under
// key prefix P of one shard, from revision R on, in revision order, one JSON line each
// (application/x-ndjson). The shard defaults to the one that owns the entity P names
// ("order/o-1", "sku/sku-1"). Without follow the stream ends at the shard's current
// revision; with it, it waits for new revisions until the client goes away; with limit, at
// the end of the revision that brings the count of events to the limit. Resume with
// fromRevision = the last revision seen + 1. A compacted fromRevision is a 410 naming the
// compacted revision (etcd's ErrCompacted): never a silent skip. If compaction overtakes a
// following stream, its last line is {"error":...,"compactedRevision":C}.
void AdminServer::Impl::watch(const httplib::Request& request, httplib::Response& response) {
  const std::string prefix = request.get_param_value("prefix");
  if (!request.has_param("fromRevision")) {
    send(response, error_reply(400, "fromRevision: required (the first revision to stream)"));
    return;
  }
  auto from_param = parse_number(request, "fromRevision");
  if (auto* reply = std::get_if<Reply>(&from_param)) return send(response, *reply);
  auto limit_param = parse_number(request, "limit");
  if (auto* reply = std::get_if<Reply>(&limit_param)) return send(response, *reply);
  auto follow_param = parse_flag(request, "follow");
  if (auto* reply = std::get_if<Reply>(&follow_param)) return send(response, *reply);
  const bool follow = std::get<bool>(follow_param);
  const std::uint64_t limit = std::get<std::optional<std::uint64_t>>(limit_param).value_or(0);

  ShardId shard{0};
  if (request.has_param("shard")) {
    auto parsed = parse_shard(request.get_param_value("shard"));
    if (auto* reply = std::get_if<Reply>(&parsed)) return send(response, *reply);
    shard = std::get<ShardId>(parsed);
  } else {
    std::string_view id;
    if (prefix.starts_with("order/")) id = std::string_view(prefix).substr(6);
    if (prefix.starts_with("sku/")) id = std::string_view(prefix).substr(4);
    if (id.empty()) {
      return send(response, error_reply(400, "shard: required unless prefix names an entity (order/<id> or "
                                             "sku/<sku>); prefix " + events::quote(prefix) + " spans every shard"));
    }
    shard = runtime().shard_of(id);
  }

  const storage::Journal& journal = runtime().journal();
  const Revision from = std::max<Revision>(*std::get<std::optional<std::uint64_t>>(from_param), 1);
  auto cursor = journal.watch(shard, prefix, from);
  if (!cursor.is_ok()) return send(response, storage_error(cursor.status(), journal, shard));

  if (follow) {
    if (following_watches_.fetch_add(1) >= kFollowingWatchesMax) {
      following_watches_.fetch_sub(1);
      return send(response, error_reply(503, "too many following watches (at most " +
                                             std::to_string(kFollowingWatchesMax) + "); try again later"));
    }
  }
  struct Stream {
    storage::Watch watch;
    std::uint64_t remaining;  // 0: no limit
    bool follow;
  };
  auto stream = std::make_shared<Stream>(Stream{std::move(*cursor), limit, follow});
  response.status = 200;
  watch_streams_.fetch_add(1);
  response.set_chunked_content_provider(
      std::string(kNdjson),
      [this, stream, shard, &journal](std::size_t, httplib::DataSink& sink) {
        // A reader that stopped reading (httplib's write timeout passed): break the stream
        // off, so it cannot pass for one that reached its end.
        if (!sink.is_writable()) return false;
        if (stopping_.load()) {
          // The stream did not reach its end: say where to resume (after the last whole
          // revision sent), as a last line like compaction's.
          json line = json::object();
          line["error"] = "the server is stopping";
          line["shard"] = shard.value;
          line["resumeFromRevision"] = stream->watch.position();
          const std::string text = dump(line);
          sink.write(text.data(), text.size());
          sink.done();
          return true;
        }
        auto records = stream->watch.next(kWatchChunkRecords);
        if (!records.is_ok()) {
          json line = json::object();
          line["error"] = records.status().message();
          line["shard"] = shard.value;
          if (auto compacted = journal.compacted_revision(shard); compacted.is_ok()) {
            line["compactedRevision"] = *compacted;
          }
          const std::string text = dump(line);
          sink.write(text.data(), text.size());
          sink.done();
          return true;
        }
        if (records->empty()) {
          // One read examines at most limits::watch_scan_records_max records: empty with the
          // cursor still at or below the shard's revision is a stretch without a match, not
          // the end of the log.
          if (auto current = journal.revision(shard); current.is_ok() && stream->watch.position() <= *current) {
            return true;
          }
          if (!stream->follow) {
            sink.done();
            return true;
          }
          stream->watch.wait(kWatchPoll);
          return true;
        }
        std::string chunk;
        for (const storage::LogRecord& record : *records) {
          for (const storage::Event& event : record.events) chunk += watch_line(shard, record, event);
          // The limit stops a stream only at the end of a revision: a revision's events (one
          // command's) all come, so resuming from the last revision seen + 1 loses none.
          if (stream->remaining > 0) {
            if (record.events.size() >= stream->remaining) {
              sink.write(chunk.data(), chunk.size());
              sink.done();
              return true;
            }
            stream->remaining -= record.events.size();
          }
        }
        if (!sink.write(chunk.data(), chunk.size())) return false;
        return true;
      },
      [this, follow](bool) {
        if (follow) following_watches_.fetch_sub(1);
        watch_streams_.fetch_sub(1);
      });
}

// GET /v1/shards/{shard}[?revision=R]: the shard's digest as of R (default: current).
Reply AdminServer::Impl::shard(const std::string& text, const httplib::Request& request) const {
  auto parsed_shard = parse_shard(text);
  if (auto* reply = std::get_if<Reply>(&parsed_shard)) return *reply;
  const std::uint32_t index = std::get<ShardId>(parsed_shard).value;
  auto revision_param = parse_revision(request);
  if (auto* reply = std::get_if<Reply>(&revision_param)) return *reply;
  const std::optional<Revision> asked = std::get<std::optional<Revision>>(revision_param);

  const storage::Journal& journal = runtime().journal();
  const ShardId shard{index};
  Revision revision = 0;
  if (asked) {
    revision = *asked;
  } else {
    auto current = journal.revision(shard);
    if (!current.is_ok()) return storage_error(current.status(), journal, shard);
    revision = *current;
  }
  auto digest = journal.digest(shard, revision);
  if (!digest.is_ok()) return storage_error(digest.status(), journal, shard);
  json body = json::object();
  body["shard"] = index;
  body["revision"] = revision;
  body["digest"] = *digest;
  return json_reply(200, body);
}

void AdminServer::Impl::install_routes() {
  server_.new_task_queue = [] { return new httplib::ThreadPool(kWorkers); };
  server_.set_read_timeout(5, 0);
  server_.set_write_timeout(5, 0);
  // A stop() waits for idle keep-alive connections to time out: keep that short.
  server_.set_keep_alive_timeout(1);
  server_.set_keep_alive_max_count(100);
  // An answer on a kept-alive connection must not wait for the client's delayed ACK (Nagle):
  // without this every request after a connection's first took about 40 ms.
  server_.set_tcp_nodelay(true);
  server_.set_payload_max_length(kPayloadMaxBytes);
  // httplib's default sets SO_REUSEPORT on Linux, which lets a second process (a second
  // `ffe serve` by the same user) bind the same port and silently take half the requests.
  // SO_REUSEADDR alone allows a quick restart and still refuses a port that is in use.
  server_.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });

  server_.Get(kOrderRoute, [this](const httplib::Request& request, httplib::Response& response) {
    if (starting(response)) return;
    if (raw_path_goes_deeper(request, "/v1/orders/")) return send(response, no_such_path(request));
    send(response, entity("order", request.matches[1].str(), request));
  });
  server_.Get(kSkuRoute, [this](const httplib::Request& request, httplib::Response& response) {
    if (starting(response)) return;
    if (raw_path_goes_deeper(request, "/v1/skus/")) return send(response, no_such_path(request));
    send(response, entity("sku", request.matches[1].str(), request));
  });
  server_.Get(kShardsRoute, [this](const httplib::Request&, httplib::Response& response) {
    if (starting(response)) return;
    send(response, shards());
  });
  server_.Get(kShardRoute, [this](const httplib::Request& request, httplib::Response& response) {
    if (starting(response)) return;
    send(response, shard(request.matches[1].str(), request));
  });
  server_.Get(kWatchRoute, [this](const httplib::Request& request, httplib::Response& response) {
    if (starting(response)) return;
    watch(request, response);
  });
  server_.Post(kCompactRoute, [this](const httplib::Request& request, httplib::Response& response) {
    if (starting(response)) return;
    send(response, compact(request.matches[1].str(), request));
  });
  server_.Get("/healthz", [](const httplib::Request&, httplib::Response& response) {
    send(response, Reply{200, "ok\n", "text/plain; charset=utf-8"});
  });
  server_.Get("/readyz", [this](const httplib::Request&, httplib::Response& response) {
    const bool ready = runtime_.load(std::memory_order_acquire) != nullptr && (!ready_ || ready_());
    send(response, ready ? Reply{200, "ready\n", "text/plain; charset=utf-8"}
                         : Reply{503, "not ready\n", "text/plain; charset=utf-8"});
  });
  server_.Get("/metrics", [this](const httplib::Request&, httplib::Response& response) {
    send(response, Reply{200, registry_.render(), std::string(metrics::kContentType)});
  });

  // Only GET (and HEAD) is served, and POST on the compact route: another method on a
  // known path is 405, on anything else 404 (the error handler below).
  auto method_not_allowed = [](const httplib::Request& request, httplib::Response& response) {
    if (!is_known_path(request.path)) {
      response.status = 404;
      return;
    }
    const bool is_compact = std::regex_match(request.path, std::regex(kCompactRoute));
    response.set_header("Allow", is_compact ? "POST" : "GET, HEAD");
    send(response, error_reply(405, "method " + events::quote(request.method) + " not allowed; use " +
                                        (is_compact ? "POST" : "GET")));
  };
  server_.Get(kCompactRoute, method_not_allowed);
  server_.Post(".*", method_not_allowed);
  server_.Put(".*", method_not_allowed);
  server_.Patch(".*", method_not_allowed);
  server_.Delete(".*", method_not_allowed);

  // A request with neither Content-Length nor Transfer-Encoding has no body (RFC 9112, 6.3;
  // `curl -X POST` sends such a POST), but httplib 0.11 waits for one on POST, PUT, PATCH
  // and DELETE until its read timeout, then answers a bare 400. Those requests are routed
  // here instead, before httplib reads, as the same requests with an empty body.
  using Handled = httplib::Server::HandlerResponse;
  server_.set_pre_routing_handler(
      [this, method_not_allowed](const httplib::Request& request, httplib::Response& response) {
        if (request.method == "GET" || request.method == "HEAD" || request.has_header("Content-Length") ||
            request.has_header("Transfer-Encoding")) {
          return Handled::Unhandled;
        }
        std::smatch compact_route;
        if (request.method == "POST" && std::regex_match(request.path, compact_route, std::regex(kCompactRoute))) {
          if (!starting(response)) send(response, compact(compact_route[1].str(), request));
        } else {
          method_not_allowed(request, response);
        }
        return Handled::Handled;
      });

  // Runs for every answer >= 400; fills in a JSON body where a handler left none (unknown
  // paths, httplib's own 400s).
  server_.set_error_handler(httplib::Server::HandlerWithResponse(
      [](const httplib::Request& request, httplib::Response& response) {
        if (!response.body.empty()) return Handled::Unhandled;
        const Reply reply = response.status == 404
                                ? no_such_path(request)
                                : error_reply(response.status, "HTTP " + std::to_string(response.status));
        response.set_content(reply.body, reply.content_type.c_str());
        return Handled::Handled;
      }));
  server_.set_exception_handler(
      [](const httplib::Request&, httplib::Response& response, std::exception_ptr error) {
        std::string what = "unknown exception";
        try {
          if (error) std::rethrow_exception(error);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        send(response, error_reply(500, "internal error: " + what));
      });
}

AdminServer::AdminServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

AdminServer::~AdminServer() { stop(); }

storage::Result<std::unique_ptr<AdminServer>> AdminServer::start(std::string address,
                                                                  runtime::Runtime& runtime,
                                                                  metrics::Registry& registry,
                                                                  std::function<bool()> ready) {
  auto server = start(std::move(address), registry, std::move(ready));
  if (server.is_ok()) (*server)->attach(runtime);
  return server;
}

void AdminServer::attach(runtime::Runtime& runtime) { impl_->runtime_.store(&runtime, std::memory_order_release); }

storage::Result<std::unique_ptr<AdminServer>> AdminServer::start(std::string address, metrics::Registry& registry,
                                                                  std::function<bool()> ready) {
  auto parsed = parse_address(address);
  if (!parsed.is_ok()) return parsed.status();
  auto impl = std::make_unique<Impl>(registry, std::move(ready));
  impl->install_routes();

  errno = 0;
  int port = -1;
  if (parsed->port == 0) {
    port = impl->server_.bind_to_any_port(parsed->host);
  } else if (impl->server_.bind_to_port(parsed->host, parsed->port)) {
    port = parsed->port;
  }
  if (port <= 0) {
    const int saved = errno;
    return Status(StatusCode::kIoError, "admin HTTP: cannot listen on " + format_address(*parsed) +
                                            (saved != 0 ? std::string(": ") + std::strerror(saved) : ""));
  }
  impl->bound_ = HostPort{parsed->host, static_cast<std::uint16_t>(port)};
  httplib::Server* server = &impl->server_;
  impl->listener_ = std::thread([server] {
    pthread_setname_np(pthread_self(), "ffe-http");  // for top -H and perf
    server->listen_after_bind();
  });
  // httplib's stop() only works once the listener runs: wait for it, so a stop() right
  // after start() cannot be lost.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!server->is_running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return std::unique_ptr<AdminServer>(new AdminServer(std::move(impl)));
}

void AdminServer::stop() {
  std::lock_guard lock(impl_->stop_mutex_);
  if (!impl_->listener_.joinable()) return;
  impl_->stopping_.store(true);
  // Watch streams end at their next chunk or poll (at most kWatchPoll away) with a last line
  // saying where to resume; httplib's stop() would cut them off without one.
  const auto patience = std::chrono::steady_clock::now() + 5 * kWatchPoll;
  while (impl_->watch_streams_.load() > 0 && std::chrono::steady_clock::now() < patience) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  impl_->server_.stop();
  impl_->listener_.join();
}

std::uint16_t AdminServer::port() const { return impl_->bound_.port; }

std::string AdminServer::address() const { return format_address(impl_->bound_); }

}  // namespace ffe::http
