#include "worker/job_node_side.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/status.h"
#include "common/strings.h"
#include "storage_adapters/artifact_key.h"
#include "storage_adapters/posix.h"
#include "storage_adapters/tier_root.h"
#include "storage_adapters/transfer.h"

namespace tierflow::worker {
namespace {

namespace fs = std::filesystem;

// ROOT/.tierflow-copies/KEY: the content hash of the copy ROOT/KEY, for
// later jobs on the node. Not beside the copy: a foreach stage's items are
// copied into one folder its reader lists.
constexpr std::string_view kCopyRecords = ".tierflow-copies";

std::string RecordOf(const std::string& key) { return StrCat(kCopyRecords, "/", key); }
// In a node tier's root: held while a job stages there.
constexpr const char* kStageLock = ".tierflow-stage.lock";

bool NameChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// The content hash a copy record holds; "" when there is none.
std::string ReadCopyRecord(const storage::TierRoot& root, const std::string& key) {
  absl::StatusOr<storage::Fd> fd = root.OpenRead(RecordOf(key));
  if (!fd.ok()) return "";
  char buffer[256];
  const ssize_t n = read(fd->get(), buffer, sizeof buffer);
  return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : "";
}

// Holds an flock on ROOT/kStageLock while it lives (none when it cannot).
class StageLock {
 public:
  explicit StageLock(const std::string& root) {
    fd_ = open((fs::path(root) / kStageLock).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ >= 0) flock(fd_, LOCK_EX);
  }
  ~StageLock() {
    if (fd_ >= 0) close(fd_);  // releases the lock
  }
  StageLock(const StageLock&) = delete;
  StageLock& operator=(const StageLock&) = delete;

 private:
  int fd_ = -1;
};

// The launch's node tiers with their roots expanded, or why not.
std::map<std::string, std::string> Expand(const TaskLaunch& launch, const EnvLookup& lookup,
                                          std::map<std::string, std::string>& errors) {
  std::map<std::string, std::string> roots;
  for (const auto& [tier, root] : launch.node_tier_roots) {
    absl::StatusOr<std::string> expanded = ExpandTierRoot(tier, root, lookup);
    if (expanded.ok()) {
      roots[tier] = *expanded;
    } else {
      errors[tier] = std::string(expanded.status().message());
    }
  }
  return roots;
}

}  // namespace

std::optional<std::string> ProcessEnv(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

absl::StatusOr<std::string> ExpandTierRoot(const std::string& tier, const std::string& root,
                                           const EnvLookup& lookup) {
  std::string out;
  for (size_t i = 0; i < root.size(); ++i) {
    if (root[i] != '$') {
      out += root[i];
      continue;
    }
    std::string name;
    if (i + 1 < root.size() && root[i + 1] == '{') {
      const size_t close = root.find('}', i + 2);
      if (close == std::string::npos) {
        return absl::InvalidArgumentError(
            StrCat("node tier '", tier, "': root '", root, "' has an unclosed ${"));
      }
      name = root.substr(i + 2, close - i - 2);
      i = close;
    } else {
      size_t end = i + 1;
      while (end < root.size() && NameChar(root[end])) ++end;
      name = root.substr(i + 1, end - i - 1);
      i = end - 1;
    }
    if (name.empty() || !std::all_of(name.begin(), name.end(), NameChar) ||
        std::isdigit(static_cast<unsigned char>(name[0]))) {
      return absl::InvalidArgumentError(StrCat("node tier '", tier, "': root '", root,
                                               "' has a '$' not followed by a variable name"));
    }
    std::optional<std::string> value = lookup(name);
    if (!value || value->empty()) {
      return absl::FailedPreconditionError(StrCat("node tier '", tier, "': its root '", root,
                                                  "' uses $", name, ", which is not set on ",
                                                  "this node"));
    }
    out += *value;
  }
  if (!fs::path(out).is_absolute()) {
    return absl::InvalidArgumentError(StrCat("node tier '", tier, "': root '", root,
                                             "' expands to '", out, "', not an absolute path"));
  }
  return fs::path(out).lexically_normal().string();
}

bool JobScopedRoot(const std::string& root) {
  for (std::string_view name : {"SLURM_JOB_ID", "SLURM_JOBID", "TMPDIR"}) {
    for (const std::string& form : {StrCat("$", name), StrCat("${", name, "}")}) {
      for (size_t at = root.find(form); at != std::string::npos; at = root.find(form, at + 1)) {
        const size_t end = at + form.size();
        if (form.back() == '}' || end == root.size() || !NameChar(root[end])) return true;
      }
    }
  }
  return false;
}

absl::Status EvictNodeCopy(const std::string& root, const std::string& key) {
  TF_ASSIGN_OR_RETURN(std::string normal, storage::NormalizeArtifactKey(key));
  TF_ASSIGN_OR_RETURN(auto tier, storage::OpenPosixRoot(root));
  TF_RETURN_IF_ERROR(tier->RemoveTree(normal));
  TF_RETURN_IF_ERROR(storage::RemoveStreamFiles(*tier, normal));
  TF_RETURN_IF_ERROR(tier->Remove(RecordOf(normal)));
  // The folders above each that it leaves empty, ROOT/runs and
  // ROOT/.tierflow-copies/runs excepted.
  for (const std::string& path : {normal, RecordOf(normal)}) {
    for (fs::path above = fs::path(path).parent_path();
         above.has_parent_path() && above.parent_path() != kCopyRecords;
         above = above.parent_path()) {
      if (!tier->Remove(above.string()).ok()) break;  // not empty
    }
  }
  return absl::OkStatus();
}

std::string EvictionList(const std::vector<std::array<std::string, 3>>& copies) {
  std::string list;
  for (const auto& [tier, root, key] : copies) list += StrCat(tier, "\t", root, "\t", key, "\n");
  return list;
}

absl::Status EvictNodeCopies(const std::string& list_path, const EnvLookup& lookup) {
  std::ifstream in(list_path);
  if (!in) return absl::NotFoundError(StrCat("cannot read the eviction list ", list_path));
  absl::Status first;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const size_t a = line.find('\t');
    const size_t b = a == std::string::npos ? a : line.find('\t', a + 1);
    if (b == std::string::npos) {
      if (first.ok()) first = absl::InvalidArgumentError(StrCat(list_path, ": bad line: ", line));
      continue;
    }
    const std::string tier = line.substr(0, a);
    const std::string key = line.substr(b + 1);
    absl::Status evicted = [&]() -> absl::Status {
      TF_ASSIGN_OR_RETURN(std::string root,
                          ExpandTierRoot(tier, line.substr(a + 1, b - a - 1), lookup));
      return EvictNodeCopy(root, key);
    }();
    if (!evicted.ok() && first.ok()) {
      first = absl::Status(evicted.code(), StrCat("evicting ", key, " from node tier ", tier, ": ",
                                                  evicted.message()));
    }
  }
  return first;
}

JobNodeSide::JobNodeSide(const TaskLaunch& launch, const EnvLookup& lookup)
    : roots_(Expand(launch, lookup, errors_)), tiers_(roots_), relays_(roots_) {
  for (const auto& [tier, root] : launch.node_tier_roots) {
    if (JobScopedRoot(root)) job_scoped_.insert(tier);
  }
  node_ = lookup("SLURMD_NODENAME").value_or("");
}

void JobNodeSide::Prepare(TaskLaunch& launch) {
  if (launch.stage_in.empty() && !launch.checkpoint_relay) return;
  // Stage-ins on a tier whose root did not expand: an error each, read in place.
  std::vector<StageIn> unreachable;
  std::erase_if(launch.stage_in, [&](const StageIn& stage) {
    if (errors_.count(stage.tier) == 0) return false;
    unreachable.push_back(stage);
    return true;
  });
  // One job at a time stages on a node tier; a copy an earlier job left
  // with the same content is used as is.
  std::vector<std::unique_ptr<StageLock>> locks;
  for (const auto& [tier, root] : roots_) {
    bool used = false;
    for (const StageIn& stage : launch.stage_in) used = used || stage.tier == tier;
    if (!used) continue;
    absl::StatusOr<std::shared_ptr<const storage::TierRoot>> opened = storage::OpenPosixRoot(root);
    if (!opened.ok()) continue;  // the copies fail, naming it
    locks.push_back(std::make_unique<StageLock>(root));
    for (const StageIn& stage : launch.stage_in) {
      if (stage.tier != tier || stage.stream) continue;
      absl::StatusOr<std::string> key = storage::NormalizeArtifactKey(stage.key);
      if (!key.ok() || !(*opened)->Exists(*key)) continue;
      if (ReadCopyRecord(**opened, *key) == stage.content_hash && !stage.content_hash.empty()) {
        tiers_.Adopt(stage.tier, *key, stage.content_hash, stage.bytes);
      }
    }
  }
  notes_.node_copies = tiers_.Stage(launch);
  for (const NodeCopyReport& copy : notes_.node_copies) {
    if (!copy.error.empty() || copy.reused) continue;
    const StageIn* stage = nullptr;
    for (const StageIn& s : launch.stage_in) {
      if (s.tier == copy.tier && s.key == copy.key) stage = &s;
    }
    // A streamed copy is not complete yet: later jobs copy it again.
    if (stage == nullptr || stage->stream || stage->content_hash.empty()) continue;
    absl::StatusOr<std::shared_ptr<const storage::TierRoot>> opened =
        storage::OpenPosixRoot(roots_[copy.tier]);
    absl::StatusOr<std::string> key = storage::NormalizeArtifactKey(copy.key);
    if (opened.ok() && key.ok()) {
      (void)(*opened)->WriteFile(RecordOf(*key), stage->content_hash);
    }
  }
  locks.clear();
  for (const StageIn& stage : unreachable) {
    NodeCopyReport copy;
    copy.tier = stage.tier;
    copy.key = stage.key;
    copy.bytes = stage.bytes;
    copy.error = errors_[stage.tier];
    notes_.node_copies.push_back(std::move(copy));
  }
  relays_.Start(launch, notes_);
  if (launch.checkpoint_relay && errors_.count(launch.checkpoint_relay->tier) > 0) {
    notes_.checkpoint_node_error = errors_[launch.checkpoint_relay->tier];
  }
}

void JobNodeSide::Started(TaskReport& report) const {
  report.node_copies = notes_.node_copies;
  report.checkpoint_node_dir = notes_.checkpoint_node_dir;
  report.checkpoint_node_error = notes_.checkpoint_node_error;
  if (report.worker.empty()) report.worker = node_;
}

void JobNodeSide::Ended(TaskReport& report) {
  tiers_.Ended(report.attempt_id);
  relays_.Ended(report.attempt_id);
  for (const NodeCopyReport& copy : notes_.node_copies) {
    if (!copy.error.empty() || job_scoped_.count(copy.tier) == 0) continue;
    tiers_.Evict(copy.tier, copy.key);
    (void)EvictNodeCopy(roots_[copy.tier], copy.key);
  }
  if (report.worker.empty()) report.worker = node_;
}

}  // namespace tierflow::worker
