// `tierflow`: argument parsing and dispatch. Each command lives in
// commands.cc and its siblings; this file describes the command line, with
// command_line.h (the flags every command shares, the commands that look at
// runs).
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "cli/cluster_commands.h"
#include "cli/command_line.h"
#include "cli/commands.h"
#include "cli/gc_commands.h"
#include "cli/inspect_commands.h"
#include "cli/lineage_export_commands.h"
#include "cli/run_commands.h"
#include "cli/terminal_style.h"
#include "cli/tiers_commands.h"
#include "cli/ui_commands.h"
#include "cli/watch_commands.h"
#include "common/suggest.h"

namespace tierflow::cli {
namespace {

// Lists each command by the first sentence of its description; the whole
// paragraph is for `tierflow COMMAND --help`.
class Formatter : public CLI::Formatter {
 public:
  std::string make_subcommand(const CLI::App* command) const override {
    std::string summary = command->get_description();
    if (size_t end = summary.find(". "); end != std::string::npos) summary.resize(end + 1);
    std::stringstream out;
    CLI::detail::format_help(out, command->get_display_name(true), summary, get_column_width());
    return out.str();
  }
};

void AddParamOption(CLI::App& command, std::vector<std::string>& params) {
  command
      .add_option("--param", params,
                  "Override a pipeline param (repeatable); lists are comma-separated, e.g. "
                  "--param regions=eu,us")
      ->type_name("NAME=VALUE")
      ->allow_extra_args(false)
      ->check(CLI::Validator([](std::string& argument) { return CheckParamArgument(argument); }, "",
                             "NAME=VALUE"));
}

CLI::App* AddValidateCommand(CLI::App& app, ValidateOptions& options) {
  CLI::App* command = app.add_subcommand(
      "validate",
      "Check pipeline files without running anything. Every file is checked in full: YAML "
      "syntax, every field, references between stages, params and dependency cycles. Prints "
      "'FILE: ok (S stages, T tasks)' for each valid file; every problem goes to stderr as "
      "file:line:col: field.path: message. Exits 0 when every file is valid, 1 when any is "
      "not, 2 on a usage error.");
  command->add_option("files", options.files, "Pipeline YAML files")->required()->type_name("FILE");
  AddParamOption(*command, options.params);
  command->footer("Example:\n  tierflow validate pipeline.yaml --param shards=8");
  return command;
}

// --rerun and --rerun-downstream of `run` and `plan --explain`.
void AddRerunOptions(CLI::App& command, std::vector<std::string>& rerun, bool& downstream) {
  command
      .add_option("--rerun", rerun,
                  "Run this stage's tasks even when the cache has their outputs, keeping the "
                  "cache for the rest (repeatable)")
      ->type_name("STAGE")
      ->allow_extra_args(false);
  command.add_flag("--rerun-downstream", downstream,
                   "With --rerun: also run every stage downstream of those");
}

CLI::App* AddPlanCommand(CLI::App& app, PlanOptions& options) {
  CLI::App* command = app.add_subcommand(
      "plan",
      "Show the tasks a pipeline expands to, without running anything. Tasks are listed layer "
      "by layer in dependency order with their I/O profile and dependencies, after the "
      "pipeline's params and critical path. --output json gives every field (sizes in bytes, "
      "durations in milliseconds) for scripts. With --tiers, also where every output lives "
      "(its home tier) and where each consumer reads it, with the estimates that decided. "
      "Exits 0 on success, 1 when the file is invalid or an output fits no tier, 2 on a usage "
      "error.");
  command->add_option("file", options.file, "Pipeline YAML file")->required()->type_name("FILE");
  AddParamOption(*command, options.params);
  command->add_option("--output,-o", options.output, "Output format")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  command
      ->add_option("--tiers", options.tiers_file,
                   "Also place every output on these storage tiers (docs/tiers.md): its home "
                   "tier and where each consumer reads it, with the estimates that decided")
      ->check(CLI::ExistingFile)
      ->type_name("FILE");
  AddDbOption(*command, options.db);
  command->add_flag("--explain", options.explain,
                    "Instead: for every task, whether a run now would run it or reuse an earlier "
                    "attempt's outputs, and why (no earlier run, command changed, param X "
                    "changed, input Y changed, env changed, forced, ...), looked up in the "
                    "store (--db) as `run` would. Same as `run FILE --dry-run`");
  AddRerunOptions(*command, options.rerun, options.rerun_downstream);
  command->footer(
      "Example:\n  tierflow plan pipeline.yaml --param epochs=5 --output json\n"
      "  tierflow plan pipeline.yaml --tiers tiers.yaml\n"
      "  tierflow plan pipeline.yaml --explain --param lr=0.01");
  return command;
}

// --executor and the --slurm-* options of `run`, `resume` and `server`.
void AddExecutorOptions(CLI::App& command, ExecutorFlags& options) {
  command
      .add_option("--executor", options.executor,
                  "Where tasks run: local (this process's worker pool, the default) or slurm "
                  "(each task a Slurm job through sbatch; docs/slurm.md). A resume uses the "
                  "run's recorded executor and Slurm options; others are refused")
      ->check(CLI::IsMember({"local", "slurm"}));
  command.add_option("--slurm-partition", options.slurm_partition, "sbatch --partition")
      ->type_name("P");
  command.add_option("--slurm-account", options.slurm_account, "sbatch --account")->type_name("A");
  command
      .add_option("--slurm-option", options.slurm_options,
                  "One more sbatch argument, as is (repeatable): --slurm-option=--qos=high")
      ->type_name("ARG")
      ->allow_extra_args(false);
  command
      .add_option("--slurm-array-throttle", options.slurm_array_throttle,
                  "Elements of one job array running at once (sbatch --array=...%N)")
      ->check(CLI::Range(1, 1000000))
      ->type_name("N");
  command
      .add_option("--slurm-poll", options.slurm_poll,
                  "How often the run's jobs are looked at: every MIN while they change, backing "
                  "off to MAX when nothing does (default 2s,1m; not recorded with the run)")
      ->type_name("MIN[,MAX]");
}

// The local pool's budget (docs/running.md "Resources on one machine").
void AddBudgetOptions(CLI::App& command, RunOptions& options) {
  command
      .add_option("--cpus", options.cpus,
                  "CPUs tasks may use at once, by their resources.cpus (default: the larger of "
                  "the cores and --slots)")
      ->check(CLI::Range(0.01, 100000.0));
  command
      .add_option("--memory", options.memory,
                  "Memory tasks may use at once, by their resources.memory, e.g. 64GiB "
                  "(default: the machine's RAM)")
      ->type_name("SIZE");
  command
      .add_option("--gpus", options.gpus,
                  "GPUs tasks may use, devices 0..N-1 (default: CUDA_VISIBLE_DEVICES's, else "
                  "nvidia-smi -L's, else none)")
      ->check(CLI::Range(0, 1024))
      ->type_name("N");
}

CLI::App* AddRunCommand(CLI::App& app, RunOptions& options) {
  CLI::App* command = app.add_subcommand(
      "run",
      "Run a pipeline here, now: the scheduler and a local worker pool in this process. Tasks "
      "run as subprocesses in the pipeline file's folder, each in its own process group, with "
      "their inputs, outputs and params in TIERFLOW_* environment variables. Every transition "
      "is recorded in the state database before it is acted on, so a killed run can be "
      "finished with 'tierflow resume RUN'. Tasks whose command, params and inputs match an "
      "earlier successful attempt reuse its outputs (--no-cache runs everything). Ctrl-C "
      "cancels gracefully; a second Ctrl-C kills every task and exits at once. Exits 0 when "
      "the run succeeded, 1 when it failed or could not start, 2 on a usage error, 130 when "
      "cancelled.");
  command->add_option("file", options.file, "Pipeline YAML file")->type_name("FILE");
  AddParamOption(*command, options.params);
  command->add_option("--slots,-j", options.slots, "Tasks run at once (default: CPUs)")
      ->check(CLI::Range(1, 100000))
      ->type_name("N");
  AddDbOption(*command, options.db);
  command->add_option("--resume", options.resume, "Finish an earlier run instead of starting one")
      ->type_name("RUN");
  command->add_flag("--no-cache", options.no_cache, "Run every task, reusing nothing");
  AddBudgetOptions(*command, options);
  AddRerunOptions(*command, options.rerun, options.rerun_downstream);
  command->add_flag("--dry-run", options.dry_run,
                    "Run nothing: for every task, whether it would run or be reused, and why "
                    "(as `plan FILE --explain`); nothing is written to the store");
  command->add_option("--output,-o", options.output, "--dry-run's output format")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  command
      ->add_option(
          "--tiers", options.tiers_file,
          "Storage tiers to place the run's data on (docs/tiers.md); default: the "
          "embedded tiers ram (/dev/shm/tierflow-UID, or $TIERFLOW_RAM_ROOT; mode 0700), local "
          "and bulk beside the state database")
      ->type_name("FILE");
  command->add_flag("--quiet,-q", options.quiet, "Print only the summary");
  command
      ->add_option("--progress", options.progress,
                   "Progress display: a live block redrawn in place on a terminal (auto), or "
                   "plain lines: progress every 10 s and per stage, every failure and retry")
      ->check(CLI::IsMember({"auto", "tty", "plain"}))
      ->capture_default_str();
  command
      ->add_option("--kill-grace", options.kill_grace_seconds,
                   "Seconds between TERM and KILL when a task times out or is cancelled")
      ->check(CLI::Range(0, 3600))
      ->capture_default_str();
  AddExecutorOptions(*command, options);
  command->footer(
      "Examples:\n  tierflow run examples/quickstart/pipeline.yaml --param epochs=3\n"
      "  tierflow run pipeline.yaml --slots 8 --db /scratch/tierflow.db\n"
      "  tierflow run --resume quickstart-3f9a1c\n"
      "  tierflow run pipeline.yaml --dry-run\n"
      "  tierflow run pipeline.yaml --rerun train --rerun-downstream");
  return command;
}

CLI::App* AddResumeCommand(CLI::App& app, RunOptions& options) {
  CLI::App* command = app.add_subcommand(
      "resume",
      "Finish a run that failed, was cancelled or whose tierflow process died (even by kill "
      "-9). Tasks that succeeded, and whose outputs are still there, are kept; every other "
      "task runs again with a fresh retry budget; leftover processes of the old run are "
      "killed. The pipeline and params are those the run started with. When the pipeline file "
      "changed since in a way that changes an unfinished task's command, params or env, the "
      "resume is refused, naming the tasks: `tierflow run FILE` reuses what succeeded, and "
      "--force resumes with the definition the run started with. Exits as 'run' does.");
  command->add_option("run", options.resume, "Run id (see 'tierflow runs'), or last")
      ->required()
      ->type_name("RUN");
  command->add_option("--slots,-j", options.slots, "Tasks run at once (default: CPUs)")
      ->check(CLI::Range(1, 100000))
      ->type_name("N");
  AddDbOption(*command, options.db);
  AddBudgetOptions(*command, options);
  command->add_flag("--quiet,-q", options.quiet, "Print only the summary");
  command->add_flag("--force", options.force,
                    "Resume with the run's stored definition even though the pipeline file "
                    "changed the command, params or env of an unfinished task");
  AddExecutorOptions(*command, options);
  command->footer("Example:\n  tierflow resume quickstart-3f9a1c");
  return command;
}

CLI::App* AddCancelCommand(CLI::App& app, CancelOptions& options) {
  CLI::App* command = app.add_subcommand(
      "cancel",
      "Cancel a running run: its tierflow process stops the running tasks (TERM, then KILL "
      "after the grace) and records them cancelled. A run whose process died is recorded "
      "cancelled directly. Exits 0 when the cancel was delivered or recorded, 1 otherwise.");
  command->add_option("run", options.run, "Run id (see 'tierflow runs'), or last")
      ->required()
      ->type_name("RUN");
  AddDbOption(*command, options.db);
  command
      ->add_option("--scheduler", options.scheduler,
                   "Cancel it on this scheduler ('tierflow server') instead of locally")
      ->type_name("HOST:PORT");
  command->footer("Example:\n  tierflow cancel quickstart-3f9a1c");
  return command;
}

// `tierflow tiers list|probe`; returns {list, probe}.
std::pair<CLI::App*, CLI::App*> AddTiersCommands(CLI::App& app, TiersOptions& options) {
  CLI::App* tiers = app.add_subcommand(
      "tiers",
      "The storage tiers artifacts live on: those of a tiers file (--tiers, see docs/tiers.md) "
      "or, without one, the embedded defaults ram (/dev/shm), local and bulk (in the state "
      "folder).");
  tiers->require_subcommand(1);
  CLI::App* list = tiers->add_subcommand(
      "list",
      "Show every tier: adapter, scope, durability, capacity, free space, its newest measured "
      "profile (or the declared one) and where it points. --output json gives every field.");
  CLI::App* probe = tiers->add_subcommand(
      "probe",
      "Measure tiers through their adapters (sequential write and read MB/s, 4 KiB random-read "
      "IOPS and latency, small-object create and stat latency) within --seconds each, and "
      "record the profiles in the state database for placement and `tiers list`. Writes and "
      "then deletes a test object of up to 256 MiB under .tierflow-probe/ on each tier.");
  for (CLI::App* command : {list, probe}) {
    command->add_option("--tiers", options.tiers_file, "Tiers file (default: embedded defaults)")
        ->check(CLI::ExistingFile)
        ->type_name("FILE");
    AddDbOption(*command, options.db);
  }
  AddOutputOption(*list, options.output, {"text", "json"});
  list->add_option("--scheduler", options.scheduler,
                   "List the tiers of this scheduler ('tierflow server') instead")
      ->type_name("HOST:PORT");
  probe->add_option("tier", options.names, "Tiers to probe (default: all)")->type_name("TIER");
  probe->add_option("--seconds", options.seconds, "Time budget per tier")
      ->check(CLI::Range(0.5, 3600.0))
      ->type_name("S")
      ->capture_default_str();
  list->footer("Example:\n  tierflow tiers list --tiers tiers.yaml");
  probe->footer("Examples:\n  tierflow tiers probe\n  tierflow tiers probe local --seconds 5");
  return {list, probe};
}

// `tierflow gc` (scheduler/gc.h decides, docs/running.md "Cleaning up").
CLI::App* AddGcCommand(CLI::App& app, GcCommandOptions& options) {
  CLI::App* command = app.add_subcommand(
      "gc",
      "Delete old runs' data: their artifacts' copies on every tier (archive tiers excepted), "
      "checkpoints, run folders and cache entries, keeping anything a kept or running run "
      "still uses. Runs stay listed, marked gc'd. Needs --keep-last and/or --older-than; a "
      "run goes only when every rule given lets it go.");
  command->add_option("--keep-last", options.keep_last, "Keep the N newest runs of each pipeline")
      ->check(CLI::NonNegativeNumber)
      ->type_name("N");
  command
      ->add_option("--older-than", options.older_than,
                   "Only runs that finished longer ago than D (7d, 12h, 30m, 45s)")
      ->type_name("D");
  command->add_flag("--dry-run", options.dry_run, "Show what would go; change nothing");
  AddDbOption(*command, options.db);
  AddOutputOption(*command, options.output, {"text", "json"});
  command->footer(
      "Examples:\n  tierflow gc --keep-last 5\n  tierflow gc --older-than 7d --dry-run");
  return command;
}

// CLI11 exits with its own codes (105, 106, ...); tierflow promises 2 for
// every usage error and 0 for --help and --version.
int ExitForParseError(const CLI::App& app, const CLI::ParseError& error) {
  // CLI11 reports `tierflow valdate` as a missing subcommand; name the
  // word the user typed instead, with a suggestion.
  const std::vector<std::string> remaining = app.remaining();
  if (dynamic_cast<const CLI::RequiredError*>(&error) != nullptr && app.get_subcommands().empty() &&
      !remaining.empty()) {
    std::vector<std::string> commands;
    for (const CLI::App* command : app.get_subcommands({})) commands.push_back(command->get_name());
    const std::string& word = remaining.front();
    std::cerr << "unknown command '" << word << "'" << DidYouMean(word, commands)
              << "\nRun with --help for more information.\n";
    return kExitUsage;
  }
  app.exit(error);
  const bool success = dynamic_cast<const CLI::Success*>(&error) != nullptr;
  return success ? kExitOk : kExitUsage;
}

// `tierflow server|worker|submit|status`: cluster mode (api/cluster.h).
struct ClusterCommands {
  CLI::App* server;
  CLI::App* worker;
  CLI::App* exec_task;
  CLI::App* submit;
  CLI::App* status;
  CLI::App* workers;
};

ClusterCommands AddClusterCommands(CLI::App& app, ServerCommandOptions& server_options,
                                   WorkerCommandOptions& worker_options,
                                   ExecTaskOptions& exec_task_options,
                                   SubmitOptions& submit_options, StatusOptions& status_options) {
  const char* scheduler_help =
      "The scheduler's HOST:PORT (default: $TIERFLOW_SCHEDULER, else 127.0.0.1:7070)";
  CLI::App* server = app.add_subcommand(
      "server",
      "Run the scheduler for a cluster: the same engine as 'run', one per submitted run, "
      "leasing tasks to workers over gRPC, with the state database here. Listens on loopback "
      "unless --listen says otherwise, which then needs TIERFLOW_CLIENT_TOKEN and "
      "TIERFLOW_WORKER_TOKEN set (bearer tokens for clients and workers). Prints 'listening on "
      "HOST:PORT' when ready; stops on SIGINT or SIGTERM.");
  server->add_option("--listen", server_options.listen, "HOST:PORT to listen on (port 0: any)")
      ->capture_default_str();
  AddExecutorOptions(*server, server_options);
  AddDbOption(*server, server_options.db);
  server->add_option("--tiers", server_options.tiers_file, "Storage tiers (docs/tiers.md)")
      ->type_name("FILE");
  server
      ->add_option("--tls-cert", server_options.tls_cert,
                   "TLS: the server's certificate chain (PEM); clients and workers then need "
                   "TIERFLOW_TLS_CA")
      ->type_name("FILE");
  server
      ->add_option("--tls-key", server_options.tls_key, "TLS: the certificate's private key (PEM)")
      ->type_name("FILE");
  server
      ->add_option("--http-listen", server_options.http_listen,
                   "Also serve the web UI, the JSON API (/api/v1) and /metrics on HOST:PORT "
                   "(e.g. 127.0.0.1:8080; port 0: any); they require TIERFLOW_CLIENT_TOKEN "
                   "when it is set")
      ->type_name("HOST:PORT");
  server
      ->add_option("--worker-timeout", server_options.worker_timeout_seconds,
                   "Seconds without a word from a worker before it counts as lost")
      ->check(CLI::Range(0.2, 3600.0))
      ->capture_default_str();
  CLI::App* worker = app.add_subcommand(
      "worker",
      "Run tasks for a scheduler: connect, register the slots and node tiers, and run what it "
      "leases as subprocesses, reporting back. Reconnects when the connection is lost; stops "
      "on SIGINT or SIGTERM. The token, when the server needs one, is TIERFLOW_WORKER_TOKEN.");
  worker->add_option("--scheduler", worker_options.scheduler, scheduler_help)
      ->type_name("HOST:PORT");
  worker->add_option("--slots", worker_options.slots, "Tasks at once (default: CPUs)")
      ->check(CLI::Range(1, 100000));
  worker
      ->add_option("--cpus", worker_options.cpus,
                   "CPUs its tasks may use at once, by their resources.cpus (default: CPUs)")
      ->check(CLI::Range(0.01, 100000.0));
  worker
      ->add_option("--memory", worker_options.memory,
                   "Memory its tasks may use at once, by their resources.memory, e.g. 64GiB "
                   "(default: the machine's)")
      ->type_name("SIZE");
  worker->add_option("--gpus", worker_options.gpus, "GPUs it offers (default: 0)")
      ->check(CLI::Range(0, 1024));
  worker->add_option("--name", worker_options.name, "Name to register as (default: HOST:PID)");
  worker->add_option("--tier", worker_options.tiers, "A node tier on this worker (repeatable)")
      ->type_name("NAME=PATH");
  worker->add_option("--label", worker_options.labels, "A label for placement (repeatable)")
      ->type_name("KEY=VALUE");
  worker
      ->add_option("--state-dir", worker_options.state_dir,
                   "Its own folder, where it records its tasks' process groups and the folders it "
                   "makes on node tiers, so that a worker of the same name for the same cluster "
                   "started after it died stops and deletes exactly those (default: "
                   ".tierflow/workers)")
      ->type_name("DIR");
  CLI::App* exec_task = app.add_subcommand(
      "exec-task",
      "Run task attempts for an executor whose attempts outlive the scheduler (a batch "
      "scheduler's job): read an attempt's launch file, run it as 'tierflow run' would, and "
      "write its reports beside (REPORT.started, then REPORT) atomically. SIGTERM cancels it. "
      "With --dir/--list/--first/--count, runs several attempts one after another (a packed "
      "job); SIGUSR2 then cancels those with a marker DIR/attempt-ID.cancel. Started by "
      "executors, not by hand.");
  exec_task->add_option("--launch", exec_task_options.launch, "The attempt's launch file")
      ->type_name("FILE");
  exec_task->add_option("--report", exec_task_options.report, "Where its report goes")
      ->type_name("FILE");
  exec_task
      ->add_option("--dir", exec_task_options.dir,
                   "A packed job: the folder of its attempts' launch and report files")
      ->type_name("DIR");
  exec_task
      ->add_option("--list", exec_task_options.list,
                   "A packed job: the file of attempt ids, one a line")
      ->type_name("FILE");
  exec_task
      ->add_option("--first", exec_task_options.first, "A packed job: its first line (0-based)")
      ->type_name("I");
  exec_task->add_option("--count", exec_task_options.count, "A packed job: how many lines it runs")
      ->type_name("K")
      ->check(CLI::PositiveNumber);
  CLI::App* submit = app.add_subcommand(
      "submit",
      "Submit a pipeline to a scheduler ('tierflow server'): the file's YAML is sent, its "
      "folder is where tasks run. Prints the run id; with --wait, waits for the run's end, "
      "prints its tasks and exits 0 only when it succeeded. The token, when the server needs "
      "one, is TIERFLOW_TOKEN.");
  submit->add_option("file", submit_options.file, "Pipeline YAML file")
      ->required()
      ->type_name("FILE");
  AddParamOption(*submit, submit_options.params);
  submit->add_flag("--wait", submit_options.wait,
                   "Wait for the run to end; rides through a server restart (reconnects for up "
                   "to 5 minutes, saying so on stderr)");
  submit
      ->add_option("--priority", submit_options.priority,
                   "Higher runs first; runs of equal priority in the order they were submitted")
      ->capture_default_str();
  submit->add_option("--scheduler", submit_options.scheduler, scheduler_help)
      ->type_name("HOST:PORT");
  CLI::App* status = app.add_subcommand(
      "status",
      "A run at a glance. In the local store (the default; --db): its state, whether its "
      "engine is alive (or gone, with the resume command), task counts overall and per stage, "
      "the running tasks and the failed ones with their messages. With --scheduler (or "
      "$TIERFLOW_SCHEDULER and no --db): the run on that server, its tasks with the worker "
      "each ran on. Exits 0, or 1 when the run or the database does not exist.");
  status->add_option("run", status_options.run, "Run id, or last")
      ->capture_default_str()
      ->type_name("RUN");
  status
      ->add_option("--scheduler", status_options.scheduler,
                   "Ask this scheduler ('tierflow server') instead of the local database "
                   "(default: $TIERFLOW_SCHEDULER when no --db is given)")
      ->type_name("HOST:PORT");
  AddDbOption(*status, status_options.db);
  AddOutputOption(*status, status_options.output, {"text", "json"});
  status->footer("Examples:\n  tierflow status\n  tierflow status last --output json");
  CLI::App* workers = app.add_subcommand(
      "workers", "The workers connected to a scheduler: slots, tasks running, last heard from.");
  workers->add_option("--scheduler", status_options.scheduler, scheduler_help)
      ->type_name("HOST:PORT");
  return {server, worker, exec_task, submit, status, workers};
}

CLI::App* AddUiCommand(CLI::App& app, UiOptions& options) {
  CLI::App* command = app.add_subcommand(
      "ui",
      "Serve the web UI of a state database in the browser, read-only: runs, their task "
      "graphs and timelines, logs, lineage and tiers, updating live, with the JSON API under "
      "/api/v1 and Prometheus metrics at /metrics (docs/ui.md). Prints 'serving the UI on "
      "http://HOST:PORT/' when ready; stops on SIGINT or SIGTERM. Listens on loopback unless "
      "--listen says otherwise, which then needs a token in TIERFLOW_UI_TOKEN (or "
      "TIERFLOW_CLIENT_TOKEN); the browser gives it once as http://HOST:PORT/?token=TOKEN. "
      "Exits 0 when stopped, 1 when the database cannot be read or the address not used, 2 on "
      "a usage error.");
  command->add_option("--listen", options.listen, "HOST:PORT to listen on (port 0: any)")
      ->capture_default_str();
  AddDbOption(*command, options.db);
  command
      ->add_option("--tiers", options.tiers_file,
                   "The storage tiers the tiers view shows (docs/tiers.md); default: the "
                   "embedded tiers beside the state database")
      ->check(CLI::ExistingFile)
      ->type_name("FILE");
  command->footer("Example:\n  tierflow ui --db .tierflow/tierflow.db --listen 127.0.0.1:8080");
  return command;
}

int Main(int argc, char** argv) {
  CLI::App app(
      "tierflow runs AI training pipelines (a DAG of ingest, clean, feature, stage, train and "
      "checkpoint stages defined in YAML) with a scheduler that places each stage's data on "
      "the storage tier that fits its I/O.",
      "tierflow");
  app.set_version_flag("--version", "tierflow " TIERFLOW_VERSION, "Print the version and exit");
  app.require_subcommand(1);
  app.formatter(std::make_shared<Formatter>());
  std::string color = "auto";
  // A flag of every command: given before or after the command's name.
  app.fallthrough();
  app.add_option("--color", color,
                 "Colour: auto (a terminal, unless NO_COLOR is set), always, never")
      ->check(CLI::IsMember({"auto", "always", "never"}))
      ->capture_default_str()
      ->type_name("WHEN");
  app.footer(
      "Example:\n  tierflow validate pipeline.yaml\n  tierflow plan pipeline.yaml\n"
      "Run 'tierflow COMMAND --help' for a command's options.");

  ValidateOptions validate_options;
  PlanOptions plan_options;
  CLI::App* validate = AddValidateCommand(app, validate_options);
  CLI::App* plan = AddPlanCommand(app, plan_options);
  RunOptions run_options;
  RunOptions resume_options;
  CancelOptions cancel_options;
  CLI::App* run = AddRunCommand(app, run_options);
  CLI::App* resume = AddResumeCommand(app, resume_options);
  CLI::App* cancel = AddCancelCommand(app, cancel_options);
  WatchOptions watch_options;
  CLI::App* watch = AddWatchCommand(app, watch_options);
  RunsOptions runs_options;
  ShowOptions show_options;
  LogsOptions logs_options;
  LineageOptions lineage_options;
  CLI::App* runs = AddRunsCommand(app, runs_options);
  CLI::App* show = AddShowCommand(app, show_options);
  CLI::App* logs = AddLogsCommand(app, logs_options);
  CLI::App* lineage = AddLineageCommand(app, lineage_options);
  LineageExportOptions lineage_export_options;
  CLI::App* lineage_export = AddLineageExportCommand(*lineage, lineage_export_options);
  GcCommandOptions gc_options;
  CLI::App* gc = AddGcCommand(app, gc_options);
  TiersOptions tiers_options;
  auto [tiers_list, tiers_probe] = AddTiersCommands(app, tiers_options);
  ServerCommandOptions server_options;
  WorkerCommandOptions worker_options;
  ExecTaskOptions exec_task_options;
  SubmitOptions submit_options;
  StatusOptions status_options;
  ClusterCommands cluster = AddClusterCommands(app, server_options, worker_options,
                                               exec_task_options, submit_options, status_options);
  std::string node_evict_list;
  CLI::App* node_evict = app.add_subcommand(
      "node-evict",
      "Delete node copies on this node's node tiers, as an eviction job of the Slurm executor: "
      "each line of the list is TIER<TAB>ROOT<TAB>KEY; only ROOT/KEY is deleted. Started by "
      "executors, not by hand.");
  node_evict->add_option("--list", node_evict_list, "The copies to delete")
      ->required()
      ->type_name("FILE");
  UiOptions ui_options;
  CLI::App* ui = AddUiCommand(app, ui_options);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return ExitForParseError(app, error);
  }
  // Commands that read a store ask a server instead with --scheduler, or
  // with $TIERFLOW_SCHEDULER when no --db names a local store.
  const char* scheduler_env = std::getenv("TIERFLOW_SCHEDULER");
  auto remote = [&](std::string& scheduler, const std::string& db) {
    if (scheduler.empty() && db.empty() && scheduler_env != nullptr) scheduler = scheduler_env;
  };
  remote(cancel_options.scheduler, cancel_options.db);
  remote(runs_options.scheduler, runs_options.db);
  remote(logs_options.scheduler, logs_options.db);
  remote(lineage_options.scheduler, lineage_options.db);
  remote(tiers_options.scheduler, tiers_options.db);
  if (cluster.status->parsed()) remote(status_options.scheduler, status_options.db);
  SetGlobalColorChoice(color == "always"  ? ColorChoice::kAlways
                       : color == "never" ? ColorChoice::kNever
                                          : ColorChoice::kAuto);
  if (validate->parsed()) return RunValidate(validate_options, std::cout, std::cerr);
  if (plan->parsed()) return RunPlan(plan_options, std::cout, std::cerr);
  if (run->parsed()) {
    if (run_options.file.empty() == run_options.resume.empty()) {
      std::cerr << "run: give a pipeline FILE, or --resume RUN (not both)\n"
                   "Run with --help for more information.\n";
      return kExitUsage;
    }
    return RunPipeline(run_options, std::cout, std::cerr);
  }
  if (resume->parsed()) return RunPipeline(resume_options, std::cout, std::cerr);
  if (cancel->parsed()) return CancelRun(cancel_options, std::cout, std::cerr);
  if (watch->parsed()) return WatchRun(watch_options, std::cout, std::cerr);
  if (runs->parsed()) {
    if (!runs_options.scheduler.empty()) {
      return RunRemoteRuns({runs_options.scheduler, ""}, std::cout, std::cerr);
    }
    return RunRuns(runs_options, std::cout, std::cerr);
  }
  if (show->parsed()) return RunShow(show_options, std::cout, std::cerr);
  if (logs->parsed()) return RunLogs(logs_options, std::cout, std::cerr);
  if (lineage_export->parsed())
    return RunLineageExport(lineage_export_options, std::cout, std::cerr);
  if (lineage->parsed()) {
    if (lineage_options.target.empty()) {
      std::cerr << "lineage: target is required\nRun with --help for more information.\n";
      return kExitUsage;
    }
    return RunLineage(lineage_options, std::cout, std::cerr);
  }
  if (gc->parsed()) return RunGc(gc_options, std::cout, std::cerr);
  if (tiers_list->parsed()) return RunTiersList(tiers_options, std::cout, std::cerr);
  if (tiers_probe->parsed()) return RunTiersProbe(tiers_options, std::cout, std::cerr);
  if (cluster.server->parsed()) return RunServerCommand(server_options, std::cout, std::cerr);
  if (cluster.worker->parsed()) return RunWorkerCommand(worker_options, std::cout, std::cerr);
  if (cluster.exec_task->parsed()) return RunExecTask(exec_task_options, std::cerr);
  if (node_evict->parsed()) return RunNodeEvict(node_evict_list, std::cerr);
  if (cluster.submit->parsed()) return RunSubmit(submit_options, std::cout, std::cerr);
  if (cluster.status->parsed()) return RunStatus(status_options, std::cout, std::cerr);
  if (cluster.workers->parsed()) return RunWorkers(status_options, std::cout, std::cerr);
  if (ui->parsed()) return RunUi(ui_options, std::cout, std::cerr);
  return kExitUsage;  // unreachable: require_subcommand(1)
}

}  // namespace
}  // namespace tierflow::cli

int main(int argc, char** argv) { return tierflow::cli::Main(argc, argv); }
