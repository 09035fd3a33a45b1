#include "adapters/kafka/producer.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <thread>

#include "adapters/kafka/rdkafka_internal.h"

namespace ffe::kafka {

namespace {

// Delivery reports find their callback through the record's opaque pointer.
class DeliveryReports final : public RdKafka::DeliveryReportCb {
 public:
  explicit DeliveryReports(std::atomic<std::size_t>* in_flight) : in_flight_(in_flight) {}
  void dr_cb(RdKafka::Message& message) override {
    std::unique_ptr<DeliveryFn> done(static_cast<DeliveryFn*>(message.msg_opaque()));
    in_flight_->fetch_sub(1);
    if (!done) return;
    Delivery delivery;
    delivery.ok = message.err() == RdKafka::ERR_NO_ERROR;
    if (!delivery.ok) delivery.error = message.errstr();
    delivery.too_large =
        message.err() == RdKafka::ERR_MSG_SIZE_TOO_LARGE || message.err() == RdKafka::ERR_RECORD_LIST_TOO_LARGE;
    delivery.partition = message.partition();
    delivery.offset = message.offset();
    (*done)(delivery);
  }

 private:
  std::atomic<std::size_t>* in_flight_;
};

}  // namespace

class Producer::Impl {
 public:
  explicit Impl(Options options)
      : options_(std::move(options)), events_(options_.client.client_id), reports_(&in_flight_) {}

  Status start() {
    std::string error;
    auto conf = internal::make_conf(options_.client, &events_, &error);
    if (!conf) return Status(StatusCode::kInvalidArgument, error);
    // Idempotent: no duplicates or reordering from the producer's own retries; acks=all so a
    // delivered record survives a broker failover on a real cluster.
    const std::pair<std::string, std::string> settings[] = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"linger.ms", std::to_string(options_.linger_ms)},
        {"compression.type", "none"},
    };
    for (const auto& [name, value] : settings) {
      if (!internal::set(*conf, name, value, &error)) return Status(StatusCode::kInvalidArgument, error);
    }
    if (options_.message_timeout_ms > 0 &&
        !internal::set(*conf, "message.timeout.ms", std::to_string(options_.message_timeout_ms), &error)) {
      return Status(StatusCode::kInvalidArgument, error);
    }
    // The caller's properties win over ffe's defaults: apply them again.
    for (const auto& [name, value] : options_.client.properties) {
      if (!internal::set(*conf, name, value, &error)) return Status(StatusCode::kInvalidArgument, error);
    }
    std::string why;
    if (conf->set("dr_cb", &reports_, why) != RdKafka::Conf::CONF_OK) {
      return Status(StatusCode::kInvalidArgument, "kafka dr_cb: " + why);
    }
    producer_.reset(RdKafka::Producer::create(conf.get(), why));
    if (!producer_) return internal::io_error("cannot create the Kafka producer: " + why);
    poller_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "ffe-kafka-poll");  // for top -H and perf
      while (!stop_.load()) producer_->poll(50);
    });
    return Status::ok();
  }

  ~Impl() {
    if (producer_) {
      const auto flushed = producer_->flush(static_cast<int>(options_.close_flush_timeout.count()));
      if (flushed != RdKafka::ERR_NO_ERROR && in_flight_.load() > 0) {
        spdlog::warn("kafka {}: {} records still undelivered at close (their senders offer them again)",
                     options_.client.client_id, in_flight_.load());
      }
      // Whatever is left fails its delivery callback: purge, then serve the reports.
      producer_->purge(RdKafka::Producer::PURGE_QUEUE | RdKafka::Producer::PURGE_INFLIGHT);
    }
    stop_.store(true);
    if (poller_.joinable()) poller_.join();
    if (producer_) {
      producer_->poll(0);
      producer_.reset();
    }
  }

  Status produce(Record record, DeliveryFn done, const std::atomic<bool>* abort) {
    RdKafka::Headers* headers = nullptr;
    if (!record.headers.empty()) {
      headers = RdKafka::Headers::create();
      for (const Header& header : record.headers) headers->add(header.name, header.value);
    }
    auto opaque = std::make_unique<DeliveryFn>(std::move(done));
    while (true) {
      in_flight_.fetch_add(1);
      const RdKafka::ErrorCode err = producer_->produce(
          record.topic, record.partition, RdKafka::Producer::RK_MSG_COPY,
          record.null_value ? nullptr : record.value.data(), record.null_value ? 0 : record.value.size(),
          record.key.empty() && !record.empty_key_not_null ? nullptr : record.key.data(), record.key.size(), 0,
          headers, opaque.get());
      if (err == RdKafka::ERR_NO_ERROR) {
        opaque.release();  // the delivery report owns it now; headers are librdkafka's
        return Status::ok();
      }
      in_flight_.fetch_sub(1);
      if (err == RdKafka::ERR__QUEUE_FULL) {
        // Push-back: the local queue drains as the broker acknowledges (the poll thread
        // serves the reports).
        if ((abort != nullptr && abort->load()) || stop_.load()) {
          delete headers;
          return Status(StatusCode::kClosed, "producing to " + record.topic + " was aborted");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        continue;
      }
      delete headers;
      const std::string reason = "producing to " + record.topic + ": " + RdKafka::err2str(err);
      if (err == RdKafka::ERR_MSG_SIZE_TOO_LARGE || err == RdKafka::ERR__UNKNOWN_PARTITION ||
          err == RdKafka::ERR__INVALID_ARG) {
        return Status(StatusCode::kInvalidArgument, reason);
      }
      return internal::io_error(reason);
    }
  }

  bool flush(std::chrono::milliseconds timeout) {
    // The poll thread serves the reports; wait for them to be counted.
    const auto until = std::chrono::steady_clock::now() + timeout;
    producer_->flush(static_cast<int>(timeout.count()));
    while (in_flight_.load() > 0) {
      if (std::chrono::steady_clock::now() >= until) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
  }

  std::size_t in_flight() const { return in_flight_.load(); }

 private:
  Options options_;
  internal::LogEvents events_;
  std::atomic<std::size_t> in_flight_{0};
  DeliveryReports reports_;
  std::unique_ptr<RdKafka::Producer> producer_;
  std::atomic<bool> stop_{false};
  std::thread poller_;
};

Result<std::unique_ptr<Producer>> Producer::create(Options options) {
  auto impl = std::make_unique<Impl>(std::move(options));
  if (Status status = impl->start(); !status) return status;
  return std::unique_ptr<Producer>(new Producer(std::move(impl)));
}

Producer::Producer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Producer::~Producer() = default;

Status Producer::produce(Record record, DeliveryFn done, const std::atomic<bool>* abort) {
  return impl_->produce(std::move(record), std::move(done), abort);
}

bool Producer::flush(std::chrono::milliseconds timeout) { return impl_->flush(timeout); }

std::size_t Producer::in_flight() const { return impl_->in_flight(); }

// ---- DeliveryBatch ------------------------------------------------------------------------------

DeliveryFn DeliveryBatch::expect() {
  {
    std::lock_guard lock(mu_);
    ++expected_;
  }
  return [self = shared_from_this()](const Delivery& delivery) { self->report(delivery); };
}

void DeliveryBatch::refused(std::string error) {
  Delivery delivery;
  delivery.ok = false;
  delivery.error = std::move(error);
  report(delivery);
}

void DeliveryBatch::report(const Delivery& delivery) {
  std::function<void(const DeliveryBatch&)> fn;
  {
    std::lock_guard lock(mu_);
    ++reported_;
    if (!delivery.ok) {
      if (failed_++ == 0) first_error_ = delivery.error;
    }
    if (reported_ == expected_ && on_done_) {
      fn = std::move(on_done_);
      on_done_ = nullptr;
    }
  }
  cv_.notify_all();
  if (fn) fn(*this);
}

void DeliveryBatch::on_done(std::function<void(const DeliveryBatch&)> fn) {
  {
    std::lock_guard lock(mu_);
    if (reported_ < expected_) {
      on_done_ = std::move(fn);
      return;
    }
  }
  fn(*this);
}

bool DeliveryBatch::wait(std::chrono::milliseconds timeout, const std::atomic<bool>* abort) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(mu_);
  while (reported_ < expected_) {
    if (abort != nullptr && abort->load()) return false;
    const auto now = std::chrono::steady_clock::now();
    if (now >= until) return false;
    // Short slices so an abort is seen promptly.
    cv_.wait_for(lock, std::min<std::chrono::steady_clock::duration>(until - now, std::chrono::milliseconds(20)));
  }
  return true;
}

bool DeliveryBatch::all_ok() const {
  std::lock_guard lock(mu_);
  return reported_ == expected_ && failed_ == 0;
}

std::size_t DeliveryBatch::failed() const {
  std::lock_guard lock(mu_);
  return failed_;
}

std::string DeliveryBatch::first_error() const {
  std::lock_guard lock(mu_);
  return first_error_;
}

}  // namespace ffe::kafka
