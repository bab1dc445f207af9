#include "cli/run_commands.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <ostream>
#include <sstream>
#include <thread>

#include "api/cluster.h"
#include "api/embedded.h"
#include "api/lineage_sender.h"
#include "api/slurm_executor.h"
#include "api/tier_service.h"
#include "cli/commands.h"
#include "cli/live_display.h"
#include "cli/run_summary.h"
#include "cli/terminal_style.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/units.h"

namespace tierflow::cli {
namespace {

using api::RunCounts;
using api::TaskEvent;

// SIGINT and SIGTERM blocked in the calling thread for its lifetime. Made
// before any thread starts (the progress display's redraw thread, the
// engine's database, pool and mover threads): a new thread inherits the
// mask, so none of them can take the signal and die with the default action
// or swallow it; they wait, pending, for the SignalWatcher's signalfd.
class BlockedTerminationSignals {
 public:
  BlockedTerminationSignals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, &old_mask_);
  }
  ~BlockedTerminationSignals() { pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr); }
  BlockedTerminationSignals(const BlockedTerminationSignals&) = delete;
  BlockedTerminationSignals& operator=(const BlockedTerminationSignals&) = delete;
  const sigset_t& set() const { return set_; }

 private:
  sigset_t set_;
  sigset_t old_mask_;
};

// Turns SIGINT/SIGTERM into engine calls from a thread of its own (no
// async-signal-safety puzzles): the first cancels gracefully, the second
// kills every task and exits at once. The signals are blocked in every
// thread (BlockedTerminationSignals, made before the first thread), so only
// this thread sees them; one that came before it started is pending and
// read at once.
class SignalWatcher {
 public:
  SignalWatcher(const BlockedTerminationSignals& blocked, api::Engine& engine, std::ostream& err,
                LiveDisplay& display)
      : engine_(engine), err_(err), display_(display) {
    signal_fd_ = signalfd(-1, &blocked.set(), SFD_CLOEXEC);
    stop_fd_ = eventfd(0, EFD_CLOEXEC);
    thread_ = std::thread([this] { Watch(); });
  }
  ~SignalWatcher() {
    uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof one);
    thread_.join();
    close(signal_fd_);
    close(stop_fd_);
  }

 private:
  void Watch() {
    int received = 0;
    for (;;) {
      pollfd fds[2] = {{signal_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
      if (poll(fds, 2, -1) < 0) continue;
      if (fds[1].revents != 0) return;
      signalfd_siginfo info;
      if (read(signal_fd_, &info, sizeof info) != sizeof info) continue;
      if (++received == 1) {
        // Above the live block, which goes on showing the tasks stop.
        display_.Print(err_,
                       "cancelling: stopping running tasks (press Ctrl-C again to exit at once)\n");
        engine_.Cancel();
      } else {
        engine_.KillNow();
        display_.Print(err_, "");
        err_ << "\033[?25h" << std::flush;  // the block hid the cursor
        err_ << "\nkilled every task; the run can be finished with `tierflow resume`" << std::endl;
        _exit(kExitCancelled);
      }
    }
  }
  api::Engine& engine_;
  std::ostream& err_;
  LiveDisplay& display_;
  int signal_fd_ = -1;
  int stop_fd_ = -1;
  std::thread thread_;
};

}  // namespace

absl::StatusOr<api::SlurmOptions> SlurmOptionsOf(const ExecutorFlags& flags) {
  api::SlurmOptions slurm;
  slurm.submit.partition = flags.slurm_partition;
  slurm.submit.account = flags.slurm_account;
  slurm.submit.extra = flags.slurm_options;
  slurm.submit.array_throttle = flags.slurm_array_throttle;
  if (!flags.slurm_poll.empty()) {
    TF_ASSIGN_OR_RETURN(slurm.poll, api::ParsePollOptions(flags.slurm_poll));
  }
  return slurm;
}

namespace {

// The local pool's budget: this machine's, with the flags' overrides.
absl::StatusOr<api::LocalBudget> LocalBudgetOf(const RunOptions& options) {
  api::BudgetFlags flags;
  flags.slots = options.slots;
  flags.cpus = options.cpus;
  if (!options.memory.empty()) {
    absl::StatusOr<uint64_t> memory = ParseSize(options.memory);
    if (!memory.ok()) {
      return absl::InvalidArgumentError(
          StrCat("--memory ", options.memory, ": ", memory.status().message()));
    }
    flags.memory = *memory;
  }
  if (options.gpus >= 0) flags.gpus = static_cast<uint32_t>(options.gpus);
  return api::MachineBudget(flags);
}

}  // namespace

// Tasks in flight at once on Slurm when --slots is not given.
constexpr int kSlurmSlots = 1000;

int RunPipeline(const RunOptions& options, std::ostream& out, std::ostream& err) {
  if (options.dry_run) {
    if (!options.resume.empty()) {
      err << "tierflow: --dry-run goes with a pipeline FILE, not --resume\n";
      return kExitUsage;
    }
    return RunExplain({.file = options.file,
                       .params = ParseParams(options.params),
                       .db_path = api::DatabasePath(options.db),
                       .rerun = options.rerun,
                       .rerun_downstream = options.rerun_downstream,
                       .no_cache = options.no_cache},
                      options.output, out, err);
  }
  // First, before any thread of this process starts.
  BlockedTerminationSignals blocked;
  bool tty = options.progress == "tty" ||
             (options.progress == "auto" && &out == &std::cout && isatty(STDOUT_FILENO));
  DisplayOptions display_options;
  display_options.db_flag = options.db;
  display_options.tty = tty;
  display_options.color = ColorEnabled(GlobalColorChoice(), STDOUT_FILENO);
  display_options.quiet = options.quiet;
  LiveDisplay display(out, display_options);
  api::EngineOptions engine_options;
  engine_options.db_path = api::DatabasePath(options.db);
  engine_options.slots = options.slots;
  engine_options.use_cache = !options.no_cache;
  engine_options.rerun = options.rerun;
  engine_options.rerun_downstream = options.rerun_downstream;
  engine_options.resume_force = options.force;
  engine_options.kill_grace = std::chrono::seconds(options.kill_grace_seconds);
  engine_options.observer = &display;
  if (!options.resume.empty() && !options.tiers_file.empty()) {
    err << "tierflow: --tiers: a resumed run keeps the tiers it started on\n";
    return kExitUsage;
  }
  if (options.resume.empty()) {
    absl::StatusOr<std::vector<api::PlacementTier>> tiers =
        api::LoadPlacementTiers(options.tiers_file, engine_options.db_path);
    if (!tiers.ok()) {
      err << "tierflow: " << tiers.status().message() << '\n';
      return kExitInvalid;
    }
    engine_options.tiers = std::move(*tiers);
  }
  // A resume takes the run's recorded executor, and its recorded Slurm
  // options unless --slurm-* flags are given (the engine refuses flags
  // that differ from the recorded ones).
  std::string executor = options.executor;
  absl::StatusOr<api::SlurmOptions> slurm_flags = SlurmOptionsOf(options);
  if (!slurm_flags.ok()) {
    err << "tierflow: " << slurm_flags.status().message() << '\n';
    return kExitUsage;
  }
  api::SlurmOptions slurm = std::move(*slurm_flags);
  const bool submit_flags = !slurm.submit.partition.empty() || !slurm.submit.account.empty() ||
                            !slurm.submit.extra.empty() || slurm.submit.array_throttle > 0;
  if (!options.resume.empty() && std::filesystem::exists(engine_options.db_path)) {
    // Not readable (no such run, say): the engine's resume says why.
    absl::StatusOr<api::RecordedExecutor> recorded =
        api::RecordedExecutorOf(engine_options.db_path, options.resume);
    if (recorded.ok() && executor.empty()) executor = recorded->executor;
    if (recorded.ok() && !submit_flags && recorded->slurm) slurm.submit = *recorded->slurm;
  }
  // OpenLineage delivery (TIERFLOW_OPENLINEAGE_URL): the outbox, and its sender.
  absl::StatusOr<std::unique_ptr<api::LineageSender>> lineage =
      api::StartLineageDelivery(engine_options.db_path, &engine_options);
  if (!lineage.ok()) {
    err << "tierflow: " << lineage.status().message() << '\n';
    return kExitUsage;
  }
  std::unique_ptr<api::Engine> engine;
  if (executor == "slurm") {
    if (absl::Status commands = api::CheckSlurmCommands(); !commands.ok()) {
      err << "tierflow: " << commands.message() << '\n';
      return kExitInvalid;
    }
    // Slurm queues what the cluster cannot run yet: hand it every ready task.
    if (options.slots == 0) engine_options.slots = kSlurmSlots;
    engine = api::MakeSlurmEngine(engine_options, slurm);
  } else {
    absl::StatusOr<api::LocalBudget> budget = LocalBudgetOf(options);
    if (!budget.ok()) {
      err << "tierflow: " << budget.status().message() << '\n';
      return kExitUsage;
    }
    engine_options.local_budget = std::move(*budget);
    engine = api::MakeEmbeddedEngine(engine_options);
  }

  absl::StatusOr<api::RunResult> result;
  {
    SignalWatcher signals(blocked, *engine, err, display);
    if (options.resume.empty()) {
      api::RunRequest request;
      request.file = options.file;
      request.params = ParseParams(options.params);
      result = engine->Run(request);
    } else {
      result = engine->Resume(options.resume);
    }
  }
  display.Stop();
  if (!result.ok()) {
    err << "tierflow: " << result.status().message() << '\n';
    return kExitInvalid;
  }
  PrintRunSummary({.run_id = result->run_id,
                   .state = result->state,
                   .counts = result->counts,
                   .elapsed = result->elapsed,
                   .stages = result->stages,
                   .write_back_failures = result->write_back_failures,
                   .db_flag = options.db,
                   .color = display_options.color},
                  out);
  out.flush();
  if (std::string waiting = api::FinishLineageDelivery(std::move(*lineage)); !waiting.empty()) {
    out << waiting << '\n';
  }
  switch (result->state) {
    case api::RunState::kSucceeded:
      return kExitOk;
    case api::RunState::kCancelled:
      return kExitCancelled;
    case api::RunState::kFailed:
    case api::RunState::kRunning:  // never a result's: a run that stops early is an error
      return kExitInvalid;
  }
  return kExitInvalid;
}

int CancelRun(const CancelOptions& options, std::ostream& out, std::ostream& err) {
  const char* token = std::getenv("TIERFLOW_TOKEN");
  absl::StatusOr<std::string> done =
      options.scheduler.empty()
          ? api::CancelLocalRun(api::DatabasePath(options.db), options.run)
          : api::CancelRemoteRun(options.scheduler, token == nullptr ? "" : token, options.run);
  if (!done.ok()) {
    err << "tierflow: " << done.status().message() << '\n';
    return kExitInvalid;
  }
  out << *done << '\n';
  return kExitOk;
}

}  // namespace tierflow::cli
