#pragma once
// A real engine behind the admin HTTP API, for tests/http: a Runtime in a temp dir with the
// in-process test participants as payment and shipping services, the runtime's metrics in a
// Registry, and an AdminServer on 127.0.0.1 with a port the system picked. Plus a plain
// httplib client that returns status, headers and the parsed JSON.

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "actors/runtime/runtime.h"
#include "adapters/http/admin_server.h"
#include "adapters/metrics/metrics.h"
#include "adapters/metrics/runtime_metrics.h"
#include "storage/journal.h"
#include "tests/runtime/runtime_test_support.h"

namespace ffe::http::testing {

using runtime::testing::TempDir;
using runtime::testing::TestParticipants;
using storage::Revision;
using storage::ShardId;

struct Got {
  int status = 0;
  std::string body;
  std::string content_type;
  std::string allow;
  nlohmann::json json;  // discarded (is_discarded()) when the body is not JSON
};

class AdminFixture : public ::testing::Test {
 protected:
  static constexpr std::uint32_t kShards = 4;

  void SetUp() override {
    runtime::Options options;
    options.data_dir = dir_.sub("data");
    options.shards = kShards;
    options.egress = &participants_;
    auto opened = runtime::Runtime::open(options);
    ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
    runtime_ = std::move(*opened);
    participants_.attach(runtime_.get());
    metrics_ = metrics::register_runtime_metrics(registry_, *runtime_);
    auto started = AdminServer::start("127.0.0.1:0", *runtime_, registry_, [this] { return ready_.load(); });
    ASSERT_TRUE(started.is_ok()) << started.status().to_string();
    server_ = std::move(*started);
    ASSERT_NE(server_->port(), 0);
  }

  void TearDown() override {
    if (server_) server_->stop();
    server_.reset();
    metrics_.reset();
    participants_.detach();
    runtime_.reset();
  }

  Got get(const std::string& target, const std::string& method = "GET") const {
    httplib::Client client("127.0.0.1", server_->port());
    client.set_connection_timeout(std::chrono::seconds(5));
    client.set_read_timeout(std::chrono::seconds(30));
    httplib::Result result = method == "GET"      ? client.Get(target)
                             : method == "POST"   ? client.Post(target, "{}", "application/json")
                             : method == "DELETE" ? client.Delete(target)
                                                  : client.Put(target, "{}", "application/json");
    Got got;
    if (!result) {
      ADD_FAILURE() << method << " " << target << ": " << httplib::to_string(result.error());
      return got;
    }
    got.status = result->status;
    got.body = result->body;
    got.content_type = result->get_header_value("Content-Type");
    got.allow = result->get_header_value("Allow");
    got.json = nlohmann::json::parse(got.body, nullptr, /*allow_exceptions=*/false);
    return got;
  }

  runtime::Ack ack_of(runtime::InventoryCommand command) {
    auto ack = runtime::testing::submit_and_wait(*runtime_, std::move(command));
    EXPECT_TRUE(ack && ack->status.is_ok());
    return ack ? *ack : runtime::Ack{};
  }
  runtime::Ack ack_of(runtime::OrderCommand command) {
    auto ack = runtime::testing::submit_and_wait(*runtime_, std::move(command));
    EXPECT_TRUE(ack && ack->status.is_ok());
    return ack ? *ack : runtime::Ack{};
  }

  // Places the order and waits for its outcome (and for the engine to be quiet).
  v1::OrderOutcome place_and_wait(const v1::PlaceOrder& place, runtime::Ack* placed = nullptr) {
    const std::size_t before = participants_.orders_with_outcome();
    runtime::Ack ack = ack_of(runtime::OrderCommand{place});
    if (placed) *placed = ack;
    EXPECT_TRUE(participants_.wait_for_outcomes(before + 1, std::chrono::seconds(60)))
        << place.order_id() << ": no outcome";
    EXPECT_TRUE(runtime_->wait_quiet(std::chrono::seconds(30)));
    auto outcomes = participants_.outcomes();
    auto found = outcomes.find(place.order_id());
    if (found == outcomes.end() || found->second.empty()) {
      ADD_FAILURE() << place.order_id() << ": no outcome";
      return {};
    }
    return found->second.front();
  }

  Revision revision_of_shard(ShardId shard) const {
    auto revision = runtime_->journal().revision(shard);
    EXPECT_TRUE(revision.is_ok());
    return revision.is_ok() ? *revision : 0;
  }

  TempDir dir_;
  TestParticipants participants_;  // outlives the runtime
  std::unique_ptr<runtime::Runtime> runtime_;
  metrics::Registry registry_;     // outlives the server
  metrics::Registration metrics_;
  std::atomic<bool> ready_{false};
  std::unique_ptr<AdminServer> server_;
};

}  // namespace ffe::http::testing
