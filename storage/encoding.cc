#include "storage/encoding.h"

#include <cstring>

namespace ffe::storage::encoding {

void store_be64(char* out, std::uint64_t value) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<char>(value & 0xff);
    value >>= 8;
  }
}

void store_le64(char* out, std::uint64_t value) {
  for (int i = 0; i < 8; ++i) {
    out[i] = static_cast<char>(value & 0xff);
    value >>= 8;
  }
}

void put_be64(std::string& out, std::uint64_t value) {
  char bytes[8];
  store_be64(bytes, value);
  out.append(bytes, 8);
}

void put_be32(std::string& out, std::uint32_t value) {
  char bytes[4];
  for (int i = 3; i >= 0; --i) {
    bytes[i] = static_cast<char>(value & 0xff);
    value >>= 8;
  }
  out.append(bytes, 4);
}

void put_le64(std::string& out, std::uint64_t value) {
  char bytes[8];
  for (int i = 0; i < 8; ++i) {
    bytes[i] = static_cast<char>(value & 0xff);
    value >>= 8;
  }
  out.append(bytes, 8);
}

void put_le32(std::string& out, std::uint32_t value) {
  char bytes[4];
  for (int i = 0; i < 4; ++i) {
    bytes[i] = static_cast<char>(value & 0xff);
    value >>= 8;
  }
  out.append(bytes, 4);
}

void put_varint(std::string& out, std::uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

std::size_t store_varint(char* out, std::uint64_t value) {
  std::size_t n = 0;
  while (value >= 0x80) {
    out[n++] = static_cast<char>((value & 0x7f) | 0x80);
    value >>= 7;
  }
  out[n++] = static_cast<char>(value);
  return n;
}

std::uint64_t zigzag(std::int64_t value) {
  return (static_cast<std::uint64_t>(value) << 1) ^ static_cast<std::uint64_t>(value >> 63);
}

std::int64_t unzigzag(std::uint64_t value) {
  return static_cast<std::int64_t>(value >> 1) ^ -static_cast<std::int64_t>(value & 1);
}

void put_bytes(std::string& out, std::string_view bytes) {
  put_varint(out, bytes.size());
  out.append(bytes);
}

std::uint64_t get_be64(std::string_view in) {
  std::uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value = (value << 8) | static_cast<std::uint8_t>(in[i]);
  return value;
}

std::uint32_t get_be32(std::string_view in) {
  std::uint32_t value = 0;
  for (int i = 0; i < 4; ++i) value = (value << 8) | static_cast<std::uint8_t>(in[i]);
  return value;
}

bool Reader::u8(std::uint8_t& value) {
  if (in_.empty()) return false;
  value = static_cast<std::uint8_t>(in_[0]);
  in_.remove_prefix(1);
  return true;
}

bool Reader::le64(std::uint64_t& value) {
  if (in_.size() < 8) return false;
  value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<std::uint8_t>(in_[i]);
  in_.remove_prefix(8);
  return true;
}

bool Reader::le32(std::uint32_t& value) {
  if (in_.size() < 4) return false;
  value = 0;
  for (int i = 3; i >= 0; --i) value = (value << 8) | static_cast<std::uint8_t>(in_[i]);
  in_.remove_prefix(4);
  return true;
}

bool Reader::varint(std::uint64_t& value) {
  value = 0;
  for (int shift = 0; shift <= 63; shift += 7) {
    if (in_.empty()) return false;
    auto byte = static_cast<std::uint8_t>(in_[0]);
    in_.remove_prefix(1);
    value |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;  // more than 10 bytes: malformed
}

bool Reader::bytes(std::string_view& value) {
  std::uint64_t size = 0;
  if (!varint(size) || size > in_.size()) return false;
  value = in_.substr(0, size);
  in_.remove_prefix(size);
  return true;
}

// --- keys ----------------------------------------------------------------------------------

std::string log_key(Revision revision) {
  std::string key(1, kLogTag);
  put_be64(key, revision);
  return key;
}

void append_entity_key(std::string& out, char tag, std::string_view entity, Revision revision) {
  out.push_back(tag);
  out.append(entity);
  out.push_back('\0');
  put_be64(out, revision);
}

std::string entity_key(char tag, std::string_view entity, Revision revision) {
  std::string key;
  key.reserve(entity.size() + 10);
  append_entity_key(key, tag, entity, revision);
  return key;
}

std::string entity_prefix(char tag, std::string_view entity) {
  std::string key(1, tag);
  key.append(entity);
  key.push_back('\0');
  return key;
}

std::string input_key(std::string_view source) {
  std::string key(1, kInputTag);
  key.append(source);
  return key;
}

std::string outbox_key(Revision revision, std::uint32_t seq) {
  std::string key(1, kOutboxTag);
  put_be64(key, revision);
  put_be32(key, seq);
  return key;
}

void append_dedupe_key(std::string& out, std::string_view dedupe) {
  out.push_back(kDedupeTag);
  out.append(dedupe);
}

std::string dedupe_key(std::string_view dedupe) {
  std::string key;
  append_dedupe_key(key, dedupe);
  return key;
}

std::string dedupe_expiry_key(Revision revision, std::string_view dedupe) {
  std::string key(1, kDedupeExpiryTag);
  put_be64(key, revision);
  key.append(dedupe);
  return key;
}

void append_index_key(std::string& out, std::string_view index) {
  out.push_back(kIndexTag);
  out.append(index);
}

std::string index_key(std::string_view index) {
  std::string key;
  append_index_key(key, index);
  return key;
}

std::string index_prefix_end(std::string_view prefix) {
  std::string end = index_key(prefix);
  // Drop trailing 0xff bytes and increment the last other one; the tag is never 0xff, so
  // something is always left.
  while (static_cast<std::uint8_t>(end.back()) == 0xff) end.pop_back();
  end.back() = static_cast<char>(static_cast<std::uint8_t>(end.back()) + 1);
  return end;
}

std::optional<EntityKeyParts> parse_entity_key(std::string_view key) {
  // tag + at least "" entity + '\0' + 8 bytes
  if (key.size() < 1 + 1 + 8) return std::nullopt;
  if (key[key.size() - 9] != '\0') return std::nullopt;
  EntityKeyParts parts;
  parts.entity = key.substr(1, key.size() - 1 - 9);
  parts.revision = get_be64(key.substr(key.size() - 8));
  return parts;
}

std::optional<Revision> parse_log_key(std::string_view key) {
  if (key.size() != 9 || key[0] != kLogTag) return std::nullopt;
  return get_be64(key.substr(1));
}

std::optional<OutboxPosition> parse_outbox_key(std::string_view key) {
  if (key.size() != 13 || key[0] != kOutboxTag) return std::nullopt;
  return OutboxPosition{get_be64(key.substr(1)), get_be32(key.substr(9))};
}

// --- values --------------------------------------------------------------------------------

namespace {
constexpr std::uint8_t kHasInput = 1;
}

std::string encode_log_body(const CommitRequest& request) {
  std::size_t size = 16;
  for (const auto& event : request.events) size += event.entity_key.size() + event.payload.size() + 8;
  for (const auto& key : request.dedupe_keys) size += key.size() + 4;
  if (request.input) size += request.input->source.size() + 16;
  std::string out;
  out.reserve(size);
  out.push_back(static_cast<char>(request.input ? kHasInput : 0));
  if (request.input) {
    put_bytes(out, request.input->source);
    put_varint(out, zigzag(request.input->offset));
  }
  put_varint(out, request.events.size());
  for (const auto& event : request.events) {
    put_bytes(out, event.entity_key);
    put_bytes(out, event.payload);
  }
  put_varint(out, request.dedupe_keys.size());
  for (const auto& key : request.dedupe_keys) put_bytes(out, key);
  put_varint(out, request.outbox.size());
  return out;
}

std::size_t encode_log_header(char (&out)[kLogHeaderBytes], Revision revision, std::int64_t committed_at_ms) {
  out[0] = static_cast<char>(kLogRecordFormat);
  std::size_t n = 1 + store_varint(out + 1, revision);
  return n + store_varint(out + n, zigzag(committed_at_ms));
}

std::string encode_log_header(Revision revision, std::int64_t committed_at_ms) {
  char out[kLogHeaderBytes];
  return std::string(out, encode_log_header(out, revision, committed_at_ms));
}

std::optional<LogRecord> decode_log_record(std::string_view value) {
  Reader in(value);
  std::uint8_t format = 0;
  LogRecord record;
  std::uint64_t committed_at = 0;
  if (!in.u8(format) || format != kLogRecordFormat) return std::nullopt;
  if (!in.varint(record.revision) || !in.varint(committed_at)) return std::nullopt;
  record.committed_at_ms = unzigzag(committed_at);
  std::uint8_t flags = 0;
  if (!in.u8(flags) || (flags & ~kHasInput) != 0) return std::nullopt;
  if (flags & kHasInput) {
    std::string_view source;
    std::uint64_t offset = 0;
    if (!in.bytes(source) || !in.varint(offset)) return std::nullopt;
    record.input = InputPosition{std::string(source), unzigzag(offset)};
  }
  std::uint64_t count = 0;
  if (!in.varint(count) || count > value.size()) return std::nullopt;
  record.events.reserve(count);
  for (std::uint64_t i = 0; i < count; ++i) {
    std::string_view key, payload;
    if (!in.bytes(key) || !in.bytes(payload)) return std::nullopt;
    record.events.push_back(Event{std::string(key), std::string(payload)});
  }
  if (!in.varint(count) || count > value.size()) return std::nullopt;
  for (std::uint64_t i = 0; i < count; ++i) {
    std::string_view key;
    if (!in.bytes(key)) return std::nullopt;
    record.dedupe_keys.emplace_back(key);
  }
  if (!in.varint(count) || count > UINT32_MAX) return std::nullopt;
  record.outbox_count = static_cast<std::uint32_t>(count);
  if (!in.done()) return std::nullopt;
  return record;
}

std::string encode_outbox_message(const OutboxMessage& message) {
  std::string out;
  out.reserve(message.topic.size() + message.key.size() + message.payload.size() + 16);
  put_bytes(out, message.topic);
  put_bytes(out, message.key);
  put_bytes(out, message.payload);
  put_varint(out, message.headers.size());
  for (const auto& header : message.headers) {
    put_bytes(out, header.name);
    put_bytes(out, header.value);
  }
  return out;
}

std::optional<OutboxMessage> decode_outbox_message(std::string_view value) {
  Reader in(value);
  OutboxMessage message;
  std::string_view topic, key, payload;
  if (!in.bytes(topic) || !in.bytes(key) || !in.bytes(payload)) return std::nullopt;
  message.topic = topic;
  message.key = key;
  message.payload = payload;
  std::uint64_t count = 0;
  if (!in.varint(count) || count > value.size()) return std::nullopt;
  for (std::uint64_t i = 0; i < count; ++i) {
    std::string_view name, header_value;
    if (!in.bytes(name) || !in.bytes(header_value)) return std::nullopt;
    message.headers.push_back(OutboxHeader{std::string(name), std::string(header_value)});
  }
  if (!in.done()) return std::nullopt;
  return message;
}

std::string encode_input_value(std::int64_t offset, Revision revision) {
  std::string out;
  put_le64(out, static_cast<std::uint64_t>(offset));
  put_le64(out, revision);
  return out;
}

std::optional<InputValue> decode_input_value(std::string_view value) {
  Reader in(value);
  std::uint64_t offset = 0;
  InputValue out;
  if (!in.le64(offset) || !in.le64(out.revision) || !in.done()) return std::nullopt;
  out.offset = static_cast<std::int64_t>(offset);
  return out;
}

void append_revision(std::string& out, Revision revision) { put_le64(out, revision); }

std::string encode_revision(Revision revision) {
  std::string out;
  append_revision(out, revision);
  return out;
}

std::optional<Revision> decode_revision(std::string_view value) {
  Reader in(value);
  Revision revision = 0;
  if (!in.le64(revision) || !in.done()) return std::nullopt;
  return revision;
}

std::string encode_outbox_position(OutboxPosition position) {
  std::string out;
  put_le64(out, position.revision);
  put_le32(out, position.seq);
  return out;
}

std::optional<OutboxPosition> decode_outbox_position(std::string_view value) {
  Reader in(value);
  OutboxPosition position;
  if (!in.le64(position.revision) || !in.le32(position.seq) || !in.done()) return std::nullopt;
  return position;
}

}  // namespace ffe::storage::encoding
