#include "scheduler/task_cache.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/str_join.h"
#include "common/status.h"
#include "common/strings.h"
#include "storage_adapters/local_artifact.h"

namespace tierflow::scheduler::internal {
namespace fs = std::filesystem;

absl::Status TaskCache::Prepare() {
  TF_ASSIGN_OR_RETURN(Statement find,
                      db_.Prepare("SELECT a.id, o.id, o.run_id, o.number FROM attempts a JOIN "
                                  "attempts o ON o.id = coalesce(a.cached_from, a.id) WHERE "
                                  "a.cache_key = ? AND a.state IN ('succeeded', 'cached') ORDER "
                                  "BY a.finished_at DESC LIMIT 8"));
  find_cached_.emplace(std::move(find));
  TF_ASSIGN_OR_RETURN(Statement outputs,
                      db_.Prepare("SELECT a.name, a.content_hash, a.bytes, c.uri, c.tier FROM "
                                  "artifacts a JOIN artifact_copies c ON c.artifact_id = a.id AND "
                                  "c.state = 'present' WHERE a.attempt_id = ? ORDER BY "
                                  "substr(c.uri, 1, 1) = '/' DESC, c.role = 'home' DESC"));
  cached_outputs_.emplace(std::move(outputs));
  TF_ASSIGN_OR_RETURN(Statement last,
                      db_.Prepare("SELECT coalesce(a.cache_key, ''), a.cache_ingredients FROM "
                                  "attempts a JOIN runs r ON r.id = a.run_id WHERE a.task_id = ? "
                                  "AND a.state IN ('succeeded', 'cached') AND r.pipeline_name = ? "
                                  "ORDER BY a.finished_at DESC LIMIT 1"));
  last_success_.emplace(std::move(last));
  return absl::OkStatus();
}

std::string TaskCache::Key(uint32_t t, const std::vector<std::string>& argv,
                           const std::vector<std::pair<std::string, std::string>>& env,
                           const std::vector<std::pair<std::string, std::vector<uint32_t>>>& inputs,
                           CacheIngredients* ingredients) {
  const TaskRec& task = run_.tasks[t];
  const dag::Stage& stage = run_.pipeline.stages[task.stage];
  CacheIngredients made = MakeIngredients(stage, argv, env, run_.working_dir, script_hashes_);
  for (const auto& [name, producers] : inputs) {
    CacheIngredients::Input& input = made.inputs.emplace_back();
    input.name = name;
    const dag::InputRef* ref = nullptr;
    for (const dag::InputRef& candidate : stage.inputs) {
      if (StrCat(candidate.name, "=", candidate.stage, ".", candidate.output) == name) {
        ref = &candidate;
      }
    }
    for (uint32_t producer : producers) {
      const dag::Stage& from = run_.pipeline.stages[run_.tasks[producer].stage];
      for (size_t o = 0; o < from.outputs.size(); ++o) {
        if (ref != nullptr && from.outputs[o].name == ref->output) {
          input.producers.emplace_back(run_.tasks[producer].id,
                                       run_.tasks[producer].outputs[o].hash);
        }
      }
    }
  }
  std::string key = CacheKeyOf(run_.pipeline.name, task.id, made);
  if (ingredients != nullptr) *ingredients = std::move(made);
  return key;
}

absl::StatusOr<std::optional<TaskCache::Hit>> TaskCache::FindHit(uint32_t t,
                                                                 const std::string& key) {
  const dag::Stage& stage = run_.pipeline.stages[run_.tasks[t].stage];
  find_cached_->Bind(1, key);
  struct Candidate {
    int64_t attempt;   // with the key
    int64_t original;  // that made the outputs
    std::string run_id;
    uint32_t number;
  };
  std::vector<Candidate> candidates;
  for (;;) {
    absl::StatusOr<bool> row = find_cached_->Step();
    if (!row.ok()) {
      find_cached_->Reset();
      return row.status();
    }
    if (!*row) break;
    candidates.push_back({find_cached_->Int(0), find_cached_->Int(1), find_cached_->Text(2),
                          static_cast<uint32_t>(find_cached_->Int(3))});
  }
  find_cached_->Reset();
  for (const Candidate& candidate : candidates) {
    const int64_t attempt = candidate.attempt;
    Hit hit;
    hit.attempt_id = candidate.original;
    hit.run_id = candidate.run_id;
    hit.number = candidate.number;
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

absl::StatusOr<TaskCache::Decision> TaskCache::Decide(
    uint32_t t, Lookup lookup, const std::vector<std::string>& argv,
    const std::vector<std::pair<std::string, std::string>>& env,
    const std::vector<std::pair<std::string, std::vector<uint32_t>>>& inputs) {
  Decision decision;
  switch (lookup) {
    case Lookup::kNoCache:
      decision.reason = "forced (--no-cache)";
      return decision;
    case Lookup::kStageOff:
      decision.reason = "cache: false";
      return decision;
    case Lookup::kRetry:
      decision.reason = "not looked up: an attempt after a failed one runs";
      return decision;
    case Lookup::kForced:
    case Lookup::kLook:
      break;
  }
  const TaskRec& task = run_.tasks[t];
  CacheIngredients ingredients;
  decision.key = Key(t, argv, env, inputs, &ingredients);
  decision.ingredients = IngredientsToJson(ingredients);
  if (lookup == Lookup::kForced) {
    decision.reason = "forced (--rerun)";
    return decision;
  }
  TF_ASSIGN_OR_RETURN(decision.hit, FindHit(t, decision.key));
  if (decision.hit) {
    decision.reason =
        StrCat("cached from ", decision.hit->run_id, " (attempt ", decision.hit->number, ")");
    return decision;
  }
  last_success_->Bind(1, task.id).Bind(2, run_.pipeline.name);
  absl::StatusOr<bool> row = last_success_->Step();
  if (!row.ok()) {
    last_success_->Reset();
    return row.status();
  }
  if (!*row) {
    decision.reason = "no earlier run";
  } else if (last_success_->Text(0) == decision.key) {
    decision.reason = "outputs gone";
  } else if (last_success_->IsNull(1)) {
    decision.reason = "cache key changed (the earlier run did not record why)";
  } else if (std::optional<CacheIngredients> before = IngredientsFromJson(last_success_->Text(1));
             !before) {
    decision.reason = "cache key changed";
  } else {
    std::vector<std::string> reasons = MissReasons(ingredients, *before, run_.pipeline);
    decision.reason =
        reasons.empty() ? std::string("cache key changed") : absl::StrJoin(reasons, ", ");
  }
  last_success_->Reset();
  return decision;
}

}  // namespace tierflow::scheduler::internal
