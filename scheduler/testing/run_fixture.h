// A state store filled by SQL, the way the engine leaves it, for the tests
// of everything that reads runs (scheduler/run_queries, api/run_service, the
// CLI). Test-only: linked into test binaries, never into tierflow.
//
// Three runs of pipeline "quickstart", tasks ingest[0], ingest[1] (foreach
// items "0", "1"), clean, train, publish, notify, in that plan order:
//
//   quickstart-1a2b3c  succeeded  created kT0, 65 s; every task succeeded.
//   quickstart-3f9a1c  failed     created kT0 + 1 h, 95 s, params epochs=3:
//     ingest[1] failed once (exit 1) then succeeded; clean is cached, reusing
//     quickstart-1a2b3c's clean attempt (#3); publish failed twice (exit 1,
//     then timed out: killed by signal 15); notify upstream_failed.
//   quickstart-c0ffee  running    created kT0 + 2 h, engine `engine_pid` on
//     this host; ingest[0] attempt 1 running (log empty), the rest waiting.
//
// Attempt ids: 1-6 the first run's tasks in order, 7 ingest[0], 8-9
// ingest[1] #1-#2, 10 clean (cached), 11 train, 12-13 publish #1-#2, 14 the
// running ingest[0]. Artifact ids: 1 ingest[0]/raw, 2 ingest[1]/raw,
// 3 clean/clean, 4 train/model, 5 publish/report of the first run; 6-9 the
// same four of the second (9 = train/model also has an evicted working copy
// on tier nvme). Every non-cached attempt has a log holding
// "TASK attempt N\n" except as noted above.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace tierflow::testing {
class ChildProcess;
}  // namespace tierflow::testing

namespace tierflow::scheduler::testing {

inline constexpr int64_t kT0 = 1714564800000;  // 2024-05-01 12:00:00 UTC

struct RunFixture {
  std::string dir;      // holds the database, runs/ (logs, artifacts)
  std::string db_path;  // dir/tierflow.db
  // Log of quickstart-c0ffee's running ingest[0] attempt (#14).
  std::string running_log;
};

// Writes the fixture into `dir` (which must exist).
absl::StatusOr<RunFixture> WriteRunFixture(const std::string& dir, int64_t engine_pid);

// A new empty temporary directory.
std::string MakeTempDir();

// A stand-in for a live engine: a `sleep` whose argv[0] is
// "tierflow-fake-engine", so EngineAlive takes it for a tierflow process.
// Killed and reaped, by its pid, when destroyed.
class FakeEngine {
 public:
  FakeEngine();
  ~FakeEngine();
  FakeEngine(const FakeEngine&) = delete;
  FakeEngine& operator=(const FakeEngine&) = delete;
  int64_t pid() const;

 private:
  std::unique_ptr<tierflow::testing::ChildProcess> process_;  // common/testing/child_process.h
};

// The pid of a process that has exited and been reaped.
int64_t DeadPid();

}  // namespace tierflow::scheduler::testing
