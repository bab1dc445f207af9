// Cluster mode commands: `tierflow server`, `worker`, `submit`, `status`.
// Tokens come from the environment, never the command line (where `ps`
// shows them): TIERFLOW_CLIENT_TOKEN and TIERFLOW_WORKER_TOKEN for the
// server, TIERFLOW_WORKER_TOKEN for a worker, TIERFLOW_TOKEN for clients.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "cli/run_commands.h"

namespace tierflow::cli {

// --executor slurm: the server's runs run as Slurm jobs, not on workers.
struct ServerCommandOptions : ExecutorFlags {
  std::string listen = "127.0.0.1:7070";
  std::string db;
  std::string tiers_file;
  double worker_timeout_seconds = 10;
  std::string tls_cert;
  std::string tls_key;
  std::string http_listen;  // "" : no HTTP API / UI
};
int RunServerCommand(const ServerCommandOptions& options, std::ostream& out, std::ostream& err);

struct WorkerCommandOptions {
  std::string scheduler;  // "" : $TIERFLOW_SCHEDULER
  int slots = 0;
  double cpus = 0;     // 0: CPUs
  std::string memory;  // a size; "": the machine's memory
  int gpus = 0;
  std::string name;
  std::vector<std::string> tiers;   // NAME=PATH
  std::vector<std::string> labels;  // KEY=VALUE
  std::string state_dir;            // "" : .tierflow/workers
};
int RunWorkerCommand(const WorkerCommandOptions& options, std::ostream& out, std::ostream& err);

// `tierflow exec-task`: runs one attempt for an executor whose attempts
// outlive the engine (a batch scheduler's job), from its launch file, and
// writes its reports beside (worker/exec_task.h).
struct ExecTaskOptions {
  std::string launch;
  std::string report;
  // A packed job: lines [first, first + count) of `list`, files in `dir`.
  std::string dir;
  std::string list;
  size_t first = 0;
  size_t count = 1;
};
int RunExecTask(const ExecTaskOptions& options, std::ostream& err);
int RunNodeEvict(const std::string& list, std::ostream& err);

struct SubmitOptions {
  std::string scheduler;
  std::string file;
  std::vector<std::string> params;
  int priority = 0;
  bool wait = false;
};
int RunSubmit(const SubmitOptions& options, std::ostream& out, std::ostream& err);

struct StatusOptions {
  std::string scheduler;  // "": the local store (status_commands.h)
  std::string run = "last";
  std::string db = "";          // the local store; "" : $TIERFLOW_DB or .tierflow/tierflow.db
  std::string output = "text";  // text | json (json: the local store only)
};
int RunStatus(const StatusOptions& options, std::ostream& out, std::ostream& err);
// `tierflow runs --scheduler`: the server's newest 20 runs.
int RunRemoteRuns(const StatusOptions& options, std::ostream& out, std::ostream& err);
// `tierflow workers`: uses StatusOptions::scheduler.
int RunWorkers(const StatusOptions& options, std::ostream& out, std::ostream& err);

}  // namespace tierflow::cli
