// ffe_runtime_child: the process the runtime's crash and deadline tests kill. It opens a
// Runtime on a data dir and prints what it learns, one line per fact, each with a single
// write(2) so a SIGKILL never tears a line. Closing its stdin makes it stop cleanly: it
// stops submitting, destroys the Runtime (which waits for every accepted command) and
// prints "bye".
//
//   flash DIR SHARDS PREFIX STOCK THREADS INFLIGHT [ORDER,SKU ...]
//       A flash sale. Receives STOCK units of SKU "hot" (receipt "r-hot") and 1000 of each of
//       sku-a, sku-b, sku-c (idempotent receipts, so every start may send them again), then
//       re-submits the reservations given as ORDER,SKU (ones a previous start saw RESERVED)
//       and prints "D <order> <sku> <STATUS> <new_revision 0|1>" for each, then "go" and
//       reserves 1 unit per new order id "<PREFIX>-t<thread>-<seq>" from THREADS threads, at
//       most INFLIGHT unacknowledged per thread; 3 of 4 on "hot". Prints, from the Ack
//       callback only (so only once durable), "R <order> <sku>" (RESERVED), "I <order> <sku>"
//       (INSUFFICIENT), "X <order> <sku> <STATUS>" (anything else), "E <order> <sku> <code>"
//       (not applied).
//
//   orders DIR SHARDS [flags]
//       Orders against a ParticipantEgress (tests/runtime/crash_support.h). Flags:
//         --reserve-timeout MS --authorize-timeout MS --ship-timeout MS --deadline MS
//         --retry-initial MS --retry-max MS     order::Policy and saga::RetryPolicy
//         --answer-authorize 0|1 --answer-voids 0|1 --ignore-first-authorizes N
//         --frozen-clock                        Options::clock returns the start time, always
//         --stock SKU=QTY                       receipt "r-<SKU>" (idempotent)
//         --place ID,SKU,QTY,TOKEN,DEADLINE_MS  a PlaceOrder (repeatable)
//         --wait-authorizing                    then wait until every placed order is
//                                               AUTHORIZING and its authorize was published
//       Prints "open <open_orders_recovered> <expired> <retries> <ms to open>",
//       "placed <id> <STATE or error>", "seen <kind> <order> <commandId> <detail>" for every
//       message the egress gets, "authorizing <id> <step_deadline_at_ms>", "ready" (when
//       everything asked for is done), then waits for stdin to close.
//
// Exit 0 after a clean stop, 1 on a setup error (printed as "error ...").

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <semaphore>
#include <string>
#include <thread>
#include <vector>

#include "actors/runtime/runtime.h"
#include "tests/runtime/crash_support.h"

using namespace ffe;
using namespace ffe::runtime;
using ffe::runtime::testing::say;

namespace {

void wait_for_stdin_eof() {
  char buffer[256];
  while (true) {
    ssize_t n = ::read(STDIN_FILENO, buffer, sizeof buffer);
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    return;
  }
}

std::string status_name(const v1::StockReply& reply) { return v1::StockReply::Status_Name(reply.status()); }

int flash(int argc, char** argv) {
  if (argc < 8) {
    say("error usage: flash DIR SHARDS PREFIX STOCK THREADS INFLIGHT [ORDER,SKU ...]");
    return 1;
  }
  const std::string dir = argv[2];
  const auto shards = static_cast<std::uint32_t>(std::stoul(argv[3]));
  const std::string prefix = argv[4];
  const std::int64_t stock = std::stoll(argv[5]);
  const int threads = std::stoi(argv[6]);
  const int in_flight = std::stoi(argv[7]);
  std::vector<std::pair<std::string, std::string>> resubmit;
  for (int i = 8; i < argc; ++i) {
    std::string arg = argv[i];
    auto comma = arg.find(',');
    if (comma == std::string::npos) continue;
    resubmit.emplace_back(arg.substr(0, comma), arg.substr(comma + 1));
  }

  Options options;
  options.data_dir = dir;
  options.shards = shards;
  options.scheduler_threads = 2;
  const auto open_started = std::chrono::steady_clock::now();
  auto opened = Runtime::open(options);
  if (!opened) {
    say("error open: " + opened.status().to_string());
    return 1;
  }
  std::unique_ptr<Runtime> runtime = std::move(*opened);
  const auto open_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - open_started).count();
  say("open " + std::to_string(runtime->stats().open_orders_recovered) + " 0 0 " + std::to_string(open_ms));

  const std::vector<std::string> others = {"sku-a", "sku-b", "sku-c"};
  std::vector<v1::ReceiveStock> receipts = {testing::receive("hot", stock, "r-hot")};
  for (const auto& sku : others) receipts.push_back(testing::receive(sku, 1000, "r-" + sku));
  for (auto& receipt : receipts) {
    const std::string sku = receipt.sku();
    auto ack = testing::submit_and_wait(*runtime, InventoryCommand{std::move(receipt)});
    if (!ack || !ack->status) {
      say("error receipt " + sku + ": " + (ack ? ack->status.to_string() : std::string("no ack")));
      std::_Exit(1);  // no orderly close after a setup error
    }
  }
  say("stocked");

  for (const auto& [order_id, sku] : resubmit) {
    Status submitted = runtime->submit(
        InventoryCommand{testing::reserve(order_id, sku, 1)},
        [order_id, sku](const Ack& ack) {
          if (!ack.status) {
            say("E " + order_id + " " + sku + " " + std::string(storage::status_code_name(ack.status.code())));
            return;
          }
          say("D " + order_id + " " + sku + " " + (ack.stock_reply ? status_name(*ack.stock_reply) : "NONE") + " " +
              (ack.new_revision ? "1" : "0"));
        });
    if (!submitted) say("error resubmit " + order_id + ": " + submitted.to_string());
  }
  say("go");

  std::atomic<bool> stop{false};
  std::vector<std::unique_ptr<std::counting_semaphore<4096>>> slots;
  for (int t = 0; t < threads; ++t) slots.push_back(std::make_unique<std::counting_semaphore<4096>>(in_flight));
  std::vector<std::unique_ptr<std::atomic<bool>>> saw_insufficient;
  for (int t = 0; t < threads; ++t) saw_insufficient.push_back(std::make_unique<std::atomic<bool>>(false));

  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      auto* slot = slots[static_cast<std::size_t>(t)].get();
      auto* insufficient = saw_insufficient[static_cast<std::size_t>(t)].get();
      for (std::int64_t seq = 0; !stop.load(); ++seq) {
        while (!slot->try_acquire_for(std::chrono::milliseconds(20))) {
          if (stop.load()) return;
        }
        const std::string order_id = prefix + "-t" + std::to_string(t) + "-" + std::to_string(seq);
        const std::string sku = seq % 4 == 3 ? others[static_cast<std::size_t>(seq / 4) % others.size()] : "hot";
        Status submitted = runtime->submit(
            InventoryCommand{testing::reserve(order_id, sku, 1)},
            [order_id, sku, slot, insufficient](const Ack& ack) {
              if (!ack.status) {
                say("E " + order_id + " " + sku + " " + std::string(storage::status_code_name(ack.status.code())));
              } else if (ack.stock_reply && ack.stock_reply->status() == v1::StockReply::RESERVED) {
                say("R " + order_id + " " + sku);
              } else if (ack.stock_reply && ack.stock_reply->status() == v1::StockReply::INSUFFICIENT) {
                say("I " + order_id + " " + sku);
                insufficient->store(true);
              } else {
                say("X " + order_id + " " + sku + " " +
                    (ack.stock_reply ? status_name(*ack.stock_reply)
                                     : (ack.rejection ? "rejected:" + ack.rejection->reason : std::string("NONE"))));
              }
              slot->release();
            });
        if (!submitted) {
          slot->release();
          say("error submit " + order_id + ": " + submitted.to_string());
          return;
        }
        // Once the hot SKU is sold out, slow down: INSUFFICIENT needs no fsync and would
        // flood the pipe.
        if (insufficient->load()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    });
  }

  wait_for_stdin_eof();
  stop = true;
  for (auto& worker : workers) worker.join();
  runtime.reset();  // waits for every accepted command: all callbacks ran
  say("bye");
  return 0;
}

struct Place {
  std::string id, sku, token;
  std::int64_t qty = 1, deadline_ms = 0;
};

int orders(int argc, char** argv) {
  if (argc < 4) {
    say("error usage: orders DIR SHARDS [flags]");
    return 1;
  }
  Options options;
  options.data_dir = argv[2];
  options.shards = static_cast<std::uint32_t>(std::stoul(argv[3]));
  options.scheduler_threads = 2;
  testing::ParticipantConfig participants;
  bool frozen_clock = false, wait_authorizing = false;
  std::vector<std::pair<std::string, std::int64_t>> stock;
  std::vector<Place> places;
  for (int i = 4; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        say("error " + flag + " needs a value");
        std::exit(1);
      }
      return argv[++i];
    };
    if (flag == "--reserve-timeout") options.order_policy.reserve_timeout_ms = std::stoll(value());
    else if (flag == "--authorize-timeout") options.order_policy.authorize_timeout_ms = std::stoll(value());
    else if (flag == "--ship-timeout") options.order_policy.ship_timeout_ms = std::stoll(value());
    else if (flag == "--deadline") options.order_policy.default_deadline_ms = std::stoll(value());
    else if (flag == "--retry-initial") options.retry.initial_ms = std::stoll(value());
    else if (flag == "--retry-max") options.retry.max_ms = std::stoll(value());
    else if (flag == "--answer-authorize") participants.answer_authorize = value() == "1";
    else if (flag == "--answer-voids") participants.answer_voids = value() == "1";
    else if (flag == "--ignore-first-authorizes") participants.ignore_first_authorizes = std::stoi(value());
    else if (flag == "--frozen-clock") frozen_clock = true;
    else if (flag == "--wait-authorizing") wait_authorizing = true;
    else if (flag == "--stock") {
      std::string v = value();
      auto eq = v.find('=');
      stock.emplace_back(v.substr(0, eq), std::stoll(v.substr(eq + 1)));
    } else if (flag == "--place") {
      std::string v = value();
      std::vector<std::string> parts;
      std::size_t start = 0;
      while (true) {
        auto comma = v.find(',', start);
        parts.push_back(v.substr(start, comma - start));
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
      if (parts.size() != 5) {
        say("error --place ID,SKU,QTY,TOKEN,DEADLINE_MS");
        return 1;
      }
      places.push_back(Place{parts[0], parts[1], parts[3], std::stoll(parts[2]), std::stoll(parts[4])});
    } else {
      say("error unknown flag " + flag);
      return 1;
    }
  }
  if (frozen_clock) {
    const std::int64_t frozen_at = testing::wall_ms();
    options.clock = [frozen_at] { return frozen_at; };
  }

  testing::ParticipantEgress egress(participants);
  egress.set_on_seen([](const testing::Seen& seen) {
    if (seen.kind == testing::Seen::kOutcome) {
      say("seen outcome " + seen.order_id + " - " + seen.detail + " " + std::to_string(seen.outcome.revision()));
    } else {
      say(std::string("seen ") + testing::kind_name(seen.kind) + " " + seen.order_id + " " + seen.command_id + " " +
          (seen.detail.empty() ? "-" : seen.detail));
    }
  });
  options.egress = &egress;
  const auto open_started = std::chrono::steady_clock::now();
  auto opened = Runtime::open(options);
  if (!opened) {
    say("error open: " + opened.status().to_string());
    return 1;
  }
  std::unique_ptr<Runtime> runtime = std::move(*opened);
  egress.attach(runtime.get());
  const auto open_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - open_started).count();
  const Stats stats = runtime->stats();
  say("open " + std::to_string(stats.open_orders_recovered) + " " + std::to_string(stats.expired) + " " +
      std::to_string(stats.retries) + " " + std::to_string(open_ms));

  for (const auto& [sku, qty] : stock) {
    auto ack = testing::submit_and_wait(*runtime, InventoryCommand{testing::receive(sku, qty, "r-" + sku)});
    if (!ack || !ack->status) {
      say("error receipt " + sku + ": " + (ack ? ack->status.to_string() : std::string("no ack")));
      std::_Exit(1);  // no orderly close after a setup error
    }
  }
  if (!stock.empty()) say("stocked");

  for (const Place& place : places) {
    auto ack = testing::submit_and_wait(
        *runtime, OrderCommand{testing::place_order(place.id, place.sku, place.qty, place.token, place.deadline_ms)});
    if (!ack || !ack->status) {
      say("placed " + place.id + " error:" + (ack ? ack->status.to_string() : std::string("no-ack")));
      continue;
    }
    auto state = runtime->order(place.id);
    say("placed " + place.id + " " +
        (state.is_ok() && state->has_value() ? v1::OrderState_Name((*state)->state) : std::string("missing")));
  }

  if (wait_authorizing) {
    for (const Place& place : places) {
      auto state = testing::wait_order(
          *runtime, place.id, [](const order::State& s) { return s.state == v1::AUTHORIZING || s.terminal(); },
          std::chrono::seconds(30));
      if (!state || state->state != v1::AUTHORIZING) {
        say("error " + place.id + " did not reach AUTHORIZING: " +
            (state ? v1::OrderState_Name(state->state) : std::string("missing")));
        std::_Exit(1);  // no orderly close after a setup error
      }
      if (!egress.wait_count(testing::Seen::kAuthorize, place.id, 1, std::chrono::seconds(30))) {
        say("error " + place.id + ": no authorize request was published");
        std::_Exit(1);  // no orderly close after a setup error
      }
      say("authorizing " + place.id + " " + std::to_string(state->step_deadline_at_ms));
    }
  }
  say("ready");

  wait_for_stdin_eof();
  egress.detach();
  const Stats last = runtime->stats();
  runtime.reset();
  say("bye " + std::to_string(last.expired) + " " + std::to_string(last.retries));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s flash|orders ...\n", argv[0]);
    return 1;
  }
  const std::string mode = argv[1];
  if (mode == "flash") return flash(argc, argv);
  if (mode == "orders") return orders(argc, argv);
  std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
  return 1;
}
