// How the Slurm executor (api/slurm_executor) watches a run's jobs: the pure
// decisions, each with a reason, and the run's recorded Slurm options.
//
// - NextPoll: adaptive polling. The queue is asked again after
//   `min` while the run's jobs change (a state or node change, a report, a
//   new submission); each round without change doubles the interval, up to
//   `max`; a change resets it.
// - TrackWithSacct: where Slurm accounting is on (`scontrol show config`:
//   AccountingStorageType is not accounting_storage/none), one `sacct
//   --name=tierflow-RUN` per round tracks the run's jobs instead of squeue.
//   SacctTrackArgs are its arguments, TrackedJobs its records.
// - SubmitOptionsJson / ParseSubmitOptionsJson: the run's Slurm options
//   (partition, account, extra arguments, array throttle) as recorded with
//   the run (runs.executor_options), so a resume or a server restart submits
//   with the options the run started with.
//
// Thread-safety: stateless functions.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "scheduler/slurm_jobs.h"

namespace tierflow::scheduler::slurm {

struct PollOptions {
  std::chrono::milliseconds min{2000};   // while the jobs change
  std::chrono::milliseconds max{60000};  // backed off to, when nothing changes
};

struct PollDecision {
  std::chrono::milliseconds interval{0};
  std::string reason;
};

// The interval before the next queue query, given the one before
// (`previous`, 0 before the first) and whether the last round saw a change.
PollDecision NextPoll(std::chrono::milliseconds previous, bool changed, const PollOptions& options);

struct TrackingChoice {
  bool sacct = false;  // else squeue
  std::string reason;
};
// From `scontrol show config` output (`ok` false: scontrol failed).
TrackingChoice TrackWithSacct(std::string_view show_config, bool ok);

// `sacct` arguments (after "sacct") for every job of the run named `job_name`.
std::vector<std::string> SacctTrackArgs(const std::string& job_name);
// The jobs in that sacct's output, job steps skipped, a pending array range
// (123_[0-3]) one record per element.
std::vector<JobRecord> TrackedJobs(std::string_view sacct_output);

// "MIN[,MAX]" of --slurm-poll: durations like "0.2s", "2s", "1m"; MAX
// defaults to the larger of MIN and 60 s.
absl::StatusOr<PollOptions> ParsePollOptions(std::string_view text);

std::string SubmitOptionsJson(const SubmitOptions& options);
absl::StatusOr<SubmitOptions> ParseSubmitOptionsJson(std::string_view json);
// "--slurm-partition P --slurm-option=ARG ...", as the user gave them.
std::string DescribeSubmitOptions(const SubmitOptions& options);
// Recorded executor options (EngineOptions::executor_options) for a
// message: Slurm's described as flags, any other executor's as is.
std::string DescribeExecutorOptions(const std::string& executor, const std::string& json);

}  // namespace tierflow::scheduler::slurm
