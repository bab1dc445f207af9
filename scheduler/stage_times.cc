#include "scheduler/stage_times.h"

#include <algorithm>
#include <vector>

#include "common/status.h"
#include "common/strings.h"
#include "scheduler/internal/rows.h"
#include "scheduler/store.h"

namespace tierflow::scheduler {

absl::StatusOr<std::map<std::string, Duration>> MedianStageTimes(Database& db,
                                                                 const std::string& pipeline,
                                                                 const std::string& run_id) {
  TF_ASSIGN_OR_RETURN(
      Statement times,
      db.Prepare(
          StrCat("SELECT t.stage, coalesce(a.ran_ms, a.finished_at - a.started_at) FROM attempts a "
                 "JOIN tasks t "
                 "ON t.run_id = a.run_id AND t.id = a.task_id "
                 "WHERE a.run_id IN (SELECT id FROM runs WHERE pipeline_name = ? AND id != ? "
                 "ORDER BY created_at DESC LIMIT ",
                 kStageTimeRuns,
                 ") AND a.state = ? AND a.cached_from IS NULL AND a.finished_at IS NOT NULL")));
  times.Bind(1, pipeline).Bind(2, run_id).Bind(3, AttemptStateName(AttemptState::kSucceeded));
  std::map<std::string, std::vector<int64_t>> by_stage;
  TF_RETURN_IF_ERROR(internal::ForEachRow(times, [&](const Statement& row) {
    by_stage[row.Text(0)].push_back(std::max<int64_t>(row.Int(1), 0));
  }));
  std::map<std::string, Duration> medians;
  for (auto& [stage, ms] : by_stage) {
    // The lower median of an even count: a short stage stays short.
    auto middle = ms.begin() + static_cast<std::ptrdiff_t>((ms.size() - 1) / 2);
    std::nth_element(ms.begin(), middle, ms.end());
    medians.emplace(stage, Duration(*middle));
  }
  return medians;
}

}  // namespace tierflow::scheduler
