// The task contract between the scheduler and whatever runs tasks: what the
// scheduler asks for (TaskLaunch), what comes back (TaskReport), and the
// small interface it asks through (Executor). The embedded mode's local
// worker pool implements Executor in-process; cluster mode implements it
// over gRPC. Plain values so that they map one-to-one onto API messages.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/units.h"

namespace tierflow {

// One output of an attempt. The command writes `staging_path` (given to it
// as TIERFLOW_OUTPUT_<NAME>); only after a successful exit does the worker
// move it to `final_path`, so a crash or failure never leaves a partial
// artifact where consumers look.
struct OutputLaunch {
  std::string name;
  std::string staging_path;
  std::string final_path;
  // For a reuse launch: the earlier artifact to link to `final_path`.
  std::string reuse_from;
  // `final_path` is on a durable tier: fsync it before reporting success.
  bool durable = false;
  // The root of the tier both paths are on: the worker makes every change
  // there through it (storage_adapters/tier_root.h), never by plain path.
  std::string tier_root;
};

// Cluster mode: an artifact the worker copies onto one of its node tiers
// (its own `--tier NAME=PATH`) before the task starts, from a copy on a
// cluster tier that every worker reaches. A copy already there from an
// earlier task on that worker, with the same content hash, is used as is.
struct StageIn {
  std::string tier;         // the node tier
  std::string key;          // the artifact's key, the same on every tier
  std::string source_root;  // the cluster (posix) tier's root; the artifact is source_root/key
  std::string content_hash;
  uint64_t bytes = 0;
  // `stream: true`: the task starts once the first file is there; the
  // worker copies the rest while it runs (docs/tiers.md "Streamed inputs").
  bool stream = false;
};

// Cluster mode: an input the task reads on a node tier. Once every
// StageIn of that tier under `key` is there, the worker points `env` at
// NODE_ROOT/key; otherwise (a worker without the tier, a copy that failed)
// the task reads in place, at the cluster path `env` already holds.
struct NodeInput {
  std::string env;  // TIERFLOW_INPUT_<NAME>
  std::string tier;
  std::string key;  // an artifact's key, or the folder gathering a foreach stage's items
};

// Cluster mode: a checkpointing task writes its checkpoints on its
// worker's node tier `tier` (at NODE_ROOT/key), and the worker copies each
// one it commits (folder, then marker) to the folder the scheduler
// watches (TaskLaunch::checkpoint_dir, on a cluster tier), which flushes it
// to a durable tier. The worker keeps the newest `keep` on the node tier
// and removes the folder when the attempt ends. A worker without the tier
// lets the task write in checkpoint_dir itself.
struct CheckpointRelay {
  std::string tier;
  std::string key;
  int keep = 0;  // 0: all of them
};

// A stage's own `slurm:` options (docs/slurm.md); other executors ignore them.
struct SlurmStageOptions {
  uint32_t items_per_job = 0;        // 0: the packing rule decides (scheduler/slurm_jobs.h)
  std::vector<std::string> options;  // sbatch arguments, after the run's --slurm-option ones
};

struct TaskLaunch {
  enum class Mode {
    kRun,    // run the command
    kReuse,  // a cache hit: materialise reuse_from at final_path, run nothing
  };
  Mode mode = Mode::kRun;
  int64_t attempt_id = 0;  // unique in the store; reports carry it back
  std::string run_id;
  std::string task_id;
  uint32_t attempt = 1;           // 1-based attempt number of this task
  std::vector<std::string> argv;  // argv command, or
  std::string shell;              // a script for /bin/sh -c
  // The whole task environment (TIERFLOW_* contract, params, declared env),
  // added to the worker's own environment.
  std::vector<std::pair<std::string, std::string>> env;
  std::string working_dir;
  // stdout and stderr of the attempt: created when the command first
  // writes, so a silent attempt costs no file (TaskReport::log_bytes 0).
  std::string log_path;
  std::vector<OutputLaunch> outputs;
  // TIERFLOW_CHECKPOINT_DIR of a checkpointing stage, kept across attempts;
  // the worker creates it before the command starts. Empty: none.
  std::string checkpoint_dir;
  // The tier root checkpoint_dir is under; empty when it is in the run's
  // own folder in the state directory (no checkpoint tier).
  std::string checkpoint_root;
  std::optional<Duration> timeout;
  Duration kill_grace = std::chrono::seconds(10);  // TERM, then KILL after this
  // What the stage asks for (`resources:`): a worker runs it only where it
  // fits beside what that worker runs already.
  double cpus = 1;
  uint64_t memory = 0;  // bytes; 0: none declared
  uint32_t gpus = 0;
  std::map<std::string, std::string> labels;  // a worker must have every one
  std::vector<StageIn> stage_in;              // cluster mode: copies onto node tiers
  std::vector<NodeInput> node_inputs;
  std::optional<CheckpointRelay> checkpoint_relay;  // cluster mode
  // The median time of the stage's succeeded, non-reused attempts in
  // earlier runs of a pipeline of the same name (scheduler/stage_times.h);
  // unset: no history. The Slurm executor packs short tasks by it.
  std::optional<Duration> expected_duration;
  SlurmStageOptions slurm;
  // The configured roots of the node tiers stage_in and checkpoint_relay
  // name (name -> root), for a job side that has no `--tier NAME=PATH` of
  // its own (exec-task on a Slurm node). A root may hold $VAR or ${VAR}
  // ($TMPDIR, $SLURM_JOB_ID, $SLURMD_NODENAME), expanded on the node
  // (worker/job_node_side.h). Cluster workers use their own tiers.
  std::map<std::string, std::string> node_tier_roots;
};

struct OutputReport {
  std::string name;
  std::string path;          // final path
  std::string content_hash;  // "xxh3:<32 hex>"
  uint64_t bytes = 0;
  uint64_t files = 0;
};

// A StageIn as the worker carried it out (told with kStarted).
struct NodeCopyReport {
  std::string tier;
  std::string key;
  std::string path;  // on the worker
  uint64_t bytes = 0;
  bool reused = false;     // there already, from an earlier task on the worker
  int64_t elapsed_ms = 0;  // the copy's time, which the task waited
  std::string error;       // it failed: the task reads the input in place
};

struct TaskReport {
  enum class Outcome {
    // Accepted by a scheduler outside tierflow that queues it (a Slurm
    // job): `handle` names it there; kStarted follows when it runs. Only
    // executors whose attempts outlive the engine send it.
    kSubmitted,
    kStarted,    // the process is running (pid set); more reports follow
    kSucceeded,  // exited 0, every output present and moved into place
    kFailed,     // non-zero exit, signal, missing output, or spawn error
    kTimedOut,   // killed after its timeout
    kCancelled,  // killed by Cancel/CancelAll
    kLost,       // the worker running it was lost: run it again, not a failure
  };
  int64_t attempt_id = 0;
  Outcome outcome = Outcome::kFailed;
  // The executor's durable name for the attempt (a Slurm job id, "4711_3"),
  // with kSubmitted or kStarted: recorded with the attempt, and handed back
  // to Executor::Reattach by an engine that resumes the run.
  std::string handle;
  int pid = 0;
  std::optional<int> exit_code;
  std::optional<int> signal;
  std::string message;  // why it failed, for humans: "exit 3", "output model missing: ..."
  std::vector<OutputReport> outputs;
  uint64_t log_bytes = 0;  // written to log_path (none: no file)
  int64_t started_ms = 0;  // wall clock, ms since the epoch
  int64_t finished_ms = 0;
  std::string worker;                       // who ran it; "" : the local pool
  std::string worker_id;                    // cluster mode: its id from this registration
  std::vector<NodeCopyReport> node_copies;  // with kStarted, in cluster mode
  // With kStarted, in cluster mode: where the task writes its checkpoints
  // on the worker's node tier (TaskLaunch::checkpoint_relay), or why it
  // writes them in the cluster folder instead.
  std::string checkpoint_node_dir;
  std::string checkpoint_node_error;
  // How the attempt spent its time on data (final reports of commands that
  // ran): what its task helpers waited for inputs (TIERFLOW_DATA_WAIT_FILE,
  // docs/task-helpers.md), the time its processes were seen blocked on I/O
  // (state D, sampled from /proc), and what they read and wrote (rchar and
  // wchar of /proc/PID/io, children included).
  int64_t data_wait_ms = 0;
  int64_t io_wait_ms = 0;
  uint64_t read_bytes = 0;
  uint64_t write_bytes = 0;
};

// kSucceeded, kFailed, kTimedOut, kCancelled, kLost: the attempt is over.
inline bool IsFinal(TaskReport::Outcome outcome) {
  return outcome != TaskReport::Outcome::kSubmitted && outcome != TaskReport::Outcome::kStarted;
}

// Runs tasks. Launch and Cancel never block on a task; reports arrive on
// the callback given at construction, from the executor's own threads, one
// kStarted then exactly one final report per launch (a final report may
// come without kStarted when the launch fails early).
//
// Attempts that outlive the engine (a batch scheduler's jobs: Slurm). Such
// an executor says so (Reattaches) and then:
// - names each attempt durably where it runs, by its attempt id (a job's
//   name or comment), so that the attempt can be found again whether or
//   not its handle was recorded (a crash between submitting and recording);
// - reports kSubmitted with the handle once it has it (and, in its message,
//   how it submitted it: recorded as a `submitted` event); the engine records
//   the handle with the attempt;
// - takes back, on Reattach, an attempt an earlier engine launched: it
//   never submits it again, and reports it on as if it had launched it
//   (a final report only, if it ended while no engine watched);
// - delivers reports from what the attempt leaves behind (a report file on
//   a shared file system), not from a live connection: any report may come
//   late, twice, or as the first one heard of an attempt. The engine
//   applies a final report once; what follows it for the same attempt, or
//   comes for an attempt that is not the task's current one, is ignored.
// The engine's side (scheduler/resume.h): attempts recorded running are
// kept running at resume and handed to Reattach; one the executor cannot
// find is recorded `lost` and runs again, its retries untouched. Executors
// whose attempts die with the engine (the local pool, cluster workers,
// which stop a lost scheduler's tasks) leave Reattaches false: a resume
// records their running attempts lost.
class Executor {
 public:
  using ReportCallback = std::function<void(TaskReport)>;
  virtual ~Executor() = default;
  virtual void Launch(TaskLaunch launch) = 0;
  // Its attempts outlive this process: a resume re-attaches to them.
  virtual bool Reattaches() const { return false; }
  // Takes back the attempt `launch` describes (rebuilt by the resuming
  // engine exactly as it was launched, attempt id included), recorded with
  // `handle` ("" when the crash came before the handle was recorded).
  // true: the executor has it (queued, running, or ended with a report it
  // will deliver); false: it is gone without a report, and the engine
  // records it lost. Never blocks on the attempt itself.
  virtual bool Reattach(const TaskLaunch& launch, const std::string& handle) {
    (void)launch, (void)handle;
    return false;
  }
  // Terminates the attempt's process group: TERM, KILL after its grace.
  virtual void Cancel(int64_t attempt_id) = 0;
  // Sends KILL to every running task's process group at once (second Ctrl-C).
  virtual void KillAll() = 0;
  // Sends KILL to this one attempt's process group at once (no grace); it
  // ends reported kCancelled. Nothing else is touched.
  virtual void Kill(int64_t attempt_id) { Cancel(attempt_id); }
  // Cluster mode: `worker` may delete its copy of `key` on its node tier
  // `tier` (a NodeCopyReport); nobody reads it there any more.
  virtual void EvictNodeCopy(const std::string& worker, const std::string& tier,
                             const std::string& key) {
    (void)worker, (void)tier, (void)key;
  }
};

}  // namespace tierflow
