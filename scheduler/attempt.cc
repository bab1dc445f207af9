#include "scheduler/attempt.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_join.h"
#include "common/shell_words.h"
#include "common/strings.h"
#include "common/units.h"
#include "nlohmann/json.hpp"
#include "storage_adapters/transfer.h"

namespace tierflow::scheduler::internal {
namespace {

// The key of what consumer `task` reads for `stage.output` (its input
// `input`): the one artifact it reads (a single task's, or its own item's
// for `each`), or for a gathered foreach stage the folder of every item's.
std::string InputKey(const RunModel& run, uint32_t task, size_t input, uint32_t stage,
                     size_t output) {
  if (run.pipeline.stages[stage].foreach &&
      !run.pipeline.stages[run.tasks[task].stage].inputs[input].each) {
    return run.GatherKey(stage, output);
  }
  return run.OutputKey(run.graph->InputProducers(task, input).first, output);
}

// What consumer `task` sees for its input `input`, on its working tier.
std::string InputPath(const RunModel& run, uint32_t task, size_t input, uint32_t stage,
                      size_t output) {
  return run.TierPath(run.tasks[task].input_tiers[input],
                      InputKey(run, task, input, stage, output));
}

}  // namespace

TaskLaunch NewLaunch(const RunModel& run, uint32_t t, Duration kill_grace) {
  const TaskRec& task = run.tasks[t];
  const dag::Stage& stage = run.pipeline.stages[task.stage];
  TaskLaunch launch;
  launch.run_id = run.run_id;
  launch.task_id = task.id;
  launch.attempt = task.attempts;
  launch.argv = run.graph->ResolveArgv(run.graph->tasks()[t]);
  if (stage.run.is_shell()) {
    // A plain word list is executed directly, as make does; the worker runs
    // argv when it is set, the shell script otherwise.
    launch.shell = stage.run.shell;
    ShellForm form = ClassifyShellCommand(launch.shell);
    if (form.direct()) launch.argv = std::move(form.words);
  }
  launch.working_dir = run.working_dir;
  launch.timeout = stage.timeout;
  launch.cpus = stage.resources.cpus;
  launch.memory = stage.resources.memory;
  launch.gpus = stage.resources.gpus;
  launch.labels = stage.resources.labels;
  launch.kill_grace = kill_grace;
  launch.expected_duration = run.stages[task.stage].expected_duration;
  launch.slurm =
      SlurmStageOptions{.items_per_job = stage.slurm.items_per_job, .options = stage.slurm.options};
  // logs/STAGE.attempt-N.log, logs/STAGE/ITEM.attempt-N.log: no folder per
  // task, which would cost an inode per task on the hot path.
  launch.log_path =
      StrCat(run.TaskDir(run.run_dir / "logs", t).string(), ".attempt-", task.attempts, ".log");
  return launch;
}

std::string StagingKey(const RunModel& run, uint32_t t) {
  return StrCat("runs/", run.run_id, "/staging/", run.TaskDir("", t).string(), "/attempt-",
                run.tasks[t].attempts, "/");
}

LaunchInputs AddInputs(const RunModel& run, uint32_t t, TaskLaunch& launch, Env& env) {
  const TaskRec& task = run.tasks[t];
  const dag::Stage& stage = run.pipeline.stages[task.stage];
  LaunchInputs inputs;
  for (size_t i = 0; i < stage.inputs.size(); ++i) {
    const dag::InputRef& input = stage.inputs[i];
    const int producer = run.pipeline.FindStage(input.stage);
    const dag::Stage& from = run.pipeline.stages[producer];
    const size_t output = run.OutputIndex(producer, input.output);
    std::vector<uint32_t> producers;
    const dag::TaskGraph::ProducerRange range = run.graph->InputProducers(t, i);
    const uint32_t first = range.first;
    for (uint32_t k = 0; k < range.count; ++k) {
      producers.push_back(first + k);
      inputs.consumed.emplace_back(input.name, run.tasks[first + k].outputs[output].id);
    }
    std::string path = InputPath(run, t, i, producer, output);
    std::string name = StrCat("TIERFLOW_INPUT_", AsciiUpper(input.name));
    // Still being copied: the task finds the files through the manifest.
    if (input.stream && (!from.foreach || input.each) && range.count == 1 &&
        run.tasks[first].places[output].copies[task.input_tiers[i]] == CopyState::kStreaming) {
      env.emplace_back(StrCat("TIERFLOW_STREAM_", AsciiUpper(input.name)),
                       StrCat(path, storage::kStreamManifestSuffix));
    }
    if (const uint8_t node = task.node_input_tiers[i]; node != kNoTier) {
      launch.node_inputs.push_back(
          {name, run.tiers[node].config.name, InputKey(run, t, i, producer, output)});
    }
    env.emplace_back(std::move(name), std::move(path));
    inputs.producers.emplace_back(StrCat(input.name, "=", input.stage, ".", input.output),
                                  std::move(producers));
  }
  // Lineage from each item of a dynamic stage back to the list it came from.
  if (stage.foreach_from) {
    const int producer = run.pipeline.FindStage(stage.foreach_from->stage);
    const size_t output = run.OutputIndex(producer, stage.foreach_from->output);
    const uint32_t first = run.graph->FirstTask(producer);
    if (output < run.tasks[first].outputs.size() && run.tasks[first].outputs[output].id != 0) {
      inputs.consumed.emplace_back("foreach", run.tasks[first].outputs[output].id);
    }
  }
  for (const Need& need : task.needs) {
    if (need.node_tier == kNoTier) continue;
    const ArtifactRec& artifact = run.tasks[need.task].outputs[need.output];
    launch.stage_in.push_back(StageIn{.tier = run.tiers[need.node_tier].config.name,
                                      .key = run.OutputKey(need.task, need.output),
                                      .source_root = run.tiers[need.tier].root.string(),
                                      .content_hash = artifact.hash,
                                      .bytes = artifact.bytes,
                                      .stream = need.stream});
  }
  return inputs;
}

void AddOutputs(const RunModel& run, uint32_t t, TaskLaunch& launch, Env& env,
                const std::string& staging) {
  const TaskRec& task = run.tasks[t];
  const dag::Stage& stage = run.pipeline.stages[task.stage];
  for (size_t o = 0; o < stage.outputs.size(); ++o) {
    const uint8_t write = task.places[o].write;
    OutputLaunch output;
    output.name = stage.outputs[o].name;
    output.staging_path = run.TierPath(write, staging + output.name);
    output.durable = run.tiers[write].config.durability >= Durability::kDurable;
    output.final_path = run.OutputPath(t, o);
    output.tier_root = run.tiers[write].root.string();
    env.emplace_back(StrCat("TIERFLOW_OUTPUT_", AsciiUpper(output.name)), output.staging_path);
    launch.outputs.push_back(std::move(output));
  }
}

void SetEnvironment(const RunModel& run, uint32_t t, Env contract, TaskLaunch& launch) {
  const TaskRec& task = run.tasks[t];
  const dag::Stage& stage = run.pipeline.stages[task.stage];
  launch.env = std::move(contract);
  launch.env.emplace_back("TIERFLOW_RUN_ID", run.run_id);
  launch.env.emplace_back("TIERFLOW_TASK_ID", task.id);
  launch.env.emplace_back("TIERFLOW_STAGE", stage.name);
  launch.env.emplace_back("TIERFLOW_STAGE_KIND", std::string(dag::StageKindName(stage.kind)));
  launch.env.emplace_back("TIERFLOW_ATTEMPT", StrCat(task.attempts));
  launch.env.emplace_back("TIERFLOW_PIPELINE", run.pipeline.name);
  // Names of the params the stage does not see, for the SDK's message; not
  // in the cache key (`contract`).
  launch.env.emplace_back(std::string(dag::kWithheldParamsVariable),
                          absl::StrJoin(run.graph->WithheldParams(run.graph->tasks()[t]), ","));
}

std::string ReadsJson(const RunModel& run, uint32_t t) {
  const dag::Stage& stage = run.pipeline.stages[run.tasks[t].stage];
  nlohmann::json reads = nlohmann::json::array();
  for (size_t i = 0; i < stage.inputs.size(); ++i) {
    const int producer = run.pipeline.FindStage(stage.inputs[i].stage);
    const dag::Stage& from = run.pipeline.stages[producer];
    const size_t o = run.OutputIndex(producer, stage.inputs[i].output);
    uint64_t bytes = 0;
    const dag::TaskGraph::ProducerRange range = run.graph->InputProducers(t, i);
    for (uint32_t k = range.first; k < range.first + range.count && o < from.outputs.size(); ++k) {
      bytes += run.tasks[k].outputs[o].bytes;
    }
    const uint8_t node = run.tasks[t].node_input_tiers[i];
    const uint8_t tier = node != kNoTier ? node : run.tasks[t].input_tiers[i];
    reads.push_back(
        {{"input", stage.inputs[i].name}, {"tier", run.tiers[tier].config.name}, {"bytes", bytes}});
  }
  return reads.dump();
}

AttemptState AttemptOutcome(TaskReport::Outcome outcome, bool reusing) {
  switch (outcome) {
    case TaskReport::Outcome::kSucceeded:
      return reusing ? AttemptState::kCached : AttemptState::kSucceeded;
    case TaskReport::Outcome::kTimedOut:
      return AttemptState::kTimedOut;
    case TaskReport::Outcome::kCancelled:
      return AttemptState::kCancelled;
    case TaskReport::Outcome::kLost:
      return AttemptState::kLost;
    default:
      return AttemptState::kFailed;
  }
}

std::string FullTierNote(const RunModel& run, uint32_t t, uint8_t checkpoint_tier) {
  const TaskRec& task = run.tasks[t];
  std::vector<uint8_t> written;
  for (const OutputPlace& place : task.places) written.push_back(place.write);
  if (run.pipeline.stages[task.stage].checkpoints.enabled && checkpoint_tier != kNoTier) {
    written.push_back(checkpoint_tier);
  }
  std::sort(written.begin(), written.end());
  written.erase(std::unique(written.begin(), written.end()), written.end());
  bool logged = false;
  if (int fd = task.log_path.empty() ? -1 : open(task.log_path.c_str(), O_RDONLY | O_CLOEXEC);
      fd >= 0) {
    constexpr off_t kTail = 64 << 10;
    const off_t size = lseek(fd, 0, SEEK_END);
    std::string tail(static_cast<size_t>(std::min(size, kTail)), '\0');
    const ssize_t got = pread(fd, tail.data(), tail.size(), size - static_cast<off_t>(tail.size()));
    close(fd);
    logged = got > 0 && tail.find(std::strerror(ENOSPC)) != std::string::npos;
  }
  std::vector<std::string> tiers;
  bool full = false;
  for (uint8_t x : written) {
    std::string text = StrCat("tier ", run.tiers[x].config.name);
    struct statvfs info {};
    if (run.tiers[x].posix && statvfs(run.tiers[x].root.c_str(), &info) == 0) {
      const uint64_t free = static_cast<uint64_t>(info.f_bavail) * info.f_frsize;
      full = full || free < (uint64_t{1} << 20);
      text += StrCat(" (", FormatSize(static_cast<uint64_t>(info.f_blocks) * info.f_frsize), "; ",
                     FormatSize(free), " free after the attempt)");
    }
    tiers.push_back(std::move(text));
  }
  if (tiers.empty() || (!logged && !full)) return "";
  if (!logged) return StrCat("; it writes on ", absl::StrJoin(tiers, ", "), ": full");
  return StrCat("; its log says \"No space left on device\": it writes on ",
                absl::StrJoin(tiers, ", "));
}

}  // namespace tierflow::scheduler::internal
