// Locality on Slurm (docs/slurm.md "Node-local tiers"): which node a job
// reading node-tier data asks for, and why. The Slurm executor learns from
// each job's start report which node holds which copies (node_copies and
// the job's node); a reader of those artifacts goes to the node holding
// the most bytes of what it stages in, with `sbatch --nodelist=NODE`.
// Pure: no locks, no I/O; safe from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/task.h"
#include "scheduler/slurm_jobs.h"

namespace tierflow::scheduler::slurm {

// What each node's node tiers hold: node -> HeldKey(tier, key) -> bytes
// (scheduler/lease_policy.h).
using NodeHoldings = std::map<std::string, std::unordered_map<std::string, uint64_t>>;

struct NodeChoice {
  std::string node;    // "" : no preference, Slurm chooses
  std::string reason;  // "" when the task stages nothing onto a node tier
};

// The node holding the most bytes of `task`'s stage-ins (ties: the first
// by name), or none when no node holds any of them.
NodeChoice PreferredNode(const TaskLaunch& task, const NodeHoldings& held);

// The job that deletes copies nobody on `node` reads any more (the
// engine's Executor::EvictNodeCopy, batched per node per round): sbatch
// arguments (the run's job name, so one squeue sees it and a cancel by
// name takes it; `--nodelist=NODE`; one cpu) and its script, which execs
// `tierflow node-evict --list LIST` (worker/job_node_side.h).
std::vector<std::string> EvictionSbatchArgs(const std::string& run_id, const std::string& node,
                                            const SubmitOptions& options, const std::string& log);
std::string EvictionScript(const std::string& tierflow, const std::string& list_file);
inline constexpr std::string_view kEvictionComment = "tierflow-evict";

}  // namespace tierflow::scheduler::slurm
