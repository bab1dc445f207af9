// libFuzzer target for the pipeline loader (scripts/fuzz.sh runs it). Any
// input must produce either a pipeline or diagnostics, never a crash, a
// hang or a leak; and what the loader accepts, the task graph must accept.
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <tuple>
#include <vector>

#include "common/diagnostic.h"
#include "dag/graph.h"
#include "dag/loader.h"

namespace {

using tierflow::Diagnostic;
using tierflow::dag::LoadOptions;
using tierflow::dag::LoadPipelineText;
using tierflow::dag::Pipeline;
using tierflow::dag::TaskGraph;

// A broken invariant is a finding: abort so that libFuzzer keeps the input.
void Check(bool condition) {
  if (!condition) std::abort();
}

void CheckResult(const absl::StatusOr<Pipeline>& pipeline,
                 const std::vector<Diagnostic>& diagnostics) {
  // Out of memory is the one failure without diagnostics.
  if (pipeline.status().code() == absl::StatusCode::kResourceExhausted) return;
  Check(pipeline.ok() == diagnostics.empty());
  for (size_t i = 1; i < diagnostics.size(); ++i) {
    const Diagnostic& a = diagnostics[i - 1];
    const Diagnostic& b = diagnostics[i];
    Check(std::tie(a.file, a.line, a.column) <= std::tie(b.file, b.line, b.column));
  }
  if (!pipeline.ok()) return;
  // The loader rejects cycles, so the graph must build; expanding a few
  // tasks' commands exercises the templates the loader let through.
  absl::StatusOr<TaskGraph> graph = TaskGraph::Build(*pipeline);
  Check(graph.ok());
  const size_t tasks = graph->tasks().size();
  for (size_t i = 0; i < tasks && i < 16; ++i) {
    graph->ResolveArgv(graph->tasks()[i]);
    graph->TaskEnvironment(graph->tasks()[i]);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<Diagnostic> diagnostics;
  absl::StatusOr<Pipeline> pipeline = LoadPipelineText(text, "fuzz.yaml", {}, &diagnostics);
  CheckResult(pipeline, diagnostics);

  // Again with --param overrides: for a pipeline that has params, new values
  // for its first and last (as an int and as a list), else an unknown one.
  LoadOptions options;
  if (pipeline.ok() && !pipeline->params.empty()) {
    options.param_overrides[pipeline->params.front().name] = "7";
    options.param_overrides[pipeline->params.back().name] = "a,b,,c";
  } else {
    options.param_overrides["fuzz_unknown"] = "1";
  }
  diagnostics.clear();
  CheckResult(LoadPipelineText(text, "fuzz.yaml", options, &diagnostics), diagnostics);
  return 0;
}
