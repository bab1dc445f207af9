// The end summary of `tierflow run`/`resume` and `tierflow watch`: the
// per-stage table, every failed task (up to a cap) with the last lines of
// its log and a shell-quoted `tierflow logs` command, then the run's line.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "api/embedded.h"

namespace tierflow::cli {

struct SummaryInput {
  std::string run_id;
  api::RunState state = api::RunState::kRunning;
  api::RunCounts counts;
  Duration elapsed{0};
  std::vector<api::StageSummary> stages;
  std::vector<std::string> write_back_failures;
  std::string db_flag;  // repeated in the commands it suggests
  bool color = false;
};

// Failed tasks listed in full; the others are named by a count and a command.
inline constexpr size_t kFailuresListed = 20;

void PrintRunSummary(const SummaryInput& input, std::ostream& out);

}  // namespace tierflow::cli
