#pragma once
// Internal to storage/: the on-disk encoding of the journal's keys and values (the layout
// docs/journal.md describes). Pure functions over bytes, no RocksDB, so they are unit-tested
// directly and shared by the journal, its tests and the crash checker.
//
// Keys inside one shard's column family start with a one-byte tag; numbers inside keys are
// big-endian so byte order is numeric order; entity keys are followed by '\0' and the
// revision, so all versions of one entity are adjacent, in revision order, and sort before
// any longer key that has the entity key as a prefix. Values use little-endian fixed-width
// numbers and varint-length-prefixed strings.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/journal_types.h"

namespace ffe::storage::encoding {

// --- key tags ------------------------------------------------------------------------------
inline constexpr char kLogTag = 'l';          // l <rev:be64>                 -> log record
inline constexpr char kVersionTag = 'v';      // v <entity> \0 <rev:be64>      -> "" (changed at rev)
inline constexpr char kSnapshotTag = 's';     // s <entity> \0 <rev:be64>      -> state bytes
inline constexpr char kInputTag = 'i';        // i <source>                    -> offset, revision
inline constexpr char kOutboxTag = 'o';       // o <rev:be64> <seq:be32>       -> message
inline constexpr char kDedupeTag = 'd';       // d <dedupe key>                -> revision
inline constexpr char kDedupeExpiryTag = 'x'; // x <rev:be64> <dedupe key>     -> ""
inline constexpr char kMetaTag = 'm';         // m <name>                      -> per name
inline constexpr char kIndexTag = 'n';        // n <index key>                 -> index value

inline constexpr std::string_view kMetaCompacted = "mcompacted";       // -> rev:le64
inline constexpr std::string_view kMetaOutboxCursor = "moutbox_cursor"; // -> rev:le64 seq:le32
// Present from a compaction's point of no return until its clean-up is done: a compaction
// that finds it (the last one crashed halfway) visits every entity, not only the changed ones.
inline constexpr std::string_view kMetaCompactPending = "mcompact_pending";  // -> ""
// In the default column family: the journal format of the whole DB.
inline constexpr std::string_view kFormatKey = "ffe/journal-format";
inline constexpr std::string_view kFormatValue = "1";
inline constexpr std::uint8_t kLogRecordFormat = 1;
// Most bytes of a log record before the body: format, then revision and committed_at_ms
// as varints (the WAL's bytes are the commit path's cost at large batches).
inline constexpr std::size_t kLogHeaderBytes = 1 + 10 + 10;

// --- primitives ------------------------------------------------------------------------------
void put_be64(std::string& out, std::uint64_t value);
void put_be32(std::string& out, std::uint32_t value);
void put_le64(std::string& out, std::uint64_t value);
void put_le32(std::string& out, std::uint32_t value);
void put_varint(std::string& out, std::uint64_t value);
std::size_t store_varint(char* out, std::uint64_t value);  // at most 10 bytes; returns the length
std::uint64_t zigzag(std::int64_t value);
std::int64_t unzigzag(std::uint64_t value);
void put_bytes(std::string& out, std::string_view bytes);  // varint length + bytes
void store_be64(char* out, std::uint64_t value);           // 8 bytes at out
void store_le64(char* out, std::uint64_t value);           // 8 bytes at out
std::uint64_t get_be64(std::string_view in);               // in.size() >= 8
std::uint32_t get_be32(std::string_view in);               // in.size() >= 4

// Reads from the front of `in`, advancing it; false when `in` is too short or malformed.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool u8(std::uint8_t& value);
  bool le64(std::uint64_t& value);
  bool le32(std::uint32_t& value);
  bool varint(std::uint64_t& value);
  bool bytes(std::string_view& value);
  bool done() const { return in_.empty(); }

 private:
  std::string_view in_;
};

// --- keys ----------------------------------------------------------------------------------
std::string log_key(Revision revision);
std::string entity_key(char tag, std::string_view entity, Revision revision);  // kVersionTag, kSnapshotTag
std::string entity_prefix(char tag, std::string_view entity);                  // tag entity \0
std::string input_key(std::string_view source);
std::string outbox_key(Revision revision, std::uint32_t seq);
std::string dedupe_key(std::string_view key);
std::string dedupe_expiry_key(Revision revision, std::string_view key);
std::string index_key(std::string_view key);
// The same keys appended to `out` (the writer builds a batch's keys in one buffer).
void append_entity_key(std::string& out, char tag, std::string_view entity, Revision revision);
void append_dedupe_key(std::string& out, std::string_view key);
void append_index_key(std::string& out, std::string_view key);
// The first key past every index key that starts with `prefix` ("n" prefix, incremented):
// an exclusive upper bound for a scan, so it never walks past the prefix (over deletion
// tombstones or other tags).
std::string index_prefix_end(std::string_view prefix);

// Splits "tag entity \0 rev" into entity and revision; nullopt when malformed.
struct EntityKeyParts {
  std::string_view entity;
  Revision revision = 0;
};
std::optional<EntityKeyParts> parse_entity_key(std::string_view key);
std::optional<Revision> parse_log_key(std::string_view key);
std::optional<OutboxPosition> parse_outbox_key(std::string_view key);

// --- values --------------------------------------------------------------------------------
// The log record body (everything after the header), encoded by the committing thread so
// the single writer thread only adds the header (revision, time) and copies bytes.
std::string encode_log_body(const CommitRequest& request);
std::string encode_log_header(Revision revision, std::int64_t committed_at_ms);
// Writes the header into `out`; returns its length.
std::size_t encode_log_header(char (&out)[kLogHeaderBytes], Revision revision, std::int64_t committed_at_ms);
// Decodes a whole record (header + body) and checks its format byte; nullopt when malformed.
std::optional<LogRecord> decode_log_record(std::string_view value);

std::string encode_outbox_message(const OutboxMessage& message);
std::optional<OutboxMessage> decode_outbox_message(std::string_view value);

std::string encode_input_value(std::int64_t offset, Revision revision);
struct InputValue {
  std::int64_t offset = 0;
  Revision revision = 0;
};
std::optional<InputValue> decode_input_value(std::string_view value);

std::string encode_revision(Revision revision);  // le64
void append_revision(std::string& out, Revision revision);
std::optional<Revision> decode_revision(std::string_view value);

std::string encode_outbox_position(OutboxPosition position);
std::optional<OutboxPosition> decode_outbox_position(std::string_view value);

}  // namespace ffe::storage::encoding
