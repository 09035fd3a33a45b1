// `ffe sim` and `ffe produce` as a user runs them: the real binary (FFE_BINARY), in its own
// process, against librdkafka's mock cluster in this one (its listener is a loopback socket).

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "events/codec.h"
#include "tests/sim_adapters/kafka_support.h"

namespace ffe::participants {
namespace {

using testing::MockCluster;
using testing::Record;

struct CommandResult {
  int exit_code = -1;
  std::string out;
};

CommandResult run(const std::string& arguments) {
  const std::string command = std::string(FFE_BINARY) + " " + arguments;
  CommandResult result;
  std::FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) result.out += buffer;
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

TEST(SimCli, ProduceStockWritesExactlyNDecodableReceipts) {
  MockCluster cluster;
  cluster.create_topic("ff.inventory.commands", 4);
  const CommandResult produced = run("produce stock --brokers " + cluster.bootstraps() +
                           " --skus 7 --qty 50 --quiet --id-prefix cli");
  ASSERT_EQ(produced.exit_code, 0) << produced.out;
  EXPECT_NE(produced.out.find("\"what\":\"stock\",\"topic\":\"ff.inventory.commands\","
                              "\"idPrefix\":\"cli\",\"count\":7,\"sent\":7,\"cancels\":0,"
                              "\"produced\":7,\"failed\":0,"),
            std::string::npos)
      << produced.out;
  EXPECT_EQ(testing::message_count(cluster.bootstraps(), "ff.inventory.commands", 4), 7);
  for (const Record& record : testing::read(cluster.bootstraps(), "ff.inventory.commands", 4, 7)) {
    auto decoded = events::decode_inventory_command(record.value, record.content_type);
    ASSERT_TRUE(std::holds_alternative<v1::InventoryCommand>(decoded)) << record.value;
    EXPECT_EQ(std::get<v1::InventoryCommand>(decoded).receive_stock().qty(), 50);
  }
}

TEST(SimCli, ProduceNamesABadFlag) {
  const CommandResult bad = run("produce stock --brokers 127.0.0.1:1 --id-prefix 'a b' 2>&1");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.out.find("--id-prefix may hold only"), std::string::npos) << bad.out;
}

TEST(SimCli, SimPaymentAnswersAndExitsZeroOnSigterm) {
  MockCluster cluster;
  cluster.create_topic("ff.payments.requests", 2);
  cluster.create_topic("ff.payments.replies", 2);

  // Only exec after fork: the mock cluster's threads may hold locks (malloc's included).
  const std::string brokers = cluster.bootstraps();
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    execl(FFE_BINARY, FFE_BINARY, "sim", "payment", "--brokers", brokers.c_str(),
          "--stats-interval", "1", "-X", "session.timeout.ms=6000", "-X",
          "heartbeat.interval.ms=500", static_cast<char*>(nullptr));
    _exit(127);
  }

  v1::PaymentRequest request;
  request.set_command_id("o-9:authorize:1");
  request.set_order_id("o-9");
  request.mutable_authorize()->set_amount_cents(100);
  request.mutable_authorize()->set_currency("USD");
  request.mutable_authorize()->set_token("tok_visa");
  testing::produce(cluster.bootstraps(), "ff.payments.requests",
                   {{"o-9", events::encode_json(request), std::string(events::kJsonContentType), 0}});
  const std::vector<Record> replies =
      testing::read(cluster.bootstraps(), "ff.payments.replies", 2, 1);
  ASSERT_EQ(replies.size(), 1u);
  auto decoded = events::decode_payment_reply(replies[0].value, replies[0].content_type);
  ASSERT_TRUE(std::holds_alternative<v1::PaymentReply>(decoded)) << replies[0].value;
  EXPECT_EQ(std::get<v1::PaymentReply>(decoded).status(), v1::PaymentReply::APPROVED);

  ASSERT_EQ(kill(child, SIGTERM), 0);
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  pid_t waited = 0;
  while ((waited = waitpid(child, &status, WNOHANG)) == 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (waited == 0) {
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
    FAIL() << "ffe sim payment did not stop on SIGTERM";
  }
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace ffe::participants
