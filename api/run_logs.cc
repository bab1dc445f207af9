// `tierflow logs RUN` without a task (run_service.h WriteRunLogs): every
// task's log in plan order, each line prefixed with its task id (kubectl's
// and argo's `logs --prefix`), or with -f what the running tasks write,
// interleaved by line, until the run ends. Each call owns its store
// connection and files; safe from any thread.
#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "api/internal/log_tail.h"
#include "api/internal/run_render.h"
#include "api/run_service.h"
#include "api/text_table.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/suggest.h"

namespace tierflow::api {
namespace {

// Writes whole lines of one task's log, each after its prefix; keeps a
// partial last line until the rest of it comes (or Finish).
class PrefixedLines {
 public:
  void SetPrefix(std::string prefix) { prefix_ = std::move(prefix); }

  void Feed(std::string_view data, std::ostream& out) {
    partial_.append(data);
    size_t from = 0;
    for (size_t newline; (newline = partial_.find('\n', from)) != std::string::npos;
         from = newline + 1) {
      out << prefix_;
      out.write(partial_.data() + from, static_cast<std::streamsize>(newline + 1 - from));
    }
    partial_.erase(0, from);
  }

  // A last line without its newline gets one.
  void Finish(std::ostream& out) {
    if (partial_.empty()) return;
    out << prefix_ << partial_ << '\n';
    partial_.clear();
  }

 private:
  std::string prefix_;
  std::string partial_;
};

// "shard[3]  | ": the id padded to `width`, painted in its state's colour.
std::string Prefix(const TaskRow& task, size_t width, const StatePainter& paint) {
  const std::string id = Printable(task.id);
  const std::string painted = paint ? paint(StateWord(task.state), id) : id;
  return StrCat(painted, std::string(width - std::min(width, TextWidth(id)), ' '), " | ");
}

// The run's tasks in plan order, those of `stages` (all when empty); an
// unknown stage is NotFound naming it, with a did-you-mean.
absl::StatusOr<std::vector<TaskRow>> StageTasks(Database& db, const std::string& run_id,
                                                const std::vector<std::string>& stages) {
  TF_ASSIGN_OR_RETURN(scheduler::RunDetail detail,
                      scheduler::GetRunDetail(db, run_id, /*now_ms=*/0));
  std::vector<std::string> known;
  for (const TaskRow& task : detail.tasks) {
    if (std::find(known.begin(), known.end(), task.stage) == known.end()) {
      known.push_back(task.stage);
    }
  }
  for (const std::string& stage : stages) {
    if (std::find(known.begin(), known.end(), stage) == known.end()) {
      return absl::NotFoundError(StrCat("run ", Printable(run_id), " has no stage '",
                                        Printable(stage), "'", DidYouMean(stage, known)));
    }
  }
  if (stages.empty()) return std::move(detail.tasks);
  std::vector<TaskRow> tasks;
  for (TaskRow& task : detail.tasks) {
    if (std::find(stages.begin(), stages.end(), task.stage) != stages.end()) {
      tasks.push_back(std::move(task));
    }
  }
  return tasks;
}

size_t PrefixWidth(const std::vector<TaskRow>& tasks) {
  size_t width = 0;
  for (const TaskRow& task : tasks) width = std::max(width, TextWidth(Printable(task.id)));
  return width;
}

// The latest attempt of `task` with a log to show (a cached attempt's is
// that of the attempt it reused), or a note saying why there is none.
absl::StatusOr<std::optional<AttemptRow>> LogAttempt(Database& db, const TaskRow& task,
                                                     std::ostream& notes) {
  if (task.attempts.empty()) {
    notes << Printable(StrCat(task.id, ": never ran (", StateWord(task.state),
                              task.message.empty() ? "" : ": " + task.message, ")"))
          << '\n';
    return std::nullopt;
  }
  absl::StatusOr<AttemptRow> attempt = AttemptWithLog(db, task.attempts.back(), notes);
  if (absl::IsNotFound(attempt.status())) {
    notes << Printable(StrCat(task.id, ": ", attempt.status().message())) << '\n';
    return std::nullopt;
  }
  if (!attempt.ok()) return attempt.status();
  return std::move(*attempt);
}

absl::Status PrintAll(Database& db, const std::vector<TaskRow>& tasks, size_t width,
                      const StatePainter& paint, std::ostream& out, std::ostream& notes) {
  for (const TaskRow& task : tasks) {
    TF_ASSIGN_OR_RETURN(std::optional<AttemptRow> attempt, LogAttempt(db, task, notes));
    if (!attempt) continue;
    Tail tail(attempt->log_path);
    TF_RETURN_IF_ERROR(tail.TryOpen());
    if (!tail.open()) {
      if (attempt->state == scheduler::AttemptState::kRunning || attempt->log_bytes == 0) {
        notes << Printable(task.id) << ": wrote nothing"
              << (attempt->state == scheduler::AttemptState::kRunning ? " yet" : "") << '\n';
        continue;
      }
      notes << Printable(StrCat(task.id, ": its log is gone: ", attempt->log_path)) << '\n';
      continue;
    }
    std::ostringstream text;
    TF_RETURN_IF_ERROR(tail.Drain(text));
    if (text.str().empty()) {
      notes << Printable(task.id) << ": wrote nothing\n";
      continue;
    }
    PrefixedLines lines;
    lines.SetPrefix(Prefix(task, width, paint));
    lines.Feed(text.str(), out);
    lines.Finish(out);
  }
  out.flush();
  if (!out) return absl::UnavailableError("the output was closed");
  return absl::OkStatus();
}

// One followed task: the attempt whose log is read, from where it was left.
struct Followed {
  int64_t attempt_id = 0;
  std::unique_ptr<Tail> tail;
  PrefixedLines lines;
};

absl::Status FollowAll(Database& db, const LogRequest& request, const std::string& run_id,
                       std::ostream& out, std::ostream& notes) {
  const auto poll = std::chrono::milliseconds(200);
  std::map<std::string, Followed> followed;  // by task id
  std::set<std::string> noted;               // tasks whose missing log was remarked on
  size_t width = 0;
  auto next_check = std::chrono::steady_clock::now();
  auto drain = [&]() -> absl::Status {
    for (auto& [id, one] : followed) {
      TF_RETURN_IF_ERROR(one.tail->TryOpen());
      std::ostringstream text;
      TF_RETURN_IF_ERROR(one.tail->Drain(text));
      one.lines.Feed(text.str(), out);
    }
    out.flush();
    if (!out) return absl::UnavailableError("the output was closed");
    return absl::OkStatus();
  };
  for (;;) {
    if (const auto check_start = std::chrono::steady_clock::now(); check_start >= next_check) {
      // The run's state first: what was written before it ended is read after.
      TF_ASSIGN_OR_RETURN(scheduler::RunStatus run, SettledRunStatus(db, run_id));
      TF_ASSIGN_OR_RETURN(std::vector<TaskRow> tasks, StageTasks(db, run_id, request.stages));
      if (width == 0) width = PrefixWidth(tasks);
      for (const TaskRow& task : tasks) {
        if (request.failed_only && task.state != scheduler::TaskState::kFailed) continue;
        if (task.attempts.empty()) continue;
        const AttemptRow& latest = task.attempts.back();
        auto found = followed.find(task.id);
        if (found != followed.end() && found->second.attempt_id == latest.id) {
          found->second.lines.SetPrefix(Prefix(task, width, request.paint));
          continue;
        }
        std::ostringstream remarks;
        TF_ASSIGN_OR_RETURN(std::optional<AttemptRow> attempt, LogAttempt(db, task, remarks));
        if (!attempt) continue;
        if (noted.insert(task.id).second) notes << remarks.str();
        if (found != followed.end()) {
          // A newer attempt (a retry): the rest of the old one first.
          TF_RETURN_IF_ERROR(drain());
          found->second.lines.Finish(out);
          notes << Printable(StrCat("--- ", task.id, " attempt ", latest.number, " (",
                                    StateWord(latest.state), ")"))
                << '\n';
        }
        Followed& one = followed[task.id];
        one.attempt_id = latest.id;
        one.tail = std::make_unique<Tail>(attempt->log_path);
        one.lines.SetPrefix(Prefix(task, width, request.paint));
      }
      if (run.state != scheduler::RunState::kRunning || run.engine == EngineStatus::kGone) {
        TF_RETURN_IF_ERROR(drain());
        for (auto& [id, one] : followed) one.lines.Finish(out);
        out.flush();
        if (run.engine == EngineStatus::kGone) {
          notes << Printable(StrCat("the engine of run ", run_id,
                                    " is gone; stopped following (resume with: tierflow resume ",
                                    run_id, ")"))
                << '\n';
        }
        return absl::OkStatus();
      }
      // A big run's tasks take a while to read: at most a fifth of the
      // time goes to reading them.
      const auto now = std::chrono::steady_clock::now();
      next_check =
          now + std::max<Duration>(request.recheck,
                                   std::chrono::duration_cast<Duration>(4 * (now - check_start)));
    }
    TF_RETURN_IF_ERROR(drain());
    std::this_thread::sleep_for(poll);
  }
}

}  // namespace

absl::Status WriteRunLogs(const LogRequest& request, std::ostream& out, std::ostream& notes) {
  TF_ASSIGN_OR_RETURN(std::unique_ptr<Database> db, OpenReadOnly(request.db));
  TF_ASSIGN_OR_RETURN(std::string run_id, scheduler::ResolveRunId(*db, request.run));
  if (request.follow) return FollowAll(*db, request, run_id, out, notes);
  TF_ASSIGN_OR_RETURN(std::vector<TaskRow> tasks, StageTasks(*db, run_id, request.stages));
  const size_t width = PrefixWidth(tasks);
  if (request.failed_only) {
    size_t total = 0;
    TF_ASSIGN_OR_RETURN(std::vector<TaskRow> failed,
                        scheduler::FailedTasks(*db, run_id, /*limit=*/0, &total));
    std::set<std::string> ids;
    for (const TaskRow& task : failed) ids.insert(task.id);
    std::erase_if(tasks, [&](const TaskRow& task) { return !ids.contains(task.id); });
    if (tasks.empty()) {
      notes << "run " << Printable(run_id) << " has no failed tasks"
            << (request.stages.empty() ? "" : " in those stages") << '\n';
      return absl::OkStatus();
    }
  }
  return PrintAll(*db, tasks, width, request.paint, out, notes);
}

}  // namespace tierflow::api
