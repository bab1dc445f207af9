#include "scheduler/placement_record.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "common/status.h"
#include "common/strings.h"
#include "dag/graph.h"
#include "dag/loader.h"
#include "scheduler/store.h"
#include "scheduler/testing/placement_tiers.h"

namespace tierflow::scheduler {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string TempDir() {
  std::string pattern = (fs::temp_directory_path() / "tierflow-placements.XXXXXX").string();
  return mkdtemp(pattern.data());
}

absl::StatusOr<int64_t> Count(Database& db, const std::string& sql) {
  TF_ASSIGN_OR_RETURN(Statement statement, db.Prepare(sql));
  TF_ASSIGN_OR_RETURN(bool row, statement.Step());
  if (!row) return absl::InternalError(StrCat("no row: ", sql));
  return statement.Int(0);
}

int64_t CountOrFail(Database& db, const std::string& sql) {
  absl::StatusOr<int64_t> count = Count(db, sql);
  EXPECT_TRUE(count.ok()) << count.status();
  return count.value_or(-1);
}

// A new store with one pipeline and the run `run_id` (the foreign key).
std::unique_ptr<Database> StoreWithRun(const std::string& dir, const std::string& run_id) {
  absl::StatusOr<std::unique_ptr<Database>> db = OpenStore(dir + "/tierflow.db");
  EXPECT_TRUE(db.ok()) << db.status();
  EXPECT_TRUE((*db)
                  ->Execute(StrCat("INSERT INTO pipelines(id, name, yaml_hash, yaml, file, "
                                   "created_at) VALUES (1, 'p', 'h', '', 'p.yaml', 0);"
                                   "INSERT INTO runs(id, pipeline_id, pipeline_name, file, "
                                   "working_dir, params_json, state, slots, created_at) VALUES ('",
                                   run_id, "', 1, 'p', 'p.yaml', '/', '{}', 'running', 1, 0)"))
                  .ok());
  return std::move(*db);
}

using testing::PosixTier;

// A run that predates schema 9: a store today's binary (commit 8cf1ea4,
// schema 8) left after running examples/quickstart once (see
// testdata/README.md). Opening it migrates it; nothing old changes, and its
// run has no recorded decisions.
TEST(PlacementRecord, AStoreOfSchema8MigratesAndItsRunHasNoRecordedDecisions) {
  const char* source = std::getenv("TIERFLOW_SOURCE_DIR");
  ASSERT_NE(source, nullptr) << "run under ctest, which sets TIERFLOW_SOURCE_DIR";
  const std::string dir = TempDir();
  const std::string path = dir + "/tierflow.db";
  fs::copy_file(fs::path(source) / "scheduler/testdata/schema8_quickstart.db", path);
  {
    absl::StatusOr<std::unique_ptr<Database>> old = Database::Open(path, Database::Mode::kReadOnly);
    ASSERT_TRUE(old.ok()) << old.status();
    EXPECT_EQ(CountOrFail(**old, "PRAGMA user_version"), 8);
  }
  absl::StatusOr<std::unique_ptr<Database>> opened = OpenStore(path);
  ASSERT_TRUE(opened.ok()) << opened.status();
  Database& db = **opened;
  EXPECT_EQ(CountOrFail(db, "PRAGMA user_version"), kSchemaVersion);
  EXPECT_EQ(kSchemaVersion, 16);
  // What the old binary wrote, row for row.
  const std::string run = "quickstart-dc349c";
  EXPECT_EQ(CountOrFail(db,
                        "SELECT count(*) FROM runs WHERE state = 'succeeded' AND "
                        "tiers_json IS NOT NULL AND id = 'quickstart-dc349c'"),
            1);
  EXPECT_EQ(CountOrFail(db, "SELECT count(*) FROM tasks WHERE state = 'succeeded'"), 9);
  EXPECT_EQ(CountOrFail(db, "SELECT count(*) FROM attempts"), 9);
  EXPECT_EQ(CountOrFail(db, "SELECT count(*) FROM artifacts"), 10);
  EXPECT_EQ(CountOrFail(db, "SELECT count(*) FROM artifact_copies"), 16);
  EXPECT_EQ(CountOrFail(db, "SELECT count(*) FROM lineage_edges"), 20);
  EXPECT_EQ(CountOrFail(db, "SELECT count(*) FROM checkpoints"), 5);
  EXPECT_EQ(CountOrFail(db, "SELECT count(*) FROM events"), 37);
  // The new table is there, empty for the old run; so is schema 10's
  // column, empty for the old attempts.
  EXPECT_EQ(CountOrFail(db, "SELECT count(*) FROM placements"), 0);
  EXPECT_EQ(CountOrFail(db, "SELECT count(*) FROM attempts WHERE handle IS NULL"), 9);
  EXPECT_EQ(CountOrFail(db, "SELECT count(*) FROM runs WHERE executor IS NULL"), 1);
  EXPECT_EQ(CountOrFail(db, "SELECT count(*) FROM runs WHERE executor_options IS NULL"), 1);
  EXPECT_EQ(CountOrFail(db, "SELECT count(*) FROM attempts WHERE ran_ms IS NULL"), 9);
  for (const char* task : {"train", "ingest[0]", "publish", "no-such-task"}) {
    absl::StatusOr<std::optional<RecordedTaskPlacement>> loaded = LoadTaskPlacement(db, run, task);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    EXPECT_FALSE(loaded->has_value()) << task;
  }
  opened->reset();
  fs::remove_all(dir);
}

// A new run's decisions, written as the engine writes them, read back per
// task as they were made: every field, in placement order.
TEST(PlacementRecord, ANewRunsDecisionsRoundTrip) {
  absl::StatusOr<dag::Pipeline> pipeline = dag::LoadPipelineText(R"(name: p
stages:
  ingest:
    foreach: ["a", "b \"quoted\""]
    run: ["true"]
    outputs: {raw: 10GiB, index: 1MiB}
  train:
    inputs: {data: ingest.raw, index: ingest.index}
    checkpoints: {keep: 2}
    run: ["true"]
    outputs: {model: {size: 1GiB, durability: durable}}
  summary:
    run: ["true"]
)",
                                                                 "p.yaml");
  ASSERT_TRUE(pipeline.ok()) << pipeline.status();
  absl::StatusOr<dag::TaskGraph> graph = dag::TaskGraph::Build(*pipeline);
  ASSERT_TRUE(graph.ok()) << graph.status();
  const Plan plan = BuildPlan(*graph);
  const std::vector<PlacementTier> tiers = {
      PosixTier("ram", Durability::kVolatile, {5000, 3000, 200000, 5}),
      PosixTier("nvme", Durability::kNode, {2000, 1500, 50000, 80}),
      PosixTier("bulk", Durability::kDurable, {200, 150, 100, 20000})};
  absl::StatusOr<Placement> placement = PlaceArtifacts(plan, tiers);
  ASSERT_TRUE(placement.ok()) << placement.status();
  // Items are placed alike today; one that is not keeps its own decision.
  for (OutputPlacement& o : placement->outputs) {
    if (o.task == "ingest[b \"quoted\"]" && o.output == "index") {
      o.home = "bulk";
      o.reason = "placed unlike its stage's first item";
    }
  }
  absl::StatusOr<std::vector<CheckpointPlacement>> checkpoints = PlaceCheckpoints(plan, tiers);
  ASSERT_TRUE(checkpoints.ok()) << checkpoints.status();
  ASSERT_EQ(checkpoints->size(), 1u);

  const std::string dir = TempDir();
  std::unique_ptr<Database> db = StoreWithRun(dir, "p-000001");
  for (int times = 0; times < 2; ++times) {  // the second write changes nothing
    absl::StatusOr<Transaction> transaction = Transaction::Begin(*db);
    ASSERT_TRUE(transaction.ok()) << transaction.status();
    absl::Status recorded = RecordPlacement(*db, "p-000001", *placement, *checkpoints);
    ASSERT_TRUE(recorded.ok()) << recorded;
    ASSERT_TRUE(transaction->Commit().ok());
    // The run; ingest's raw and index once for both items, and the second
    // item's own index; train's model, its two inputs and its checkpoints.
    EXPECT_EQ(CountOrFail(*db, "SELECT count(*) FROM placements"), 8);
  }

  for (const char* task : {"ingest[a]", "ingest[b \"quoted\"]", "train", "summary"}) {
    SCOPED_TRACE(task);
    absl::StatusOr<std::optional<RecordedTaskPlacement>> loaded =
        LoadTaskPlacement(*db, "p-000001", task);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    ASSERT_TRUE(loaded->has_value());
    const RecordedTaskPlacement& got = **loaded;
    std::vector<const OutputPlacement*> outputs;
    for (const OutputPlacement& o : placement->outputs) {
      if (o.task == task) outputs.push_back(&o);
    }
    std::vector<const InputPlacement*> inputs;
    for (const InputPlacement& i : placement->inputs) {
      if (i.task == task) inputs.push_back(&i);
    }
    ASSERT_EQ(got.placement.outputs.size(), outputs.size());
    // Every field, the estimates exactly (JSON keeps every digit).
    for (size_t k = 0; k < outputs.size(); ++k) {
      EXPECT_TRUE(got.placement.outputs[k] == *outputs[k]) << outputs[k]->output;
    }
    ASSERT_EQ(got.placement.inputs.size(), inputs.size());
    for (size_t k = 0; k < inputs.size(); ++k) {
      EXPECT_TRUE(got.placement.inputs[k] == *inputs[k]) << inputs[k]->input;
    }
    if (std::string_view(task) == "train") {
      ASSERT_TRUE(got.checkpoint.has_value());
      EXPECT_EQ(got.checkpoint->stage, "train");
      EXPECT_EQ(got.checkpoint->write_tier, "ram");
      EXPECT_EQ(got.checkpoint->flush_tier, "bulk");
      EXPECT_EQ(got.checkpoint->node_tier, "");
      EXPECT_EQ(got.checkpoint->reason, (*checkpoints)[0].reason);
    } else {
      EXPECT_FALSE(got.checkpoint.has_value());
    }
  }
  // The comparisons above compared what the test meant them to.
  absl::StatusOr<std::optional<RecordedTaskPlacement>> train =
      LoadTaskPlacement(*db, "p-000001", "train");
  ASSERT_TRUE(train.ok() && train->has_value());
  ASSERT_EQ((*train)->placement.inputs.size(), 2u);
  EXPECT_EQ((*train)->placement.inputs[0].input, "data");  // placement order, not by name
  absl::StatusOr<std::optional<RecordedTaskPlacement>> item =
      LoadTaskPlacement(*db, "p-000001", "ingest[b \"quoted\"]");
  ASSERT_TRUE(item.ok() && item->has_value());
  ASSERT_EQ((*item)->placement.outputs.size(), 2u);
  EXPECT_EQ((*item)->placement.outputs[0].output, "raw");
  EXPECT_EQ((*item)->placement.outputs[1].home, "bulk");
  // Another run in the same store recorded nothing.
  absl::StatusOr<std::optional<RecordedTaskPlacement>> other =
      LoadTaskPlacement(*db, "p-000002", "train");
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_FALSE(other->has_value());

  // A row that is not what RecordPlacement wrote is an error, not a guess.
  ASSERT_TRUE(db->Execute("UPDATE placements SET detail_json = '{\"home\": 1}' WHERE "
                          "task_id = 'train' AND kind = 'output'")
                  .ok());
  absl::StatusOr<std::optional<RecordedTaskPlacement>> broken =
      LoadTaskPlacement(*db, "p-000001", "train");
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(broken.status().message(), HasSubstr("train (output model) is not readable"));
  db.reset();
  fs::remove_all(dir);
}

// One task's decisions are one lookup of the primary key, never a scan.
TEST(PlacementRecord, ATasksDecisionsAreReadThroughThePrimaryKey) {
  const std::string dir = TempDir();
  std::unique_ptr<Database> db = StoreWithRun(dir, "p-000001");
  absl::StatusOr<Statement> plan = db->Prepare(
      "EXPLAIN QUERY PLAN SELECT task_id, kind, name, tier, detail_json, reason FROM "
      "placements WHERE run_id = ? AND task_id IN ('', ?, ?) ORDER BY seq");
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::string said;
  for (;;) {
    absl::StatusOr<bool> row = plan->Step();
    ASSERT_TRUE(row.ok()) << row.status();
    if (!*row) break;
    said += plan->Text(3) + "\n";
  }
  EXPECT_THAT(said, HasSubstr("SEARCH placements USING PRIMARY KEY (run_id=? AND task_id=?)"));
  EXPECT_THAT(said, ::testing::Not(HasSubstr("SCAN placements")));
  db.reset();
  fs::remove_all(dir);
}

// The database and its WAL, in MB.
double DatabaseMegabytes(const std::string& path) {
  std::error_code error;
  double bytes = 0;
  for (const std::string& file : {path, path + "-wal"}) {
    const uintmax_t size = fs::file_size(file, error);
    if (!error) bytes += static_cast<double>(size);
  }
  return bytes / 1e6;
}

// A run of 100,000 tasks, each with an output and an input: recording its
// decisions stays a small part of starting it. Two shapes: a foreach of
// 100,000 items feeding another (its items are placed alike: a few rows),
// and the worst case, 100,000 stages each placed differently (a row per
// decision). The times are printed for the record; the limit only catches
// a pathological slowdown (sanitizers on, a shared machine).
TEST(PlacementRecord, RecordsAHundredThousandTasksQuickly) {
  constexpr int kTasks = 100000;
  for (const bool foreach : {true, false}) {
    SCOPED_TRACE(foreach ? "one foreach" : "every task its own stage");
    Placement placement;
    placement.outputs.reserve(kTasks);
    placement.inputs.reserve(kTasks);
    for (int t = 0; t < kTasks; ++t) {
      OutputPlacement& o = placement.outputs.emplace_back();
      o.task = foreach ? StrCat("shard[", t, "]") : StrCat("shard", t);
      o.output = "part";
      o.bytes = kAssumedBytes;
      o.bytes_assumed = true;
      o.home = "local";
      o.write_tier = "local";
      o.write_seconds = 0.7158278826666667;
      o.reason = "needs node; write 1.0 GiB (size assumed) ≈ 0.72 s at 1500 MB/s (assumed profile)";
      InputPlacement& i = placement.inputs.emplace_back();
      i.task = foreach ? StrCat("map[", t, "]") : StrCat("map", t);
      i.input = "part";
      i.producer_task = foreach ? StrCat("shard[", kTasks - 1, "]") : o.task;
      i.output = "part";
      i.home = i.source = i.working = "local";
      i.read_seconds = i.home_read_seconds = 1.0737418240800001;
      i.reason =
          "reads in place: sequential reads of 1.0 GiB ≈ 1.07 s on local (assumed profile); "
          "no copy would save a tenth of that";
    }
    const std::string dir = TempDir();
    std::unique_ptr<Database> db = StoreWithRun(dir, "big-000001");
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<Transaction> transaction = Transaction::Begin(*db);
    ASSERT_TRUE(transaction.ok()) << transaction.status();
    absl::Status recorded = RecordPlacement(*db, "big-000001", placement, {});
    ASSERT_TRUE(recorded.ok()) << recorded;
    ASSERT_TRUE(transaction->Commit().ok());
    const auto wrote = std::chrono::steady_clock::now();
    const std::string last_task = foreach ? "map[99999]" : "map99999";
    absl::StatusOr<std::optional<RecordedTaskPlacement>> last =
        LoadTaskPlacement(*db, "big-000001", last_task);
    const auto read = std::chrono::steady_clock::now();
    ASSERT_TRUE(last.ok() && last->has_value());
    ASSERT_EQ((*last)->placement.inputs.size(), 1u);
    EXPECT_EQ((*last)->placement.inputs[0], placement.inputs.back());
    const int64_t rows = CountOrFail(*db, "SELECT count(*) FROM placements");
    EXPECT_EQ(rows, foreach ? 3 : 2 * kTasks + 1);
    const auto ms = [](auto d) {
      return std::chrono::duration_cast<std::chrono::microseconds>(d).count() / 1000.0;
    };
    std::printf(
        "%s: recorded %lld rows in %.1f ms (commit included); one task read in %.3f ms; "
        "database %.1f MB\n",
        foreach ? "one foreach" : "every task its own stage", static_cast<long long>(rows),
        ms(wrote - start), ms(read - wrote), DatabaseMegabytes(dir + "/tierflow.db"));
    EXPECT_LT(wrote - start, std::chrono::seconds(120));
    db.reset();
    fs::remove_all(dir);
  }
}

}  // namespace
}  // namespace tierflow::scheduler
