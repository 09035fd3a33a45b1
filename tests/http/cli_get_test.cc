// `ffe get order|sku ID [--revision R] [--http ADDR]` as a user runs it: the real binary
// against an AdminServer this fixture started, checking stdout, stderr and the exit codes
// (0 found, 1 not found, 2 anything else with the server's message).

#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <string>

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
