#include "adapters/replay/restore.h"

#include <librdkafka/rdkafkacpp.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <set>
#include <string_view>
#include <system_error>
#include <thread>

#include "actors/order/order.h"
#include "actors/runtime/folder.h"
#include "actors/runtime/runtime.h"
#include "adapters/kafka/events_publisher.h"
#include "adapters/kafka/ingress.h"
#include "events/assert.h"
#include "events/upcast.h"
#include "ffe/v1/journal.pb.h"
#include "storage/journal.h"

namespace ffe::replay {

using storage::Result;
using storage::Revision;
using storage::ShardId;
using storage::Status;
using storage::StatusCode;

namespace {

// How long restore waits for the broker before it gives up: for the topic's metadata and
// end offsets, and for the next record while some partition has not reached its end.
constexpr int kMetadataTimeoutMs = 10'000;
constexpr auto kStallTimeout = std::chrono::seconds(30);
constexpr int kConsumeWaitMs = 200;
// How long restore goes on reading past the first cut for the revisions that cut split off
// (see consume()), and how often it reads the end offsets again meanwhile.
constexpr auto kCutCompletion = std::chrono::seconds(5);
constexpr auto kCutRecheck = std::chrono::milliseconds(200);
// Commits in flight while the new journal is written (each a future): bounds memory while
// letting group commit batch them.
constexpr std::size_t kCommitWindow = 1024;
// The index key of an open order (actors/runtime/runtime.cc kOpenPrefix).
constexpr std::string_view kOpenPrefix = "open/";
constexpr std::string_view kOrderPrefix = "order/";
constexpr std::string_view kSkuPrefix = "sku/";

Status io_error(std::string message) { return Status(StatusCode::kIoError, std::move(message)); }
Status corruption(std::string message) { return Status(StatusCode::kCorruption, std::move(message)); }

// Logs nothing itself; remembers the last error librdkafka reported so a stall can say why.
class ErrorEvents final : public RdKafka::EventCb {
 public:
  void event_cb(RdKafka::Event& event) override {
    if (event.type() != RdKafka::Event::EVENT_ERROR) return;
    std::lock_guard lock(mu_);
    last_ = RdKafka::err2str(event.err()) + (event.str().empty() ? "" : ": " + event.str());
  }
  std::string last() {
    std::lock_guard lock(mu_);
    return last_;
  }

 private:
  std::mutex mu_;
  std::string last_;
};

// One event as read: where it sits in its revision and the payload for the journal.
struct ReadEvent {
  std::string entity_key;
  std::string payload;  // the serialized SkuEvent / OrderEvent, current schema
  bool is_order = false;
};

// One revision, checked and in order, ready to commit.
struct RestoredRevision {
  std::vector<ReadEvent> events;
  std::optional<storage::InputPosition> input;
  std::int64_t committed_at_ms = 0;  // as the lost journal recorded it (0: unknown)
};

// One revision of one shard as read from the topic.
struct RevisionRead {
  // Records with event_index/revision_events (published by this ffe): by index.
  std::map<std::uint32_t, ReadEvent> indexed;
  std::uint32_t expected = 0;  // revision_events; 0: only records published before that field
  // Records published before event_index existed: per entity key, the events of the first
  // run of that key seen (later runs are the publisher's repeats).
  std::vector<std::string> legacy_keys;  // in first-seen order
  std::map<std::string, std::vector<ReadEvent>> legacy;
  std::set<std::string> legacy_closed;   // keys whose first run ended
  std::optional<storage::InputPosition> input;
  std::int64_t committed_at_ms = 0;
};

// Where a partition's current legacy run is: the (shard, revision, key) of the last record.
struct LegacyRun {
  std::int32_t shard = -1;
  std::int64_t revision = -1;
  std::string key;
  bool repeat = false;  // this run repeats a run already taken
};

struct Collected {
  std::map<std::uint32_t, std::map<Revision, RevisionRead>> shards;
  std::uint32_t shard_count_recorded = 0;
  std::uint64_t events = 0;
  std::uint64_t duplicates = 0;
};

// The highest R such that revisions 1..R are all on the topic with all their events (records
// from before event_index/revision_events count as whole: their count is unknown).
Revision whole_through(const std::map<Revision, RevisionRead>& revisions) {
  Revision whole = 0;
  for (const auto& [revision, read] : revisions) {
    if (revision != whole + 1) break;
    if (read.expected > 0 && read.indexed.size() != read.expected) break;
    whole = revision;
  }
  return whole;
}

std::string where(const RdKafka::Message& message) {
  return message.topic_name() + "/" + std::to_string(message.partition()) + "@" + std::to_string(message.offset());
}

// Adds one record to `out`; an error names the record.
Status collect(const RdKafka::Message& message, std::map<std::int32_t, LegacyRun>& runs, Collected& out) {
  v1::JournalEvent event;
  if (!event.ParseFromArray(message.payload(), static_cast<int>(message.len()))) {
    return corruption(where(message) + ": not a JournalEvent");
  }
  if (event.shard() < 0 || static_cast<std::uint32_t>(event.shard()) >= storage::limits::shards_max ||
      event.revision() < 1) {
    return corruption(where(message) + ": shard " + std::to_string(event.shard()) + " revision " +
                      std::to_string(event.revision()) + " is out of range");
  }
  if (const events::UpcastResult upcast = events::upcast(event); !upcast.ok()) {
    return corruption(where(message) + ": " + upcast.reason);
  }
  ReadEvent read;
  read.entity_key = event.entity_key();
  if (event.has_order() && read.entity_key.starts_with(kOrderPrefix)) {
    read.payload = event.order().SerializeAsString();
    read.is_order = true;
  } else if (event.has_sku() && read.entity_key.starts_with(kSkuPrefix)) {
    read.payload = event.sku().SerializeAsString();
  } else {
    return corruption(where(message) + ": entity key \"" + read.entity_key + "\" does not match its event");
  }
  out.shard_count_recorded = std::max(out.shard_count_recorded, event.shard_count());
  RevisionRead& revision = out.shards[static_cast<std::uint32_t>(event.shard())][static_cast<Revision>(event.revision())];
  if (!event.input_source().empty() && !revision.input) {
    revision.input = storage::InputPosition{event.input_source(), event.input_offset()};
  }
  if (event.committed_at_ms() > 0) revision.committed_at_ms = event.committed_at_ms();

  if (event.revision_events() > 0) {
    if (event.event_index() >= event.revision_events() ||
        (revision.expected != 0 && revision.expected != event.revision_events())) {
      return corruption(where(message) + ": event " + std::to_string(event.event_index()) + " of " +
                        std::to_string(event.revision_events()) + " does not fit shard " +
                        std::to_string(event.shard()) + " revision " + std::to_string(event.revision()));
    }
    revision.expected = event.revision_events();
    auto [it, inserted] = revision.indexed.emplace(event.event_index(), std::move(read));
    if (!inserted) {
      if (it->second.entity_key != event.entity_key()) {
        return corruption(where(message) + ": shard " + std::to_string(event.shard()) + " revision " +
                          std::to_string(event.revision()) + " event " + std::to_string(event.event_index()) +
                          " was published twice with different entity keys");
      }
      ++out.duplicates;
      return Status::ok();
    }
    ++out.events;
    return Status::ok();
  }

  // Published before event_index existed. The publisher writes a revision's events for one
  // key back to back, and one key always lands in one partition, so they form a run there;
  // a run of a (shard, revision, key) already taken is a repeat (at-least-once).
  LegacyRun& run = runs[message.partition()];
  const bool same_run = run.shard == event.shard() && run.revision == event.revision() && run.key == read.entity_key;
  std::vector<ReadEvent>& taken = revision.legacy[read.entity_key];
  const bool restarts = same_run && !run.repeat && !taken.empty() && taken.front().payload == read.payload;
  if (!same_run || restarts) {
    if (run.shard >= 0 && !run.repeat) {
      // The previous run of this partition is complete.
      out.shards[static_cast<std::uint32_t>(run.shard)][static_cast<Revision>(run.revision)].legacy_closed.insert(run.key);
    }
    run = LegacyRun{event.shard(), event.revision(), read.entity_key, revision.legacy_closed.contains(read.entity_key) || restarts};
    if (taken.empty()) revision.legacy_keys.push_back(read.entity_key);
  }
  if (run.repeat) {
    ++out.duplicates;
    return Status::ok();
  }
  taken.push_back(std::move(read));
  ++out.events;
  return Status::ok();
}

// Reads every partition of the topic from its start to the end offsets seen at the start.
// A shard's revisions spread over the partitions (by entity key) and the end offsets are
// read one partition at a time, so on a live topic that cut can hold a revision of a shard
// while an earlier one is still on its way to another partition. Then the end offsets are
// read again and reading goes on (for up to kCutCompletion) until every shard is whole up to
// the highest revision read by the time the cut was reached (records the consumer fetched
// ahead, past the cut, included): `first_cut` gets that revision per shard.
Status consume(const RestoreOptions& options, Collected& out, std::map<std::uint32_t, Revision>& first_cut) {
  std::string error;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  ErrorEvents events;
  const std::pair<std::string, std::string> settings[] = {
      {"bootstrap.servers", options.brokers},
      {"client.id", "ffe-restore"},
      // assign() only: no group is joined and no offset committed; librdkafka wants an id.
      {"group.id", "ffe-restore"},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"enable.partition.eof", "false"},
      {"auto.offset.reset", "earliest"},
  };
  for (const auto& [name, value] : settings) {
    if (conf->set(name, value, error) != RdKafka::Conf::CONF_OK) return Status(StatusCode::kInvalidArgument, error);
  }
  if (conf->set("event_cb", static_cast<RdKafka::EventCb*>(&events), error) != RdKafka::Conf::CONF_OK) {
    return Status(StatusCode::kInvalidArgument, error);
  }
  for (const auto& [name, value] : options.kafka_properties) {
    if (conf->set(name, value, error) != RdKafka::Conf::CONF_OK) {
      return Status(StatusCode::kInvalidArgument, name + ": " + error);
    }
  }
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(RdKafka::KafkaConsumer::create(conf.get(), error));
  if (!consumer) return io_error("cannot create the Kafka consumer: " + error);

  std::unique_ptr<RdKafka::Topic> topic(RdKafka::Topic::create(consumer.get(), options.topic, nullptr, error));
  if (!topic) return io_error("topic " + options.topic + ": " + error);
  RdKafka::Metadata* raw = nullptr;
  if (RdKafka::ErrorCode err = consumer->metadata(false, topic.get(), &raw, kMetadataTimeoutMs);
      err != RdKafka::ERR_NO_ERROR) {
    return io_error("reading the metadata of " + options.topic + " from " + options.brokers + ": " +
                    RdKafka::err2str(err));
  }
  std::unique_ptr<RdKafka::Metadata> metadata(raw);
  std::vector<std::int32_t> partitions;
  for (const RdKafka::TopicMetadata* t : *metadata->topics()) {
    if (t->topic() != options.topic) continue;
    if (t->err() != RdKafka::ERR_NO_ERROR) {
      return Status(StatusCode::kInvalidArgument, "topic " + options.topic + ": " + RdKafka::err2str(t->err()));
    }
    for (const RdKafka::PartitionMetadata* p : *t->partitions()) partitions.push_back(p->id());
  }
  if (partitions.empty()) return Status(StatusCode::kInvalidArgument, "topic " + options.topic + " has no partitions");
  std::sort(partitions.begin(), partitions.end());

  // The end offsets now: what restore reads. Records published later are not part of it,
  // but for the revisions the cut split off (above).
  std::map<std::int32_t, std::int64_t> end;
  std::map<std::int32_t, std::int64_t> cut;  // per partition, the end offset read up to
  std::vector<RdKafka::TopicPartition*> assignment;
  std::uint64_t total = 0;
  for (std::int32_t partition : partitions) {
    std::int64_t low = 0, high = 0;
    if (RdKafka::ErrorCode err =
            consumer->query_watermark_offsets(options.topic, partition, &low, &high, kMetadataTimeoutMs);
        err != RdKafka::ERR_NO_ERROR) {
      for (auto* tp : assignment) delete tp;
      return io_error("the offsets of " + options.topic + "/" + std::to_string(partition) + ": " + RdKafka::err2str(err));
    }
    cut[partition] = high;
    // Every partition, empty ones too: reading past the cut may find records there.
    assignment.push_back(RdKafka::TopicPartition::create(options.topic, partition, low));
    if (high <= low) continue;
    end[partition] = high;
    total += static_cast<std::uint64_t>(high - low);
  }
  if (options.after_end_offsets) options.after_end_offsets();
  const RdKafka::ErrorCode assigned = assignment.empty() ? RdKafka::ERR_NO_ERROR : consumer->assign(assignment);
  for (auto* tp : assignment) delete tp;
  if (assigned != RdKafka::ERR_NO_ERROR) return io_error("assigning " + options.topic + ": " + RdKafka::err2str(assigned));

  std::map<std::int32_t, LegacyRun> runs;
  std::uint64_t read = 0;
  auto last_progress = std::chrono::steady_clock::now();
  std::optional<std::chrono::steady_clock::time_point> completing_until;
  while (true) {
    while (!end.empty()) {
      std::unique_ptr<RdKafka::Message> message(consumer->consume(kConsumeWaitMs));
      if (message->err() == RdKafka::ERR__TIMED_OUT || message->err() == RdKafka::ERR__PARTITION_EOF) {
        // A partition whose last offsets hold no record for us (transaction markers, records
        // compacted away) never delivers its end offset - 1: its position tells it is done.
        std::vector<RdKafka::TopicPartition*> positions;
        for (const auto& [partition, high] : end) {
          positions.push_back(RdKafka::TopicPartition::create(options.topic, partition));
        }
        if (consumer->position(positions) == RdKafka::ERR_NO_ERROR) {
          for (const RdKafka::TopicPartition* tp : positions) {
            auto it = end.find(tp->partition());
            if (it != end.end() && tp->offset() >= it->second) end.erase(it);
          }
        }
        for (auto* tp : positions) delete tp;
        if (end.empty()) break;
        if (std::chrono::steady_clock::now() - last_progress > kStallTimeout) {
          std::string missing;
          for (const auto& [partition, high] : end) missing += " " + std::to_string(partition);
          consumer->close();
          return io_error("no record from " + options.topic + " for " + std::to_string(kStallTimeout.count()) +
                          " s while partitions" + missing + " had not reached their end" +
                          (events.last().empty() ? "" : " (last error: " + events.last() + ")"));
        }
        continue;
      }
      if (message->err() != RdKafka::ERR_NO_ERROR) {
        const std::string why = message->errstr();
        consumer->close();
        return io_error("reading " + options.topic + ": " + why);
      }
      last_progress = std::chrono::steady_clock::now();
      // A record past the cut is kept too (the consumer fetches ahead, and it may be one the
      // cut split off); the checks after reading take what is past the cut as far as it is whole.
      if (Status status = collect(*message, runs, out); !status) {
        consumer->close();
        return status;
      }
      ++read;
      if (options.progress && read % 1000 == 0) options.progress(read, total);
      auto it = end.find(message->partition());
      if (it != end.end() && message->offset() + 1 >= it->second) end.erase(it);
    }
    // At a cut. The first one sets what every shard must be whole up to.
    if (!completing_until) {
      for (const auto& [shard, revisions] : out.shards) first_cut[shard] = revisions.empty() ? 0 : revisions.rbegin()->first;
      completing_until = std::chrono::steady_clock::now() + kCutCompletion;
      if (options.at_first_cut) options.at_first_cut();
    }
    bool whole = true;
    for (const auto& [shard, highest] : first_cut) whole = whole && whole_through(out.shards[shard]) >= highest;
    if (whole || std::chrono::steady_clock::now() >= *completing_until) break;
    std::this_thread::sleep_for(kCutRecheck);
    for (auto& [partition, offset] : cut) {
      std::int64_t low = 0, high = 0;
      if (consumer->query_watermark_offsets(options.topic, partition, &low, &high, kMetadataTimeoutMs) !=
              RdKafka::ERR_NO_ERROR ||
          high <= offset) {
        continue;
      }
      total += static_cast<std::uint64_t>(high - offset);
      end[partition] = high;
      offset = high;
    }
    last_progress = std::chrono::steady_clock::now();
  }
  consumer->close();
  if (options.progress) options.progress(read, total);
  return Status::ok();
}

// The revision's events in order, or an error naming what is missing.
Result<std::vector<ReadEvent>> revision_events(std::uint32_t shard, Revision revision, RevisionRead& read) {
  std::vector<ReadEvent> events;
  if (read.expected > 0) {
    if (read.indexed.size() != read.expected) {
      return corruption("shard " + std::to_string(shard) + " revision " + std::to_string(revision) + ": " +
                        std::to_string(read.indexed.size()) + " of its " + std::to_string(read.expected) +
                        " events are on the topic");
    }
    for (auto& [index, event] : read.indexed) events.push_back(std::move(event));
  }
  // Legacy records (none when the revision was published with indexes, unless both kinds
  // were mixed, which the publisher never does for one revision).
  for (const std::string& key : read.legacy_keys) {
    for (ReadEvent& event : read.legacy[key]) events.push_back(std::move(event));
  }
  return events;
}

// "<topic>/<partition>" -> partition, nullopt when the source is not of that form.
std::optional<std::int32_t> partition_of(std::string_view source) {
  const auto slash = source.rfind('/');
  if (slash == std::string_view::npos) return std::nullopt;
  std::int32_t partition = 0;
  const char* begin = source.data() + slash + 1;
  const char* finish = source.data() + source.size();
  auto [ptr, ec] = std::from_chars(begin, finish, partition);
  if (ec != std::errc() || ptr != finish || partition < 0) return std::nullopt;
  return partition;
}

// Waits for the oldest commits until at most `keep` are in flight; the first failure wins.
Status drain(std::vector<std::pair<Revision, std::future<storage::CommitResult>>>& pending, std::size_t keep,
             std::uint32_t shard) {
  std::size_t done = 0;
  Status first = Status::ok();
  while (pending.size() - done > keep) {
    auto& [expected, future] = pending[done++];
    const storage::CommitResult result = future.get();
    if (!result.status && first) first = result.status;
    if (result.status && result.revision != expected && first) {
      first = corruption("shard " + std::to_string(shard) + ": revision " + std::to_string(expected) +
                         " committed as " + std::to_string(result.revision));
    }
  }
  pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(done));
  return first;
}

// restore_from_kafka without the word on an unfinished dir it may leave.
Result<RestoreResult> restore_into(const RestoreOptions& options) {
  if (options.brokers.empty()) return Status(StatusCode::kInvalidArgument, "no brokers to restore from");
  if (options.topic.empty()) return Status(StatusCode::kInvalidArgument, "no topic to restore from");
  if (options.data_dir.empty()) return Status(StatusCode::kInvalidArgument, "no data dir to restore into");
  {
    std::error_code ec;
    if (std::filesystem::exists(options.data_dir, ec) && !std::filesystem::is_empty(options.data_dir, ec)) {
      return Status(StatusCode::kInvalidArgument,
                    "data dir " + options.data_dir + " is not empty: restore writes only into a new (or empty) dir");
    }
  }

  Collected collected;
  std::map<std::uint32_t, Revision> first_cut;
  if (Status status = consume(options, collected, first_cut); !status) return status;
  if (collected.shards.empty()) {
    return Status(StatusCode::kInvalidArgument, "topic " + options.topic + " holds no events: nothing to restore");
  }

  // The shard count: recorded by the publisher (fields since schema 2), else the highest shard
  // seen + 1; either way every entity must live in the shard runtime::shard_of gives it
  // under that count, or the restored engine would look for it elsewhere.
  const std::uint32_t highest = collected.shards.rbegin()->first;
  std::uint32_t shards = collected.shard_count_recorded;
  if (shards == 0) shards = highest + 1;
  if (highest >= shards) {
    return corruption("topic " + options.topic + " has events of shard " + std::to_string(highest) +
                      " but says the deployment had " + std::to_string(shards) + " shards");
  }

  // Check everything before writing anything: contiguous revisions from 1, complete
  // revisions, every entity in its shard. What comes after the first cut (read only to make
  // the shards whole up to it) is taken as far as it is whole.
  std::map<std::uint32_t, std::map<Revision, RestoredRevision>> ordered;
  for (auto& [shard, revisions] : collected.shards) {
    const Revision whole = whole_through(revisions);
    if (whole < first_cut[shard]) {
      // A later revision is there (the first cut held one above `whole`).
      const auto next = revisions.upper_bound(whole);
      const bool absent = next->first != whole + 1;
      return corruption("shard " + std::to_string(shard) + ": revision " + std::to_string(whole + 1) +
                        (absent ? " is missing from " + options.topic + " (the next one there is " +
                                      std::to_string(next->first) + ")"
                                : " has only some of its events on " + options.topic) +
                        " while later ones are there: records were lost (retention or compaction), or the "
                        "engine stopped while publishing them (started again, it publishes them); the shard "
                        "cannot be restored");
    }
    revisions.erase(revisions.upper_bound(whole), revisions.end());
    Revision expected = 1;
    for (auto& [revision, read] : revisions) {
      FFE_ASSERT(revision == expected, "whole_through() left a gap");
      ++expected;
      auto events = revision_events(shard, revision, read);
      if (!events) return events.status();
      for (const ReadEvent& event : *events) {
        const std::string_view id = std::string_view(event.entity_key).substr(event.is_order ? kOrderPrefix.size()
                                                                                              : kSkuPrefix.size());
        if (runtime::shard_of(id, shards).value != shard) {
          return corruption("shard " + std::to_string(shard) + " revision " + std::to_string(revision) + ": " +
                            event.entity_key + " belongs to shard " + std::to_string(runtime::shard_of(id, shards).value) +
                            " of " + std::to_string(shards) + " (the shard count is wrong or the topic is not ffe's)");
        }
      }
      ordered[shard][revision] = RestoredRevision{std::move(*events), read.input, read.committed_at_ms};
    }
  }
  collected.shards.clear();

  runtime::DomainFolder folder;
  storage::JournalOptions journal_options;
  for (std::uint32_t i = 0; i < shards; ++i) journal_options.shards.push_back(ShardId{i});
  journal_options.folder = &folder;
  journal_options.restoring = true;  // FFE_RESTORING until the end: a restore cut short is refused
  auto opened = storage::Journal::open(options.data_dir, journal_options);
  if (!opened) return opened.status();
  storage::Journal& journal = **opened;

  RestoreResult result;
  result.duplicates_skipped = collected.duplicates;
  // Per input partition ("<topic>/<partition>"), the highest offset a restored command consumed.
  std::map<std::string, std::int64_t> last_input;
  for (auto& [shard, revisions] : ordered) {
    std::map<std::string, order::State> orders;
    std::set<std::string> indexed;
    std::vector<std::pair<Revision, std::future<storage::CommitResult>>> pending;
    std::uint64_t events = 0;
    for (auto& [revision, restored] : revisions) {
      storage::CommitRequest request;
      request.shard = ShardId{shard};
      // The command's own input position and commit time, as the lost journal recorded them.
      request.input = restored.input;
      if (restored.committed_at_ms > 0) request.committed_at_ms = restored.committed_at_ms;
      if (restored.input) {
        auto [it, inserted] = last_input.emplace(restored.input->source, restored.input->offset);
        if (!inserted) it->second = std::max(it->second, restored.input->offset);
      }
      std::set<std::string> touched;
      for (ReadEvent& event : restored.events) {
        if (event.is_order) {
          v1::OrderEvent decoded;
          decoded.ParseFromString(event.payload);  // serialized by collect(): cannot fail
          const std::string id = event.entity_key.substr(kOrderPrefix.size());
          order::State& state = orders[id];
          // evolve() asserts on an impossible history; refuse it as corrupt instead.
          const bool creation = decoded.has_placed() || decoded.has_rejected();
          if (state.terminal() || state.exists() == creation) {
            return corruption("shard " + std::to_string(shard) + " revision " + std::to_string(revision) + ": an event of " +
                              event.entity_key + " that cannot follow its history");
          }
          order::evolve(state, decoded);
          touched.insert(id);
        }
        request.events.push_back({std::move(event.entity_key), std::move(event.payload)});
        ++events;
      }
      // The runtime's index: "open/<orderId>" -> the order's deadline while it is open
      // (actors/runtime/runtime.cc), so the restored engine resumes the open orders.
      for (const std::string& id : touched) {
        const order::State& state = orders[id];
        const bool open = state.exists() && !state.terminal();
        if (open && !indexed.contains(id)) {
          request.index_put.push_back({std::string(kOpenPrefix) + id, std::to_string(state.deadline_at_ms)});
          indexed.insert(id);
        } else if (!open && indexed.erase(id) > 0) {
          request.index_delete.push_back(std::string(kOpenPrefix) + id);
        }
      }
      pending.emplace_back(revision, journal.commit(std::move(request)));
      if (pending.size() >= kCommitWindow) {
        if (Status status = drain(pending, kCommitWindow / 2, shard); !status) return status;
      }
    }
    if (Status status = drain(pending, 0, shard); !status) return status;
    result.revisions[shard] = revisions.empty() ? 0 : revisions.rbegin()->first;
    result.events[shard] = events;
  }

  // No-op commits (no new revision) for what the runtime's neighbours keep in the journal:
  //  - the ff.events publisher's cursor at the restored revision, so the restored engine does
  //    not publish the whole history again (kafka::kEventsCursorKey);
  //  - the ingress's resume position of every input partition a restored command consumed:
  //    the offset after the highest one, recorded where the ingress looks for it
  //    (Ingress::watermark_source in shard partition % shards), so the restored engine
  //    resumes consuming after the last command whose effects it has, instead of applying
  //    the input topics again from their beginning (docs/replay.md says what that leaves out).
  std::vector<std::future<storage::CommitResult>> tail;
  for (const auto& [shard, revision] : result.revisions) {
    storage::CommitRequest request;
    request.shard = ShardId{shard};
    request.index_put.push_back({std::string(kafka::kEventsCursorKey), std::to_string(revision)});
    tail.push_back(journal.commit(std::move(request)));
  }
  for (const auto& [source, offset] : last_input) {
    const std::optional<std::int32_t> partition = partition_of(source);
    if (!partition) continue;  // not a Kafka input position: nothing to resume
    const std::string topic = source.substr(0, source.rfind('/'));
    storage::CommitRequest request;
    request.shard = ShardId{static_cast<std::uint32_t>(*partition) % shards};
    request.input = storage::InputPosition{kafka::Ingress::watermark_source(topic, *partition), offset + 1};
    tail.push_back(journal.commit(std::move(request)));
  }
  for (auto& future : tail) {
    const storage::CommitResult done = future.get();
    if (!done.status) return done.status;
  }
  // Every commit above was synced before its future was ready: the restore is whole.
  if (Status status = storage::Journal::finish_restore(options.data_dir); !status) return status;
  return result;
}

}  // namespace

Result<RestoreResult> restore_from_kafka(const RestoreOptions& options) {
  auto restored = restore_into(options);
  // A failure that leaves (or found) the target marked unfinished says what to do with it:
  // every open refuses it, a new restore too (not empty).
  if (!restored && !options.data_dir.empty() && storage::Journal::restore_unfinished(options.data_dir)) {
    return Status(restored.status().code(),
                  restored.status().message() + "; " + options.data_dir +
                      " holds a restore that did not finish, and every open refuses it: remove it before restoring again");
  }
  return restored;
}

}  // namespace ffe::replay
