// Slurm jobs for the attempts of a run (docs/slurm.md): the pure decisions
// and text formats of api/slurm_executor, with no process started here.
// Each decision carries a reason string.
//
// - SbatchArgs: the sbatch arguments for one job (or job array) from the
//   first attempt's resources and the user's options. Every value is its
//   own argv element; nothing goes through a shell.
// - JobScript: the `#!/bin/sh` batch script that execs `tierflow exec-task`
//   (worker/exec_task.h) for its attempt; every value in it is quoted.
// - Batching rule: ready attempts with the same BatchKey (same stage, same
//   cpus, memory, gpus, labels, timeout and preferred node) go as ONE
//   submission while each comes within kBatchWindow of the one before, for
//   at most kBatchMaxWait after the first: a job array
//   `--array=0-(N-1)[%throttle]` whose element i runs the attempt on line i
//   of the batch's list file. A batch of one is a plain job.
// - Packing rule (ItemsPerJob): short tasks go k to a job, run one after
//   another by `tierflow exec-task --list` (a Slurm job costs about a
//   second to launch). k is the stage's `slurm: {items_per_job}`, else
//   kPackTarget over the stage's median recorded time (clamped to
//   [1, kMaxPack]), else 1. With packing, array element i runs items
//   [i*k, (i+1)*k) of the batch's list; a batch of at most k items is one
//   plain job.
// - Tracking: one `squeue` per round for the whole run, by the job name
//   JobName(run) (ParseSqueue), and, for a job gone without a report, the
//   jobcomp/filetxt file's line (ParseJobcomp) or `sacct --parsable2`
//   (ParseSacct); FateOf maps Slurm's state word onto a task outcome.
//
// Thread-safety: stateless functions.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/task.h"

namespace tierflow::scheduler::slurm {

// A batch stays open while attempts of its BatchKey keep coming within
// this window of each other, and at most kBatchMaxWait after its first.
inline constexpr std::chrono::milliseconds kBatchWindow{50};
inline constexpr std::chrono::milliseconds kBatchMaxWait{1000};
// Added to the timeout (and the kill grace) before rounding up to whole
// minutes for `-t`: exec-task enforces the exact timeout; -t is the outer bound.
inline constexpr std::chrono::minutes kTimeLimitGrace{1};

// Packing: a job should carry about kPackTarget of work, so that Slurm's
// launch cost (~1 s a job) is at most ~10% of it; never more than
// kMaxPack items in one job.
inline constexpr std::chrono::seconds kPackTarget{10};
inline constexpr uint32_t kMaxPack = 100;

// The user's options (`tierflow run --slurm-...`).
struct SubmitOptions {
  std::string partition;           // --slurm-partition
  std::string account;             // --slurm-account
  std::vector<std::string> extra;  // --slurm-option, each one sbatch argument
  int array_throttle = 0;          // %N on --array; 0: none
};

struct SbatchPlan {
  std::vector<std::string> args;     // after `sbatch`, before the script path
  std::vector<std::string> reasons;  // one per decision, for humans
};

// How many attempts of a stage one job runs, one after another, and why.
struct Packing {
  uint32_t items_per_job = 1;
  std::string reason;
};
// The packing rule for `launch`'s stage (its slurm options and
// expected_duration; every attempt of a batch has the same).
Packing ItemsPerJob(const TaskLaunch& launch);

// "tierflow-RUN": every job of a run carries it, so one squeue finds them.
std::string JobName(const std::string& run_id);
// "tierflow:A[,B...]": the attempt ids a job (or array) runs, in order;
// "tierflow:A,B,.../K" when each job (array element) runs K of them.
std::string Comment(const std::vector<int64_t>& attempts, uint32_t per_job = 1);
// The attempt ids a Comment names; empty for any other comment.
std::vector<int64_t> AttemptsOfComment(std::string_view comment);
// The K of a Comment (1 when it has none, or is not one).
uint32_t ItemsPerJobOfComment(std::string_view comment);

// Attempts with equal keys may share one job array; `node` is the node
// they prefer (slurm_locality.h), "" for none: a batch never mixes two.
std::string BatchKey(const TaskLaunch& launch, const std::string& node = "");

// sbatch arguments for `attempts` like `first`, `packing.items_per_job`
// (k) to a job: more than k attempts make an array of ceil(n / k)
// elements; -t is the sum of the outer bounds of the k items a job runs.
// With the given comment and output log `log` (Slurm's %j / %A_%a
// patterns allowed). The stage's own slurm options come last.
// `nodelist`: the node holding the node-tier copies its attempts read
// (slurm_locality.h), with why; "" for none.
SbatchPlan SbatchArgs(const TaskLaunch& first, const std::vector<int64_t>& attempts,
                      const SubmitOptions& options, const std::string& log,
                      const Packing& packing = {}, const std::string& nodelist = "",
                      const std::string& nodelist_reason = "");

// The job script: one attempt (attempts.size() == 1); an array whose
// element $SLURM_ARRAY_TASK_ID runs the attempt on that line of
// `list_file` (per_job 1); or, per_job k > 1, a job (array element i)
// that runs lines [i*k, (i+1)*k) of `list_file` one after another.
std::string JobScript(const std::string& tierflow, const std::string& job_dir,
                      const std::vector<int64_t>& attempts, const std::string& list_file,
                      uint32_t per_job = 1);
// The list file of an array: one attempt id a line.
std::string ListFile(const std::vector<int64_t>& attempts);
// 'text' for /bin/sh, whatever it holds.
std::string ShellQuote(std::string_view text);

// The job id sbatch --parsable printed ("ID" or "ID;cluster"); nullopt
// when it is not one.
std::optional<std::string> ParseSbatchOutput(std::string_view output);
// The handle of attempt number `index` of a submission of `count`,
// `per_job` to a job: "JOB" for a plain job, "JOB_ELEMENT" for an array
// element (ELEMENT = index / per_job).
std::string HandleOf(const std::string& job_id, size_t index, size_t count, uint32_t per_job = 1);

// One job (or array element) as squeue, jobcomp or sacct shows it.
struct JobRecord {
  std::string handle;  // "123" or "123_4"
  std::string state;   // Slurm's word: PENDING, RUNNING, TIMEOUT, ...
  std::string nodes;
  std::string comment;
  std::string exit_code;  // "0:0" (jobcomp, sacct)
};

// `squeue --noheader --array --format=%i|%T|%N|%k` output. A pending range
// "123_[5-9%2]" or "123_[1,3-4]" becomes one record per element.
std::vector<JobRecord> ParseSqueue(std::string_view output);
// jobcomp/filetxt lines ("JobId=12 ... JobState=COMPLETED ... NodeList=n1
// ... ArrayJobId=10 ArrayTaskId=2 ... ExitCode=0:0"); array elements get
// the handle ARRAYJOB_TASK.
std::vector<JobRecord> ParseJobcomp(std::string_view text);
// `sacct --parsable2 --noheader --format=JobID,State,NodeList,ExitCode`
// lines; job steps (123.batch) are skipped; "CANCELLED by 0" → CANCELLED.
std::vector<JobRecord> ParseSacct(std::string_view output);
// JobCompLoc of `scontrol show config` when JobCompType is jobcomp/filetxt.
std::optional<std::string> JobcompFileOf(std::string_view show_config);

// What a job's Slurm state means for its attempt when there is no final
// report from exec-task (a report, when there, always wins).
struct Fate {
  bool in_flight = false;  // queued or running: keep watching
  TaskReport::Outcome outcome = TaskReport::Outcome::kLost;
  std::string message;
};
// `cancel_requested`: tierflow asked for the job's cancel (scancel).
Fate FateOf(const JobRecord& job, bool cancel_requested);
// Slurm ended the job itself (NODE_FAIL, PREEMPTED, BOOT_FAIL, TIMEOUT,
// DEADLINE, OUT_OF_MEMORY): its word wins over exec-task's report of a task
// killed by a signal tierflow did not send (Slurm signals every process
// of a job it ends, the task's too).
bool EndedBySlurm(std::string_view state);

}  // namespace tierflow::scheduler::slurm
