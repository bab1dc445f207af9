// The renderings of run_status.h.
#include "api/run_status.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/internal/run_render.h"
#include "api/run_failures.h"
#include "api/text_table.h"
#include "common/strings.h"
#include "common/units.h"

namespace tierflow::api {
namespace {

using Json = nlohmann::ordered_json;
using scheduler::TaskState;

// A stage's tasks by state, in plan order of the stages' first tasks.
struct StageCounts {
  std::string stage;
  uint32_t total = 0;
  uint32_t succeeded = 0;
  uint32_t cached = 0;
  uint32_t running = 0;  // running or retrying
  uint32_t waiting = 0;  // pending or queued
  uint32_t failed = 0;
  uint32_t upstream_failed = 0;
  uint32_t cancelled = 0;
};

std::vector<StageCounts> CountStages(const std::vector<TaskRow>& tasks) {
  std::vector<StageCounts> stages;
  for (const TaskRow& task : tasks) {
    auto found = std::find_if(stages.begin(), stages.end(),
                              [&](const StageCounts& s) { return s.stage == task.stage; });
    if (found == stages.end()) {
      stages.push_back(StageCounts{.stage = task.stage});
      found = stages.end() - 1;
    }
    StageCounts& counts = *found;
    ++counts.total;
    switch (task.state) {
      case TaskState::kSucceeded:
        ++counts.succeeded;
        break;
      case TaskState::kCached:
        ++counts.cached;
        break;
      case TaskState::kRunning:
      case TaskState::kRetrying:
        ++counts.running;
        break;
      case TaskState::kPending:
      case TaskState::kQueued:
        ++counts.waiting;
        break;
      case TaskState::kFailed:
        ++counts.failed;
        break;
      case TaskState::kUpstreamFailed:
        ++counts.upstream_failed;
        break;
      case TaskState::kCancelled:
        ++counts.cancelled;
        break;
    }
  }
  return stages;
}

bool Failed(TaskState state) {
  return state == TaskState::kFailed || state == TaskState::kUpstreamFailed;
}

std::string Paint(const StatePainter& paint, std::string_view state, std::string_view text) {
  return paint ? paint(state, text) : std::string(text);
}

std::string EngineText(const RunSummary& run) {
  const std::string pid = run.engine_pid ? StrCat("pid ", *run.engine_pid) : "";
  switch (run.engine) {
    case EngineStatus::kAlive:
      return StrCat("alive (", pid, run.engine_host.empty() ? "" : " on ",
                    Printable(run.engine_host), ")");
    case EngineStatus::kGone:
      return StrCat("gone", pid.empty() ? "" : " (" + pid + ")", "; resume with: tierflow resume ",
                    ShellQuote(run.id));
    case EngineStatus::kOtherHost:
      return StrCat("on ", Printable(run.engine_host), " (cannot be checked from here)");
    case EngineStatus::kNotRunning:
      break;
  }
  return "not running (the run is over)";
}

// A count painted in `state`'s colour when it is not 0.
std::string CountCell(const StatePainter& paint, std::string_view state, uint32_t count) {
  return count == 0 ? "0" : Paint(paint, state, StrCat(count));
}

}  // namespace

void RenderStatusText(const RunDetail& detail, int64_t now_ms, const StatePainter& paint,
                      std::ostream& out) {
  const RunSummary& run = detail.run;
  const std::string state = StateWord(run.state);
  out << "run " << Printable(run.id) << " (" << Printable(run.pipeline)
      << "): " << Paint(paint, state, state)
      << (run.message.empty() ? "" : " - " + Printable(run.message)) << '\n';
  out << "engine: "
      << (run.engine == EngineStatus::kGone ? Paint(paint, "failed", EngineText(run))
                                            : EngineText(run))
      << '\n';
  if (run.cancel_requested && run.state == scheduler::RunState::kRunning) {
    out << "cancel requested\n";
  }
  out << "tasks: " << CountsText(run.counts, paint) << '\n';

  const std::vector<StageCounts> stages = CountStages(detail.tasks);
  if (!stages.empty()) {
    out << '\n';
    TextTable table({"STAGE", "TASKS", "DONE", "RUNNING", "WAITING", "FAILED", "CANCELLED"});
    for (const StageCounts& s : stages) {
      table.Add({Printable(s.stage), StrCat(s.total),
                 CountCell(paint, "succeeded", s.succeeded + s.cached),
                 CountCell(paint, "running", s.running), StrCat(s.waiting),
                 CountCell(paint, "failed", s.failed + s.upstream_failed),
                 CountCell(paint, "cancelled", s.cancelled)});
    }
    table.Write(out);
  }

  std::vector<const TaskRow*> running;
  std::vector<const TaskRow*> failed;
  for (const TaskRow& task : detail.tasks) {
    if (task.state == TaskState::kRunning) running.push_back(&task);
    if (Failed(task.state)) failed.push_back(&task);
  }
  if (!running.empty()) {
    out << "\nrunning:\n";
    TextTable table({"  TASK", "ATTEMPT", "FOR"});
    for (size_t i = 0; i < running.size() && i < kStatusListed; ++i) {
      const TaskRow& task = *running[i];
      std::optional<int64_t> started = task.attempts.empty()
                                           ? task.started_at_ms
                                           : std::optional(task.attempts.back().started_at_ms);
      table.Add({"  " + Paint(paint, "running", Printable(task.id)),
                 StrCat(std::max<int64_t>(task.attempt_count, 1)),
                 DurationText(Between(started, now_ms))});
    }
    table.Write(out);
    if (running.size() > kStatusListed) {
      out << "  ... and " << running.size() - kStatusListed << " more\n";
    }
  }
  if (!failed.empty()) {
    out << "\nfailed:\n";
    TextTable table({"  TASK", "STATE", "MESSAGE"});
    for (size_t i = 0; i < failed.size() && i < kStatusListed; ++i) {
      const TaskRow& task = *failed[i];
      const std::string word = StateWord(task.state);
      table.Add({"  " + Printable(task.id), Paint(paint, word, word),
                 task.message.empty() ? "-" : Printable(task.message)});
    }
    table.Write(out);
    if (failed.size() > kStatusListed) {
      out << "  ... and " << failed.size() - kStatusListed << " more\n";
    }
    out << "their logs: tierflow logs " << ShellQuote(run.id) << " --failed\n";
  }
}

void RenderStatusJson(const RunDetail& detail, std::ostream& out) {
  const RunSummary& run = detail.run;
  const scheduler::RunCounts& c = run.counts;
  Json json = {
      {"run_id", run.id},
      {"pipeline", run.pipeline},
      {"state", StateWord(run.state)},
      {"message", run.message},
      {"engine", std::string(scheduler::EngineStatusName(run.engine))},
      {"engine_pid", run.engine_pid ? Json(*run.engine_pid) : Json(nullptr)},
      {"engine_host", run.engine_host},
      {"resume_command", run.engine == EngineStatus::kGone
                             ? Json(StrCat("tierflow resume ", ShellQuote(run.id)))
                             : Json(nullptr)},
      {"tasks", CountsJson(c)},
  };
  Json stages = Json::array();
  for (const StageCounts& s : CountStages(detail.tasks)) {
    stages.push_back({{"stage", s.stage},
                      {"total", s.total},
                      {"succeeded", s.succeeded},
                      {"cached", s.cached},
                      {"running", s.running},
                      {"waiting", s.waiting},
                      {"failed", s.failed},
                      {"upstream_failed", s.upstream_failed},
                      {"cancelled", s.cancelled}});
  }
  json["stages"] = std::move(stages);
  Json running = Json::array();
  Json failed = Json::array();
  for (const TaskRow& task : detail.tasks) {
    if (task.state == TaskState::kRunning) {
      running.push_back(
          {{"task_id", task.id},
           {"attempt", task.attempt_count},
           {"started_at_ms", task.attempts.empty() ? Json(task.started_at_ms.value_or(0))
                                                   : Json(task.attempts.back().started_at_ms)}});
    }
    if (Failed(task.state)) {
      failed.push_back(
          {{"task_id", task.id}, {"state", StateWord(task.state)}, {"message", task.message}});
    }
  }
  json["running"] = std::move(running);
  json["failed"] = std::move(failed);
  out << json.dump(2, ' ', false, Json::error_handler_t::replace) << '\n';
}

}  // namespace tierflow::api
