#include "common/processes.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

namespace tierflow {

namespace {

bool HasVariable(pid_t pid, std::string_view marker) {
  std::ifstream environ("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
  std::string variable;
  while (environ && std::getline(environ, variable, '\0')) {
    if (variable == marker) return true;
  }
  return false;
}

}  // namespace

std::string HostName() {
  char name[256] = {};
  gethostname(name, sizeof name - 1);
  return name;
}

int KillProcessesWithEnv(std::string_view marker) {
  namespace fs = std::filesystem;
  std::set<pid_t> killed;  // process groups (a task's group is its own)
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator("/proc", error)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(name));
    if (pid == getpid() || !HasVariable(pid, marker)) continue;
    const pid_t group = getpgid(pid);
    if (group > 0 && group != getpgrp()) {
      if (killed.insert(group).second) ::kill(-group, SIGKILL);
    } else if (killed.insert(-pid).second) {
      ::kill(pid, SIGKILL);
    }
  }
  return static_cast<int>(killed.size());
}

bool KillGroupIfMarked(pid_t pid, std::string_view marker) {
  if (pid <= 0 || pid == getpid() || !HasVariable(pid, marker)) return false;
  const pid_t group = getpgid(pid);
  return group == pid && group != getpgrp() && ::kill(-group, SIGKILL) == 0;
}

}  // namespace tierflow
