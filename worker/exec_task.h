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

}  // namespace tierflow::worker
