#include "worker/checkpoint_relay.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <set>
#include <vector>

#include "common/strings.h"
#include "storage_adapters/adapter.h"
#include "storage_adapters/artifact_key.h"
#include "storage_adapters/posix.h"
#include "storage_adapters/tier_root.h"
#include "storage_adapters/transfer.h"
#include "worker/node_tiers.h"

namespace tierflow::worker {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kMarker = ".committed";

// The committed checkpoints in `dir`: names with a regular NAME.committed
// marker and a NAME folder, sorted (step-%08d sorts by step).
std::vector<std::string> Committed(const fs::path& dir) {
  std::vector<std::string> names;
  std::error_code error;
  for (fs::directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
    const std::string file = it->path().filename().string();
    if (file.size() <= kMarker.size() || !file.ends_with(kMarker) || file[0] == '.') continue;
    const std::string name = file.substr(0, file.size() - kMarker.size());
    std::error_code ignored;
    if (it->is_regular_file(ignored) && fs::is_directory(dir / name, ignored)) {
      names.push_back(name);
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

// The checkpoint `name` in the folder `key` under `root`.
void RemoveCheckpoint(const storage::TierRoot& root, const std::string& key,
                      const std::string& name) {
  (void)root.Remove(StrCat(key, "/", name, kMarker));  // uncommitted first
  (void)root.RemoveTree(StrCat(key, "/", name));
}

}  // namespace

struct CheckpointRelays::Relay {
  int64_t attempt_id = 0;
  std::string key;  // the same on both tiers
  fs::path node_dir;
  fs::path cluster_dir;
  int keep = 0;
  std::unique_ptr<storage::Adapter> node;
  std::unique_ptr<storage::Adapter> cluster;
  // Their roots: every change on either goes through them.
  std::shared_ptr<const storage::TierRoot> node_root;
  std::shared_ptr<const storage::TierRoot> cluster_root;
  std::mutex mu;
  bool ended = false;            // guarded by mu
  std::set<std::string> there;   // committed in the cluster folder (guarded by mu)
  std::set<std::string> failed;  // told once (guarded by mu)

  // Copies the checkpoints committed on the node since the last look to
  // the cluster folder, then keeps the newest `keep` on the node.
  void RelayNew() {
    const std::vector<std::string> names = Committed(node_dir);
    for (const std::string& name : names) {
      if (there.count(name) > 0) continue;
      std::error_code ignored;
      if (fs::exists(cluster_dir / (name + std::string(kMarker)), ignored)) {
        there.insert(name);
        continue;
      }
      (void)cluster_root->RemoveTree(StrCat(key, "/", name));  // what a relay cut off left
      absl::StatusOr<storage::TransferResult> copied =
          storage::CopyCheckpoint(*node, *cluster, StrCat(key, "/", name));
      if (copied.ok()) {
        there.insert(name);
      } else if (failed.insert(name).second) {
        std::cerr << "worker: checkpoint " << name << " of attempt " << attempt_id
                  << " could not be copied to " << cluster_dir.string() << ": "
                  << copied.status().message() << " (trying again)" << std::endl;
      }
    }
    if (keep <= 0 || names.size() <= static_cast<size_t>(keep)) return;
    for (size_t i = 0; i + keep < names.size(); ++i) {
      if (there.count(names[i]) > 0) RemoveCheckpoint(*node_root, key, names[i]);
    }
  }
};

CheckpointRelays::CheckpointRelays(std::map<std::string, std::string> tiers)
    : tiers_(std::move(tiers)) {}

CheckpointRelays::~CheckpointRelays() {
  stop_ = true;
  if (loop_.joinable()) loop_.join();
}

void CheckpointRelays::Start(TaskLaunch& launch, TaskReport& report) {
  if (!launch.checkpoint_relay || launch.mode != TaskLaunch::Mode::kRun ||
      launch.checkpoint_dir.empty()) {
    return;
  }
  const CheckpointRelay& spec = *launch.checkpoint_relay;
  auto fail = [&](std::string why) { report.checkpoint_node_error = std::move(why); };
  auto tier = tiers_.find(spec.tier);
  if (tier == tiers_.end()) {
    return fail(StrCat("this worker has no node tier '", spec.tier, "' (tierflow worker --tier ",
                       spec.tier, "=PATH)"));
  }
  absl::StatusOr<std::string> key = storage::NormalizeArtifactKey(spec.key);
  if (!key.ok()) return fail(std::string(key.status().message()));
  const std::string suffix = StrCat("/", *key);
  if (!launch.checkpoint_dir.ends_with(suffix)) {
    return fail(StrCat("the cluster checkpoint folder ", launch.checkpoint_dir, " is not at ", *key,
                       " of a tier"));
  }
  auto relay = std::make_shared<Relay>();
  relay->attempt_id = launch.attempt_id;
  relay->key = *key;
  relay->keep = spec.keep;
  relay->node_dir = fs::path(tier->second) / *key;
  relay->cluster_dir = launch.checkpoint_dir;
  absl::StatusOr<std::unique_ptr<storage::Adapter>> node = OpenRoot(spec.tier, tier->second);
  absl::StatusOr<std::unique_ptr<storage::Adapter>> cluster = OpenRoot(
      "cluster", launch.checkpoint_dir.substr(0, launch.checkpoint_dir.size() - suffix.size()));
  if (!node.ok()) return fail(std::string(node.status().message()));
  if (!cluster.ok()) return fail(std::string(cluster.status().message()));
  relay->node = std::move(*node);
  relay->cluster = std::move(*cluster);
  relay->node_root = storage::PosixTierRoot(*relay->node);
  relay->cluster_root = storage::PosixTierRoot(*relay->cluster);
  relay->node_dir = fs::path(relay->node_root->path()) / *key;  // absolute, as the root
  if (absl::Status made = relay->node_root->CreateFolders(*key); !made.ok()) {
    return fail(StrCat("cannot create ", relay->node_dir.string(), ": ", made.message()));
  }
  std::error_code error;
  // A retry (here or elsewhere) resumes from the newest checkpoint the
  // cluster folder has (the scheduler put it back there from the durable
  // tier if need be).
  const std::vector<std::string> committed = Committed(relay->cluster_dir);
  relay->there.insert(committed.begin(), committed.end());
  if (!committed.empty() &&
      !fs::exists(relay->node_dir / (committed.back() + std::string(kMarker)), error)) {
    const std::string& name = committed.back();
    RemoveCheckpoint(*relay->node_root, *key, name);
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<storage::TransferResult> copied =
        storage::CopyCheckpoint(*relay->cluster, *relay->node, StrCat(*key, "/", name));
    NodeCopyReport copy;
    copy.tier = spec.tier;
    copy.key = StrCat(*key, "/", name);
    copy.path = (relay->node_dir / name).string();
    copy.elapsed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - start)
                          .count();
    if (!copied.ok()) {
      RemoveCheckpoint(*relay->node_root, *key, name);
      return fail(StrCat("restoring checkpoint ", name, " from ", relay->cluster_dir.string(),
                         " failed: ", copied.status().message()));
    }
    copy.bytes = copied->bytes;
    report.node_copies.push_back(std::move(copy));
  }
  launch.checkpoint_dir = relay->node_dir.string();
  launch.checkpoint_root = relay->node_root->path();
  for (auto& [name, value] : launch.env) {
    if (name == "TIERFLOW_CHECKPOINT_DIR") value = launch.checkpoint_dir;
  }
  report.checkpoint_node_dir = launch.checkpoint_dir;
  std::lock_guard lock(mu_);
  relays_[launch.attempt_id] = std::move(relay);
  if (!loop_.joinable()) loop_ = std::thread([this] { Loop(); });
}

void CheckpointRelays::Ended(int64_t attempt_id) {
  std::shared_ptr<Relay> relay;
  {
    std::lock_guard lock(mu_);
    auto found = relays_.find(attempt_id);
    if (found == relays_.end()) return;
    relay = std::move(found->second);
    relays_.erase(found);
  }
  std::lock_guard lock(relay->mu);
  relay->RelayNew();
  relay->ended = true;
  (void)relay->node_root->RemoveTree(relay->key);
}

void CheckpointRelays::Loop() {
  while (!stop_) {
    for (auto slept = std::chrono::milliseconds(0); slept < interval_ && !stop_;
         slept += std::chrono::milliseconds(20)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::vector<std::shared_ptr<Relay>> relays;
    {
      std::lock_guard lock(mu_);
      for (const auto& [attempt, relay] : relays_) relays.push_back(relay);
    }
    for (const std::shared_ptr<Relay>& relay : relays) {
      if (stop_) break;
      std::lock_guard lock(relay->mu);
      if (!relay->ended) relay->RelayNew();
    }
  }
}

}  // namespace tierflow::worker
