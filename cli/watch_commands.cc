// `tierflow watch` (watch_commands.h).
#include "cli/watch_commands.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <map>
#include <ostream>

#include "api/embedded.h"
#include "api/run_progress.h"
#include "cli/command_line.h"
#include "cli/commands.h"
#include "cli/live_display.h"
#include "cli/run_commands.h"
#include "cli/run_summary.h"
#include "cli/terminal_style.h"
#include "common/strings.h"

namespace tierflow::cli {
namespace {

std::string DbSuffix(const std::string& db) {
  return db.empty() ? "" : StrCat(" --db ", ShellQuote(db));
}

int ExitFor(api::RunState state) {
  switch (state) {
    case api::RunState::kSucceeded:
      return kExitOk;
    case api::RunState::kCancelled:
      return kExitCancelled;
    case api::RunState::kFailed:
    case api::RunState::kRunning:
      return kExitInvalid;
  }
  return kExitInvalid;
}

// The summary from what the store recorded: `run`'s own table, with each
// stage's task time summed over the attempts that ran.
void PrintStoredSummary(api::ProgressReader& reader, const api::RunProgress& p,
                        const WatchOptions& options, bool color, std::ostream& out) {
  std::map<std::string, int64_t> busy;
  if (absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> times = reader.StageBusyMs();
      times.ok()) {
    busy.insert(times->begin(), times->end());
  }
  SummaryInput input;
  input.run_id = p.run_id;
  input.state = p.state;
  input.counts = p.counts;
  if (p.started_at_ms && p.finished_at_ms) {
    input.elapsed = Duration(*p.finished_at_ms - *p.started_at_ms);
  }
  for (const api::StageProgress& s : p.stages) {
    input.stages.push_back({.stage = s.stage,
                            .kind = s.kind,
                            .tasks = s.counts.total,
                            .succeeded = s.counts.succeeded,
                            .cached = s.counts.cached,
                            .failed = s.counts.failed,
                            .upstream_failed = s.counts.upstream_failed,
                            .cancelled = s.counts.cancelled,
                            .busy = Duration(busy[s.stage])});
  }
  input.db_flag = options.db;
  input.color = color;
  PrintRunSummary(input, out);
  // A run that failed with no failed task (a write-back to a full tier,
  // say): what the engine recorded says why.
  if (!p.message.empty() && p.state == api::RunState::kFailed && p.counts.failed == 0) {
    out << "the run says: " << p.message << '\n';
  }
}

}  // namespace

CLI::App* AddWatchCommand(CLI::App& app, WatchOptions& options) {
  CLI::App* command = app.add_subcommand(
      "watch",
      "Show the live display of a run that another tierflow process drives (read from the "
      "state store, which it never changes), then its summary. Ctrl-C only detaches: the run "
      "goes on. Exits 0 when the run succeeded, 1 when it failed or its engine is gone, 130 "
      "when it was cancelled or you detached.");
  command->add_option("run", options.run, "Run id (see 'tierflow runs'), or last")
      ->required()
      ->type_name("RUN");
  AddDbOption(*command, options.db);
  command
      ->add_option("--progress", options.progress,
                   "auto: a live block on a terminal, plain lines otherwise")
      ->check(CLI::IsMember({"auto", "tty", "plain"}));
  command->footer("Example:\n  tierflow watch last");
  return command;
}

int WatchRun(const WatchOptions& options, std::ostream& out, std::ostream& err) {
  // Before the display's thread starts, so that only signalfd sees them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigset_t old_mask;
  pthread_sigmask(SIG_BLOCK, &set, &old_mask);
  const int signal_fd = signalfd(-1, &set, SFD_CLOEXEC);
  struct Restore {
    int fd;
    sigset_t mask;
    ~Restore() {
      close(fd);
      pthread_sigmask(SIG_SETMASK, &mask, nullptr);
    }
  } restore{signal_fd, old_mask};

  absl::StatusOr<std::unique_ptr<api::ProgressReader>> reader =
      api::ProgressReader::Open(options.db, options.run);
  if (!reader.ok()) {
    err << "tierflow: " << reader.status().message() << '\n';
    return kExitInvalid;
  }
  const std::string run_id = (*reader)->run_id();
  const bool color = ColorEnabled(GlobalColorChoice(), STDOUT_FILENO);
  absl::StatusOr<api::RunProgress> first = (*reader)->Read();
  if (!first.ok()) {
    err << "tierflow: " << first.status().message() << '\n';
    return kExitInvalid;
  }
  auto gone = [&](const api::RunProgress& p) {
    err << "tierflow: run " << run_id << " is recorded running, but its engine is gone ("
        << CountsText(p.counts, false) << "); finish it: tierflow resume " << run_id
        << DbSuffix(options.db) << '\n';
    return kExitInvalid;
  };
  if (first->state != api::RunState::kRunning) {
    PrintStoredSummary(**reader, *first, options, color, out);
    return ExitFor(first->state);
  }
  if (first->engine == api::EngineStatus::kGone) return gone(*first);

  DisplayOptions display_options;
  display_options.db_flag = options.db;
  display_options.tty = options.progress == "tty" ||
                        (options.progress == "auto" && &out == &std::cout && isatty(STDOUT_FILENO));
  display_options.color = color;
  display_options.run_events = false;
  LiveDisplay display(out, display_options);
  display.Attach(run_id);
  bool detached = false;
  for (;;) {
    pollfd fd = {signal_fd, POLLIN, 0};
    if (poll(&fd, 1, 200) > 0) {
      signalfd_siginfo info;
      if (read(signal_fd, &info, sizeof info) == sizeof info) {
        detached = true;
        break;
      }
    }
    std::optional<api::RunProgress> last = display.Last();
    if (!last) continue;
    if (last->state != api::RunState::kRunning || last->engine == api::EngineStatus::kGone) break;
  }
  display.Stop();
  if (detached) {
    err << "detached from run " << run_id << ": it goes on (tierflow watch " << run_id
        << DbSuffix(options.db) << " to see it again)\n";
    return kExitCancelled;
  }
  // The final state, as the engine recorded it after its last task.
  absl::StatusOr<api::RunProgress> end = (*reader)->Read();
  if (!end.ok()) {
    err << "tierflow: " << end.status().message() << '\n';
    return kExitInvalid;
  }
  if (end->state == api::RunState::kRunning) return gone(*end);
  PrintStoredSummary(**reader, *end, options, color, out);
  return ExitFor(end->state);
}

}  // namespace tierflow::cli
