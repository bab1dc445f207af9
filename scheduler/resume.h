// What a stopped engine left behind, and how the next one picks it up:
// leftover task processes killed, interrupted attempts ended, and a resumed
// run's tasks, outputs and copies loaded back from the store.
//
// Thread-safety: every function here runs on the thread that owns `db`.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "scheduler/sqlite.h"

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
absl::Status EndInterruptedAttempts(Database& db, const std::string& run_id, int64_t now);

}  // namespace tierflow::scheduler
