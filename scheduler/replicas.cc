#include "scheduler/replicas.h"

#include <algorithm>
#include <string_view>
#include <unordered_map>

#include "common/metrics.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/units.h"
#include "scheduler/plan.h"
#include "storage_adapters/local_artifact.h"
#include "storage_adapters/posix.h"

namespace tierflow::scheduler::internal {
namespace {

// A volatile output's home (on a volatile tier: RAM) is released once every
// task of the run that reads it has ended: the copy state and its reason.
// The artifact then exists nowhere; a resume whose tasks need it runs its
// producer again, and the cache never reuses it (it has no present copy).
constexpr std::string_view kReleasedCopy = "released";
constexpr const char* kReleasedWhy =
    "volatile: released after its last reader ended; recomputed when needed again";

constexpr int64_t kStreamWindow = 8;  // files copied ahead of the reader
// A streamed reader is started as soon as the manifest is written, not once
// the first file is there: starting its process (~0.1-0.4 s for Python on a
// busy 2-core machine, bench/README.md "Issue 21: streamed data") then
// overlaps the first file's copy, and its helpers wait for each file anyway.
constexpr bool kStreamStartAtManifest = true;

// Opens the run's tiers: the implicit one, or those placement is given.
absl::Status OpenTiers(RunModel& run, const std::vector<PlacementTier>& tiers,
                       const std::function<absl::StatusOr<std::unique_ptr<storage::Adapter>>(
                           const storage::TierConfig&)>& open_tier) {
  if (tiers.empty()) {
    // The implicit tier: the store's folder, where tasks write and read.
    Tier tier;
    tier.config.name = "local";
    tier.config.adapter = "posix";
    tier.config.root = run.state_dir.string();
    tier.root = run.state_dir;
    TF_ASSIGN_OR_RETURN(tier.adapter, storage::OpenPosixTier(tier.config));
    run.tiers.push_back(std::move(tier));
    return absl::OkStatus();
  }
  for (const PlacementTier& placed : tiers) {
    Tier tier;
    tier.config = placed.config;
    tier.posix = placed.config.adapter == "posix";
    tier.root = placed.config.root;
    if (open_tier) {
      TF_ASSIGN_OR_RETURN(tier.adapter, open_tier(placed.config));
    } else if (tier.posix) {
      TF_ASSIGN_OR_RETURN(tier.adapter, storage::OpenPosixTier(placed.config));
    } else {
      return absl::UnimplementedError(StrCat("tier ", placed.config.name, ": no adapter for '",
                                             placed.config.adapter, "' in this engine"));
    }
    run.tiers.push_back(std::move(tier));
  }
  return absl::OkStatus();
}

// Each output's home and write tier, and each input's tiers, as placed.
void ApplyPlacement(RunModel& run, const Placement& placement) {
  auto tier_index = [&](const std::string& name) -> uint8_t {
    for (uint8_t i = 0; i < run.tiers.size(); ++i) {
      if (run.tiers[i].config.name == name) return i;
    }
    return 0;
  };
  std::unordered_map<std::string_view, uint32_t> by_id;
  by_id.reserve(run.tasks.size());
  for (uint32_t t = 0; t < run.tasks.size(); ++t) by_id.emplace(run.tasks[t].id, t);
  for (const OutputPlacement& out : placement.outputs) {
    auto found = by_id.find(out.task);
    if (found == by_id.end()) continue;
    TaskRec& task = run.tasks[found->second];
    const dag::Stage& stage = run.pipeline.stages[task.stage];
    for (size_t o = 0; o < stage.outputs.size(); ++o) {
      if (stage.outputs[o].name != out.output) continue;
      task.places[o].home = tier_index(out.home);
      task.places[o].write = tier_index(out.write_tier);
    }
  }
  // Where a consumer reads an input: by default where it is written.
  for (TaskRec& task : run.tasks) {
    const dag::Stage& stage = run.pipeline.stages[task.stage];
    for (size_t i = 0; i < stage.inputs.size(); ++i) {
      const int producer = run.pipeline.FindStage(stage.inputs[i].stage);
      const size_t o = run.OutputIndex(producer, stage.inputs[i].output);
      // (A dynamic stage has no tasks yet: its readers' tiers are set
      // when it is expanded, scheduler/dynamic_expansion.h.)
      if (o < run.pipeline.stages[producer].outputs.size() &&
          run.pipeline.stages[producer].TaskCount() > 0) {
        task.input_tiers[i] = run.tasks[run.graph->FirstTask(producer)].places[o].write;
      }
    }
  }
  for (const InputPlacement& in : placement.inputs) {
    auto found = by_id.find(in.task);
    if (found == by_id.end()) continue;
    TaskRec& task = run.tasks[found->second];
    const dag::Stage& stage = run.pipeline.stages[task.stage];
    for (size_t i = 0; i < stage.inputs.size(); ++i) {
      if (stage.inputs[i].name != in.input) continue;
      const uint8_t working = tier_index(in.working);
      if (run.OnWorkers(working)) {
        // Its worker copies it there from where it is written, which
        // stays until it has read it (and is read in place meanwhile).
        task.node_input_tiers[i] = working;
        task.input_tiers[i] = tier_index(in.source);
      } else {
        task.input_tiers[i] = working;
      }
    }
  }
}

}  // namespace

// Needs: every producer task's artifact of every input, on the tier the
// input is read from (once, when two inputs name the same artifact there):
// all items of a gathered foreach stage, the task's own item for `each`.
void CollectTaskNeeds(RunModel& run, uint32_t t) {
  {
    TaskRec& task = run.tasks[t];
    const dag::Stage& stage = run.pipeline.stages[task.stage];
    task.needs.clear();
    for (size_t i = 0; i < stage.inputs.size(); ++i) {
      const dag::InputRef& input = stage.inputs[i];
      bool repeated = false;
      for (size_t j = 0; j < i; ++j) {
        repeated =
            repeated ||
            (stage.inputs[j].stage == input.stage && stage.inputs[j].output == input.output &&
             stage.inputs[j].each == input.each && task.input_tiers[j] == task.input_tiers[i] &&
             task.node_input_tiers[j] == task.node_input_tiers[i]);
      }
      if (repeated) continue;
      const int producer = run.pipeline.FindStage(input.stage);
      const dag::Stage& from = run.pipeline.stages[producer];
      const size_t o = run.OutputIndex(producer, input.output);
      // Every task of a gathered stage; an `each` input's own item only.
      const dag::TaskGraph::ProducerRange producers = run.graph->InputProducers(t, i);
      const uint32_t first = producers.first;
      for (uint32_t k = 0; k < producers.count; ++k) {
        // Streaming is for one artifact (a tree of files), not a gather.
        const bool stream = input.stream && (!from.foreach || input.each);
        task.needs.push_back(Need{.task = first + k,
                                  .output = static_cast<uint8_t>(o),
                                  .tier = task.input_tiers[i],
                                  .node_tier = task.node_input_tiers[i],
                                  .stream = stream});
        // (A copy onto a node tier is the worker's to stream.)
        if (stream && task.node_input_tiers[i] == kNoTier) {
          run.tasks[first + k].places[o].stream_tiers |= uint64_t{1} << task.input_tiers[i];
        }
        ++run.tasks[first + k].places[o].consumers;
      }
    }
  }
}

absl::Status PlaceRun(RunModel& run, const std::vector<PlacementTier>& tiers,
                      const std::function<absl::StatusOr<std::unique_ptr<storage::Adapter>>(
                          const storage::TierConfig&)>& open_tier) {
  run.placement = {};
  run.checkpoint_placement.clear();
  if (!tiers.empty()) {
    if (tiers.size() > 64) {
      return absl::InvalidArgumentError(
          StrCat(tiers.size(), " tiers: a run is placed on at most 64"));
    }
    // Placed before anything is recorded: when nothing fits, nothing changes.
    PlacementOptions placing;
    placing.node_tiers_hold_working_copies_only = run.node_tiers_on_workers;
    const Plan plan = BuildPlan(*run.graph, PlanDetail::kPlacement);
    TF_ASSIGN_OR_RETURN(run.placement, PlaceArtifacts(plan, tiers, placing));
    TF_ASSIGN_OR_RETURN(run.checkpoint_placement, PlaceCheckpoints(plan, tiers, placing));
    run.tiers_json = PlacementTiersToJson(tiers);
  }
  TF_RETURN_IF_ERROR(OpenTiers(run, tiers, open_tier));
  const size_t tier_count = run.tiers.size();
  for (TaskRec& task : run.tasks) {
    const dag::Stage& stage = run.pipeline.stages[task.stage];
    task.places.assign(stage.outputs.size(), OutputPlace{});
    for (OutputPlace& place : task.places) {
      place.copies.assign(tier_count, CopyState::kNone);
      place.copy_ids.assign(tier_count, 0);
      place.readers.assign(tier_count, 0);
    }
    task.input_tiers.assign(stage.inputs.size(), 0);
    task.node_input_tiers.assign(stage.inputs.size(), kNoTier);
  }
  if (!tiers.empty()) ApplyPlacement(run, run.placement);
  for (uint32_t t = 0; t < run.tasks.size(); ++t) CollectTaskNeeds(run, t);
  return absl::OkStatus();
}

std::vector<std::string> RemoveStaging(const RunModel& run) {
  std::vector<std::string> failures;
  for (const Tier& tier : run.tiers) {
    const std::shared_ptr<const storage::TierRoot> root =
        tier.posix && tier.adapter ? storage::PosixTierRoot(*tier.adapter) : nullptr;
    if (root == nullptr) continue;
    absl::Status removed = root->RemoveTree(StrCat("runs/", run.run_id, "/staging"));
    if (!removed.ok()) failures.push_back(StrCat("cleaning up: ", removed.message()));
  }
  return failures;
}

void Replicas::CountReaders() {
  for (const TaskRec& task : run_.tasks) {
    if (IsTerminal(task.state)) continue;
    for (const Need& need : task.needs) {
      std::vector<uint32_t>& readers = run_.tasks[need.task].places[need.output].readers;
      ++readers[need.tier];
      if (need.node_tier != kNoTier) ++readers[need.node_tier];
    }
  }
}

absl::StatusOr<int64_t> Replicas::InsertCopy(uint32_t t, size_t o, uint8_t tier,
                                             std::string_view state, std::optional<uint8_t> source,
                                             const std::string& uri) {
  const ArtifactRec& artifact = run_.tasks[t].outputs[o];
  return writer_.InsertCopy(
      NewCopy{.artifact_id = artifact.id,
              .tier = run_.tiers[tier].config.name,
              .uri = uri.empty() ? run_.CopyUri(tier, run_.OutputKey(t, o)) : uri,
              .home = tier == run_.tasks[t].places[o].home,
              .bytes = artifact.bytes,
              .hash = artifact.hash,
              .state = state,
              .source_tier = source ? std::optional<std::string>(run_.tiers[*source].config.name)
                                    : std::nullopt});
}

absl::Status Replicas::OutputWritten(uint32_t t, size_t o) {
  OutputPlace& place = run_.tasks[t].places[o];
  place.ForgetCopies();
  TF_ASSIGN_OR_RETURN(place.copy_ids[place.write],
                      InsertCopy(t, o, place.write, "present", std::nullopt));
  place.copies[place.write] = CopyState::kPresent;
  return absl::OkStatus();
}

absl::Status Replicas::ScheduleMoves(uint32_t t, size_t o) {
  OutputPlace& place = run_.tasks[t].places[o];
  if (run_.tasks[t].outputs[o].id == 0) return absl::OkStatus();
  if (place.copies[place.home] == CopyState::kNone) TF_RETURN_IF_ERROR(StartCopy(t, o, place.home));
  for (uint8_t tier = 0; tier < run_.tiers.size(); ++tier) {
    if (place.readers[tier] > 0 && place.copies[tier] == CopyState::kNone &&
        !run_.OnWorkers(tier)) {
      TF_RETURN_IF_ERROR(StartCopy(t, o, tier));
    }
  }
  return MaybeEvict(t, o);
}

absl::Status Replicas::StartCopy(uint32_t t, size_t o, uint8_t tier) {
  OutputPlace& place = run_.tasks[t].places[o];
  // From where it was written if it is still there, else any posix copy,
  // else its home.
  std::optional<uint8_t> source;
  if (place.copies[place.write] == CopyState::kPresent) source = place.write;
  for (uint8_t x = 0; x < run_.tiers.size() && !source; ++x) {
    if (place.copies[x] == CopyState::kPresent && run_.tiers[x].posix) source = x;
  }
  if (!source && place.copies[place.home] == CopyState::kPresent) source = place.home;
  if (!source) return absl::OkStatus();  // nothing to copy from yet
  TF_ASSIGN_OR_RETURN(const int64_t id, InsertCopy(t, o, tier, "copying", source));
  place.copies[tier] = CopyState::kCopying;
  place.copy_ids[tier] = id;
  const Move move{.task = t,
                  .output = static_cast<uint8_t>(o),
                  .tier = tier,
                  .purpose = MovePurpose::kCopy,
                  .source = *source};
  const std::string key = run_.OutputKey(t, o);
  // Never on an archive: what is there stays, and the copy fails instead.
  const bool dirty =
      ((place.dirty >> tier) & 1) && run_.tiers[tier].config.durability != Durability::kArchive;
  place.dirty &= ~(uint64_t{1} << tier);  // the job clears it; a failure marks it again
  const std::string& hash = run_.tasks[t].outputs[o].hash;
  if (((place.stream_tiers >> tier) & 1) && run_.tiers[tier].posix) {
    moves_.Add(id, move, StreamCopy(id, *source, tier, key, dirty, hash));
    return absl::OkStatus();
  }
  MoveJob job;
  job.kind = MoveJob::Kind::kCopy;
  job.copy_id = id;
  job.from = run_.tiers[*source].adapter.get();
  job.to = run_.tiers[tier].adapter.get();
  job.key = key;
  job.posix_path = run_.tiers[tier].posix ? run_.TierPath(tier, key) : "";
  job.clear_first = dirty;
  job.expected_hash = hash;
  moves_.Add(id, move, std::move(job));
  return absl::OkStatus();
}

// A streamed copy: the manifest (every file, in copy order) first, then
// the files one by one, each atomically, at most kStreamWindow files ahead
// of what its reader has opened (the helpers write that to the manifest's
// ".next" file). The engine hears once the first file is there.
MoveJob Replicas::StreamCopy(int64_t id, uint8_t source, uint8_t tier, const std::string& key,
                             bool clear_first, const std::string& expected_hash) {
  auto control = std::make_shared<StreamControl>();
  streams_[id] = control;
  MoveJob job;
  job.kind = MoveJob::Kind::kRun;
  job.copy_id = id;
  storage::Adapter* from = run_.tiers[source].adapter.get();
  storage::Adapter* to = run_.tiers[tier].adapter.get();
  storage::StreamOptions options;
  options.window = kStreamWindow;
  options.start_at_manifest = kStreamStartAtManifest;
  options.clear_first = clear_first;
  options.expected_hash = expected_hash;
  options.readers_done = std::shared_ptr<const std::atomic<bool>>(control, &control->readers_done);
  options.on_first = [post = post_, id] {
    MoveResult result;
    result.kind = MoveJob::Kind::kRun;
    result.copy_id = id;
    result.started = true;
    post(std::move(result));
  };
  job.run = [from, to, key, path = run_.TierPath(tier, key),
             options]() -> absl::StatusOr<storage::TransferResult> {
    return storage::StreamArtifact(*from, key, *to, path, options);
  };
  return job;
}

void Replicas::RestoreOutput(uint32_t t, size_t o, uint8_t from, const std::string& key,
                             const std::string& to_key, const std::string& hash) {
  const uint8_t write = run_.tasks[t].places[o].write;
  const int64_t id = moves_.NextLocalId();  // not a copy of any artifact of this run
  MoveJob job;
  job.kind = MoveJob::Kind::kCopy;
  job.copy_id = id;
  job.from = run_.tiers[from].adapter.get();
  job.to = run_.tiers[write].adapter.get();
  job.key = key;
  job.posix_path = run_.TierPath(write, to_key);
  job.clear_first = true;
  job.to_key = to_key;
  job.expected_hash = hash;
  moves_.Add(id,
             Move{.task = t,
                  .output = static_cast<uint8_t>(o),
                  .tier = write,
                  .purpose = MovePurpose::kRestoreOutput,
                  .source = from},
             std::move(job));
}

absl::StatusOr<bool> Replicas::DataReady(uint32_t t) {
  bool ready = true;
  for (const Need& need : run_.tasks[t].needs) {
    const CopyState state = run_.tasks[need.task].places[need.output].copies[need.tier];
    if (state == CopyState::kPresent) continue;
    if (state == CopyState::kStreaming && need.stream) continue;
    ready = false;
    if (state == CopyState::kNone) TF_RETURN_IF_ERROR(StartCopy(need.task, need.output, need.tier));
  }
  return ready;
}

absl::Status Replicas::StreamStarted(const Move& move) {
  OutputPlace& place = run_.tasks[move.task].places[move.output];
  if (place.copies[move.tier] != CopyState::kCopying) return absl::OkStatus();
  place.copies[move.tier] = CopyState::kStreaming;
  return WakeDataWaiters();
}

void Replicas::StopStreams() {
  for (auto& [id, stream] : streams_) stream->readers_done = true;  // nobody reads any more
}

absl::Status Replicas::ApplyMove(int64_t id, const Move& move, const MoveResult& result) {
  streams_.erase(id);
  if (move.IsTransfer() && result.status.ok()) {
    metrics::Engine().RecordTransfer(run_.tiers[move.source].config.name,
                                     run_.tiers[move.tier].config.name, result.moved.bytes,
                                     std::chrono::duration<double>(result.elapsed).count());
  }
  const TaskRec& producer = run_.tasks[move.task];
  const std::string what = run_.OutputName(move.task, move.output);
  const std::string& tier = run_.tiers[move.tier].config.name;
  if (move.purpose == MovePurpose::kRestoreOutput) {
    // Launched once every restore has ended; one that failed makes the
    // reuse fail in the worker (its source is missing), and the task runs.
    std::string failure;
    if (!result.status.ok()) {
      failure =
          StrCat("restoring the cached ", what, " to tier ", tier, ": ", result.status.message());
      TF_RETURN_IF_ERROR(writer_.AddEvent(producer.id, 0, "copy_failed", failure));
    }
    hooks_.RestoreEnded(move.task, failure);
    return absl::OkStatus();
  }
  if (move.purpose == MovePurpose::kEvict) {
    if (result.status.ok()) return absl::OkStatus();
    const std::string message =
        StrCat("evicting ", what, " from tier ", tier, ": ", result.status.message());
    // A symlink or a mount where the copy was (docs/tiers.md "Path safety"):
    // someone tampered with the tier; the run fails with it.
    if (absl::IsFailedPrecondition(result.status)) unsafe_paths_.push_back(message);
    return writer_.AddEvent(producer.id, 0, "evict_failed", message);
  }
  OutputPlace& place = run_.tasks[move.task].places[move.output];
  if (result.status.ok()) {
    place.copies[move.tier] = CopyState::kPresent;
    const std::string done =
        StrCat(FormatSize(result.moved.bytes), " in ", FormatDuration(result.elapsed));
    TF_RETURN_IF_ERROR(writer_.UpdateCopy(id, "present", done));
    TF_RETURN_IF_ERROR(
        writer_.AddEvent(producer.id, 0, "copied", StrCat(what, " to tier ", tier, ": ", done)));
    TF_RETURN_IF_ERROR(WakeDataWaiters());
    return MaybeEvict(move.task, move.output);
  }
  place.copies[move.tier] = CopyState::kNone;
  place.dirty |= uint64_t{1} << move.tier;
  const std::string message =
      StrCat("copying ", what, " to tier ", tier, " failed: ", result.status.message());
  TF_RETURN_IF_ERROR(writer_.UpdateCopy(id, "failed", std::string(result.status.message())));
  TF_RETURN_IF_ERROR(writer_.AddEvent(producer.id, 0, "copy_failed", message));
  if (result.status.code() == absl::StatusCode::kCancelled) return absl::OkStatus();
  if (move.tier == place.home) {
    // The output is safe where it was written; the run cannot succeed
    // without its home copy, and a resume tries the write-back again.
    move_failures_.push_back(message);
    return absl::OkStatus();
  }
  // Its readers waiting for it cannot run.
  std::vector<uint32_t> failed;
  for (uint32_t waiter : data_waiters_) {
    for (const Need& need : run_.tasks[waiter].needs) {
      if (need.task == move.task && need.output == move.output && need.tier == move.tier) {
        failed.push_back(waiter);
        break;
      }
    }
  }
  for (uint32_t waiter : failed) {
    data_waiters_.erase(waiter);
    TF_RETURN_IF_ERROR(hooks_.InputFailed(waiter, message));
  }
  return absl::OkStatus();
}

// Ready tasks that waited for copies of their inputs run once all are there.
absl::Status Replicas::WakeDataWaiters() {
  for (auto it = data_waiters_.begin(); it != data_waiters_.end();) {
    TF_ASSIGN_OR_RETURN(bool ready, DataReady(*it));
    if (ready) {
      TF_RETURN_IF_ERROR(writer_.AddEvent(run_.tasks[*it].id, 0, "data_ready",
                                          "its inputs are on its working tiers"));
      hooks_.InputsReady(*it);
      it = data_waiters_.erase(it);
    } else {
      ++it;
    }
  }
  return absl::OkStatus();
}

absl::Status Replicas::MaybeEvict(uint32_t t, size_t o) {
  OutputPlace& place = run_.tasks[t].places[o];
  // Only copies beside a complete home copy, once nobody reads them; and a
  // home in RAM (volatile: scratch space) once every task that reads the
  // output has ended, after the other copies.
  if (place.copies[place.home] != CopyState::kPresent) return absl::OkStatus();
  // Nor while a copy is under way: it may be reading one of them (a
  // streamed copy for a long time); its end looks again.
  for (CopyState state : place.copies) {
    if (state == CopyState::kCopying || state == CopyState::kStreaming) return absl::OkStatus();
  }
  const bool scratch = run_.tiers[place.home].config.durability == Durability::kVolatile &&
                       place.consumers > 0 &&
                       std::all_of(place.readers.begin(), place.readers.end(),
                                   [](uint32_t readers) { return readers == 0; });
  uint8_t order[64];  // every tier but the home, then the home if it goes too
  size_t count = 0;
  for (uint8_t tier = 0; tier < run_.tiers.size(); ++tier) {
    if (tier != place.home) order[count++] = tier;
  }
  if (scratch) order[count++] = place.home;
  for (size_t i = 0; i < count; ++i) {
    const uint8_t tier = order[i];
    if (place.copies[tier] != CopyState::kPresent || place.readers[tier] > 0) continue;
    const int64_t id = place.copy_ids[tier];
    if (tier == place.home) {
      // The decision to release a volatile home, with its reason: the
      // artifact exists nowhere after this, and is recomputed when needed.
      TF_RETURN_IF_ERROR(writer_.UpdateCopy(id, kReleasedCopy, kReleasedWhy));
      TF_RETURN_IF_ERROR(
          writer_.AddEvent(run_.tasks[t].id, 0, "released",
                           StrCat(run_.OutputName(t, o), " on tier ", run_.tiers[tier].config.name,
                                  ": ", kReleasedWhy, " (", place.consumers,
                                  place.consumers == 1 ? " reader" : " readers", ")")));
    } else {
      TF_RETURN_IF_ERROR(writer_.UpdateCopy(id, "evicted", "its last reader ended"));
    }
    place.copies[tier] = CopyState::kNone;
    const std::string key = run_.OutputKey(t, o);
    MoveJob job;
    job.kind = MoveJob::Kind::kDelete;
    job.copy_id = id;
    job.to = run_.tiers[tier].adapter.get();
    job.key = key;
    job.posix_path = run_.tiers[tier].posix ? run_.TierPath(tier, key) : "";
    moves_.Add(id,
               Move{.task = t,
                    .output = static_cast<uint8_t>(o),
                    .tier = tier,
                    .purpose = MovePurpose::kEvict},
               std::move(job));
  }
  return absl::OkStatus();
}

absl::Status Replicas::ReleaseNeeds(uint32_t t) {
  for (const Need& need : run_.tasks[t].needs) {
    std::vector<uint32_t>& readers = run_.tasks[need.task].places[need.output].readers;
    if (need.stream && readers[need.tier] == 1) {
      // Its last reader there ended: a streamed copy need not wait for it.
      auto stream = streams_.find(run_.tasks[need.task].places[need.output].copy_ids[need.tier]);
      if (stream != streams_.end()) stream->second->readers_done = true;
    }
    if (need.node_tier != kNoTier && readers[need.node_tier] > 0 &&
        --readers[need.node_tier] == 0) {
      TF_RETURN_IF_ERROR(EvictNodeCopies(need.task, need.output, need.node_tier));
    }
    if (readers[need.tier] == 0) continue;
    if (--readers[need.tier] == 0) TF_RETURN_IF_ERROR(MaybeEvict(need.task, need.output));
  }
  return absl::OkStatus();
}

// The workers' copies of an output on a node tier nobody reads there any
// more: recorded evicted now, deleted by the workers after the commit.
absl::Status Replicas::EvictNodeCopies(uint32_t t, size_t o, uint8_t tier) {
  auto found = node_copies_.find({t, static_cast<uint8_t>(o), tier});
  if (found == node_copies_.end()) return absl::OkStatus();
  for (const auto& [worker, copy_id] : found->second) {
    TF_RETURN_IF_ERROR(
        writer_.UpdateCopy(copy_id, "evicted", "its last reader on this worker ended"));
    to_evict_on_workers_.push_back({worker, run_.tiers[tier].config.name, run_.OutputKey(t, o)});
  }
  node_copies_.erase(found);
  return absl::OkStatus();
}

// A copy it had already is recorded once, when made.
absl::Status Replicas::RecordNodeCopies(uint32_t t, const TaskReport& report) {
  if (report.node_copies.empty()) return absl::OkStatus();
  // "TIER/KEY" of each artifact the task reads on a node tier (a gather:
  // one per item), made once per report.
  std::unordered_map<std::string, const Need*> staged;
  for (const Need& need : run_.tasks[t].needs) {
    if (need.node_tier == kNoTier) continue;
    staged.emplace(
        StrCat(run_.tiers[need.node_tier].config.name, "/", run_.OutputKey(need.task, need.output)),
        &need);
  }
  for (const NodeCopyReport& copy : report.node_copies) {
    auto found = staged.find(StrCat(copy.tier, "/", copy.key));
    if (found == staged.end()) continue;
    const Need* need = found->second;
    const std::string what = run_.OutputName(need->task, need->output);
    if (!copy.error.empty()) {
      TF_RETURN_IF_ERROR(
          writer_.AddEvent(run_.tasks[t].id, report.attempt_id, "copy_failed",
                           StrCat("copying ", what, " to tier ", copy.tier, " on ", report.worker,
                                  " failed: ", copy.error, "; the task reads it in place")));
      continue;
    }
    std::vector<std::pair<std::string, int64_t>>& held =
        node_copies_[{need->task, need->output, need->node_tier}];
    if (copy.reused) {
      bool known = false;
      for (const auto& entry : held) known = known || entry.first == report.worker;
      if (known) continue;  // else: made for an attempt whose start was never recorded
    }
    TF_ASSIGN_OR_RETURN(const int64_t id,
                        InsertCopy(need->task, need->output, need->node_tier, "present", need->tier,
                                   StrCat(report.worker, ":", copy.path)));
    held.emplace_back(report.worker, id);
    TF_RETURN_IF_ERROR(writer_.AddEvent(
        run_.tasks[t].id, report.attempt_id, "copied",
        StrCat(what, " to tier ", copy.tier, " on ", report.worker, ": ", FormatSize(copy.bytes),
               " in ", FormatDuration(std::chrono::milliseconds(copy.elapsed_ms)),
               ", before the task started")));
  }
  return absl::OkStatus();
}

}  // namespace tierflow::scheduler::internal
