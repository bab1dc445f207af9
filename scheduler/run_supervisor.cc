#include "scheduler/run_supervisor.h"

#include <iterator>
#include <utility>

namespace tierflow::scheduler {

std::vector<RunToResume> RunSupervisor::Check(const std::vector<std::string>& running,
                                              const std::map<std::string, DrivenRun>& driven) {
  std::set<std::string> undriven;
  std::vector<RunToResume> resume;
  for (const std::string& run_id : running) {
    auto found = driven.find(run_id);
    if (found != driven.end() && !found->second.ended) continue;
    undriven.insert(run_id);
    if (suspects_.count(run_id) == 0) continue;  // resumed at the next check
    resume.push_back({run_id, found != driven.end() && !found->second.error.empty()
                                  ? "its engine stopped: " + found->second.error
                                  : "no engine of this server drove it"});
  }
  // A run driven again, or no longer running, starts afresh.
  for (auto it = told_.begin(); it != told_.end();) {
    it = undriven.count(it->first) == 0 ? told_.erase(it) : std::next(it);
  }
  suspects_ = std::move(undriven);
  return resume;
}

void RunSupervisor::Resumed(const std::string& run_id) {
  suspects_.erase(run_id);
  told_.erase(run_id);
}

bool RunSupervisor::ResumeFailed(const std::string& run_id, const std::string& error) {
  auto [told, first] = told_.try_emplace(run_id, error);
  if (first) return true;
  if (told->second == error) return false;
  told->second = error;
  return true;
}

}  // namespace tierflow::scheduler
