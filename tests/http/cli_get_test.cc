// `ffe get order|sku ID [--revision R] [--http ADDR]` as a user runs it: the real binary
// against an AdminServer this fixture started, checking stdout, stderr and the exit codes
// (0 found, 1 not found, 2 anything else with the server's message).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <httplib.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <thread>

#include "adapters/http/client.h"
#include "tests/http/admin_fixture.h"

namespace ffe::http::testing {
namespace {

using runtime::testing::place_order;
using runtime::testing::receive_stock;

struct CliRun {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

CliRun run_ffe(const std::string& args, const std::string& err_path) {
  CliRun run;
  const std::string command = std::string(FFE_BINARY) + " " + args + " 2>'" + err_path + "'";
  if (FILE* pipe = ::popen(command.c_str(), "r")) {
    char buffer[4096];
    std::size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) run.out.append(buffer, n);
    const int status = ::pclose(pipe);
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  if (FILE* err = std::fopen(err_path.c_str(), "r")) {
    char buffer[4096];
    std::size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof buffer, err)) > 0) run.err.append(buffer, n);
    std::fclose(err);
  }
  return run;
}

class CliGetTest : public AdminFixture {
 protected:
  CliRun ffe(const std::string& args) { return run_ffe(args, dir_.sub("stderr.txt")); }
  std::string http() const { return " --http " + server_->address(); }
};

TEST_F(CliGetTest, PrintsTheEntityAndExitsZero) {
  ack_of(receive_stock("sku-1", 10, "r-1"));
  const v1::OrderOutcome outcome = place_and_wait(place_order("o-1", {{"sku-1", 2}}));
  ASSERT_EQ(outcome.state(), v1::FULFILLED);

  CliRun order = ffe("get order o-1" + http());
  EXPECT_EQ(order.exit_code, 0) << order.err;
  EXPECT_EQ(order.err, "");
  const nlohmann::json json = nlohmann::json::parse(order.out, nullptr, false);
  ASSERT_TRUE(json.is_object()) << order.out;
  EXPECT_EQ(json["orderId"], "o-1");
  EXPECT_EQ(json["state"], "FULFILLED");
  EXPECT_EQ(json["terminalRevision"].get<Revision>(), static_cast<Revision>(outcome.revision()));

  CliRun sku = ffe("get sku sku-1 --revision 1" + http());
  EXPECT_EQ(sku.exit_code, 0) << sku.err;
  EXPECT_EQ(nlohmann::json::parse(sku.out)["asOf"], 1);
}

TEST_F(CliGetTest, NotFoundExitsOneAndOtherErrorsExitTwoWithTheServersMessage) {
  ack_of(receive_stock("sku-1", 10, "r-1"));
  const ShardId shard = runtime_->shard_of("sku-1");

  CliRun missing = ffe("get order o-nobody" + http());
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.out, "");
  EXPECT_NE(missing.err.find("ffe get: order \"o-nobody\" not found"), std::string::npos) << missing.err;

  CliRun future = ffe("get sku sku-1 --revision 999" + http());
  EXPECT_EQ(future.exit_code, 2);
  EXPECT_NE(future.err.find("(HTTP 400)"), std::string::npos) << future.err;

  ack_of(receive_stock("sku-1", 10, "r-2"));
  ASSERT_TRUE(runtime_->journal().compact(shard, revision_of_shard(shard)).is_ok());
  CliRun gone = ffe("get sku sku-1 --revision 1" + http());
  EXPECT_EQ(gone.exit_code, 2);
  EXPECT_NE(gone.err.find("compacted"), std::string::npos) << gone.err;
  EXPECT_NE(gone.err.find("(HTTP 410)"), std::string::npos) << gone.err;

  server_->stop();
  CliRun down = ffe("get sku sku-1" + http());
  EXPECT_EQ(down.exit_code, 2);
  EXPECT_NE(down.err.find("ffe get: GET http://" + server_->address()), std::string::npos) << down.err;
}

// ffe confirm ORDER_ID: exit 0 with the confirmation only when terminal and stable, also
// after its terminal revision was compacted; 1 while not terminal or unknown; 2 unreachable.
TEST_F(CliGetTest, ConfirmPrintsTheTerminalConfirmationEvenAfterCompaction) {
  ack_of(receive_stock("sku-1", 10, "r-1"));
  const v1::OrderOutcome outcome = place_and_wait(place_order("o-1", {{"sku-1", 2}}));
  ASSERT_EQ(outcome.state(), v1::FULFILLED);

  CliRun confirmed = ffe("confirm o-1" + http());
  EXPECT_EQ(confirmed.exit_code, 0) << confirmed.err;
  nlohmann::json json = nlohmann::json::parse(confirmed.out, nullptr, false);
  ASSERT_TRUE(json.is_object()) << confirmed.out;
  EXPECT_EQ(json["orderId"], "o-1");
  EXPECT_EQ(json["state"], "FULFILLED");
  EXPECT_EQ(json["confirmed"], true);
  EXPECT_EQ(json["shard"].get<std::uint32_t>(), outcome.shard());
  EXPECT_EQ(json["revision"].get<Revision>(), static_cast<Revision>(outcome.revision()));
  EXPECT_EQ(json["checkedRevisions"][0].get<Revision>(), static_cast<Revision>(outcome.revision()));

  // Later commands in the shard, then compaction past the terminal revision: still confirmed,
  // through the recorded terminal revision.
  const ShardId shard{static_cast<std::uint32_t>(outcome.shard())};
  std::string later;
  for (int i = 0; later.empty(); ++i) {
    if (runtime_->shard_of("o-later-" + std::to_string(i)) == shard) later = "o-later-" + std::to_string(i);
  }
  place_and_wait(place_order(later, {{"sku-1", 1}}));
  const Revision current = revision_of_shard(shard);
  ASSERT_GT(current, static_cast<Revision>(outcome.revision()));
  ASSERT_TRUE(runtime_->journal().compact(shard, current).is_ok());
  CliRun after = ffe("confirm o-1" + http());
  EXPECT_EQ(after.exit_code, 0) << after.err;
  json = nlohmann::json::parse(after.out, nullptr, false);
  ASSERT_TRUE(json.is_object()) << after.out;
  EXPECT_EQ(json["revision"].get<Revision>(), static_cast<Revision>(outcome.revision()));
  EXPECT_EQ(json["checkedRevisions"][0].get<Revision>(), current);  // the compacted revision
  EXPECT_EQ(json["state"], "FULFILLED");

  CliRun unknown = ffe("confirm o-nobody" + http());
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_EQ(unknown.out, "");
  EXPECT_NE(unknown.err.find("not found"), std::string::npos) << unknown.err;
}

TEST_F(CliGetTest, ConfirmOfAnOrderInProgressExitsOneAndNamesItsState) {
  ack_of(receive_stock("sku-1", 10, "r-1"));
  // tok_silent: the payment service never answers, so the order waits in AUTHORIZING.
  ack_of(runtime::OrderCommand{place_order("o-wait", {{"sku-1", 1}}, "tok_silent")});
  ASSERT_TRUE(runtime_->wait_quiet(std::chrono::seconds(10)));
  CliRun waiting = ffe("confirm o-wait" + http());
  EXPECT_EQ(waiting.exit_code, 1);
  EXPECT_EQ(waiting.out, "");
  EXPECT_NE(waiting.err.find("not terminal"), std::string::npos) << waiting.err;

  server_->stop();
  CliRun down = ffe("confirm o-wait" + http());
  EXPECT_EQ(down.exit_code, 2) << down.err;
}

TEST_F(CliGetTest, WatchPrintsChangesAndNamesTheCompactedRevision) {
  ack_of(receive_stock("sku-1", 10, "r-1"));
  ack_of(receive_stock("sku-1", 2, "r-2"));
  const runtime::Ack third = ack_of(receive_stock("sku-1", 3, "r-3"));
  CliRun all = ffe("watch sku/sku-1 --from-revision 1" + http());
  EXPECT_EQ(all.exit_code, 0) << all.err;
  EXPECT_EQ(std::count(all.out.begin(), all.out.end(), '\n'), 3) << all.out;
  CliRun limited = ffe("watch sku/sku-1 --from-revision 1 --limit 1" + http());
  EXPECT_EQ(std::count(limited.out.begin(), limited.out.end(), '\n'), 1) << limited.out;

  const ShardId shard = runtime_->shard_of("sku-1");
  CliRun compacted = ffe("compact --shard " + std::to_string(shard.value) + " --revision " +
                         std::to_string(third.revision) + http());
  EXPECT_EQ(compacted.exit_code, 0) << compacted.err;
  EXPECT_EQ(nlohmann::json::parse(compacted.out)["compactedRevision"].get<Revision>(), third.revision);

  CliRun gone = ffe("watch sku/sku-1 --from-revision 1" + http());
  EXPECT_EQ(gone.exit_code, 1);
  EXPECT_EQ(gone.out, "");
  EXPECT_NE(gone.err.find("oldest readable revision is " + std::to_string(third.revision)), std::string::npos)
      << gone.err;

  CliRun below = ffe("compact --shard " + std::to_string(shard.value) + " --revision 1" + http());
  EXPECT_EQ(below.exit_code, 1);
  EXPECT_NE(below.err.find("(HTTP 410)"), std::string::npos) << below.err;
  CliRun spanning = ffe("watch sku/ --from-revision 1" + http());
  EXPECT_EQ(spanning.exit_code, 2);
  EXPECT_NE(spanning.err.find("shard: required"), std::string::npos) << spanning.err;
}

// Another server on the --http address (a 404 page, a 200 from something that is not ffe, a
// JSON body without an order's fields) is named as such, exit 2: never "not found", never a
// success, never an abort.
TEST_F(CliGetTest, AnAnswerThatIsNotFfesIsNamedAsSuchNeverReadAsNotFoundOrSuccess) {
  httplib::Server other;
  other.Get("/v1/orders/o-404", [](const httplib::Request&, httplib::Response& response) {
    response.status = 404;
    response.set_content("<html><body>Not Found</body></html>", "text/html");
  });
  other.Get("/v1/orders/o-html", [](const httplib::Request&, httplib::Response& response) {
    response.set_content("<html>hi</html>", "text/html");
  });
  other.Get("/v1/orders/o-empty", [](const httplib::Request&, httplib::Response& response) {
    response.set_content("{}", "application/json");
  });
  other.Get("/v1/orders/o-partial", [](const httplib::Request&, httplib::Response& response) {
    response.set_content(R"({"terminal":true,"state":"FULFILLED"})", "application/json");
  });
  other.Get("/v1/orders/o-types", [](const httplib::Request&, httplib::Response& response) {
    response.set_content(R"({"orderId":"o-types","terminal":"yes","state":5,"shard":0,"asOf":3})", "application/json");
  });
  other.Get("/v1/watch", [](const httplib::Request& request, httplib::Response& response) {
    if (request.get_param_value("prefix") == "order/o-ndjson") {
      response.set_content("{\"a\":1}\n", "application/x-ndjson");
    } else {
      response.set_content("<html>hi</html>\n", "text/html");
    }
  });
  other.Get("/v1/skus/sku-1", [](const httplib::Request&, httplib::Response& response) {
    response.set_content(R"({"error":"x"})", "application/json");
  });
  other.Get("/v1/orders/o-error5", [](const httplib::Request&, httplib::Response& response) {
    response.status = 404;
    response.set_content(R"({"error":5})", "application/json");
  });
  other.Post("/v1/shards/0/compact", [](const httplib::Request&, httplib::Response& response) {
    response.set_content("<html>hi</html>", "text/html");
  });
  other.Post("/v1/shards/1/compact", [](const httplib::Request&, httplib::Response& response) {
    response.set_content("{}", "application/json");
  });
  const int port = other.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  std::thread listener([&] { other.listen_after_bind(); });
  while (!other.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const std::string address = " --http 127.0.0.1:" + std::to_string(port);

  for (const char* args : {"get order o-404", "get order o-html", "confirm o-404", "confirm o-html", "confirm o-empty",
                           "confirm o-partial", "confirm o-types", "compact --shard 0 --revision 1",
                           "watch order/o-1 --from-revision 1", "get order o-empty", "get order o-types",
                           "get sku sku-1", "get order o-error5", "compact --shard 1 --revision 1",
                           "watch order/o-ndjson --from-revision 1"}) {
    CliRun run = ffe(std::string(args) + address);
    EXPECT_EQ(run.exit_code, 2) << args << ": " << run.out << run.err;
    EXPECT_EQ(run.out, "") << args;
    EXPECT_TRUE(run.err.find("not from ffe's admin API") != std::string::npos ||
                run.err.find("is not the order") != std::string::npos ||
                run.err.find("is not what ffe's admin API sends") != std::string::npos ||
                run.err.find("is not an event as ffe's admin API sends") != std::string::npos ||
                run.err.find("not a JSON object as ffe's admin API sends") != std::string::npos)
        << args << ": " << run.err;
  }
  other.stop();
  listener.join();
}

// A one-shot watch is a read like any other: a server that takes the connection and never
// answers is given up on after the read timeout (a following watch waits as long as it likes).
TEST_F(CliGetTest, AOneShotWatchGivesUpOnAServerThatNeverAnswers) {
  const int listening = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listening, 0);
  sockaddr_in bound{};
  bound.sin_family = AF_INET;
  bound.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listening, reinterpret_cast<sockaddr*>(&bound), sizeof bound), 0);
  ASSERT_EQ(::listen(listening, 8), 0);  // the kernel completes the handshake; nobody reads
  socklen_t length = sizeof bound;
  ASSERT_EQ(::getsockname(listening, reinterpret_cast<sockaddr*>(&bound), &length), 0);

  WatchArgs args;
  args.prefix = "order/o-1";
  args.from_revision = 1;
  args.address = "127.0.0.1:" + std::to_string(ntohs(bound.sin_port));
  args.read_timeout = std::chrono::milliseconds(500);
  std::string messages;
  const int code = http::watch(args, [](std::string_view) {}, [&](std::string_view message) { messages += message; });
  EXPECT_EQ(code, 2);
  EXPECT_NE(messages.find("no complete HTTP answer"), std::string::npos) << messages;
  ::close(listening);
}

TEST_F(CliGetTest, RejectsABadKind) {
  CliRun bad = ffe("get customer c-1" + http());
  EXPECT_EQ(bad.exit_code, 2);  // a usage error is "any other error" (--help: exit 2)
  EXPECT_NE(bad.err.find("customer"), std::string::npos) << bad.err;
}

// Usage errors exit 2, as every command's help says for "any other error"; an integer flag
// takes decimal digits only (-1 once wrapped to 2^64-1, and 010 was read as octal 8).
TEST_F(CliGetTest, UsageErrorsExitTwoAndIntegerFlagsAreDecimal) {
  for (const char* args : {"get order", "confirm", "watch order/o-1", "get order o-1 --revision -1",
                           "get order o-1 --revision 0x10", "get order o-1 --revision 18446744073709551616"}) {
    CliRun run = ffe(std::string(args) + http());
    EXPECT_EQ(run.exit_code, 2) << args << ": " << run.err;
    EXPECT_TRUE(run.out.empty()) << args << ": " << run.out;
  }
  EXPECT_NE(ffe("get order o-1 --revision -1" + http()).err.find("\"-1\" is not a non-negative integer"),
            std::string::npos);
  CliRun unknown = ffe("nosuch");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("unknown command \"nosuch\""), std::string::npos) << unknown.err;

  for (int i = 1; i <= 10; ++i) ack_of(receive_stock("sku-1", 1, "r-" + std::to_string(i)));
  CliRun tenth = ffe("get sku sku-1 --revision 010" + http());
  ASSERT_EQ(tenth.exit_code, 0) << tenth.err;
  EXPECT_EQ(nlohmann::json::parse(tenth.out)["asOf"].get<std::uint64_t>(), 10u) << tenth.out;
}

}  // namespace
}  // namespace ffe::http::testing
