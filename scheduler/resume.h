// What a stopped engine left behind, and how the next one picks it up:
// leftover task processes killed, interrupted attempts ended, and a resumed
// run's tasks, outputs and copies loaded back from the store.
//
// Thread-safety: every function here runs on the thread that owns `db`.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "scheduler/checkpoints.h"
#include "scheduler/internal/run_model.h"
#include "scheduler/run_writer.h"
#include "scheduler/sqlite.h"
#include "scheduler/store.h"

namespace tierflow::scheduler {

// Kills what is left of a dead engine's tasks on this host. Tasks run in
// process groups of their own, so a killed engine's children survive it.
// They are found through what was recorded: the pid (its group's leader) of
// each attempt still `running` that a local pool ran (a worker name but no
// worker id: a server's attempts have neither until leased), killed only
// while that process still carries the run's TIERFLOW_RUN_ID. An attempt
// launched an instant before the engine died may have no pid recorded yet;
// only then, and only when `may_scan_host` (an embedded engine: the tasks of
// this run on this host are its own), are the host's processes searched for
// the run's TIERFLOW_RUN_ID. A server never scans: its workers stop their
// own tasks. Returns how many were killed.
absl::StatusOr<int> KillLeftoverTasks(Database& db, const std::string& run_id, bool may_scan_host);

// Ends the attempts of `run_id` its stopped engine left `running`, inside
// the caller's transaction: `lost` for those whose process was recorded as
// started (a pid), `not_started` for the rest (queued for a worker, leased,
// or launched an instant before the stop, before their start was recorded).
// The attempts in `keep` (an executor re-attaches to them) are left alone.
// `ended`, when given, receives each attempt ended and the state recorded.
absl::Status EndInterruptedAttempts(Database& db, const std::string& run_id, int64_t now,
                                    const std::vector<int64_t>& keep = {},
                                    std::vector<std::pair<int64_t, AttemptState>>* ended = nullptr);

namespace internal {

// What a run recorded when it started: enough to rebuild it.
struct StoredRun {
  std::string file;
  std::string working_dir;
  std::map<std::string, std::string> params;
  RunState state = RunState::kRunning;
  std::string yaml;  // the pipeline as it was (the file may have changed)
  // The tiers it was placed on (PlacementTiersToJson); unset for a run
  // recorded before tiers, which keeps the one implicit tier.
  std::optional<std::string> tiers_json;
  std::string executor;  // EngineOptions::executor it was started with
  // EngineOptions::executor_options it was started with; unset for a run
  // recorded before them (schema 11).
  std::optional<std::string> executor_options;
};
// NotFound when the run is gone; InvalidArgument, naming the run, for a
// state this tierflow does not know.
absl::StatusOr<StoredRun> ReadStoredRun(Database& db, const std::string& run_id);

// Brings `run` (built and placed from its StoredRun) to where its stopped
// engine left it: each task's state, attempts and latest log; each output's
// current artifact and the copies of it that still exist. Then, in one
// transaction: interrupted attempts ended, cut-off checkpoint flushes
// failed, vanished copies recorded, and every task that is not kept (done,
// with a copy of each output) reset to pending; the run is running again.
// A stored task state this tierflow does not know fails loudly, naming the
// run and the task. With `reattach` (the executor re-attaches), a task
// whose latest attempt is still `running` stays running with that attempt,
// listed in run.reattach, instead. Returns how many tasks were kept.
absl::StatusOr<uint32_t> LoadRunForResume(Database& db, RunModel& run, RunWriter& writer,
                                          Checkpoints& checkpoints, bool reattach = false);

}  // namespace internal

}  // namespace tierflow::scheduler
