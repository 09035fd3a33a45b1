// Revisions over the admin HTTP API beyond plain reads (docs/revisions.md): GET /v1/watch
// (ordered, resumable, fails clearly when compacted), POST /v1/shards/{s}/compact (by
// command, never past a log reader's cursor unless forced), and the retention policy
// (actors/runtime/retention.h) on the same real runtime and journal.

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "actors/runtime/retention.h"
#include "storage/limits.h"
#include "tests/http/admin_fixture.h"

namespace ffe::http::testing {
namespace {

using runtime::testing::place_order;
using runtime::testing::receive_stock;

class RevisionsTest : public AdminFixture {
 protected:
  // The body of a watch split into parsed lines.
  static std::vector<nlohmann::json> lines_of(const std::string& body) {
    std::vector<nlohmann::json> lines;
    std::istringstream in(body);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
    }
    return lines;
  }
  Got post(const std::string& target) const { return get(target, "POST"); }

  // Sends `request` as written on a new connection and returns the answer's status line;
  // "" when none came within 10 s.
  std::string raw_status_line(const std::string& request) const {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return "";
    timeval patience{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof(patience));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(server_->port()));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string answer;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
        ::send(fd, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size())) {
      char buffer[512];
      for (ssize_t n; answer.find("\r\n") == std::string::npos && (n = ::recv(fd, buffer, sizeof(buffer), 0)) > 0;) {
        answer.append(buffer, static_cast<std::size_t>(n));
      }
    }
    ::close(fd);
    return answer.substr(0, answer.find("\r\n"));
  }

  // Puts "cursor/<name>" = revision in the shard's index (as the ff.events publisher and
  // CDC do), with a no-op commit.
  void set_cursor(ShardId shard, const std::string& name, Revision revision) {
    storage::CommitRequest request;
    request.shard = shard;
    request.index_put.push_back({"cursor/" + name, std::to_string(revision)});
    auto done = runtime_->journal().commit(std::move(request)).get();
    ASSERT_TRUE(done.status.is_ok()) << done.status.to_string();
  }
};

TEST_F(RevisionsTest, WatchStreamsAnEntitysEventsInRevisionOrderAndResumes) {
  ack_of(receive_stock("sku-1", 10, "r-1"));
  for (int i = 1; i <= 3; ++i) ack_of(receive_stock("sku-1", i, "r-more-" + std::to_string(i)));
  const ShardId shard = runtime_->shard_of("sku-1");

  Got all = get("/v1/watch?prefix=sku/sku-1&fromRevision=1");
  ASSERT_EQ(all.status, 200) << all.body;
  EXPECT_EQ(all.content_type, "application/x-ndjson");
  const auto lines = lines_of(all.body);
  ASSERT_EQ(lines.size(), 4u) << all.body;
  Revision previous = 0;
  for (const auto& line : lines) {
    EXPECT_EQ(line["shard"], shard.value);
    EXPECT_EQ(line["key"], "sku/sku-1");
    EXPECT_GT(line["revision"].get<Revision>(), previous);
    previous = line["revision"].get<Revision>();
    EXPECT_TRUE(line["event"].contains("received")) << line.dump();
  }
  EXPECT_EQ(lines[0]["event"]["received"]["qty"], "10");  // int64 in canonical JSON: a string

  // Resuming from the last revision seen + 1 continues exactly where the first read stopped.
  Got first_two = get("/v1/watch?prefix=sku/sku-1&fromRevision=1&limit=2");
  const auto head = lines_of(first_two.body);
  ASSERT_EQ(head.size(), 2u);
  Got rest = get("/v1/watch?prefix=sku/sku-1&fromRevision=" +
                 std::to_string(head.back()["revision"].get<Revision>() + 1));
  auto tail = lines_of(rest.body);
  ASSERT_EQ(head.size() + tail.size(), lines.size());
  for (std::size_t i = 0; i < tail.size(); ++i) EXPECT_EQ(tail[i], lines[head.size() + i]);
}

// A quiet key in a busy shard: the journal examines at most watch_scan_records_max (10,000)
// records per read, so more than that without a match in between must not end the stream
// early (it did: an empty read looked like "caught up", and the watch printed nothing).
TEST_F(RevisionsTest, WatchGoesOnPastAStretchOfOtherKeysLongerThanOneScan) {
  const ShardId shard = runtime_->shard_of("sku-1");
  std::string filler;
  for (int i = 0; filler.empty(); ++i) {
    if (runtime_->shard_of("f-" + std::to_string(i)) == shard) filler = "f-" + std::to_string(i);
  }
  const Revision first = ack_of(receive_stock("sku-1", 1, "r-1")).revision;
  constexpr int kOthers = static_cast<int>(storage::limits::watch_scan_records_max) + 500;
  std::atomic<int> acked{0};
  for (int i = 0; i < kOthers; ++i) {
    ASSERT_TRUE(runtime_->submit(runtime::InventoryCommand{receive_stock(filler, 1, "f-" + std::to_string(i))},
                                 [&](const runtime::Ack&) { acked.fetch_add(1); }, runtime::Admission::kWait));
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (acked.load() < kOthers && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(acked.load(), kOthers);
  const Revision last = ack_of(receive_stock("sku-1", 1, "r-2")).revision;
  ASSERT_GT(last, first + storage::limits::watch_scan_records_max);

  Got after_first = get("/v1/watch?prefix=sku/sku-1&fromRevision=" + std::to_string(first + 1));
  ASSERT_EQ(after_first.status, 200) << after_first.body;
  const auto lines = lines_of(after_first.body);
  ASSERT_EQ(lines.size(), 1u) << after_first.body;
  EXPECT_EQ(lines[0]["revision"], last);
}

TEST_F(RevisionsTest, WatchLimitEndsAtARevisionsEndSoAResumeLosesNothing) {
  // Placing an order commits several events at one revision (placed, the step started):
  // a limit of 1 must still deliver all of them, or "resume from last + 1" would skip some.
  ack_of(receive_stock("sku-1", 10, "r-1"));
  ack_of(runtime::OrderCommand{place_order("o-1", {{"sku-1", 1}})});
  const std::string base = "/v1/watch?prefix=order/o-1&fromRevision=";
  const auto all = lines_of(get(base + "1").body);
  ASSERT_GE(all.size(), 2u);
  ASSERT_EQ(all[0]["revision"], all[1]["revision"]) << "the test needs a revision with two events";
  std::vector<nlohmann::json> resumed;
  Revision from = 1;
  for (int reads = 0; resumed.size() < all.size(); ++reads) {
    ASSERT_LT(reads, 100) << "resuming does not progress";
    const auto part = lines_of(get(base + std::to_string(from) + "&limit=1").body);
    ASSERT_FALSE(part.empty());
    for (std::size_t i = 1; i < part.size(); ++i) EXPECT_EQ(part[i]["revision"], part[0]["revision"]);
    resumed.insert(resumed.end(), part.begin(), part.end());
    from = part.back()["revision"].get<Revision>() + 1;
  }
  EXPECT_EQ(resumed, all);
}

TEST_F(RevisionsTest, WatchNeverServesThePaymentTokenOrTheShippingAddress) {
  ack_of(receive_stock("sku-1", 10, "r-1"));
  v1::PlaceOrder place = place_order("o-1", {{"sku-1", 1}});
  ASSERT_FALSE(place.payment().token().empty());
  ASSERT_TRUE(place.has_ship_to());
  ack_of(runtime::OrderCommand{place});
  v1::PlaceOrder broken = place_order("o-2", {{"sku-1", 0}});  // REJECTED: its event holds the order too
  ack_of(runtime::OrderCommand{broken});
  int placements = 0;
  for (const char* id : {"o-1", "o-2"}) {
    Got got = get(std::string("/v1/watch?prefix=order/") + id + "&fromRevision=1");
    EXPECT_EQ(got.body.find(place.payment().token()), std::string::npos) << got.body;
    EXPECT_EQ(got.body.find(place.ship_to().line1()), std::string::npos) << got.body;
    for (const auto& line : lines_of(got.body)) {
      for (const char* kind : {"placed", "rejected"}) {
        if (!line["event"].contains(kind)) continue;
        ++placements;
        EXPECT_EQ(line["event"][kind]["order"]["payment"]["token"], "***") << line.dump();
        EXPECT_FALSE(line["event"][kind]["order"].contains("shipTo")) << line.dump();
      }
    }
  }
  EXPECT_EQ(placements, 2);
}

TEST_F(RevisionsTest, WatchNeedsAShardForAPrefixSpanningShardsAndChecksItsRevision) {
  ack_of(receive_stock("sku-1", 10, "r-1"));
  const ShardId shard = runtime_->shard_of("sku-1");
  Got spanning = get("/v1/watch?prefix=sku/&fromRevision=1");
  EXPECT_EQ(spanning.status, 400) << spanning.body;
  EXPECT_NE(spanning.json["error"].get<std::string>().find("shard"), std::string::npos);
  Got by_shard = get("/v1/watch?prefix=sku/&fromRevision=1&shard=" + std::to_string(shard.value));
  EXPECT_EQ(by_shard.status, 200);
  EXPECT_EQ(lines_of(by_shard.body).size(), 1u);
  EXPECT_EQ(get("/v1/watch?prefix=sku/sku-1").status, 400);  // fromRevision required
  EXPECT_EQ(get("/v1/watch?prefix=sku/sku-1&fromRevision=x").status, 400);
  EXPECT_EQ(get("/v1/watch?prefix=sku/sku-1&fromRevision=1&follow=perhaps").status, 400);
  EXPECT_EQ(get("/v1/watch?prefix=sku/&fromRevision=1&shard=99").status, 404);
  Got future = get("/v1/watch?prefix=sku/sku-1&fromRevision=" + std::to_string(revision_of_shard(shard) + 2));
  EXPECT_EQ(future.status, 400) << future.body;
}

TEST_F(RevisionsTest, WatchFromACompactedRevisionIs410NeverASilentSkip) {
  ack_of(receive_stock("sku-1", 10, "r-1"));
  ack_of(receive_stock("sku-1", 1, "r-2"));
  const runtime::Ack third = ack_of(receive_stock("sku-1", 1, "r-3"));
  const ShardId shard = runtime_->shard_of("sku-1");
  ASSERT_TRUE(runtime_->journal().compact(shard, third.revision).is_ok());
  Got gone = get("/v1/watch?prefix=sku/sku-1&fromRevision=1");
  EXPECT_EQ(gone.status, 410) << gone.body;
  EXPECT_EQ(gone.json["compactedRevision"], third.revision);
  Got from_compacted = get("/v1/watch?prefix=sku/sku-1&fromRevision=" + std::to_string(third.revision));
  EXPECT_EQ(from_compacted.status, 200);
  EXPECT_EQ(lines_of(from_compacted.body).size(), 1u);
}

TEST_F(RevisionsTest, FollowingWatchSeesNewCommitsAndEndsWhenTheServerStops) {
  ack_of(receive_stock("sku-1", 10, "r-1"));
  std::atomic<int> seen{0};
  std::string body;
  std::thread watcher([&] {
    httplib::Client client("127.0.0.1", server_->port());
    client.set_read_timeout(std::chrono::seconds(60));
    client.Get("/v1/watch?prefix=sku/sku-1&fromRevision=1&follow=true",
               [&](const char* data, std::size_t length) {
                 body.append(data, length);
                 seen = static_cast<int>(lines_of(body).size());
                 return true;
               });
  });
  auto wait_for = [&](int lines) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (seen.load() < lines && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return seen.load() >= lines;
  };
  EXPECT_TRUE(wait_for(1));
  ack_of(receive_stock("sku-1", 2, "r-2"));
  EXPECT_TRUE(wait_for(2)) << body;
  const Revision last = revision_of_shard(runtime_->shard_of("sku-1"));
  server_->stop();  // the stream ends at its next poll; the client returns
  watcher.join();
  const auto lines = lines_of(body);
  ASSERT_EQ(lines.size(), 3u) << body;
  EXPECT_EQ(lines[1]["event"]["received"]["qty"], "2");
  // Not a stream that reached its end: the last line says so, and where to resume.
  EXPECT_EQ(lines[2]["error"], "the server is stopping") << body;
  EXPECT_EQ(lines[2]["resumeFromRevision"], last + 1) << body;
}

TEST_F(RevisionsTest, CompactByCommandMakesOlderRevisionsGoneAndIsIdempotent) {
  const runtime::Ack first = ack_of(receive_stock("sku-1", 10, "r-1"));
  const runtime::Ack second = ack_of(receive_stock("sku-1", 5, "r-2"));
  const ShardId shard = runtime_->shard_of("sku-1");
  const std::string route = "/v1/shards/" + std::to_string(shard.value) + "/compact?revision=";

  Got done = post(route + std::to_string(second.revision));
  ASSERT_EQ(done.status, 200) << done.body;
  EXPECT_EQ(done.json["shard"], shard.value);
  EXPECT_EQ(done.json["compactedRevision"], second.revision);
  EXPECT_EQ(get("/v1/skus/sku-1?revision=" + std::to_string(first.revision)).status, 410);
  EXPECT_EQ(get("/v1/skus/sku-1").json["onHand"], 15);

  EXPECT_EQ(post(route + std::to_string(second.revision)).status, 200);  // again: a no-op
  Got below = post(route + std::to_string(first.revision));
  EXPECT_EQ(below.status, 410) << below.body;
  Got future = post(route + std::to_string(second.revision + 100));
  EXPECT_EQ(future.status, 400) << future.body;
  EXPECT_EQ(post("/v1/shards/" + std::to_string(shard.value) + "/compact").status, 400);  // no revision
  Got wrong_method = get(route + "1");
  EXPECT_EQ(wrong_method.status, 405);
  EXPECT_EQ(wrong_method.allow, "POST");
}

// `curl -X POST URL` sends no Content-Length and no body, which HTTP reads as an empty body:
// such a POST is answered at once, as if it had `Content-Length: 0`.
TEST_F(RevisionsTest, CompactByAPostWithoutContentLengthIsAnsweredAsOneWithAnEmptyBody) {
  ack_of(receive_stock("sku-1", 10, "r-1"));
  const ShardId shard = runtime_->shard_of("sku-1");
  const Revision current = revision_of_shard(shard);
  const std::string target = "/v1/shards/" + std::to_string(shard.value) + "/compact?revision=" + std::to_string(current);

  EXPECT_EQ(raw_status_line("POST " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
            "HTTP/1.1 200 OK");
  EXPECT_EQ(runtime_->journal().compacted_revision(shard).value(), current);
  // Other methods without a body on a known path: 405 at once; on an unknown one: 404.
  EXPECT_EQ(raw_status_line("DELETE /v1/skus/sku-1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
            "HTTP/1.1 405 Method Not Allowed");
  EXPECT_EQ(raw_status_line("POST /v1/nosuch HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
            "HTTP/1.1 404 Not Found");
}

TEST_F(RevisionsTest, CompactNeverPassesALogReadersCursorUnlessForced) {
  ack_of(receive_stock("sku-1", 10, "r-1"));
  const ShardId shard = runtime_->shard_of("sku-1");
  const Revision cursor = revision_of_shard(shard);
  set_cursor(shard, "cdc", cursor);
  for (int i = 0; i < 3; ++i) ack_of(receive_stock("sku-1", 1, "r-x" + std::to_string(i)));
  const Revision current = revision_of_shard(shard);
  const std::string route = "/v1/shards/" + std::to_string(shard.value) + "/compact?revision=" + std::to_string(current);

  Got refused = post(route);
  EXPECT_EQ(refused.status, 409) << refused.body;
  EXPECT_EQ(refused.json["cursor"], "cursor/cdc");
  EXPECT_EQ(refused.json["cursorRevision"], cursor);
  EXPECT_EQ(runtime_->journal().compacted_revision(shard).value(), 0u);

  EXPECT_EQ(post("/v1/shards/" + std::to_string(shard.value) + "/compact?revision=" + std::to_string(cursor)).status, 200);
  Got forced = post(route + "&force=true");
  EXPECT_EQ(forced.status, 200) << forced.body;
  EXPECT_EQ(forced.json["compactedRevision"], current);

  // Compacting to the compacted revision again drops nothing: a no-op, though the cursor is
  // still behind it (docs/revisions.md); below it is 410.
  Got again = post(route);
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(again.json["compactedRevision"], current);
  EXPECT_EQ(post("/v1/shards/" + std::to_string(shard.value) + "/compact?revision=" + std::to_string(current - 1)).status,
            410);
}

TEST_F(RevisionsTest, RetentionKeepsTheLastNRevisionsAndStopsAtCursors) {
  for (int i = 0; i < 10; ++i) ack_of(receive_stock("sku-1", 1, "r-" + std::to_string(i)));
  const ShardId shard = runtime_->shard_of("sku-1");
  const Revision current = revision_of_shard(shard);
  ASSERT_GE(current, 10u);
  storage::Journal& journal = runtime_->journal();

  runtime::RetentionPolicy policy;
  policy.keep_revisions = 4;
  std::optional<runtime::CursorFloor> held_by;
  auto target = runtime::retention_target(journal, shard, policy, 0, &held_by);
  ASSERT_TRUE(target.is_ok());
  ASSERT_TRUE(target->has_value());
  EXPECT_EQ(**target, current - 3);  // revisions current-3 .. current stay readable
  EXPECT_FALSE(held_by) << "no cursor yet";

  set_cursor(shard, "events", current - 6);
  target = runtime::retention_target(journal, shard, policy, 0, &held_by);
  ASSERT_TRUE(target.is_ok() && target->has_value());
  EXPECT_EQ(**target, current - 6);  // the cursor wins
  ASSERT_TRUE(held_by) << "the cursor that holds the policy back is named (and logged by Retention)";
  EXPECT_EQ(held_by->name, "cursor/events");
  EXPECT_EQ(held_by->revision, current - 6);

  runtime::Retention retention(journal, policy, [] { return std::int64_t{0}; });
  retention.run_once();
  EXPECT_EQ(journal.compacted_revision(shard).value(), current - 6);
  EXPECT_EQ(get("/v1/skus/sku-1?revision=" + std::to_string(current - 7)).status, 410);
  EXPECT_EQ(get("/v1/skus/sku-1").json["onHand"], 10);
  // Nothing more to do until the cursor moves.
  target = runtime::retention_target(journal, shard, policy, 0);
  ASSERT_TRUE(target.is_ok());
  EXPECT_FALSE(target->has_value());
}

TEST_F(RevisionsTest, RetentionKeepsTheRecentRevisionsWhateverTheCountSays) {
  const Revision first = ack_of(receive_stock("sku-1", 1, "r-first")).revision;
  for (int i = 0; i < 10; ++i) ack_of(receive_stock("sku-1", 1, "r-" + std::to_string(i)));
  const ShardId shard = runtime_->shard_of("sku-1");
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  runtime::RetentionPolicy policy;
  policy.keep_revisions = 1;
  policy.keep_recent = std::chrono::minutes(1);
  auto target = runtime::retention_target(runtime_->journal(), shard, policy, now);
  ASSERT_TRUE(target.is_ok());
  // Compacting below `first` removes nothing.
  EXPECT_TRUE(!target->has_value() || **target <= first)
      << "compacted below a revision committed within the last minute: " << **target;
  // An hour later the same revisions are past keep_recent, and the count decides.
  target = runtime::retention_target(runtime_->journal(), shard, policy, now + 3'600'000);
  ASSERT_TRUE(target.is_ok() && target->has_value());
  EXPECT_EQ(**target, revision_of_shard(shard));
}

TEST_F(RevisionsTest, RetentionByTimeKeepsWhatWasCommittedWithinTheWindow) {
  ack_of(receive_stock("sku-1", 1, "r-old-1"));
  ack_of(receive_stock("sku-1", 1, "r-old-2"));
  const ShardId shard = runtime_->shard_of("sku-1");
  const Revision old_revision = revision_of_shard(shard);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const auto now_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  const std::int64_t cutoff = now_ms();
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const runtime::Ack recent = ack_of(receive_stock("sku-1", 1, "r-new-1"));
  ack_of(receive_stock("sku-1", 1, "r-new-2"));
  ASSERT_GT(recent.revision, old_revision);

  runtime::RetentionPolicy policy;
  const std::int64_t now = now_ms();
  policy.keep_for = std::chrono::milliseconds(now - cutoff);
  auto target = runtime::retention_target(runtime_->journal(), shard, policy, now);
  ASSERT_TRUE(target.is_ok());
  ASSERT_TRUE(target->has_value());
  // The first revision committed inside the window is the oldest kept.
  EXPECT_EQ(**target, recent.revision);
}

}  // namespace
}  // namespace ffe::http::testing
