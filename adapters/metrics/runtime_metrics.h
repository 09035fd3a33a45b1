#pragma once
// Exports the runtime's and the journal's counters on /metrics without either of them
// depending on the metrics library: a collector reads runtime::Runtime::stats(),
// storage::Journal::stats() and each shard's revisions at every scrape.
//
// Families (docs/http.md lists them with their help text):
//   ffe_actors_live, ffe_actors_spawned_total, ffe_actors_restored_total,
//   ffe_actors_passivated_total, ffe_actor_failures_total,
//   ffe_commands_total, ffe_commands_rejected_total, ffe_commands_in_flight,
//   ffe_submit_waits_total, ffe_late_replies_total, ffe_unexpected_releases_total,
//   ffe_deadlines_expired_total, ffe_saga_retries_total, ffe_timers_armed_total,
//   ffe_timers_fired_total, ffe_timers_dropped_total, ffe_open_orders_recovered,
//   ffe_journal_up, ffe_journal_commands_total, ffe_journal_noop_commands_total,
//   ffe_journal_batches_total, ffe_journal_written_bytes_total,
//   ffe_journal_snapshots_made_total, ffe_journal_snapshot_written_bytes_total,
//   ffe_journal_snapshots_given_total, ffe_journal_snapshot_tracked_entities,
//   ffe_shards, ffe_shard_revision{shard}, ffe_shard_compacted_revision{shard}.

#include <vector>

#include "actors/runtime/runtime.h"
#include "adapters/metrics/metrics.h"

namespace ffe::metrics {

// The runtime's Observer as Prometheus families, registered (at zero) when constructed, so
// a dashboard finds them before the first order:
//   ffe_orders_terminal_total{state}            orders that became FULFILLED/CANCELLED/REJECTED
//   ffe_saga_step_duration_seconds{step}        how long each saga step took (histogram)
//   ffe_journal_commit_duration_seconds         each synced write (group commit) (histogram)
//   ffe_journal_batch_commands                  commands per synced write (histogram)
// Owner: whoever opens the runtime (pass it as runtime::Options::observer); the registry
// must outlive it. Thread-safe: every update is a lock-free atomic.
class RuntimeObserver final : public runtime::Observer {
 public:
  explicit RuntimeObserver(Registry& registry);
  void order_terminal(v1::OrderState state) override;
  void saga_step_finished(v1::SagaStep step, double seconds) override;
  void journal_batch(const storage::BatchObservation& batch) override;

 private:
  Counter* fulfilled_;
  Counter* cancelled_;
  Counter* rejected_;
  std::vector<Histogram*> steps_;  // by v1::SagaStep value; [0] unused
  Histogram& commit_seconds_;
  Histogram& batch_commands_;
};

// Registers the collector; it stays registered while the returned Registration lives. The
// runtime must outlive the Registration (reset it, or destroy it, before the runtime).
Registration register_runtime_metrics(Registry& registry, const runtime::Runtime& runtime);

}  // namespace ffe::metrics
