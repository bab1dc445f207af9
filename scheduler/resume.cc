#include "scheduler/resume.h"

#include <algorithm>
#include <filesystem>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include "common/processes.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/units.h"
#include "nlohmann/json.hpp"
#include "scheduler/store.h"
#include "storage_adapters/transfer.h"

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

absl::Status EndInterruptedAttempts(Database& db, const std::string& run_id, int64_t now,
                                    const std::vector<int64_t>& keep,
                                    std::vector<std::pair<int64_t, AttemptState>>* ended) {
  // A reuse of cached outputs is recorded `cached` when it is launched and
  // finished when its executor reports: one without finished_at was cut
  // off, and is no success (the task reuses or runs again).
  TF_ASSIGN_OR_RETURN(
      Statement end,
      db.Prepare("UPDATE attempts SET finished_at = ?1, state = CASE WHEN state = ?8 THEN ?4 "
                 "WHEN pid IS NULL THEN ?3 ELSE ?4 END, message = CASE WHEN state = ?8 THEN ?9 "
                 "WHEN pid IS NULL THEN ?5 ELSE ?6 END WHERE run_id = ?2 AND (state = ?7 OR "
                 "(state = ?8 AND finished_at IS NULL)) AND id NOT IN (SELECT value FROM "
                 "json_each(?10)) RETURNING id, state"));
  end.Bind(1, now)
      .Bind(2, run_id)
      .Bind(3, AttemptStateName(AttemptState::kNotStarted))
      .Bind(4, AttemptStateName(AttemptState::kLost))
      .Bind(5, "the engine stopped before this attempt was recorded as started")
      .Bind(6, "the engine stopped while this attempt ran")
      .Bind(7, AttemptStateName(AttemptState::kRunning))
      .Bind(8, AttemptStateName(AttemptState::kCached))
      .Bind(9, "the engine stopped while this attempt reused cached outputs")
      .Bind(10, nlohmann::json(keep).dump());
  for (;;) {
    TF_ASSIGN_OR_RETURN(bool row, end.Step());
    if (!row) break;
    if (ended == nullptr) continue;
    TF_ASSIGN_OR_RETURN(AttemptState state, ParseAttemptState(end.Text(1)));
    ended->emplace_back(end.Int(0), state);
  }
  return absl::OkStatus();
}

}  // namespace tierflow::scheduler

namespace tierflow::scheduler::internal {
namespace {
namespace fs = std::filesystem;

constexpr std::string_view kReleasedCopy = "released";  // Replicas: a volatile home let go

// A copy recorded present or copying that is not there any more.
struct StaleCopy {
  int64_t id;
  std::string_view state;
  const char* why;
};

// What the store says of the run's outputs.
struct StoredOutputs {
  std::vector<StaleCopy> stale;
  std::set<std::pair<uint32_t, size_t>> released;  // (task, output) of released volatile homes
};

absl::Status ReadTaskStates(Database& db, RunModel& run,
                            const std::unordered_map<std::string, uint32_t>& by_id) {
  TF_ASSIGN_OR_RETURN(Statement rows,
                      db.Prepare("SELECT id, state, attempts, log_path_of_latest FROM ("
                                 "SELECT t.id, t.state, t.attempts, (SELECT log_path FROM "
                                 "attempts a WHERE a.run_id = t.run_id AND a.task_id = t.id "
                                 "ORDER BY number DESC LIMIT 1) AS log_path_of_latest FROM "
                                 "tasks t WHERE t.run_id = ?)"));
  rows.Bind(1, run.run_id);
  for (;;) {
    TF_ASSIGN_OR_RETURN(bool row, rows.Step());
    if (!row) break;
    auto it = by_id.find(rows.Text(0));
    if (it == by_id.end()) continue;
    TaskRec& task = run.tasks[it->second];
    absl::StatusOr<TaskState> state = ParseTaskState(rows.Text(1));
    if (!state.ok()) {
      return absl::InvalidArgumentError(StrCat("run ", run.run_id, ", task ", task.id,
                                               ": cannot resume: ", state.status().message()));
    }
    task.state = *state;
    task.attempts = static_cast<uint32_t>(rows.Int(2));
    task.log_path = rows.Text(3);
  }
  return absl::OkStatus();
}

// Attempts left `running` that an executor may re-attach to: each task's
// latest attempt, when it is still running (run.reattach, `running`).
absl::Status ReadRunningAttempts(Database& db, RunModel& run,
                                 const std::unordered_map<std::string, uint32_t>& by_id,
                                 std::vector<bool>& running) {
  TF_ASSIGN_OR_RETURN(Statement rows,
                      db.Prepare("SELECT task_id, id, number, coalesce(handle, ''), started_at, "
                                 "coalesce(cache_key, '') FROM attempts WHERE run_id = ? AND "
                                 "state = ? ORDER BY id"));
  rows.Bind(1, run.run_id).Bind(2, AttemptStateName(AttemptState::kRunning));
  for (;;) {
    TF_ASSIGN_OR_RETURN(bool row, rows.Step());
    if (!row) break;
    auto it = by_id.find(rows.Text(0));
    if (it == by_id.end()) continue;
    TaskRec& task = run.tasks[it->second];
    if (static_cast<uint32_t>(rows.Int(2)) != task.attempts) continue;  // not its latest
    task.attempt_id = rows.Int(1);
    task.attempt_started_ms = rows.Int(4);
    task.cache_key = rows.Text(5);
    running[it->second] = true;
    run.reattach.push_back({.task = it->second, .handle = rows.Text(3)});
  }
  rows.Reset();  // a statement left on a row keeps its read snapshot
  return absl::OkStatus();
}

// Outputs of finished tasks, with their copies: a task none of whose
// copies of an output is still there runs again.
absl::StatusOr<StoredOutputs> ReadOutputs(Database& db, RunModel& run,
                                          const std::unordered_map<std::string, uint32_t>& by_id) {
  TF_ASSIGN_OR_RETURN(
      Statement outputs,
      db.Prepare("SELECT a.task_id, a.name, a.id, a.content_hash, a.bytes, c.id, c.tier, c.uri, "
                 "c.state FROM artifacts a JOIN artifact_copies c ON c.artifact_id = a.id AND "
                 "c.state IN ('present', 'copying', 'released') WHERE a.run_id = ? ORDER BY "
                 "a.id, c.id"));
  outputs.Bind(1, run.run_id);
  StoredOutputs stored;
  for (;;) {
    TF_ASSIGN_OR_RETURN(bool row, outputs.Step());
    if (!row) break;
    auto it = by_id.find(outputs.Text(0));
    if (it == by_id.end()) continue;
    const uint32_t t = it->second;
    TaskRec& task = run.tasks[t];
    const size_t o = run.OutputIndex(task.stage, outputs.Text(1));
    if (o == run.pipeline.stages[task.stage].outputs.size()) continue;
    OutputPlace& place = task.places[o];
    if (task.outputs[o].id != outputs.Int(2)) {  // a newer artifact (rows come oldest first)
      task.outputs[o] = {outputs.Int(2), run.OutputPath(t, o), outputs.Text(3),
                         static_cast<uint64_t>(outputs.Int(4))};
      place.ForgetCopies();
      stored.released.erase({t, o});
    }
    const int64_t copy_id = outputs.Int(5);
    uint8_t tier = 0;
    while (tier < run.tiers.size() && run.tiers[tier].config.name != outputs.Text(6)) ++tier;
    if (outputs.Text(8) == kReleasedCopy) {
      stored.released.insert({t, o});  // needed again only if a task that reads it runs again
      continue;
    }
    if (outputs.Text(8) == "copying") {
      stored.stale.push_back({copy_id, "failed", "the engine stopped during this copy"});
      if (tier < run.tiers.size()) place.dirty |= uint64_t{1} << tier;
      continue;
    }
    if (tier == run.tiers.size()) continue;
    if (run.OnWorkers(tier)) {
      stored.stale.push_back({copy_id, "evicted",
                              "the server stopped; a worker clears its node tiers when it "
                              "connects again"});
      continue;
    }
    bool exists = false;
    if (run.tiers[tier].posix) {
      std::error_code error;
      exists = fs::exists(outputs.Text(7), error);
    } else {
      TF_ASSIGN_OR_RETURN(exists, ArtifactExists(*run.tiers[tier].adapter, run.OutputKey(t, o)));
    }
    if (!exists) {
      stored.stale.push_back({copy_id, "missing", "gone when the run resumed"});
      continue;
    }
    place.copies[tier] = CopyState::kPresent;
    place.copy_ids[tier] = copy_id;
  }
  return stored;
}

// Tasks kept: done, with a copy of each output. A released volatile
// output counts as kept unless a task that reads it runs again; then its
// producer runs again too (to a fixpoint: that producer's own released
// inputs are needed in turn).
std::vector<bool> KeptTasks(const RunModel& run,
                            const std::set<std::pair<uint32_t, size_t>>& released) {
  std::vector<bool> keep(run.tasks.size());
  for (uint32_t t = 0; t < run.tasks.size(); ++t) {
    const TaskRec& task = run.tasks[t];
    bool done = IsDone(task.state);
    for (size_t o = 0; done && o < task.outputs.size(); ++o) {
      const std::vector<CopyState>& copies = task.places[o].copies;
      if (std::find(copies.begin(), copies.end(), CopyState::kPresent) != copies.end()) continue;
      done = released.count({t, o}) > 0;
    }
    keep[t] = done;
  }
  for (bool changed = !released.empty(); changed;) {
    changed = false;
    for (uint32_t t = 0; t < run.tasks.size(); ++t) {
      if (keep[t]) continue;
      for (const Need& need : run.tasks[t].needs) {
        if (keep[need.task] && released.count({need.task, need.output}) > 0) {
          keep[need.task] = false;
          changed = true;
        }
      }
    }
  }
  return keep;
}

}  // namespace

absl::StatusOr<StoredRun> ReadStoredRun(Database& db, const std::string& run_id) {
  TF_ASSIGN_OR_RETURN(
      Statement find,
      db.Prepare("SELECT r.file, r.working_dir, r.params_json, r.state, p.yaml, r.tiers_json, "
                 "coalesce(r.executor, ''), r.executor_options FROM runs r JOIN pipelines p "
                 "ON p.id = r.pipeline_id WHERE r.id = ?"));
  find.Bind(1, run_id);
  TF_ASSIGN_OR_RETURN(bool found, find.Step());
  if (!found) return absl::NotFoundError(StrCat("run ", run_id, " vanished from the store"));
  StoredRun run;
  run.file = find.Text(0);
  run.working_dir = find.Text(1);
  absl::StatusOr<RunState> state = ParseRunState(find.Text(3));
  if (!state.ok()) {
    return absl::InvalidArgumentError(
        StrCat("run ", run_id, ": cannot resume: ", state.status().message()));
  }
  run.state = *state;
  run.yaml = find.Text(4);
  if (!find.IsNull(5)) run.tiers_json = find.Text(5);
  run.executor = find.Text(6);
  if (!find.IsNull(7)) run.executor_options = find.Text(7);
  nlohmann::json params = nlohmann::json::parse(find.Text(2), nullptr, /*allow_exceptions=*/false);
  if (params.is_object()) {
    for (const auto& [name, value] : params.items()) {
      if (value.is_string()) run.params[name] = value.get<std::string>();
    }
  }
  // Done with the row: a statement left on it keeps this connection's read
  // snapshot, and in WAL mode a connection on an old snapshot can never
  // take the write lock once another engine (a server resumes several)
  // has written: every turn of this run would fail SQLITE_BUSY_SNAPSHOT.
  find.Reset();
  return run;
}

absl::StatusOr<uint32_t> LoadRunForResume(Database& db, RunModel& run, RunWriter& writer,
                                          Checkpoints& checkpoints, bool reattach) {
  std::unordered_map<std::string, uint32_t> by_id;
  by_id.reserve(run.tasks.size());
  for (uint32_t t = 0; t < run.tasks.size(); ++t) by_id.emplace(run.tasks[t].id, t);
  TF_RETURN_IF_ERROR(ReadTaskStates(db, run, by_id));
  TF_ASSIGN_OR_RETURN(StoredOutputs stored, ReadOutputs(db, run, by_id));
  std::vector<bool> running(run.tasks.size(), false);
  if (reattach) TF_RETURN_IF_ERROR(ReadRunningAttempts(db, run, by_id, running));
  TF_RETURN_IF_ERROR(writer.Prepare(run.run_id));

  TF_ASSIGN_OR_RETURN(Transaction transaction, writer.BeginOnce());
  // Attempts that were running when the engine died are lost, or never
  // started (EndInterruptedAttempts); kept running for an executor that
  // re-attaches.
  std::vector<int64_t> kept_running;
  for (const RunModel::Reattach& r : run.reattach)
    kept_running.push_back(run.tasks[r.task].attempt_id);
  const int64_t now = WallClockMs();
  std::vector<std::pair<int64_t, AttemptState>> ended;
  TF_RETURN_IF_ERROR(EndInterruptedAttempts(db, run.run_id, now, kept_running, &ended));
  for (const auto& [attempt_id, state] : ended) writer.QueueAttemptEnd(attempt_id, state, now);
  // Checkpoint flushes the crash cut off: flushed again when their task
  // runs again, or in the first turn for a task that had ended.
  TF_RETURN_IF_ERROR(checkpoints.FailCutOffFlushes(by_id));
  for (const StaleCopy& copy : stored.stale) {
    TF_RETURN_IF_ERROR(writer.UpdateCopy(copy.id, copy.state, copy.why));
  }
  const std::vector<bool> keep = KeptTasks(run, stored.released);
  uint32_t kept = 0;
  for (uint32_t t = 0; t < run.tasks.size(); ++t) {
    TaskRec& task = run.tasks[t];
    if (keep[t]) {
      ++kept;
      --run.stages[task.stage].unfinished;
      continue;
    }
    for (ArtifactRec& output : task.outputs) output = ArtifactRec{};
    for (OutputPlace& place : task.places) place.ForgetCopies();
    if (running[t]) {
      if (task.state != TaskState::kRunning) {
        task.state = TaskState::kRunning;
        TF_RETURN_IF_ERROR(writer.UpdateTask(task.id, TaskState::kRunning, task.attempts,
                                             task.cache_key, "", WallClockMs()));
      }
      continue;
    }
    task.attempt_id = 0;
    if (task.state != TaskState::kPending) {
      task.state = TaskState::kPending;
      TF_RETURN_IF_ERROR(
          writer.UpdateTask(task.id, TaskState::kPending, task.attempts, "", "", WallClockMs()));
    }
  }
  std::erase_if(run.reattach, [&](const RunModel::Reattach& r) { return keep[r.task]; });
  TF_RETURN_IF_ERROR(writer.ResumeRun());
  TF_RETURN_IF_ERROR(writer.AddEvent(
      "", 0, "run_resumed", StrCat(kept, " of ", run.tasks.size(), " tasks kept from before")));
  TF_RETURN_IF_ERROR(writer.Commit(transaction));
  return kept;
}

}  // namespace tierflow::scheduler::internal
