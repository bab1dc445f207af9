#include "scheduler/checkpoints.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "common/status.h"
#include "common/strings.h"
#include "common/units.h"
#include "nlohmann/json.hpp"
#include "storage_adapters/posix.h"

namespace tierflow::scheduler::internal {
namespace fs = std::filesystem;

CheckpointTiers CheckpointTiersOf(const RunModel& run) {
  CheckpointTiers chosen;
  chosen.flush.assign(run.pipeline.stages.size(), kNoTier);
  auto index = [&run](const std::string& name) {  // "" (none): kNoTier
    for (uint8_t x = 0; x < run.tiers.size(); ++x) {
      if (!name.empty() && run.tiers[x].config.name == name) return x;
    }
    return kNoTier;
  };
  for (const CheckpointPlacement& placed : run.checkpoint_placement) {
    chosen.tier = index(placed.write_tier);
    chosen.node_tier = index(placed.node_tier);
    chosen.flush[run.pipeline.FindStage(placed.stage)] = index(placed.flush_tier);
  }
  return chosen;
}

absl::Status Checkpoints::SetUp() {
  tiers_ = CheckpointTiersOf(run_);
  return absl::OkStatus();
}

std::string Checkpoints::Key(uint32_t t) const {
  return run_.TaskDir(fs::path("runs") / run_.run_id / "checkpoints", t).string();
}

void Checkpoints::SetLaunchDir(uint32_t t, TaskLaunch& launch) const {
  const dag::Stage& stage = run_.pipeline.stages[run_.tasks[t].stage];
  if (tiers_.tier == kNoTier) {
    launch.checkpoint_dir = run_.TaskDir(run_.run_dir / "checkpoints", t).string();
    return;
  }
  launch.checkpoint_dir = run_.TierPath(tiers_.tier, Key(t));
  launch.checkpoint_root = run_.tiers[tiers_.tier].root.string();
  if (tiers_.node_tier != kNoTier) {
    launch.checkpoint_relay = CheckpointRelay{run_.tiers[tiers_.node_tier].config.name, Key(t),
                                              static_cast<int>(stage.checkpoints.keep)};
  }
}

absl::Status Checkpoints::Watch(uint32_t t, const TaskLaunch& launch, int& restores) {
  const TaskRec& task = run_.tasks[t];
  const uint8_t flush = tiers_.flush.empty() ? kNoTier : tiers_.flush[task.stage];
  if (flush == kNoTier || launch.checkpoint_dir.empty()) return absl::OkStatus();
  std::set<std::string>& seen = watch_[t];
  seen.clear();
  TF_ASSIGN_OR_RETURN(Statement rows,
                      db_.Prepare("SELECT name, state FROM checkpoints WHERE run_id = ? AND "
                                  "task_id = ? ORDER BY step, id"));
  rows.Bind(1, run_.run_id).Bind(2, task.id);
  std::string latest;
  for (;;) {
    TF_ASSIGN_OR_RETURN(bool row, rows.Step());
    if (!row) break;
    // One whose flush failed (or was cut off by a crash: resume marks it
    // failed) is flushed again if the task's folder still has it.
    if (rows.Text(1) != "failed") seen.insert(rows.Text(0));
    if (rows.Text(1) == "present") latest = rows.Text(0);
  }
  std::error_code error;
  const fs::path dir(launch.checkpoint_dir);
  if (latest.empty() || fs::exists(dir / (latest + ".committed"), error)) return absl::OkStatus();
  const std::string key = StrCat(Key(t), "/", latest);
  storage::Adapter* from = run_.tiers[flush].adapter.get();
  storage::Adapter* to = run_.tiers[tiers_.tier].adapter.get();
  const int64_t id = moves_.NextLocalId();
  MoveJob job;
  job.kind = MoveJob::Kind::kRun;
  job.copy_id = id;
  job.run = [from, to, key,
             path = (dir / latest).string()]() -> absl::StatusOr<storage::TransferResult> {
    // What a task that failed mid-write left, through the tier's root.
    if (const auto root = storage::PosixTierRoot(*to)) TF_RETURN_IF_ERROR(root->RemoveTree(path));
    return storage::CopyCheckpoint(*from, *to, key);
  };
  moves_.Add(id,
             Move{.task = t,
                  .tier = tiers_.tier,
                  .purpose = MovePurpose::kRestoreCheckpoint,
                  .source = flush},
             std::move(job));
  ++restores;
  return writer_.AddEvent(task.id, 0, "checkpoint_restore",
                          StrCat("restoring checkpoint ", latest, " from tier ",
                                 run_.tiers[flush].config.name, " before the task starts"));
}

absl::Status Checkpoints::AttemptEnded(uint32_t t) {
  auto watched = watch_.find(t);
  if (watched == watch_.end()) return absl::OkStatus();
  TF_RETURN_IF_ERROR(PollTask(t, watched->second));
  watch_.erase(watched);
  return absl::OkStatus();
}

absl::Status Checkpoints::Poll(const Clock& clock) {
  for (auto& [t, seen] : watch_) TF_RETURN_IF_ERROR(PollTask(t, seen));
  next_poll_ = clock.Now() + kPollInterval;
  return absl::OkStatus();
}

// New commit markers of `t`, flushed.
absl::Status Checkpoints::PollTask(uint32_t t, std::set<std::string>& seen) {
  const fs::path dir = run_.TierPath(tiers_.tier, Key(t));
  std::error_code error;
  std::vector<std::string> names;
  for (fs::directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
    const std::string file = it->path().filename().string();
    constexpr std::string_view kMarker = ".committed";
    if (file.size() <= kMarker.size() || !file.ends_with(kMarker)) continue;
    const std::string name = file.substr(0, file.size() - kMarker.size());
    if (seen.count(name) == 0) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    seen.insert(name);
    TF_RETURN_IF_ERROR(Flush(t, name));
  }
  return absl::OkStatus();
}

absl::Status Checkpoints::Flush(uint32_t t, const std::string& name, int64_t attempt) {
  const TaskRec& task = run_.tasks[t];
  const uint8_t flush = tiers_.flush[task.stage];
  const std::string key = StrCat(Key(t), "/", name);
  const std::string local = run_.TierPath(tiers_.tier, key);
  std::optional<int64_t> step;
  const size_t digits = name.find_last_not_of("0123456789");
  if (digits + 1 < name.size() && name.size() - digits <= 18) {
    step = std::stoll(name.substr(digits + 1));
  }
  {
    std::ifstream marker(local + ".committed");
    nlohmann::json said = nlohmann::json::parse(marker, nullptr, /*allow_exceptions=*/false);
    if (said.is_object() && said.contains("step") && said["step"].is_number_integer()) {
      step = said["step"].get<int64_t>();
    }
  }
  TF_ASSIGN_OR_RETURN(
      const int64_t row,
      writer_.InsertCheckpoint(NewCheckpoint{.task_id = task.id,
                                             .attempt_id = attempt != 0 ? attempt : task.attempt_id,
                                             .name = name,
                                             .step = step,
                                             .local_uri = local,
                                             .tier = run_.tiers[flush].config.name,
                                             .uri = run_.CopyUri(flush, key)},
                               WallClockMs()));
  storage::Adapter* from = run_.tiers[tiers_.tier].adapter.get();
  storage::Adapter* to = run_.tiers[flush].adapter.get();
  auto digest = std::make_shared<storage::ContentDigest>();
  MoveJob job;
  job.kind = MoveJob::Kind::kRun;
  job.copy_id = moves_.NextLocalId();
  job.run = [from, to, key, local, digest]() -> absl::StatusOr<storage::TransferResult> {
    TF_ASSIGN_OR_RETURN(*digest, storage::HashArtifact(local));
    return storage::CopyCheckpoint(*from, *to, key);
  };
  digests_[row] = digest;
  const int64_t id = job.copy_id;
  moves_.Add(id,
             Move{.task = t,
                  .tier = flush,
                  .purpose = MovePurpose::kFlushCheckpoint,
                  .source = tiers_.tier,
                  .checkpoint_row = row},
             std::move(job));
  return writer_.AddEvent(task.id, task.attempt_id, "checkpoint",
                          StrCat("checkpoint ", name, " committed; flushing it to tier ",
                                 run_.tiers[flush].config.name, " while the task runs"));
}

absl::Status Checkpoints::ApplyMove(const Move& move, const MoveResult& result) {
  const TaskRec& task = run_.tasks[move.task];
  if (move.purpose == MovePurpose::kRestoreCheckpoint) {
    if (!result.status.ok()) {
      TF_RETURN_IF_ERROR(writer_.AddEvent(
          task.id, 0, "checkpoint_restore_failed",
          StrCat("restoring its latest checkpoint failed: ", result.status.message(),
                 "; it starts without it")));
    } else {
      TF_RETURN_IF_ERROR(writer_.AddEvent(
          task.id, task.attempt_id, "checkpoint_restored",
          StrCat("its latest checkpoint restored: ", FormatSize(result.moved.bytes), " in ",
                 FormatDuration(result.elapsed))));
    }
    // The attempt waited for it before it could start.
    TF_RETURN_IF_ERROR(
        writer_.AddInputWait(task.attempt_id, static_cast<int64_t>(result.elapsed.count())));
    hooks_.RestoreEnded(move.task, "");
    return absl::OkStatus();
  }
  if (move.purpose == MovePurpose::kRemoveCheckpoint)
    return absl::OkStatus();  // recorded when decided
  std::shared_ptr<storage::ContentDigest> content;
  if (auto digest = digests_.find(move.checkpoint_row); digest != digests_.end()) {
    content = digest->second;
    digests_.erase(digest);
  }
  const bool ok = result.status.ok() && content;
  RunWriter::FlushEnd end;
  end.ok = ok;
  if (ok) {
    end.bytes = static_cast<int64_t>(content->bytes);
    end.files = static_cast<int64_t>(content->files);
    end.hash = content->hash;
  } else {
    end.message = std::string(result.status.message());
  }
  end.flush_ms = std::chrono::duration_cast<std::chrono::milliseconds>(result.elapsed).count();
  TF_ASSIGN_OR_RETURN(const std::string name,
                      writer_.FinishCheckpointFlush(move.checkpoint_row, end, WallClockMs()));
  const std::string& tier = run_.tiers[move.tier].config.name;
  if (!ok) {
    return writer_.AddEvent(task.id, 0, "checkpoint_failed",
                            StrCat("flushing checkpoint ", name, " to tier ", tier,
                                   " failed: ", result.status.message()));
  }
  TF_RETURN_IF_ERROR(writer_.AddEvent(
      task.id, 0, "checkpointed",
      StrCat("checkpoint ", name, " flushed to tier ", tier, ": ", FormatSize(content->bytes),
             " in ", FormatDuration(result.elapsed), ", ", content->hash)));
  return Keep(move.task);
}

// Only the newest `keep` flushed checkpoints of a task stay, on the durable
// tier and where the task wrote them.
absl::Status Checkpoints::Keep(uint32_t t) {
  const TaskRec& task = run_.tasks[t];
  const uint32_t keep = std::max<uint32_t>(run_.pipeline.stages[task.stage].checkpoints.keep, 1);
  TF_ASSIGN_OR_RETURN(Statement rows,
                      db_.Prepare("SELECT id, name FROM checkpoints WHERE run_id = ? AND "
                                  "task_id = ? AND state = 'present' ORDER BY step DESC, id DESC "
                                  "LIMIT -1 OFFSET ?"));
  rows.Bind(1, run_.run_id).Bind(2, task.id).Bind(3, static_cast<int64_t>(keep));
  std::vector<std::pair<int64_t, std::string>> old;
  for (;;) {
    TF_ASSIGN_OR_RETURN(bool row, rows.Step());
    if (!row) break;
    old.emplace_back(rows.Int(0), rows.Text(1));
  }
  rows.Reset();
  const uint8_t flush = tiers_.flush[task.stage];
  for (const auto& [row, name] : old) {
    TF_RETURN_IF_ERROR(
        writer_.DeleteCheckpoint(row, StrCat("only the newest ", keep, " are kept")));
    const std::string key = StrCat(Key(t), "/", name);
    storage::Adapter* durable = run_.tiers[flush].adapter.get();
    const std::string local = run_.TierPath(tiers_.tier, key);
    // On a posix tier the folder goes too, not only the files in it.
    const std::string durable_path = run_.tiers[flush].posix ? run_.TierPath(flush, key) : "";
    const std::shared_ptr<const storage::TierRoot> local_root =
        storage::PosixTierRoot(*run_.tiers[tiers_.tier].adapter);
    const int64_t id = moves_.NextLocalId();
    MoveJob job;
    job.kind = MoveJob::Kind::kRun;
    job.copy_id = id;
    job.run = [durable, key, local, durable_path,
               local_root]() -> absl::StatusOr<storage::TransferResult> {
      // Through the tiers' roots: a symlink beneath them is never followed.
      if (local_root != nullptr) {
        // The marker first: no half checkpoint counts.
        TF_RETURN_IF_ERROR(local_root->Remove(local + ".committed"));
        TF_RETURN_IF_ERROR(local_root->RemoveTree(local));
      }
      TF_RETURN_IF_ERROR(durable->Delete(key + ".committed"));
      if (const auto root = storage::PosixTierRoot(*durable); root && !durable_path.empty()) {
        TF_RETURN_IF_ERROR(root->RemoveTree(durable_path));
        return storage::TransferResult{};
      }
      TF_RETURN_IF_ERROR(DeleteArtifact(*durable, key));
      return storage::TransferResult{};
    };
    moves_.Add(id,
               Move{.task = t,
                    .tier = flush,
                    .purpose = MovePurpose::kRemoveCheckpoint,
                    .source = tiers_.tier,
                    .checkpoint_row = row},
               std::move(job));
  }
  return absl::OkStatus();
}

// Cluster mode: where attempt `report` writes its checkpoints (a node
// tier of its worker, or the cluster folder), as an event.
absl::Status Checkpoints::RecordDir(uint32_t t, const TaskReport& report) {
  if (tiers_.node_tier == kNoTier || tiers_.tier == kNoTier) return absl::OkStatus();
  if (report.checkpoint_node_dir.empty() && report.checkpoint_node_error.empty()) {
    return absl::OkStatus();
  }
  const std::string node = run_.tiers[tiers_.node_tier].config.name;
  const std::string cluster = run_.tiers[tiers_.tier].config.name;
  const uint8_t flush = tiers_.flush[run_.tasks[t].stage];
  const std::string then =
      flush == kNoTier ? "" : StrCat(", then flushed to tier ", run_.tiers[flush].config.name);
  std::string restored;
  for (const NodeCopyReport& copy : report.node_copies) {
    if (copy.tier != node || !copy.key.starts_with(Key(t) + "/")) continue;
    restored = StrCat("; checkpoint ", copy.key.substr(Key(t).size() + 1),
                      " put back there first (", FormatSize(copy.bytes), " in ",
                      FormatDuration(std::chrono::milliseconds(copy.elapsed_ms)), ")");
  }
  return writer_.AddEvent(
      run_.tasks[t].id, report.attempt_id, "checkpoint_dir",
      report.checkpoint_node_dir.empty()
          ? StrCat("checkpoints written on tier ", cluster, ", not on ", report.worker,
                   "'s node tier ", node, ": ", report.checkpoint_node_error)
          : StrCat("checkpoints written on ", report.worker, "'s node tier ", node, " (",
                   report.checkpoint_node_dir, "); each one committed is copied to tier ", cluster,
                   then, restored));
}

absl::Status Checkpoints::FailCutOffFlushes(
    const std::unordered_map<std::string, uint32_t>& by_id) {
  TF_ASSIGN_OR_RETURN(std::vector<CutOffFlush> cut, writer_.FailCutOffFlushes());
  for (CutOffFlush& flush : cut) {
    auto found = by_id.find(flush.task_id);
    if (found != by_id.end()) {
      unflushed_.push_back({found->second, std::move(flush.name), flush.attempt_id});
    }
  }
  return absl::OkStatus();
}

// Checkpoints of tasks that had ended whose flush the crash cut off (a
// task that runs again flushes its own when it starts).
absl::Status Checkpoints::FlushCutOff() {
  for (const Unflushed& cut : unflushed_) {
    std::error_code error;
    if (IsDone(run_.tasks[cut.task].state) &&
        fs::exists(run_.TierPath(tiers_.tier, StrCat(Key(cut.task), "/", cut.name, ".committed")),
                   error)) {
      TF_RETURN_IF_ERROR(Flush(cut.task, cut.name, cut.attempt));
    }
  }
  unflushed_.clear();
  return absl::OkStatus();
}

}  // namespace tierflow::scheduler::internal
