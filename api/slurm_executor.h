// The Slurm executor (docs/slurm.md): the embedded engine's tasks run as
// Slurm jobs. Each attempt's launch is written to the run's job folder
// (on a file system the submitting host and the nodes share), ready
// attempts of one stage with the same resources are batched into one
// `sbatch` (a job array; scheduler/slurm_jobs.h has the rule), and each job
// runs `tierflow exec-task` (worker/exec_task.h), which leaves the
// attempt's reports in the job folder. One `squeue` per round, by the
// run's job name, tracks every job of the run; a job gone from it without
// a report is reported with Slurm's word (jobcomp/filetxt when the cluster
// writes it) as lost, failed or timed out. Its attempts outlive the engine
// (common/task.h "Attempts that outlive the engine"): a resumed run takes
// them back by handle, or by the job comment that names the attempt.
// Node tiers are each node's own (docs/slurm.md "Node-local tiers"): the
// executor learns from start reports which node holds which copies, sends
// their readers there (`--nodelist`, scheduler/slurm_locality.h, the
// reason with the start report: the `placed` event), and deletes evicted
// copies with one eviction job per node per round (`tierflow node-evict`).
//
// Thread-safety: the executor is called from the engine's threads; one
// thread of its own submits and tracks, and delivers every report.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/task.h"
#include "scheduler/engine.h"
#include "scheduler/slurm_jobs.h"
#include "scheduler/slurm_tracking.h"

namespace tierflow::api {

struct SlurmOptions {
  // The job folder: launch files, reports, job scripts and logs. Must be
  // reachable from every node. "": STATE_DIR/runs/RUN/slurm, where
  // STATE_DIR is `state_dir` (the store's folder).
  std::string job_dir;
  std::string state_dir;
  std::string tierflow;  // the binary jobs run; "": this one (/proc/self/exe)
  scheduler::slurm::SubmitOptions submit;
  std::chrono::milliseconds batch_window = scheduler::slurm::kBatchWindow;
  // Adaptive polling (scheduler/slurm_tracking.h NextPoll): the report files
  // are read every poll.min; squeue (or sacct) runs at poll.min while the
  // run's jobs change, backing off (x2) to poll.max when nothing changes.
  scheduler::slurm::PollOptions poll;
  // A job gone from squeue without a report: waited for this long (a
  // shared file system may show the report late) before it counts as lost.
  std::chrono::milliseconds lost_grace = std::chrono::seconds(2);
};

using scheduler::slurm::ParsePollOptions;

// OK when sbatch, squeue and scancel are on PATH; else an error naming the
// first one missing.
absl::Status CheckSlurmCommands();

absl::StatusOr<std::unique_ptr<Executor>> StartSlurmExecutor(SlurmOptions options,
                                                             Executor::ReportCallback on_report);

// An engine whose tasks run as Slurm jobs (`tierflow run --executor slurm`).
std::unique_ptr<scheduler::Engine> MakeSlurmEngine(scheduler::EngineOptions engine_options,
                                                   SlurmOptions slurm_options);
// Makes `engine_options` run its tasks as Slurm jobs (what MakeSlurmEngine
// does; `tierflow server --executor slurm` too), its submit options recorded
// with a new run (EngineOptions::executor_options).
void UseSlurm(scheduler::EngineOptions& engine_options, SlurmOptions slurm_options);

// The executor a run was started with and, for Slurm, its recorded submit
// options (unset: none recorded, a run of schema 11).
struct RecordedExecutor {
  std::string run_id;
  std::string executor;  // "": the local pool, or a server's workers
  std::optional<scheduler::slurm::SubmitOptions> slurm;
};
absl::StatusOr<RecordedExecutor> RecordedExecutorOf(const std::string& db_path,
                                                    const std::string& run_ref);

// Cancels every job of `run_id` (by its job name, no other job): queued
// ones with `scancel`, running ones with `scancel --batch --signal=TERM`
// (exec-task stops its task with the kill grace and reports it cancelled).
// For `tierflow cancel` of a run whose engine is gone.
absl::Status CancelSlurmJobs(const std::string& run_id);

}  // namespace tierflow::api
