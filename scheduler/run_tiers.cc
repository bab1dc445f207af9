#include "scheduler/run_tiers.h"

#include <map>
#include <utility>

#include "common/status.h"
#include "common/strings.h"
#include "scheduler/internal/rows.h"
#include "scheduler/placement.h"
#include "scheduler/run_queries.h"
#include "scheduler/store.h"

namespace tierflow::scheduler {

using internal::ForEachRow;
using internal::OptionalText;

absl::StatusOr<std::vector<storage::TierConfig>> RecordedRunTiers(Database& db,
                                                                  const std::string& run_id,
                                                                  const std::string& state_dir) {
  TF_ASSIGN_OR_RETURN(Statement find, db.Prepare("SELECT tiers_json FROM runs WHERE id = ?"));
  find.Bind(1, run_id);
  bool found = false;
  std::optional<std::string> json;
  TF_RETURN_IF_ERROR(ForEachRow(find, [&](const Statement& row) {
    found = true;
    json = OptionalText(row, 0);
  }));
  if (!found) return absl::NotFoundError(StrCat("no run ", run_id, " in ", db.path()));
  std::vector<storage::TierConfig> tiers;
  if (json) {
    TF_ASSIGN_OR_RETURN(std::vector<PlacementTier> placed, PlacementTiersFromJson(*json));
    for (PlacementTier& tier : placed) tiers.push_back(std::move(tier.config));
  } else {
    // The engine's implicit tier, as gc.cc reads it too.
    storage::TierConfig implicit;
    implicit.name = "local";
    implicit.adapter = "posix";
    implicit.root = state_dir;
    tiers.push_back(std::move(implicit));
  }
  return tiers;
}

absl::StatusOr<std::vector<RunTierUse>> RunTierUsage(Database& db, const std::string& run_id,
                                                     const std::string& state_dir) {
  TF_ASSIGN_OR_RETURN(std::vector<storage::TierConfig> recorded,
                      RecordedRunTiers(db, run_id, state_dir));
  std::vector<RunTierUse> uses;
  std::map<std::string, size_t> index;
  auto use = [&](const std::string& name) -> RunTierUse& {
    auto [it, added] = index.try_emplace(name, uses.size());
    if (added) {
      RunTierUse entry;
      entry.name = name;
      uses.push_back(std::move(entry));
    }
    return uses[it->second];
  };
  for (const storage::TierConfig& tier : recorded) {
    RunTierUse& entry = use(tier.name);
    entry.adapter = tier.adapter;
    entry.location = tier.Location();
    entry.recorded = true;
  }

  TF_ASSIGN_OR_RETURN(
      Statement copies,
      db.Prepare("SELECT c.tier, c.role, c.state, count(*), coalesce(sum(c.bytes), 0) "
                 "FROM artifact_copies c JOIN artifacts a ON a.id = c.artifact_id "
                 "WHERE a.run_id = ? GROUP BY c.tier, c.role, c.state ORDER BY c.tier"));
  copies.Bind(1, run_id);
  TF_RETURN_IF_ERROR(ForEachRow(copies, [&](const Statement& row) -> absl::Status {
    RunTierUse& entry = use(row.Text(0));
    const std::string role = row.Text(1);
    TF_ASSIGN_OR_RETURN(
        ArtifactCopyState state,
        internal::StateOf(ParseCopyState, row.Text(2),
                          StrCat("a copy of run ", run_id, " on tier ", row.Text(0))));
    const int64_t count = row.Int(3);
    const int64_t bytes = row.Int(4);
    if (state == ArtifactCopyState::kPresent) {
      if (role == "home") {
        entry.outputs += count;
        entry.home_bytes += bytes;
      } else {
        entry.copies += count;
        entry.working_bytes += bytes;
      }
    } else if (state == ArtifactCopyState::kEvicted || state == ArtifactCopyState::kReleased) {
      entry.evicted += count;
    }
    return absl::OkStatus();
  }));

  TF_ASSIGN_OR_RETURN(Statement checkpoints,
                      db.Prepare("SELECT tier, count(*), coalesce(sum(bytes), 0) FROM checkpoints "
                                 "WHERE run_id = ? AND state = 'present' GROUP BY tier "
                                 "ORDER BY tier"));
  checkpoints.Bind(1, run_id);
  TF_RETURN_IF_ERROR(ForEachRow(checkpoints, [&](const Statement& row) {
    RunTierUse& entry = use(row.Text(0));
    entry.checkpoints += row.Int(1);
    entry.checkpoint_bytes += row.Int(2);
  }));
  for (RunTierUse& entry : uses) {
    entry.bytes = entry.home_bytes + entry.working_bytes + entry.checkpoint_bytes;
  }
  return uses;
}

absl::StatusOr<std::vector<CheckpointRow>> ListRunCheckpoints(Database& db,
                                                              const std::string& run_id) {
  TF_ASSIGN_OR_RETURN(
      Statement find,
      db.Prepare("SELECT c.id, c.task_id, c.attempt_id, a.number, c.name, c.step, c.local_uri, "
                 "c.tier, c.uri, c.bytes, c.files, c.content_hash, c.state, c.committed_at, "
                 "c.flushed_at, c.flush_ms, c.message FROM checkpoints c "
                 "LEFT JOIN attempts a ON a.id = c.attempt_id "
                 "LEFT JOIN tasks t ON t.run_id = c.run_id AND t.id = c.task_id "
                 "WHERE c.run_id = ? ORDER BY t.seq, c.task_id, c.step, c.id"));
  find.Bind(1, run_id);
  std::vector<CheckpointRow> list;
  TF_RETURN_IF_ERROR(ForEachRow(find, [&](const Statement& row) {
    list.push_back(CheckpointRow{.id = row.Int(0),
                                 .task_id = row.Text(1),
                                 .attempt_id = row.Int(2),
                                 .attempt = row.OptionalInt(3),
                                 .name = row.Text(4),
                                 .step = row.OptionalInt(5),
                                 .local_uri = row.Text(6),
                                 .tier = row.Text(7),
                                 .uri = row.Text(8),
                                 .bytes = row.OptionalInt(9),
                                 .files = row.OptionalInt(10),
                                 .content_hash = OptionalText(row, 11).value_or(""),
                                 .state = row.Text(12),
                                 .committed_at_ms = row.Int(13),
                                 .flushed_at_ms = row.OptionalInt(14),
                                 .flush_ms = row.OptionalInt(15),
                                 .message = row.Text(16)});
  }));
  return list;
}

}  // namespace tierflow::scheduler
