#include "scheduler/cache_explain.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>

#include "absl/strings/str_join.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/suggest.h"
#include "scheduler/cache_ingredients.h"

namespace tierflow::scheduler {
namespace {
namespace fs = std::filesystem;

// A success with the key whose outputs are all still there.
struct Found {
  std::string run_id;
  uint32_t number = 0;
  std::map<std::string, std::string> hashes;  // output name -> content hash
};

// The store's side of ExplainRun: the statements TaskCache uses, read only.
class Lookups {
 public:
  explicit Lookups(Database& db) : db_(db) {}

  absl::Status Prepare() {
    TF_ASSIGN_OR_RETURN(Statement find,
                        db_.Prepare("SELECT a.id, o.run_id, o.number FROM attempts a JOIN "
                                    "attempts o ON o.id = coalesce(a.cached_from, a.id) WHERE "
                                    "a.cache_key = ? AND a.state IN ('succeeded', 'cached') "
                                    "ORDER BY a.finished_at DESC LIMIT 8"));
    find_.emplace(std::move(find));
    TF_ASSIGN_OR_RETURN(Statement outputs,
                        db_.Prepare("SELECT a.name, a.content_hash, a.bytes, c.uri FROM "
                                    "artifacts a JOIN artifact_copies c ON c.artifact_id = a.id "
                                    "AND c.state = 'present' WHERE a.attempt_id = ?"));
    outputs_.emplace(std::move(outputs));
    // Before schema 14 no ingredients were recorded: the reason is then
    // only that the key changed.
    constexpr std::string_view kLast =
        "SELECT coalesce(a.cache_key, ''), %s FROM attempts a JOIN runs r ON r.id = a.run_id "
        "WHERE a.task_id = ? AND a.state IN ('succeeded', 'cached') AND r.pipeline_name = ? "
        "ORDER BY a.finished_at DESC LIMIT 1";
    auto query = [&](std::string_view column) {
      std::string text(kLast);
      text.replace(text.find("%s"), 2, column);
      return text;
    };
    absl::StatusOr<Statement> last = db_.Prepare(query("a.cache_ingredients"));
    if (!last.ok()) last = db_.Prepare(query("NULL"));
    if (!last.ok()) return last.status();
    last_.emplace(std::move(*last));
    return absl::OkStatus();
  }

  absl::StatusOr<std::optional<Found>> Find(const std::string& key,
                                            const std::vector<std::string>& outputs) {
    find_->Bind(1, key);
    std::vector<std::pair<int64_t, Found>> candidates;
    for (;;) {
      absl::StatusOr<bool> row = find_->Step();
      if (!row.ok()) {
        find_->Reset();
        return row.status();
      }
      if (!*row) break;
      candidates.push_back(
          {find_->Int(0), Found{find_->Text(1), static_cast<uint32_t>(find_->Int(2)), {}}});
    }
    find_->Reset();
    for (auto& [attempt, found] : candidates) {
      outputs_->Bind(1, attempt);
      for (;;) {
        absl::StatusOr<bool> row = outputs_->Step();
        if (!row.ok()) {
          outputs_->Reset();
          return row.status();
        }
        if (!*row) break;
        const std::string name = outputs_->Text(0);
        if (found.hashes.count(name) > 0) continue;
        const std::string uri = outputs_->Text(3);
        if (!uri.empty() && uri[0] == '/') {
          std::error_code error;
          fs::file_status status = fs::status(uri, error);
          if (error || !fs::exists(status)) continue;
          if (fs::is_regular_file(status) &&
              fs::file_size(uri, error) != static_cast<uintmax_t>(outputs_->Int(2))) {
            continue;
          }
        }
        found.hashes[name] = outputs_->Text(1);
      }
      outputs_->Reset();
      const bool all = std::all_of(outputs.begin(), outputs.end(), [&](const std::string& name) {
        return found.hashes.count(name) > 0;
      });
      if (all) return std::optional<Found>(std::move(found));
    }
    return std::optional<Found>();
  }

  // The newest earlier success of the task: (its key, its ingredients).
  absl::StatusOr<std::optional<std::pair<std::string, std::optional<std::string>>>> Last(
      const std::string& task_id, const std::string& pipeline) {
    last_->Bind(1, task_id).Bind(2, pipeline);
    absl::StatusOr<bool> row = last_->Step();
    std::optional<std::pair<std::string, std::optional<std::string>>> last;
    if (row.ok() && *row) {
      last.emplace(last_->Text(0), std::nullopt);
      if (!last_->IsNull(1)) last->second = last_->Text(1);
    }
    last_->Reset();
    if (!row.ok()) return row.status();
    return last;
  }

 private:
  Database& db_;
  std::optional<Statement> find_;
  std::optional<Statement> outputs_;
  std::optional<Statement> last_;
};

}  // namespace

absl::StatusOr<std::vector<bool>> ForcedStages(const dag::TaskGraph& graph,
                                               const std::vector<std::string>& rerun,
                                               bool downstream) {
  const dag::Pipeline& pipeline = graph.pipeline();
  std::vector<bool> forced(pipeline.stages.size(), false);
  std::vector<std::string> names;
  for (const dag::Stage& stage : pipeline.stages) names.push_back(stage.name);
  std::vector<uint32_t> todo;
  for (const std::string& name : rerun) {
    auto it = std::find(names.begin(), names.end(), name);
    if (it == names.end()) {
      return absl::InvalidArgumentError(StrCat("--rerun: no stage '", name, "' in pipeline ",
                                               pipeline.name, DidYouMean(name, names),
                                               "; its stages: ", absl::StrJoin(names, ", ")));
    }
    const uint32_t s = static_cast<uint32_t>(it - names.begin());
    if (!forced[s]) todo.push_back(s);
    forced[s] = true;
  }
  while (downstream && !todo.empty()) {
    const uint32_t s = todo.back();
    todo.pop_back();
    for (uint32_t child : graph.StageChildren(s)) {
      if (!forced[child]) todo.push_back(child);
      forced[child] = true;
    }
  }
  return forced;
}

absl::StatusOr<std::vector<TaskExplanation>> ExplainRun(Database* db, const dag::TaskGraph& graph,
                                                        const std::string& working_dir,
                                                        const ExplainOptions& options) {
  const dag::Pipeline& pipeline = graph.pipeline();
  TF_ASSIGN_OR_RETURN(std::vector<bool> forced,
                      ForcedStages(graph, options.rerun, options.rerun_downstream));
  std::optional<Lookups> lookups;
  if (db != nullptr) {
    lookups.emplace(*db);
    TF_RETURN_IF_ERROR(lookups->Prepare());
  }
  ScriptHashes scripts;
  // By task index: the hashes a reused task's outputs have; a task that
  // runs has none (its consumers' inputs "will be rebuilt").
  std::vector<std::optional<std::map<std::string, std::string>>> hashes(graph.tasks().size());
  std::vector<TaskExplanation> explained;
  explained.reserve(graph.tasks().size());
  for (const std::vector<uint32_t>& layer : graph.StageLayers()) {
    for (uint32_t s : layer) {
      const dag::Stage& stage = pipeline.stages[s];
      const uint32_t first = graph.FirstTask(s);
      for (uint32_t k = 0; k < stage.TaskCount(); ++k) {
        const dag::Task& task = graph.tasks()[first + k];
        TaskExplanation& out = explained.emplace_back();
        out.task_id = graph.TaskId(task);
        out.stage = stage.name;
        out.foreach = stage.IsForeach();
        if (!stage.cache) {
          out.reason = "cache: false";
          continue;
        }
        if (options.no_cache) {
          out.reason = "forced (--no-cache)";
          continue;
        }
        if (forced[s]) {
          out.reason = "forced (--rerun)";
          continue;
        }
        CacheIngredients now = MakeIngredients(stage, graph.ResolveArgv(task),
                                               graph.TaskEnvironment(task), working_dir, scripts);
        bool known = true;
        for (const dag::InputRef& ref : stage.inputs) {
          CacheIngredients::Input& input = now.inputs.emplace_back();
          input.name = StrCat(ref.name, "=", ref.stage, ".", ref.output);
          const int producer = pipeline.FindStage(ref.stage);
          if (producer < 0) continue;
          const uint32_t from = graph.FirstTask(static_cast<uint32_t>(producer));
          const uint32_t count = pipeline.stages[producer].TaskCount();
          if (pipeline.stages[producer].Dynamic() && count == 0) {
            // Its items are known once the run expands it: not before.
            known = false;
            input.producers.emplace_back(StrCat(ref.stage, kExpandedAtRunTime), "");
            continue;
          }
          // Item-wise: only the producer task of its own item.
          const uint32_t begin = ref.each ? from + std::min(task.item, count) : from;
          const uint32_t end = ref.each ? std::min(begin + 1, from + count) : from + count;
          for (uint32_t p = begin; p < end; ++p) {
            std::string hash;
            if (hashes[p]) {
              auto it = hashes[p]->find(ref.output);
              if (it != hashes[p]->end()) hash = it->second;
            }
            known = known && !hash.empty();
            input.producers.emplace_back(graph.TaskId(graph.tasks()[p]), std::move(hash));
          }
        }
        if (!lookups) {
          out.reason = "no earlier run";
          continue;
        }
        const std::string key = CacheKeyOf(pipeline.name, out.task_id, now);
        if (known) {
          TF_ASSIGN_OR_RETURN(std::optional<Found> found, lookups->Find(key, now.outputs));
          if (found) {
            out.reuse = true;
            out.cached_from_run = found->run_id;
            out.cached_from_attempt = found->number;
            out.reason = StrCat("cached from ", found->run_id, " (attempt ", found->number, ")");
            hashes[first + k] = std::move(found->hashes);
            continue;
          }
        }
        TF_ASSIGN_OR_RETURN(auto last, lookups->Last(out.task_id, pipeline.name));
        std::optional<CacheIngredients> before;
        if (last && last->second) before = IngredientsFromJson(*last->second);
        if (!last) {
          out.reason = "no earlier run";
        } else if (known && last->first == key) {
          out.reason = "outputs gone";
        } else if (!before) {
          out.reason = known ? "cache key changed (the earlier run did not record why)"
                             : "an input will be rebuilt";
        } else {
          std::vector<std::string> reasons = MissReasons(now, *before, pipeline);
          out.reason =
              reasons.empty() ? std::string("cache key changed") : absl::StrJoin(reasons, ", ");
        }
      }
    }
  }
  return explained;
}

}  // namespace tierflow::scheduler
