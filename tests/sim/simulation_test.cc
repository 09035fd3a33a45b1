// The simulation over several seeds (invariants 1, 3, 4, 5 of the architecture after every
// step), its determinism, proof that its checks can fail, and proof that it exercises what
// it claims to (fulfilments, cancellations, rejections, duplicates, late replies, crashes,
// timeouts, ghost effects, releases that overtake their reserve).
//
// A failure prints the seed; reproduce it with `ffe simulate --seed S --steps N`.

#include "sagas/simulation.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace ffe::sim {
namespace {

// 8 seeds x 15,000 load steps: CI runs 120,000 load steps plus the drains.
constexpr std::uint64_t seeds[] = {1, 2, 3, 4, 5, 6, 7, 8};
constexpr std::int64_t load_steps_default = 15'000;

// FFE_SIM_STEPS=N overrides the load steps per seed (sanitizer builds are ~10x slower).
std::int64_t load_steps() {
  if (const char* text = std::getenv("FFE_SIM_STEPS")) {
    char* end = nullptr;
    const long long steps = std::strtoll(text, &end, 10);
    if (end != text && *end == '\0' && steps > 0) return steps;
  }
  return load_steps_default;
}

Options options_for(std::uint64_t seed, std::int64_t steps) {
  Options options;
  options.seed = seed;
  options.steps = steps;
  return options;
}

TEST(Simulation, EverySeedKeepsTheInvariantsAndExercisesTheSaga) {
  const std::int64_t steps = load_steps();
  Report total;
  const auto started = std::chrono::steady_clock::now();
  for (std::uint64_t seed : seeds) {
    const Report report = run(options_for(seed, steps));
    std::printf("%s\n", to_json(report).c_str());
    EXPECT_FALSE(report.failure.has_value())
        << "seed " << seed << " failed; reproduce with `ffe simulate --seed " << seed << " --steps "
        << steps << "`: " << report.failure.value_or("");
    EXPECT_GE(report.steps, steps) << "seed " << seed;
    total.steps += report.steps;
    total.orders += report.orders;
    total.fulfilled += report.fulfilled;
    total.cancelled += report.cancelled;
    total.rejected += report.rejected;
    total.duplicates += report.duplicates;
    total.late_replies += report.late_replies;
    total.crashes += report.crashes;
    total.timeouts += report.timeouts;
    total.ghosts += report.ghosts;
    total.refused_reserves += report.refused_reserves;
    total.unexpected_releases += report.unexpected_releases;
    total.events += report.events;
    total.messages += report.messages;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf(
      "simulation: %lld steps (%lld load) over %zu seeds in %.2f s: %.0f steps/s, "
      "%lld events, %lld messages\n",
      static_cast<long long>(total.steps),
      static_cast<long long>(steps * static_cast<std::int64_t>(std::size(seeds))), std::size(seeds),
      seconds, seconds > 0 ? total.steps / seconds : 0.0, static_cast<long long>(total.events),
      static_cast<long long>(total.messages));
  // CI must run at least 100,000 load steps (unless FFE_SIM_STEPS scales it down on purpose).
  if (std::getenv("FFE_SIM_STEPS") == nullptr) {
    EXPECT_GE(steps * static_cast<std::int64_t>(std::size(seeds)), 100'000);
  }
  // The run exercised what the simulation claims to exercise.
  EXPECT_GT(total.orders, 0);
  EXPECT_GT(total.fulfilled, 0);
  EXPECT_GT(total.cancelled, 0);
  EXPECT_GT(total.rejected, 0);
  EXPECT_GT(total.duplicates, 0);
  EXPECT_GT(total.late_replies, 0);
  EXPECT_GT(total.crashes, 0);
  EXPECT_GT(total.timeouts, 0) << "no step deadline ever fired";
  EXPECT_GT(total.ghosts, 0) << "no participant ever acted without answering";
  EXPECT_GT(total.refused_reserves, 0) << "no release ever overtook its reserve";
  EXPECT_GT(total.unexpected_releases, 0) << "no unexpected RESERVED reply was ever released";
  EXPECT_EQ(total.orders, total.fulfilled + total.cancelled + total.rejected)
      << "every order ends terminal";
}

TEST(Simulation, SameSeedGivesTheSameRun) {
  const Options options = options_for(42, 3'000);
  const std::string first = to_json(run(options));
  const std::string second = to_json(run(options));
  EXPECT_EQ(first, second);
  EXPECT_NE(first, to_json(run(options_for(43, 3'000)))) << "a different seed, a different run";
}

TEST(Simulation, DetectsAReservationNobodyDecided) {
  Options options = options_for(7, 2'000);
  options.inject_fault = Fault::kReserveWithoutDecide;
  options.inject_fault_at_step = 500;
  const Report report = run(options);
  ASSERT_TRUE(report.failure.has_value()) << "the checker missed an injected reservation";
  std::printf("%s\n", report.failure->c_str());
  EXPECT_EQ(report.failure->rfind("seed 7 step ", 0), 0u) << *report.failure;
  EXPECT_NE(report.failure->find("holds a reservation for o-fault"), std::string::npos)
      << *report.failure;
  // Found at the step it happened, not at the end of the drain.
  EXPECT_LE(report.steps, 2'000);
}

TEST(Simulation, DetectsAParticipantThatKeepsVoidedAuthorizations) {
  Options options = options_for(3, 3'000);
  options.inject_fault = Fault::kParticipantIgnoresVoid;
  const Report report = run(options);
  ASSERT_TRUE(report.failure.has_value()) << "the checker missed an authorization never voided";
  std::printf("%s\n", report.failure->c_str());
  EXPECT_EQ(report.failure->rfind("seed 3 step ", 0), 0u) << *report.failure;
  EXPECT_NE(report.failure->find("live authorizations"), std::string::npos) << *report.failure;
}

TEST(Simulation, ReportIsOneLineOfJson) {
  Report report;
  report.seed = 9;
  report.steps = 10;
  report.failure = "seed 9 step 10: a \"quoted\"\nreason\\";
  const std::string json = to_json(report);
  EXPECT_EQ(json.find('\n'), std::string::npos) << json;
  EXPECT_EQ(json.front(), '{');
  EXPECT_EQ(json.back(), '}');
  EXPECT_NE(json.find("\"seed\":9"), std::string::npos) << json;
  EXPECT_NE(json.find("\"failure\":\"seed 9 step 10: a \\\"quoted\\\"\\nreason\\\\\""),
            std::string::npos)
      << json;
  report.failure.reset();
  EXPECT_NE(to_json(report).find("\"failure\":null"), std::string::npos);
}

}  // namespace
}  // namespace ffe::sim
