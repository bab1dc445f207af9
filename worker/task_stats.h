// How a running task spends its time on data, measured from outside it
// (DESIGN.md: compute must not wait on storage): the time its processes
// are blocked on I/O, sampled from /proc, what they read and wrote, and
// the waits its task helpers account in TIERFLOW_DATA_WAIT_FILE
// (docs/task-helpers.md).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace tierflow::worker {

// rchar and wchar of /proc/PID/io: every byte the process and the children
// it has waited for read and wrote (files on any tier, tmpfs included, and
// pipes). Readable until the process is reaped; nullopt when it is not.
struct ProcessIo {
  uint64_t read_bytes = 0;
  uint64_t write_bytes = 0;
};
std::optional<ProcessIo> ReadProcessIo(pid_t pid);

// A task's processes: its leader and the leader's descendants, found
// through /proc/PID/task/TID/children (descendants that left its process
// group included; ones reparented away, by a double fork, not). nullopt on a
// kernel without children files.
std::optional<std::vector<pid_t>> TaskProcesses(pid_t leader);

// One look at each task's processes: for each key of `blocked` (a task's
// leader, which leads its process group), adds one to its count for the
// leader and each descendant in uninterruptible sleep (state D: waiting on
// storage, almost always). Reads only those processes' /proc entries (the whole of
// /proc only on a kernel without /proc/PID/task/TID/children).
void SampleBlockedGroups(std::unordered_map<pid_t, int64_t>& blocked);

// The waits a task's helpers appended to `path` (lines "SECONDS NAME
// INDEX"), in ms, summed; removes the file. 0 when there is none.
int64_t TakeDataWait(const std::string& path);

}  // namespace tierflow::worker
