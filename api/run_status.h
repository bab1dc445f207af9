// `tierflow status [RUN]` on the local store: one run at a glance, the way
// `tierflow status --scheduler` shows a server's run (its first line is the
// same): the run's state and message, its engine (alive, or gone with the
// resume command), task counts overall and per stage, the running tasks
// and the failed ones with their messages. Only what the store recorded;
// nothing is recomputed. Stateless; safe from any thread.
#pragma once

#include <cstdint>
#include <iosfwd>

#include "api/run_service.h"

namespace tierflow::api {

// How many running and failed tasks the text lists before "... and N more".
inline constexpr size_t kStatusListed = 20;

// run RUN (PIPELINE): STATE[ - MESSAGE]
// engine: alive (pid N on HOST) | gone (pid N): resume with ... | ...
// tasks: N tasks: n succeeded, ...
// a table STAGE, TASKS, DONE, RUNNING, WAITING, FAILED, CANCELLED
// running: each running task with how long it has run (`now_ms`)
// failed: each failed task with its message, then the logs command
// States are painted by `paint` when set.
void RenderStatusText(const RunDetail& detail, int64_t now_ms, const StatePainter& paint,
                      std::ostream& out);

//   {"run_id", "pipeline", "state", "message", "engine" (as RenderRunsJson),
//    "engine_pid", "engine_host", "resume_command" (a gone engine's, or null),
//    "tasks": {counts as RenderRunsJson},
//    "stages": [{"stage", "total", "succeeded", "cached", "running",
//                "waiting", "failed", "upstream_failed", "cancelled"}],
//    "running": [{"task_id", "attempt", "started_at_ms"}],
//    "failed": [{"task_id", "state", "message"}]}   (failed, upstream_failed)
void RenderStatusJson(const RunDetail& detail, std::ostream& out);

}  // namespace tierflow::api
