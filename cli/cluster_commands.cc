#include "cli/cluster_commands.h"

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <map>
#include <thread>

#include "api/cluster.h"
#include "api/embedded.h"
#include "api/text_table.h"
#include "cli/commands.h"
#include "cli/status_commands.h"
#include "cli/terminal_style.h"
#include "cli/web_ui.h"
#include "common/strings.h"
#include "common/units.h"

namespace tierflow::cli {
namespace {

std::atomic<bool> stop_requested{false};

void OnStopSignal(int) { stop_requested = true; }

void StopOnSignals() {
  std::signal(SIGINT, OnStopSignal);
  std::signal(SIGTERM, OnStopSignal);
}

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

// --scheduler, else $TIERFLOW_SCHEDULER, else the default address.
std::string Scheduler(const std::string& flag) {
  if (!flag.empty()) return flag;
  std::string env = Env("TIERFLOW_SCHEDULER");
  return env.empty() ? "127.0.0.1:7070" : env;
}

// NAME=VALUE arguments of a repeatable flag; false (after saying which) on
// one without '='.
bool SplitPairs(const std::vector<std::string>& arguments, const char* flag,
                std::map<std::string, std::string>& out, std::ostream& err) {
  for (const std::string& argument : arguments) {
    const size_t equals = argument.find('=');
    if (equals == std::string::npos || equals == 0) {
      err << "tierflow: " << flag << " " << argument << ": expected NAME=VALUE\n";
      return false;
    }
    out[argument.substr(0, equals)] = argument.substr(equals + 1);
  }
  return true;
}

void PrintRun(const api::RemoteRun& run, std::ostream& out) {
  size_t width = 4;
  for (const api::RemoteTask& task : run.tasks) width = std::max(width, task.id.size());
  out << "run " << run.id << " (" << run.pipeline << "): " << api::RunStateName(run.state)
      << (run.message.empty() ? "" : " - " + run.message) << "\n";
  for (const api::RemoteTask& task : run.tasks) {
    out << "  " << task.id << std::string(width - task.id.size() + 2, ' ')
        << api::TaskStateName(task.state);
    if (!task.worker.empty()) out << "  on " << task.worker;
    if (task.attempts > 1) out << "  (" << task.attempts << " attempts)";
    if (!task.message.empty()) out << "  " << task.message;
    out << "\n";
  }
}

}  // namespace

int RunServerCommand(const ServerCommandOptions& options, std::ostream& out, std::ostream& err) {
  api::ServerOptions server;
  server.listen = options.listen;
  server.db_path = api::DatabasePath(options.db);
  server.tiers_file = options.tiers_file;
  server.client_token = Env("TIERFLOW_CLIENT_TOKEN");
  server.worker_token = Env("TIERFLOW_WORKER_TOKEN");
  server.tls_cert = options.tls_cert;
  server.tls_key = options.tls_key;
  server.http_listen = options.http_listen;
  server.ui_assets = WebUiAssets();
  server.worker_timeout =
      std::chrono::milliseconds(static_cast<int64_t>(options.worker_timeout_seconds * 1000));
  server.executor = options.executor == "local" ? "" : options.executor;
  absl::StatusOr<api::SlurmOptions> slurm = SlurmOptionsOf(options);
  if (!slurm.ok()) {
    err << "tierflow: " << slurm.status().message() << '\n';
    return kExitUsage;
  }
  server.slurm = std::move(*slurm);
  if (server.executor == "slurm") {
    if (absl::Status commands = api::CheckSlurmCommands(); !commands.ok()) {
      err << "tierflow: " << commands.message() << '\n';
      return kExitInvalid;
    }
  }
  StopOnSignals();
  absl::Status status = api::RunServer(server, stop_requested, out);
  if (!status.ok()) {
    err << "tierflow: " << status.message() << '\n';
    return kExitInvalid;
  }
  return kExitOk;
}

int RunExecTask(const ExecTaskOptions& options, std::ostream& err) {
  const bool single = !options.launch.empty() || !options.report.empty();
  const bool packed = !options.dir.empty() || !options.list.empty();
  if (single == packed || (single && (options.launch.empty() || options.report.empty())) ||
      (packed && (options.dir.empty() || options.list.empty()))) {
    err << "tierflow exec-task: give either --launch FILE --report FILE, or --dir DIR --list "
           "FILE [--first I] [--count K]\n";
    return kExitInvalid;
  }
  absl::Status status =
      single ? api::ExecTask(options.launch, options.report)
             : api::ExecTaskList(options.dir, options.list, options.first, options.count);
  if (!status.ok()) {
    err << "tierflow exec-task: " << status.message() << '\n';
    return kExitInvalid;
  }
  return kExitOk;
}

int RunNodeEvict(const std::string& list, std::ostream& err) {
  absl::Status status = api::EvictNodeCopies(list);
  if (!status.ok()) {
    err << "tierflow node-evict: " << status.message() << '\n';
    return kExitInvalid;
  }
  return kExitOk;
}

int RunWorkerCommand(const WorkerCommandOptions& options, std::ostream& out, std::ostream& err) {
  api::WorkerOptions worker;
  worker.scheduler = Scheduler(options.scheduler);
  worker.token = Env("TIERFLOW_WORKER_TOKEN");
  worker.name = options.name;
  if (!options.state_dir.empty()) worker.state_dir = options.state_dir;
  worker.slots = options.slots;
  worker.cpus = options.cpus;
  worker.gpus = static_cast<uint32_t>(options.gpus);
  if (!options.memory.empty()) {
    absl::StatusOr<uint64_t> memory = ParseSize(options.memory);
    if (!memory.ok()) {
      err << "tierflow: --memory " << options.memory << ": " << memory.status().message() << '\n';
      return kExitUsage;
    }
    worker.memory = *memory;
  }
  if (!SplitPairs(options.tiers, "--tier", worker.tiers, err) ||
      !SplitPairs(options.labels, "--label", worker.labels, err)) {
    return kExitUsage;
  }
  StopOnSignals();
  absl::Status status = api::RunWorker(worker, stop_requested, out);
  if (!status.ok()) {
    err << "tierflow: " << status.message() << '\n';
    return kExitInvalid;
  }
  return kExitOk;
}

int RunSubmit(const SubmitOptions& options, std::ostream& out, std::ostream& err) {
  const std::string scheduler = Scheduler(options.scheduler);
  const std::string token = Env("TIERFLOW_TOKEN");
  absl::StatusOr<std::string> run = api::SubmitRemote(
      scheduler, token, options.file, ParseParams(options.params), options.priority);
  if (!run.ok()) {
    err << "tierflow: " << run.status().message() << '\n';
    return kExitInvalid;
  }
  out << "submitted run " << *run << " to " << scheduler << std::endl;
  if (!options.wait) return kExitOk;
  // One line per task transition as it happens, then the run's tasks.
  std::map<std::string, api::TaskState> seen;  // task -> state
  api::RemoteRun last;
  api::WatchOptions watch;
  watch.notes = &err;  // lost and regained the server (a restart)
  absl::Status watched = api::WatchRemoteRun(
      scheduler, token, *run,
      [&](const api::RemoteRun& now) {
        for (const api::RemoteTask& task : now.tasks) {
          auto [before, first] = seen.try_emplace(task.id, task.state);
          if (!first && before->second == task.state) continue;
          before->second = task.state;
          if (task.state == api::TaskState::kPending || task.state == api::TaskState::kQueued) {
            continue;
          }
          out << "  " << task.id << " " << api::TaskStateName(task.state)
              << (task.worker.empty() ? "" : " on " + task.worker) << '\n';
        }
        out.flush();
        last = now;
      },
      watch);
  if (!watched.ok()) {
    err << "tierflow: " << watched.message() << '\n';
    return kExitInvalid;
  }
  PrintRun(last, out);
  return last.state == api::RunState::kSucceeded ? kExitOk : kExitInvalid;
}

int RunStatus(const StatusOptions& options, std::ostream& out, std::ostream& err) {
  if (options.scheduler.empty()) return RunLocalStatus(options, out, err);
  if (options.output != "text") {
    err << "status: --output json reads the local store; leave out --scheduler\n"
           "Run with --help for more information.\n";
    return kExitUsage;
  }
  absl::StatusOr<api::RemoteRun> run =
      api::GetRemoteRun(Scheduler(options.scheduler), Env("TIERFLOW_TOKEN"), options.run);
  if (!run.ok()) {
    err << "tierflow: " << run.status().message() << '\n';
    return kExitInvalid;
  }
  PrintRun(*run, out);
  return kExitOk;
}

int RunRemoteRuns(const StatusOptions& options, std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::vector<api::RemoteRun>> runs =
      api::ListRemoteRuns(Scheduler(options.scheduler), Env("TIERFLOW_TOKEN"), 20);
  if (!runs.ok()) {
    err << "tierflow: " << runs.status().message() << '\n';
    return kExitInvalid;
  }
  // The local `runs` table, from what the server says of each run.
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  api::RunList list;
  for (const api::RemoteRun& run : *runs) {
    scheduler::RunSummary summary;
    summary.id = run.id;
    summary.pipeline = run.pipeline;
    summary.state = run.state;
    summary.message = run.message;
    summary.counts = run.counts;
    summary.created_at_ms = run.created_at_ms;
    summary.finished_at_ms = run.finished_at_ms;
    summary.duration_ms = run.finished_at_ms.value_or(now_ms) - run.created_at_ms;
    list.runs.push_back(std::move(summary));
  }
  list.total = static_cast<int64_t>(list.runs.size());
  api::RenderRunsText(list, StdoutStatePainter(), out);
  return kExitOk;
}

int RunWorkers(const StatusOptions& options, std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::vector<api::RemoteWorker>> workers =
      api::ListRemoteWorkers(Scheduler(options.scheduler), Env("TIERFLOW_TOKEN"));
  if (!workers.ok()) {
    err << "tierflow: " << workers.status().message() << '\n';
    return kExitInvalid;
  }
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  api::TextTable table({"WORKER", "SLOTS", "RUNNING", "LAST HEARD", "LABELS", "NODE TIERS"});
  auto pairs = [](const std::map<std::string, std::string>& entries) {
    std::string text;
    for (const auto& [key, value] : entries) {
      text += StrCat(text.empty() ? "" : ",", key, "=", value);
    }
    return text.empty() ? std::string("-") : text;
  };
  for (const api::RemoteWorker& worker : *workers) {
    table.Add({worker.name, std::to_string(worker.slots), std::to_string(worker.running),
               FormatDuration(std::chrono::milliseconds(now - worker.last_heartbeat_ms)) + " ago",
               pairs(worker.labels), pairs(worker.tiers)});
  }
  table.Write(out);
  return kExitOk;
}

}  // namespace tierflow::cli
