#pragma once
// Every bound the journal enforces, in one place (STYLE habit 5, TigerBeetle). Input over a
// limit is an kInvalidArgument result with the limit's name in the message; a full queue is
// push-back (the caller waits, or gets kBusy); nothing is silently truncated or dropped.
// docs/journal.md lists these with the reason for each value. The domain's own limits are
// in events/limits.h; the journal is domain-free and only bounds bytes and counts.

#include <cstddef>
#include <cstdint>

namespace ffe::storage::limits {

// --- one command (one atomic unit) -------------------------------------------------------
// "order/<64-char id>" fits many times over; keys must not contain '\0' (the key encoding
// separates an entity key from its revision with it).
inline constexpr std::size_t entity_key_bytes_max = 512;
inline constexpr std::size_t event_bytes_max = 1024 * 1024;
inline constexpr std::size_t command_events_max = 1024;
// A hot SKU's canonical state holds its open reservations; 64 MiB is far above any state the
// domain's windows allow, and still a bounded WriteBatch entry.
inline constexpr std::size_t snapshot_bytes_max = 64 * 1024 * 1024;
inline constexpr std::size_t command_outbox_max = 256;
inline constexpr std::size_t outbox_message_bytes_max = 1024 * 1024;
inline constexpr std::size_t outbox_headers_max = 32;
inline constexpr std::size_t command_dedupe_keys_max = 16;
inline constexpr std::size_t dedupe_key_bytes_max = 512;
inline constexpr std::size_t input_source_bytes_max = 512;
// The shard index (CommitRequest::index_put/index_delete): small current-state lookup keys
// such as "open order -> deadline". A key is far above "open/<deadline>/<order id>"; a value
// holds a few ids and times, not a state (states are entities); a command changes a handful.
inline constexpr std::size_t index_key_bytes_max = 512;
inline constexpr std::size_t index_value_bytes_max = 4096;
inline constexpr std::size_t index_entries_per_command_max = 64;  // puts + deletes
// All of one command's bytes (events, snapshots, outbox, keys, index entries).
inline constexpr std::size_t command_bytes_max = 128 * 1024 * 1024;

// --- group commit --------------------------------------------------------------------------
// Upper bounds for the configurable batch and queue sizes (JournalOptions); a larger option
// is refused at open.
inline constexpr std::size_t commit_batch_commands_max = 65536;
inline constexpr std::size_t commit_batch_bytes_max = 256 * 1024 * 1024;
inline constexpr std::size_t commit_queue_commands_max = 1 << 20;
inline constexpr std::size_t commit_queue_bytes_max = 1024ull * 1024 * 1024;
inline constexpr std::int64_t commit_wait_us_max = 100'000;

// --- shards --------------------------------------------------------------------------------
inline constexpr std::uint32_t shards_max = 4096;

// --- reads ---------------------------------------------------------------------------------
// Entities returned by one range() page; more come with the next page (start_after).
inline constexpr std::size_t range_page_entities_max = 10'000;
// Log records one watch/scan call may examine (matching or not), so a call on a sparse
// prefix returns in bounded time; the cursor resumes where it stopped.
inline constexpr std::size_t watch_scan_records_max = 10'000;
inline constexpr std::size_t outbox_read_entries_max = 10'000;
// Index entries returned by one index_scan() call; more come with the next call (start_after).
inline constexpr std::size_t index_scan_entries_max = 10'000;

// --- snapshots -----------------------------------------------------------------------------
inline constexpr std::uint32_t snapshot_every_events_max = 1 << 20;
// Cap on JournalOptions::snapshot_bytes_ratio: past it a read could fold a thousand times
// an entity's state, which no setting should allow.
inline constexpr double snapshot_bytes_ratio_max = 1000.0;
// Cap on JournalOptions::snapshot_tracked_entities_max (default 262,144): the entities whose
// "events and bytes since the last snapshot" the snapshot thread keeps in memory, about 60
// bytes each; an entity it forgets restarts its count, and read repair bounds what that
// costs (docs/journal.md).
inline constexpr std::size_t snapshot_tracked_entities_max = 1 << 24;
// Durable entity changes waiting for the snapshot thread; when full, the completion thread
// waits (push-back) rather than forgetting a change.
inline constexpr std::size_t snapshot_inbox_entries_max = 1 << 18;

}  // namespace ffe::storage::limits
