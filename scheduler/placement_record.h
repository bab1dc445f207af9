// The placement decisions of a run as the store keeps them (the
// `placements` table, schema 9): written once when the run starts, in the
// transaction that creates it, and read back per task by the HTTP API, so
// that what it shows is the decision the engine made rather than one made
// again from today's tiers. A run that predates the table has no rows:
// LoadTaskPlacement says so with nullopt, and the reader may recompute.
// Functions of a Database, used by the thread that owns it.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "scheduler/placement.h"
#include "scheduler/sqlite.h"

namespace tierflow::scheduler {

// Writes every decision of `placement` and `checkpoints` for run `run_id`,
// and the row that says this run recorded them (even when there are none:
// the engine's one implicit tier). A decision that every task of a stage
// shares (a foreach's items are placed alike) is one row, under the stage;
// a task whose decision differs has its own. Call inside the caller's
// write transaction, after the run's row. Writing the same decisions again
// changes nothing (the table's key is run, task, kind and name).
absl::Status RecordPlacement(Database& db, std::string_view run_id, const Placement& placement,
                             const std::vector<CheckpointPlacement>& checkpoints);

// One task's recorded decisions: its outputs' homes and write tiers, its
// inputs' working tiers, and its stage's checkpoint tiers when it has
// checkpoints; each with its reason, in the order the engine placed them.
struct RecordedTaskPlacement {
  Placement placement;
  std::optional<CheckpointPlacement> checkpoint;
};

// nullopt: the run recorded no decisions (it ran before schema 9). One
// indexed query. DataLoss when a row is not what RecordPlacement wrote.
absl::StatusOr<std::optional<RecordedTaskPlacement>> LoadTaskPlacement(Database& db,
                                                                       std::string_view run_id,
                                                                       std::string_view task_id);

}  // namespace tierflow::scheduler
