#include "scheduler/gc.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <thread>
#include <utility>

#include "absl/strings/str_join.h"
#include "common/status.h"
#include "common/strings.h"
#include "scheduler/placement.h"
#include "scheduler/run_lock.h"
#include "storage_adapters/posix.h"
#include "storage_adapters/tier_root.h"

namespace tierflow::scheduler {
namespace fs = std::filesystem;
namespace {

constexpr std::string_view kDeleting = "deleting";
// The pseudo-tier of the run folders under the state folder (logs, locks).
constexpr std::string_view kStateTier = "state";
// The run's lock file (run_lock.h), which gc itself holds and rewrites: not
// counted as data freed.
constexpr char kLockFile[] = "lock";

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

absl::StatusOr<bool> HasGcTable(Database& db) {
  TF_ASSIGN_OR_RETURN(
      Statement find,
      db.Prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'gc_runs'"));
  return find.Step();
}

// The tiers a run recorded, or the engine's implicit one (the state folder).
absl::StatusOr<std::vector<storage::TierConfig>> RunTiers(Database& db, const std::string& run_id,
                                                          const fs::path& state_dir) {
  TF_ASSIGN_OR_RETURN(Statement find, db.Prepare("SELECT tiers_json FROM runs WHERE id = ?"));
  find.Bind(1, run_id);
  TF_ASSIGN_OR_RETURN(bool row, find.Step());
  std::vector<storage::TierConfig> tiers;
  if (row && !find.IsNull(0)) {
    TF_ASSIGN_OR_RETURN(std::vector<PlacementTier> placed, PlacementTiersFromJson(find.Text(0)));
    for (PlacementTier& tier : placed) tiers.push_back(std::move(tier.config));
  } else {
    storage::TierConfig implicit;
    implicit.name = "local";
    implicit.adapter = "posix";
    implicit.root = state_dir.string();
    tiers.push_back(std::move(implicit));
  }
  return tiers;
}

std::string ObjectUri(const storage::TierConfig& tier, const std::string& key) {
  if (tier.adapter == "posix") return (fs::path(tier.root) / key).string();
  return StrCat("s3://", tier.bucket, "/", tier.prefix.empty() ? "" : tier.prefix + "/", key);
}

// True when something referenced lies at or below `uri` (a folder).
bool HoldsReferenced(const std::set<std::string>& referenced, const std::string& uri) {
  auto it = referenced.lower_bound(uri);
  return it != referenced.end() && (*it == uri || it->rfind(uri + "/", 0) == 0);
}

struct RunWork {
  std::map<std::string, uint64_t> bytes;
  std::map<std::string, uint64_t> files;
  std::vector<std::string> archive_kept;
  std::vector<std::string> problems;
};

// Deletes (or, dry, counts) what run `run_id` left on `tier` under runs/RUN/
// that nothing referenced lies in, through the tier's adapter.
void CollectOnTier(const storage::TierConfig& tier, const std::string& run_id,
                   const std::set<std::string>& referenced, bool dry_run,
                   const OpenTierFn& open_tier, RunWork& work) {
  if (tier.durability == Durability::kArchive) {
    work.archive_kept.push_back(tier.name);
    return;
  }
  absl::StatusOr<std::unique_ptr<storage::Adapter>> adapter = open_tier(tier);
  if (!adapter.ok()) {
    work.problems.push_back(StrCat("tier ", tier.name, ": ", adapter.status().message()));
    return;
  }
  const std::string prefix = StrCat("runs/", run_id, "/");
  absl::StatusOr<std::vector<storage::ObjectInfo>> objects = (*adapter)->List(prefix);
  if (!objects.ok()) {
    work.problems.push_back(StrCat("tier ", tier.name, ": ", objects.status().message()));
    return;
  }
  bool kept_any = false;
  for (const storage::ObjectInfo& object : *objects) {
    if (object.key == StrCat(prefix, kLockFile)) continue;  // the run's lock: RemoveTree's
    if (IsReferenced(referenced, ObjectUri(tier, object.key))) {
      kept_any = true;
      continue;
    }
    if (!dry_run) {
      absl::Status deleted = (*adapter)->Delete(object.key);
      if (!deleted.ok() && !absl::IsNotFound(deleted)) {
        work.problems.push_back(StrCat("tier ", tier.name, ": ", deleted.message()));
        kept_any = true;
        continue;
      }
    }
    work.bytes[tier.name] += object.bytes;
    ++work.files[tier.name];
  }
  // What listings skip (empty folders, unfinished writes) goes with the
  // run's folder, through the root guard, unless something in it stays.
  if (dry_run || kept_any || tier.adapter != "posix") return;
  if (HoldsReferenced(referenced, ObjectUri(tier, StrCat("runs/", run_id)))) return;
  std::shared_ptr<const storage::TierRoot> root = storage::PosixTierRoot(**adapter);
  if (root == nullptr) return;
  absl::Status removed = root->RemoveTree(StrCat("runs/", run_id));
  if (!removed.ok()) work.problems.push_back(StrCat("tier ", tier.name, ": ", removed.message()));
}

// The run's folder under the state folder (logs, its lock, checkpoints kept
// there), through a root guard on the state folder.
void CollectRunFolder(const fs::path& state_dir, const std::string& run_id,
                      const std::set<std::string>& referenced, bool dry_run, RunWork& work) {
  const fs::path folder = state_dir / "runs" / run_id;
  if (HoldsReferenced(referenced, folder.string())) return;
  std::error_code error;
  if (!fs::exists(folder, error)) return;
  uint64_t bytes = 0;
  uint64_t files = 0;
  for (auto it = fs::recursive_directory_iterator(folder, error);
       !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
    std::error_code entry_error;
    if (it->is_symlink(entry_error) || !it->is_regular_file(entry_error)) continue;
    if (it->path() == folder / kLockFile) continue;  // bookkeeping, rewritten by gc's own lock
    bytes += it->file_size(entry_error);
    ++files;
  }
  if (!dry_run) {
    absl::StatusOr<std::shared_ptr<const storage::TierRoot>> root =
        storage::TierRoot::Open(state_dir.string());
    absl::Status removed = root.ok() ? (*root)->RemoveTree(StrCat("runs/", run_id)) : root.status();
    if (!removed.ok()) {
      work.problems.push_back(StrCat("state folder: ", removed.message()));
      return;
    }
  }
  work.bytes[std::string(kStateTier)] += bytes;
  work.files[std::string(kStateTier)] += files;
}

std::string BytesJson(const std::map<std::string, uint64_t>& bytes) {
  std::string json = "{";
  for (const auto& [tier, count] : bytes) {
    json += StrCat(json.size() > 1 ? ", " : "", "\"", tier, "\": ", std::to_string(count));
  }
  return json + "}";
}

absl::Status AddEvent(Database& db, const std::string& run_id, const std::string& message) {
  TF_ASSIGN_OR_RETURN(Statement insert,
                      db.Prepare("INSERT INTO events(run_id, time, kind, message) "
                                 "VALUES (?, ?, 'gc', ?)"));
  insert.Bind(1, run_id).Bind(2, NowMs()).Bind(3, message);
  return insert.Run();
}

// Intent, in one transaction with the decision: the run marked 'deleting',
// its unreferenced copies 'evicted' and checkpoints 'deleted' (nothing will
// reuse them), before any byte is deleted.
// The ids of the rows `select` (id, uri, tier of a run's copies or
// checkpoints; bound to `run_id`) finds that gc may delete: on no archive
// tier, and under no location a kept run references.
absl::StatusOr<std::vector<int64_t>> Unreferenced(Database& db, const char* select,
                                                  const std::string& run_id,
                                                  const std::set<std::string>& referenced,
                                                  const std::set<std::string>& archive_tiers) {
  TF_ASSIGN_OR_RETURN(Statement rows, db.Prepare(select));
  rows.Bind(1, run_id);
  std::vector<int64_t> ids;
  while (true) {
    TF_ASSIGN_OR_RETURN(bool row, rows.Step());
    if (!row) break;
    if (archive_tiers.count(rows.Text(2)) || IsReferenced(referenced, rows.Text(1))) continue;
    ids.push_back(rows.Int(0));
  }
  return ids;
}

absl::Status RecordIntent(Database& db, const GcVerdict& verdict,
                          const std::set<std::string>& referenced,
                          const std::set<std::string>& archive_tiers) {
  const int64_t now = NowMs();
  TF_ASSIGN_OR_RETURN(Statement insert,
                      db.Prepare("INSERT INTO gc_runs(run_id, state, reason, started_at) "
                                 "VALUES (?, 'deleting', ?, ?) ON CONFLICT(run_id) DO UPDATE "
                                 "SET state = 'deleting', finished_at = NULL"));
  insert.Bind(1, verdict.run_id).Bind(2, verdict.reason).Bind(3, now);
  TF_RETURN_IF_ERROR(insert.Run());
  TF_ASSIGN_OR_RETURN(
      std::vector<int64_t> evict,
      Unreferenced(db,
                   "SELECT c.id, c.uri, c.tier FROM artifact_copies c JOIN artifacts a ON a.id = "
                   "c.artifact_id WHERE a.run_id = ? AND c.state IN ('present', 'copying')",
                   verdict.run_id, referenced, archive_tiers));
  TF_ASSIGN_OR_RETURN(Statement update,
                      db.Prepare("UPDATE artifact_copies SET state = 'evicted', finished_at = ?, "
                                 "message = 'deleted by gc' WHERE id = ?"));
  for (int64_t id : evict) {
    update.Reset();
    update.Bind(1, now).Bind(2, id);
    TF_RETURN_IF_ERROR(update.Run());
  }
  TF_ASSIGN_OR_RETURN(
      std::vector<int64_t> gone,
      Unreferenced(db,
                   "SELECT id, uri, tier FROM checkpoints WHERE run_id = ? AND state != 'deleted'",
                   verdict.run_id, referenced, archive_tiers));
  TF_ASSIGN_OR_RETURN(Statement drop,
                      db.Prepare("UPDATE checkpoints SET state = 'deleted', message = "
                                 "'deleted by gc' WHERE id = ?"));
  for (int64_t id : gone) {
    drop.Reset();
    drop.Bind(1, id);
    TF_RETURN_IF_ERROR(drop.Run());
  }
  return AddEvent(
      db, verdict.run_id,
      StrCat("gc: deleting the run's data (", verdict.reason, "): ", std::to_string(evict.size()),
             " copies, ", std::to_string(gone.size()), " checkpoints"));
}

// A test hook (docs/running.md): $TIERFLOW_TEST_GC_PAUSE_MS makes gc wait
// that long after recording its intent, so a test can kill it there.
void TestPause() {
  const char* pause = std::getenv("TIERFLOW_TEST_GC_PAUSE_MS");
  if (pause == nullptr || *pause == '\0') return;
  std::this_thread::sleep_for(std::chrono::milliseconds(std::atoll(pause)));
}

// Runs with copies recorded present or being made.
absl::StatusOr<std::vector<std::string>> RunsStillHoldingCopies(Database& db) {
  TF_ASSIGN_OR_RETURN(Statement find,
                      db.Prepare("SELECT DISTINCT a.run_id FROM artifact_copies c JOIN artifacts "
                                 "a ON a.id = c.artifact_id WHERE c.state IN ('present', "
                                 "'copying')"));
  std::vector<std::string> runs;
  while (true) {
    TF_ASSIGN_OR_RETURN(bool row, find.Step());
    if (!row) break;
    runs.push_back(find.Text(0));
  }
  return runs;
}

}  // namespace

absl::StatusOr<std::chrono::milliseconds> ParseGcAge(const std::string& text) {
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  const std::string unit = text.substr(digits);
  int64_t scale = 0;
  if (unit == "d") scale = 24 * 3600 * 1000LL;
  if (unit == "h") scale = 3600 * 1000LL;
  if (unit == "m") scale = 60 * 1000LL;
  if (unit == "s") scale = 1000LL;
  if (digits == 0 || digits > 9 || scale == 0) {
    return absl::InvalidArgumentError(
        StrCat("--older-than '", text,
               "': expected a whole number and a unit, d, h, m or s (7d, 12h, 30m, 45s)"));
  }
  return std::chrono::milliseconds(std::stoll(text.substr(0, digits)) * scale);
}

bool IsReferenced(const std::set<std::string>& referenced, const std::string& uri) {
  if (referenced.count(uri)) return true;
  for (size_t slash = uri.rfind('/'); slash != std::string::npos && slash > 0;
       slash = uri.rfind('/', slash - 1)) {
    if (referenced.count(uri.substr(0, slash))) return true;
  }
  return false;
}

std::vector<GcVerdict> DecideGc(const std::vector<GcRun>& runs, const GcOptions& options,
                                int64_t now_ms) {
  std::map<std::string, std::vector<const GcRun*>> by_pipeline;
  for (const GcRun& run : runs) {
    if (run.gc_state.empty()) by_pipeline[run.pipeline].push_back(&run);
  }
  std::vector<GcVerdict> verdicts;
  for (auto& [pipeline, list] : by_pipeline) {
    std::stable_sort(list.begin(), list.end(), [](const GcRun* a, const GcRun* b) {
      return a->created_at != b->created_at ? a->created_at > b->created_at : a->id > b->id;
    });
    std::string live;
    for (const GcRun* run : list) {
      if (run->state == RunState::kRunning) live = run->id;
    }
    for (size_t rank = 0; rank < list.size(); ++rank) {
      const GcRun& run = *list[rank];
      GcVerdict verdict{.run_id = run.id, .collect = false, .reason = ""};
      const int64_t ended = run.finished_at > 0 ? run.finished_at : run.created_at;
      if (run.state == RunState::kRunning) {
        verdict.reason = "not finished";
      } else if (run.engine_alive) {
        verdict.reason = "an engine still drives it";
      } else if (!live.empty()) {
        verdict.reason = StrCat("run ", live, " of pipeline ", pipeline,
                                " is not finished and may reuse its cache entries");
      } else if (options.keep_last && rank < static_cast<size_t>(*options.keep_last)) {
        verdict.reason =
            StrCat("one of the ", std::to_string(*options.keep_last), " newest runs of ", pipeline);
      } else if (options.older_than && now_ms - ended < options.older_than->count()) {
        verdict.reason = StrCat("finished less than ",
                                std::to_string(options.older_than->count() / 1000), " s ago");
      } else if (!options.keep_last && !options.older_than) {
        verdict.reason = "no rule given";
      } else {
        verdict.collect = true;
        std::vector<std::string> why;
        if (options.keep_last) {
          why.push_back(StrCat("not among the ", std::to_string(*options.keep_last),
                               " newest runs of ", pipeline));
        }
        if (options.older_than) {
          why.push_back(StrCat("finished ", std::to_string((now_ms - ended) / 1000), " s ago"));
        }
        verdict.reason = absl::StrJoin(why, ", ");
      }
      verdicts.push_back(std::move(verdict));
    }
  }
  return verdicts;
}

absl::StatusOr<std::vector<GcRun>> LoadGcRuns(Database& db) {
  TF_ASSIGN_OR_RETURN(bool has_gc, HasGcTable(db));
  TF_ASSIGN_OR_RETURN(
      Statement find,
      db.Prepare(StrCat("SELECT r.id, r.pipeline_name, r.state, r.created_at, "
                        "coalesce(r.finished_at, 0), r.engine_pid, coalesce(r.engine_host, ''), ",
                        has_gc ? "coalesce(g.state, '') FROM runs r LEFT JOIN gc_runs g ON "
                                 "g.run_id = r.id"
                               : "'' FROM runs r",
                        " ORDER BY r.created_at")));
  std::vector<GcRun> runs;
  while (true) {
    TF_ASSIGN_OR_RETURN(bool row, find.Step());
    if (!row) break;
    GcRun run;
    run.id = find.Text(0);
    run.pipeline = find.Text(1);
    TF_ASSIGN_OR_RETURN(run.state, ParseRunState(find.Text(2)));
    run.created_at = find.Int(3);
    run.finished_at = find.Int(4);
    if (!find.IsNull(5)) run.engine_alive = EngineAlive(find.Int(5), find.Text(6));
    run.gc_state = find.Text(7);
    runs.push_back(std::move(run));
  }
  return runs;
}

absl::StatusOr<std::set<std::string>> ReferencedLocations(Database& db,
                                                          const std::set<std::string>& collected) {
  TF_ASSIGN_OR_RETURN(
      Statement find,
      db.Prepare("SELECT a.run_id, c.uri FROM artifact_copies c JOIN artifacts a ON "
                 "a.id = c.artifact_id "
                 "UNION ALL SELECT t.run_id, c.uri FROM attempts t JOIN artifacts a ON "
                 "a.attempt_id = t.cached_from JOIN artifact_copies c ON c.artifact_id = a.id "
                 "WHERE t.cached_from IS NOT NULL "
                 "UNION ALL SELECT run_id, uri FROM checkpoints "
                 "UNION ALL SELECT run_id, local_uri FROM checkpoints"));
  std::set<std::string> referenced;
  while (true) {
    TF_ASSIGN_OR_RETURN(bool row, find.Step());
    if (!row) break;
    if (!collected.count(find.Text(0))) referenced.insert(find.Text(1));
  }
  return referenced;
}

absl::StatusOr<GcReport> CollectGarbage(const std::string& db_path, const GcOptions& options,
                                        const OpenTierFn& open_tier) {
  std::error_code error;
  const fs::path state_dir = fs::absolute(fs::path(db_path).parent_path(), error);
  GcReport report;
  report.dry_run = options.dry_run;
  std::unique_ptr<Database> db;
  if (options.dry_run) {
    TF_ASSIGN_OR_RETURN(db, OpenStoreReadOnly(db_path, /*oldest=*/1));
  } else {
    TF_ASSIGN_OR_RETURN(db, OpenStore(db_path));
  }
  // The decision and the intent under the store's write lock, so that
  // they see one state of the store: a run started later finds the
  // collected copies no longer present; a run under way keeps its
  // pipeline's runs (DecideGc).
  // Like the engine, gc waits out another writer (Database::BeginWrite).
  std::mt19937_64 random(std::random_device{}());
  auto jitter = [&random] { return std::uniform_real_distribution<double>(0, 1)(random); };
  std::optional<Transaction> transaction;
  if (!options.dry_run) {
    TF_ASSIGN_OR_RETURN(Transaction begun, Transaction::BeginWrite(*db, jitter));
    transaction.emplace(std::move(begun));
  }
  TF_ASSIGN_OR_RETURN(std::vector<GcRun> runs, LoadGcRuns(*db));
  report.verdicts = DecideGc(runs, options, NowMs());
  std::set<std::string> collected;
  std::set<std::string> earlier;  // collected by an earlier gc
  for (const GcRun& run : runs) {
    if (!run.gc_state.empty()) earlier.insert(run.id);
    if (!run.gc_state.empty()) collected.insert(run.id);
    if (run.gc_state == kDeleting) report.finished.push_back(run.id);
  }
  TF_ASSIGN_OR_RETURN(std::vector<std::string> holding, RunsStillHoldingCopies(*db));
  // A run folder whose lock another process holds (a resume, a cancel) is
  // not touched; the locks are held until its data is gone.
  std::map<std::string, RunLock> locks;
  for (GcVerdict& verdict : report.verdicts) {
    if (!verdict.collect) continue;
    if (!options.dry_run) {
      absl::StatusOr<RunLock> lock =
          RunLock::Acquire(state_dir / "runs" / verdict.run_id, verdict.run_id);
      if (!lock.ok()) {
        verdict.collect = false;
        verdict.reason = StrCat("its folder is locked: ", lock.status().message());
        continue;
      }
      locks.emplace(verdict.run_id, std::move(*lock));
    }
    collected.insert(verdict.run_id);
  }
  TF_ASSIGN_OR_RETURN(std::set<std::string> referenced, ReferencedLocations(*db, collected));
  // Collected runs whose copies stayed because a run kept then still
  // reused them: released once nothing references them any more.
  std::vector<GcVerdict> releases;
  for (const std::string& run_id : holding) {
    if (!earlier.count(run_id)) continue;
    if (std::find(report.finished.begin(), report.finished.end(), run_id) !=
        report.finished.end()) {
      continue;
    }
    TF_ASSIGN_OR_RETURN(std::vector<storage::TierConfig> tiers, RunTiers(*db, run_id, state_dir));
    bool freed = false;
    TF_ASSIGN_OR_RETURN(Statement copies,
                        db->Prepare("SELECT c.uri, c.tier FROM artifact_copies c JOIN artifacts a "
                                    "ON a.id = c.artifact_id WHERE a.run_id = ? AND "
                                    "c.state IN ('present', 'copying')"));
    copies.Bind(1, run_id);
    while (!freed) {
      TF_ASSIGN_OR_RETURN(bool row, copies.Step());
      if (!row) break;
      bool archive = false;
      for (const storage::TierConfig& tier : tiers) {
        archive |= tier.name == copies.Text(1) && tier.durability == Durability::kArchive;
      }
      freed = !archive && !IsReferenced(referenced, copies.Text(0));
    }
    if (!freed) continue;
    report.released.push_back(run_id);
    releases.push_back(GcVerdict{.run_id = run_id,
                                 .collect = true,
                                 .reason = "no kept run reuses its remaining copies any more"});
  }
  std::vector<std::string> work_runs = report.finished;
  work_runs.insert(work_runs.end(), report.released.begin(), report.released.end());
  std::vector<GcVerdict> intents = releases;
  for (const GcVerdict& verdict : report.verdicts) {
    if (!verdict.collect) continue;
    work_runs.push_back(verdict.run_id);
    intents.push_back(verdict);
  }
  for (const GcVerdict& verdict : intents) {
    if (options.dry_run) continue;
    TF_ASSIGN_OR_RETURN(std::vector<storage::TierConfig> tiers,
                        RunTiers(*db, verdict.run_id, state_dir));
    std::set<std::string> archive;
    for (const storage::TierConfig& tier : tiers) {
      if (tier.durability == Durability::kArchive) archive.insert(tier.name);
    }
    TF_RETURN_IF_ERROR(RecordIntent(*db, verdict, referenced, archive));
  }
  if (transaction) {
    TF_RETURN_IF_ERROR(transaction->Commit());
    TestPause();
  }
  for (const std::string& run_id : work_runs) {
    TF_ASSIGN_OR_RETURN(std::vector<storage::TierConfig> tiers, RunTiers(*db, run_id, state_dir));
    RunWork work;
    for (const storage::TierConfig& tier : tiers) {
      CollectOnTier(tier, run_id, referenced, options.dry_run, open_tier, work);
    }
    // The implicit tier is the state folder itself: its run folder is done.
    const bool state_is_tier = std::any_of(tiers.begin(), tiers.end(), [&](const auto& tier) {
      return tier.adapter == "posix" && fs::path(tier.root) == state_dir;
    });
    if (!state_is_tier) CollectRunFolder(state_dir, run_id, referenced, options.dry_run, work);
    for (const auto& [tier, bytes] : work.bytes) report.bytes[tier] += bytes;
    for (const auto& [tier, files] : work.files) report.files[tier] += files;
    for (const std::string& tier : work.archive_kept) {
      if (std::find(report.archive_kept.begin(), report.archive_kept.end(), tier) ==
          report.archive_kept.end()) {
        report.archive_kept.push_back(tier);
      }
    }
    for (const std::string& problem : work.problems) {
      report.problems.push_back(StrCat(run_id, ": ", problem));
    }
    if (options.dry_run || !work.problems.empty()) continue;
    TF_ASSIGN_OR_RETURN(Transaction done, Transaction::BeginWrite(*db, jitter));
    TF_ASSIGN_OR_RETURN(Statement mark,
                        db->Prepare("UPDATE gc_runs SET state = 'done', finished_at = ?, "
                                    "bytes_json = ? WHERE run_id = ?"));
    mark.Bind(1, NowMs()).Bind(2, BytesJson(work.bytes)).Bind(3, run_id);
    TF_RETURN_IF_ERROR(mark.Run());
    TF_RETURN_IF_ERROR(AddEvent(*db, run_id, StrCat("gc: done, freed ", BytesJson(work.bytes))));
    TF_RETURN_IF_ERROR(done.Commit());
  }
  return report;
}

}  // namespace tierflow::scheduler
