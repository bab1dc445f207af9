#include "worker/task_stats.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

namespace tierflow::worker {
namespace {

// The whole of a small /proc file, or "" when it cannot be read.
std::string ReadSmall(const char* path) {
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  char buffer[1024];
  const ssize_t n = read(fd, buffer, sizeof buffer - 1);
  close(fd);
  return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : std::string();
}

}  // namespace

std::optional<ProcessIo> ReadProcessIo(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/io", static_cast<int>(pid));
  const std::string text = ReadSmall(path);
  if (text.empty()) return std::nullopt;
  ProcessIo io;
  std::istringstream lines(text);
  std::string key;
  uint64_t value = 0;
  while (lines >> key >> value) {
    if (key == "rchar:") io.read_bytes = value;
    if (key == "wchar:") io.write_bytes = value;
  }
  return io;
}

namespace {

// "PID (COMM) STATE PPID PGRP ...": COMM may hold spaces and parentheses.
// The state letter and the process group, or {0, 0}.
std::pair<char, long> StateAndGroup(const std::string& stat) {
  const size_t close_paren = stat.rfind(')');
  if (close_paren == std::string::npos || close_paren + 2 >= stat.size()) return {0, 0};
  char* end = nullptr;
  std::strtol(stat.c_str() + close_paren + 3, &end, 10);  // ppid
  return {stat[close_paren + 2], std::strtol(end, nullptr, 10)};
}

// Every process of the machine (the fallback where /proc has no children
// files): one count for each in state D whose group is a key of `blocked`.
void SampleEveryProcess(std::unordered_map<pid_t, int64_t>& blocked) {
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return;
  while (dirent* entry = readdir(proc)) {
    if (entry->d_name[0] < '1' || entry->d_name[0] > '9') continue;
    const std::string path = std::string("/proc/") + entry->d_name + "/stat";
    const auto [state, group] = StateAndGroup(ReadSmall(path.c_str()));
    if (state != 'D') continue;
    auto found = blocked.find(static_cast<pid_t>(group));
    if (found != blocked.end()) ++found->second;
  }
  closedir(proc);
}

// The children of every thread of `pid` (/proc/PID/task/TID/children),
// appended to `out`; false when the kernel has no children files.
bool AddChildren(pid_t pid, std::vector<pid_t>& out) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task", static_cast<int>(pid));
  DIR* tasks = opendir(path);
  if (tasks == nullptr) return true;  // gone meanwhile
  bool supported = true;
  while (dirent* entry = readdir(tasks)) {
    if (entry->d_name[0] < '1' || entry->d_name[0] > '9') continue;
    const long tid = std::strtol(entry->d_name, nullptr, 10);
    char children[80];
    snprintf(children, sizeof children, "/proc/%d/task/%ld/children", static_cast<int>(pid), tid);
    const int fd = open(children, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      supported = supported && errno != ENOENT;
      continue;
    }
    char buffer[4096];
    const ssize_t n = read(fd, buffer, sizeof buffer - 1);
    close(fd);
    if (n <= 0) continue;
    buffer[n] = '\0';
    for (char* at = buffer;;) {
      char* end = nullptr;
      const long child = std::strtol(at, &end, 10);
      if (end == at) break;
      out.push_back(static_cast<pid_t>(child));
      at = end;
    }
  }
  closedir(tasks);
  return supported;
}

}  // namespace

std::optional<std::vector<pid_t>> TaskProcesses(pid_t leader) {
  std::vector<pid_t> walk(1, leader);
  for (size_t i = 0; i < walk.size() && i < 4096; ++i) {
    if (!AddChildren(walk[i], walk)) return std::nullopt;
  }
  return walk;
}

void SampleBlockedGroups(std::unordered_map<pid_t, int64_t>& blocked) {
  if (blocked.empty()) return;
  // Each task's own processes, without looking at any other process on the
  // machine.
  static bool children_files = true;
  if (children_files) {
    std::vector<std::pair<int64_t*, int64_t>> seen;
    for (auto& [leader, count] : blocked) {
      std::optional<std::vector<pid_t>> processes = TaskProcesses(leader);
      if (!processes) {
        children_files = false;
        break;
      }
      int64_t in_d = 0;
      for (pid_t pid : *processes) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
        if (StateAndGroup(ReadSmall(path)).first == 'D') ++in_d;
      }
      seen.emplace_back(&count, in_d);
    }
    if (children_files) {
      for (auto [count, in_d] : seen) *count += in_d;
      return;
    }
  }
  SampleEveryProcess(blocked);
}

int64_t TakeDataWait(const std::string& path) {
  // Most tasks never wait (and never make the file): one failed open.
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  std::string text;
  char buffer[4096];
  for (ssize_t n; (n = read(fd, buffer, sizeof buffer)) > 0;) {
    text.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  unlink(path.c_str());
  double total = 0;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    const double seconds = std::strtod(line.c_str(), nullptr);
    if (std::isfinite(seconds) && seconds > 0) total += seconds;
  }
  return static_cast<int64_t>(std::llround(total * 1000));
}

}  // namespace tierflow::worker
