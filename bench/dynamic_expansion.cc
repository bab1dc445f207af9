// Dynamic fan-out against a static foreach of the same size: the time to
// record N tasks in the store, measured in one sitting (bench/README.md,
// "dag_scale: dynamic expansion"). Static: the run model of a pipeline
// with `foreach: {range: [0, N]}` built and its task rows written, as a new
// run does. Dynamic: the run model of `foreach: {from: list.out}`, then the
// list's N lines read, checked, placed and recorded
// (scheduler/dynamic_expansion.h ExpandAfter), as the engine does when the
// list's task succeeds. Each in one transaction on a fresh store; the
// median of --runs runs each (default 5), static and dynamic alternating.
#include "scheduler/dynamic_expansion.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "scheduler/internal/run_model.h"
#include "scheduler/replicas.h"
#include "scheduler/run_writer.h"
#include "scheduler/store.h"

namespace fs = std::filesystem;
using namespace tierflow::scheduler;  // NOLINT: a benchmark's main

namespace {

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

[[noreturn]] void Die(const std::string& what, const absl::Status& status) {
  std::cerr << what << ": " << status << "\n";
  std::exit(1);
}

// A run model of `yaml` on a fresh store in `dir`, placed on the implicit
// tier, and its writer.
struct Setup {
  internal::RunModel run;
  std::unique_ptr<Database> db;
  std::optional<RunWriter> writer;
};

void Prepare(const fs::path& dir, const std::string& yaml, Setup& setup) {
  fs::remove_all(dir);
  fs::create_directories(dir);
  if (auto s = internal::BuildRunModel(setup.run, yaml, "bench.yaml", {}); !s.ok()) {
    Die("model", s);
  }
  setup.run.state_dir = dir;
  auto db = OpenStore((dir / "tierflow.db").string());
  if (!db.ok()) Die("store", db.status());
  setup.db = std::move(*db);
  setup.writer.emplace(*setup.db, [] { return 0.5; });
  if (auto s = internal::PlaceRun(setup.run, {}, {}); !s.ok()) Die("place", s);
  auto t = setup.writer->BeginOnce();
  if (!t.ok()) Die("begin", t.status());
  NewRun row;
  row.pipeline_name = setup.run.pipeline.name;
  row.file = "bench.yaml";
  row.yaml = yaml;
  row.working_dir = dir.string();
  auto id = setup.writer->CreateRun(row);
  if (!id.ok()) Die("run", id.status());
  setup.run.run_id = *id;
  if (auto s = setup.writer->Prepare(*id); !s.ok()) Die("prepare", s);
  if (auto s = setup.writer->Commit(*t); !s.ok()) Die("commit", s);
}

double TimeStatic(const fs::path& dir, int n) {
  const std::string yaml = "name: s\nstages:\n  process:\n    foreach: {range: [0, " +
                           std::to_string(n) + "]}\n    run: [\"true\"]\n    outputs: [out]\n";
  Setup setup;
  const auto start = std::chrono::steady_clock::now();
  Prepare(dir, yaml, setup);
  auto t = setup.writer->BeginOnce();
  if (!t.ok()) Die("begin", t.status());
  if (auto s = setup.writer->CreateTasks(setup.run.run_id, internal::NewTasks(setup.run));
      !s.ok()) {
    Die("tasks", s);
  }
  if (auto s = setup.writer->Commit(*t); !s.ok()) Die("commit", s);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double TimeDynamic(const fs::path& dir, int n) {
  const std::string yaml =
      "name: d\nstages:\n  list:\n    run: [\"true\"]\n    outputs: [out]\n  process:\n"
      "    foreach: {from: list.out}\n    run: [\"true\"]\n    outputs: [out]\n";
  Setup setup;
  const auto start = std::chrono::steady_clock::now();
  Prepare(dir, yaml, setup);
  // The list, as its task wrote it (not timed: the task's work).
  const auto written = std::chrono::steady_clock::now();
  const fs::path list = dir / "list.txt";
  {
    std::ofstream out(list);
    for (int i = 0; i < n; ++i) out << "shard-" << i << "\n";
  }
  setup.run.tasks[0].outputs[0].path = list.string();
  setup.run.tasks[0].outputs[0].id = 1;
  const auto resumed = std::chrono::steady_clock::now();
  auto t = setup.writer->BeginOnce();
  if (!t.ok()) Die("begin", t.status());
  if (auto s = setup.writer->CreateTasks(setup.run.run_id, internal::NewTasks(setup.run));
      !s.ok()) {
    Die("tasks", s);
  }
  auto outcome = internal::ExpandAfter(setup.run, *setup.writer, 0);
  if (!outcome.ok()) Die("expand", outcome.status());
  if (outcome->expanded.size() != 1 || outcome->expanded[0].count != static_cast<uint32_t>(n)) {
    std::cerr << "expansion: expected " << n << " tasks\n";
    std::exit(1);
  }
  if (auto s = setup.writer->Commit(*t); !s.ok()) Die("commit", s);
  const auto end = std::chrono::steady_clock::now();
  return std::chrono::duration<double>((written - start) + (end - resumed)).count();
}

}  // namespace

int main(int argc, char** argv) {
  int n = 100'000;
  int runs = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--items") n = std::stoi(argv[i + 1]);
    if (flag == "--runs") runs = std::stoi(argv[i + 1]);
  }
  const fs::path dir =
      fs::temp_directory_path() / ("tierflow-bench-dyn-" + std::to_string(getpid()));
  std::vector<double> statics, dynamics;
  for (int r = 0; r < runs; ++r) {
    statics.push_back(TimeStatic(dir / "static", n));
    dynamics.push_back(TimeDynamic(dir / "dynamic", n));
  }
  fs::remove_all(dir);
  const double s = Median(statics), d = Median(dynamics);
  std::printf("| foreach of %d items | runs | median time | vs static |\n|---|---:|---:|---:|\n",
              n);
  std::printf("| static (range, recorded at run start) | %d | %.0f ms | 1x |\n", runs, s * 1000);
  std::printf("| dynamic (list read, checked, placed, recorded) | %d | %.0f ms | %.2fx |\n", runs,
              d * 1000, d / s);
  return 0;
}
