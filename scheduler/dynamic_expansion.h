// Dynamic fan-out (`foreach: {from: STAGE.OUTPUT, format: lines|json}`,
// docs/pipeline-format.md "Dynamic fan-out"): when the task that writes the
// list succeeds, the list is read and checked, and the dynamic stage (with
// the stages mapped over it, `foreach: {over: D}`) gets one task per item,
// appended to the task graph and the run model as one contiguous range per
// stage and recorded in the store (task rows and a `stage_expanded` event)
// in the turn's transaction, before anything is launched. A resume
// rebuilds the expansion from the recorded task rows, never from the file.
//
// Thread-safety: none; part of the engine's turn (engine.h, "Threading"),
// or of a resume's set-up before the first turn.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "dag/pipeline.h"
#include "scheduler/run_writer.h"
#include "scheduler/sqlite.h"

namespace tierflow::scheduler::internal {

struct RunModel;

// The items of a list file's text, checked as a foreach's items are (count,
// uniqueness, usable as task ids). On an error, `error` says what and where
// ("line 3: ..." or "element 3: ..."), and no items are returned.
struct ItemList {
  std::vector<std::string> items;
  std::string error;
};
ItemList ParseItemList(std::string_view text, dag::ItemListFormat format);

// One stage's expansion: its tasks [first, first + count) in run.tasks.
struct Expansion {
  uint32_t stage = 0;
  uint32_t first = 0;
  uint32_t count = 0;
};

// What expanding after one task did: the stages expanded, and the dynamic
// stages whose list was bad, each as one task (the stage's name, no item)
// appended for the engine to record `failed` with `message`.
struct ExpansionOutcome {
  std::vector<Expansion> expanded;
  struct Failure {
    uint32_t task = 0;
    std::string message;
  };
  std::vector<Failure> failed;
};

// Task `producer` succeeded (or was kept by a resume): expands each dynamic
// stage whose list it wrote and that is not expanded yet, reading the list
// from its output's path. Sets each expanded stage's tasks' placement (the
// list's write tier; inputs read where they are written) and needs, the
// needs of the tasks that read the expanded stages, and their readers;
// records the task rows and events with `writer` (the caller's turn holds
// the transaction). Readiness and counts are the caller's.
absl::StatusOr<ExpansionOutcome> ExpandAfter(RunModel& run, RunWriter& writer, uint32_t producer);

// A resume, before placement: the dynamic stages expanded before, rebuilt
// from their recorded task rows (items and order as recorded). A stage
// whose list was bad has its one failed row removed: it is expanded again
// (and fails again) when the kept producer's list is read in the first turn.
absl::Status ExpandFromStore(Database& db, RunModel& run);

// Tasks of a dynamic stage not expanded yet count as one unfinished task,
// so that the stages after it wait for its expansion and all its items.
inline constexpr uint32_t kUnexpandedPlaceholder = 1;

}  // namespace tierflow::scheduler::internal
