// The job side of an executor whose attempts outlive the engine (a batch
// scheduler's jobs, as Slurm runs them; common/task.h "Attempts that
// outlive the engine"). The executor writes the attempt's launch to a
// file in a folder that it and the job both reach, and has the job run
// `tierflow exec-task --launch FILE --report FILE`, which runs that one
// attempt with the local pool, so under the same contract as embedded mode
// (process group, timeout, outputs hashed and published atomically, data
// wait), and leaves its reports beside the launch: REPORT.started once the
// command runs, REPORT when the attempt ends. Each is a serialized
// tierflow.v1.TaskReport written atomically (a temporary file, fsync,
// rename, fsync of the folder), so a reader sees a whole report or none,
// and a final report, once there, says how the attempt ended whatever
// became of the engine. SIGTERM cancels the attempt (TERM to its process
// group, KILL after its grace; reported cancelled); SIGUSR1 kills it at
// once (also reported cancelled).
//
// A packed job (`tierflow exec-task --dir DIR --list FILE --first I
// --count K`; scheduler/slurm_jobs.h "Packing rule") runs the attempts on
// lines [I, I+K) of FILE one after another, each exactly as above with its
// own launch, reports, timeout, log and outputs; one item's failure does
// not stop the next. SIGTERM and SIGUSR1 stop the whole job: the running
// item is cancelled (or killed), the items not started yet are reported
// cancelled without running. SIGUSR2 cancels only the items whose marker
// DIR/attempt-ID.cancel exists: the running one if marked, the others when
// their turn comes (reported cancelled, never run).
//
// Thread-safety: the file functions may be called from any thread.
#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/task.h"

namespace tierflow::worker {

// An attempt's files in a job folder.
struct JobFiles {
  std::string launch;   // DIR/attempt-ID.launch
  std::string started;  // DIR/attempt-ID.report.started
  std::string report;   // DIR/attempt-ID.report
  std::string cancel;   // DIR/attempt-ID.cancel: the executor cancels this one item
  static JobFiles In(const std::string& dir, int64_t attempt_id);
};

absl::Status WriteLaunchFile(const std::string& path, const TaskLaunch& launch);
absl::StatusOr<TaskLaunch> ReadLaunchFile(const std::string& path);
absl::Status WriteReportFile(const std::string& path, const TaskReport& report);
// nullopt: no report there (yet). DataLoss, naming the file, for one that
// is not a report.
absl::StatusOr<std::optional<TaskReport>> ReadReportFile(const std::string& path);

// Runs the attempt `launch_path` describes and writes its reports (see
// above). Errors only for what stops it from reporting at all: an
// unreadable launch, a report folder it cannot write; the attempt's own
// failure is in the report. Returns once the final report is written.
absl::Status ExecTask(const std::string& launch_path, const std::string& report_path);
// Runs the attempts on lines [first, first + count) of `list_file` (one
// attempt id a line; the list's end may come first) from their files in
// `dir`, one after another (see above). Errors as ExecTask's, after every
// item had its turn; InvalidArgument when `first` is past the list's end.
absl::Status ExecTaskList(const std::string& dir, const std::string& list_file, size_t first,
                          size_t count);

}  // namespace tierflow::worker
