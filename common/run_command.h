// Running a short command to completion and reading what it printed (the
// Slurm client commands: sbatch, squeue, scancel, scontrol, sacct).
// Never through a shell: every argument is its own argv element.
//
// Thread-safety: may be called from any thread.
#pragma once

#include <string>
#include <vector>

namespace tierflow {

struct CommandOutput {
  int status = -1;  // exit code; -1: could not run, or killed
  std::string out;
  std::string err;  // or why it could not run
};

// Runs `args` (argv[0] looked up on PATH) without a shell, stdin from
// /dev/null, and returns what it printed once it has exited.
CommandOutput RunCommand(const std::vector<std::string>& args);

// `name` is an executable file in a folder of $PATH.
bool OnPath(const std::string& name);

}  // namespace tierflow
