// A test executor whose attempts outlive the engine, standing in for a
// batch scheduler (a Slurm executor implements the same seam:
// common/task.h "Attempts that outlive the engine"). It is not a mock: each
// launch is written to DIR/attempt-ID.launch and run by the real
// `tierflow exec-task` (worker/exec_task.h) as a process in a session of
// its own, which a kill -9 of the engine leaves running; its pid is the
// attempt's handle ("pid:N"). A thread reads the job files the attempt
// leaves (REPORT.started, REPORT) every few milliseconds and reports what
// they say; a process that is gone without a final report is reported
// lost. Reattach takes an attempt back by its handle or, with none
// recorded, by DIR/submissions.log, where every process started is
// appended as "ATTEMPT PID" (the tests compare it with the store: one
// line per attempt means nothing was submitted twice). Test-only.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/task.h"

namespace tierflow::testing {

class DetachedExecutor final : public Executor {
 public:
  // `dir`: the job folder; `tierflow`: the binary that runs exec-task.
  DetachedExecutor(std::string dir, std::string tierflow, ReportCallback on_report);
  // Stops watching; the attempts' processes go on (they outlive engines).
  ~DetachedExecutor() override;

  void Launch(TaskLaunch launch) override;
  bool Reattaches() const override { return true; }
  bool Reattach(const TaskLaunch& launch, const std::string& handle) override;
  void Cancel(int64_t attempt_id) override;  // SIGTERM to exec-task
  void Kill(int64_t attempt_id) override;    // SIGUSR1: kill at once
  void KillAll() override;

  static std::string Handle(pid_t pid);

 private:
  struct Job {
    pid_t pid = 0;
    bool ours = false;  // our child: reaped by us
    bool submitted_told = false;
    bool started_told = false;
  };
  void Watch();
  void Signal(int64_t attempt_id, int signal);

  const std::string dir_;
  const std::string tierflow_;
  const ReportCallback on_report_;
  std::mutex mu_;
  std::map<int64_t, Job> jobs_;  // guarded by mu_
  std::atomic<bool> stop_{false};
  std::thread watcher_;
};

}  // namespace tierflow::testing
