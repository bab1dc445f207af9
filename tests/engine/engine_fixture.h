// The fixture of the engine's integration tests (engine_test.cc,
// engine_lineage_test.cc, one binary): a temporary folder with the store at
// TMP/.tierflow/tierflow.db, an engine on the local worker pool
// (api::MakeEmbeddedEngine) driven on a thread of its own with a hang
// limit, and an observer that records every task transition. Test-only.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "api/embedded.h"
#include "api/run_service.h"
#include "common/clock.h"
#include "scheduler/engine.h"
#include "scheduler/store.h"
#include "storage_adapters/local_artifact.h"
#include "tests/engine/engine_testing.h"

namespace tierflow::testing {

using scheduler::EngineOptions;
using scheduler::RunRequest;
using scheduler::RunResult;
using scheduler::RunState;

inline constexpr auto kHangLimit = std::chrono::seconds(30);

// Records every task transition; lets a test wait for one.
class RecordingObserver final : public scheduler::RunObserver {
 public:
  void OnRunStarted(const std::string&, bool, const scheduler::RunCounts&) override {}
  void OnTaskEvent(const scheduler::TaskEvent& event, const scheduler::RunCounts&) override {
    {
      std::lock_guard lock(mu_);
      events_.push_back(event);
    }
    cv_.notify_all();
  }
  bool WaitForState(const std::string& task, scheduler::TaskState state,
                    std::chrono::milliseconds limit = kHangLimit) {
    return WaitForAttempt(task, state, 0, limit);
  }
  // `attempt` 0: any attempt.
  bool WaitForAttempt(const std::string& task, scheduler::TaskState state, uint32_t attempt,
                      std::chrono::milliseconds limit = kHangLimit) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, limit, [&] {
      return std::any_of(events_.begin(), events_.end(), [&](const scheduler::TaskEvent& e) {
        return e.task_id == task && e.state == state && (attempt == 0 || e.attempt == attempt);
      });
    });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<scheduler::TaskEvent> events_;
};

class EngineTest : public ::testing::Test {
 protected:
  std::string Pipeline() const { return dir_ / "pipeline.yaml"; }
  std::string Db() const { return (dir_.path() / ".tierflow" / "tierflow.db").string(); }
  fs::path RunDir(const std::string& run_id) const {
    return dir_.path() / ".tierflow" / "runs" / run_id;
  }

  EngineOptions Options() const {
    EngineOptions options;
    options.db_path = Db();
    options.slots = 2;
    options.kill_grace = std::chrono::milliseconds(200);
    return options;
  }

  // Runs `call` (Run or Resume of `engine`) on a thread of its own. An
  // engine that has not returned after `limit` is cancelled, then killed;
  // one that still hangs is left behind (its thread detached, the engine
  // leaked on purpose) so the test fails instead of hanging.
  static absl::StatusOr<RunResult> Drive(
      std::shared_ptr<scheduler::Engine> engine,
      std::function<absl::StatusOr<RunResult>(scheduler::Engine&)> call,
      std::chrono::seconds limit = kHangLimit) {
    auto promise = std::make_shared<std::promise<absl::StatusOr<RunResult>>>();
    std::future<absl::StatusOr<RunResult>> future = promise->get_future();
    std::thread thread([engine, call, promise] { promise->set_value(call(*engine)); });
    if (future.wait_for(limit) != std::future_status::ready) {
      ADD_FAILURE() << "the engine did not finish within " << limit.count() << " s: cancelling it";
      engine->Cancel();
      engine->KillNow();
      if (future.wait_for(std::chrono::seconds(2)) != std::future_status::ready) {
        thread.detach();
        return absl::DeadlineExceededError("the engine hangs, even after Cancel and KillNow");
      }
    }
    thread.join();
    return future.get();
  }

  absl::StatusOr<RunResult> RunWith(EngineOptions options,
                                    std::map<std::string, std::string> params = {}) {
    std::shared_ptr<scheduler::Engine> engine = api::MakeEmbeddedEngine(std::move(options));
    RunRequest request;
    request.file = Pipeline();
    request.params = std::move(params);
    return Drive(engine, [request](scheduler::Engine& e) { return e.Run(request); });
  }
  absl::StatusOr<RunResult> Run(std::map<std::string, std::string> params = {}) {
    return RunWith(Options(), std::move(params));
  }

  // A run of Pipeline() observed by `observer`, driven on a thread of its
  // own while the test acts on it through `engine`.
  struct Background {
    std::shared_ptr<scheduler::Engine> engine;
    std::future<absl::StatusOr<RunResult>> result;
  };
  Background RunInBackground(RecordingObserver& observer) {
    return RunInBackground(observer, Options());
  }
  Background RunInBackground(RecordingObserver& observer, EngineOptions options) {
    options.observer = &observer;
    Background run;
    run.engine = api::MakeEmbeddedEngine(options);
    RunRequest request;
    request.file = Pipeline();
    run.result = std::async(std::launch::async, [engine = run.engine, request] {
      return Drive(engine, [request](scheduler::Engine& e) { return e.Run(request); });
    });
    return run;
  }

  void WritePipeline(const std::string& yaml) { WriteFile(Pipeline(), yaml); }

  // task id -> state of every task of `run_id`.
  std::map<std::string, std::string> TaskStates(const std::string& run_id) const {
    std::map<std::string, std::string> states;
    for (const Row& row :
         Query(Db(), "SELECT id, state FROM tasks WHERE run_id = '" + run_id + "'")) {
      if (row.size() == 2) states[row[0]] = row[1];
    }
    return states;
  }

  // (number, state, started_at, finished_at, message, id) of a task's attempts, in order.
  std::vector<Row> Attempts(const std::string& run_id, const std::string& task) const {
    return Query(Db(),
                 "SELECT number, state, started_at, finished_at, message, id, signal, pid "
                 "FROM attempts WHERE run_id = '" +
                     run_id + "' AND task_id = '" + task + "' ORDER BY number");
  }

  std::string AttemptId(const std::string& run_id, const std::string& task) const {
    return QueryValue(Db(), "SELECT id FROM attempts WHERE run_id = '" + run_id +
                                "' AND task_id = '" + task + "' ORDER BY number DESC LIMIT 1");
  }

  TempDir dir_;
};

// Counts how often each word occurs in a file of one word per line.
inline std::map<std::string, int> CountLines(const fs::path& path) {
  std::map<std::string, int> counts;
  for (const std::string& line : ReadLines(path)) ++counts[line];
  return counts;
}

// KEY=VALUE lines (as `env` prints them) as a map.
inline std::map<std::string, std::string> ParseEnv(const fs::path& path) {
  std::map<std::string, std::string> env;
  for (const std::string& line : ReadLines(path)) {
    size_t eq = line.find('=');
    if (eq != std::string::npos) env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return env;
}

}  // namespace tierflow::testing
