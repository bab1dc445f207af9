// What a task's cache key is made of, kept apart so that a miss can say
// why: the command, the script files it names (with their content hashes),
// its environment without the run's own paths, and its inputs with their
// producers' content hashes. CacheKeyOf hashes them into the key
// (TaskCache); the JSON form is recorded with each attempt
// (attempts.cache_ingredients, schema 14) and MissReasons compares two.
//
// Thread-safety: plain values and pure functions; ScriptHashes is used by
// one thread at a time.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dag/pipeline.h"

namespace tierflow::scheduler {

struct CacheIngredients {
  bool shell = false;
  std::vector<std::string> command;  // the shell text (one element), or the argv
  // The command's words that name a file of the working folder, in order
  // (repeats kept), with the file's content hash.
  std::vector<std::pair<std::string, std::string>> scripts;
  // The environment sorted by name, without TIERFLOW_INPUT_/OUTPUT_/
  // STREAM_* and TIERFLOW_CHECKPOINT_DIR (they name this run's folders).
  std::vector<std::pair<std::string, std::string>> env;
  struct Input {
    std::string name;  // "NAME=STAGE.OUTPUT"
    // (producing task id, content hash of its output); "" when not known yet.
    std::vector<std::pair<std::string, std::string>> producers;
  };
  std::vector<Input> inputs;
  std::vector<std::string> outputs;  // the stage's output names
};

// Script files hashed once each (path -> hash, "" for no regular file).
class ScriptHashes {
 public:
  const std::string& Of(const std::string& path);

 private:
  std::map<std::string, std::string> hashes_;
};

// The ingredients of a task of `stage` run with `argv` (or the stage's
// shell text) and `env` in `working_dir`, without its inputs (AddInput).
CacheIngredients MakeIngredients(const dag::Stage& stage, const std::vector<std::string>& argv,
                                 const std::vector<std::pair<std::string, std::string>>& env,
                                 const std::string& working_dir, ScriptHashes& scripts);

// The task's cache key: XXH3 of the pipeline name, task id and ingredients.
std::string CacheKeyOf(const std::string& pipeline, const std::string& task_id,
                       const CacheIngredients& ingredients);

// Compact JSON, and back; FromJson of text that is not such JSON is empty.
std::string IngredientsToJson(const CacheIngredients& ingredients);
std::optional<CacheIngredients> IngredientsFromJson(const std::string& text);

// A dry run's producer of an input from a dynamic stage not expanded yet
// ("STAGE (expanded at run time)", no hash): its items are not known.
inline constexpr std::string_view kExpandedAtRunTime = " (expanded at run time)";

// Why `now` differs from `before`, in this order, each at most once:
// "command changed", "param X changed" (X as `pipeline` names it),
// "script F changed", "input Y changed (hash A -> B)" or "input Y will be
// rebuilt" (a producer's hash is not known yet; "input Y comes from STAGE
// (expanded at run time)" for a dynamic stage), "env changed (NAME)",
// "outputs changed". Empty when they are the same.
std::vector<std::string> MissReasons(const CacheIngredients& now, const CacheIngredients& before,
                                     const dag::Pipeline& pipeline);

// The param a TIERFLOW_PARAM_* variable carries, as `pipeline` names it
// (else the suffix in lower case); "" for any other variable.
std::string ParamOfVariable(const std::string& variable, const dag::Pipeline& pipeline);

}  // namespace tierflow::scheduler
