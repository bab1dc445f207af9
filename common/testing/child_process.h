// The one child-process runner of the tests: start a program (argv, extra
// environment, stdout and stderr captured through pipes, sent to files or
// inherited), read its output while it runs, wait for it with a limit that
// fails the test when it passes, and stop it by its pid. A ChildProcess that
// goes away kills (SIGKILL) and reaps its process if it still runs, so no
// test leaves one behind. One thread uses a ChildProcess at a time.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tierflow::testing {

struct ChildSpec {
  std::string program = {};            // a path, or a name looked up on PATH
  std::vector<std::string> args = {};  // after argv[0]
  std::string arg0 = {};               // argv[0]; "" for `program`
  // NAME=VALUE entries set on top of this process's environment, and
  // names removed from it.
  std::vector<std::string> env = {};
  std::vector<std::string> unset_env = {};
  // Where stdout and stderr go: the file named (created or truncated);
  // with no file, captured through pipes when `capture`, else inherited.
  std::string stdout_path = {};
  std::string stderr_path = {};
  bool capture = true;
};

struct ChildResult {
  int exit_code = -1;      // when it exited, else -1
  int signal = 0;          // the signal that ended it, else 0
  bool timed_out = false;  // Wait's limit passed: it was killed
  std::string out;         // captured output
  std::string err;
};

class ChildProcess {
 public:
  // Starts `spec`; returns once the program runs (exec succeeded), else
  // the error, with exec's errno.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(ChildSpec spec);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }

  // Reads the captured output until `done(output)` holds, both pipes close,
  // or `limit` passes. False only when the limit passed (not a failure by
  // itself: the caller says what it waited for).
  bool ReadUntil(const std::function<bool(const ChildResult&)>& done,
                 std::chrono::milliseconds limit);
  // Reads the captured output to its end and reaps the process. When
  // `limit` passes first, kills it, sets timed_out and fails the test.
  ChildResult Wait(std::chrono::milliseconds limit = std::chrono::seconds(60));
  // Sends `signal` to the process by its pid, unless it has been reaped.
  void Signal(int signal);

  const ChildResult& output() const { return result_; }

 private:
  ChildProcess(pid_t pid, int out, int err, std::string program)
      : pid_(pid), fds_{out, err}, program_(std::move(program)) {}
  // Reads what is there (waiting up to `wait`); closes a pipe at its end.
  void Pump(std::chrono::milliseconds wait);

  pid_t pid_ = -1;
  bool reaped_ = false;
  int fds_[2] = {-1, -1};  // stdout, stderr when captured
  std::string program_;
  ChildResult result_;
};

// Starts `spec` and waits for it (ChildProcess::Wait); a program that
// cannot start fails the test and gives exit_code -1.
ChildResult RunChild(ChildSpec spec, std::chrono::milliseconds limit = std::chrono::seconds(60));

}  // namespace tierflow::testing
