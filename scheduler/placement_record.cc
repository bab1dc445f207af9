#include "scheduler/placement_record.h"

#include <map>
#include <string>
#include <utility>

#include "common/durability.h"
#include "common/status.h"
#include "common/strings.h"
#include "nlohmann/json.hpp"

namespace tierflow::scheduler {
namespace {

using Json = nlohmann::json;

constexpr std::string_view kRun = "run";
constexpr std::string_view kOutput = "output";
constexpr std::string_view kInput = "input";
constexpr std::string_view kCheckpoint = "checkpoint";

// A task's stage: its id up to the foreach item ("stage[item]").
std::string_view StageOf(std::string_view task_id) { return task_id.substr(0, task_id.find('[')); }

// Where a decision is written: under its stage when it is the stage's
// first of that name (every item of a foreach is placed alike, so a run of
// 100,000 items writes one row, not 100,000), under its own task when it
// differs from that one. `first` remembers the stage's decisions by name.
template <typename Decision>
std::string_view RowTask(
    const Decision& decision, std::string_view name,
    std::map<std::pair<std::string_view, std::string_view>, const Decision*>& first, bool& write) {
  const std::string_view stage = StageOf(decision.task);
  auto [it, inserted] = first.try_emplace({stage, name}, &decision);
  if (inserted) {
    write = true;
    return stage;
  }
  Decision same = *it->second;
  same.task = decision.task;
  write = !(same == decision);
  return decision.task;
}

}  // namespace

absl::Status RecordPlacement(Database& db, std::string_view run_id, const Placement& placement,
                             const std::vector<CheckpointPlacement>& checkpoints) {
  TF_ASSIGN_OR_RETURN(
      Statement insert,
      db.Prepare("INSERT OR IGNORE INTO placements(run_id, task_id, kind, name, seq, tier, "
                 "detail_json, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"));
  int64_t seq = 0;
  // Names come from YAML and may hold anything: FlatJson replaces what is
  // not UTF-8, never throws, and costs a fraction of building a Json per row.
  auto write = [&](std::string_view task, std::string_view kind, std::string_view name,
                   std::string_view tier, FlatJson& detail, std::string_view reason) {
    insert.Bind(1, run_id)
        .Bind(2, task)
        .Bind(3, kind)
        .Bind(4, name)
        .Bind(5, seq++)
        .Bind(6, tier)
        .Bind(7, detail.Finish())
        .Bind(8, reason);
    return insert.Run();
  };
  FlatJson detail;
  TF_RETURN_IF_ERROR(write("", kRun, "", "",
                           detail.Number("outputs", uint64_t{placement.outputs.size()})
                               .Number("inputs", uint64_t{placement.inputs.size()})
                               .Number("checkpoints", uint64_t{checkpoints.size()}),
                           "placed when the run started"));
  std::map<std::pair<std::string_view, std::string_view>, const OutputPlacement*> outputs;
  for (const OutputPlacement& o : placement.outputs) {
    bool differs = false;
    const std::string_view task = RowTask(o, o.output, outputs, differs);
    if (!differs) continue;
    TF_RETURN_IF_ERROR(write(task, kOutput, o.output, o.home,
                             detail.Number("bytes", uint64_t{o.bytes})
                                 .Bool("bytes_assumed", o.bytes_assumed)
                                 .String("needs", DurabilityName(o.needs))
                                 .String("write_tier", o.write_tier)
                                 .Number("write_seconds", o.write_seconds)
                                 .Number("write_back_seconds", o.write_back_seconds),
                             o.reason));
  }
  std::map<std::pair<std::string_view, std::string_view>, const InputPlacement*> inputs;
  for (const InputPlacement& i : placement.inputs) {
    bool differs = false;
    const std::string_view task = RowTask(i, i.input, inputs, differs);
    if (!differs) continue;
    TF_RETURN_IF_ERROR(write(task, kInput, i.input, i.working,
                             detail.String("producer_task", i.producer_task)
                                 .String("output", i.output)
                                 .String("home", i.home)
                                 .String("source", i.source)
                                 .Number("read_seconds", i.read_seconds)
                                 .Number("copy_seconds", i.copy_seconds)
                                 .Number("home_read_seconds", i.home_read_seconds),
                             i.reason));
  }
  for (const CheckpointPlacement& c : checkpoints) {
    TF_RETURN_IF_ERROR(write(
        c.stage, kCheckpoint, "", c.write_tier,
        detail.String("node_tier", c.node_tier).String("flush_tier", c.flush_tier), c.reason));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<RecordedTaskPlacement>> LoadTaskPlacement(Database& db,
                                                                       std::string_view run_id,
                                                                       std::string_view task_id) {
  // The run's marker (task ''), the rows of the task's stage and those of
  // the task itself: three ranges of the primary key.
  TF_ASSIGN_OR_RETURN(Statement rows,
                      db.Prepare("SELECT task_id, kind, name, tier, detail_json, reason FROM "
                                 "placements WHERE run_id = ? AND task_id IN ('', ?, ?) "
                                 "ORDER BY seq"));
  const std::string_view stage = StageOf(task_id);
  rows.Bind(1, run_id).Bind(2, stage).Bind(3, task_id);
  bool recorded = false;
  RecordedTaskPlacement result;
  // A task's own row of a name replaces its stage's (RowTask).
  std::map<std::string, size_t> output_at;
  std::map<std::string, size_t> input_at;
  for (;;) {
    TF_ASSIGN_OR_RETURN(bool row, rows.Step());
    if (!row) break;
    const std::string task = rows.Text(0);
    const std::string kind = rows.Text(1);
    const std::string name = rows.Text(2);
    const Json detail = Json::parse(rows.Text(4), nullptr, /*allow_exceptions=*/false);
    const absl::Status unreadable = absl::DataLossError(
        StrCat("run ", run_id, ": the recorded placement of ", task.empty() ? "the run" : task,
               " (", kind, " ", name, ") is not readable"));
    if (!detail.is_object()) return unreadable;
    try {
      if (kind == kRun) {
        recorded = true;
      } else if (kind == kOutput) {
        auto [at, added] = output_at.try_emplace(name, result.placement.outputs.size());
        if (added) result.placement.outputs.emplace_back();
        OutputPlacement& o = result.placement.outputs[at->second];
        o.task = std::string(task_id);
        o.output = name;
        o.home = rows.Text(3);
        o.reason = rows.Text(5);
        o.bytes = detail.at("bytes").get<uint64_t>();
        o.bytes_assumed = detail.at("bytes_assumed").get<bool>();
        std::optional<Durability> needs = ParseDurability(detail.at("needs").get<std::string>());
        if (!needs) return unreadable;
        o.needs = *needs;
        o.write_tier = detail.at("write_tier").get<std::string>();
        o.write_seconds = detail.at("write_seconds").get<double>();
        o.write_back_seconds = detail.at("write_back_seconds").get<double>();
      } else if (kind == kInput) {
        auto [at, added] = input_at.try_emplace(name, result.placement.inputs.size());
        if (added) result.placement.inputs.emplace_back();
        InputPlacement& i = result.placement.inputs[at->second];
        i.task = std::string(task_id);
        i.input = name;
        i.working = rows.Text(3);
        i.reason = rows.Text(5);
        i.producer_task = detail.at("producer_task").get<std::string>();
        i.output = detail.at("output").get<std::string>();
        i.home = detail.at("home").get<std::string>();
        i.source = detail.at("source").get<std::string>();
        i.read_seconds = detail.at("read_seconds").get<double>();
        i.copy_seconds = detail.at("copy_seconds").get<double>();
        i.home_read_seconds = detail.at("home_read_seconds").get<double>();
      } else if (kind == kCheckpoint && task == stage) {
        CheckpointPlacement& c = result.checkpoint.emplace();
        c.stage = task;
        c.write_tier = rows.Text(3);
        c.reason = rows.Text(5);
        c.node_tier = detail.at("node_tier").get<std::string>();
        c.flush_tier = detail.at("flush_tier").get<std::string>();
      }
    } catch (const Json::exception&) {
      return unreadable;
    }
  }
  if (!recorded) return std::nullopt;
  return result;
}

}  // namespace tierflow::scheduler
