// The plan of a pipeline: every task it expands to, in dependency layers,
// with what each task needs from compute and storage. `tierflow plan` shows
// it; the scheduler will run from it. A Plan is a self-contained value (no
// pointers into the Pipeline or TaskGraph it came from), made of plain
// structs that map one-to-one onto API messages.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/durability.h"
#include "common/units.h"
#include "dag/graph.h"
#include "dag/pipeline.h"

namespace tierflow::scheduler {

struct PlannedParam {
  std::string name;
  dag::ParamType type = dag::ParamType::kString;
  std::string value;               // scalar value as text; lists joined by ","
  std::vector<std::string> items;  // elements when type == kList
  bool overridden = false;         // set with --param rather than the default
};

struct PlannedOutput {
  std::string name;
  uint64_t size_hint = 0;  // expected bytes per task, 0 unknown
  // What this output needs: its own `durability:` or else the stage's
  // io.durability, so consumers never have to resolve the fallback.
  Durability durability = Durability::kNode;
};

// `inputs: {name: stage.output}` of a task's stage.
struct PlannedInput {
  std::string name;
  std::string stage;   // producing stage
  std::string output;  // its output
  bool stream = false;
  bool each = false;  // item-wise: reads only the producer task with its item
};

// One task of the plan. Stage-level settings are copied onto every task of
// the stage because placement and dispatch work per task (a foreach item on
// one node, another item elsewhere).
struct PlannedTask {
  std::string id;     // "stage" or "stage[item]"
  std::string stage;  // stage name
  dag::StageKind kind = dag::StageKind::kGeneric;
  uint32_t layer = 0;
  std::optional<std::string> item;  // the foreach item, for foreach stages
  uint32_t item_index = 0;          // index of `item` in the stage's foreach
  std::string foreach_over;         // mapped item-wise over this stage; "" when not
  dag::IoProfile io;
  dag::Resources resources;
  dag::RetryPolicy retries;
  std::optional<Duration> timeout;
  bool cache = true;
  std::string tier;  // explicit tier override; empty = placement decides
  dag::CheckpointSpec checkpoints;
  std::vector<std::string> dependencies;  // stage names, `needs` and inputs
  // The params the stage sees and is keyed by (Stage::params), and why.
  dag::ParamScope param_scope = dag::ParamScope::kReferenced;
  std::vector<std::string> params;
  std::vector<PlannedInput> inputs;
  // The command: argv with `{{ params.* }}` / `{{ item }}` resolved, or a
  // shell script (then argv is empty).
  std::vector<std::string> argv;
  std::string shell;
  // A shell script that is a plain word list runs without the shell
  // (common/shell_words.h); else why it needs one.
  bool shell_direct = false;
  std::string why_shell;
  std::vector<PlannedOutput> outputs;
  // Placement (the tier of each output's home and working copies, with the
  // reason for each choice) joins here with the storage tiers.
};

// A dynamic stage (`foreach: {from: ...}`, or mapped over one): its tasks
// are added when the list is written, at run time; a plan has none of them.
struct PlannedDynamicStage {
  std::string stage;
  std::string from;    // "STAGE.OUTPUT": the list's; "" for a mapped stage
  std::string format;  // "lines" or "json"
  std::string over;    // a stage mapped over a dynamic one: that stage
};

struct PlanLayer {
  uint32_t index = 0;
  std::vector<std::string> stages;           // stage names, in file order
  std::vector<PlannedTask> tasks;            // stage by stage, items in foreach order
  std::vector<PlannedDynamicStage> dynamic;  // stages without tasks until run time
};

struct Plan {
  std::string file;  // the pipeline file as the user gave it
  std::string pipeline;
  std::string description;
  std::vector<PlannedParam> params;
  uint32_t stage_count = 0;
  uint32_t task_count = 0;
  std::vector<PlanLayer> layers;  // layer 0 first; every task after its dependencies
  // Longest root-to-sink chain of stages (one unit per stage until tasks
  // carry duration estimates).
  std::vector<std::string> critical_path;
};

// How much of each task a plan carries.
enum class PlanDetail {
  kFull,  // every task with every field (`tierflow plan`)
  // What placement reads (PlaceArtifacts, PlaceCheckpoints): each task's
  // inputs and outputs, and a stage's first task for its tier and
  // checkpoints. A stage whose tasks read no inputs and write no outputs
  // is planned with its first task only, since its other tasks would
  // change no decision; commands are not resolved. A million-item foreach
  // of such tasks then costs one planned task, not a million (~600 bytes
  // each) held while the run is placed.
  kPlacement,
};

// Expands `graph` into a plan. Cannot fail: the graph is already acyclic
// and its pipeline validated.
Plan BuildPlan(const dag::TaskGraph& graph, PlanDetail detail = PlanDetail::kFull);

}  // namespace tierflow::scheduler
