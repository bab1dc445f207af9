#include "scheduler/lease_policy.h"

#include <set>
#include <sstream>
#include <tuple>

#include "common/strings.h"
#include "common/units.h"

namespace tierflow::scheduler {
namespace {

// How well a worker suits a task, best last.
struct Locality {
  uint64_t held_bytes = 0;
  int held = 0;
  int tiers = 0;
  int produced = 0;
  int free = 0;
  bool operator<(const Locality& other) const {
    return std::tie(held_bytes, tiers, produced, free) <
           std::tie(other.held_bytes, other.tiers, other.produced, other.free);
  }
};

bool HasLabels(const LeaseWorker& worker, const TaskLaunch& task) {
  for (const auto& [key, value] : task.labels) {
    auto found = worker.labels.find(key);
    if (found == worker.labels.end() || found->second != value) return false;
  }
  return true;
}

bool Holds(const WorkerResources& have, const WorkerResources& in_use, const TaskLaunch& task) {
  return Holds(have, in_use,
               WorkerResources{.cpus = task.cpus, .memory = task.memory, .gpus = task.gpus});
}

}  // namespace

bool Holds(const WorkerResources& have, const WorkerResources& in_use,
           const WorkerResources& need) {
  return in_use.cpus + need.cpus <= have.cpus + 1e-9 &&
         in_use.memory + need.memory <= have.memory && in_use.gpus + need.gpus <= have.gpus;
}

std::string HeldKey(const std::string& tier, const std::string& key) {
  return StrCat(tier, "/", key);
}

bool Fits(const LeaseWorker& worker, const TaskLaunch& task) {
  return HasLabels(worker, task) && worker.FreeSlots() > 0 &&
         Holds(worker.capacity, worker.used, task);
}

std::optional<LeaseChoice> ChooseWorker(const TaskLaunch& task,
                                        const std::vector<const LeaseWorker*>& workers,
                                        const ProducedOn& produced_on) {
  std::map<std::string, int> produced;
  int inputs = 0;
  for (const auto& [name, value] : task.env) {
    if (name.rfind("TIERFLOW_INPUT_", 0) != 0) continue;
    ++inputs;
    auto producer = produced_on.find(value);
    if (producer != produced_on.end()) ++produced[producer->second];
  }
  std::optional<size_t> best;
  Locality best_score;
  for (size_t i = 0; i < workers.size(); ++i) {
    const LeaseWorker& worker = *workers[i];
    if (!Fits(worker, task)) continue;
    Locality score;
    score.free = worker.FreeSlots();
    auto made = produced.find(worker.name);
    score.produced = made == produced.end() ? 0 : made->second;
    std::set<std::string> node_tiers;
    for (const StageIn& stage : task.stage_in) {
      node_tiers.insert(stage.tier);
      auto held = worker.held.find(HeldKey(stage.tier, stage.key));
      if (held == worker.held.end()) continue;
      score.held_bytes += held->second;
      ++score.held;
    }
    for (const std::string& tier : node_tiers) score.tiers += worker.tiers.count(tier);
    if (!best || best_score < score) {
      best_score = score;
      best = i;
    }
  }
  if (!best) return std::nullopt;
  std::string why = StrCat("leased to ", workers[*best]->name);
  if (best_score.held > 0) {
    why += StrCat(", whose node tiers hold ", best_score.held, " of the ", task.stage_in.size(),
                  " artifacts it reads there (", FormatSize(best_score.held_bytes), ")");
  } else if (best_score.tiers > 0) {
    why += ", which has the node tiers its inputs are copied to";
  } else if (best_score.produced > 0) {
    why += StrCat(", which produced ", best_score.produced, " of its ", inputs, " inputs");
  } else {
    why += StrCat(", the worker with the most free slots (", best_score.free, ")");
  }
  return LeaseChoice{*best, std::move(why)};
}

std::string WhyNoWorkerFits(const TaskLaunch& task,
                            const std::vector<const LeaseWorker*>& workers) {
  if (workers.empty()) return "no worker is connected";
  int labelled = 0;
  int large = 0;
  for (const LeaseWorker* worker : workers) {
    if (!HasLabels(*worker, task)) continue;
    ++labelled;
    if (worker->slots > 0 && Holds(worker->capacity, {}, task)) ++large;
  }
  if (labelled == 0) {
    std::string labels;
    for (const auto& [key, value] : task.labels) {
      labels += StrCat(labels.empty() ? "" : ", ", key, "=", value);
    }
    return StrCat("no connected worker has the labels ", labels);
  }
  if (large == 0) {
    std::ostringstream cpus;
    cpus << task.cpus;  // "2", "0.5"
    return StrCat("no connected worker", task.labels.empty() ? "" : " with its labels",
                  " has the resources it asks for (", cpus.str(), " cpus, ",
                  FormatSize(task.memory), " memory, ", task.gpus, " gpus)");
  }
  return StrCat("every worker that can run it is busy (", large, " of ", workers.size(),
                " connected)");
}

}  // namespace tierflow::scheduler
