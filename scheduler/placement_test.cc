#include "scheduler/placement.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/strings.h"
#include "dag/graph.h"
#include "dag/loader.h"
#include "scheduler/testing/placement_tiers.h"

namespace tierflow::scheduler {
namespace {

using ::testing::HasSubstr;

Plan PlanOf(std::string_view yaml, PlanDetail detail = PlanDetail::kFull) {
  absl::StatusOr<dag::Pipeline> pipeline = dag::LoadPipelineText(yaml, "p.yaml");
  EXPECT_TRUE(pipeline.ok()) << pipeline.status();
  absl::StatusOr<dag::TaskGraph> graph = dag::TaskGraph::Build(*pipeline);
  EXPECT_TRUE(graph.ok()) << graph.status();
  return BuildPlan(*graph, detail);
}

using testing::PosixTier;

// RAM: fast and volatile; NVMe: fast, node; bulk: slow, durable (an
// object store); vault: archive.
std::vector<PlacementTier> Tiers(uint64_t ram_capacity = 0) {
  return {PosixTier("ram", Durability::kVolatile, {5000, 3000, 200000, 5}, ram_capacity),
          PosixTier("nvme", Durability::kNode, {2000, 1500, 50000, 80}),
          PosixTier("bulk", Durability::kDurable, {200, 150, 100, 20000}),
          PosixTier("vault", Durability::kArchive, {100, 80, 50, 50000})};
}

constexpr std::string_view kPipeline = R"(name: p
stages:
  ingest:
    kind: ingest
    run: ["true"]
    outputs: {raw: 10GiB}
  train:
    kind: train
    inputs: {data: ingest.raw}
    run: ["true"]
    outputs: {model: {size: 1GiB, durability: archive}}
  summary:
    inputs: {data: ingest.raw}
    io: {read: sequential}
    run: ["true"]
    outputs: [stats]
)";

TEST(PlacementTest, HomesMeetDurabilityAndConsumersReadFromTheFastestWorthwhileTier) {
  absl::StatusOr<Placement> placement = PlaceArtifacts(PlanOf(kPipeline), Tiers());
  ASSERT_TRUE(placement.ok()) << placement.status();
  ASSERT_EQ(placement->outputs.size(), 3u);
  const OutputPlacement& raw = placement->outputs[0];
  EXPECT_EQ(raw.task, "ingest");
  EXPECT_EQ(raw.home, "bulk");  // ingest needs durable: ram and nvme are ruled out
  EXPECT_EQ(raw.bytes, uint64_t{10} << 30);
  EXPECT_THAT(raw.reason, HasSubstr("needs durable"));
  EXPECT_THAT(raw.reason, HasSubstr("ram is volatile"));
  EXPECT_THAT(raw.reason, HasSubstr("nvme is node"));
  // ...but the producer writes it on NVMe (10x bulk's write rate, and node
  // durable: a crashed task loses nothing), and the engine writes it back.
  EXPECT_EQ(raw.write_tier, "nvme");
  EXPECT_GT(raw.write_back_seconds, raw.write_seconds);
  EXPECT_THAT(raw.reason, HasSubstr("written on nvme"));
  EXPECT_THAT(raw.reason, HasSubstr("written back to bulk in the background"));
  const OutputPlacement& model = placement->outputs[1];
  EXPECT_EQ(model.home, "vault");  // declared archive
  EXPECT_EQ(model.write_tier, "nvme");
  const OutputPlacement& stats = placement->outputs[2];
  EXPECT_EQ(stats.home, "nvme");  // generic outputs need node durability: not RAM
  EXPECT_EQ(stats.write_tier, "nvme");
  EXPECT_EQ(stats.write_back_seconds, 0);
  ASSERT_EQ(placement->inputs.size(), 2u);
  // train reads 10 GiB at random, 10 passes: a copy to RAM pays for itself.
  const InputPlacement& train = placement->inputs[0];
  EXPECT_EQ(train.task, "train");
  EXPECT_EQ(train.home, "bulk");
  EXPECT_EQ(train.source, "nvme");
  EXPECT_EQ(train.working, "ram");
  EXPECT_GT(train.copy_seconds, 0);
  EXPECT_LT(train.read_seconds + train.copy_seconds, train.home_read_seconds);
  EXPECT_THAT(train.reason, HasSubstr("copy to ram ahead of need"));
  // summary reads it once, sequentially: in place would cost ~ as much as a copy.
  const InputPlacement& summary = placement->inputs[1];
  EXPECT_EQ(summary.working, "nvme");  // where it was written, not the slow home
  EXPECT_EQ(summary.copy_seconds, 0);
  EXPECT_THAT(summary.reason, HasSubstr("reads in place"));
}

// The plan the engine places a run with (PlanDetail::kPlacement) leaves out
// the tasks of stages without inputs or outputs after their first, and
// places everything exactly as the full plan does.
TEST(PlacementTest, ThePlacementPlanDecidesAsTheFullPlanDoes) {
  constexpr std::string_view kMixed = R"(name: p
stages:
  sweep:
    foreach: {range: [0, 50]}
    run: ["true"]
    checkpoints: {keep: 3}
  shards:
    foreach: {range: [0, 20]}
    run: ["true"]
    outputs: {part: 1GiB}
  pinned:
    foreach: {range: [0, 30]}
    tier: nvme
    run: ["true"]
  train:
    kind: train
    inputs: {data: shards.part}
    run: ["true"]
    outputs: {model: {size: 1GiB, durability: archive}}
)";
  const Plan full = PlanOf(kMixed);
  const Plan light = PlanOf(kMixed, PlanDetail::kPlacement);
  EXPECT_EQ(light.task_count, full.task_count);
  size_t full_tasks = 0, light_tasks = 0, sweeps = 0;
  for (const PlanLayer& layer : full.layers) full_tasks += layer.tasks.size();
  for (const PlanLayer& layer : light.layers) {
    light_tasks += layer.tasks.size();
    for (const PlannedTask& task : layer.tasks) sweeps += task.stage == "sweep";
  }
  EXPECT_EQ(full_tasks, 101u);
  EXPECT_EQ(light_tasks, 23u);  // sweep[0], pinned[0], 20 shards, train
  EXPECT_EQ(sweeps, 1u);

  absl::StatusOr<Placement> a = PlaceArtifacts(full, Tiers());
  absl::StatusOr<Placement> b = PlaceArtifacts(light, Tiers());
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_EQ(a->outputs.size(), 21u);
  ASSERT_EQ(b->outputs.size(), a->outputs.size());
  for (size_t i = 0; i < a->outputs.size(); ++i) {
    EXPECT_EQ(b->outputs[i].task, a->outputs[i].task);
    EXPECT_EQ(b->outputs[i].home, a->outputs[i].home);
    EXPECT_EQ(b->outputs[i].write_tier, a->outputs[i].write_tier);
    EXPECT_EQ(b->outputs[i].reason, a->outputs[i].reason);
  }
  ASSERT_EQ(b->inputs.size(), a->inputs.size());
  for (size_t i = 0; i < a->inputs.size(); ++i) {
    EXPECT_EQ(b->inputs[i].task, a->inputs[i].task);
    EXPECT_EQ(b->inputs[i].working, a->inputs[i].working);
    EXPECT_EQ(b->inputs[i].reason, a->inputs[i].reason);
  }
  auto checkpoints_full = PlaceCheckpoints(full, Tiers());
  auto checkpoints_light = PlaceCheckpoints(light, Tiers());
  ASSERT_TRUE(checkpoints_full.ok() && checkpoints_light.ok());
  ASSERT_EQ(checkpoints_full->size(), 1u);
  ASSERT_EQ(checkpoints_light->size(), 1u);
  EXPECT_EQ((*checkpoints_light)[0].write_tier, (*checkpoints_full)[0].write_tier);
  EXPECT_EQ((*checkpoints_light)[0].reason, (*checkpoints_full)[0].reason);
}

TEST(PlacementTest, AnObjectStoreIsAHomeReachedByCopiesNeverAPlaceTasksReadOrWrite) {
  std::vector<PlacementTier> tiers = Tiers();
  tiers[2].config.adapter = "s3";              // bulk: an object store
  tiers[2].profile = {2000, 2000, 100000, 1};  // even when it claims to be fastest
  absl::StatusOr<Placement> placement = PlaceArtifacts(PlanOf(kPipeline), tiers);
  ASSERT_TRUE(placement.ok()) << placement.status();
  EXPECT_EQ(placement->outputs[0].home, "bulk");
  EXPECT_EQ(placement->outputs[0].write_tier, "nvme");
  for (const InputPlacement& input : placement->inputs) {
    EXPECT_NE(input.working, "bulk") << input.task;
    EXPECT_EQ(input.source, "nvme") << input.task;
  }

  // Only an object store and RAM: a durable output has no posix tier that
  // survives a task's crash to be written on first.
  std::vector<PlacementTier> s3_and_ram = {tiers[0], tiers[2]};
  absl::StatusOr<Placement> none = PlaceArtifacts(PlanOf(kPipeline), s3_and_ram);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(std::string(none.status().message()),
            "ingest.raw: its home bulk is an object store, and no posix tier (node or better, "
            "room for 10 GiB) can take the task's writes first");
}

TEST(PlacementTest, CapacityKeepsCopiesOffTiersTooSmallForThem) {
  // RAM holds 4 GiB: the 10 GiB input goes to NVMe instead.
  absl::StatusOr<Placement> placement =
      PlaceArtifacts(PlanOf(kPipeline), Tiers(/*ram_capacity=*/uint64_t{4} << 30));
  ASSERT_TRUE(placement.ok()) << placement.status();
  EXPECT_EQ(placement->inputs[0].working, "nvme");
}

TEST(PlacementTest, ClearErrorsWhenNothingFits) {
  std::vector<PlacementTier> fast_only = {Tiers()[0], Tiers()[1]};
  absl::StatusOr<Placement> placement = PlaceArtifacts(PlanOf(kPipeline), fast_only);
  ASSERT_FALSE(placement.ok());
  EXPECT_EQ(placement.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(std::string(placement.status().message()),
            "ingest.raw needs a durable home for 10 GiB and no tier fits: ram is volatile; "
            "nvme is node");

  absl::StatusOr<Placement> pinned = PlaceArtifacts(PlanOf(R"(name: p
stages:
  a:
    kind: checkpoint
    tier: ram
    run: ["true"]
    outputs: [ckpt]
)"),
                                                    Tiers());
  ASSERT_FALSE(pinned.ok());
  EXPECT_EQ(std::string(pinned.status().message()),
            "a.ckpt needs a durable home, but its pinned tier ram is only volatile");

  absl::StatusOr<Placement> unknown = PlaceArtifacts(PlanOf(R"(name: p
stages:
  a:
    tier: tape
    run: ["true"]
    outputs: [x]
)"),
                                                     Tiers());
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(
      unknown.status().message(),
      "a.x: stage a pins tier 'tape', which is not one of the tiers (ram, nvme, bulk, vault)");
}

// Cluster mode: ram and nvme are each worker's own; bulk and vault are shared.
TEST(PlacementTest, InClusterModeNodeTiersTakeWorkingCopiesOnly) {
  std::vector<PlacementTier> tiers = Tiers();
  tiers[0].config.scope = storage::Scope::kNode;
  tiers[1].config.scope = storage::Scope::kNode;
  tiers[2].config.scope = storage::Scope::kCluster;
  tiers[3].config.scope = storage::Scope::kCluster;
  PlacementOptions cluster;
  cluster.node_tiers_hold_working_copies_only = true;
  absl::StatusOr<Placement> placement = PlaceArtifacts(PlanOf(kPipeline), tiers, cluster);
  ASSERT_TRUE(placement.ok()) << placement.status();
  ASSERT_EQ(placement->outputs.size(), 3u);
  for (const OutputPlacement& out : placement->outputs) {
    EXPECT_NE(out.home, "ram") << out.task;
    EXPECT_NE(out.home, "nvme") << out.task;
    EXPECT_NE(out.write_tier, "ram") << out.task;
    EXPECT_NE(out.write_tier, "nvme") << out.task;
  }
  EXPECT_EQ(placement->outputs[2].home, "bulk");  // embedded mode: nvme
  EXPECT_THAT(placement->outputs[2].reason, HasSubstr("nvme is a node tier (working copies only)"));
  // train still reads its input from RAM: a copy its worker makes.
  const InputPlacement& train = placement->inputs[0];
  EXPECT_EQ(train.source, "bulk");
  EXPECT_EQ(train.working, "ram");
  EXPECT_THAT(train.reason, HasSubstr("copy to ram on the worker that runs it, before it starts"));

  // Embedded mode places the same tiers as before.
  absl::StatusOr<Placement> embedded = PlaceArtifacts(PlanOf(kPipeline), tiers);
  ASSERT_TRUE(embedded.ok()) << embedded.status();
  EXPECT_EQ(embedded->outputs[2].home, "nvme");

  absl::StatusOr<Placement> pinned = PlaceArtifacts(PlanOf(R"(name: p
stages:
  a:
    tier: nvme
    run: ["true"]
    outputs: [x]
)"),
                                                    tiers, cluster);
  ASSERT_FALSE(pinned.ok());
  EXPECT_EQ(pinned.status().message(),
            "a.x: stage a pins tier 'nvme', a node tier: in cluster mode each worker has its own, "
            "so it holds working copies only, never an output's home");
}

// PlaceCheckpoints, one row per case: the tiers, the mode, the stage's
// `checkpoints:` and what it must choose (or the error it must give).
struct CheckpointCase {
  std::string name;
  std::vector<PlacementTier> tiers;
  bool cluster = false;
  std::string checkpoints;  // the stage's `checkpoints:` value
  std::string write_tier, node_tier, flush_tier;
  std::vector<std::string> reason_says;
  std::string error;  // set: FailedPrecondition with this message
};

PlacementTier WithScope(PlacementTier tier, storage::Scope scope) {
  tier.config.scope = scope;
  return tier;
}

PlacementTier ObjectStore(std::string name, storage::TierProfile profile) {
  PlacementTier tier = PosixTier(std::move(name), Durability::kDurable, profile);
  tier.config.adapter = "s3";
  tier.config.scope = storage::Scope::kCluster;
  return tier;
}

std::vector<CheckpointCase> CheckpointCases() {
  const storage::Scope node = storage::Scope::kNode;
  const storage::Scope shared = storage::Scope::kCluster;
  // Cluster mode: nvme is each worker's own, scratch a shared file system,
  // bulk an object store.
  const std::vector<PlacementTier> cluster_tiers = {
      WithScope(PosixTier("nvme", Durability::kNode, {2000, 1500, 50000, 80}), node),
      WithScope(PosixTier("scratch", Durability::kNode, {900, 800, 5000, 500}), shared),
      ObjectStore("bulk", {200, 150, 200, 20000})};
  const PlacementTier fast_durable =
      PosixTier("fast", Durability::kDurable, {2500, 2000, 50000, 50});
  return {
      {"fastest posix tier, fastest durable one to flush",
       Tiers(),
       false,
       "{keep: 2}",
       "ram",
       "",
       "bulk",
       {"written on ram, the fastest posix tier (3000 MB/s)",
        "flushed to bulk, the fastest durable tier that allows deletes (150 MB/s), the last 2 "
        "kept"},
       ""},
      {"the stage's checkpoints.tier, even an archive",
       Tiers(),
       false,
       "{tier: vault}",
       "ram",
       "",
       "vault",
       {"flushed to vault, the stage's checkpoints.tier, the last 3 kept"},
       ""},
      {"the fastest posix tier is the durable one: no flush tier",
       {fast_durable, PosixTier("nvme", Durability::kNode, {2000, 1500, 50000, 80})},
       false,
       "true",
       "fast",
       "",
       "",
       {"written on fast",
        "no flush tier: fast, the fastest durable tier that allows deletes, is "
        "the tier they are written on, so they are not flushed, not recorded "
        "in the store and not pruned to the last 3"},
       ""},
      {"a checkpoints.tier that is the write tier: no flush tier",
       Tiers(),
       false,
       "{tier: ram}",
       "ram",
       "",
       "",
       {"no flush tier: ram, the stage's checkpoints.tier, is the tier they are written on"},
       ""},
      {"no durable tier",
       {PosixTier("nvme", Durability::kNode, {2000, 1500, 50000, 80})},
       false,
       "true",
       "nvme",
       "",
       "",
       {"not flushed: no durable tier that allows deletes"},
       ""},
      {"no tiers: the run's folder",
       {},
       false,
       "{tier: anything}",
       "",
       "",
       "",
       {"no tiers: tasks write checkpoints in the run's folder, and they are not flushed"},
       ""},
      {"cluster mode: a shared tier, a node tier first, flushed to the object store",
       cluster_tiers,
       true,
       "true",
       "scratch",
       "nvme",
       "bulk",
       {"written on scratch, the fastest posix tier every worker reaches (800 MB/s)",
        "workers write them first on their node tier nvme (1500 MB/s) and copy each committed "
        "one to scratch"},
       ""},
      {"embedded mode: the same tiers, the node tier written on directly",
       cluster_tiers,
       false,
       "true",
       "nvme",
       "",
       "bulk",
       {"written on nvme, the fastest posix tier (1500 MB/s)"},
       ""},
      {"cluster mode: no posix tier every worker reaches",
       {WithScope(PosixTier("nvme", Durability::kNode, {2000, 1500, 50000, 80}), node),
        ObjectStore("bulk", {200, 150, 200, 20000})},
       true,
       "true",
       "",
       "",
       "bulk",
       {"no posix tier every worker reaches to write them on: tasks write them in the run's "
        "folder"},
       ""},
      {"an unknown checkpoints.tier",
       Tiers(),
       false,
       "{tier: nowhere}",
       "",
       "",
       "",
       {},
       "stage train: checkpoints.tier 'nowhere' is not one of the run's tiers"},
      {"cluster mode: a node checkpoints.tier",
       cluster_tiers,
       true,
       "{tier: nvme}",
       "",
       "",
       "",
       {},
       "stage train: checkpoints.tier 'nvme' is not reachable (a node tier)"},
  };
}

TEST(PlaceCheckpoints, ChoosesTheTiersWithAReason) {
  for (const CheckpointCase& c : CheckpointCases()) {
    SCOPED_TRACE(c.name);
    // A foreach stage with checkpoints (listed once), a stage without.
    const Plan plan = PlanOf(StrCat(R"(name: p
stages:
  prep:
    run: ["true"]
    outputs: [x]
  train:
    foreach: [a, b]
    inputs: {x: prep.x}
    checkpoints: )",
                                    c.checkpoints, R"(
    run: ["true"]
)"));
    PlacementOptions options;
    options.node_tiers_hold_working_copies_only = c.cluster;
    absl::StatusOr<std::vector<CheckpointPlacement>> placed =
        PlaceCheckpoints(plan, c.tiers, options);
    if (!c.error.empty()) {
      ASSERT_FALSE(placed.ok());
      EXPECT_EQ(placed.status().code(), absl::StatusCode::kFailedPrecondition);
      EXPECT_EQ(placed.status().message(), c.error);
      continue;
    }
    ASSERT_TRUE(placed.ok()) << placed.status();
    ASSERT_EQ(placed->size(), 1u);
    const CheckpointPlacement& train = placed->front();
    EXPECT_EQ(train.stage, "train");
    EXPECT_EQ(train.write_tier, c.write_tier);
    EXPECT_EQ(train.node_tier, c.node_tier);
    EXPECT_EQ(train.flush_tier, c.flush_tier);
    for (const std::string& said : c.reason_says) EXPECT_THAT(train.reason, HasSubstr(said));
  }
}

// Ties go to the first tier listed, as the engine always chose.
TEST(PlaceCheckpoints, TiesGoToTheFirstTier) {
  const Plan plan = PlanOf(R"(name: p
stages:
  a:
    checkpoints: true
    run: ["true"]
)");
  std::vector<PlacementTier> tiers = {
      PosixTier("one", Durability::kDurable, {100, 500, 100, 100}),
      PosixTier("two", Durability::kDurable, {100, 500, 100, 100}),
      PosixTier("three", Durability::kDurable, {100, 400, 100, 100})};
  absl::StatusOr<std::vector<CheckpointPlacement>> placed = PlaceCheckpoints(plan, tiers);
  ASSERT_TRUE(placed.ok()) << placed.status();
  ASSERT_EQ(placed->size(), 1u);
  EXPECT_EQ((*placed)[0].write_tier, "one");
  EXPECT_EQ((*placed)[0].flush_tier, "");  // "one" is also the fastest durable tier
  std::swap(tiers[0], tiers[2]);
  placed = PlaceCheckpoints(plan, tiers);
  ASSERT_TRUE(placed.ok()) << placed.status();
  EXPECT_EQ((*placed)[0].write_tier, "two");
}

}  // namespace
}  // namespace tierflow::scheduler
