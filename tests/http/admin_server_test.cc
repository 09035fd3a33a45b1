// The admin HTTP API (adapters/http/admin_server.h) against ARCHITECTURE.md's "Admin HTTP
// API" table and "Entity reads" semantics, over real HTTP on loopback, with a real runtime
// and journal behind it: every route, every status code, reads at older revisions, 410
// after compaction, 400 for future or malformed revisions, readiness and /metrics.

#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "adapters/http/client.h"
#include "tests/http/admin_fixture.h"
#include "tests/metrics/promtool.h"

namespace ffe::http::testing {
namespace {

using runtime::testing::place_order;
using runtime::testing::receive_stock;

class AdminServerTest : public AdminFixture {};

// ---------------------------------------------------------------------------------------------
// Liveness and readiness.

TEST_F(AdminServerTest, HealthzIsAlwaysOkAndReadyzFollowsTheReadyCallback) {
  Got health = get("/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, "ok\n");

  Got not_ready = get("/readyz");
  EXPECT_EQ(not_ready.status, 503);
  EXPECT_EQ(not_ready.body, "not ready\n");

  ready_ = true;
  Got ready = get("/readyz");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(ready.body, "ready\n");

  ready_ = false;
  EXPECT_EQ(get("/readyz").status, 503);
  EXPECT_EQ(get("/healthz").status, 200);
}

// `ffe serve` binds before the journal recovers: /healthz answers, /readyz and every read are
// 503 (with Retry-After) until the runtime is attached, then served.
TEST_F(AdminServerTest, BeforeTheRuntimeIsAttachedHealthzAnswersAndEverythingElseIs503) {
  metrics::Registry registry;
  auto early = AdminServer::start("127.0.0.1:0", registry, [] { return true; });
  ASSERT_TRUE(early.is_ok()) << early.status().to_string();
  httplib::Client client("127.0.0.1", (*early)->port());
  client.set_read_timeout(std::chrono::seconds(30));
  auto status_of = [&](const std::string& target) {
    auto result = client.Get(target);
    return result ? result->status : -1;
  };
  EXPECT_EQ(status_of("/healthz"), 200);
  EXPECT_EQ(status_of("/metrics"), 200);
  EXPECT_EQ(status_of("/readyz"), 503);
  for (const char* target : {"/v1/orders/o-1", "/v1/skus/sku-1", "/v1/shards", "/v1/shards/0",
                             "/v1/watch?prefix=order/o-1&fromRevision=1"}) {
    auto result = client.Get(target);
    ASSERT_TRUE(result) << target;
    EXPECT_EQ(result->status, 503) << target << ": " << result->body;
    EXPECT_EQ(result->get_header_value("Retry-After"), "1") << target;
    EXPECT_NE(result->body.find("ffe is starting"), std::string::npos) << result->body;
  }
  auto compact = client.Post("/v1/shards/0/compact?revision=1");
  ASSERT_TRUE(compact);
  EXPECT_EQ(compact->status, 503);

  ack_of(receive_stock("sku-1", 10, "r-1"));
  (*early)->attach(*runtime_);
  EXPECT_EQ(status_of("/readyz"), 200);
  EXPECT_EQ(status_of("/v1/skus/sku-1"), 200);
  EXPECT_EQ(status_of("/v1/shards"), 200);
  EXPECT_EQ(status_of("/v1/orders/o-1"), 404);
}

// ---------------------------------------------------------------------------------------------
// Orders.

TEST_F(AdminServerTest, FulfilledOrderHasItsShardRevisionAndTerminalRevision) {
  ack_of(receive_stock("sku-1", 10, "r-1"));
  const v1::OrderOutcome outcome = place_and_wait(place_order("o-1", {{"sku-1", 2}}));
  ASSERT_EQ(outcome.state(), v1::FULFILLED);
  const ShardId shard = runtime_->shard_of("o-1");

  Got got = get("/v1/orders/o-1");
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(got.content_type, "application/json");
  const nlohmann::json& order = got.json;
  EXPECT_EQ(order["orderId"], "o-1");
  EXPECT_EQ(order["state"], "FULFILLED");
  EXPECT_EQ(order["terminal"], true);
  EXPECT_EQ(order["shard"], shard.value);
  // revision: the order's last change; asOf: the shard revision the read was served at.
  EXPECT_EQ(order["asOf"], revision_of_shard(shard));
  EXPECT_LE(order["revision"].get<Revision>(), order["asOf"].get<Revision>());
  EXPECT_EQ(order["terminalRevision"], order["revision"]);
  // An outcome's revision is the order's terminalRevision (ARCHITECTURE.md, Entity reads).
  EXPECT_EQ(order["terminalRevision"].get<Revision>(), static_cast<Revision>(outcome.revision()));
  EXPECT_EQ(order["customerId"], "c-1");
  ASSERT_EQ(order["lines"].size(), 1u);
  EXPECT_EQ(order["lines"][0]["sku"], "sku-1");
  EXPECT_EQ(order["lines"][0]["qty"], 2);
  EXPECT_EQ(order["lines"][0]["unitPriceCents"], 100);
  EXPECT_EQ(order["lines"][0]["status"], "COMMITTED");
  EXPECT_EQ(order["amountCents"], 200);
  EXPECT_EQ(order["paymentId"], outcome.payment_id());
  EXPECT_EQ(order["shipmentId"], outcome.shipment_id());
  EXPECT_EQ(order["reason"], "");
  EXPECT_FALSE(order.contains("step"));  // no step in progress once terminal
  EXPECT_TRUE(order.contains("completedAtMs"));

  // Terminal is absorbing: a later revision of the shard (a receipt for a SKU that lives
  // there) gives the same order.
  std::string neighbour;
  for (int i = 0; neighbour.empty(); ++i) {
    if (runtime_->shard_of("sku-n" + std::to_string(i)) == shard) neighbour = "sku-n" + std::to_string(i);
  }
  const runtime::Ack receipt = ack_of(receive_stock(neighbour, 1, "r-n"));
  ASSERT_GT(receipt.revision, order["asOf"].get<Revision>());
  Got later = get("/v1/orders/o-1");
  ASSERT_EQ(later.status, 200);
  EXPECT_EQ(later.json["asOf"], receipt.revision);
  EXPECT_EQ(later.json["terminalRevision"], order["terminalRevision"]);
  EXPECT_EQ(later.json["state"], "FULFILLED");
  Got at_terminal = get("/v1/orders/o-1?revision=" + order["terminalRevision"].dump());
  ASSERT_EQ(at_terminal.status, 200);
  nlohmann::json a = at_terminal.json, b = later.json;
  a.erase("asOf");
  b.erase("asOf");
  EXPECT_EQ(a, b);
}

TEST_F(AdminServerTest, OrderAtAnOlderRevisionIsTheOlderState) {
  ack_of(receive_stock("sku-1", 10, "r-1"));
  runtime::Ack placed;
  const v1::OrderOutcome outcome = place_and_wait(place_order("o-1", {{"sku-1", 3}}), &placed);
  ASSERT_EQ(outcome.state(), v1::FULFILLED);
  ASSERT_TRUE(placed.new_revision);
  const Revision terminal = static_cast<Revision>(outcome.revision());
  ASSERT_GT(terminal, placed.revision);

  // At the placement's revision: just accepted, reserving, not terminal.
  Got at_place = get("/v1/orders/o-1?revision=" + std::to_string(placed.revision));
  ASSERT_EQ(at_place.status, 200) << at_place.body;
  EXPECT_EQ(at_place.json["state"], "RESERVING");
  EXPECT_EQ(at_place.json["terminal"], false);
  EXPECT_EQ(at_place.json["revision"], placed.revision);
  EXPECT_EQ(at_place.json["asOf"], placed.revision);
  EXPECT_FALSE(at_place.json.contains("terminalRevision"));
  EXPECT_EQ(at_place.json["step"], "RESERVE_STOCK");
  EXPECT_EQ(at_place.json["lines"][0]["status"], "PENDING");

  // Before it existed: 404.
  if (placed.revision > 0) {
    Got before = get("/v1/orders/o-1?revision=" + std::to_string(placed.revision - 1));
    EXPECT_EQ(before.status, 404) << before.body;
    EXPECT_EQ(before.json["asOf"], placed.revision - 1);
  }

  // Every revision in between: never terminal, its revision never above asOf, states move
  // forward through the saga and the last change before the terminal one is not terminal.
  std::vector<std::string> states;
  for (Revision r = placed.revision; r < terminal; ++r) {
    Got got = get("/v1/orders/o-1?revision=" + std::to_string(r));
    ASSERT_EQ(got.status, 200) << r << ": " << got.body;
    EXPECT_EQ(got.json["terminal"], false) << r;
    EXPECT_FALSE(got.json.contains("terminalRevision")) << r;
    EXPECT_LE(got.json["revision"].get<Revision>(), r);
    EXPECT_EQ(got.json["asOf"], r);
    const std::string state = got.json["state"];
    if (states.empty() || states.back() != state) states.push_back(state);
  }
  EXPECT_EQ(states, (std::vector<std::string>{"RESERVING", "AUTHORIZING", "SHIPPING", "COMMITTING"}));
  Got at_terminal = get("/v1/orders/o-1?revision=" + std::to_string(terminal));
  ASSERT_EQ(at_terminal.status, 200);
  EXPECT_EQ(at_terminal.json["state"], "FULFILLED");
  EXPECT_EQ(at_terminal.json["terminalRevision"], terminal);
}

TEST_F(AdminServerTest, OrderInProgressHasItsStepAndNoTerminalRevision) {
  ack_of(receive_stock("sku-1", 10, "r-1"));
  ack_of(runtime::OrderCommand{place_order("o-silent", {{"sku-1", 1}}, "tok_silent")});
  // The payment service never answers tok_silent: the order waits in AUTHORIZING.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  Got got;
  while (std::chrono::steady_clock::now() < deadline) {
    got = get("/v1/orders/o-silent");
    if (got.status == 200 && got.json["state"] == "AUTHORIZING") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(got.json["state"], "AUTHORIZING");
  EXPECT_EQ(got.json["terminal"], false);
  EXPECT_EQ(got.json["step"], "AUTHORIZE_PAYMENT");
  EXPECT_FALSE(got.json.contains("terminalRevision"));
  EXPECT_FALSE(got.json.contains("completedAtMs"));
  EXPECT_EQ(got.json["lines"][0]["status"], "RESERVED");
  EXPECT_EQ(got.json["paymentId"], "");
}

TEST_F(AdminServerTest, DeclinedOrderIsCancelledWithItsReason) {
  ack_of(receive_stock("sku-1", 10, "r-1"));
  const v1::OrderOutcome outcome = place_and_wait(place_order("o-decline", {{"sku-1", 1}}, "tok_decline"));
  ASSERT_EQ(outcome.state(), v1::CANCELLED);
  Got got = get("/v1/orders/o-decline");
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(got.json["state"], "CANCELLED");
  EXPECT_EQ(got.json["terminal"], true);
  EXPECT_EQ(got.json["reason"], outcome.reason());
  EXPECT_NE(got.json["reason"], "");
  EXPECT_EQ(got.json["lines"][0]["status"], "RELEASED");
  EXPECT_EQ(got.json["terminalRevision"].get<Revision>(), static_cast<Revision>(outcome.revision()));
}

TEST_F(AdminServerTest, UnknownEntitiesAre404AndInvalidIdsAre400) {
  Got order = get("/v1/orders/o-nobody");
  EXPECT_EQ(order.status, 404);
  EXPECT_EQ(order.content_type, "application/json");
  ASSERT_TRUE(order.json.is_object()) << order.body;
  EXPECT_NE(order.json["error"].get<std::string>().find("not found"), std::string::npos) << order.body;
  EXPECT_EQ(order.json["shard"], runtime_->shard_of("o-nobody").value);

  Got sku = get("/v1/skus/sku-nobody");
  EXPECT_EQ(sku.status, 404);
  EXPECT_TRUE(sku.json.contains("error"));

  // Not a valid id (events/validate.h is_valid_id): 400 with the rule broken.
  // A '/' in an id, encoded or not, is an invalid id too, not an unknown path.
  for (const char* bad : {"/v1/orders/bad%20id", "/v1/orders/-leading-dash", "/v1/skus/%C3%A9t%C3%A9",
                          "/v1/skus/x%00y", "/v1/orders/o%2Fa", "/v1/skus/a%2Fb"}) {
    Got got = get(bad);
    EXPECT_EQ(got.status, 400) << bad << ": " << got.body;
    ASSERT_TRUE(got.json.is_object()) << bad << ": " << got.body;
    EXPECT_NE(got.json["error"].get<std::string>().find("must match"), std::string::npos) << got.body;
  }
  const std::string long_id(65, 'a');
  EXPECT_EQ(get("/v1/orders/" + long_id).status, 400);
}

// ---------------------------------------------------------------------------------------------
// SKUs.

TEST_F(AdminServerTest, SkuIsServedCurrentAndAtAnOlderRevision) {
  const runtime::Ack first = ack_of(receive_stock("sku-1", 10, "r-1"));
  ASSERT_TRUE(first.new_revision);
  const v1::OrderOutcome outcome = place_and_wait(place_order("o-1", {{"sku-1", 4}}));
  ASSERT_EQ(outcome.state(), v1::FULFILLED);
  const ShardId shard = runtime_->shard_of("sku-1");

  Got now = get("/v1/skus/sku-1");
  ASSERT_EQ(now.status, 200) << now.body;
  EXPECT_EQ(now.content_type, "application/json");
  EXPECT_EQ(now.json["sku"], "sku-1");
  EXPECT_EQ(now.json["onHand"], 6);  // 10 received, 4 shipped (committed)
  EXPECT_EQ(now.json["reserved"], 0);
  EXPECT_EQ(now.json["available"], 6);
  EXPECT_EQ(now.json["shard"], shard.value);
  EXPECT_EQ(now.json["asOf"], revision_of_shard(shard));
  EXPECT_GT(now.json["revision"].get<Revision>(), first.revision);
  EXPECT_EQ(now.json["receivedTotal"], 10);
  EXPECT_EQ(now.json["shippedTotal"], 4);
  EXPECT_EQ(now.json["openReservations"], 0);

  Got then = get("/v1/skus/sku-1?revision=" + std::to_string(first.revision));
  ASSERT_EQ(then.status, 200) << then.body;
  EXPECT_EQ(then.json["onHand"], 10);
  EXPECT_EQ(then.json["reserved"], 0);
  EXPECT_EQ(then.json["available"], 10);
  EXPECT_EQ(then.json["revision"], first.revision);
  EXPECT_EQ(then.json["asOf"], first.revision);

  // Somewhere between, the order held its 4 units: reserved, not yet shipped.
  bool saw_reserved = false;
  for (Revision r = first.revision; r <= now.json["revision"].get<Revision>(); ++r) {
    Got got = get("/v1/skus/sku-1?revision=" + std::to_string(r));
    ASSERT_EQ(got.status, 200) << got.body;
    EXPECT_GE(got.json["available"].get<std::int64_t>(), 0);
    EXPECT_LE(got.json["reserved"].get<std::int64_t>(), got.json["onHand"].get<std::int64_t>());
    if (got.json["reserved"] == 4) {
      saw_reserved = true;
      EXPECT_EQ(got.json["onHand"], 10);
      EXPECT_EQ(got.json["available"], 6);
      EXPECT_EQ(got.json["openReservations"], 1);
    }
  }
  EXPECT_TRUE(saw_reserved);
}

// ---------------------------------------------------------------------------------------------
// Revisions: compacted (410), future (400), malformed (400).

TEST_F(AdminServerTest, CompactedRevisionIs410WithTheCompactedRevision) {
  const runtime::Ack first = ack_of(receive_stock("sku-1", 10, "r-1"));
  ack_of(receive_stock("sku-1", 5, "r-2"));
  const runtime::Ack third = ack_of(receive_stock("sku-1", 1, "r-3"));
  const ShardId shard = runtime_->shard_of("sku-1");
  ASSERT_TRUE(runtime_->wait_quiet(std::chrono::seconds(10)));
  ASSERT_TRUE(runtime_->journal().compact(shard, third.revision).is_ok());

  Got gone = get("/v1/skus/sku-1?revision=" + std::to_string(first.revision));
  EXPECT_EQ(gone.status, 410) << gone.body;
  ASSERT_TRUE(gone.json.is_object()) << gone.body;
  EXPECT_EQ(gone.json["compactedRevision"], third.revision);
  EXPECT_EQ(gone.json["shard"], shard.value);
  EXPECT_TRUE(gone.json["error"].is_string());

  // At and above the compacted revision reads still work; the state is unchanged.
  Got at = get("/v1/skus/sku-1?revision=" + std::to_string(third.revision));
  ASSERT_EQ(at.status, 200) << at.body;
  EXPECT_EQ(at.json["onHand"], 16);
  EXPECT_EQ(get("/v1/skus/sku-1").json["onHand"], 16);

  // The same for orders in that shard (even unknown ones: the revision is checked first)
  // and for the shard's digest.
  EXPECT_EQ(get("/v1/orders/o-in-shard?revision=0").status,
            runtime_->shard_of("o-in-shard") == shard ? 410 : 404);
  Got digest = get("/v1/shards/" + std::to_string(shard.value) + "?revision=" + std::to_string(first.revision));
  EXPECT_EQ(digest.status, 410) << digest.body;
  EXPECT_EQ(digest.json["compactedRevision"], third.revision);

  Got shards = get("/v1/shards");
  ASSERT_EQ(shards.status, 200);
  EXPECT_EQ(shards.json[shard.value]["compactedRevision"], third.revision);
}

TEST_F(AdminServerTest, FutureRevisionIs400WithTheCurrentRevision) {
  const runtime::Ack ack = ack_of(receive_stock("sku-1", 10, "r-1"));
  const ShardId shard = runtime_->shard_of("sku-1");
  const Revision current = revision_of_shard(shard);
  Got got = get("/v1/skus/sku-1?revision=" + std::to_string(current + 1));
  EXPECT_EQ(got.status, 400) << got.body;
  ASSERT_TRUE(got.json.is_object()) << got.body;
  EXPECT_EQ(got.json["currentRevision"], current);
  EXPECT_EQ(get("/v1/skus/sku-1?revision=" + std::to_string(current)).status, 200);
  EXPECT_EQ(get("/v1/skus/sku-1?revision=18446744073709551615").status, 400);
  EXPECT_EQ(get("/v1/orders/o-x?revision=999999").status, 400);
  EXPECT_EQ(get("/v1/shards/" + std::to_string(shard.value) + "?revision=" + std::to_string(current + 7)).status,
            400);
  (void)ack;
}

TEST_F(AdminServerTest, MalformedRevisionIs400) {
  ack_of(receive_stock("sku-1", 10, "r-1"));
  for (const char* query : {"?revision=", "?revision=abc", "?revision=-1", "?revision=1e3", "?revision=+1",
                            "?revision=1.0", "?revision=%201", "?revision=18446744073709551616",
                            "?revision=1&revision=2"}) {
    for (const std::string path : {"/v1/skus/sku-1", "/v1/orders/o-1", "/v1/shards/0"}) {
      Got got = get(path + query);
      EXPECT_EQ(got.status, 400) << path << query << ": " << got.body;
      ASSERT_TRUE(got.json.is_object()) << path << query << ": " << got.body;
      EXPECT_NE(got.json["error"].get<std::string>().find("revision"), std::string::npos) << got.body;
    }
  }
  // Leading zeros are still a number; unknown parameters are ignored.
  EXPECT_EQ(get("/v1/skus/sku-1?revision=0001").status, 200);
  EXPECT_EQ(get("/v1/skus/sku-1?pretty=1").status, 200);
}

// ---------------------------------------------------------------------------------------------
// Shards.

TEST_F(AdminServerTest, ShardsListEveryShardWithItsLiveDigest) {
  ack_of(receive_stock("sku-1", 10, "r-1"));
  ack_of(receive_stock("sku-2", 10, "r-2"));
  ASSERT_EQ(place_and_wait(place_order("o-1", {{"sku-1", 1}, {"sku-2", 1}})).state(), v1::FULFILLED);

  Got got = get("/v1/shards");
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(got.content_type, "application/json");
  ASSERT_TRUE(got.json.is_array());
  ASSERT_EQ(got.json.size(), kShards);
  storage::Journal& journal = runtime_->journal();
  for (std::uint32_t s = 0; s < kShards; ++s) {
    const nlohmann::json& shard = got.json[s];
    EXPECT_EQ(shard["shard"], s);
    const Revision revision = revision_of_shard(ShardId{s});
    EXPECT_EQ(shard["revision"], revision);
    EXPECT_EQ(shard["compactedRevision"], 0);
    auto digest = journal.digest(ShardId{s}, revision);
    ASSERT_TRUE(digest.is_ok());
    EXPECT_EQ(shard["digest"], *digest);
    EXPECT_EQ(shard["digest"].get<std::string>().size(), 64u);  // hex SHA-256
  }
}

TEST_F(AdminServerTest, ShardDigestAsOfARevision) {
  const runtime::Ack first = ack_of(receive_stock("sku-1", 10, "r-1"));
  ack_of(receive_stock("sku-1", 10, "r-2"));
  const ShardId shard = runtime_->shard_of("sku-1");
  const std::string base = "/v1/shards/" + std::to_string(shard.value);

  Got then = get(base + "?revision=" + std::to_string(first.revision));
  ASSERT_EQ(then.status, 200) << then.body;
  EXPECT_EQ(then.json["shard"], shard.value);
  EXPECT_EQ(then.json["revision"], first.revision);
  EXPECT_EQ(then.json["digest"], *runtime_->journal().digest(shard, first.revision));

  Got now = get(base);
  ASSERT_EQ(now.status, 200) << now.body;
  EXPECT_EQ(now.json["revision"], revision_of_shard(shard));
  EXPECT_NE(now.json["digest"], then.json["digest"]);

  // The empty shard at revision 0 has the digest of nothing.
  Got empty = get(base + "?revision=0");
  ASSERT_EQ(empty.status, 200);
  EXPECT_EQ(empty.json["digest"], "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

  EXPECT_EQ(get("/v1/shards/" + std::to_string(kShards)).status, 404);
  EXPECT_EQ(get("/v1/shards/99999999999").status, 404);  // a decimal number, just no such shard
  EXPECT_EQ(get("/v1/shards/x").status, 400);
  EXPECT_EQ(get("/v1/shards/-1").status, 400);
}

// ---------------------------------------------------------------------------------------------
// Paths and methods.

TEST_F(AdminServerTest, UnknownPathsAre404AndOtherMethodsAre405) {
  for (const char* path : {"/", "/v1", "/v1/orders", "/v1/orders/", "/v1/orders/o-1/lines", "/v2/orders/o-1",
                           "/metrics/x", "/v1/skus/a/b", "/nope"}) {
    Got got = get(path);
    EXPECT_EQ(got.status, 404) << path;
    EXPECT_EQ(got.content_type, "application/json") << path;
    ASSERT_TRUE(got.json.is_object()) << path << ": " << got.body;
    EXPECT_TRUE(got.json["error"].is_string()) << path;
  }
  for (const char* method : {"POST", "PUT", "DELETE"}) {
    Got got = get("/v1/orders/o-1", method);
    EXPECT_EQ(got.status, 405) << method;
    EXPECT_EQ(got.allow, "GET, HEAD") << method;
    EXPECT_TRUE(got.json.contains("error")) << got.body;
    EXPECT_EQ(get("/nope", method).status, 404) << method;
  }
}

// ---------------------------------------------------------------------------------------------
// Metrics.

// "name" of a sample line, without labels and without a histogram's suffixes when `families`
// knows the base name.
std::string family_of(const std::string& line, const std::set<std::string>& families) {
  std::string name = line.substr(0, line.find_first_of("{ "));
  if (families.count(name)) return name;
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string s = suffix;
    if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
      return name.substr(0, name.size() - s.size());
    }
  }
  return name;
}

TEST_F(AdminServerTest, MetricsIsPrometheusTextWithHelpTypeAndTotalCounters) {
  registry_.histogram("ffe_test_request_seconds", "A histogram beside the runtime's families",
                      metrics::latency_buckets_seconds())
      .observe(0.003);
  ack_of(receive_stock("sku-1", 10, "r-1"));
  ASSERT_EQ(place_and_wait(place_order("o-1", {{"sku-1", 1}})).state(), v1::FULFILLED);

  Got got = get("/metrics");
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(got.content_type, "text/plain; version=0.0.4; charset=utf-8");

  std::set<std::string> helped, typed, counters, sampled;
  std::istringstream lines(got.body);
  std::string line;
  while (std::getline(lines, line)) {
    ASSERT_FALSE(line.empty());
    std::istringstream words(line);
    std::string hash, keyword, name, type;
    if (line.rfind("# HELP ", 0) == 0) {
      words >> hash >> keyword >> name;
      helped.insert(name);
    } else if (line.rfind("# TYPE ", 0) == 0) {
      words >> hash >> keyword >> name >> type;
      EXPECT_TRUE(type == "counter" || type == "gauge" || type == "histogram") << line;
      typed.insert(name);
      if (type == "counter") counters.insert(name);
    } else {
      ASSERT_NE(line[0], '#') << line;
      const std::string family = family_of(line, typed);
      EXPECT_TRUE(typed.count(family)) << "sample before its # TYPE: " << line;
      EXPECT_TRUE(helped.count(family)) << "sample without # HELP: " << line;
      sampled.insert(family);
      const std::string value = line.substr(line.rfind(' ') + 1);
      EXPECT_NO_THROW((void)std::stod(value)) << line;
    }
  }
  for (const std::string& counter : counters) {
    EXPECT_TRUE(counter.size() > 6 && counter.compare(counter.size() - 6, 6, "_total") == 0) << counter;
  }
  for (const char* family : {"ffe_commands_total", "ffe_actors_live", "ffe_journal_batches_total",
                             "ffe_journal_written_bytes_total", "ffe_shard_revision", "ffe_test_request_seconds"}) {
    EXPECT_TRUE(sampled.count(family)) << family << "\n" << got.body;
  }
  EXPECT_NE(got.body.find("ffe_test_request_seconds_bucket{le=\"+Inf\"} 1\n"), std::string::npos);
  const ShardId shard = runtime_->shard_of("o-1");
  EXPECT_NE(got.body.find("ffe_shard_revision{shard=\"" + std::to_string(shard.value) + "\"} " +
                          std::to_string(revision_of_shard(shard)) + "\n"),
            std::string::npos)
      << got.body;

  if (metrics::testing::promtool_available()) {
    const metrics::testing::PromtoolResult lint = metrics::testing::promtool_check(got.body);
    EXPECT_EQ(lint.exit_code, 0) << lint.output << "\n" << got.body;
  }
}

// ---------------------------------------------------------------------------------------------
// Lifecycle.

TEST_F(AdminServerTest, StartRefusesABadAddressAndABusyPort) {
  auto bad = AdminServer::start("no-port-here", *runtime_, registry_, nullptr);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), storage::StatusCode::kInvalidArgument);

  auto busy = AdminServer::start(server_->address(), *runtime_, registry_, nullptr);
  ASSERT_FALSE(busy.is_ok());
  EXPECT_EQ(busy.status().code(), storage::StatusCode::kIoError);
  EXPECT_NE(busy.status().message().find(server_->address()), std::string::npos) << busy.status().message();

  // An empty ready callback means always ready.
  auto other = AdminServer::start("127.0.0.1:0", *runtime_, registry_, nullptr);
  ASSERT_TRUE(other.is_ok()) << other.status().to_string();
  EXPECT_NE((*other)->port(), server_->port());
  auto readyz = http::get((*other)->address(), "/readyz");
  ASSERT_TRUE(readyz.is_ok());
  EXPECT_EQ(readyz->status, 200);
}

TEST_F(AdminServerTest, StopClosesThePortAndIsIdempotent) {
  const std::string address = server_->address();
  EXPECT_EQ(address, "127.0.0.1:" + std::to_string(server_->port()));
  ASSERT_TRUE(http::get(address, "/healthz").is_ok());
  const auto start = std::chrono::steady_clock::now();
  server_->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  server_->stop();
  auto after = http::get(address, "/healthz", std::chrono::milliseconds(500));
  EXPECT_FALSE(after.is_ok());
  // Start then stop at once: nothing hangs.
  for (int i = 0; i < 5; ++i) {
    auto quick = AdminServer::start("127.0.0.1:0", *runtime_, registry_, nullptr);
    ASSERT_TRUE(quick.is_ok());
    (*quick)->stop();
  }
}

TEST_F(AdminServerTest, ConcurrentReadsAndScrapesWhileCommandsCommit) {
  ack_of(receive_stock("sku-1", 1000, "r-0"));
  std::atomic<bool> done{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&, t] {
      while (!done) {
        const Got got = get(t == 0 ? "/metrics" : t == 1 ? "/v1/skus/sku-1" : "/v1/shards");
        if (got.status != 200) ++failures;
      }
    });
  }
  for (int i = 1; i <= 50; ++i) ack_of(receive_stock("sku-1", 1, "r-" + std::to_string(i)));
  done = true;
  for (auto& reader : readers) reader.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(get("/v1/skus/sku-1").json["onHand"], 1050);
}

// ---------------------------------------------------------------------------------------------
// The client behind `ffe get` (adapters/http/client.h).

TEST_F(AdminServerTest, GetEntityExitCodesAndOutput) {
  ack_of(receive_stock("sku-1", 10, "r-1"));
  const ShardId shard = runtime_->shard_of("sku-1");
  ASSERT_TRUE(runtime_->wait_quiet(std::chrono::seconds(10)));
  const std::string address = server_->address();

  GetOutcome found = get_entity(EntityKind::kSku, "sku-1", std::nullopt, address);
  EXPECT_EQ(found.exit_code, 0) << found.err;
  EXPECT_EQ(found.err, "");
  EXPECT_EQ(nlohmann::json::parse(found.out)["onHand"], 10);
  EXPECT_EQ(found.out.back(), '\n');

  GetOutcome at = get_entity(EntityKind::kSku, "sku-1", Revision{1}, "http://" + address + "/");
  EXPECT_EQ(at.exit_code, 0) << at.err;
  EXPECT_EQ(nlohmann::json::parse(at.out)["asOf"], 1);

  GetOutcome missing = get_entity(EntityKind::kOrder, "o-missing", std::nullopt, address);
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.out, "");
  EXPECT_NE(missing.err.find("not found"), std::string::npos) << missing.err;
  EXPECT_NE(missing.err.find("(HTTP 404)"), std::string::npos) << missing.err;

  GetOutcome future = get_entity(EntityKind::kSku, "sku-1", revision_of_shard(shard) + 5, address);
  EXPECT_EQ(future.exit_code, 2);
  EXPECT_NE(future.err.find("(HTTP 400)"), std::string::npos) << future.err;

  GetOutcome invalid = get_entity(EntityKind::kOrder, "bad id/../x", std::nullopt, address);
  EXPECT_EQ(invalid.exit_code, 2);
  EXPECT_NE(invalid.err.find("must match"), std::string::npos) << invalid.err;

  ack_of(receive_stock("sku-1", 1, "r-2"));
  ASSERT_TRUE(runtime_->journal().compact(shard, revision_of_shard(shard)).is_ok());
  GetOutcome gone = get_entity(EntityKind::kSku, "sku-1", Revision{1}, address);
  EXPECT_EQ(gone.exit_code, 2);
  EXPECT_NE(gone.err.find("(HTTP 410)"), std::string::npos) << gone.err;
  EXPECT_EQ(gone.err.rfind("ffe get: ", 0), 0u) << gone.err;

  server_->stop();
  GetOutcome down = get_entity(EntityKind::kSku, "sku-1", std::nullopt, address);
  EXPECT_EQ(down.exit_code, 2);
  EXPECT_NE(down.err.find(address), std::string::npos) << down.err;

  GetOutcome bad_address = get_entity(EntityKind::kSku, "sku-1", std::nullopt, "nowhere");
  EXPECT_EQ(bad_address.exit_code, 2);
  EXPECT_NE(bad_address.err.find("HOST:PORT"), std::string::npos) << bad_address.err;
}

TEST(HttpAddress, ParsesHostPortForms) {
  auto plain = parse_address("127.0.0.1:8080");
  ASSERT_TRUE(plain.is_ok());
  EXPECT_EQ(plain->host, "127.0.0.1");
  EXPECT_EQ(plain->port, 8080);
  auto any = parse_address("127.0.0.1:0");
  ASSERT_TRUE(any.is_ok());
  EXPECT_EQ(any->port, 0);
  auto v6 = parse_address("[::1]:9");
  ASSERT_TRUE(v6.is_ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(format_address(*v6), "[::1]:9");
  auto bare = parse_address(":8081");
  ASSERT_TRUE(bare.is_ok());
  EXPECT_EQ(bare->host, "127.0.0.1");  // loopback unless told otherwise
  auto url = parse_address("http://localhost:80/");
  ASSERT_TRUE(url.is_ok());
  EXPECT_EQ(url->host, "localhost");
  for (const char* bad : {"", "8080", "host:", "host:65536", "host:-1", "host:8o", "::1:80", "a b:1", "[::1:80"}) {
    EXPECT_FALSE(parse_address(bad).is_ok()) << bad;
  }
  // Leading zeros are the number (as every integer flag takes them); a path is named as such.
  auto zeros = parse_address("127.0.0.1:008080");
  ASSERT_TRUE(zeros.is_ok());
  EXPECT_EQ(zeros->port, 8080);
  auto path = parse_address("127.0.0.1:8080/v1");
  ASSERT_FALSE(path.is_ok());
  EXPECT_NE(path.status().message().find("a path is not part of the address"), std::string::npos)
      << path.status().message();
  // Another scheme is named as such (it was refused as an IPv6 host without brackets).
  auto tls = parse_address("https://127.0.0.1:8080");
  ASSERT_FALSE(tls.is_ok());
  EXPECT_NE(tls.status().message().find("only http://"), std::string::npos) << tls.status().message();
  EXPECT_EQ(kDefaultAddress, "127.0.0.1:8080");
  EXPECT_TRUE(is_loopback(parse_address(kDefaultAddress)->host));
  EXPECT_TRUE(is_loopback("::1"));
  EXPECT_FALSE(is_loopback("0.0.0.0"));
  EXPECT_EQ(encode_path_segment("a b/é"), "a%20b%2F%C3%A9");
}

}  // namespace
}  // namespace ffe::http::testing
