// `ffe get order|sku ID [--revision R] [--http ADDR]` as a user runs it: the real binary
// against an AdminServer this fixture started, checking stdout, stderr and the exit codes
// (0 found, 1 not found, 2 anything else with the server's message).

#include <sys/wait.h>

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

TEST_F(CliGetTest, RejectsABadKind) {
  CliRun bad = ffe("get customer c-1" + http());
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("customer"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace ffe::http::testing
