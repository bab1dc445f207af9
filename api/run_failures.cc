// ListFailures, ReadLogTail and the JSON of run_failures.h.
#include "api/run_failures.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>

#include "api/internal/run_render.h"
#include "common/status.h"
#include "common/strings.h"

namespace tierflow::api {

absl::StatusOr<std::vector<std::string>> ReadLogTail(const std::string& path, size_t lines,
                                                     size_t max_bytes, bool* cut) {
  *cut = false;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    std::string message = StrCat("cannot read the log ", path, ": ", std::strerror(error));
    return error == ENOENT ? absl::NotFoundError(message) : absl::PermissionDeniedError(message);
  }
  struct stat info;
  std::string text;
  off_t from = 0;
  if (fstat(fd, &info) == 0 && static_cast<size_t>(info.st_size) > max_bytes) {
    from = info.st_size - static_cast<off_t>(max_bytes);
  }
  text.resize(max_bytes);
  size_t got = 0;
  while (got < text.size()) {
    ssize_t n = pread(fd, text.data() + got, text.size() - got, from + static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  text.resize(got);
  size_t begin = 0;
  if (from > 0) {  // the first line read is a piece of one: drop it
    size_t newline = text.find('\n');
    begin = newline == std::string::npos ? text.size() : newline + 1;
    *cut = true;
  }
  std::vector<std::string> all;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + begin, end - begin);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    all.push_back(Printable(line));
    begin = end + 1;
  }
  if (all.size() > lines) {
    all.erase(all.begin(), all.end() - static_cast<std::ptrdiff_t>(lines));
    *cut = true;
  }
  return all;
}

std::string LogsCommand(const std::string& run_id, const std::string& task_id,
                        const std::string& db_flag) {
  std::string command = StrCat("tierflow logs ", ShellQuote(run_id), " ", ShellQuote(task_id));
  if (!db_flag.empty()) command += StrCat(" --db ", ShellQuote(db_flag));
  return command;
}

absl::StatusOr<FailureList> ListFailures(const std::string& db, const std::string& run,
                                         const FailureOptions& options) {
  TF_ASSIGN_OR_RETURN(std::unique_ptr<Database> store, OpenReadOnly(db));
  FailureList list;
  TF_ASSIGN_OR_RETURN(list.run_id, scheduler::ResolveRunId(*store, run));
  TF_ASSIGN_OR_RETURN(std::vector<TaskRow> tasks,
                      scheduler::FailedTasks(*store, list.run_id, options.limit, &list.total));
  store.reset();
  for (TaskRow& task : tasks) {
    FailureReport report;
    report.logs_command = LogsCommand(list.run_id, task.id, options.db_flag);
    if (task.attempts.empty()) {
      report.log_note = "it never started";
    } else if (const AttemptRow& attempt = task.attempts.front(); attempt.log_path.empty()) {
      report.log_note = "it ran nothing";
    } else {
      absl::StatusOr<std::vector<std::string>> tail =
          ReadLogTail(attempt.log_path, options.tail_lines, options.tail_bytes, &report.log_cut);
      if (tail.ok()) {
        report.log_tail = std::move(*tail);
        if (report.log_tail.empty()) report.log_note = "its log is empty";
      } else if (absl::IsNotFound(tail.status()) && attempt.log_bytes.value_or(1) == 0) {
        report.log_note = "its log is empty";  // nothing written: no file (schema 2)
      } else {
        report.log_note = StrCat("its log is gone: ", tail.status().message());
      }
    }
    report.task = std::move(task);
    list.failures.push_back(std::move(report));
  }
  return list;
}

void RenderFailuresJson(const FailureList& list, std::ostream& out) {
  using Json = nlohmann::ordered_json;
  Json failures = Json::array();
  for (const FailureReport& f : list.failures) {
    const TaskRow& t = f.task;
    const AttemptRow* a = t.attempts.empty() ? nullptr : &t.attempts.front();
    Json item;
    item["task_id"] = t.id;
    item["stage"] = t.stage;
    item["item"] = t.item ? Json(*t.item) : Json(nullptr);
    item["state"] = StateWord(t.state);
    item["message"] = t.message;
    item["attempt"] = a ? Json(a->number) : Json(nullptr);
    item["exit_code"] = a && a->exit_code ? Json(*a->exit_code) : Json(nullptr);
    item["signal"] = a && a->signal ? Json(*a->signal) : Json(nullptr);
    item["attempt_message"] = a ? Json(a->message) : Json(nullptr);
    item["finished_at_ms"] = a && a->finished_at_ms ? Json(*a->finished_at_ms) : Json(nullptr);
    item["log_path"] = a ? Json(a->log_path) : Json(nullptr);
    item["log_tail"] = f.log_tail;
    item["log_cut"] = f.log_cut;
    item["log_note"] = f.log_note;
    item["logs_command"] = f.logs_command;
    failures.push_back(std::move(item));
  }
  // Invalid UTF-8 in a log line becomes U+FFFD: the output stays JSON.
  out << Json{{"run_id", list.run_id}, {"total", list.total}, {"failures", failures}}.dump(
             2, ' ', false, Json::error_handler_t::replace)
      << '\n';
}

}  // namespace tierflow::api
