// A task's command running as a child process in its own process group, so
// that a timeout or cancel reaches everything it started (shells, pipelines,
// background helpers), not just the first process. Not thread-safe: one
// owner drives a Subprocess.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace tierflow::worker {

struct SpawnOptions {
  std::vector<std::string> argv;  // argv[0] is looked up on the child's PATH
  // Added to (and overriding) the parent's environment.
  std::vector<std::pair<std::string, std::string>> env;
  std::string working_dir;  // empty: the parent's
  std::string stdout_path;  // empty: inherit; else created/truncated
  std::string stderr_path;  // empty: inherit; may equal stdout_path
  // >= 0: stdout and stderr both go to this descriptor (a pipe's write
  // end, say), which the caller keeps and closes; overrides the paths.
  int output_fd = -1;
};

struct ExitStatus {
  int exit_code = -1;  // set when the process exited
  int signal = 0;      // set when a signal killed it
  bool ok() const { return signal == 0 && exit_code == 0; }
  std::string ToString() const;  // "exit 0", "exit 3", "killed by SIGKILL"
};

class Subprocess {
 public:
  // Starts the command in a new process group, with PWD set as a shell
  // would set it for the working folder. A program file without a #! line
  // runs as a shell script (as execvp does). Fails, naming argv[0], when the
  // program cannot be found (NotFound) or is not executable
  // (PermissionDenied), or the working folder or an output file cannot be
  // opened.
  static absl::StatusOr<Subprocess> Spawn(const SpawnOptions& options);

  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&& other) noexcept;
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  // Kills the group if it is still running, so no child outlives its owner.
  ~Subprocess();

  pid_t pid() const { return pid_; }

  // Blocks until the process exits.
  ExitStatus Wait();
  // Returns true and fills `status` if the process has exited.
  bool TryWait(ExitStatus* status);

  // Sends SIGTERM to the whole group; if the leader has not exited within
  // `grace`, sends SIGKILL to the group. Returns how the leader ended.
  ExitStatus Terminate(std::chrono::milliseconds grace);

 private:
  explicit Subprocess(pid_t pid) : pid_(pid) {}
  void SignalGroup(int signal) const;

  pid_t pid_ = -1;
  bool reaped_ = false;
  ExitStatus status_;
};

// The exit status a shell gives for a command that could not be started:
// 127 for a Spawn that failed with NotFound, 126 for PermissionDenied, -1
// for other failures (no command was looked for).
int SpawnErrorExitCode(const absl::Status& status);

}  // namespace tierflow::worker
