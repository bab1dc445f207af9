#include "scheduler/slurm_locality.h"

#include "common/strings.h"
#include "common/units.h"
#include "scheduler/lease_policy.h"

namespace tierflow::scheduler::slurm {

NodeChoice PreferredNode(const TaskLaunch& task, const NodeHoldings& held) {
  NodeChoice choice;
  if (task.stage_in.empty()) return choice;
  uint64_t best_bytes = 0;
  int best_count = 0;
  for (const auto& [node, holds] : held) {
    uint64_t bytes = 0;
    int count = 0;
    for (const StageIn& stage : task.stage_in) {
      auto found = holds.find(HeldKey(stage.tier, stage.key));
      if (found == holds.end()) continue;
      bytes += found->second;
      ++count;
    }
    if (count == 0) continue;
    if (choice.node.empty() || bytes > best_bytes || (bytes == best_bytes && count > best_count)) {
      choice.node = node;
      best_bytes = bytes;
      best_count = count;
    }
  }
  if (choice.node.empty()) {
    choice.reason = StrCat("no node holds a copy of the ", task.stage_in.size(),
                           " artifact(s) it reads on node tiers: Slurm chooses the node");
    return choice;
  }
  choice.reason =
      StrCat("--nodelist=", choice.node, ": its node tiers hold ", best_count, " of the ",
             task.stage_in.size(), " artifacts it reads there (", FormatSize(best_bytes), ")");
  return choice;
}

std::vector<std::string> EvictionSbatchArgs(const std::string& run_id, const std::string& node,
                                            const SubmitOptions& options, const std::string& log) {
  std::vector<std::string> args = {"--parsable",
                                   "--no-requeue",
                                   StrCat("--job-name=", JobName(run_id)),
                                   StrCat("--comment=", kEvictionComment),
                                   StrCat("--nodelist=", node),
                                   "-c",
                                   "1",
                                   StrCat("--output=", log)};
  if (!options.partition.empty()) args.push_back(StrCat("--partition=", options.partition));
  if (!options.account.empty()) args.push_back(StrCat("--account=", options.account));
  return args;
}

std::string EvictionScript(const std::string& tierflow, const std::string& list_file) {
  return StrCat("#!/bin/sh\n# tierflow: delete node copies nobody on this node reads any more\n",
                "exec ", ShellQuote(tierflow), " node-evict --list ", ShellQuote(list_file), "\n");
}

}  // namespace tierflow::scheduler::slurm
