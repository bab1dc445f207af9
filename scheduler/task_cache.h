// The task cache: a task whose cache key (command, params, item, declared
// env, the content of its inputs and of the script files its argv names)
// matches an earlier successful attempt whose outputs still exist reuses
// those outputs instead of running. Key computes the key; FindHit finds
// such an attempt in the store, with where each output can be taken from.
//
// Thread-safety: one per run, used only by the thread that runs the
// engine's turn (engine.h, "Threading").
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "scheduler/cache_ingredients.h"
#include "scheduler/internal/run_model.h"
#include "scheduler/sqlite.h"

namespace tierflow::scheduler::internal {

class TaskCache {
 public:
  // `db` and `run` outlive the cache.
  TaskCache(Database& db, const RunModel& run) : db_(db), run_(run) {}
  absl::Status Prepare();

  // The cache key of `task` run with `argv` and `env`, reading `inputs`
  // ("NAME=STAGE.OUTPUT", the producing tasks), whose outputs' hashes are
  // known. Script files are hashed once per run. `ingredients`, when
  // given, gets what the key was made of.
  std::string Key(uint32_t task, const std::vector<std::string>& argv,
                  const std::vector<std::pair<std::string, std::string>>& env,
                  const std::vector<std::pair<std::string, std::vector<uint32_t>>>& inputs,
                  CacheIngredients* ingredients = nullptr);

  struct Hit {
    int64_t attempt_id = 0;           // the attempt that made the outputs
    std::string run_id;               // its run
    uint32_t number = 0;              // and its number there
    std::vector<std::string> paths;   // by output index
    std::vector<std::string> hashes;  // by output index
    // By output index, for an output kept only on an object store: its
    // tier and key there (restored into staging before the reuse).
    std::vector<std::optional<std::pair<uint8_t, std::string>>> restore;
  };
  // The newest of the last successful attempts with `key` whose every
  // output is still on a posix path of the same size, or on one of the
  // run's object-store tiers; none when there is none.
  absl::StatusOr<std::optional<Hit>> FindHit(uint32_t task, const std::string& key);

  // Whether the cache is looked up for an attempt, and if not, why.
  enum class Lookup {
    kLook,
    kForced,    // --rerun of its stage: keyed, not looked up
    kNoCache,   // --no-cache
    kStageOff,  // the stage's `cache: false`
    kRetry,     // an attempt after a failed one
  };
  // The cache decision for an attempt, with its reason: "cached from RUN
  // (attempt N)" for a hit, else why not ("no earlier run", "outputs
  // gone", MissReasons against the newest earlier success of the same
  // pipeline and task id, "forced (--rerun)", "cache: false", ...).
  struct Decision {
    std::string key;  // "": not keyed
    std::optional<Hit> hit;
    std::string reason;
    std::optional<std::string> ingredients;  // IngredientsToJson, when keyed
  };
  absl::StatusOr<Decision> Decide(
      uint32_t task, Lookup lookup, const std::vector<std::string>& argv,
      const std::vector<std::pair<std::string, std::string>>& env,
      const std::vector<std::pair<std::string, std::vector<uint32_t>>>& inputs);

 private:
  Database& db_;
  const RunModel& run_;
  ScriptHashes script_hashes_;
  std::optional<Statement> find_cached_;
  std::optional<Statement> cached_outputs_;
  std::optional<Statement> last_success_;
};

}  // namespace tierflow::scheduler::internal
