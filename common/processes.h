// This host's name, and finding and killing processes by a marker in their environment: tasks run
// in process groups of their own, so they outlive an engine or a worker
// killed with -9, and whoever takes over finds them by the TIERFLOW_*
// variable it gave them.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

namespace tierflow {

// This machine's name (gethostname), as runs.engine_host records it and a
// worker's default name starts with.
std::string HostName();

// SIGKILLs every process (with its process group, unless that is ours)
// whose environment holds `variable` exactly ("NAME=VALUE"), except this
// process. Returns how many process groups (tasks) it killed.
int KillProcessesWithEnv(std::string_view variable);

// SIGKILLs the process group led by `pid` when that process's environment
// holds `variable` exactly: a recorded pid that the system has since given
// to an unrelated process is left alone. True when it killed.
bool KillGroupIfMarked(pid_t pid, std::string_view variable);

}  // namespace tierflow
