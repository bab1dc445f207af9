// The live display's snapshot of a run (scheduler/progress_queries.h
// GetRunProgress) on runs of 10k and 100k tasks, against a baseline measured
// in the same sitting: reading every task's stage and state once. The
// display polls at most every 20 x the snapshot's time (cli/live_display.cc),
// so this says how live the display of a big run is (bench/README.md,
// "progress_snapshot"). Each run: a foreach of N tasks on a fresh store, half
// succeeded, 8 running, the rest queued, two events per finished task and a
// data wait per 100; the median of --runs reads (default 5).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "common/strings.h"
#include "scheduler/internal/run_model.h"
#include "scheduler/progress_queries.h"
#include "scheduler/replicas.h"
#include "scheduler/run_writer.h"
#include "scheduler/store.h"

namespace fs = std::filesystem;
using namespace tierflow::scheduler;  // NOLINT: a benchmark's main
using tierflow::StrCat;

namespace {

[[noreturn]] void Die(const std::string& what, const absl::Status& status) {
  std::cerr << what << ": " << status << "\n";
  std::exit(1);
}

template <typename F>
double MedianMs(int runs, F&& f) {
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    auto start = std::chrono::steady_clock::now();
    f();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                     .count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// A run of `n` tasks in a fresh store in `dir`; its id.
std::string Fill(const fs::path& dir, int n) {
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string yaml =
      StrCat("name: s\nstages:\n  prepare:\n    run: [\"true\"]\n  shard:\n",
             "    foreach: {range: [0, ", n, "]}\n    needs: [prepare]\n",
             "    run: [\"true\"]\n  report:\n    needs: [shard]\n", "    run: [\"true\"]\n");
  internal::RunModel run;
  if (auto s = internal::BuildRunModel(run, yaml, "bench.yaml", {}); !s.ok()) Die("model", s);
  run.state_dir = dir;
  auto db = OpenStore((dir / "tierflow.db").string());
  if (!db.ok()) Die("store", db.status());
  RunWriter writer(**db, [] { return 0.5; });
  if (auto s = internal::PlaceRun(run, {}, {}); !s.ok()) Die("place", s);
  auto t = writer.BeginOnce();
  if (!t.ok()) Die("begin", t.status());
  NewRun row;
  row.pipeline_name = run.pipeline.name;
  row.file = "bench.yaml";
  row.yaml = yaml;
  row.working_dir = dir.string();
  auto id = writer.CreateRun(row);
  if (!id.ok()) Die("run", id.status());
  if (auto s = writer.Prepare(*id); !s.ok()) Die("prepare", s);
  if (auto s = writer.CreateTasks(*id, internal::NewTasks(run)); !s.ok()) Die("tasks", s);
  if (auto s = writer.Commit(*t); !s.ok()) Die("commit", s);
  const std::string sql = StrCat(
      "BEGIN; UPDATE tasks SET state = 'succeeded' WHERE run_id = '", *id, "' AND seq < ", n / 2,
      "; UPDATE tasks SET state = 'running', started_at = 1 WHERE run_id = '", *id,
      "' AND seq >= ", n / 2, " AND seq < ", n / 2 + 8,
      "; UPDATE tasks SET state = 'queued' WHERE run_id = '", *id, "' AND seq >= ", n / 2 + 8,
      "; WITH RECURSIVE i(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM i WHERE k < ", n / 2,
      ") INSERT INTO events(run_id, task_id, time, kind, message) SELECT '", *id,
      "', 'shard[' || k || ']', k, kind, '' FROM i, (SELECT 'started' AS kind UNION ALL SELECT "
      "'succeeded'); WITH RECURSIVE i(k) AS (SELECT ",
      n / 2 + 8, " UNION ALL SELECT k + 100 FROM i ", "WHERE k + 100 < ", n,
      ") INSERT INTO events(run_id, task_id, time, kind, message) SELECT '", *id,
      "', 'shard[' || k || ']', k, 'data_wait', '' FROM i; COMMIT;");
  if (auto s = (*db)->Execute(sql); !s.ok()) Die("fill", s);
  return *id;
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 5;
  std::vector<int> sizes = {10000, 100000};
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--runs") runs = std::stoi(argv[i + 1]);
    if (flag == "--sizes") sizes = {std::stoi(argv[i + 1])};
  }
  const fs::path dir = fs::temp_directory_path() / StrCat("tierflow-progress-bench-", getpid());
  std::printf("%-8s %14s %16s %10s %14s\n", "tasks", "scan ms", "snapshot ms", "ratio",
              "poll every ms");
  std::fflush(stdout);
  for (int n : sizes) {
    const std::string run_id = Fill(dir, n);
    auto db = OpenStoreReadOnly((dir / "tierflow.db").string());
    if (!db.ok()) Die("open", db.status());
    auto scan = (*db)->Prepare("SELECT stage, state FROM tasks WHERE run_id = ?");
    if (!scan.ok()) Die("scan", scan.status());
    int64_t rows = 0;
    const double base = MedianMs(runs, [&] {
      scan->Bind(1, run_id);
      for (;;) {
        auto more = scan->Step();
        if (!more.ok()) Die("scan", more.status());
        if (!*more) break;
        rows += scan->Text(1).size() > 0;
      }
      scan->Reset();
    });
    if (rows != static_cast<int64_t>(runs) * (n + 2)) Die("scan", absl::InternalError("rows"));
    RunProgress last;
    const double snap = MedianMs(runs, [&] {
      auto p = GetRunProgress(**db, run_id, {});
      if (!p.ok()) Die("snapshot", p.status());
      last = std::move(*p);
    });
    if (last.counts.total != static_cast<uint32_t>(n + 2) || last.data_waits_total == 0) {
      std::cerr << "snapshot counted " << last.counts.total << " tasks, " << last.data_waits_total
                << " waits\n";
      return 1;
    }
    std::printf("%-8d %14.1f %16.1f %10.1f %14.0f\n", n, base, snap, snap / base,
                std::max(100.0, 20 * snap));
  }
  fs::remove_all(dir);
  return 0;
}
