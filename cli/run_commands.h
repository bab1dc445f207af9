// `tierflow run`, `resume` and `cancel`: the embedded mode's commands that
// drive runs (the scheduler and a local worker pool in this process). Kept
// apart from argument parsing (main.cc) like the other commands.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/slurm_executor.h"

namespace tierflow::cli {

// Exit code of a run that was cancelled (as for a shell killed by SIGINT).
inline constexpr int kExitCancelled = 130;

// --executor and the --slurm-* flags (`run`, `resume`, `server`).
struct ExecutorFlags {
  // Where tasks run: "local" (this process's worker pool) or "slurm" (Slurm
  // jobs; docs/slurm.md). "": local for a new run; a resume uses the run's
  // recorded executor and, without --slurm-* flags, its recorded options.
  std::string executor;
  std::string slurm_partition;
  std::string slurm_account;
  std::vector<std::string> slurm_options;  // extra sbatch arguments, one each
  int slurm_array_throttle = 0;            // %N on job arrays; 0: none
  std::string slurm_poll;                  // MIN[,MAX] (not recorded); "": 2s,1m
};

// The Slurm executor's options the flags give; InvalidArgument for a bad
// --slurm-poll.
absl::StatusOr<api::SlurmOptions> SlurmOptionsOf(const ExecutorFlags& flags);

struct RunOptions : ExecutorFlags {
  std::string file;                 // pipeline YAML (run)
  std::string resume;               // run id to finish instead (--resume, `resume`)
  std::vector<std::string> params;  // NAME=VALUE, checked by CheckParamArgument
  int slots = 0;                    // 0: number of CPUs
  std::string db;                   // "" : $TIERFLOW_DB or .tierflow/tierflow.db
  bool no_cache = false;
  bool quiet = false;             // only the summary
  std::string progress = "auto";  // auto | tty | plain
  int kill_grace_seconds = 10;
  std::string tiers_file;  // "": the embedded default tiers (a resume keeps the run's own)
  // The local pool's budget overrides (--cpus, --memory, --gpus; 0, "", -1: not given).
  double cpus = 0;
  std::string memory;
  int gpus = -1;
  bool dry_run = false;            // only say what would run or be reused, and why
  std::string output = "text";     // --dry-run's format: text or json
  std::vector<std::string> rerun;  // --rerun STAGE: its tasks run, the cache kept for the rest
  bool rerun_downstream = false;   // and every stage downstream of them
  bool force = false;              // resume --force: despite a changed pipeline file
};

// Runs (or resumes) a pipeline to its end: progress on `out` (the live
// block of live_display.h when `out` is a terminal, plain rate-limited lines
// otherwise), then the summary (run_summary.h). Ctrl-C (SIGINT) or SIGTERM once cancels gracefully;
// twice kills every task and exits at once. Exits 0 when the run succeeded,
// 1 when it failed or could not start, 130 when it was cancelled.
int RunPipeline(const RunOptions& options, std::ostream& out, std::ostream& err);

struct CancelOptions {
  std::string run;  // id, or last/latest
  std::string db;
  std::string scheduler;  // set: ask that server (token: TIERFLOW_TOKEN)
};

// Asks the engine driving the run to cancel it (SIGTERM to its process after
// checking it is a tierflow process on this host), or, when no engine is
// alive, records the run and its unfinished tasks cancelled in the store.
int CancelRun(const CancelOptions& options, std::ostream& out, std::ostream& err);

}  // namespace tierflow::cli
