#include "worker/task_stats.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

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

void SampleBlockedGroups(std::unordered_map<pid_t, int64_t>& blocked) {
  if (blocked.empty()) return;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return;
  while (dirent* entry = readdir(proc)) {
    if (entry->d_name[0] < '1' || entry->d_name[0] > '9') continue;
    const std::string path = std::string("/proc/") + entry->d_name + "/stat";
    const std::string stat = ReadSmall(path.c_str());
    // "PID (COMM) STATE PPID PGRP ...": COMM may hold spaces and parentheses.
    const size_t close_paren = stat.rfind(')');
    if (close_paren == std::string::npos || close_paren + 2 >= stat.size()) continue;
    const char state = stat[close_paren + 2];
    if (state != 'D') continue;
    char* end = nullptr;
    std::strtol(stat.c_str() + close_paren + 3, &end, 10);  // ppid
    const long group = std::strtol(end, nullptr, 10);
    auto found = blocked.find(static_cast<pid_t>(group));
    if (found != blocked.end()) ++found->second;
  }
  closedir(proc);
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
