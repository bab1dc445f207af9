// The model of the run an engine drives, shared by the engine's units
// (engine.cc's state machine, replicas, checkpoints, the task cache,
// resume): the pipeline and its task graph, each task's and stage's
// bookkeeping, the run's tiers, where every artifact lives on them, and the
// moves (copies, deletions, checkpoint flushes) under way. Internal to
// scheduler/.
//
// Thread-safety: none. Everything here belongs to whichever thread runs the
// engine's turn (engine.h, "Threading"), and is touched by no other.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/metrics.h"
#include "common/strings.h"
#include "common/units.h"
#include "dag/graph.h"
#include "dag/pipeline.h"
#include "scheduler/engine.h"
#include "scheduler/mover.h"
#include "scheduler/placement.h"
#include "scheduler/run_writer.h"
#include "scheduler/store.h"
#include "storage_adapters/adapter.h"

namespace tierflow::scheduler::internal {

// The current artifact of one output of a task.
struct ArtifactRec {
  int64_t id = 0;  // its artifacts row; 0: none (yet)
  std::string path;
  std::string hash;
  uint64_t bytes = 0;
};

// One output's copy on one tier. kStreaming: a streamed copy under way
// whose first files are there.
enum class CopyState : uint8_t { kNone, kCopying, kStreaming, kPresent };

inline constexpr uint8_t kNoTier = 255;

// Where one output of a task lives: its home and write tiers (indexes into
// RunModel::tiers) and, per tier, its copy there and how many unfinished
// tasks read it there.
struct OutputPlace {
  uint8_t home = 0;
  uint8_t write = 0;
  std::vector<CopyState> copies;  // by tier
  std::vector<int64_t> copy_ids;  // the artifact_copies row of each copy
  std::vector<uint32_t> readers;  // by tier
  uint32_t consumers = 0;         // tasks that read it, finished or not
  uint64_t dirty = 0;             // bit per tier: a copy there failed or was cut off
  uint64_t stream_tiers = 0;      // bit per tier: a reader there streams it (`stream: true`)

  // A new artifact replaces the one these copies held: they are no copies
  // of it, and what they left on their tiers must go before it is copied
  // there (same keys).
  void ForgetCopies() {
    for (size_t x = 0; x < copies.size(); ++x) {
      if (copies[x] != CopyState::kNone) dirty |= uint64_t{1} << x;
    }
    std::fill(copies.begin(), copies.end(), CopyState::kNone);
    std::fill(copy_ids.begin(), copy_ids.end(), 0);
  }
};

// An artifact a task reads, on the tier it reads it from.
struct Need {
  uint32_t task = 0;  // the producer
  uint8_t output = 0;
  uint8_t tier = 0;
  // Cluster mode: the node tier its worker copies it onto from `tier`
  // first (EngineOptions::node_tiers_on_workers); kNoTier: none.
  uint8_t node_tier = kNoTier;
  // `stream: true`: the reader may start once the first files of its copy
  // on `tier` are there.
  bool stream = false;
};

struct TaskRec {
  uint32_t stage = 0;
  uint32_t item = 0;
  uint32_t seq = 0;
  std::string id;
  TaskState state = TaskState::kPending;
  uint32_t attempts = 0;  // recorded attempts, across resumes
  uint32_t failures = 0;  // failed attempts since this engine started
  int64_t attempt_id = 0;
  int64_t attempt_started_ms = 0;
  int64_t data_wait_since_ms = 0;  // ready, waiting for copies of its inputs since
  bool reusing = false;            // the current attempt is a cache reuse
  bool no_cache = false;           // a reuse went wrong: run it for real
  std::string cache_key;
  std::string log_path;
  std::string message;                       // of the latest transition
  std::vector<ArtifactRec> outputs;          // by the stage's output index, once done
  std::vector<std::string> expected_hashes;  // of a reuse, to check
  int64_t cached_from = 0;
  std::vector<OutputPlace> places;        // by the stage's output index
  std::vector<Need> needs;                // every artifact it reads, where
  std::vector<uint8_t> input_tiers;       // by the stage's input index: where it reads it
  std::vector<uint8_t> node_input_tiers;  // by input index: the node tier (kNoTier: none)
};

struct StageRec {
  std::string name;
  uint32_t unfinished = 0;       // tasks not succeeded or cached
  uint32_t waiting_parents = 0;  // parent stages with unfinished tasks
  uint32_t bottom_level = 0;     // longest chain of stages from here to a sink
  std::vector<std::string> item_components;
  Duration busy{0};
  // The median time of the stage's attempts in earlier runs (stage_times.h),
  // read when the run starts or resumes; unset: no history.
  std::optional<Duration> expected_duration;
};

// One storage tier of the run, opened.
struct Tier {
  storage::TierConfig config;
  std::unique_ptr<storage::Adapter> adapter;
  bool posix = true;
  std::filesystem::path root;  // posix tiers
};

// The run: what it is, where it keeps things, and the names of its
// artifacts on every tier.
struct RunModel {
  std::string run_id;
  std::filesystem::path state_dir;  // the store's folder
  std::filesystem::path run_dir;    // state_dir/runs/RUN
  std::string working_dir;          // where tasks run
  bool node_tiers_on_workers = false;

  dag::Pipeline pipeline;
  std::optional<dag::TaskGraph> graph;
  std::vector<TaskRec> tasks;    // by graph task index
  std::vector<StageRec> stages;  // by pipeline stage index
  std::vector<Tier> tiers;
  std::vector<PlacementTier> placement_tiers;  // empty: the implicit tier
  std::string tiers_json;                      // as recorded with the run; "" for the implicit tier
  // What placement decided for this run (PlaceRun): recorded with a new
  // run (placement_record.h); the checkpoint tiers are applied from it.
  Placement placement;
  std::vector<CheckpointPlacement> checkpoint_placement;
  // A resume with an executor that re-attaches (Executor::Reattaches): the
  // tasks whose attempt an earlier engine left running, kept `running` and
  // handed back to the executor in the first turn, with each attempt's
  // recorded handle ("" when none was recorded).
  struct Reattach {
    uint32_t task = 0;
    std::string handle;
  };
  std::vector<Reattach> reattach;
  // By stage index: its tasks run without looking at the cache
  // (EngineOptions::rerun); empty: none.
  std::vector<bool> forced_stages;

  // Cluster mode: a node tier, whose copies the workers make.
  bool OnWorkers(uint8_t tier) const {
    return node_tiers_on_workers && tiers[tier].config.scope == storage::Scope::kNode;
  }
  // base/STAGE, and /ITEM below it for a foreach stage's items.
  std::filesystem::path TaskDir(const std::filesystem::path& base, uint32_t task) const {
    const TaskRec& rec = tasks[task];
    std::filesystem::path dir = base / stages[rec.stage].name;
    if (pipeline.stages[rec.stage].foreach) dir /= stages[rec.stage].item_components[rec.item];
    return dir;
  }
  // Artifacts have the same key on every tier: runs/RUN/artifacts/STAGE/
  // OUTPUT, and /ITEM below it for a foreach stage's items.
  std::string GatherKey(uint32_t stage, size_t output) const {
    return StrCat("runs/", run_id, "/artifacts/", stages[stage].name, "/",
                  pipeline.stages[stage].outputs[output].name);
  }
  std::string OutputKey(uint32_t task, size_t output) const {
    const TaskRec& rec = tasks[task];
    std::string key = GatherKey(rec.stage, output);
    if (pipeline.stages[rec.stage].foreach) {
      key = StrCat(key, "/", stages[rec.stage].item_components[rec.item]);
    }
    return key;
  }
  // A path on a posix tier (write and working tiers are posix).
  std::string TierPath(uint8_t tier, const std::string& key) const {
    return (tiers[tier].root / key).string();
  }
  // Where the task writes an output: its write tier.
  std::string OutputPath(uint32_t task, size_t output) const {
    return TierPath(tasks[task].places[output].write, OutputKey(task, output));
  }
  // A copy's uri in artifact_copies: a path on posix tiers, s3:// else.
  std::string CopyUri(uint8_t tier, const std::string& key) const {
    const storage::TierConfig& config = tiers[tier].config;
    if (tiers[tier].posix) return TierPath(tier, key);
    return StrCat("s3://", config.bucket, "/", config.prefix.empty() ? "" : config.prefix + "/",
                  key);
  }
  // "TASK.OUTPUT", for messages.
  std::string OutputName(uint32_t task, size_t output) const {
    return StrCat(tasks[task].id, ".", pipeline.stages[tasks[task].stage].outputs[output].name);
  }
  // The index of `stage`'s output `name` (outputs.size() when none).
  size_t OutputIndex(uint32_t stage, const std::string& name) const {
    const std::vector<dag::OutputSpec>& outputs = pipeline.stages[stage].outputs;
    size_t o = 0;
    while (o < outputs.size() && outputs[o].name != name) ++o;
    return o;
  }
};

// Builds the run's pipeline from its YAML text (`file` names it in
// diagnostics, which come back as one error), its task graph, its stages
// (with their longest chain to a sink) and its tasks in plan order.
absl::Status BuildRunModel(RunModel& run, const std::string& yaml, const std::string& file,
                           const std::map<std::string, std::string>& params);
// A foreach item as one path component: the item itself when it is a safe
// file name, else its index for every item of the stage (so names never
// collide).
std::vector<std::string> ItemComponents(const dag::Stage& stage);
// The task rows of a new run, in plan order.
std::vector<NewTask> NewTasks(const RunModel& run);
// The run's id, its stages' summaries and its failed tasks, into `result`.
void SummarizeRun(const RunModel& run, RunResult& result);

// Why a move is under way: decides who applies its result.
enum class MovePurpose : uint8_t {
  kCopy,               // an artifact copied to a tier (streamed or not): replicas
  kEvict,              // a copy of an artifact deleted: replicas
  kRestoreOutput,      // a cached output copied into staging for a reuse: replicas
  kFlushCheckpoint,    // a committed checkpoint copied to its durable tier: checkpoints
  kRemoveCheckpoint,   // an old checkpoint deleted (checkpoints.keep): checkpoints
  kRestoreCheckpoint,  // the latest checkpoint put back before a retry: checkpoints
};

struct Move {
  uint32_t task = 0;
  uint8_t output = 0;
  uint8_t tier = 0;  // the tier it writes (or deletes) on
  MovePurpose purpose = MovePurpose::kCopy;
  uint8_t source = 0;          // the tier it copies from
  int64_t checkpoint_row = 0;  // kFlushCheckpoint: its checkpoints row
  // Counted in /metrics as a transfer between tiers.
  bool IsTransfer() const {
    return purpose == MovePurpose::kCopy || purpose == MovePurpose::kRestoreOutput;
  }
};

// Every move under way, by the id its MoveJob carries (an artifact_copies
// row, or a negative id of this run for moves that make no copy row), and
// the jobs decided in this turn, submitted to the mover after its commit.
class MoveBook {
 public:
  // A negative id, unique in this run, for a move that makes no copy row.
  int64_t NextLocalId() { return --last_local_id_; }
  void Add(int64_t id, Move move, MoveJob job) {
    if (move.IsTransfer()) metrics::Engine().transfers_in_flight.Increment();
    moves_[id] = move;
    jobs_.push_back(std::move(job));
  }
  const Move* Find(int64_t id) const {
    auto found = moves_.find(id);
    return found == moves_.end() ? nullptr : &found->second;
  }
  // The move `id`, no longer under way (its result arrived).
  Move Take(int64_t id) {
    auto found = moves_.find(id);
    Move move = found->second;
    moves_.erase(found);
    if (move.IsTransfer()) metrics::Engine().transfers_in_flight.Decrement();
    return move;
  }
  size_t in_flight() const { return moves_.size(); }
  // The jobs to submit once the turn is committed (cleared by the caller,
  // and when the turn fails).
  std::vector<MoveJob>& jobs() { return jobs_; }
  // The run ended: moves that never reported are no longer under way.
  void Clear() {
    for (const auto& [id, move] : moves_) {
      if (move.IsTransfer()) metrics::Engine().transfers_in_flight.Decrement();
    }
    moves_.clear();
    jobs_.clear();
    last_local_id_ = 0;
  }

 private:
  std::unordered_map<int64_t, Move> moves_;
  std::vector<MoveJob> jobs_;
  int64_t last_local_id_ = 0;
};

// What the data-movement units ask of the task state machine (the engine).
// Called inside the turn, on its thread.
class TaskHooks {
 public:
  virtual ~TaskHooks() = default;
  // Every input of `task`, a ready task that waited for copies, is there.
  virtual void InputsReady(uint32_t task) = 0;
  // A copy `task` waited for failed (`message` says which): it fails, and
  // the tasks downstream of it.
  virtual absl::Status InputFailed(uint32_t task, const std::string& message) = 0;
  // One of the restores `task`'s launch waits for ended; `failure` is why
  // it failed ("" when it did not).
  virtual void RestoreEnded(uint32_t task, const std::string& failure) = 0;
};

}  // namespace tierflow::scheduler::internal
