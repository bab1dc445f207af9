// Run supervision in cluster mode: no run stays `running` with nobody
// driving it. At each check the server (api/cluster_server.cc) tells the
// supervisor which runs the store has `running` and how the engines it
// started stand; a run that no engine of the server drives, seen so on two
// checks in a row (a run being submitted is not driven yet for a moment),
// is to be resumed, with the reason to record (scheduler/api_queries.h
// RecordRunSupervised). A resume that fails is asked for again at the next
// check. No I/O, no clock, no locks: one caller at a time.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

namespace tierflow::scheduler {

// An engine the server started for a run, as supervision sees it.
struct DrivenRun {
  bool ended = false;  // its Run or Resume call returned
  std::string error{};  // why it stopped, when it ended on an error
};

struct RunToResume {
  std::string run_id;
  std::string why;  // recorded with the run (event run_supervised)
};

class RunSupervisor {
 public:
  // One check. `running`: the runs the store has `running`, in the order
  // they are to be resumed in; `driven`: each run an engine of the server
  // was started for. Returns the runs to resume now, in `running`'s order.
  std::vector<RunToResume> Check(const std::vector<std::string>& running,
                                 const std::map<std::string, DrivenRun>& driven);

  // How a resume Check asked for went. Resumed: the run is driven again.
  // Failed: it is asked for again at the next check; returns whether
  // `error` is news worth telling (not the error told for its last try).
  void Resumed(const std::string& run_id);
  bool ResumeFailed(const std::string& run_id, const std::string& error);

  // Runs seen undriven at the last check.
  const std::set<std::string>& suspects() const { return suspects_; }

 private:
  std::set<std::string> suspects_;
  std::map<std::string, std::string> told_;  // run -> the last resume error told
};

}  // namespace tierflow::scheduler
