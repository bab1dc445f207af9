#include "scheduler/dynamic_expansion.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>
#include <utility>

#include "common/status.h"
#include "common/strings.h"
#include "common/yaml_fields.h"
#include "nlohmann/json.hpp"
#include "scheduler/internal/run_model.h"
#include "scheduler/replicas.h"

namespace tierflow::scheduler::internal {
namespace {

// Items name tasks (STAGE[ITEM]) and lines of `tierflow show`: no control
// characters. A list of many items is rejected at the first bad one.
std::string BadItem(std::string_view item) {
  if (item.empty()) return "an empty item";
  for (char c : item) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return StrCat("item ", Quote(item), " holds a control character");
    }
  }
  return "";
}

// Checks one more item: usable and not seen before. `where` is "line N" or
// "element N"; `first` maps each item to where it first was.
bool AddItem(std::string item, std::string where, ItemList& list,
             std::unordered_map<std::string, std::string>& first) {
  if (std::string bad = BadItem(item); !bad.empty()) {
    list.error = StrCat(where, ": ", bad, ": items name tasks");
    return false;
  }
  auto [at, fresh] = first.emplace(item, where);
  if (!fresh) {
    list.error = StrCat(where, ": duplicate item ", Quote(item), " (first at ", at->second,
                        "): task ids must be unique");
    return false;
  }
  list.items.push_back(std::move(item));
  return true;
}

// The loader's limit, in its words (dag/loader_foreach.cc).
bool WithinLimit(uint64_t count, ItemList& list) {
  if (count <= dag::kMaxForeachItems) return true;
  list.error = StrCat(count, " items: a foreach stage may have at most ", dag::kMaxForeachItems);
  return false;
}

void ParseLines(std::string_view text, ItemList& list,
                std::unordered_map<std::string, std::string>& first) {
  // Blank lines at the end (a trailing newline, or several) are no items;
  // an empty line before an item is an error (an item lost by accident).
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  const uint64_t lines = text.empty() ? 0 : std::count(text.begin(), text.end(), '\n') + 1;
  if (!WithinLimit(lines, list)) return;
  list.items.reserve(lines);
  first.reserve(lines);
  size_t line = 0;
  while (!text.empty()) {
    ++line;
    const size_t end = text.find('\n');
    std::string_view item = text.substr(0, end);
    if (!item.empty() && item.back() == '\r') item.remove_suffix(1);
    if (!AddItem(std::string(item), StrCat("line ", line), list, first)) return;
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
}

void ParseJson(std::string_view text, ItemList& list,
               std::unordered_map<std::string, std::string>& first) {
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    list.error = "not valid JSON: expected an array of strings, numbers or bools";
    return;
  }
  if (!doc.is_array()) {
    list.error = StrCat("expected a JSON array of strings, numbers or bools, got ",
                        doc.is_object() ? "an object" : "a single value");
    return;
  }
  if (!WithinLimit(doc.size(), list)) return;
  list.items.reserve(doc.size());
  first.reserve(doc.size());
  for (size_t i = 0; i < doc.size(); ++i) {
    const nlohmann::json& element = doc[i];
    std::string where = StrCat("element ", i);
    std::string item;
    if (element.is_string()) {
      item = element.get<std::string>();
    } else if (element.is_number() || element.is_boolean()) {
      item = element.dump();
    } else {
      list.error = StrCat(where, ": expected a string, number or bool, got ",
                          element.is_null()     ? "null"
                          : element.is_object() ? "an object"
                                                : "an array");
      return;
    }
    if (!AddItem(std::move(item), std::move(where), list, first)) return;
  }
}

// The dynamic stage `d` and the stages mapped over it, recursively
// (`foreach: {over: D}` sets foreach_over and dynamic): one set of items.
std::vector<uint32_t> StagesExpandedWith(const RunModel& run, uint32_t d) {
  std::vector<uint32_t> stages{d};
  for (size_t i = 0; i < stages.size(); ++i) {
    const std::string& name = run.pipeline.stages[stages[i]].name;
    for (uint32_t s = 0; s < run.pipeline.stages.size(); ++s) {
      const dag::Stage& stage = run.pipeline.stages[s];
      if (stage.Dynamic() && !stage.foreach_from && stage.foreach_over == name) stages.push_back(s);
    }
  }
  return stages;
}

// Appends `count` tasks of `stage` (its foreach set, or unset for the one
// task of a bad list), with their model records; returns the first.
uint32_t AppendTasks(RunModel& run, uint32_t s, uint32_t count) {
  const uint32_t first = run.graph->AppendStageTasks(s, count);
  const dag::Stage& stage = run.pipeline.stages[s];
  run.stages[s].item_components = ItemComponents(stage);
  run.tasks.resize(first + count);
  for (uint32_t i = 0; i < count; ++i) {
    TaskRec& rec = run.tasks[first + i];
    rec.stage = s;
    rec.item = i;
    rec.seq = first + i;
    rec.id = run.graph->TaskId(run.graph->tasks()[first + i]);
    rec.outputs.resize(stage.outputs.size());
  }
  return first;
}

// Placement of tasks added mid-run: every output written and kept on the
// tier the list was written on (a posix tier), inputs read where they are
// written; then their needs, and those of the tasks that read them.
void PlaceAppended(RunModel& run, uint32_t s, uint32_t first, uint32_t count, uint8_t tier) {
  const dag::Stage& stage = run.pipeline.stages[s];
  const size_t tiers = run.tiers.size();
  for (uint32_t t = first; t < first + count; ++t) {
    TaskRec& task = run.tasks[t];
    task.places.assign(stage.outputs.size(), OutputPlace{});
    for (OutputPlace& place : task.places) {
      place.home = tier;
      place.write = tier;
      place.copies.assign(tiers, CopyState::kNone);
      place.copy_ids.assign(tiers, 0);
      place.readers.assign(tiers, 0);
    }
    task.input_tiers.assign(stage.inputs.size(), 0);
    task.node_input_tiers.assign(stage.inputs.size(), kNoTier);
    for (size_t i = 0; i < stage.inputs.size(); ++i) {
      const int producer = run.pipeline.FindStage(stage.inputs[i].stage);
      const size_t o = run.OutputIndex(producer, stage.inputs[i].output);
      const dag::Stage& from = run.pipeline.stages[producer];
      if (o < from.outputs.size() && from.TaskCount() > 0) {
        task.input_tiers[i] = run.tasks[run.graph->FirstTask(producer)].places[o].write;
      }
    }
  }
}

// Task `t`, placed before `stage` had tasks, reads its inputs from `stage`
// where they are written (the appended tasks' rule, PlaceAppended), unless
// its worker copies them onto a node tier.
void ReadWhereWritten(RunModel& run, uint32_t t, uint32_t stage) {
  TaskRec& task = run.tasks[t];
  const dag::Stage& reader = run.pipeline.stages[task.stage];
  const dag::Stage& from = run.pipeline.stages[stage];
  for (size_t i = 0; i < reader.inputs.size(); ++i) {
    if (reader.inputs[i].stage != from.name || task.node_input_tiers[i] != kNoTier) continue;
    const size_t o = run.OutputIndex(stage, reader.inputs[i].output);
    if (o < from.outputs.size()) {
      task.input_tiers[i] = run.tasks[run.graph->FirstTask(stage)].places[o].write;
    }
  }
}

// Counts (+1) or uncounts (-1) task `t` as a reader of what it needs, as
// Replicas::CountReaders does for every unfinished task when a run starts.
void CountReads(RunModel& run, uint32_t t, int delta) {
  for (const Need& need : run.tasks[t].needs) {
    OutputPlace& place = run.tasks[need.task].places[need.output];
    place.readers[need.tier] += delta;
    if (need.node_tier != kNoTier) place.readers[need.node_tier] += delta;
  }
}

// The needs of task `t` collected again (its producers changed), with the
// readers counted for a task that has not ended.
void RecollectNeeds(RunModel& run, uint32_t t) {
  const bool counted = !IsTerminal(run.tasks[t].state);
  for (const Need& need : run.tasks[t].needs) --run.tasks[need.task].places[need.output].consumers;
  if (counted) CountReads(run, t, -1);
  CollectTaskNeeds(run, t);
  if (counted) CountReads(run, t, +1);
}

absl::StatusOr<std::string> ReadListFile(const std::string& path) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) {
    return absl::InvalidArgumentError("it is a folder: a list is one file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(StrCat("cannot read the list ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

ItemList ParseItemList(std::string_view text, dag::ItemListFormat format) {
  ItemList list;
  std::unordered_map<std::string, std::string> first;
  if (format == dag::ItemListFormat::kJson) {
    ParseJson(text, list, first);
  } else {
    ParseLines(text, list, first);
  }
  if (list.error.empty() && list.items.empty()) {
    list.error = "no items: a foreach stage needs at least one";
  }
  if (!list.error.empty()) list.items.clear();
  return list;
}

absl::StatusOr<ExpansionOutcome> ExpandAfter(RunModel& run, RunWriter& writer, uint32_t producer) {
  ExpansionOutcome outcome;
  const uint32_t from_stage = run.tasks[producer].stage;
  const std::string& from_name = run.pipeline.stages[from_stage].name;
  for (uint32_t d = 0; d < run.pipeline.stages.size(); ++d) {
    dag::Stage& stage = run.pipeline.stages[d];
    if (!stage.foreach_from || stage.foreach_from->stage != from_name) continue;
    const uint32_t at = run.graph->FirstTask(d);
    if (at < run.tasks.size() && run.tasks[at].stage == d) continue;  // expanded before
    const size_t o = run.OutputIndex(from_stage, stage.foreach_from->output);
    // Copies: appending tasks moves run.tasks.
    const ArtifactRec list_artifact = run.tasks[producer].outputs[o];
    const uint8_t list_tier = run.tasks[producer].places[o].write;
    const std::string path =
        list_artifact.path.empty() ? run.OutputPath(producer, o) : list_artifact.path;
    const std::string list_name =
        StrCat(stage.foreach_from->stage, ".", stage.foreach_from->output);
    absl::StatusOr<std::string> text = ReadListFile(path);
    ItemList items;
    if (text.ok()) {
      items = ParseItemList(*text, stage.foreach_from->format);
    } else {
      items.error = std::string(text.status().message());
    }
    if (!items.error.empty()) {
      // One task stands for the stage: it fails with the reason, and the
      // stages after it are upstream_failed.
      const uint32_t first = AppendTasks(run, d, 1);
      PlaceAppended(run, d, first, 1, list_tier);
      TF_RETURN_IF_ERROR(
          writer.CreateTasks(run.run_id, {NewTask{.id = run.tasks[first].id,
                                                  .seq = run.tasks[first].seq,
                                                  .stage = stage.name,
                                                  .kind = dag::StageKindName(stage.kind),
                                                  .item = std::nullopt,
                                                  .item_index = 0,
                                                  .layer = run.graph->StageLayer(d)}}));
      outcome.failed.push_back(
          {first, StrCat("the list ", list_name, " (", path, ") written by task ",
                         Quote(run.tasks[producer].id), " cannot be expanded: ", items.error)});
      continue;
    }
    const auto count = static_cast<uint32_t>(items.items.size());
    for (uint32_t s : StagesExpandedWith(run, d)) {
      run.pipeline.stages[s].foreach = items.items;
      const uint32_t first = AppendTasks(run, s, count);
      PlaceAppended(run, s, first, count, list_tier);
      std::vector<NewTask> rows;
      rows.reserve(count);
      const dag::Stage& expanded = run.pipeline.stages[s];
      for (uint32_t i = 0; i < count; ++i) {
        rows.push_back(NewTask{.id = run.tasks[first + i].id,
                               .seq = run.tasks[first + i].seq,
                               .stage = expanded.name,
                               .kind = dag::StageKindName(expanded.kind),
                               .item = (*expanded.foreach)[i],
                               .item_index = i,
                               .layer = run.graph->StageLayer(s)});
      }
      TF_RETURN_IF_ERROR(writer.CreateTasks(run.run_id, rows));
      TF_RETURN_IF_ERROR(
          writer.AddEvent(run.tasks[producer].id, 0, "stage_expanded",
                          StrCat("stage ", Quote(expanded.name), " expanded into ", count, " task",
                                 count == 1 ? "" : "s", " from ", list_name, " (artifact #",
                                 list_artifact.id, ", ", list_artifact.hash, ")")));
      outcome.expanded.push_back({s, first, count});
    }
  }
  // Needs: the new tasks', then those of every task reading an expanded
  // stage (a gather collected none while the stage had no tasks).
  for (const Expansion& e : outcome.expanded) {
    for (uint32_t t = e.first; t < e.first + e.count; ++t) {
      CollectTaskNeeds(run, t);
      CountReads(run, t, +1);
    }
  }
  for (const Expansion& e : outcome.expanded) {
    for (uint32_t child : run.graph->StageChildren(e.stage)) {
      const uint32_t first = run.graph->FirstTask(child);
      for (uint32_t i = 0; i < run.pipeline.stages[child].TaskCount(); ++i) {
        bool fresh = false;
        for (const Expansion& other : outcome.expanded) {
          fresh = fresh || (first + i >= other.first && first + i < other.first + other.count);
        }
        if (fresh) continue;
        ReadWhereWritten(run, first + i, e.stage);
        RecollectNeeds(run, first + i);
      }
    }
  }
  return outcome;
}

absl::Status ExpandFromStore(Database& db, RunModel& run) {
  for (uint32_t d = 0; d < run.pipeline.stages.size(); ++d) {
    if (!run.pipeline.stages[d].foreach_from) continue;
    const std::string name = run.pipeline.stages[d].name;
    // A bad list's one task: expanded again from the kept list.
    TF_ASSIGN_OR_RETURN(Statement drop,
                        db.Prepare("DELETE FROM tasks WHERE run_id = ? AND stage = ? AND item IS "
                                   "NULL AND attempts = 0"));
    drop.Bind(1, run.run_id).Bind(2, name);
    TF_RETURN_IF_ERROR(drop.Run());
    TF_ASSIGN_OR_RETURN(Statement rows,
                        db.Prepare("SELECT item FROM tasks WHERE run_id = ? AND stage = ? AND "
                                   "item IS NOT NULL ORDER BY item_index"));
    rows.Bind(1, run.run_id).Bind(2, name);
    std::vector<std::string> items;
    for (;;) {
      TF_ASSIGN_OR_RETURN(bool row, rows.Step());
      if (!row) break;
      items.push_back(rows.Text(0));
    }
    rows.Reset();
    if (items.empty()) continue;
    const auto count = static_cast<uint32_t>(items.size());
    for (uint32_t s : StagesExpandedWith(run, d)) {
      run.pipeline.stages[s].foreach = items;
      AppendTasks(run, s, count);
      run.stages[s].unfinished = count;
    }
  }
  return absl::OkStatus();
}

}  // namespace tierflow::scheduler::internal
