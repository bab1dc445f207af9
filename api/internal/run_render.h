// Helpers the run_service.h renderings share across their files
// (run_text.cc, run_json.cc, lineage_render.cc, log_follow.cc): how a name,
// a size, a time span or a set of copies is written for people, and the
// data-wait summary both the text and the JSON of a run show. Private to
// api/. Stateless functions, safe from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "api/run_service.h"
#include "scheduler/run_queries.h"
#include "scheduler/sqlite.h"
#include "scheduler/store.h"

namespace tierflow::api {

// The store layer's rows, as every rendering file names them.
using scheduler::ArtifactRow;
using scheduler::AttemptRow;
using scheduler::CopyRow;
using scheduler::Database;
using scheduler::EngineStatus;
using scheduler::LineageEdge;
using scheduler::LineageNode;
using scheduler::RunSummary;
using scheduler::TaskRow;

// A state as the word the store, the JSON and the tables use.
inline std::string StateWord(scheduler::RunState state) {
  return std::string(scheduler::RunStateName(state));
}
inline std::string StateWord(scheduler::TaskState state) {
  return std::string(scheduler::TaskStateName(state));
}
inline std::string StateWord(scheduler::AttemptState state) {
  return std::string(scheduler::AttemptStateName(state));
}
inline std::string StateWord(scheduler::ArtifactCopyState state) {
  return std::string(scheduler::CopyStateName(state));
}

// The state store the --db flag names ("" : $TIERFLOW_DB, else
// .tierflow/tierflow.db), opened read-only.
absl::StatusOr<std::unique_ptr<scheduler::Database>> OpenReadOnly(const std::string& db);

// `text` with control characters written as C escapes, so a name or a
// message can neither break a table's rows nor drive the terminal. Other
// bytes (UTF-8 names) stay as they are.
std::string Printable(std::string_view text);

// "6 tasks: 4 succeeded, 1 failed, 1 upstream_failed": the states with a
// count, each painted by `paint` when given.
std::string CountsText(const scheduler::RunCounts& counts, const StatePainter& paint = nullptr);

// {"total", "done", "pending", ..., "cancelled"}: a run's tasks by state in
// the JSON of runs, show and status.
nlohmann::ordered_json CountsJson(const scheduler::RunCounts& counts);

// "1m 5s", or "-" when unknown.
std::string DurationText(const std::optional<int64_t>& ms);

// end - start (never negative); unset when either is.
std::optional<int64_t> Between(const std::optional<int64_t>& start,
                               const std::optional<int64_t>& end);

// "xxh3:0123456789ab": the algorithm and the first 12 hex digits.
std::string ShortHash(std::string_view hash);

// "1.5 MiB", with " in N files" for a folder.
std::string SizeText(const scheduler::ArtifactRow& artifact);

// "tier:uri (role, state), ...", or "-" for none.
std::string CopiesText(const std::vector<scheduler::CopyRow>& copies);

// "TASK attempt N", with "RUN/" when the run is not `context_run`.
std::string AttemptRef(const std::string& run, const std::string& task, int64_t number,
                       const std::string& context_run);

// How the latest attempt of each task that ran spent its time on data, and
// the advice for those that waited more than 5% of it (DESIGN.md: a few
// percent waiting is a bottleneck).
struct DataWait {
  const scheduler::TaskRow* task = nullptr;
  const scheduler::AttemptRow* attempt = nullptr;
  int64_t waited_ms = 0;  // for copies before it started, and for data while it ran
  int64_t total_ms = 0;   // its run time and the wait before it started
  std::string advice;
};
std::vector<DataWait> DataWaits(const scheduler::RunDetail& detail);

}  // namespace tierflow::api
