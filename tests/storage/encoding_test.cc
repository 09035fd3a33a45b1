// The on-disk encoding: key order matches (entity, revision) order, and values round-trip.

#include <gtest/gtest.h>

#include "storage/encoding.h"

namespace ffe::storage {
namespace {

namespace enc = encoding;

TEST(JournalEncoding, EntityVersionsSortByEntityThenRevision) {
  // All versions of "a" sort together, in revision order, before "a/b" and "ab".
  std::vector<std::string> keys = {
      enc::entity_key(enc::kVersionTag, "a", 1),   enc::entity_key(enc::kVersionTag, "a", 256),
      enc::entity_key(enc::kVersionTag, "a", 1ull << 40), enc::entity_key(enc::kVersionTag, "a/b", 0),
      enc::entity_key(enc::kVersionTag, "ab", 0),
  };
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
  auto parts = enc::parse_entity_key(keys[2]);
  ASSERT_TRUE(parts);
  EXPECT_EQ(parts->entity, "a");
  EXPECT_EQ(parts->revision, 1ull << 40);
  EXPECT_LT(enc::log_key(255), enc::log_key(256));
  EXPECT_LT(enc::outbox_key(1, 0xffffffff), enc::outbox_key(2, 0));
  EXPECT_EQ(enc::parse_log_key(enc::log_key(77)), 77u);
}

TEST(JournalEncoding, IndexKeysSortByKeyAndTheirPrefixEndBoundsThem) {
  EXPECT_EQ(enc::index_key("open/1"), "nopen/1");
  EXPECT_LT(enc::index_key("a"), enc::index_key("a/b"));
  EXPECT_LT(enc::index_key("a/b"), enc::index_key("b"));
  // Every key under the prefix is below the end; the next key past the prefix is not.
  EXPECT_EQ(enc::index_prefix_end("a/"), "na0");
  EXPECT_LT(enc::index_key(std::string("a/\xff\xff", 4)), enc::index_prefix_end("a/"));
  EXPECT_GE(enc::index_key("a0"), enc::index_prefix_end("a/"));
  EXPECT_EQ(enc::index_prefix_end(std::string("a\xff", 2)), "nb");
  EXPECT_EQ(enc::index_prefix_end(""), "o");  // the whole index, nothing of the next tag
  EXPECT_EQ(enc::index_prefix_end(std::string("\xff\xff", 2)), "o");
}

TEST(JournalEncoding, LogRecordRoundTrips) {
  CommitRequest request;
  request.events = {Event{"order/o-1", std::string("\0\x01payload", 9)}, Event{"sku/s", ""}};
  request.input = InputPosition{"ff.orders.commands/3", 1234567890123};
  request.dedupe_keys = {"o-1:place"};
  request.outbox.resize(2);
  std::string value = enc::encode_log_header(42, 1700000000000) + enc::encode_log_body(request);
  auto record = enc::decode_log_record(value);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->revision, 42u);
  EXPECT_EQ(record->committed_at_ms, 1700000000000);
  ASSERT_EQ(record->events.size(), 2u);
  EXPECT_EQ(record->events[0].payload, request.events[0].payload);
  EXPECT_EQ(record->input, request.input);
  EXPECT_EQ(record->dedupe_keys, request.dedupe_keys);
  EXPECT_EQ(record->outbox_count, 2u);
  // Truncated or extended records are malformed, not misread.
  EXPECT_FALSE(enc::decode_log_record(value.substr(0, value.size() - 1)));
  EXPECT_FALSE(enc::decode_log_record(value + "x"));
  value[0] = 9;
  EXPECT_FALSE(enc::decode_log_record(value));
}

TEST(JournalEncoding, ExtremeNumbersRoundTrip) {
  for (std::int64_t number : {std::int64_t{0}, std::int64_t{-1}, INT64_MIN, INT64_MAX}) {
    CommitRequest request;
    request.input = InputPosition{"s", number};
    for (Revision revision : {Revision{0}, Revision{1}, UINT64_MAX}) {
      auto record = enc::decode_log_record(enc::encode_log_header(revision, number) + enc::encode_log_body(request));
      ASSERT_TRUE(record);
      EXPECT_EQ(record->revision, revision);
      EXPECT_EQ(record->committed_at_ms, number);
      EXPECT_EQ(record->input->offset, number);
    }
  }
}

TEST(JournalEncoding, OutboxMessageRoundTrips) {
  OutboxMessage message{"ff.payments.requests", "o-1", "{}", {{"content-type", "application/json"}}};
  auto decoded = enc::decode_outbox_message(enc::encode_outbox_message(message));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, message);
}

}  // namespace
}  // namespace ffe::storage
