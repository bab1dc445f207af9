// The OpenLineage sender: a thread that drains a store's outbox
// (scheduler/lineage_outbox.h) in seq order, POSTing each event's stored
// bytes to the endpoint with libcurl (the Marquez shape: the URL is the
// whole `.../api/v1/lineage`), and recording a batch's outcomes in one
// transaction after its last POST. 2xx: delivered. A 4xx other than 408 and 429:
// parked as rejected with the endpoint's answer, and the next event goes
// on. Anything else (5xx, 408, 429, no connection): the same event again
// after an exponential backoff with jitter; never a later one first.
//
// One sender drains a store at a time, whatever the number of processes on
// it: the one holding the lease row, which it renews while it runs; a dead
// holder's lease expires and another process's sender takes over.
// docs/lineage-export.md, "Delivery: the outbox".
//
// Thread-safety: the sender's thread has its own connection to the store;
// the public calls are for the thread that owns the LineageSender.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "scheduler/engine.h"
#include "scheduler/lineage_events.h"
#include "scheduler/lineage_outbox.h"

namespace tierflow::api {

struct LineageConfig {
  std::string url;      // TIERFLOW_OPENLINEAGE_URL
  std::string api_key;  // TIERFLOW_OPENLINEAGE_API_KEY: `Authorization: Bearer KEY`
  // TIERFLOW_OPENLINEAGE_BACKOFF=MIN_MS,MAX_MS: the first retry's wait,
  // doubling to the cap.
  std::chrono::milliseconds backoff_min{1000}, backoff_max{5 * 60 * 1000};
  // TIERFLOW_OPENLINEAGE_RETENTION (seconds): how long delivered events
  // stay in the outbox; 0 deletes each once delivered.
  std::chrono::milliseconds retention{24 * 60 * 60 * 1000};
  scheduler::lineage::ExportSettings settings;  // TIERFLOW_OPENLINEAGE_NAMESPACE
};

// The configuration in the environment: none when TIERFLOW_OPENLINEAGE_URL
// is unset or empty; InvalidArgument naming the variable for a bad value.
absl::StatusOr<std::optional<LineageConfig>> LineageConfigFromEnv();

class LineageSender {
 public:
  // Starts the sender on the store at `db_path`.
  static std::unique_ptr<LineageSender> Start(std::string db_path, LineageConfig config);
  // Stops the thread (an unfinished POST is cut off: its event stays
  // pending) and lets the lease go.
  ~LineageSender();
  LineageSender(const LineageSender&) = delete;
  LineageSender& operator=(const LineageSender&) = delete;

  // Waits up to `limit` until no event is pending; returns how many still are.
  absl::StatusOr<int64_t> Drain(std::chrono::milliseconds limit);

  class Impl;

 private:
  explicit LineageSender(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// For the commands that drive runs or serve a store (`run`, `resume`,
// `ui`, `server`): with an endpoint configured, turns the engine's outbox on
// in `engine_options` (when given) and starts the sender; nullptr when none
// is configured.
absl::StatusOr<std::unique_ptr<LineageSender>> StartLineageDelivery(
    const std::string& db_path, scheduler::EngineOptions* engine_options);

// At the end of `run`/`resume`: drains for up to 10 s
// (TIERFLOW_OPENLINEAGE_DRAIN_SECONDS), then stops the sender. Returns a
// line for the run's summary when events are still waiting ("" when none).
std::string FinishLineageDelivery(std::unique_ptr<LineageSender> sender);

// The events the endpoint rejected (4xx), parked in the outbox of the store
// at `db_path`, oldest first (`tierflow lineage export --rejected`).
absl::StatusOr<std::vector<scheduler::lineage::OutboxRow>> RejectedLineageEvents(
    const std::string& db_path);

}  // namespace tierflow::api
