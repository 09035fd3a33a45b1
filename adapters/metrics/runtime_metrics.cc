#include "adapters/metrics/runtime_metrics.h"

#include <string>

#include "storage/journal.h"

namespace ffe::metrics {

namespace {

void collect(const runtime::Runtime& runtime, Scrape& scrape) {
  const runtime::Stats stats = runtime.stats();
  auto counter = [&](const char* name, const char* help, std::uint64_t value) {
    scrape.counter(name, help, {}, static_cast<double>(value));
  };
  auto gauge = [&](const char* name, const char* help, std::uint64_t value) {
    scrape.gauge(name, help, {}, static_cast<double>(value));
  };

  gauge("ffe_actors_live", "Entity actors (SKUs and orders) alive now, all shards", stats.live_entities);
  counter("ffe_actors_spawned_total", "Entity actors started (first use or restore)", stats.spawned);
  counter("ffe_actors_restored_total", "Entity actors started for an entity that existed in the journal",
          stats.restored);
  counter("ffe_actors_passivated_total", "Entity actors stopped for idleness or the live-actor cap",
          stats.passivated);
  counter("ffe_actor_failures_total", "Entity actors that failed and were restarted from the journal",
          stats.actor_failures);
  counter("ffe_commands_total", "Commands decided by entity actors (submitted and internal)", stats.commands);
  counter("ffe_commands_rejected_total", "Commands decided and refused by the deciders", stats.rejected);
  gauge("ffe_commands_in_flight", "Submitted commands not yet acknowledged", stats.in_flight);
  counter("ffe_submit_waits_total", "Submits that waited for credit (backpressure)", stats.submit_waits);
  counter("ffe_late_replies_total", "Replies an order refused (unexpected or after terminal)", stats.late_replies);
  counter("ffe_redelivered_commands_total",
          "Inventory commands delivered again after a restart, recognised by their input position and not applied again",
          stats.redelivered);
  counter("ffe_unexpected_releases_total", "Releases sent for reservations an order no longer holds",
          stats.unexpected_releases);
  counter("ffe_deadlines_expired_total", "Saga step deadlines that fired", stats.expired);
  counter("ffe_saga_retries_total", "Outstanding saga requests sent again", stats.retries);
  counter("ffe_timers_armed_total", "Saga step deadline and retry timers armed", stats.timers_armed);
  counter("ffe_timers_fired_total", "Saga timers delivered to their order when due", stats.timers_fired);
  counter("ffe_timers_dropped_total",
          "Saga timers dropped when due without waking their order (superseded, or the order ended)",
          stats.timers_dropped);
  gauge("ffe_open_orders", "Open orders (placed, not yet terminal), all shards",
        stats.open_orders);
  counter("ffe_placements_deferred_total",
          "PlaceOrders the ingress held back because max open orders were open (retried, never dropped)",
          stats.placements_refused);
  gauge("ffe_open_orders_recovered", "Open orders restored from the journal's index when the runtime opened",
        stats.open_orders_recovered);

  const storage::Journal& journal = runtime.journal();
  gauge("ffe_journal_up", "1 while the journal accepts commits, 0 once it fail-stopped",
        journal.status().is_ok() ? 1 : 0);
  const storage::JournalStats js = journal.stats();
  counter("ffe_journal_commands_total", "Durable commands (with or without events)", js.commands);
  counter("ffe_journal_noop_commands_total", "Durable commands without events (duplicates, no-ops)",
          js.noop_commands);
  counter("ffe_journal_batches_total", "Synced writes (group commits)", js.batches);
  counter("ffe_journal_written_bytes_total", "Bytes handed to RocksDB in synced writes", js.batch_bytes);
  counter("ffe_journal_snapshots_made_total", "Snapshots the journal folded (including read repair)",
          js.snapshots_made);
  counter("ffe_journal_snapshot_written_bytes_total", "State bytes of the snapshots the journal folded",
          js.snapshot_bytes_made);
  counter("ffe_journal_snapshots_given_total", "Snapshots supplied with commits", js.snapshots_given);
  gauge("ffe_journal_snapshot_tracked_entities", "Entities whose event counts the snapshot thread tracks",
        js.snapshot_tracked_entities);

  const std::vector<storage::ShardId> shards = journal.shards();
  gauge("ffe_shards", "Shards this process serves", shards.size());
  for (const storage::ShardId shard : shards) {
    const Labels labels = {{"shard", std::to_string(shard.value)}};
    if (auto revision = journal.revision(shard); revision.is_ok()) {
      scrape.gauge("ffe_shard_revision", "The shard's last durable revision", labels,
                   static_cast<double>(*revision));
    }
    if (auto compacted = journal.compacted_revision(shard); compacted.is_ok()) {
      scrape.gauge("ffe_shard_compacted_revision", "The shard's oldest readable revision (0: never compacted)",
                   labels, static_cast<double>(*compacted));
    }
  }
}

}  // namespace

RuntimeObserver::RuntimeObserver(Registry& registry)
    : commit_seconds_(registry.histogram("ffe_journal_commit_duration_seconds",
                                         "Duration of each synced write of the journal (a group commit)",
                                         latency_buckets_seconds())),
      batch_commands_(registry.histogram("ffe_journal_batch_commands", "Commands per synced write (group-commit size)",
                                         exponential_buckets(1, 4, 8))) {
  const char* terminal_help = "Orders that became terminal, by terminal state";
  fulfilled_ = &registry.counter("ffe_orders_terminal_total", terminal_help, {{"state", "FULFILLED"}});
  cancelled_ = &registry.counter("ffe_orders_terminal_total", terminal_help, {{"state", "CANCELLED"}});
  rejected_ = &registry.counter("ffe_orders_terminal_total", terminal_help, {{"state", "REJECTED"}});
  steps_.resize(v1::SagaStep_MAX + 1, nullptr);
  for (int step = v1::SagaStep_MIN; step <= v1::SagaStep_MAX; ++step) {
    if (step == v1::SAGA_STEP_UNSPECIFIED || !v1::SagaStep_IsValid(step)) continue;
    steps_[step] = &registry.histogram("ffe_saga_step_duration_seconds",
                                       "How long each saga step took, from its start to the next step or the end",
                                       latency_buckets_seconds(),
                                       {{"step", v1::SagaStep_Name(static_cast<v1::SagaStep>(step))}});
  }
}

void RuntimeObserver::order_terminal(v1::OrderState state) {
  switch (state) {
    case v1::FULFILLED: fulfilled_->inc(); break;
    case v1::CANCELLED: cancelled_->inc(); break;
    case v1::REJECTED: rejected_->inc(); break;
    default: break;
  }
}

void RuntimeObserver::saga_step_finished(v1::SagaStep step, double seconds) {
  if (step > v1::SAGA_STEP_UNSPECIFIED && static_cast<std::size_t>(step) < steps_.size() && steps_[step]) {
    steps_[step]->observe(seconds < 0 ? 0 : seconds);
  }
}

void RuntimeObserver::journal_batch(const storage::BatchObservation& batch) {
  commit_seconds_.observe(std::chrono::duration<double>(batch.write).count());
  batch_commands_.observe(static_cast<double>(batch.commands));
}

Registration register_runtime_metrics(Registry& registry, const runtime::Runtime& runtime) {
  return registry.add_collector([&runtime](Scrape& scrape) { collect(runtime, scrape); });
}

}  // namespace ffe::metrics
