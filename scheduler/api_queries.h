// The store layer behind api/'s views beyond run_queries.h: what the HTTP
// API's graph and task pages, the live event feed, /metrics and the tier
// service read from the state store (store.h), and the one write the tier
// service makes (a probe's profile). api/ holds no SQL: every statement it
// needs is a named call here returning plain structs, with states parsed by
// store.h's Parse*State, so a word this tierflow does not know is an error
// naming it, never a default. Like run_queries.h, every call runs on a
// Database the caller owns (one thread at a time) and leaves no statement
// open.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "scheduler/sqlite.h"
#include "scheduler/store.h"
#include "storage_adapters/tier_config.h"

namespace tierflow::scheduler {

// ------------------------------------------------------------- one run

// What a run recorded about how it was planned: its pipeline's YAML as it
// was read, the --param overrides, and the tiers it was placed on (unset:
// the engine's one implicit tier).
struct StoredPipeline {
  std::string yaml;
  std::string file;
  std::map<std::string, std::string> params;
  std::optional<std::string> tiers_json;
};
// NotFound when the run has no stored pipeline.
absl::StatusOr<StoredPipeline> GetStoredPipeline(Database& db, const std::string& run_id);

// A task as the run's graph draws it: no attempts or outputs, so a
// 5,000-task graph stays small; `worker` is its latest attempt's.
struct GraphTask {
  std::string id;
  std::string stage;
  std::string kind;
  std::optional<std::string> item;
  int64_t item_index = 0;
  int64_t layer = 0;
  int64_t seq = 0;
  TaskState state = TaskState::kPending;
  int64_t attempt_count = 0;
  std::optional<int64_t> started_at_ms;
  std::optional<int64_t> finished_at_ms;
  std::string message;
  std::optional<std::string> worker;
};
// The run's tasks in plan order (seq).
absl::StatusOr<std::vector<GraphTask>> ListGraphTasks(Database& db, const std::string& run_id);

// A row of `events`. `task_id` is "" for an event of the run itself.
struct EventRow {
  int64_t id = 0;
  std::string run_id;
  std::string task_id;
  std::optional<int64_t> attempt_id;
  int64_t time_ms = 0;
  std::string kind;  // a task state word, or what happened ("placed", "copy", ...)
  std::string message;
};
// One task's events, oldest first.
absl::StatusOr<std::vector<EventRow>> ListTaskEvents(Database& db, const std::string& run_id,
                                                     const std::string& task_id);

// Cluster mode: why each attempt of a task went to its worker (the
// `placed` events), oldest first.
struct WorkerChoice {
  std::optional<int64_t> attempt_id;
  std::optional<int64_t> attempt_number;  // unset when the attempt row is gone
  int64_t time_ms = 0;
  std::string reason;
};
absl::StatusOr<std::vector<WorkerChoice>> ListWorkerChoices(Database& db, const std::string& run_id,
                                                            const std::string& task_id);

// Bytes a task's attempts that ran (not cached) wrote, by the tier they
// wrote to (the copies no mover made).
absl::StatusOr<std::map<std::string, int64_t>> TaskWrittenBytes(Database& db,
                                                                const std::string& run_id,
                                                                const std::string& task_id);

// Each input a task's attempts that ran (not cached) consumed, once per
// attempt: its name, its size, and the tier of its first copy (home
// first; unset when it has none).
struct InputRead {
  std::string input;
  int64_t bytes = 0;
  std::optional<std::string> first_tier;
};
absl::StatusOr<std::vector<InputRead>> TaskInputReads(Database& db, const std::string& run_id,
                                                      const std::string& task_id);

// ------------------------------------------------------------ data wait

// Seconds tasks waited for data (docs/ui.md "Time waiting on data"), keyed
// by (run id, task id), for one run or (run_id "") every run: as the
// attempts measured it (copies waited for before the start, waits their
// helpers accounted; store schema 6), or for a store from before those
// measurements, derived from when a task's inputs were complete and when
// the working copies it read were made.
using TaskKey = std::pair<std::string, std::string>;
absl::StatusOr<std::map<TaskKey, double>> DataWaitSeconds(Database& db, const std::string& run_id);

// True when some attempt of the task measured its wait (rather than it
// being derived).
absl::StatusOr<bool> DataWaitMeasured(Database& db, const std::string& run_id,
                                      const std::string& task_id);

// ------------------------------------------------------------ event feed

// The newest events row id (0 for none).
absl::StatusOr<int64_t> LatestEventId(Database& db);

// Rows of `events` after `after`, oldest first, at most `limit`.
absl::StatusOr<std::vector<EventRow>> ListEventsAfter(Database& db, int64_t after, int64_t limit);

// The state of every task of every running run, by run then task: the
// feed compares them between polls (a task becoming `queued` writes no
// event).
using RunningTaskStates = std::map<std::string, std::map<std::string, TaskState>>;
absl::StatusOr<RunningTaskStates> ListRunningTaskStates(Database& db);

// ------------------------------------------------------------ tiers

// The copies present on each tier, as the store knows them.
struct TierUsage {
  int64_t copies = 0;
  int64_t bytes = 0;
};
absl::StatusOr<std::map<std::string, TierUsage>> PresentCopiesByTier(Database& db);

// A measured profile of one tier (`tierflow tiers probe`; tier_profiles,
// schema 3).
struct TierProfileRow {
  std::string tier;
  std::string location;  // where it measured: stale if the tier moved since
  int64_t measured_at_ms = 0;
  storage::TierProfile profile;
  double create_us = 0;
  double stat_us = 0;
  int64_t bytes_tested = 0;
  int64_t elapsed_ms = 0;
};
// The newest profile of each tier that has one, by tier name.
absl::StatusOr<std::map<std::string, TierProfileRow>> NewestTierProfiles(Database& db);
absl::Status RecordTierProfile(Database& db, const TierProfileRow& row);

// ------------------------------------------------------------ metrics

// What /metrics reports of the store, read at scrape time.
struct StoreStats {
  std::map<RunState, int64_t> runs;  // by state
  std::set<std::string> task_kinds;  // every stage kind in the store
  struct TaskCount {
    TaskState state = TaskState::kPending;
    std::string kind;
    int64_t count = 0;
  };
  std::vector<TaskCount> tasks;  // by state and kind
  // Tasks of running runs in state queued: ready and waiting for a slot.
  int64_t queue_depth = 0;
  // Each finished attempt that ran (not cached): its stage kind and length.
  struct AttemptTime {
    std::string kind;
    int64_t duration_ms = 0;
  };
  std::vector<AttemptTime> attempt_times;
  // Bytes of the copies that are or were complete, by tier and source
  // (unset: what a task wrote there; else a copy from that tier).
  struct CopiedBytes {
    std::string tier;
    std::optional<std::string> source_tier;
    int64_t bytes = 0;
  };
  std::vector<CopiedBytes> copied;
  // Each finished copy between tiers still present: its destination, size
  // and the milliseconds from its start to its end.
  struct Transfer {
    std::string tier;
    int64_t bytes = 0;
    int64_t elapsed_ms = 0;
  };
  std::vector<Transfer> transfers;
};
absl::StatusOr<StoreStats> ReadStoreStats(Database& db);

// ------------------------------------------------------------ cluster mode

// The cluster's id (the `cluster` table): made, as `fresh_id`, the first
// time a server opens the store, and the same ever after.
absl::StatusOr<std::string> EnsureClusterId(Database& db, const std::string& fresh_id);
// The server resumed run `run_id`, whose engine had stopped, and why (an
// event `run_supervised`).
absl::Status RecordRunSupervised(Database& db, const std::string& run_id, const std::string& why);

}  // namespace tierflow::scheduler
