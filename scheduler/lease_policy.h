// The lease policy of cluster mode: which connected worker a ready task is
// leased to, and why (DESIGN.md: every scheduling decision is made in
// scheduler/ with its reason). Pure functions over a snapshot of the
// workers that the caller owns (scheduler/lease_manager.h holds the live
// registry): no locks, no I/O, no clock; safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/task.h"

namespace tierflow::scheduler {

struct WorkerResources {
  double cpus = 0;
  uint64_t memory = 0;  // bytes
  uint32_t gpus = 0;
};

// One connected worker as the policy sees it.
struct LeaseWorker {
  std::string name;
  int slots = 0;
  int running = 0;           // attempts leased to it, not finished
  WorkerResources capacity;  // what it registered with
  WorkerResources used;      // what its leased attempts asked for
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> tiers;  // its node tiers: name -> path
  // What its node tiers hold: HeldKey(tier, key) -> bytes.
  std::unordered_map<std::string, uint64_t> held;

  int FreeSlots() const { return slots - running; }
};

std::string HeldKey(const std::string& tier, const std::string& key);

// Where outputs were produced: an output's path, and its parent folder (a
// foreach item's gathering folder), -> the worker that produced it.
using ProducedOn = std::unordered_map<std::string, std::string>;

// Whether `need` fits in `have` beside `in_use` (cpus may be fractional):
// the resource model of workers, shared with the local pool's budget
// (scheduler/local_resources.h).
bool Holds(const WorkerResources& have, const WorkerResources& in_use, const WorkerResources& need);

// Whether `worker` has every label the task asks for, a free slot, and the
// cpus, memory and gpus it asks for beside what its leased attempts use.
bool Fits(const LeaseWorker& worker, const TaskLaunch& task);

struct LeaseChoice {
  size_t index = 0;    // into the workers ChooseWorker was given
  std::string reason;  // "leased to w1, whose node tiers hold 2 of the 3 ..."
};

// The worker `task` fits best, locality first: the one whose node tiers
// hold the most bytes of what it stages in there; then one that has those
// node tiers at all (else the task reads in place); then the one that
// produced most of its inputs; then the most free slots. Ties go to the
// earlier worker in `workers` (the registry gives them in name order).
// nullopt when it fits none now.
std::optional<LeaseChoice> ChooseWorker(const TaskLaunch& task,
                                        const std::vector<const LeaseWorker*>& workers,
                                        const ProducedOn& produced_on);

// Why `task` fits none of `workers`: none connected, none with its labels,
// none large enough for it, or every one that could run it busy.
std::string WhyNoWorkerFits(const TaskLaunch& task, const std::vector<const LeaseWorker*>& workers);

}  // namespace tierflow::scheduler
