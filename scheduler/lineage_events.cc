// OpenLineage events from the store (lineage_events.h): the subjects of a
// run, their order, and each event's run, job and facets; an attempt's
// datasets are lineage_datasets.cc's.
#include "scheduler/lineage_events.h"

#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>

#include "common/processes.h"
#include "common/status.h"
#include "common/strings.h"
#include "scheduler/internal/lineage_json.h"
#include "scheduler/internal/rows.h"
#include "scheduler/store.h"

namespace tierflow::scheduler::lineage {
namespace {

// tierflow's UUID namespace (a random v4 UUID, fixed for ever).
constexpr std::array<unsigned char, 16> kNamespace = {
    0x6b, 0x3e, 0x1f, 0x52, 0x9a, 0x4d, 0x4c, 0x0e, 0x8f, 0x27, 0x31, 0xd5, 0xa2, 0x60, 0x7c, 0x19};

std::string UuidV5(std::string_view name) {
  std::string data(reinterpret_cast<const char*>(kNamespace.data()), kNamespace.size());
  data += name;
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  digest[6] = static_cast<unsigned char>((digest[6] & 0x0f) | 0x50);  // version 5
  digest[8] = static_cast<unsigned char>((digest[8] & 0x3f) | 0x80);  // RFC 4122 variant
  std::string text;
  char hex[3];
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) text += '-';
    std::snprintf(hex, sizeof hex, "%02x", digest[i]);
    text += hex;
  }
  return text;
}

}  // namespace

std::string_view EventTypeWord(EventType type) {
  switch (type) {
    case EventType::kStart:
      return "START";
    case EventType::kRunning:
      return "RUNNING";
    case EventType::kComplete:
      return "COMPLETE";
    case EventType::kFail:
      return "FAIL";
    case EventType::kAbort:
      return "ABORT";
  }
  return "OTHER";
}

std::string RunUuid(std::string_view run_id) {
  std::string name = "run:";
  name.append(run_id);
  return UuidV5(name);
}

std::string AttemptUuid(std::string_view run_id, int64_t attempt_id) {
  std::string name = "attempt:";
  name.append(run_id);
  name += ':';
  name += std::to_string(attempt_id);
  return UuidV5(name);
}

namespace internal {

std::string Producer() {
  return "https://github.com/tierflow/tierflow/releases/tag/v" TIERFLOW_VERSION;
}

nlohmann::json Facet(std::string_view schema_url) {
  return {{"_producer", Producer()}, {"_schemaURL", std::string(schema_url)}};
}

}  // namespace internal

namespace {

using internal::Facet;
using internal::kSpecFacets;
using scheduler::internal::ForEachRow;
using scheduler::internal::StateOf;

constexpr std::string_view kRunEventSchema =
    "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
// The last lines of a failed attempt's log, as its errorMessage's stackTrace.
constexpr size_t kTraceBytes = 4096;
constexpr int kTraceLines = 20;

// Ties within one millisecond (lineage_events.h): run START, RUNNING,
// attempts, run ends.
enum class Rank { kRunStart, kRunRunning, kAttempt, kRunEnd };

// The run's events (events.kind) that are OpenLineage events of the run.
struct RunEventKind {
  std::string_view kind;
  EventType type;
};
constexpr RunEventKind kRunEventKinds[] = {
    {"run_started", EventType::kStart},      {"run_resumed", EventType::kRunning},
    {"run_succeeded", EventType::kComplete}, {"run_failed", EventType::kFail},
    {"run_cancelled", EventType::kAbort},
};

// "('run_started', ...)", for the queries.
std::string RunEventKindList() {
  std::string list = "(";
  for (const RunEventKind& one : kRunEventKinds) {
    list += StrCat(list.size() > 1 ? ", '" : "'", one.kind, "'");
  }
  return list + ")";
}

std::string_view KindOfRunEvent(EventType type) {
  for (const RunEventKind& one : kRunEventKinds) {
    if (one.type == type) return one.kind;
  }
  return "";
}

bool IsEnd(EventType type) {
  return type == EventType::kComplete || type == EventType::kFail || type == EventType::kAbort;
}

// One attempts row, as the subjects and the events need it.
struct AttemptRow {
  std::string run_id;
  std::string task_id;
  AttemptState state = AttemptState::kRunning;
  int64_t started_at = 0;
  std::optional<int64_t> finished_at;
  std::string message;
  std::string command;
  std::string log_path;
};

absl::StatusOr<AttemptRow> ReadAttempt(Database& db, int64_t attempt_id) {
  TF_ASSIGN_OR_RETURN(ReusedStatement find,
                      db.Reuse("SELECT run_id, task_id, state, started_at, finished_at, message, "
                               "command, log_path FROM attempts WHERE id = ?"));
  find->Bind(1, attempt_id);
  std::optional<AttemptRow> attempt;
  TF_RETURN_IF_ERROR(ForEachRow(*find, [&](Statement& row) -> absl::Status {
    TF_ASSIGN_OR_RETURN(AttemptState state,
                        StateOf(ParseAttemptState, row.Text(2), StrCat("attempt #", attempt_id)));
    attempt = AttemptRow{.run_id = row.Text(0),
                         .task_id = row.Text(1),
                         .state = state,
                         .started_at = row.Int(3),
                         .finished_at = row.OptionalInt(4),
                         .message = row.Text(5),
                         .command = row.Text(6),
                         .log_path = row.Text(7)};
    return absl::OkStatus();
  }));
  if (!attempt) {
    return absl::NotFoundError(StrCat("no attempt #", attempt_id, " in ", db.path()));
  }
  return *attempt;
}

EventSubject StartOf(int64_t attempt_id, const AttemptRow& attempt) {
  return {.run_id = attempt.run_id,
          .attempt_id = attempt_id,
          .type = EventType::kStart,
          .event_ms = attempt.started_at};
}

std::optional<EventSubject> EndOf(int64_t attempt_id, const AttemptRow& attempt) {
  std::optional<EventType> type = AttemptEndType(attempt.state);
  if (!type || !attempt.finished_at) return std::nullopt;
  return EventSubject{.run_id = attempt.run_id,
                      .attempt_id = attempt_id,
                      .type = *type,
                      .event_ms = *attempt.finished_at};
}

// "2024-05-01T12:00:00.000Z".
std::string IsoTime(int64_t ms) {
  const int64_t seconds = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
  const std::time_t time = static_cast<std::time_t>(seconds);
  std::tm utc{};
  gmtime_r(&time, &utc);
  char text[96];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<int>(ms - seconds * 1000));
  return text;
}

// The end of an attempt's log (stdout and stderr together), at most
// kTraceLines lines; "" when there is none.
std::string LogTail(const std::string& path) {
  if (path.empty()) return "";
  std::ifstream log(path, std::ios::binary | std::ios::ate);
  if (!log) return "";
  const std::streamoff size = log.tellg();
  const std::streamoff from = std::max<std::streamoff>(0, size - kTraceBytes);
  log.seekg(from);
  std::string tail(static_cast<size_t>(size - from), '\0');
  if (!log.read(tail.data(), static_cast<std::streamsize>(tail.size()))) return "";
  while (!tail.empty() && tail.back() == '\n') tail.pop_back();
  size_t begin = tail.size();
  for (int lines = 0; lines < kTraceLines && begin != std::string::npos && begin > 0; ++lines) {
    begin = tail.rfind('\n', begin - 1);
  }
  if (begin == std::string::npos) begin = 0;
  if (from > 0 && begin == 0) {
    begin = tail.find('\n');  // a cut first line: drop it
    begin = begin == std::string::npos ? 0 : begin + 1;
  } else if (begin > 0) {
    ++begin;
  }
  return tail.substr(begin);
}

nlohmann::json ErrorMessage(const std::string& message, std::string_view language,
                            const std::string& trace) {
  nlohmann::json facet =
      Facet(StrCat(kSpecFacets, "1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"));
  facet["message"] = message;
  facet["programmingLanguage"] = std::string(language);
  if (!trace.empty()) facet["stackTrace"] = trace;
  return facet;
}

nlohmann::json JobType(std::string_view job_type) {
  nlohmann::json facet =
      Facet(StrCat(kSpecFacets, "2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet"));
  facet["processingType"] = "BATCH";
  facet["integration"] = "TIERFLOW";
  facet["jobType"] = std::string(job_type);
  return facet;
}

nlohmann::json ProcessingEngine() {
  nlohmann::json facet = Facet(
      StrCat(kSpecFacets, "1-1-1/ProcessingEngineRunFacet.json#/$defs/ProcessingEngineRunFacet"));
  facet["name"] = "tierflow";
  facet["version"] = TIERFLOW_VERSION;
  return facet;
}

absl::StatusOr<std::string> PipelineOf(Database& db, const std::string& run_id) {
  TF_ASSIGN_OR_RETURN(ReusedStatement find,
                      db.Reuse("SELECT pipeline_name FROM runs WHERE id = ?"));
  find->Bind(1, run_id);
  std::optional<std::string> pipeline;
  TF_RETURN_IF_ERROR(ForEachRow(*find, [&](Statement& row) { pipeline = row.Text(0); }));
  if (!pipeline) return absl::NotFoundError(StrCat("no run '", run_id, "' in ", db.path()));
  return *pipeline;
}

// The message of the run's end event at `event_ms` (its run_failed event's).
absl::StatusOr<std::string> RunEndMessage(Database& db, const EventSubject& subject) {
  TF_ASSIGN_OR_RETURN(ReusedStatement find,
                      db.Reuse("SELECT message FROM events WHERE run_id = ? AND kind = ? AND "
                               "time = ? ORDER BY id DESC LIMIT 1"));
  find->Bind(1, subject.run_id).Bind(2, KindOfRunEvent(subject.type)).Bind(3, subject.event_ms);
  std::string message;
  TF_RETURN_IF_ERROR(ForEachRow(*find, [&](Statement& row) { message = row.Text(0); }));
  return message;
}

// The run's own events: job PIPELINE, no datasets.
absl::Status FillRunEvent(Database& db, const EventSubject& subject, nlohmann::json& event) {
  event["job"]["facets"] = {{"jobType", JobType("PIPELINE")}};
  if (subject.type == EventType::kFail) {
    TF_ASSIGN_OR_RETURN(std::string message, RunEndMessage(db, subject));
    event["run"]["facets"]["errorMessage"] =
        ErrorMessage(message.empty() ? "the run failed" : message, "unknown", "");
  }
  return absl::OkStatus();
}

// A task attempt's events: job PIPELINE.TASK with the run as its parent;
// its end carries its datasets.
absl::Status FillAttemptEvent(Database& db, const EventSubject& subject,
                              const ExportSettings& settings, const std::string& pipeline,
                              nlohmann::json& event) {
  const int64_t attempt_id = *subject.attempt_id;
  TF_ASSIGN_OR_RETURN(AttemptRow attempt, ReadAttempt(db, attempt_id));
  if (attempt.run_id != subject.run_id) {
    return absl::InvalidArgumentError(StrCat("attempt #", attempt_id, " is of run '",
                                             attempt.run_id, "', not '", subject.run_id, "'"));
  }
  event["job"]["name"] = StrCat(pipeline, ".", attempt.task_id);
  event["job"]["facets"] = {{"jobType", JobType("TASK")}};
  nlohmann::json parent =
      Facet(StrCat(kSpecFacets, "1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet"));
  parent["run"] = {{"runId", RunUuid(subject.run_id)}};
  parent["job"] = {{"namespace", settings.job_namespace}, {"name", pipeline}};
  event["run"]["facets"]["parent"] = std::move(parent);
  if (subject.type == EventType::kFail) {
    const std::string_view language =
        nlohmann::json::parse(attempt.command, nullptr, false).contains("shell") ? "shell"
                                                                                 : "unknown";
    event["run"]["facets"]["errorMessage"] = ErrorMessage(
        attempt.message.empty() ? std::string(AttemptStateName(attempt.state)) : attempt.message,
        language, LogTail(attempt.log_path));
  }
  if (IsEnd(subject.type)) {
    TF_ASSIGN_OR_RETURN(internal::AttemptDatasets datasets,
                        internal::RenderAttemptDatasets(db, attempt_id, settings));
    event["inputs"] = std::move(datasets.inputs);
    event["outputs"] = std::move(datasets.outputs);
  }
  return absl::OkStatus();
}

// The run's own subjects (its run_* events), oldest first; only the
// newest with `newest_only`.
absl::StatusOr<std::vector<EventSubject>> RunLevelSubjects(Database& db, const std::string& run_id,
                                                           bool newest_only) {
  TF_ASSIGN_OR_RETURN(ReusedStatement find,
                      db.Reuse(StrCat("SELECT kind, time FROM events WHERE run_id = ? AND kind "
                                      "IN ",
                                      RunEventKindList(),
                                      newest_only ? " ORDER BY id DESC LIMIT 1" : " ORDER BY id")));
  find->Bind(1, run_id);
  std::vector<EventSubject> subjects;
  TF_RETURN_IF_ERROR(ForEachRow(*find, [&](Statement& row) -> absl::Status {
    std::optional<EventType> type = RunEventOfKind(row.Text(0));
    if (!type) return absl::DataLossError(StrCat("run '", run_id, "': event ", row.Text(0)));
    subjects.push_back(EventSubject{
        .run_id = run_id, .attempt_id = std::nullopt, .type = *type, .event_ms = row.Int(1)});
    return absl::OkStatus();
  }));
  return subjects;
}

}  // namespace

std::optional<EventType> RunEventOfKind(std::string_view kind) {
  for (const RunEventKind& one : kRunEventKinds) {
    if (one.kind == kind) return one.type;
  }
  return std::nullopt;
}

std::optional<EventType> AttemptEndType(AttemptState state) {
  switch (state) {
    case AttemptState::kRunning:
      return std::nullopt;
    case AttemptState::kSucceeded:
    case AttemptState::kCached:
      return EventType::kComplete;
    case AttemptState::kFailed:
    case AttemptState::kTimedOut:
    case AttemptState::kLost:
      return EventType::kFail;
    case AttemptState::kCancelled:
    case AttemptState::kNotStarted:
      return EventType::kAbort;
  }
  return std::nullopt;
}

ExportSettings ExportSettingsFromEnvironment() {
  ExportSettings settings;
  const char* job_namespace = std::getenv("TIERFLOW_OPENLINEAGE_NAMESPACE");
  if (job_namespace != nullptr && *job_namespace != '\0') settings.job_namespace = job_namespace;
  settings.host = HostName();
  return settings;
}

absl::StatusOr<EventSubject> LatestRunSubject(Database& db, const std::string& run_id) {
  TF_ASSIGN_OR_RETURN(std::vector<EventSubject> subjects,
                      RunLevelSubjects(db, run_id, /*newest_only=*/true));
  if (subjects.empty()) {
    return absl::NotFoundError(StrCat("run '", run_id, "' has no run event in ", db.path()));
  }
  return subjects.front();
}

absl::StatusOr<EventSubject> AttemptStartSubject(Database& db, int64_t attempt_id) {
  TF_ASSIGN_OR_RETURN(AttemptRow attempt, ReadAttempt(db, attempt_id));
  return StartOf(attempt_id, attempt);
}

absl::StatusOr<std::optional<EventSubject>> AttemptEndSubject(Database& db, int64_t attempt_id) {
  TF_ASSIGN_OR_RETURN(AttemptRow attempt, ReadAttempt(db, attempt_id));
  return EndOf(attempt_id, attempt);
}

absl::StatusOr<std::vector<EventSubject>> RunEventSubjects(Database& db,
                                                           const std::string& run_id) {
  TF_RETURN_IF_ERROR(PipelineOf(db, run_id).status());
  std::vector<std::pair<Rank, EventSubject>> ranked;
  TF_ASSIGN_OR_RETURN(std::vector<EventSubject> runs,
                      RunLevelSubjects(db, run_id, /*newest_only=*/false));
  for (EventSubject& subject : runs) {
    const Rank rank = subject.type == EventType::kStart     ? Rank::kRunStart
                      : subject.type == EventType::kRunning ? Rank::kRunRunning
                                                            : Rank::kRunEnd;
    ranked.push_back({rank, std::move(subject)});
  }
  TF_ASSIGN_OR_RETURN(ReusedStatement attempts,
                      db.Reuse("SELECT id, state, started_at, finished_at FROM attempts WHERE "
                               "run_id = ? ORDER BY id"));
  attempts->Bind(1, run_id);
  TF_RETURN_IF_ERROR(ForEachRow(*attempts, [&](Statement& row) -> absl::Status {
    const int64_t id = row.Int(0);
    TF_ASSIGN_OR_RETURN(AttemptState state,
                        StateOf(ParseAttemptState, row.Text(1), StrCat("attempt #", id)));
    AttemptRow attempt;
    attempt.run_id = run_id;
    attempt.state = state;
    attempt.started_at = row.Int(2);
    attempt.finished_at = row.OptionalInt(3);
    ranked.push_back({Rank::kAttempt, StartOf(id, attempt)});
    if (std::optional<EventSubject> end = EndOf(id, attempt))
      ranked.push_back({Rank::kAttempt, *end});
    return absl::OkStatus();
  }));
  std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
    return std::pair(a.second.event_ms, a.first) < std::pair(b.second.event_ms, b.first);
  });
  std::vector<EventSubject> subjects;
  subjects.reserve(ranked.size());
  for (auto& [rank, subject] : ranked) subjects.push_back(std::move(subject));
  return subjects;
}

absl::StatusOr<std::string> RenderEvent(Database& db, const EventSubject& subject,
                                        const ExportSettings& settings) {
  TF_ASSIGN_OR_RETURN(std::string pipeline, PipelineOf(db, subject.run_id));
  nlohmann::json event = {
      {"eventType", EventTypeWord(subject.type)},
      {"eventTime", IsoTime(subject.event_ms)},
      {"producer", internal::Producer()},
      {"schemaURL", kRunEventSchema},
      {"run",
       {{"runId", subject.attempt_id ? AttemptUuid(subject.run_id, *subject.attempt_id)
                                     : RunUuid(subject.run_id)},
        {"facets", {{"processing_engine", ProcessingEngine()}}}}},
      {"job", {{"namespace", settings.job_namespace}, {"name", pipeline}}},
  };
  if (subject.attempt_id) {
    TF_RETURN_IF_ERROR(FillAttemptEvent(db, subject, settings, pipeline, event));
  } else {
    TF_RETURN_IF_ERROR(FillRunEvent(db, subject, event));
  }
  // Names and messages are the user's bytes: never let invalid UTF-8 throw.
  return event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

absl::StatusOr<std::vector<std::string>> RenderRunEvents(Database& db, const std::string& run_id,
                                                         const ExportSettings& settings) {
  TF_ASSIGN_OR_RETURN(std::vector<EventSubject> subjects, RunEventSubjects(db, run_id));
  std::vector<std::string> events;
  events.reserve(subjects.size());
  for (const EventSubject& subject : subjects) {
    TF_ASSIGN_OR_RETURN(std::string event, RenderEvent(db, subject, settings));
    events.push_back(std::move(event));
  }
  return events;
}

}  // namespace tierflow::scheduler::lineage
