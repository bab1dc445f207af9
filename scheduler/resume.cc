#include "scheduler/resume.h"

#include "common/processes.h"
#include "common/status.h"
#include "common/strings.h"
#include "scheduler/store.h"

namespace tierflow::scheduler {

absl::StatusOr<int> KillLeftoverTasks(Database& db, const std::string& run_id, bool may_scan_host) {
  const std::string marker = StrCat("TIERFLOW_RUN_ID=", run_id);
  TF_ASSIGN_OR_RETURN(Statement find,
                      db.Prepare("SELECT pid FROM attempts WHERE run_id = ? AND state = ? AND "
                                 "coalesce(worker_id, '') = '' AND coalesce(worker, '') != ''"));
  find.Bind(1, run_id).Bind(2, AttemptStateName(AttemptState::kRunning));
  int killed = 0;
  bool unrecorded = false;
  while (true) {
    TF_ASSIGN_OR_RETURN(bool row, find.Step());
    if (!row) break;
    if (find.IsNull(0)) {
      unrecorded = true;
    } else if (KillGroupIfMarked(static_cast<pid_t>(find.Int(0)), marker)) {
      ++killed;
    }
  }
  if (unrecorded && may_scan_host) killed += KillProcessesWithEnv(marker);
  return killed;
}

absl::Status EndInterruptedAttempts(Database& db, const std::string& run_id, int64_t now) {
  // A reuse of cached outputs is recorded `cached` when it is launched and
  // finished when its executor reports: one without finished_at was cut
  // off, and is no success (the task reuses or runs again).
  TF_ASSIGN_OR_RETURN(
      Statement end,
      db.Prepare("UPDATE attempts SET finished_at = ?1, state = CASE WHEN state = ?8 THEN ?4 "
                 "WHEN pid IS NULL THEN ?3 ELSE ?4 END, message = CASE WHEN state = ?8 THEN ?9 "
                 "WHEN pid IS NULL THEN ?5 ELSE ?6 END WHERE run_id = ?2 AND (state = ?7 OR "
                 "(state = ?8 AND finished_at IS NULL))"));
  end.Bind(1, now)
      .Bind(2, run_id)
      .Bind(3, AttemptStateName(AttemptState::kNotStarted))
      .Bind(4, AttemptStateName(AttemptState::kLost))
      .Bind(5, "the engine stopped before this attempt was recorded as started")
      .Bind(6, "the engine stopped while this attempt ran")
      .Bind(7, AttemptStateName(AttemptState::kRunning))
      .Bind(8, AttemptStateName(AttemptState::kCached))
      .Bind(9, "the engine stopped while this attempt reused cached outputs");
  return end.Run();
}

}  // namespace tierflow::scheduler
