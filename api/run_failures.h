// What a run's failures were, for people: each failed task with its latest
// attempt, the last lines of that attempt's log (stdout and stderr, as the
// command wrote them) and a `tierflow logs` command to paste into any POSIX
// shell. The end summary of `tierflow run`/`watch`, `tierflow logs
// --failed` and the UI's failed tasks list (GET /api/v1/runs/RUN/failures)
// all show this one list. Stateless; safe from any thread.
#pragma once

#include <cstddef>
#include <iosfwd>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "scheduler/run_queries.h"

namespace tierflow::api {

struct FailureOptions {
  size_t limit = 0;          // failed tasks listed; 0: all
  size_t tail_lines = 10;    // lines of each log
  size_t tail_bytes = 8192;  // read from the log's end at most
  // The --db flag as the user gave it ("": the default store), repeated in
  // the logs command so that it reads the same store.
  std::string db_flag;
};

struct FailureReport {
  scheduler::TaskRow task;  // attempts[0]: its latest attempt, when it had one
  // The last lines of that attempt's log, control characters escaped
  // (Printable); `log_cut`: the log has more before them.
  std::vector<std::string> log_tail;
  bool log_cut = false;
  // Why there are no lines, when there are none: "it never started", "its
  // log is empty", "its log is gone: ...".
  std::string log_note;
  std::string logs_command;  // tierflow logs RUN TASK [--db DB], shell-quoted
};

struct FailureList {
  std::string run_id;
  std::vector<FailureReport> failures;  // plan order
  size_t total = 0;                     // failed tasks in all (beyond the limit too)
};

// The failures of `run` (an id, or last) in the store `db` (a --db flag).
absl::StatusOr<FailureList> ListFailures(const std::string& db, const std::string& run,
                                         const FailureOptions& options);

// The last `lines` lines of the file at `path`, read from at most its last
// `max_bytes` (a partial first line dropped); `*cut` says whether the file
// holds more before them. NotFound when there is no such file.
absl::StatusOr<std::vector<std::string>> ReadLogTail(const std::string& path, size_t lines,
                                                     size_t max_bytes, bool* cut);

// `tierflow logs RUN TASK`, each word shell-quoted (ShellQuote), with
// `--db DB` when `db_flag` is not "".
std::string LogsCommand(const std::string& run_id, const std::string& task_id,
                        const std::string& db_flag);

//   {"run_id", "total", "failures": [{"task_id", "stage", "item", "state",
//     "message", "attempt": number or null, "exit_code", "signal",
//     "attempt_message", "finished_at_ms", "log_path", "log_tail": [lines],
//     "log_cut", "log_note", "logs_command"}]}
void RenderFailuresJson(const FailureList& list, std::ostream& out);

}  // namespace tierflow::api
