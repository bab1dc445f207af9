// Attempts: what a task's attempt is launched with, and what its report
// means. The launch carries the task contract (docs/task-contract.md): the
// command, TIERFLOW_INPUT_*/OUTPUT_*/STREAM_* paths on the tiers placement
// chose, the node-tier copies a worker makes first, and staging beside
// each output's final place on its write tier. Pure functions of the run
// model; the engine records and launches.
//
// Thread-safety: called on the thread that runs the engine's turn, on a
// RunModel no other thread touches (engine.h, "Threading").
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/task.h"
#include "scheduler/internal/run_model.h"
#include "scheduler/store.h"

namespace tierflow::scheduler::internal {

using Env = std::vector<std::pair<std::string, std::string>>;

// A new attempt of `task` (task.attempts is its number): what to run,
// where, with what resources, and its log path.
TaskLaunch NewLaunch(const RunModel& run, uint32_t task, Duration kill_grace);

// Where an attempt stages its outputs: runs/RUN/staging/STAGE[/ITEM]/attempt-N/.
std::string StagingKey(const RunModel& run, uint32_t task);

struct LaunchInputs {
  // ("NAME=STAGE.OUTPUT", producing tasks): for the cache key.
  std::vector<std::pair<std::string, std::vector<uint32_t>>> producers;
  std::vector<std::pair<std::string, int64_t>> consumed;  // (input name, artifact id): lineage
};
// Adds TIERFLOW_INPUT_* (and TIERFLOW_STREAM_* for an input still being
// streamed) to `env`, and the node-tier inputs and their stage-in copies
// to `launch`.
LaunchInputs AddInputs(const RunModel& run, uint32_t task, TaskLaunch& launch, Env& env);
// Adds TIERFLOW_OUTPUT_* (staging paths under `staging` on each output's
// write tier) to `env`, and the outputs to `launch`.
void AddOutputs(const RunModel& run, uint32_t task, TaskLaunch& launch, Env& env,
                const std::string& staging);
// The launch's environment: `contract` then the TIERFLOW_* names of the
// run, task, stage and attempt.
void SetEnvironment(const RunModel& run, uint32_t task, Env contract, TaskLaunch& launch);
// Where `task` reads its inputs and how much of each: attempts.reads_json.
std::string ReadsJson(const RunModel& run, uint32_t task);
// The attempt state an executor's outcome is recorded as.
AttemptState AttemptOutcome(TaskReport::Outcome outcome, bool reusing);
// A failed attempt that ran out of space: "; ..." naming the tiers it
// writes on (outputs, and `checkpoint_tier` for a checkpointing stage),
// with their free space; "" when neither its log's tail says "No space
// left on device" nor a posix tier it writes on has under 1 MiB free.
std::string FullTierNote(const RunModel& run, uint32_t task, uint8_t checkpoint_tier);

}  // namespace tierflow::scheduler::internal
