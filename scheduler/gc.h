// `tierflow gc`: which old runs lose their data, and deleting it. A run's
// data is its artifacts' copies on every tier it recorded (runs.tiers_json),
// its checkpoints, its folders (runs/RUN on each tier and under the state
// folder: logs, staging) and with them its cache entries. Run rows stay,
// marked in gc_runs, so lineage keeps saying what existed.
//
// The decision (DecideGc) is pure over a snapshot of the store (LoadGcRuns);
// CollectGarbage applies it crash-safely: intent first (gc_runs 'deleting',
// copies 'evicted', checkpoints 'deleted', one transaction), then the
// deletes, then gc_runs 'done' with the bytes freed per tier. A gc killed
// between the two leaves data that nothing records as present, and the next
// gc finishes those runs first. docs/running.md "Cleaning up: tierflow gc".
//
// Thread-safety: plain functions; CollectGarbage opens its own connection.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "scheduler/sqlite.h"
#include "scheduler/store.h"
#include "storage_adapters/adapter.h"
#include "storage_adapters/tier_config.h"

namespace tierflow::scheduler {

struct GcOptions {
  // Keep the N newest runs of each pipeline (by name); unset: no such rule.
  std::optional<int> keep_last;
  // Keep runs that finished (else were created) less than this long ago.
  std::optional<std::chrono::milliseconds> older_than;
  bool dry_run = false;
};

// "7d", "12h", "30m", "45s": InvalidArgument naming the value otherwise.
absl::StatusOr<std::chrono::milliseconds> ParseGcAge(const std::string& text);

// One run as the decision sees it.
struct GcRun {
  std::string id;
  std::string pipeline;
  RunState state = RunState::kRunning;
  int64_t created_at = 0;
  int64_t finished_at = 0;  // 0: not finished
  bool engine_alive = false;
  std::string gc_state;  // "": never collected; "deleting" | "done"
};

struct GcVerdict {
  std::string run_id;
  bool collect = false;
  std::string reason;
};

// For every run not collected yet, whether gc takes its data, and why.
// A run is taken only when it is finished (succeeded, failed, cancelled),
// no engine drives it, no run of its pipeline is running (a live run may
// reuse any cache entry of its pipeline: cache keys include the pipeline's
// name), and every given rule lets it go: not among the `keep_last` newest
// runs of its pipeline, and finished more than `older_than` before `now_ms`.
std::vector<GcVerdict> DecideGc(const std::vector<GcRun>& runs, const GcOptions& options,
                                int64_t now_ms);

// The runs of the store, with their gc state (none before schema 14).
absl::StatusOr<std::vector<GcRun>> LoadGcRuns(Database& db);

// The locations (copy uris, checkpoint uris) that runs other than
// `collected` still reference: their own artifacts' copies, and those of
// the attempts their cached attempts reused (cached_from). Compared by
// uri: the same location may be recorded by several runs.
absl::StatusOr<std::set<std::string>> ReferencedLocations(Database& db,
                                                          const std::set<std::string>& collected);

// True when `uri` or a folder holding it is in `referenced`.
bool IsReferenced(const std::set<std::string>& referenced, const std::string& uri);

struct GcReport {
  bool dry_run = false;
  std::vector<GcVerdict> verdicts;    // every run considered
  std::vector<std::string> finished;  // runs a killed gc had started, finished now
  // Runs collected earlier whose copies stayed for a kept run's cache
  // entry, released now that no run references them.
  std::vector<std::string> released;
  std::map<std::string, uint64_t> bytes;  // freed per tier ("state": run folders)
  std::map<std::string, uint64_t> files;  // files deleted per tier
  std::vector<std::string> archive_kept;  // archive tiers left untouched
  std::vector<std::string> problems;      // deletes that failed (the run stays 'deleting')
};

using OpenTierFn =
    std::function<absl::StatusOr<std::unique_ptr<storage::Adapter>>(const storage::TierConfig&)>;

// Decides and deletes (see above). `db_path`'s folder is the state folder.
// With options.dry_run, the store is opened read-only and nothing changes.
absl::StatusOr<GcReport> CollectGarbage(const std::string& db_path, const GcOptions& options,
                                        const OpenTierFn& open_tier);

}  // namespace tierflow::scheduler
