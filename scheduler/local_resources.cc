#include "scheduler/local_resources.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <sstream>
#include <thread>

#include "common/run_command.h"
#include "common/strings.h"
#include "common/units.h"
#include "scheduler/lease_policy.h"

namespace tierflow::scheduler {
namespace {

// "2", "0.5": as the user wrote it.
std::string Cpus(double cpus) {
  std::ostringstream out;
  out << cpus;
  return out.str();
}

std::string Join(const std::vector<std::string>& items) {
  std::string joined;
  for (const std::string& item : items) joined += (joined.empty() ? "" : ",") + item;
  return joined;
}

// CUDA_VISIBLE_DEVICES's devices, as listed ("3,5" -> 3, 5; "" -> none).
std::vector<std::string> ListedDevices(const std::string& text) {
  std::vector<std::string> devices;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty()) devices.push_back(item);
  }
  return devices;
}

std::vector<std::string> Numbered(uint32_t count) {
  std::vector<std::string> devices;
  for (uint32_t i = 0; i < count; ++i) devices.push_back(StrCat(i));
  return devices;
}

WorkerResources Amounts(const dag::Resources& need) {
  return WorkerResources{.cpus = need.cpus, .memory = need.memory, .gpus = need.gpus};
}

}  // namespace

MachineFacts ReadMachine() {
  MachineFacts machine;
  machine.cores = std::max(1u, std::thread::hardware_concurrency());
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page_size > 0) {
    machine.memory = static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size);
  }
  if (const char* visible = std::getenv("CUDA_VISIBLE_DEVICES"); visible != nullptr) {
    machine.cuda_visible_devices = visible;
  } else if (OnPath("nvidia-smi")) {
    const CommandOutput listed = RunCommand({"nvidia-smi", "-L"});
    if (listed.status == 0) {
      uint32_t gpus = 0;
      std::stringstream in(listed.out);
      for (std::string line; std::getline(in, line);) {
        if (line.rfind("GPU ", 0) == 0) ++gpus;  // "GPU 0: NVIDIA A100 (UUID: ...)"
      }
      machine.nvidia_smi_gpus = gpus;
    }
  }
  return machine;
}

LocalBudget MakeLocalBudget(const MachineFacts& machine, const BudgetFlags& flags) {
  LocalBudget budget;
  if (flags.cpus > 0) {
    budget.cpus = flags.cpus;
    budget.cpus_from = "--cpus";
  } else if (flags.slots > static_cast<int>(machine.cores)) {
    budget.cpus = flags.slots;
    budget.cpus_from = StrCat("--slots ", flags.slots, ", more than the ", machine.cores, " cores");
  } else {
    budget.cpus = machine.cores;
    budget.cpus_from = StrCat(machine.cores, " cores");
  }
  budget.memory = flags.memory > 0 ? flags.memory : machine.memory;
  budget.memory_from = flags.memory > 0 ? "--memory" : "RAM";
  if (flags.gpus) {
    budget.gpus = Numbered(*flags.gpus);
    budget.gpus_from = "--gpus";
  } else if (machine.cuda_visible_devices) {
    budget.gpus = ListedDevices(*machine.cuda_visible_devices);
    budget.gpus_from = "CUDA_VISIBLE_DEVICES";
  } else if (machine.nvidia_smi_gpus) {
    budget.gpus = Numbered(*machine.nvidia_smi_gpus);
    budget.gpus_from = "nvidia-smi -L";
  } else {
    budget.gpus_from = "no CUDA_VISIBLE_DEVICES, no nvidia-smi";
  }
  return budget;
}

absl::Status CheckStagesFit(const LocalBudget& budget, const dag::Pipeline& pipeline) {
  for (const dag::Stage& stage : pipeline.stages) {
    const dag::Resources& need = stage.resources;
    const std::string where =
        stage.location.line > 0 ? StrCat(pipeline.file, ":", stage.location.line, ": ") : "";
    const std::string prefix = StrCat(where, "stage '", stage.name, "' needs ");
    if (need.cpus > budget.cpus + 1e-9) {
      return absl::InvalidArgumentError(StrCat(prefix, Cpus(need.cpus),
                                               " cpus; this machine offers ", Cpus(budget.cpus),
                                               " (", budget.cpus_from, "; set --cpus)"));
    }
    if (need.memory > budget.memory) {
      return absl::InvalidArgumentError(
          StrCat(prefix, FormatSize(need.memory), " of memory; this machine offers ",
                 FormatSize(budget.memory), " (", budget.memory_from, "; set --memory)"));
    }
    if (need.gpus > budget.gpus.size()) {
      return absl::InvalidArgumentError(StrCat(
          prefix, need.gpus, need.gpus == 1 ? " GPU" : " GPUs", "; this machine offers ",
          budget.gpus.size(), " (", budget.gpus_from, "; set CUDA_VISIBLE_DEVICES or --gpus)"));
    }
  }
  return absl::OkStatus();
}

std::string DescribeBudget(const LocalBudget& budget) {
  return StrCat("cpus ", Cpus(budget.cpus), " (", budget.cpus_from, "), memory ",
                FormatSize(budget.memory), " (", budget.memory_from, "), gpus ",
                budget.gpus.empty() ? std::string("none") : Join(budget.gpus), " (",
                budget.gpus_from, ")");
}

namespace internal {

bool LocalResources::Fits(const dag::Resources& need) const {
  const WorkerResources have{.cpus = budget_.cpus,
                             .memory = budget_.memory,
                             .gpus = static_cast<uint32_t>(budget_.gpus.size())};
  const auto gpus_used =
      static_cast<uint32_t>(std::count(gpu_used_.begin(), gpu_used_.end(), true));
  return Holds(have, WorkerResources{.cpus = cpus_used_, .memory = memory_used_, .gpus = gpus_used},
               Amounts(need));
}

// In each resource `need` uses, the reserved task still fits beside what
// runs and `need`: a task never takes what the reserved one waits for.
bool LocalResources::LeavesRoomFor(const dag::Resources& need,
                                   const dag::Resources& reserved) const {
  const auto gpus_used =
      static_cast<uint32_t>(std::count(gpu_used_.begin(), gpu_used_.end(), true));
  const bool cpus = need.cpus <= 0 || cpus_used_ + need.cpus + reserved.cpus <= budget_.cpus + 1e-9;
  const bool memory =
      need.memory == 0 || memory_used_ + need.memory + reserved.memory <= budget_.memory;
  const bool gpus = need.gpus == 0 || gpus_used + need.gpus + reserved.gpus <= budget_.gpus.size();
  return cpus && memory && gpus;
}

std::optional<LocalResources::Grant> LocalResources::TryTake(uint32_t task,
                                                             const dag::Resources& need) {
  const bool other_reserved = reserved_ && *reserved_ != task;
  if (!Fits(need) || (other_reserved && !LeavesRoomFor(need, reserved_need_))) {
    if (!reserved_) {
      reserved_ = task;
      reserved_need_ = need;
    }
    return std::nullopt;
  }
  if (reserved_ == task) reserved_.reset();
  Held held{.cpus = need.cpus, .memory = need.memory, .gpus = {}};
  for (size_t d = 0; d < gpu_used_.size() && held.gpus.size() < need.gpus; ++d) {
    if (gpu_used_[d]) continue;
    gpu_used_[d] = true;
    held.gpus.push_back(budget_.gpus[d]);
  }
  cpus_used_ += held.cpus;
  memory_used_ += held.memory;
  Grant grant;
  grant.gpus = held.gpus;
  grant.reason =
      StrCat("cpus ", Cpus(need.cpus), " of ", Cpus(budget_.cpus), ", memory ",
             need.memory == 0 ? std::string("none declared") : FormatSize(need.memory), " of ",
             FormatSize(budget_.memory), ", ",
             budget_.gpus.empty() ? std::string("no gpus (the machine offers none)")
             : held.gpus.empty()
                 ? StrCat("no gpu (of ", Join(budget_.gpus), "; CUDA_VISIBLE_DEVICES=\"\")")
                 : StrCat(held.gpus.size() == 1 ? "gpu " : "gpus ", Join(held.gpus), " (of ",
                          Join(budget_.gpus), ")"));
  held_[task] = std::move(held);
  return grant;
}

void LocalResources::Release(uint32_t task) {
  auto found = held_.find(task);
  if (found == held_.end()) return;
  cpus_used_ = std::max(0.0, cpus_used_ - found->second.cpus);
  memory_used_ -= found->second.memory;
  for (const std::string& device : found->second.gpus) {
    for (size_t d = 0; d < budget_.gpus.size(); ++d) {
      if (budget_.gpus[d] == device) gpu_used_[d] = false;
    }
  }
  held_.erase(found);
}

std::optional<std::string> LocalResources::VisibleDevices(const Grant& grant) const {
  if (budget_.gpus.empty()) return std::nullopt;
  return Join(grant.gpus);
}

void SetVisibleDevices(const std::optional<std::string>& devices, TaskLaunch& launch) {
  if (!devices) return;
  std::erase_if(launch.env, [](const auto& var) { return var.first == "CUDA_VISIBLE_DEVICES"; });
  launch.env.emplace_back("CUDA_VISIBLE_DEVICES", *devices);
}

}  // namespace internal
}  // namespace tierflow::scheduler
