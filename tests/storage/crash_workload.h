#pragma once
// The crash test's workload, shared by the child that runs it (journal_child.cc) and the
// test that checks what survived (crash_test.cc). Thread t commits its commands in seq order
// to shard t % 2; command (t, seq) is either
//   - a change: 3 events (e/<t>/<seq%5>, e/<t>/all, shared/<seq%3>), or
//   - every 10th one, a no-op: no events, so no new revision,
// and always 1 outbox message ("<t> <seq>"), the input position ("load/<t>", seq), the
// dedupe key "d/<t>/<seq>", and an index change: put "idx/<t>/<seq>" (seq zero-padded, so
// key order is seq order) = "<seq>", delete the key of seq - kCrashIndexWindow. So the
// index of thread t always holds exactly its last kCrashIndexWindow durable commands. All
// of a command's parts must be present, or none.

#include <cstdio>
#include <string>

#include "storage/journal.h"

namespace ffe::storage::testing {

inline constexpr ShardId kCrashShard{0};
inline constexpr ShardId kCrashShards[] = {ShardId{0}, ShardId{1}};

inline ShardId crash_shard(int thread) { return kCrashShards[thread % 2]; }
inline std::string crash_source(int thread) { return "load/" + std::to_string(thread); }
inline bool crash_is_noop(std::int64_t seq) { return seq % 10 == 9; }
inline std::string crash_dedupe(int thread, std::int64_t seq) {
  return "d/" + std::to_string(thread) + "/" + std::to_string(seq);
}
inline constexpr std::int64_t kCrashIndexWindow = 3;
inline std::string crash_index_prefix(int thread) { return "idx/" + std::to_string(thread) + "/"; }
inline std::string crash_index_key(int thread, std::int64_t seq) {
  char digits[24];
  std::snprintf(digits, sizeof digits, "%012lld", static_cast<long long>(seq));
  return crash_index_prefix(thread) + digits;
}
inline std::string crash_outbox_payload(int thread, std::int64_t seq) {
  return std::to_string(thread) + " " + std::to_string(seq);
}
inline std::vector<Event> crash_events(int thread, std::int64_t seq) {
  if (crash_is_noop(seq)) return {};
  const std::string t = std::to_string(thread);
  return {Event{"e/" + t + "/" + std::to_string(seq % 5), std::to_string(seq % 7 + 1)},
          Event{"e/" + t + "/all", "1"},
          Event{"shared/" + std::to_string(seq % 3), std::to_string(thread + 1)}};
}

inline CommitRequest crash_command(int thread, std::int64_t seq) {
  CommitRequest request;
  request.shard = crash_shard(thread);
  request.events = crash_events(thread, seq);
  request.input = InputPosition{crash_source(thread), seq};
  request.outbox.push_back(OutboxMessage{"crash", std::to_string(thread), crash_outbox_payload(thread, seq), {}});
  request.dedupe_keys.push_back(crash_dedupe(thread, seq));
  request.index_put.push_back(IndexEntry{crash_index_key(thread, seq), std::to_string(seq)});
  if (seq >= kCrashIndexWindow) request.index_delete.push_back(crash_index_key(thread, seq - kCrashIndexWindow));
  return request;
}

inline JournalOptions crash_journal_options(StateFolder* folder) {
  JournalOptions options;
  options.shards = {kCrashShards[0], kCrashShards[1]};
  options.folder = folder;
  options.snapshot_every_events = 4;  // many journal-made snapshots, also under crash
  options.open_verification = OpenVerification::kFull;
  return options;
}

}  // namespace ffe::storage::testing
