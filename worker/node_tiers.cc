#include "worker/node_tiers.h"

#include <chrono>
#include <filesystem>
#include <memory>

#include "common/status.h"
#include "common/strings.h"
#include "storage_adapters/artifact_key.h"
#include "storage_adapters/posix.h"
#include "storage_adapters/transfer.h"

namespace tierflow::worker {
namespace fs = std::filesystem;

namespace {

absl::StatusOr<std::unique_ptr<storage::Adapter>> OpenRoot(const std::string& name,
                                                           const std::string& root) {
  storage::TierConfig config;
  config.name = name;
  config.adapter = "posix";
  config.root = root;
  return storage::OpenPosixTier(config);
}

}  // namespace

NodeTiers::NodeTiers(std::map<std::string, std::string> tiers) : tiers_(std::move(tiers)) {}

absl::Status NodeTiers::Clear() {
  std::lock_guard lock(mu_);
  held_.clear();
  for (const auto& [name, path] : tiers_) {
    std::error_code error;
    fs::remove_all(fs::path(path) / "runs", error);
    if (error) {
      return absl::FailedPreconditionError(
          StrCat("node tier ", name, ": cannot clear ", path, "/runs: ", error.message()));
    }
  }
  return absl::OkStatus();
}

NodeCopyReport NodeTiers::StageOne(const StageIn& stage) {
  NodeCopyReport report;
  report.tier = stage.tier;
  report.key = stage.key;
  report.bytes = stage.bytes;
  auto tier = tiers_.find(stage.tier);
  if (tier == tiers_.end()) {
    report.error = StrCat("this worker has no node tier '", stage.tier,
                          "' (tierflow worker --tier ", stage.tier, "=PATH)");
    return report;
  }
  absl::StatusOr<std::string> key = storage::NormalizeArtifactKey(stage.key);
  if (!key.ok()) {
    report.error = std::string(key.status().message());
    return report;
  }
  report.path = (fs::path(tier->second) / *key).string();
  const std::string held_key = StrCat(stage.tier, "/", *key);
  {
    std::unique_lock lock(mu_);
    copied_.wait(lock, [&] { return copying_.count(held_key) == 0; });
    auto held = held_.find(held_key);
    if (held != held_.end() && held->second.content_hash == stage.content_hash) {
      report.reused = true;
      return report;
    }
    copying_.insert(held_key);
  }
  const auto start = std::chrono::steady_clock::now();
  absl::Status status = [&]() -> absl::Status {
    TF_ASSIGN_OR_RETURN(std::unique_ptr<storage::Adapter> from,
                        OpenRoot("source", stage.source_root));
    TF_ASSIGN_OR_RETURN(std::unique_ptr<storage::Adapter> to, OpenRoot(stage.tier, tier->second));
    // An earlier version of the artifact (a producer that ran again).
    TF_ASSIGN_OR_RETURN(bool there, storage::ArtifactExists(*to, *key));
    if (there) TF_RETURN_IF_ERROR(storage::DeleteArtifact(*to, *key));
    TF_ASSIGN_OR_RETURN(storage::TransferResult moved,
                        storage::CopyArtifact(*from, *key, *to, *key));
    report.bytes = moved.bytes;
    return absl::OkStatus();
  }();
  report.elapsed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - start)
                          .count();
  {
    std::lock_guard lock(mu_);
    copying_.erase(held_key);
    if (status.ok()) {
      held_[held_key] = {stage.content_hash, report.bytes};
    } else {
      held_.erase(held_key);
      report.error = std::string(status.message());
    }
  }
  copied_.notify_all();
  return report;
}

std::vector<NodeCopyReport> NodeTiers::Stage(TaskLaunch& launch) {
  std::vector<NodeCopyReport> reports;
  reports.reserve(launch.stage_in.size());
  for (const StageIn& stage : launch.stage_in) reports.push_back(StageOne(stage));
  for (const NodeInput& input : launch.node_inputs) {
    auto tier = tiers_.find(input.tier);
    if (tier == tiers_.end()) continue;
    absl::StatusOr<std::string> key = storage::NormalizeArtifactKey(input.key);
    if (!key.ok()) continue;
    // Every copy under it (one artifact, or a foreach stage's items) is there.
    bool complete = true;
    bool any = false;
    for (const NodeCopyReport& copy : reports) {
      if (copy.tier != input.tier) continue;
      if (copy.key != input.key && copy.key.rfind(input.key + "/", 0) != 0) continue;
      any = true;
      complete = complete && copy.error.empty();
    }
    if (!any || !complete) continue;
    for (auto& [name, value] : launch.env) {
      if (name == input.env) value = (fs::path(tier->second) / *key).string();
    }
  }
  return reports;
}

void NodeTiers::Evict(const std::string& tier, const std::string& key) {
  auto found = tiers_.find(tier);
  absl::StatusOr<std::string> normal = storage::NormalizeArtifactKey(key);
  if (found == tiers_.end() || !normal.ok()) return;
  const std::string held_key = StrCat(tier, "/", *normal);
  {
    std::unique_lock lock(mu_);
    copied_.wait(lock, [&] { return copying_.count(held_key) == 0; });
    if (held_.erase(held_key) == 0) return;
    copying_.insert(held_key);  // no task stages it while it goes
  }
  absl::StatusOr<std::unique_ptr<storage::Adapter>> adapter = OpenRoot(tier, found->second);
  if (adapter.ok()) (void)storage::DeleteArtifact(**adapter, *normal);
  {
    std::lock_guard lock(mu_);
    copying_.erase(held_key);
  }
  copied_.notify_all();
}

}  // namespace tierflow::worker
