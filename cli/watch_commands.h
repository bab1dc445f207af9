// `tierflow watch RUN`: the live display of `tierflow run` (live_display.h)
// attached to a run another process drives, read from the store read-only,
// ending with the same summary.
#pragma once

#include <iosfwd>
#include <string>

namespace CLI {
class App;
}

namespace tierflow::cli {

struct WatchOptions {
  std::string run;  // id, or last/latest
  std::string db;
  std::string progress = "auto";  // auto | tty | plain
};

CLI::App* AddWatchCommand(CLI::App& app, WatchOptions& options);

// Shows the run until it ends, then its summary. Exits as `run` would: 0
// succeeded, 1 failed (or unknown run, or its engine is gone: the resume
// command is printed), 130 cancelled. Ctrl-C only detaches (exit 130); the
// run goes on.
int WatchRun(const WatchOptions& options, std::ostream& out, std::ostream& err);

}  // namespace tierflow::cli
