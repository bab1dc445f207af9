// Resources on one machine (docs/running.md "Resources on one machine"):
// the budget of cpus, memory and GPUs the local pool's tasks share, and
// the decision whether a ready task fits beside what runs, with the GPU
// devices it gets and why. The amounts are those of cluster workers and
// Slurm (`resources:` as dag::Resources; the same arithmetic as the lease
// policy's, scheduler/lease_policy.h). Only the local pool uses it: Slurm
// and cluster workers have resource models of their own.
//
// The queue's rule (no starvation): in each pass over the ready queue (in
// its order: longest remaining chain first), the first task that does not
// fit holds a reservation. Behind it, a task may start only if, in every
// resource it uses, what stays free still holds the reserved task once the
// running ones end: so the resources the reserved task is short of only
// drain, and it starts, while smaller tasks that do not touch them go on.
//
// Thread-safety: none; LocalResources is part of the engine's turn
// (engine.h, "Threading"). ReadMachine may be called from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/task.h"
#include "dag/pipeline.h"

namespace tierflow::scheduler {

// What tasks on this machine may use at once.
struct LocalBudget {
  double cpus = 1;
  uint64_t memory = 0;            // bytes
  std::vector<std::string> gpus;  // device ids as CUDA_VISIBLE_DEVICES names them
  std::string cpus_from;          // why these amounts: "8 cores", "--cpus"
  std::string memory_from;
  std::string gpus_from;
};

// What the machine says about itself.
struct MachineFacts {
  unsigned cores = 1;
  uint64_t memory = 0;                              // bytes of RAM
  std::optional<std::string> cuda_visible_devices;  // unset: not in the environment
  std::optional<uint32_t> nvidia_smi_gpus;          // unset: no nvidia-smi on PATH (or it failed)
};

// The flags of `tierflow run` and `resume` that shape the budget.
struct BudgetFlags {
  int slots = 0;                 // --slots; 0: not given
  double cpus = 0;               // --cpus; 0: the larger of the cores and --slots
  uint64_t memory = 0;           // --memory; 0: the machine's RAM
  std::optional<uint32_t> gpus;  // --gpus N: devices 0..N-1, whatever the machine says
};

// This machine: its cores, its RAM (sysconf), CUDA_VISIBLE_DEVICES, and
// `nvidia-smi -L` (run without a shell) when it is on PATH and that is unset.
MachineFacts ReadMachine();

// The budget: cpus the larger of the cores and --slots (so --slots keeps its
// meaning for tasks of 1 cpu), memory the RAM, GPUs CUDA_VISIBLE_DEVICES's
// devices when set (empty: none), else nvidia-smi's count, else none; each
// flag overrides its own.
LocalBudget MakeLocalBudget(const MachineFacts& machine, const BudgetFlags& flags);

// InvalidArgument naming the first stage that asks for more cpus, memory or
// GPUs than the whole budget (it could never start) and how to offer more.
absl::Status CheckStagesFit(const LocalBudget& budget, const dag::Pipeline& pipeline);

// "cpus 8 (8 cores), memory 31.2 GiB (RAM), gpus 0,1 (CUDA_VISIBLE_DEVICES)".
std::string DescribeBudget(const LocalBudget& budget);

namespace internal {

// The budget in use during one run: what runs holds, who waits.
class LocalResources {
 public:
  explicit LocalResources(LocalBudget budget) : budget_(std::move(budget)) {}

  struct Grant {
    std::vector<std::string> gpus;  // the devices it gets, its own while it runs
    std::string reason;             // "cpus 2 of 8, memory 1.0 GiB of 31.2 GiB, gpu 1 (of 0,1)"
  };
  // Takes what `need` asks for for `task` when it fits beside what runs and
  // leaves room for the reserved task (see the header comment); else
  // nothing, and the first task that does not fit becomes the reserved one.
  std::optional<Grant> TryTake(uint32_t task, const dag::Resources& need);
  // What `task` held, back (every end of its attempt; a no-op when it holds nothing).
  void Release(uint32_t task);
  // A new pass over the ready queue: no task is reserved yet.
  std::optional<uint32_t> reserved() const { return reserved_; }
  void DropReservation() { reserved_.reset(); }

  // CUDA_VISIBLE_DEVICES for a task that got `grant`: its devices; "" for
  // a task without GPUs on a machine with some (it never sees one in use).
  // Unset: the machine has none, the task's environment is left as it is.
  std::optional<std::string> VisibleDevices(const Grant& grant) const;

 private:
  struct Held {
    double cpus = 0;
    uint64_t memory = 0;
    std::vector<std::string> gpus;
  };
  bool Fits(const dag::Resources& need) const;
  bool LeavesRoomFor(const dag::Resources& need, const dag::Resources& reserved) const;

  LocalBudget budget_;
  double cpus_used_ = 0;
  uint64_t memory_used_ = 0;
  std::vector<bool> gpu_used_ = std::vector<bool>(budget_.gpus.size(), false);
  std::map<uint32_t, Held> held_;  // by task
  std::optional<uint32_t> reserved_;
  dag::Resources reserved_need_;
};

// Sets CUDA_VISIBLE_DEVICES in the launch's environment to `devices`,
// replacing one the stage's `env:` declares (the devices are the
// scheduler's to give); unset `devices`: the environment is left as it is.
void SetVisibleDevices(const std::optional<std::string>& devices, TaskLaunch& launch);

}  // namespace internal
}  // namespace tierflow::scheduler
