#include "scheduler/api_queries.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string_view>

#include "common/status.h"
#include "common/strings.h"
#include "common/units.h"
#include "scheduler/internal/rows.h"

namespace tierflow::scheduler {
namespace {

using internal::ForEachRow;
using internal::OptionalText;
using internal::StateOf;

EventRow ReadEvent(const Statement& row) {
  EventRow event;
  event.id = row.Int(0);
  event.run_id = row.Text(1);
  event.task_id = row.IsNull(2) ? "" : row.Text(2);
  event.attempt_id = row.OptionalInt(3);
  event.time_ms = row.Int(4);
  event.kind = row.Text(5);
  event.message = row.Text(6);
  return event;
}

constexpr std::string_view kEventColumns =
    "SELECT id, run_id, task_id, attempt_id, time, kind, message FROM events";

}  // namespace

// ------------------------------------------------------------- one run

absl::StatusOr<StoredPipeline> GetStoredPipeline(Database& db, const std::string& run_id) {
  TF_ASSIGN_OR_RETURN(Statement find,
                      db.Prepare("SELECT p.yaml, r.file, r.params_json, r.tiers_json FROM runs r "
                                 "JOIN pipelines p ON p.id = r.pipeline_id WHERE r.id = ?"));
  find.Bind(1, run_id);
  std::optional<StoredPipeline> stored;
  TF_RETURN_IF_ERROR(ForEachRow(find, [&](const Statement& row) {
    StoredPipeline run;
    run.yaml = row.Text(0);
    run.file = row.Text(1);
    const nlohmann::json params =
        nlohmann::json::parse(row.Text(2), nullptr, /*allow_exceptions=*/false);
    if (params.is_object()) {
      for (const auto& [name, value] : params.items()) {
        if (value.is_string()) run.params[name] = value.get<std::string>();
      }
    }
    run.tiers_json = OptionalText(row, 3);
    stored = std::move(run);
  }));
  if (!stored) return absl::NotFoundError(StrCat("run ", run_id, " has no stored pipeline"));
  return std::move(*stored);
}

absl::StatusOr<std::vector<GraphTask>> ListGraphTasks(Database& db, const std::string& run_id) {
  TF_ASSIGN_OR_RETURN(
      Statement tasks,
      db.Prepare("SELECT t.id, t.stage, t.kind, t.item, t.item_index, t.layer, t.seq, t.state, "
                 "t.attempts, t.started_at, t.finished_at, t.message, "
                 "(SELECT a.worker FROM attempts a WHERE a.run_id = t.run_id AND a.task_id = t.id "
                 " ORDER BY a.number DESC LIMIT 1) "
                 "FROM tasks t WHERE t.run_id = ? ORDER BY t.seq"));
  tasks.Bind(1, run_id);
  std::vector<GraphTask> result;
  TF_RETURN_IF_ERROR(ForEachRow(tasks, [&](const Statement& row) -> absl::Status {
    GraphTask task;
    task.id = row.Text(0);
    task.stage = row.Text(1);
    task.kind = row.Text(2);
    task.item = OptionalText(row, 3);
    task.item_index = row.Int(4);
    task.layer = row.Int(5);
    task.seq = row.Int(6);
    TF_ASSIGN_OR_RETURN(task.state, StateOf(ParseTaskState, row.Text(7),
                                            StrCat("task ", task.id, " of run ", run_id)));
    task.attempt_count = row.Int(8);
    task.started_at_ms = row.OptionalInt(9);
    task.finished_at_ms = row.OptionalInt(10);
    task.message = row.Text(11);
    task.worker = OptionalText(row, 12);
    result.push_back(std::move(task));
    return absl::OkStatus();
  }));
  return result;
}

absl::StatusOr<std::vector<EventRow>> ListTaskEvents(Database& db, const std::string& run_id,
                                                     const std::string& task_id) {
  TF_ASSIGN_OR_RETURN(Statement events, db.Prepare(StrCat(kEventColumns,
                                                          " WHERE run_id = ? AND task_id = ? "
                                                          "ORDER BY id")));
  events.Bind(1, run_id).Bind(2, task_id);
  std::vector<EventRow> result;
  TF_RETURN_IF_ERROR(
      ForEachRow(events, [&](const Statement& row) { result.push_back(ReadEvent(row)); }));
  return result;
}

absl::StatusOr<std::vector<WorkerChoice>> ListWorkerChoices(Database& db, const std::string& run_id,
                                                            const std::string& task_id) {
  TF_ASSIGN_OR_RETURN(Statement placed,
                      db.Prepare("SELECT e.attempt_id, a.number, e.time, e.message FROM events e "
                                 "LEFT JOIN attempts a ON a.id = e.attempt_id WHERE e.run_id = ? "
                                 "AND e.task_id = ? AND e.kind = 'placed' ORDER BY e.id"));
  placed.Bind(1, run_id).Bind(2, task_id);
  std::vector<WorkerChoice> result;
  TF_RETURN_IF_ERROR(ForEachRow(placed, [&](const Statement& row) {
    result.push_back(WorkerChoice{row.OptionalInt(0), row.OptionalInt(1), row.Int(2), row.Text(3)});
  }));
  return result;
}

absl::StatusOr<std::map<std::string, int64_t>> TaskWrittenBytes(Database& db,
                                                                const std::string& run_id,
                                                                const std::string& task_id) {
  TF_ASSIGN_OR_RETURN(
      Statement written,
      db.Prepare("SELECT c.tier, SUM(c.bytes) FROM attempts a "
                 "JOIN lineage_edges e ON e.attempt_id = a.id AND e.direction = 'produced' "
                 "JOIN artifact_copies c ON c.artifact_id = e.artifact_id "
                 "WHERE a.run_id = ? AND a.task_id = ? AND a.state != 'cached' "
                 "AND c.source_tier IS NULL GROUP BY c.tier"));
  written.Bind(1, run_id).Bind(2, task_id);
  std::map<std::string, int64_t> result;
  TF_RETURN_IF_ERROR(
      ForEachRow(written, [&](const Statement& row) { result[row.Text(0)] += row.Int(1); }));
  return result;
}

absl::StatusOr<std::vector<InputRead>> TaskInputReads(Database& db, const std::string& run_id,
                                                      const std::string& task_id) {
  TF_ASSIGN_OR_RETURN(
      Statement read,
      db.Prepare("SELECT e.name, art.bytes, (SELECT c.tier FROM artifact_copies c WHERE "
                 "c.artifact_id = art.id ORDER BY c.role != 'home', c.id LIMIT 1) "
                 "FROM attempts a JOIN lineage_edges e ON e.attempt_id = a.id "
                 "AND e.direction = 'consumed' JOIN artifacts art ON art.id = e.artifact_id "
                 "WHERE a.run_id = ? AND a.task_id = ? AND a.state != 'cached'"));
  read.Bind(1, run_id).Bind(2, task_id);
  std::vector<InputRead> result;
  TF_RETURN_IF_ERROR(ForEachRow(read, [&](const Statement& row) {
    result.push_back(InputRead{row.Text(0), row.Int(1), OptionalText(row, 2)});
  }));
  return result;
}

// ------------------------------------------------------------ data wait

absl::StatusOr<std::map<TaskKey, double>> DataWaitSeconds(Database& db, const std::string& run_id) {
  std::map<TaskKey, double> waits;
  const std::string run_filter = run_id.empty() ? "" : " AND a.run_id = ?1";
  TF_ASSIGN_OR_RETURN(
      Statement derived,
      db.Prepare(
          StrCat("SELECT a.run_id, a.task_id, a.started_at, MAX(t.finished_at), "
                 "  (SELECT MAX(c.finished_at) FROM lineage_edges e2 JOIN artifact_copies c "
                 "     ON c.artifact_id = e2.artifact_id WHERE e2.attempt_id = a.id "
                 "     AND e2.direction = 'consumed' AND c.role = 'working' "
                 "     AND c.source_tier IS NOT NULL AND c.state != 'failed' "
                 "     AND c.finished_at <= a.started_at) "
                 "FROM attempts a "
                 "JOIN lineage_edges e ON e.attempt_id = a.id AND e.direction = 'consumed' "
                 "JOIN artifacts art ON art.id = e.artifact_id "
                 "JOIN tasks t ON t.run_id = art.run_id AND t.id = art.task_id "
                 // only where the attempts measured nothing (older stores)
                 "WHERE a.state != 'cached' AND a.input_wait_ms IS NULL AND a.data_wait_ms IS NULL",
                 run_filter,
                 " AND a.number = (SELECT MIN(b.number) FROM attempts b WHERE b.run_id = a.run_id "
                 "  AND b.task_id = a.task_id AND b.state != 'cached') "
                 "GROUP BY a.id")));
  if (!run_id.empty()) derived.Bind(1, run_id);
  TF_RETURN_IF_ERROR(ForEachRow(derived, [&](const Statement& row) {
    if (row.IsNull(3) || row.IsNull(4)) return;
    const int64_t started = row.Int(2);
    const int64_t ready = row.Int(3);
    const int64_t copied = std::min(started, row.Int(4));
    waits[{row.Text(0), row.Text(1)}] =
        static_cast<double>(std::max<int64_t>(0, copied - ready)) / 1000.0;
  }));
  // Measured by the engine and the worker (store schema 6): what each
  // attempt waited for copies before it started and, while it ran, what
  // its task helpers accounted; every attempt that ran counts.
  TF_ASSIGN_OR_RETURN(
      Statement measured,
      db.Prepare(StrCat("SELECT a.run_id, a.task_id, SUM(coalesce(a.input_wait_ms, 0) + "
                        "coalesce(a.data_wait_ms, 0)) FROM attempts a WHERE a.state != 'cached' "
                        "AND (a.input_wait_ms IS NOT NULL OR a.data_wait_ms IS NOT NULL)",
                        run_filter, " GROUP BY a.run_id, a.task_id")));
  if (!run_id.empty()) measured.Bind(1, run_id);
  TF_RETURN_IF_ERROR(ForEachRow(measured, [&](const Statement& row) {
    waits[{row.Text(0), row.Text(1)}] = static_cast<double>(row.Int(2)) / 1000.0;
  }));
  return waits;
}

absl::StatusOr<bool> DataWaitMeasured(Database& db, const std::string& run_id,
                                      const std::string& task_id) {
  TF_ASSIGN_OR_RETURN(Statement recorded,
                      db.Prepare("SELECT COUNT(*) FROM attempts WHERE run_id = ? AND task_id = ? "
                                 "AND (input_wait_ms IS NOT NULL OR data_wait_ms IS NOT NULL)"));
  recorded.Bind(1, run_id).Bind(2, task_id);
  bool measured = false;
  TF_RETURN_IF_ERROR(
      ForEachRow(recorded, [&](const Statement& row) { measured = row.Int(0) > 0; }));
  return measured;
}

// ------------------------------------------------------------ event feed

absl::StatusOr<int64_t> LatestEventId(Database& db) {
  TF_ASSIGN_OR_RETURN(Statement newest, db.Prepare("SELECT COALESCE(MAX(id), 0) FROM events"));
  int64_t id = 0;
  TF_RETURN_IF_ERROR(ForEachRow(newest, [&](const Statement& row) { id = row.Int(0); }));
  return id;
}

absl::StatusOr<std::vector<EventRow>> ListEventsAfter(Database& db, int64_t after, int64_t limit) {
  TF_ASSIGN_OR_RETURN(Statement rows,
                      db.Prepare(StrCat(kEventColumns, " WHERE id > ? ORDER BY id LIMIT ?")));
  rows.Bind(1, after).Bind(2, limit);
  std::vector<EventRow> result;
  TF_RETURN_IF_ERROR(
      ForEachRow(rows, [&](const Statement& row) { result.push_back(ReadEvent(row)); }));
  return result;
}

absl::StatusOr<RunningTaskStates> ListRunningTaskStates(Database& db) {
  TF_ASSIGN_OR_RETURN(
      Statement running,
      db.Prepare("SELECT t.run_id, t.id, t.state FROM tasks t JOIN runs r ON r.id = t.run_id "
                 "WHERE r.state = 'running'"));
  RunningTaskStates states;
  TF_RETURN_IF_ERROR(ForEachRow(running, [&](const Statement& row) -> absl::Status {
    const std::string run_id = row.Text(0);
    const std::string task_id = row.Text(1);
    TF_ASSIGN_OR_RETURN(TaskState state, StateOf(ParseTaskState, row.Text(2),
                                                 StrCat("task ", task_id, " of run ", run_id)));
    states[run_id][task_id] = state;
    return absl::OkStatus();
  }));
  return states;
}

// ------------------------------------------------------------ tiers

absl::StatusOr<std::map<std::string, TierUsage>> PresentCopiesByTier(Database& db) {
  TF_ASSIGN_OR_RETURN(Statement usage,
                      db.Prepare("SELECT tier, COUNT(*), SUM(bytes) FROM artifact_copies WHERE "
                                 "state = 'present' GROUP BY tier"));
  std::map<std::string, TierUsage> present;
  TF_RETURN_IF_ERROR(ForEachRow(usage, [&](const Statement& row) {
    present[row.Text(0)] = TierUsage{row.Int(1), row.Int(2)};
  }));
  return present;
}

absl::StatusOr<std::map<std::string, TierProfileRow>> NewestTierProfiles(Database& db) {
  TF_ASSIGN_OR_RETURN(
      Statement newest,
      db.Prepare("SELECT tier, location, measured_at, seq_read_mb_s, seq_write_mb_s, "
                 "rand_read_iops, latency_us, create_us, stat_us, bytes_tested, elapsed_ms "
                 "FROM tier_profiles p WHERE p.id = (SELECT q.id FROM tier_profiles q "
                 "WHERE q.tier = p.tier ORDER BY q.measured_at DESC, q.id DESC LIMIT 1)"));
  std::map<std::string, TierProfileRow> profiles;
  TF_RETURN_IF_ERROR(ForEachRow(newest, [&](const Statement& row) {
    TierProfileRow profile;
    profile.tier = row.Text(0);
    profile.location = row.Text(1);
    profile.measured_at_ms = row.Int(2);
    profile.profile = {row.Double(3), row.Double(4), row.Double(5), row.Double(6)};
    profile.create_us = row.Double(7);
    profile.stat_us = row.Double(8);
    profile.bytes_tested = row.Int(9);
    profile.elapsed_ms = row.Int(10);
    profiles[profile.tier] = std::move(profile);
  }));
  return profiles;
}

absl::Status RecordTierProfile(Database& db, const TierProfileRow& row) {
  TF_ASSIGN_OR_RETURN(
      Statement insert,
      db.Prepare("INSERT INTO tier_profiles(tier, location, measured_at, seq_read_mb_s, "
                 "seq_write_mb_s, rand_read_iops, latency_us, create_us, stat_us, "
                 "bytes_tested, elapsed_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  const storage::TierProfile& p = row.profile;
  insert.Bind(1, row.tier)
      .Bind(2, row.location)
      .Bind(3, row.measured_at_ms)
      .Bind(4, p.seq_read_mb_s)
      .Bind(5, p.seq_write_mb_s)
      .Bind(6, p.rand_read_iops)
      .Bind(7, p.latency_us)
      .Bind(8, row.create_us)
      .Bind(9, row.stat_us)
      .Bind(10, row.bytes_tested)
      .Bind(11, row.elapsed_ms);
  return insert.Run();
}

// ------------------------------------------------------------ metrics

absl::StatusOr<StoreStats> ReadStoreStats(Database& db) {
  StoreStats stats;
  TF_ASSIGN_OR_RETURN(Statement runs,
                      db.Prepare("SELECT state, COUNT(*) FROM runs GROUP BY state"));
  TF_RETURN_IF_ERROR(ForEachRow(runs, [&](const Statement& row) -> absl::Status {
    TF_ASSIGN_OR_RETURN(RunState state, StateOf(ParseRunState, row.Text(0), "runs"));
    stats.runs[state] = row.Int(1);
    return absl::OkStatus();
  }));

  TF_ASSIGN_OR_RETURN(Statement kinds, db.Prepare("SELECT DISTINCT kind FROM tasks"));
  TF_RETURN_IF_ERROR(
      ForEachRow(kinds, [&](const Statement& row) { stats.task_kinds.insert(row.Text(0)); }));

  TF_ASSIGN_OR_RETURN(Statement tasks,
                      db.Prepare("SELECT state, kind, COUNT(*) FROM tasks GROUP BY state, kind"));
  TF_RETURN_IF_ERROR(ForEachRow(tasks, [&](const Statement& row) -> absl::Status {
    TF_ASSIGN_OR_RETURN(TaskState state, StateOf(ParseTaskState, row.Text(0), "tasks"));
    stats.tasks.push_back(StoreStats::TaskCount{state, row.Text(1), row.Int(2)});
    return absl::OkStatus();
  }));

  TF_ASSIGN_OR_RETURN(Statement queued,
                      db.Prepare("SELECT COUNT(*) FROM tasks t JOIN runs r ON r.id = t.run_id "
                                 "WHERE t.state = 'queued' AND r.state = 'running'"));
  TF_RETURN_IF_ERROR(
      ForEachRow(queued, [&](const Statement& row) { stats.queue_depth = row.Int(0); }));

  TF_ASSIGN_OR_RETURN(
      Statement durations,
      db.Prepare("SELECT t.kind, a.finished_at - a.started_at FROM attempts a JOIN tasks t "
                 "ON t.run_id = a.run_id AND t.id = a.task_id "
                 "WHERE a.finished_at IS NOT NULL AND a.state != 'cached'"));
  TF_RETURN_IF_ERROR(ForEachRow(durations, [&](const Statement& row) {
    stats.attempt_times.push_back(StoreStats::AttemptTime{row.Text(0), row.Int(1)});
  }));

  TF_ASSIGN_OR_RETURN(Statement copied,
                      db.Prepare("SELECT tier, source_tier, SUM(bytes) FROM artifact_copies "
                                 "WHERE state NOT IN ('copying', 'failed') "
                                 "GROUP BY tier, source_tier"));
  TF_RETURN_IF_ERROR(ForEachRow(copied, [&](const Statement& row) {
    stats.copied.push_back(StoreStats::CopiedBytes{row.Text(0), OptionalText(row, 1), row.Int(2)});
  }));

  TF_ASSIGN_OR_RETURN(
      Statement transfers,
      db.Prepare(
          "SELECT tier, bytes, finished_at - created_at FROM artifact_copies "
          "WHERE source_tier IS NOT NULL AND state = 'present' AND finished_at IS NOT NULL"));
  TF_RETURN_IF_ERROR(ForEachRow(transfers, [&](const Statement& row) {
    stats.transfers.push_back(StoreStats::Transfer{row.Text(0), row.Int(1), row.Int(2)});
  }));
  return stats;
}

absl::StatusOr<std::string> EnsureClusterId(Database& db, const std::string& fresh_id) {
  TF_ASSIGN_OR_RETURN(Statement make, db.Prepare("INSERT INTO cluster(id, created_at) SELECT ?, ? "
                                                 "WHERE NOT EXISTS (SELECT 1 FROM cluster)"));
  TF_RETURN_IF_ERROR(make.Bind(1, fresh_id).Bind(2, WallClockMs()).Run());
  TF_ASSIGN_OR_RETURN(Statement read, db.Prepare("SELECT id FROM cluster ORDER BY rowid LIMIT 1"));
  TF_ASSIGN_OR_RETURN(bool row, read.Step());
  if (!row) return absl::InternalError(StrCat("database ", db.path(), ": no cluster id"));
  return read.Text(0);
}

absl::Status RecordRunSupervised(Database& db, const std::string& run_id, const std::string& why) {
  TF_ASSIGN_OR_RETURN(Statement event, db.Prepare("INSERT INTO events(run_id, time, kind, message) "
                                                  "VALUES (?, ?, 'run_supervised', ?)"));
  event.Bind(1, run_id).Bind(2, WallClockMs()).Bind(3, StrCat("the server resumed it: ", why));
  return event.Run();
}

}  // namespace tierflow::scheduler
