// A run's task counts (RunCounts, engine.h) as its turns keep them, and
// what they make of its end: the final state and the message recorded with
// it (runs.state, runs.message), with what went wrong around the tasks.
// Pure functions.
#pragma once

#include <string>
#include <vector>

#include "scheduler/store.h"  // RunState, TaskState

namespace tierflow::scheduler {

struct RunCounts;  // engine.h

// `delta` tasks more (or fewer) in `state`.
void CountTask(RunCounts& counts, TaskState state, int delta);

// Cancelled when it was cancelled (a cancelled task, or a cancel under
// way); else failed when a task failed, a write-back to a home failed or
// the run's leftovers could not be cleaned up; else succeeded.
RunState FinalRunState(const RunCounts& counts, bool cancelling, bool write_back_failed,
                       bool cleanup_failed);

// The message recorded with that state: the failed tasks' counts, the
// write-backs that failed (with how to finish them: `run_id`'s resume;
// not for a cancelled run, which resumes anyway), then the cleanup
// failures; "" when there is nothing to say.
std::string FinalRunMessage(const RunCounts& counts, bool cancelling,
                            const std::vector<std::string>& write_back_failures,
                            const std::vector<std::string>& cleanup_failures,
                            const std::string& run_id);

}  // namespace tierflow::scheduler
