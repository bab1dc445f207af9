// What clients (the CLI now, the UI and remote clients over gRPC/HTTP
// later) call to validate pipeline files and see their plans, and the two
// renderings of a plan. In embedded mode these run in the caller's process.
// Functions are stateless and safe to call from several threads at once.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/diagnostic.h"
#include "scheduler/plan.h"

namespace tierflow::api {

using Plan = scheduler::Plan;

// `--param name=value` overrides; the same ones apply to every file.
using ParamOverrides = std::map<std::string, std::string>;

struct FileValidation {
  std::string file;  // as given
  bool ok = false;
  uint32_t stage_count = 0;  // set when ok
  uint64_t task_count = 0;   // set when ok
  // Every problem found, sorted by position; a file that cannot be read has
  // one diagnostic naming its path.
  std::vector<Diagnostic> diagnostics;
};

// Loads and validates each file in turn (YAML, fields, references, params,
// cycles); one result per file, in the order given.
std::vector<FileValidation> ValidateFiles(const std::vector<std::string>& files,
                                          const ParamOverrides& overrides = {});

// Loads, validates and plans one pipeline file. On invalid input returns
// InvalidArgument whose message is every diagnostic, one per line
// ("file:line:col: field.path: message"); an unreadable file is NotFound or
// PermissionDenied naming the path.
absl::StatusOr<Plan> PlanPipelineFile(const std::string& path,
                                      const ParamOverrides& overrides = {});

// Human-readable plan: a header line "pipeline NAME: S stages, T tasks,
// L layers", the params and the critical path, then for each layer "layer N"
// and a table with one row per task and the columns TASK, KIND, READ, WRITE,
// BLOCK, PASSES, STREAMS, DURABILITY, NEEDS. Every task is listed.
void RenderPlanText(const Plan& plan, std::ostream& out);

// The plan as one JSON object, written as it is rendered (no document tree
// in memory, so 100k-task plans stay small and fast). Field names are
// snake_case and stable; every size is in bytes (names end in `_bytes`,
// 0 = unknown or undeclared) and every duration in milliseconds (names end
// in `_ms`):
//
//   {"pipeline": str, "file": str, "description": str,
//    "params": [{"name", "type", "value", "overridden"}],
//       value typed by "type": string, int, float, bool, or list (array of
//       strings)
//    "totals": {"stages", "tasks", "layers"},
//    "critical_path": [stage names, root to sink],
//    "layers": [{"layer": n, "stages": [names], "tasks": [task...]}]}
//
//   task: {"id", "stage", "kind", "layer",
//          "item": str or null, "item_index",
//          "io": {"read", "write", "block_size_bytes", "read_bytes",
//                 "write_bytes", "read_passes", "streams", "durability"},
//          "resources": {"cpus", "memory_bytes", "gpus"},
//          "retries": {"limit", "backoff_ms", "factor", "max_backoff_ms"},
//          "timeout_ms": int or null, "cache": bool,
//          "tier": str ("" = placement decides),
//          "checkpoints": {"enabled", "keep", "tier"},
//          "dependencies": [stage names],
//          "argv": [str] (empty for shell commands),
//          "shell": str ("" for argv commands),
//          "outputs": [{"name", "size_bytes", "durability"}]}
// `extra_fields`: more members for the top-level object, as JSON text that
// starts with a comma (`,"placement":{...}`), or empty.
void RenderPlanJson(const Plan& plan, std::ostream& out, std::string_view extra_fields = "");

}  // namespace tierflow::api
