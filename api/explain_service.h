// `tierflow plan FILE --explain` and `tierflow run FILE --dry-run`: what a
// run of the file would do now, task by task (run or reuse, and why), as
// the scheduler decides it (scheduler/cache_explain.h), and its two
// renderings. Nothing runs and the store is only read.
// Functions are stateless and safe to call from several threads at once.
#pragma once

#include <iosfwd>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "scheduler/cache_explain.h"

namespace tierflow::api {

struct ExplainRequest {
  std::string file;
  std::map<std::string, std::string> params;  // --param overrides
  std::string db_path;                        // the store `run` would use; missing: no earlier runs
  std::vector<std::string> rerun;
  bool rerun_downstream = false;
  bool no_cache = false;
};

struct Explanation {
  std::string pipeline;
  std::string file;
  bool store = false;                             // false: there was no store to look in
  std::vector<scheduler::TaskExplanation> tasks;  // plan order
};

// InvalidArgument with every diagnostic for an invalid file, or naming an
// unknown --rerun stage (with a did-you-mean).
absl::StatusOr<Explanation> ExplainPipelineFile(const ExplainRequest& request);

// One line per task, "TASK: run|reuse: REASON", in plan order; a foreach
// stage's tasks that share a decision and reason (the attempt number
// aside) are one line, "STAGE[first..last] (N tasks)", when there are more
// than three of them. Then the totals.
void RenderExplainText(const Explanation& explanation, std::ostream& out);

// {"pipeline", "file", "store": bool, "totals": {"run", "reuse"},
//  "tasks": [{"id", "stage", "decision": "run"|"reuse", "reason",
//             "cached_from": {"run", "attempt"} (a reuse only)}]}
void RenderExplainJson(const Explanation& explanation, std::ostream& out);

}  // namespace tierflow::api
