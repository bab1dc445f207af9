#include "scheduler/cache_ingredients.h"

#include <algorithm>
#include <filesystem>
#include <set>
#include <sstream>

#include "absl/strings/str_join.h"
#include "common/strings.h"
#include "nlohmann/json.hpp"
#include "storage_adapters/local_artifact.h"

namespace tierflow::scheduler {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;

bool IsRunPath(const std::string& name) {
  return name.rfind("TIERFLOW_INPUT_", 0) == 0 || name.rfind("TIERFLOW_OUTPUT_", 0) == 0 ||
         name.rfind("TIERFLOW_STREAM_", 0) == 0 || name == "TIERFLOW_CHECKPOINT_DIR";
}

// "xxh3:0123456789ab…" -> "0123456789ab": enough to tell two apart.
std::string ShortHash(const std::string& hash) {
  const size_t colon = hash.find(':');
  std::string hex = colon == std::string::npos ? hash : hash.substr(colon + 1);
  return hex.substr(0, 12);
}

// "NAME=STAGE.OUTPUT" -> "NAME".
std::string InputName(const std::string& input) { return input.substr(0, input.find('=')); }

std::string InputReason(const CacheIngredients::Input& now, const CacheIngredients::Input* before) {
  const std::string name = InputName(now.name);
  for (const auto& producer : now.producers) {
    if (producer.first.ends_with(kExpandedAtRunTime)) {
      return StrCat("input ", name, " comes from ", producer.first);
    }
    if (producer.second.empty()) return StrCat("input ", name, " will be rebuilt");
  }
  if (before == nullptr) return StrCat("input ", name, " added");
  std::map<std::string, std::string> old(before->producers.begin(), before->producers.end());
  if (old.size() != now.producers.size()) {
    return StrCat("input ", name, " changed (", old.size(), " -> ", now.producers.size(),
                  " items)");
  }
  size_t changed = 0;
  std::string first;
  for (const auto& [task, hash] : now.producers) {
    auto it = old.find(task);
    if (it == old.end()) {
      ++changed;
      if (first.empty()) first = StrCat(task, " is new");
    } else if (it->second != hash) {
      ++changed;
      if (first.empty()) {
        first = StrCat(now.producers.size() > 1 ? StrCat(task, ": ") : std::string(), "hash ",
                       ShortHash(it->second), " -> ", ShortHash(hash));
      }
    }
  }
  if (changed == 0) return "";
  return StrCat("input ", name, " changed (", first,
                changed > 1 ? StrCat(", and ", changed - 1, " more") : std::string(), ")");
}

}  // namespace

const std::string& ScriptHashes::Of(const std::string& path) {
  auto known = hashes_.find(path);
  if (known != hashes_.end()) return known->second;
  std::error_code error;
  std::string hash;
  if (fs::is_regular_file(path, error)) {
    absl::StatusOr<storage::ContentDigest> digest = storage::HashArtifact(path);
    if (digest.ok()) hash = digest->hash;
  }
  return hashes_.emplace(path, std::move(hash)).first->second;
}

CacheIngredients MakeIngredients(const dag::Stage& stage, const std::vector<std::string>& argv,
                                 const std::vector<std::pair<std::string, std::string>>& env,
                                 const std::string& working_dir, ScriptHashes& scripts) {
  CacheIngredients made;
  made.shell = stage.run.is_shell();
  if (made.shell) {
    made.command.push_back(stage.run.shell);
  } else {
    made.command = argv;
  }
  // Script files the command names (python3 train.py): their content is
  // part of what the task does, so editing one invalidates the cache.
  // (A shell script's argv, when it is run directly, holds the same words.)
  std::vector<std::string> words;
  if (made.shell) {
    std::istringstream split(stage.run.shell);
    for (std::string word; split >> word;) words.push_back(word);
  } else {
    words = argv;
  }
  for (const std::string& word : words) {
    if (word.empty() || word.size() > 4096) continue;
    const std::string& hash = scripts.Of((fs::path(working_dir) / word).string());
    if (!hash.empty()) made.scripts.emplace_back(word, hash);
  }
  for (const auto& entry : env) {
    if (!IsRunPath(entry.first)) made.env.push_back(entry);
  }
  std::sort(made.env.begin(), made.env.end());
  for (const dag::OutputSpec& output : stage.outputs) made.outputs.push_back(output.name);
  return made;
}

std::string CacheKeyOf(const std::string& pipeline, const std::string& task_id,
                       const CacheIngredients& ingredients) {
  // The layout of tierflow-cache-v1: keys recorded before the ingredients
  // were kept apart still match.
  std::string key = "tierflow-cache-v1";
  auto add = [&](std::string_view field) {
    key += '\0';
    key += field;
  };
  add(pipeline);
  add(task_id);
  add(ingredients.shell ? "shell" : "argv");
  for (const std::string& part : ingredients.command) add(part);
  for (const auto& [word, hash] : ingredients.scripts) {
    add("script");
    add(word);
    add(hash);
  }
  for (const auto& [name, value] : ingredients.env) {
    add(name);
    add(value);
  }
  for (const CacheIngredients::Input& input : ingredients.inputs) {
    add("input");
    add(input.name);
    for (const auto& [task, hash] : input.producers) {
      add(task);
      add(hash);
    }
  }
  for (const std::string& output : ingredients.outputs) {
    add("output");
    add(output);
  }
  return storage::HashBytes(key);
}

std::string IngredientsToJson(const CacheIngredients& ingredients) {
  json out = json::object();
  if (ingredients.shell) {
    out["shell"] = ingredients.command.empty() ? std::string() : ingredients.command[0];
  } else {
    out["argv"] = ingredients.command;
  }
  if (!ingredients.scripts.empty()) out["scripts"] = ingredients.scripts;
  json env = json::object();
  for (const auto& [name, value] : ingredients.env) env[name] = value;
  out["env"] = std::move(env);
  if (!ingredients.inputs.empty()) {
    json inputs = json::object();
    for (const CacheIngredients::Input& input : ingredients.inputs) {
      inputs[input.name] = input.producers;
    }
    out["inputs"] = std::move(inputs);
  }
  out["outputs"] = ingredients.outputs;
  return out.dump();
}

std::optional<CacheIngredients> IngredientsFromJson(const std::string& text) {
  json in = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!in.is_object()) return std::nullopt;
  try {
    CacheIngredients read;
    if (in.contains("shell")) {
      read.shell = true;
      read.command.push_back(in.at("shell").get<std::string>());
    } else {
      read.command = in.value("argv", std::vector<std::string>());
    }
    read.scripts = in.value("scripts", std::vector<std::pair<std::string, std::string>>());
    const json env = in.value("env", json::object());
    for (const auto& [name, value] : env.items()) {
      read.env.emplace_back(name, value.get<std::string>());
    }
    const json inputs = in.value("inputs", json::object());
    for (const auto& [name, producers] : inputs.items()) {
      read.inputs.push_back(
          {name, producers.get<std::vector<std::pair<std::string, std::string>>>()});
    }
    read.outputs = in.value("outputs", std::vector<std::string>());
    return read;
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

std::string ParamOfVariable(const std::string& variable, const dag::Pipeline& pipeline) {
  constexpr std::string_view kPrefix = "TIERFLOW_PARAM_";
  if (variable.rfind(kPrefix, 0) != 0) return "";
  const std::string upper = variable.substr(kPrefix.size());
  for (const dag::Param& param : pipeline.params) {
    if (AsciiUpper(param.name) == upper) return param.name;
  }
  std::string lower = upper;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower;
}

std::vector<std::string> MissReasons(const CacheIngredients& now, const CacheIngredients& before,
                                     const dag::Pipeline& pipeline) {
  std::vector<std::string> reasons;
  if (now.shell != before.shell || now.command != before.command) {
    reasons.push_back("command changed");
  }
  std::map<std::string, std::string> old_env(before.env.begin(), before.env.end());
  std::map<std::string, std::string> new_env(now.env.begin(), now.env.end());
  std::set<std::string> names;
  for (const auto& entry : old_env) names.insert(entry.first);
  for (const auto& entry : new_env) names.insert(entry.first);
  std::vector<std::string> env_changed;
  for (const std::string& name : names) {
    auto was = old_env.find(name);
    auto is = new_env.find(name);
    if (was != old_env.end() && is != new_env.end() && was->second == is->second) continue;
    if (std::string param = ParamOfVariable(name, pipeline); !param.empty()) {
      reasons.push_back(StrCat("param ", param, " changed"));
    } else {
      env_changed.push_back(name);
    }
  }
  std::map<std::string, std::string> old_scripts(before.scripts.begin(), before.scripts.end());
  std::set<std::string> scripts_seen;
  for (const auto& [word, hash] : now.scripts) {
    auto was = old_scripts.find(word);
    if (was != old_scripts.end() && was->second == hash) continue;
    if (scripts_seen.insert(word).second) reasons.push_back(StrCat("script ", word, " changed"));
  }
  for (const CacheIngredients::Input& input : now.inputs) {
    const CacheIngredients::Input* old = nullptr;
    for (const CacheIngredients::Input& candidate : before.inputs) {
      if (candidate.name == input.name) old = &candidate;
    }
    if (std::string reason = InputReason(input, old); !reason.empty()) {
      reasons.push_back(std::move(reason));
    }
  }
  if (!env_changed.empty()) {
    reasons.push_back(StrCat("env changed (", absl::StrJoin(env_changed, ", "), ")"));
  }
  if (now.outputs != before.outputs) reasons.push_back("outputs changed");
  return reasons;
}

}  // namespace tierflow::scheduler
