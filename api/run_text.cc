// The text renderings of run_service.h for people: the runs table and one
// run's report (tasks, attempts, outputs, checkpoints, time on data), plus
// the text helpers every rendering shares (api/internal/run_render.h).
// Stateless; safe from any thread.
#include <algorithm>
#include <csignal>
#include <cstring>
#include <ctime>
#include <ostream>
#include <string_view>
#include <utility>
#include <vector>

#include "api/internal/run_render.h"
#include "api/run_service.h"
#include "api/text_table.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/units.h"
#include "scheduler/store.h"

namespace tierflow::api {

absl::StatusOr<std::unique_ptr<Database>> OpenReadOnly(const std::string& db) {
  return scheduler::OpenStoreReadOnly(scheduler::ResolveDatabasePath(db));
}

// `text` with control characters written as C escapes, so a name or a
// message can neither break a table's rows nor drive the terminal. Other
// bytes (UTF-8 names) stay as they are.
std::string Printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      out += CEscape(std::string_view(&c, 1));
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string DurationText(const std::optional<int64_t>& ms) {
  return ms ? FormatDuration(Duration(*ms)) : "-";
}

std::optional<int64_t> Between(const std::optional<int64_t>& start,
                               const std::optional<int64_t>& end) {
  if (!start || !end) return std::nullopt;
  return std::max<int64_t>(0, *end - *start);
}

// "xxh3:0123456789ab": the algorithm and the first 12 hex digits.
std::string ShortHash(std::string_view hash) {
  const size_t colon = hash.find(':');
  const size_t digits = colon == std::string_view::npos ? 0 : colon + 1;
  return Printable(hash.substr(0, digits + 12));
}

std::string SizeText(const ArtifactRow& artifact) {
  std::string text = FormatSize(static_cast<uint64_t>(std::max<int64_t>(0, artifact.bytes)));
  if (artifact.files > 1) text += StrCat(" in ", artifact.files, " files");
  return text;
}

std::string CopiesText(const std::vector<CopyRow>& copies) {
  std::string text;
  for (const CopyRow& copy : copies) {
    if (!text.empty()) text += ", ";
    text += Printable(StrCat(copy.tier, ":", copy.uri));
    std::vector<std::string> notes;
    if (copy.state == scheduler::ArtifactCopyState::kReleased) {
      // A volatile home released after its last reader: not a home any more.
      notes.push_back("released, recomputed when needed");
    } else {
      if (copy.role != "home") notes.push_back(Printable(copy.role));
      if (copy.state != scheduler::ArtifactCopyState::kPresent) {
        notes.push_back(StateWord(copy.state));
      }
    }
    if (!notes.empty()) {
      text += " (" + notes[0];
      for (size_t i = 1; i < notes.size(); ++i) text += ", " + notes[i];
      text += ")";
    }
  }
  return text.empty() ? "-" : text;
}

std::string AttemptRef(const std::string& run, const std::string& task, int64_t number,
                       const std::string& context_run) {
  return Printable(StrCat(run == context_run ? "" : StrCat(run, "/"), task, " attempt ", number));
}

std::vector<DataWait> DataWaits(const RunDetail& detail) {
  std::vector<DataWait> waits;
  for (const TaskRow& task : detail.tasks) {
    if (task.attempts.empty()) continue;
    const AttemptRow& attempt = task.attempts.back();
    if (!attempt.data_wait_ms && !attempt.input_wait_ms) continue;
    DataWait wait;
    wait.task = &task;
    wait.attempt = &attempt;
    wait.waited_ms = attempt.input_wait_ms.value_or(0) + attempt.data_wait_ms.value_or(0);
    wait.total_ms = Between(attempt.started_at_ms, attempt.finished_at_ms).value_or(0) +
                    attempt.input_wait_ms.value_or(0);
    if (wait.total_ms > 0 && wait.waited_ms * 20 > wait.total_ms) {
      // The tier it read the most from is where the wait most likely was.
      const AttemptRow::Read* slowest = nullptr;
      for (const AttemptRow::Read& read : attempt.reads) {
        if (slowest == nullptr || read.bytes > slowest->bytes) slowest = &read;
      }
      wait.advice =
          StrCat(Printable(task.id), " waited ", DurationText(wait.waited_ms), " on data, ",
                 wait.waited_ms * 100 / wait.total_ms, "% of its ", DurationText(wait.total_ms));
      if (slowest != nullptr) {
        wait.advice +=
            StrCat(", reading ", Printable(slowest->input), " (", FormatSize(slowest->bytes),
                   ") from tier ", Printable(slowest->tier),
                   ": give it a working copy on a faster tier (a measured profile for ",
                   Printable(slowest->tier),
                   " lets placement see it is slow: tierflow tiers probe), or "
                   "mark the input `stream: true` so the task starts on its first files");
      }
    }
    waits.push_back(std::move(wait));
  }
  return waits;
}

std::string CountsText(const scheduler::RunCounts& c, const StatePainter& paint) {
  const std::pair<std::string_view, uint32_t> states[] = {
      {"succeeded", c.succeeded}, {"cached", c.cached},
      {"running", c.running},     {"retrying", c.retrying},
      {"queued", c.queued},       {"pending", c.pending},
      {"failed", c.failed},       {"upstream_failed", c.upstream_failed},
      {"cancelled", c.cancelled},
  };
  std::string text = StrCat(c.total, c.total == 1 ? " task" : " tasks");
  bool first = true;
  for (const auto& [name, count] : states) {
    if (count == 0) continue;
    const std::string words = StrCat(count, " ", name);
    text += StrCat(first ? ": " : ", ", paint ? paint(name, words) : words);
    first = false;
  }
  return text;
}

namespace {

std::string LocalTime(int64_t ms) {
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm local;
  localtime_r(&seconds, &local);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &local);
  return text;
}

std::string OptionalTime(const std::optional<int64_t>& ms) { return ms ? LocalTime(*ms) : "-"; }

// "0", "1", "SIGTERM" or "-": how the attempt's process ended.
std::string ExitText(const AttemptRow& attempt) {
  if (attempt.signal) {
    const int64_t signal = *attempt.signal;
    const char* name =
        signal > 0 && signal < NSIG ? sigabbrev_np(static_cast<int>(signal)) : nullptr;
    return name != nullptr ? StrCat("SIG", name) : StrCat("signal ", signal);
  }
  if (attempt.exit_code) return StrCat(*attempt.exit_code);
  return "-";
}

// What the attempt row's MESSAGE cell says: why it ended, or what it
// reused.
std::string AttemptMessage(const AttemptRow& attempt) {
  if (!attempt.cached_from) return Printable(attempt.message);
  std::string text = attempt.cached_from_number > 0
                         ? StrCat("reused ",
                                  AttemptRef(attempt.cached_from_run, attempt.cached_from_task,
                                             attempt.cached_from_number, attempt.run_id),
                                  " (#", *attempt.cached_from, ")")
                         : StrCat("reused attempt #", *attempt.cached_from);
  if (!attempt.message.empty()) text += ": " + Printable(attempt.message);
  return text;
}

std::string RunStateText(const RunSummary& run) {
  switch (run.engine) {
    case EngineStatus::kGone:
      return "running (engine gone)";
    case EngineStatus::kOtherHost:
      return StrCat("running (on ", Printable(run.engine_host), ")");
    default:
      // The run's rows stay after `tierflow gc` took its data (scheduler/gc.h).
      return run.gc_state.empty() ? StateWord(run.state) : StateWord(run.state) + ", gc'd";
  }
}

using Table = TextTable;

}  // namespace

void RenderRunsText(const RunList& list, std::ostream& out) {
  RenderRunsText(list, StatePainter(), out);
}

void RenderRunsText(const RunList& list, const StatePainter& paint, std::ostream& out) {
  if (list.runs.empty()) {
    out << "no runs\n";
    return;
  }
  Table table({"RUN", "PIPELINE", "STATE", "TASKS", "FAILED", "STARTED", "DURATION"});
  for (const RunSummary& run : list.runs) {
    // TASKS counts the tasks that did their work; FAILED those that did
    // not because they or an upstream task failed: a failed run never
    // reads "11/11".
    const std::string state = RunStateText(run);
    const uint32_t failed = run.counts.failed + run.counts.upstream_failed;
    const std::string color_word =
        run.engine == EngineStatus::kGone ? "failed" : StateWord(run.state);
    table.Add({Printable(run.id), Printable(run.pipeline), paint ? paint(color_word, state) : state,
               StrCat(run.counts.succeeded + run.counts.cached, "/", run.counts.total),
               failed == 0 || !paint ? StrCat(failed) : paint("failed", StrCat(failed)),
               LocalTime(run.started_at_ms.value_or(run.created_at_ms)),
               DurationText(run.duration_ms)});
  }
  table.Write(out);
  bool blank = false;
  for (const RunSummary& run : list.runs) {
    if (run.engine != EngineStatus::kGone) continue;
    if (!blank) out << '\n';
    blank = true;
    out << Printable(run.id) << ": its tierflow process"
        << (run.engine_pid ? StrCat(" (pid ", *run.engine_pid, ")") : "")
        << " is gone; resume with: tierflow resume " << Printable(run.id) << '\n';
  }
  if (static_cast<int64_t>(list.runs.size()) < list.total) {
    out << (blank ? "" : "\n") << "showing " << list.runs.size() << " of " << list.total
        << " runs (--limit 0 shows all)\n";
  }
}

void RenderRunText(const RunDetail& detail, bool all_attempts, std::ostream& out) {
  const RunSummary& run = detail.run;
  std::string state = StateWord(run.state);
  if (run.engine == EngineStatus::kGone) {
    state += StrCat(" (its tierflow process", run.engine_pid ? StrCat(" ", *run.engine_pid) : "",
                    " is gone; resume with: tierflow resume ", Printable(run.id), ")");
  } else if (run.engine == EngineStatus::kOtherHost) {
    state += StrCat(" (driven from ", Printable(run.engine_host), ")");
  }
  if (run.cancel_requested && run.state == scheduler::RunState::kRunning) {
    state += ", cancel requested";
  }
  std::string params;
  for (const auto& [name, value] : run.params) {
    params += StrCat(params.empty() ? "" : ", ", Printable(name), "=", Printable(value));
  }
  std::vector<std::pair<std::string_view, std::string>> header = {
      {"run", Printable(run.id)},
      {"pipeline", Printable(run.pipeline)},
      {"file", Printable(run.file)},
      {"state", state},
  };
  if (!run.message.empty()) header.emplace_back("message", Printable(run.message));
  header.emplace_back("params", params.empty() ? "(defaults)" : params);
  header.emplace_back("created", LocalTime(run.created_at_ms));
  header.emplace_back("started", OptionalTime(run.started_at_ms));
  header.emplace_back("finished", OptionalTime(run.finished_at_ms));
  header.emplace_back("duration", DurationText(run.duration_ms));
  header.emplace_back("tasks", CountsText(run.counts));
  for (const auto& [name, value] : header) {
    out << name << std::string(10 - name.size(), ' ') << value << '\n';
  }

  if (!detail.tasks.empty()) {
    out << '\n';
    Table tasks({"TASK", "KIND", "STATE", "ATTEMPTS", "EXIT", "DURATION", "MESSAGE"});
    for (const TaskRow& task : detail.tasks) {
      tasks.Add({Printable(task.id), Printable(task.kind), StateWord(task.state),
                 StrCat(task.attempt_count),
                 task.attempts.empty() ? "-" : ExitText(task.attempts.back()),
                 DurationText(Between(task.started_at_ms, task.finished_at_ms)),
                 Printable(task.message)});
      if (task.attempts.size() > 1 || (all_attempts && !task.attempts.empty())) {
        for (const AttemptRow& attempt : task.attempts) {
          tasks.Add({StrCat("  attempt ", attempt.number), "", StateWord(attempt.state), "",
                     ExitText(attempt),
                     DurationText(Between(attempt.started_at_ms, attempt.finished_at_ms)),
                     AttemptMessage(attempt)});
        }
      }
    }
    tasks.Write(out);
  }

  Table outputs({"OUTPUT", "SIZE", "HASH", "COPIES"});
  bool any_output = false;
  for (const TaskRow& task : detail.tasks) {
    for (const ArtifactRow& artifact : task.outputs) {
      any_output = true;
      outputs.Add({Printable(StrCat(artifact.task_id, "/", artifact.name)), SizeText(artifact),
                   ShortHash(artifact.content_hash), CopiesText(artifact.copies)});
    }
  }
  if (any_output) {
    out << '\n';
    outputs.Write(out);
  }

  if (!detail.checkpoints.empty()) {
    out << '\n';
    Table checkpoints({"CHECKPOINT", "STEP", "STATE", "SIZE", "FLUSHED TO", "FLUSH", "HASH"});
    for (const scheduler::CheckpointRow& row : detail.checkpoints) {
      checkpoints.Add(
          {Printable(StrCat(row.task_id, "/", row.name)), row.step ? StrCat(*row.step) : "-",
           Printable(row.state),
           row.bytes ? FormatSize(static_cast<uint64_t>(std::max<int64_t>(*row.bytes, 0))) : "-",
           Printable(row.tier), DurationText(row.flush_ms),
           row.content_hash.empty() ? "-" : ShortHash(row.content_hash)});
    }
    checkpoints.Write(out);
  }

  const std::vector<DataWait> waits = DataWaits(detail);
  if (!waits.empty()) {
    out << '\n';
    Table data({"DATA", "WAITED", "OF ITS TIME", "BLOCKED ON I/O", "READ", "WRITTEN", "READ FROM"});
    for (const DataWait& wait : waits) {
      const AttemptRow& attempt = *wait.attempt;
      std::string from;
      for (const AttemptRow::Read& read : attempt.reads) {
        from +=
            StrCat(from.empty() ? "" : ", ", Printable(read.input), " on ", Printable(read.tier));
      }
      auto bytes = [](const std::optional<int64_t>& value) {
        return value ? FormatSize(static_cast<uint64_t>(std::max<int64_t>(*value, 0)))
                     : std::string("-");
      };
      data.Add({Printable(wait.task->id), DurationText(wait.waited_ms),
                wait.total_ms > 0 ? StrCat(wait.waited_ms * 100 / wait.total_ms, "%") : "-",
                DurationText(attempt.io_wait_ms), bytes(attempt.read_bytes),
                bytes(attempt.write_bytes), from.empty() ? "-" : from});
    }
    data.Write(out);
    for (const DataWait& wait : waits) {
      if (!wait.advice.empty()) out << "advisor: " << wait.advice << '\n';
    }
  }

  const auto failed = std::find_if(detail.tasks.begin(), detail.tasks.end(), [](const TaskRow& t) {
    return t.state == scheduler::TaskState::kFailed && !t.attempts.empty();
  });
  if (failed != detail.tasks.end()) {
    out << "\nwhy " << Printable(failed->id) << " failed: tierflow logs " << Printable(run.id)
        << " " << Printable(failed->id) << '\n';
  }
}

}  // namespace tierflow::api
