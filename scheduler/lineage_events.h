// OpenLineage events (spec 2-0-2, ../shared/openlineage) rendered from the
// state store: a run is the parent job `PIPELINE`, each task attempt a run
// of the child job `PIPELINE.TASK` with a `parent` facet; inputs and outputs
// are datasets named `PIPELINE/STAGE/OUTPUT` (with the item for a foreach
// stage) in the namespace of their home tier. docs/lineage-export.md has the
// whole mapping.
//
// Rendering is deterministic: the same store rows render the same bytes, and
// run ids are UUID v5 of tierflow's run and attempt ids, so a consumer can
// deduplicate an event delivered twice. The outbox (lineage_outbox.h) stores
// the bytes rendered in the transaction of the state change; `tierflow
// lineage export` renders a run's events on demand.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "scheduler/sqlite.h"
#include "scheduler/store.h"

namespace tierflow::scheduler::lineage {

enum class EventType { kStart, kRunning, kComplete, kFail, kAbort };
// "START", "RUNNING", "COMPLETE", "FAIL", "ABORT".
std::string_view EventTypeWord(EventType type);

// What one event is about: the run (attempt_id unset) or one of its task
// attempts, and the time of the state change, as the store recorded it.
struct EventSubject {
  std::string run_id;
  std::optional<int64_t> attempt_id;
  EventType type = EventType::kStart;
  int64_t event_ms = 0;
};

// What is the same for every event a process renders.
struct ExportSettings {
  std::string job_namespace = "tierflow";  // TIERFLOW_OPENLINEAGE_NAMESPACE
  std::string host;                        // file://HOST, for posix tiers
};
// $TIERFLOW_OPENLINEAGE_NAMESPACE (else "tierflow") and this machine's name.
ExportSettings ExportSettingsFromEnvironment();

// The subjects of a run, and how their event_ms is chosen (the outbox
// renders each in the transaction of its state change; export enumerates
// them all from the store with RunEventSubjects: both read the same rows):
// - the run (job PIPELINE): START at its `run_started` event, RUNNING at each
//   `run_resumed` event, COMPLETE/FAIL/ABORT at each `run_succeeded`/
//   `run_failed`/`run_cancelled` event (events.time). A run failed, resumed
//   and finished again has two ends, as it happened.
// - each attempt (job PIPELINE.TASK): START at attempts.started_at (a cached
//   reuse too), and once it ended, at attempts.finished_at: COMPLETE for
//   succeeded and cached, FAIL for failed, timed_out and lost, ABORT for
//   cancelled and not_started.
// Order: by event_ms; within one millisecond run START, run RUNNING, the
// attempts' events (by attempt id, START before its end), run ends.

// The subject of the run's newest run_* event above: what the outbox
// renders right after writing that event in the same transaction.
// NotFound when the run has none.
absl::StatusOr<EventSubject> LatestRunSubject(Database& db, const std::string& run_id);
// An attempt's START, and its end once it has one (unset while running).
absl::StatusOr<EventSubject> AttemptStartSubject(Database& db, int64_t attempt_id);
absl::StatusOr<std::optional<EventSubject>> AttemptEndSubject(Database& db, int64_t attempt_id);
// Every subject of a run, in the order above. NotFound for an unknown run.
absl::StatusOr<std::vector<EventSubject>> RunEventSubjects(Database& db, const std::string& run_id);

// The run's event an `events` row of `kind` is: run_started START,
// run_resumed RUNNING, run_succeeded / run_failed / run_cancelled COMPLETE /
// FAIL / ABORT; none for any other kind.
std::optional<EventType> RunEventOfKind(std::string_view kind);
// An ended attempt's event: succeeded and cached COMPLETE; failed,
// timed_out and lost FAIL; cancelled and not_started ABORT; none while it
// runs.
std::optional<EventType> AttemptEndType(AttemptState state);

// One event as one line of JSON (no newline), from what the store holds now.
// Attempt ends carry the attempt's datasets (lineage_edges: consumed as
// inputs, produced as outputs, with the copies the store holds now); START,
// RUNNING and the run's events carry none.
absl::StatusOr<std::string> RenderEvent(Database& db, const EventSubject& subject,
                                        const ExportSettings& settings);

// Every event of a run, in the order the state changes happened, rendered
// from the store (export without an outbox).
absl::StatusOr<std::vector<std::string>> RenderRunEvents(Database& db, const std::string& run_id,
                                                         const ExportSettings& settings);

// UUID v5 (RFC 4122, SHA-1) in tierflow's namespace: of the run id, and of
// the run id and attempt id.
std::string RunUuid(std::string_view run_id);
std::string AttemptUuid(std::string_view run_id, int64_t attempt_id);

}  // namespace tierflow::scheduler::lineage
