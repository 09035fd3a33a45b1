#include "adapters/cdc/drift.h"

#include <filesystem>
#include <map>
#include <optional>
#include <unordered_map>

#include "actors/runtime/folder.h"
#include "adapters/cdc/pipeline.h"
#include "adapters/cdc/rows.h"
#include "adapters/log/redact.h"
#include "events/json_text.h"

namespace ffe::cdc {

using storage::Result;
using storage::Revision;
using storage::ShardId;
using storage::Status;
using storage::StatusCode;

namespace {

// Tables read while CDC moves them are read again this many times before giving up.
constexpr int kStableReadAttempts = 5;

void note(ShardDrift& drift, std::size_t max, std::string line) {
  if (drift.differences.size() < max) drift.differences.push_back(std::move(line));
}

Result<std::uint64_t> checkpoint_of(Sink& sink, ShardId shard) {
  auto checkpoints = sink.checkpoints();
  if (!checkpoints) return checkpoints.status();
  auto it = checkpoints->find(shard.value);
  return it == checkpoints->end() ? std::uint64_t{0} : it->second;
}

// One comparison at `at`, with the tables' rows already read.
Status compare_at(const storage::Journal& journal, ShardId shard, Revision at, const std::vector<OrderRow>& table_orders,
                  const std::vector<SkuRow>& table_skus, std::size_t max, ShardDrift& drift) {
  std::map<std::string, const OrderRow*> orders;
  for (const OrderRow& row : table_orders) orders[row.order_id] = &row;
  std::map<std::string, const SkuRow*> skus;
  for (const SkuRow& row : table_skus) skus[row.sku] = &row;
  std::unordered_map<Revision, std::optional<std::int64_t>> times;

  for (std::string_view prefix : {kOrderKeyPrefix, kSkuKeyPrefix}) {
    std::string after;
    while (true) {
      auto page = journal.range(shard, prefix, at, after);
      if (!page) return page.status();
      for (const storage::RangeEntry& entry : page->entries) {
        if (prefix == kOrderKeyPrefix) {
          auto time = times.find(entry.entity.mod_revision);
          if (time == times.end()) {
            auto looked_up = commit_time(journal, shard, entry.entity.mod_revision);
            if (!looked_up) return looked_up.status();
            time = times.emplace(entry.entity.mod_revision, *looked_up).first;
          }
          auto engine = order_row(shard.value, entry.entity_key, entry.entity, time->second.value_or(0));
          if (!engine) return engine.status();
          ++drift.orders;
          if (!time->second) ++drift.unchecked_updated_at;
          auto it = orders.find(engine->order_id);
          if (it == orders.end()) {
            ++drift.missing;
            note(drift, max, "orders " + engine->order_id + ": missing from the tables (revision " +
                                 std::to_string(engine->revision) + ")");
            continue;
          }
          const std::string difference = order_difference(*it->second, *engine, time->second.has_value());
          if (!difference.empty()) {
            ++drift.different;
            note(drift, max, "orders " + engine->order_id + ": " + difference);
          }
          orders.erase(it);
        } else {
          auto engine = sku_row(shard.value, entry.entity_key, entry.entity);
          if (!engine) return engine.status();
          ++drift.skus;
          auto it = skus.find(engine->sku);
          if (it == skus.end()) {
            ++drift.missing;
            note(drift, max, "sku_stock " + engine->sku + ": missing from the tables (revision " +
                                 std::to_string(engine->revision) + ")");
            continue;
          }
          const std::string difference = sku_difference(*it->second, *engine);
          if (!difference.empty()) {
            ++drift.different;
            note(drift, max, "sku_stock " + engine->sku + ": " + difference);
          }
          skus.erase(it);
        }
      }
      if (!page->more || page->entries.empty()) break;
      after = page->entries.back().entity_key;
    }
  }
  for (const auto& [id, row] : orders) {
    ++drift.extra;
    note(drift, max, "orders " + id + ": in the tables (revision " + std::to_string(row->revision) +
                         ") but not in the engine at revision " + std::to_string(at));
  }
  for (const auto& [sku, row] : skus) {
    ++drift.extra;
    note(drift, max, "sku_stock " + sku + ": in the tables (revision " + std::to_string(row->revision) +
                         ") but not in the engine at revision " + std::to_string(at));
  }
  return Status::ok();
}


}  // namespace

Result<ShardDrift> compare_shard(const storage::Journal& journal, Sink& sink, ShardId shard, std::size_t differences_max) {
  for (int attempt = 1;; ++attempt) {
    auto before = checkpoint_of(sink, shard);
    if (!before) return before.status();
    auto orders = sink.read_orders(shard.value);
    if (!orders) return orders.status();
    auto skus = sink.read_skus(shard.value);
    if (!skus) return skus.status();
    auto after = checkpoint_of(sink, shard);
    if (!after) return after.status();
    if (*before != *after) {
      if (attempt >= kStableReadAttempts) {
        return Status(StatusCode::kBusy, "shard " + std::to_string(shard.value) +
                                             ": the tables kept changing while they were read (" +
                                             std::to_string(kStableReadAttempts) + " attempts)");
      }
      continue;
    }
    auto head = journal.revision(shard);
    if (!head) return head.status();
    if (*after > *head) {
      return Status(StatusCode::kFutureRevision,
                    "shard " + std::to_string(shard.value) + ": the tables' checkpoint " + std::to_string(*after) +
                        " is past the journal's revision " + std::to_string(*head));
    }
    ShardDrift drift;
    drift.shard = shard.value;
    drift.checkpoint = *after;
    Status status = compare_at(journal, shard, *after, *orders, *skus, differences_max, drift);
    if (!status) {
      if (status.code() == StatusCode::kCompacted) {
        return Status(StatusCode::kCompacted, "shard " + std::to_string(shard.value) + ": the tables' checkpoint " +
                                                  std::to_string(*after) +
                                                  " was compacted away in the journal: nothing to compare with");
      }
      return status;
    }
    return drift;
  }
}

int run_drift(const DriftOptions& options) {
  auto fail = [&](const std::string& message) {
    std::fprintf(options.err, "ffe drift: %s\n", message.c_str());
    return 2;
  };
  // Journal::open would create a missing dir: a typo must not look like an empty engine.
  std::error_code ec;
  if (options.data_dir.empty() || !std::filesystem::is_directory(options.data_dir, ec) ||
      std::filesystem::is_empty(options.data_dir, ec)) {
    return fail("no ffe data dir at \"" + options.data_dir + "\"");
  }
  runtime::DomainFolder folder;
  storage::JournalOptions journal_options;
  journal_options.folder = &folder;
  journal_options.read_only = true;  // beside a running engine too (docs/journal.md)
  journal_options.snapshot_every_events = 0;
  journal_options.open_verification = storage::OpenVerification::kTail;
  auto journal = storage::Journal::open(options.data_dir, journal_options);
  if (!journal) return fail("opening the journal in " + options.data_dir + ": " + journal.status().to_string());
  const std::string url = options.analytics.empty() ? default_analytics_url(options.data_dir) : options.analytics;
  // open_sink would create a missing SQLite file (and its tables): drift only reads.
  if (url.starts_with("sqlite:") && !std::filesystem::exists(url.substr(7), ec)) {
    return fail("no analytics database at " + url.substr(7) + " (has `ffe serve` run CDC with --analytics " + url +
                "?)");
  }
  Migration migration;
  auto sink = open_sink(url, &migration, kSchemaVersion, SinkTables::kMustExist);
  if (!sink) return fail("opening " + log::redact_url(url) + ": " + sink.status().to_string());
  if (!migration.added_columns.empty()) {
    std::fprintf(options.err,
                 "ffe drift: note: opening %s migrated its tables from schema version %d to %d; the new columns "
                 "are filled by `ffe serve` at its next start\n",
                 (*sink)->describe().c_str(), migration.from_version, migration.to_version);
  }
  auto checkpoints = (*sink)->checkpoints();
  if (!checkpoints) return fail("reading the checkpoints of " + (*sink)->describe() + ": " + checkpoints.status().to_string());
  bool drifted = false;
  for (ShardId shard : (*journal)->shards()) {
    // Every shard has a checkpoint row from the moment CDC starts: none means these tables
    // were never fed from this journal, and an empty comparison would prove nothing.
    if (!checkpoints->contains(shard.value)) {
      return fail("shard " + std::to_string(shard.value) + " has no checkpoint in " + (*sink)->describe() +
                  ": CDC never ran from this data dir into these tables");
    }
    // The journal is opened first and the tables read after, so beside a running engine the
    // tables may be ahead of this read-only view: catch up with the engine and compare again.
    auto result = compare_shard(**journal, **sink, shard, options.differences_max);
    for (int attempt = 0; attempt < 3 && !result && result.status().code() == StatusCode::kFutureRevision; ++attempt) {
      if (!(*journal)->refresh()) break;
      result = compare_shard(**journal, **sink, shard, options.differences_max);
    }
    if (!result) return fail(result.status().to_string());
    const ShardDrift& drift = *result;
    std::string line = "{\"shard\":" + std::to_string(drift.shard) + ",\"checkpoint\":" +
                       std::to_string(drift.checkpoint) + ",\"orders\":" + std::to_string(drift.orders) +
                       ",\"skus\":" + std::to_string(drift.skus) + ",\"drift\":" + std::to_string(drift.drift());
    if (drift.drift() > 0) {
      line += ",\"missing\":" + std::to_string(drift.missing) + ",\"extra\":" + std::to_string(drift.extra) +
              ",\"different\":" + std::to_string(drift.different);
    }
    if (drift.unchecked_updated_at > 0) {
      line += ",\"uncheckedUpdatedAt\":" + std::to_string(drift.unchecked_updated_at);
    }
    line += ",\"analytics\":" + events::json::quoted((*sink)->describe()) + "}";
    std::fprintf(options.out, "%s\n", line.c_str());
    for (const std::string& difference : drift.differences) {
      std::fprintf(options.err, "ffe drift: shard %u at revision %llu: %s\n", drift.shard,
                   static_cast<unsigned long long>(drift.checkpoint), difference.c_str());
    }
    if (drift.drift() > 0) drifted = true;
  }
  std::fflush(options.out);
  return drifted ? 1 : 0;
}

}  // namespace ffe::cdc
