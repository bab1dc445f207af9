#include "worker/node_tiers.h"

#include <chrono>
#include <filesystem>
#include <future>
#include <memory>

#include "common/status.h"
#include "common/strings.h"
#include "storage_adapters/artifact_key.h"
#include "storage_adapters/posix.h"
#include "storage_adapters/tier_root.h"
#include "storage_adapters/transfer.h"

namespace tierflow::worker {
namespace fs = std::filesystem;

absl::StatusOr<std::unique_ptr<storage::Adapter>> OpenRoot(const std::string& name,
                                                           const std::string& root) {
  storage::TierConfig config;
  config.name = name;
  config.adapter = "posix";
  config.root = root;
  return storage::OpenPosixTier(config);
}

NodeTiers::NodeTiers(std::map<std::string, std::string> tiers) : tiers_(std::move(tiers)) {}

NodeTiers::~NodeTiers() {
  std::map<uint64_t, std::thread> streams;
  {
    std::lock_guard lock(mu_);
    for (auto& [attempt, flags] : readers_) {
      for (auto& flag : flags) *flag = true;
    }
    streams.swap(streams_);
  }
  for (auto& [id, stream] : streams) stream.join();
}

void NodeTiers::Ended(int64_t attempt_id) {
  std::lock_guard lock(mu_);
  auto found = readers_.find(attempt_id);
  if (found == readers_.end()) return;
  for (auto& flag : found->second) *flag = true;
  readers_.erase(found);
}

absl::Status NodeTiers::Clear(const std::vector<NodeFolder>& recorded) {
  std::lock_guard lock(mu_);
  held_.clear();
  for (const NodeFolder& folder : recorded) {
    absl::StatusOr<std::string> key = storage::NormalizeArtifactKey(folder.key);
    if (!key.ok()) continue;  // never made: keys are checked before a copy
    absl::Status cleared = [&]() -> absl::Status {
      TF_ASSIGN_OR_RETURN(auto root, storage::OpenPosixRoot(folder.root));
      TF_RETURN_IF_ERROR(root->RemoveTree(*key));
      TF_RETURN_IF_ERROR(storage::RemoveStreamFiles(*root, *key));
      // The folders above it that it leaves empty (runs/RUN/artifacts/TASK),
      // ROOT/runs itself excepted: another worker may be making a copy there.
      for (fs::path above = fs::path(*key).parent_path(); above.has_parent_path();
           above = above.parent_path()) {
        if (!root->Remove(above.string()).ok()) break;  // not empty
      }
      return absl::OkStatus();
    }();
    if (!cleared.ok()) {
      return absl::FailedPreconditionError(
          StrCat("node tier at ", folder.root, ": cannot clear ", *key, ": ", cleared.message()));
    }
  }
  return absl::OkStatus();
}

NodeCopyReport NodeTiers::StageOne(const StageIn& stage, int64_t attempt_id) {
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
  if (stage.stream) {
    // The first file here, then the task starts while the rest follows.
    auto reader_done = std::make_shared<std::atomic<bool>>(false);
    auto first = std::make_shared<std::promise<void>>();
    std::future<void> first_there = first->get_future();
    auto result = std::make_shared<absl::Status>();
    std::string path = report.path;
    std::string root = tier->second;
    std::vector<std::thread> ended;  // threads of streams that are over, joined here
    {
      std::lock_guard lock(mu_);
      for (uint64_t id : ended_streams_) {
        ended.push_back(std::move(streams_[id]));
        streams_.erase(id);
      }
      ended_streams_.clear();
      readers_[attempt_id].push_back(reader_done);
      const uint64_t id = next_stream_++;
      streams_[id] = std::thread(
          [this, id, stage, key = *key, held_key, path, root, reader_done, first, result] {
            bool told = false;
            absl::StatusOr<storage::TransferResult> moved =
                [&]() -> absl::StatusOr<storage::TransferResult> {
              TF_ASSIGN_OR_RETURN(std::unique_ptr<storage::Adapter> from,
                                  OpenRoot("source", stage.source_root));
              TF_ASSIGN_OR_RETURN(std::unique_ptr<storage::Adapter> to, OpenRoot(stage.tier, root));
              TF_ASSIGN_OR_RETURN(bool there, storage::ArtifactExists(*to, key));
              if (there) TF_RETURN_IF_ERROR(storage::DeleteArtifact(*to, key));
              storage::StreamOptions options;
              options.readers_done = reader_done;
              options.on_first = [&] {
                {
                  std::lock_guard lock(mu_);
                  streaming_.insert(held_key);
                }
                told = true;
                first->set_value();
              };
              return storage::StreamArtifact(*from, key, *to, path, options);
            }();
            {
              std::lock_guard lock(mu_);
              copying_.erase(held_key);
              streaming_.erase(held_key);
              if (moved.ok()) {
                held_[held_key] = {stage.content_hash, moved->bytes};
              } else {
                held_.erase(held_key);
                if (!told) *result = moved.status();
              }
              ended_streams_.push_back(id);
            }
            copied_.notify_all();
            if (!told) first->set_value();
          });
    }
    for (std::thread& done : ended) done.join();
    first_there.wait();
    report.elapsed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - start)
                            .count();
    std::lock_guard lock(mu_);
    if (!result->ok()) report.error = std::string(result->message());
    return report;
  }
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
  for (const StageIn& stage : launch.stage_in) {
    reports.push_back(StageOne(stage, launch.attempt_id));
  }
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
    const std::string path = (fs::path(tier->second) / *key).string();
    for (auto& [name, value] : launch.env) {
      if (name == input.env) value = path;
    }
    // Still being copied: the task reads it through its manifest.
    bool streaming = false;
    {
      std::lock_guard lock(mu_);
      streaming = streaming_.count(StrCat(input.tier, "/", *key)) > 0;
    }
    constexpr std::string_view kInput = "TIERFLOW_INPUT_";
    if (streaming && input.env.rfind(kInput, 0) == 0) {
      launch.env.emplace_back(StrCat("TIERFLOW_STREAM_", input.env.substr(kInput.size())),
                              StrCat(path, storage::kStreamManifestSuffix));
    }
  }
  return reports;
}

void NodeTiers::Adopt(const std::string& tier, const std::string& key,
                      const std::string& content_hash, uint64_t bytes) {
  std::lock_guard lock(mu_);
  held_[StrCat(tier, "/", key)] = {content_hash, bytes};
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
  // Node tiers are posix: the file, or the folder of a tree, whole.
  absl::StatusOr<std::shared_ptr<const storage::TierRoot>> root =
      storage::OpenPosixRoot(found->second);
  if (root.ok()) {
    (void)(*root)->RemoveTree(*normal);
    (void)storage::RemoveStreamFiles(**root, *normal);
  }
  {
    std::lock_guard lock(mu_);
    copying_.erase(held_key);
  }
  copied_.notify_all();
}

}  // namespace tierflow::worker
