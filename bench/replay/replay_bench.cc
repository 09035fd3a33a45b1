#include "bench/replay/replay_bench.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <variant>
#include <vector>

#include "actors/order/order.h"
#include "actors/runtime/folder.h"
#include "actors/runtime/runtime.h"
#include "actors/sku/sku.h"
#include "adapters/replay/replay.h"
#include "events/json_text.h"
#include "sagas/fulfillment.h"
#include "storage/journal.h"

extern char** environ;

namespace ffe::bench {
namespace {

using Clock = std::chrono::steady_clock;
using storage::ShardId;

// Units received per SKU at the start and whenever one runs low: orders are rarely short of
// stock (the benchmark is about the log, not rejections), yet receipts keep coming.
constexpr std::int64_t kStockPerReceipt = 100'000;
constexpr std::int64_t kRestockBelow = 50;
// Orders placed per wave before the message queue is drained (many orders in flight at once,
// so commands of different entities and shards interleave in the log as in an engine).
constexpr int kOrdersPerWave = 256;
// Shares of orders whose payment is declined / whose address cannot be shipped to: they
// release their reservations (and void the payment) instead of committing them.
constexpr double kDeclineShare = 0.05;
constexpr double kUnshippableShare = 0.02;
constexpr auto kReadyPoll = std::chrono::milliseconds(5);
constexpr auto kReadyTimeout = std::chrono::seconds(600);

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

std::string fixed(double value, int digits = 1) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", digits, value);
  return text;
}

// Generates a journal through the pure deciders and the saga reaction, with in-process
// participants, committing each decision as one journal command. Single-threaded (the
// journal's writer thread does the I/O behind it). Owner: run_replay_bench.
class Generator {
 public:
  Generator(storage::Journal& journal, const ReplayBenchOptions& options)
      : journal_(journal), options_(options), rng_(options.seed) {
    now_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  }

  // Until at least `events` events are submitted; then waits until all are durable.
  storage::Status run(bool progress) {
    const bool draw = progress && ::isatty(2) == 1;
    const auto start = Clock::now();
    auto last_draw = start;
    for (std::uint32_t i = 1; i <= options_.skus; ++i) receive("sku-" + std::to_string(i));
    while (events_ < options_.events && failures_.load() == 0) {
      for (int i = 0; i < kOrdersPerWave; ++i) place();
      drain();
      now_ms_ += 1;
      if (draw && Clock::now() - last_draw > std::chrono::milliseconds(250)) {
        last_draw = Clock::now();
        std::fprintf(stderr, "\r\033[Kffe bench replay: generating %.1fM of %.1fM events (%.0f k/s)", events_ / 1e6,
                     options_.events / 1e6, events_ / 1e3 / std::max(1e-3, seconds_since(start)));
      }
    }
    // Every submitted command is durable once a last commit behind them is.
    for (std::uint32_t s = 0; s < options_.shards; ++s) {
      storage::CommitRequest request;
      request.shard = ShardId{s};
      (void)journal_.commit(std::move(request)).get();
    }
    if (draw) std::fprintf(stderr, "\r\033[K");
    if (failures_.load() > 0) return first_failure();
    return storage::Status::ok();
  }

  std::uint64_t events() const { return events_; }
  std::uint64_t commands() const { return commands_; }
  std::uint64_t orders() const { return orders_; }
  std::uint64_t fulfilled() const { return fulfilled_; }
  std::uint64_t cancelled() const { return cancelled_; }
  std::uint64_t rejected() const { return rejected_; }

 private:
  using Message = std::variant<v1::StockCommand, v1::StockReply, v1::PaymentReply, v1::ShipmentReply>;

  template <class Event>
  void commit(std::uint32_t shard, const std::string& key, const std::vector<Event>& events) {
    if (events.empty()) return;
    storage::CommitRequest request;
    request.shard = ShardId{shard};
    request.events.reserve(events.size());
    for (const Event& event : events) request.events.push_back({key, event.SerializeAsString()});
    events_ += events.size();
    ++commands_;
    storage::Status status = journal_.submit(
        std::move(request),
        [this](const storage::CommitResult& result) {
          if (!result.status && failures_.fetch_add(1) == 0) {
            std::lock_guard lock(failure_mu_);
            failure_ = result.status;
          }
        },
        storage::Admission::kWait);
    if (!status && failures_.fetch_add(1) == 0) {
      std::lock_guard lock(failure_mu_);
      failure_ = status;
    }
  }

  storage::Status first_failure() {
    std::lock_guard lock(failure_mu_);
    return failure_;
  }

  sku::State& sku_state(const std::string& sku) { return skus_[sku]; }

  void apply_sku(const std::string& sku, const sku::Command& command, const v1::StockCommand* stock_command) {
    sku::State& state = sku_state(sku);
    sku::Decision decision = sku::decide(state, command, now_ms_);
    for (const v1::SkuEvent& event : decision.events) sku::evolve(state, sku, event);
    commit(runtime::shard_of(sku, options_.shards).value, runtime::sku_key(sku), decision.events);
    if (stock_command != nullptr) queue_.push_back(sku::answer(state, *stock_command, decision));
  }

  void receive(const std::string& sku) {
    v1::ReceiveStock receipt;
    receipt.set_sku(sku);
    receipt.set_qty(kStockPerReceipt);
    receipt.set_receipt_id("r-" + sku + "-" + std::to_string(++receipts_));
    apply_sku(sku, receipt, nullptr);
  }

  void place() {
    const std::string id = "o-" + std::to_string(++orders_);
    v1::PlaceOrder order;
    order.set_order_id(id);
    order.set_customer_id("c-" + std::to_string(1 + rng_() % 10'000));
    const int lines = 1 + static_cast<int>(rng_() % 3);
    std::vector<std::uint32_t> picked;
    while (static_cast<int>(picked.size()) < lines) {
      const std::uint32_t sku = 1 + static_cast<std::uint32_t>(rng_() % options_.skus);
      if (std::find(picked.begin(), picked.end(), sku) != picked.end()) {
        if (options_.skus < 3) break;
        continue;
      }
      picked.push_back(sku);
      v1::OrderLine* line = order.add_lines();
      line->set_sku("sku-" + std::to_string(sku));
      line->set_qty(1 + static_cast<std::int64_t>(rng_() % 3));
      line->set_unit_price_cents(100 + static_cast<std::int64_t>(rng_() % 9'900));
    }
    const double roll = std::uniform_real_distribution<double>(0, 1)(rng_);
    order.mutable_payment()->set_method("card");
    order.mutable_payment()->set_token(roll < kDeclineShare ? "tok_decline" : "tok_visa");
    v1::Address* address = order.mutable_ship_to();
    address->set_name("A. Customer");
    address->set_line1(std::to_string(1 + rng_() % 999) + " Main St");
    address->set_city("Springfield");
    address->set_country(roll >= kDeclineShare && roll < kDeclineShare + kUnshippableShare ? "XX" : "US");
    apply_order(id, order);
  }

  void apply_order(const std::string& id, const order::Command& command) {
    auto it = orders_live_.find(id);
    if (it == orders_live_.end()) {
      if (!std::holds_alternative<v1::PlaceOrder>(command)) return;  // a late reply to a finished order
      it = orders_live_.try_emplace(id).first;
    }
    order::State& state = it->second;
    order::Decision decision = order::decide(state, command, now_ms_, policy_);
    std::vector<saga::Outbound> outbound;
    for (const v1::OrderEvent& event : decision.events) {
      order::evolve(state, event);
      for (saga::Outbound& message : saga::react(state, event)) outbound.push_back(std::move(message));
    }
    commit(runtime::shard_of(id, options_.shards).value, runtime::order_key(id), decision.events);
    for (saga::Outbound& message : outbound) send(std::move(message));
    if (state.terminal()) {
      if (state.state == v1::FULFILLED) ++fulfilled_;
      if (state.state == v1::CANCELLED) ++cancelled_;
      if (state.state == v1::REJECTED) ++rejected_;
      orders_live_.erase(it);  // never touched again: memory stays bounded by the wave
    }
  }

  // The participants, in process: the contract's conventions (tok_decline, country XX).
  void send(saga::Outbound message) {
    if (auto* stock = std::get_if<v1::StockCommand>(&message)) {
      queue_.push_back(std::move(*stock));
    } else if (auto* payment = std::get_if<v1::PaymentRequest>(&message)) {
      v1::PaymentReply reply;
      reply.set_command_id(payment->command_id());
      reply.set_order_id(payment->order_id());
      const bool declined = payment->has_authorize() && payment->authorize().token() == "tok_decline";
      reply.set_status(declined ? v1::PaymentReply::DECLINED : v1::PaymentReply::APPROVED);
      if (!declined) reply.set_payment_id("p-" + payment->order_id());
      if (declined) reply.set_reason("card declined");
      queue_.push_back(std::move(reply));
    } else if (auto* shipment = std::get_if<v1::ShipmentRequest>(&message)) {
      v1::ShipmentReply reply;
      reply.set_command_id(shipment->command_id());
      reply.set_order_id(shipment->order_id());
      if (shipment->has_cancel()) {
        reply.set_status(v1::ShipmentReply::CANCELLED);
      } else if (shipment->create().ship_to().country() == "XX") {
        reply.set_status(v1::ShipmentReply::FAILED);
        reply.set_reason("cannot ship to country XX");
      } else {
        reply.set_status(v1::ShipmentReply::CREATED);
        reply.set_shipment_id("s-" + shipment->order_id());
      }
      queue_.push_back(std::move(reply));
    }
    // An OrderOutcome leaves the engine: nothing to deliver here.
  }

  void drain() {
    while (!queue_.empty()) {
      Message message = std::move(queue_.front());
      queue_.pop_front();
      if (auto* command = std::get_if<v1::StockCommand>(&message)) {
        const std::string sku = command->sku();
        if (command->kind() == v1::StockCommand::RESERVE && sku_state(sku).available() < kRestockBelow + command->qty()) {
          receive(sku);
        }
        apply_sku(sku, *command, command);
      } else if (auto* reply = std::get_if<v1::StockReply>(&message)) {
        apply_order(reply->order_id(), *reply);
      } else if (auto* payment = std::get_if<v1::PaymentReply>(&message)) {
        apply_order(payment->order_id(), *payment);
      } else if (auto* shipment = std::get_if<v1::ShipmentReply>(&message)) {
        apply_order(shipment->order_id(), *shipment);
      }
    }
  }

  storage::Journal& journal_;
  const ReplayBenchOptions& options_;
  std::mt19937_64 rng_;
  std::int64_t now_ms_ = 0;
  order::Policy policy_;
  std::unordered_map<std::string, sku::State> skus_;
  std::unordered_map<std::string, order::State> orders_live_;
  std::deque<Message> queue_;
  std::uint64_t events_ = 0, commands_ = 0, orders_ = 0, receipts_ = 0;
  std::uint64_t fulfilled_ = 0, cancelled_ = 0, rejected_ = 0;
  std::atomic<std::uint64_t> failures_{0};
  std::mutex failure_mu_;
  storage::Status failure_;
};

// A free TCP port on 127.0.0.1 (bound and released: the engine binds it a moment later).
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t size = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
  const int port = ntohs(address.sin_port);
  ::close(fd);
  return port;
}

// GET /readyz on 127.0.0.1:port: the status code, 0 when nothing answers.
int readyz(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  int status = 0;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
    const std::string request = "GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      char buffer[64] = {};
      const ssize_t n = ::read(fd, buffer, sizeof buffer - 1);
      if (n > 12 && std::sscanf(buffer, "HTTP/1.%*d %d", &status) != 1) status = 0;
    }
  }
  ::close(fd);
  return status;
}

struct RestartResult {
  bool ready = false;
  double ready_ms = 0;
  int exit_code = -1;
  std::string error;
};

// Execs `ffe serve` on the data dir (embedded broker, no CDC) and times it to /readyz 200.
RestartResult time_restart(const std::string& ffe, const std::string& data_dir, std::uint32_t shards) {
  RestartResult result;
  const int port = free_port();
  std::vector<std::string> args = {ffe, "serve", "--data-dir", data_dir, "--http", "127.0.0.1:" + std::to_string(port),
                                   "--analytics", "off", "--shards", std::to_string(shards)};
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const auto start = Clock::now();
  if (::posix_spawn(&pid, ffe.c_str(), &actions, nullptr, argv.data(), environ) != 0) {
    posix_spawn_file_actions_destroy(&actions);
    result.error = "cannot exec " + ffe;
    return result;
  }
  posix_spawn_file_actions_destroy(&actions);
  while (Clock::now() - start < kReadyTimeout) {
    if (readyz(port) == 200) {
      result.ready = true;
      result.ready_ms = seconds_since(start) * 1000;
      break;
    }
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      result.error = "ffe serve exited before /readyz answered 200";
      result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return result;
    }
    std::this_thread::sleep_for(kReadyPoll);
  }
  if (!result.ready) result.error = "/readyz did not answer 200 in time";
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

bool is_journal_dir(const std::string& dir) {
  std::error_code error;
  return std::filesystem::exists(dir + "/FFE_JOURNAL", error);
}

}  // namespace

int run_replay_bench(const ReplayBenchOptions& options) {
  auto fail = [](const std::string& message) {
    std::fprintf(stderr, "ffe bench replay: %s\n", message.c_str());
    return 2;
  };
  if (options.shards < 1 || options.skus < 1 || options.events < 1) return fail("--events, --shards and --skus must be >= 1");
  std::string dir = options.data_dir;
  bool temp = false;
  std::error_code error;
  if (dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/ffe-replay-bench-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) return fail("cannot create a temp dir under " + pattern);
    dir = pattern + "/data";
    temp = true;
  } else if (!is_journal_dir(dir) && std::filesystem::exists(dir, error) && !std::filesystem::is_empty(dir, error)) {
    return fail("--data-dir " + dir + " is neither an ffe data dir to reuse nor empty");
  }
  const std::string root = temp ? std::filesystem::path(dir).parent_path().string() : std::string();
  auto cleanup = [&] {
    if (temp && !options.keep) std::filesystem::remove_all(root, error);
  };

  std::string json = "{\"bench\":\"replay\"";
  int exit_code = 0;
  // 1. The journal.
  if (is_journal_dir(dir)) {
    json += ",\"generated\":false";
  } else {
    runtime::DomainFolder folder;
    storage::JournalOptions journal_options;
    for (std::uint32_t s = 0; s < options.shards; ++s) journal_options.shards.push_back(ShardId{s});
    journal_options.folder = &folder;  // journal-made snapshots, as the engine's journal has
    journal_options.open_verification = storage::OpenVerification::kTail;
    auto journal = storage::Journal::open(dir, journal_options);
    if (!journal) {
      cleanup();
      return fail("opening a new journal in " + dir + ": " + journal.status().to_string());
    }
    Generator generator(**journal, options);
    const auto start = Clock::now();
    storage::Status status = generator.run(options.progress);
    (*journal)->wait_for_snapshots();
    const double seconds = seconds_since(start);
    const storage::JournalStats stats = (*journal)->stats();
    journal->reset();
    // The replay right after must not share the disk with the write-back of what was just
    // generated (measured: 2-4x slower rounds without this).
    ::sync();
    if (!status) {
      cleanup();
      return fail("generating the journal: " + status.to_string());
    }
    json += ",\"generated\":true,\"generate\":{\"events\":" + std::to_string(generator.events()) +
            ",\"commands\":" + std::to_string(generator.commands()) + ",\"orders\":" + std::to_string(generator.orders()) +
            ",\"fulfilled\":" + std::to_string(generator.fulfilled()) + ",\"cancelled\":" +
            std::to_string(generator.cancelled()) + ",\"rejected\":" + std::to_string(generator.rejected()) +
            ",\"skus\":" + std::to_string(options.skus) + ",\"shards\":" + std::to_string(options.shards) +
            ",\"batches\":" + std::to_string(stats.batches) + ",\"snapshots\":" + std::to_string(stats.snapshots_made) +
            ",\"seconds\":" + fixed(seconds, 2) + ",\"events_per_s\":" + fixed(generator.events() / seconds, 0) + "}";
  }
  std::uint64_t dir_bytes = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir, error)) {
    if (entry.is_regular_file(error)) dir_bytes += entry.file_size(error);
  }
  json += ",\"data_dir_bytes\":" + std::to_string(dir_bytes);

  // 2. Replay, timed.
  std::vector<replay::ShardReplay> best;
  double best_seconds = 0;
  std::string rounds = "[";
  for (int round = 0; round < std::max(1, options.rounds); ++round) {
    replay::ReplayOptions replay_options;
    replay_options.data_dir = dir;
    replay_options.threads = options.threads;
    const auto start = Clock::now();
    auto results = replay::replay(replay_options);
    const double seconds = seconds_since(start);
    if (!results) {
      cleanup();
      return fail("replay: " + results.status().to_string());
    }
    std::uint64_t events = 0;
    for (const auto& shard : *results) events += shard.events;
    rounds += std::string(round > 0 ? "," : "") + "{\"seconds\":" + fixed(seconds, 3) + ",\"events_per_s\":" +
              fixed(events / seconds, 0) + "}";
    if (best.empty() || seconds < best_seconds) {
      best = std::move(*results);
      best_seconds = seconds;
    }
  }
  rounds += "]";
  std::uint64_t events = 0, entities = 0;
  std::string shards = "[";
  for (const auto& shard : best) {
    events += shard.events;
    entities += shard.entities;
    shards += std::string(shards.size() > 1 ? "," : "") + "{\"shard\":" + std::to_string(shard.shard) +
              ",\"revision\":" + std::to_string(shard.revision) + ",\"events\":" + std::to_string(shard.events) +
              ",\"entities\":" + std::to_string(shard.entities) + ",\"seconds\":" + fixed(shard.seconds, 3) +
              ",\"events_per_s\":" + fixed(shard.events / std::max(1e-9, shard.seconds), 0) + ",\"digest\":" +
              events::json::quoted(shard.digest) + "}";
  }
  shards += "]";
  json += ",\"replay\":{\"threads\":" + std::to_string(options.threads) + ",\"events\":" + std::to_string(events) +
          ",\"entities\":" + std::to_string(entities) + ",\"seconds\":" + fixed(best_seconds, 3) + ",\"events_per_s\":" +
          fixed(events / best_seconds, 0) + ",\"rounds\":" + rounds + ",\"shards\":" + shards + "}";

  // Optional: the live digests (Journal::digest, from snapshots) must equal replay's.
  if (options.verify) {
    runtime::DomainFolder folder;
    storage::JournalOptions journal_options;
    journal_options.folder = &folder;
    journal_options.read_only = true;
    journal_options.open_verification = storage::OpenVerification::kTail;
    auto journal = storage::Journal::open(dir, journal_options);
    std::uint64_t equal = 0, different = 0;
    const auto start = Clock::now();
    for (const auto& shard : best) {
      auto digest = journal ? (*journal)->digest(ShardId{shard.shard}, shard.revision) : journal.status();
      (digest && *digest == shard.digest ? equal : different) += 1;
    }
    json += ",\"verify\":{\"shards_equal\":" + std::to_string(equal) + ",\"shards_different\":" +
            std::to_string(different) + ",\"journal_digest_seconds\":" + fixed(seconds_since(start), 2) + "}";
    if (different > 0) exit_code = 1;
  }

  // 3. Restart of the engine on this data dir, to /readyz.
  if (options.restart) {
    const std::string ffe = options.ffe_binary.empty() ? std::filesystem::read_symlink("/proc/self/exe", error).string()
                                                       : options.ffe_binary;
    std::uint32_t shard_count = static_cast<std::uint32_t>(best.size());
    RestartResult restart = time_restart(ffe, dir, shard_count);
    json += ",\"restart\":{\"ready\":" + std::string(restart.ready ? "true" : "false") + ",\"ready_ms\":" +
            fixed(restart.ready_ms, 0) + ",\"serve_exit\":" + std::to_string(restart.exit_code) +
            (restart.error.empty() ? "" : ",\"error\":" + events::json::quoted(restart.error)) + "}";
    if (!restart.ready) exit_code = 1;
  }
  json += ",\"data_dir\":" + events::json::quoted(temp && !options.keep ? "" : dir) + ",\"ok\":" +
          (exit_code == 0 ? "true" : "false") + "}";
  std::printf("%s\n", json.c_str());
  std::fflush(stdout);
  cleanup();
  return exit_code;
}

}  // namespace ffe::bench
