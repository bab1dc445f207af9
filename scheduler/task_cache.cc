#include "scheduler/task_cache.h"

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "common/status.h"
#include "storage_adapters/local_artifact.h"

namespace tierflow::scheduler::internal {
namespace fs = std::filesystem;

absl::Status TaskCache::Prepare() {
  TF_ASSIGN_OR_RETURN(Statement find,
                      db_.Prepare("SELECT id, coalesce(cached_from, id) FROM attempts WHERE "
                                  "cache_key = ? AND state IN ('succeeded', 'cached') ORDER BY "
                                  "finished_at DESC LIMIT 8"));
  find_cached_.emplace(std::move(find));
  TF_ASSIGN_OR_RETURN(Statement outputs,
                      db_.Prepare("SELECT a.name, a.content_hash, a.bytes, c.uri, c.tier FROM "
                                  "artifacts a JOIN artifact_copies c ON c.artifact_id = a.id AND "
                                  "c.state = 'present' WHERE a.attempt_id = ? ORDER BY "
                                  "substr(c.uri, 1, 1) = '/' DESC, c.role = 'home' DESC"));
  cached_outputs_.emplace(std::move(outputs));
  return absl::OkStatus();
}

std::string TaskCache::Key(
    uint32_t t, const std::vector<std::string>& argv,
    const std::vector<std::pair<std::string, std::string>>& env,
    const std::vector<std::pair<std::string, std::vector<uint32_t>>>& inputs) {
  const TaskRec& task = run_.tasks[t];
  const dag::Stage& stage = run_.pipeline.stages[task.stage];
  std::string key = "tierflow-cache-v1";
  auto add = [&](std::string_view field) {
    key += '\0';
    key += field;
  };
  add(run_.pipeline.name);
  add(task.id);
  if (stage.run.is_shell()) {
    add("shell");
    add(stage.run.shell);
  } else {
    add("argv");
    for (const std::string& arg : argv) add(arg);
  }
  // Script files the command names (python3 train.py): their content is
  // part of what the task does, so editing one invalidates the cache.
  std::vector<std::string> words = argv;
  if (stage.run.is_shell()) {
    std::istringstream split(stage.run.shell);
    for (std::string word; split >> word;) words.push_back(word);
  }
  for (const std::string& word : words) {
    if (word.empty() || word.size() > 4096) continue;
    fs::path path = fs::path(run_.working_dir) / word;
    auto known = script_hashes_.find(path.string());
    if (known == script_hashes_.end()) {
      std::error_code error;
      std::string hash;
      if (fs::is_regular_file(path, error)) {
        absl::StatusOr<storage::ContentDigest> digest = storage::HashArtifact(path.string());
        if (digest.ok()) hash = digest->hash;
      }
      known = script_hashes_.emplace(path.string(), hash).first;
    }
    if (!known->second.empty()) {
      add("script");
      add(word);
      add(known->second);
    }
  }
  // The environment without input/output paths (they name this run's
  // folders); inputs count by content below.
  std::vector<std::pair<std::string, std::string>> sorted;
  for (const auto& entry : env) {
    if (entry.first.rfind("TIERFLOW_INPUT_", 0) == 0 ||
        entry.first.rfind("TIERFLOW_OUTPUT_", 0) == 0 ||
        entry.first.rfind("TIERFLOW_STREAM_", 0) == 0 || entry.first == "TIERFLOW_CHECKPOINT_DIR") {
      continue;
    }
    sorted.push_back(entry);
  }
  std::sort(sorted.begin(), sorted.end());
  for (const auto& [name, value] : sorted) {
    add(name);
    add(value);
  }
  for (const auto& [name, producers] : inputs) {
    add("input");
    add(name);
    const dag::InputRef* ref = nullptr;
    for (const dag::InputRef& input : stage.inputs) {
      if (StrCat(input.name, "=", input.stage, ".", input.output) == name) ref = &input;
    }
    for (uint32_t producer : producers) {
      const dag::Stage& from = run_.pipeline.stages[run_.tasks[producer].stage];
      for (size_t o = 0; o < from.outputs.size(); ++o) {
        if (ref != nullptr && from.outputs[o].name == ref->output) {
          add(run_.tasks[producer].id);
          add(run_.tasks[producer].outputs[o].hash);
        }
      }
    }
  }
  for (const dag::OutputSpec& output : stage.outputs) {
    add("output");
    add(output.name);
  }
  return storage::HashBytes(key);
}

absl::StatusOr<std::optional<TaskCache::Hit>> TaskCache::FindHit(uint32_t t,
                                                                 const std::string& key) {
  const dag::Stage& stage = run_.pipeline.stages[run_.tasks[t].stage];
  find_cached_->Bind(1, key);
  std::vector<std::pair<int64_t, int64_t>> candidates;  // attempt, original attempt
  for (;;) {
    absl::StatusOr<bool> row = find_cached_->Step();
    if (!row.ok()) {
      find_cached_->Reset();
      return row.status();
    }
    if (!*row) break;
    candidates.emplace_back(find_cached_->Int(0), find_cached_->Int(1));
  }
  find_cached_->Reset();
  for (const auto& [attempt, original] : candidates) {
    Hit hit;
    hit.attempt_id = original;
    hit.paths.resize(stage.outputs.size());
    hit.hashes.resize(stage.outputs.size());
    hit.restore.resize(stage.outputs.size());
    size_t present = 0;
    cached_outputs_->Bind(1, attempt);
    for (;;) {
      absl::StatusOr<bool> row = cached_outputs_->Step();
      if (!row.ok()) {
        cached_outputs_->Reset();
        return row.status();
      }
      if (!*row) break;
      const std::string name = cached_outputs_->Text(0);
      for (size_t o = 0; o < stage.outputs.size(); ++o) {
        if (stage.outputs[o].name != name || !hit.paths[o].empty() || hit.restore[o]) continue;
        std::error_code error;
        const std::string path = cached_outputs_->Text(3);
        if (path.empty() || path[0] != '/') {
          // On an object store of this run's tiers (posix copies come
          // first): restored from there. Whether it is still there shows
          // when it is copied; if not, the task runs.
          const std::string tier_name = cached_outputs_->Text(4);
          for (uint8_t x = 0; x < run_.tiers.size(); ++x) {
            if (run_.tiers[x].posix || run_.tiers[x].config.name != tier_name) continue;
            const std::string prefix = run_.CopyUri(x, "");
            if (path.rfind(prefix, 0) != 0 || path.size() == prefix.size()) continue;
            hit.restore[o].emplace(x, path.substr(prefix.size()));
            hit.hashes[o] = cached_outputs_->Text(1);
            ++present;
          }
          continue;
        }
        fs::file_status status = fs::status(path, error);
        if (error || !fs::exists(status)) continue;
        if (fs::is_regular_file(status) &&
            fs::file_size(path, error) != static_cast<uintmax_t>(cached_outputs_->Int(2))) {
          continue;
        }
        hit.paths[o] = path;
        hit.hashes[o] = cached_outputs_->Text(1);
        ++present;
      }
    }
    cached_outputs_->Reset();
    if (present == stage.outputs.size()) return std::optional<Hit>(std::move(hit));
  }
  return std::optional<Hit>();
}

}  // namespace tierflow::scheduler::internal
