// ffe_cdc_child: the process the CDC crash test kills (crash_test.cc). It opens a Runtime on a
// data dir (participants answered in process, tests/runtime/crash_support.h) and a CDC
// pipeline into the analytics URL, receives stock, prints "ready", then places ORDERS orders
// "<PREFIX>-<n>" (cdc_test_support.h's workload) without waiting for them, printing
// "placed <n>" every 50. With CRASH_AFTER_BATCHES > 0 it kills itself with SIGKILL right
// after the sink committed that many batches (before the pipeline records anything: the
// crash the checkpoint guard exists for). Closing stdin stops it cleanly ("bye").
//
//   ffe_cdc_child DIR URL SHARDS PREFIX ORDERS CRASH_AFTER_BATCHES
//
// Every line goes out with one write(2) (a SIGKILL never tears a line). Exit 0 after a clean
// stop, 1 on a setup error ("error ...").

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "adapters/cdc/pipeline.h"
#include "tests/cdc/cdc_test_support.h"
#include "tests/runtime/crash_support.h"

using namespace ffe;
using ffe::runtime::testing::say;

namespace {

constexpr int kSkus = 8;

void wait_for_stdin_eof() {
  char buffer[256];
  while (true) {
    ssize_t n = ::read(STDIN_FILENO, buffer, sizeof buffer);
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    return;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 7) {
    say("error usage: ffe_cdc_child DIR URL SHARDS PREFIX ORDERS CRASH_AFTER_BATCHES");
    return 1;
  }
  const std::string dir = argv[1];
  const std::string url = argv[2];
  const auto shards = static_cast<std::uint32_t>(std::stoul(argv[3]));
  const std::string prefix = argv[4];
  const int orders = std::stoi(argv[5]);
  const int crash_after = std::stoi(argv[6]);

  runtime::testing::ParticipantEgress egress;
  runtime::Options options;
  options.data_dir = dir;
  options.shards = shards;
  options.scheduler_threads = 2;
  options.egress = &egress;
  auto opened = runtime::Runtime::open(std::move(options));
  if (!opened) {
    say("error opening the runtime: " + opened.status().to_string());
    return 1;
  }
  std::unique_ptr<runtime::Runtime> rt = std::move(*opened);
  egress.attach(rt.get());

  cdc::Migration migration;
  auto sink = cdc::open_sink(url, &migration);
  if (!sink) {
    say("error opening the sink: " + sink.status().to_string());
    return 1;
  }
  cdc::PipelineOptions pipeline_options;
  pipeline_options.batch_revisions_max = 64;  // many small batches: many crash points
  std::atomic<int> batches{0};
  pipeline_options.after_apply = [&](const cdc::Batch&) {
    if (crash_after > 0 && ++batches == crash_after) {
      say("crash");
      ::kill(::getpid(), SIGKILL);
    }
  };
  cdc::CdcPipeline pipeline(rt->journal(), std::move(*sink), migration, pipeline_options);
  if (storage::Status status = pipeline.start(); !status) {
    say("error starting CDC: " + status.to_string());
    return 1;
  }
  if (!cdc::testing::receive_stock(*rt, kSkus, 1'000'000)) {
    say("error receiving stock");
    return 1;
  }
  say("ready");
  std::atomic<bool> stop{false};
  std::thread placer([&] {
    for (int n = 0; n < orders && !stop.load(); ++n) {
      const std::string id = prefix + "-" + std::to_string(n);
      (void)rt->submit(runtime::OrderCommand(cdc::testing::order_number(id, n, kSkus)), [](const runtime::Ack&) {});
      if (n % 50 == 49) say("placed " + std::to_string(n + 1));
      if (n % 20 == 19) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    say("placed all");
  });
  wait_for_stdin_eof();
  stop.store(true);
  placer.join();
  rt->wait_quiet(std::chrono::seconds(10));
  pipeline.wait_caught_up(std::chrono::seconds(10));
  pipeline.stop();
  egress.detach();
  rt.reset();
  say("bye");
  return 0;
}
