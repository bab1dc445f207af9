#include "scheduler/run_start.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/status.h"
#include "common/strings.h"
#include "scheduler/cache_explain.h"
#include "scheduler/dynamic_expansion.h"
#include "scheduler/local_resources.h"
#include "scheduler/resume.h"
#include "scheduler/resume_check.h"
#include "scheduler/run_queries.h"
#include "scheduler/slurm_tracking.h"
#include "scheduler/stage_times.h"
#include "scheduler/store.h"

namespace tierflow::scheduler::internal {
namespace {
namespace fs = std::filesystem;

absl::Status OpenDatabase(const EngineOptions& options, RunModel& run, RunUnits& units) {
  TF_ASSIGN_OR_RETURN(units.db, OpenStore(options.db_path));
  TF_RETURN_IF_ERROR(units.db->CheckpointInBackground());
  std::error_code error;
  run.state_dir = fs::absolute(fs::path(options.db_path).parent_path(), error);
  units.writer.emplace(*units.db, options.random);
  if (options.lineage_outbox) units.writer->EnableOutbox(*options.lineage_outbox);
  return absl::OkStatus();
}

// The run's tiers and placement, then its units. `stored` unset: a new
// run, on the options' tiers; "": a run recorded without tiers (the
// implicit one); else the JSON a run recorded (a resume).
absl::Status SetUpTiers(const EngineOptions& options, const std::optional<std::string>& stored,
                        const EngineLinks& links, RunModel& run, RunUnits& units) {
  if (!stored) {
    run.placement_tiers = options.tiers;
  } else if (!stored->empty()) {
    TF_ASSIGN_OR_RETURN(run.placement_tiers, PlacementTiersFromJson(*stored));
  }
  TF_RETURN_IF_ERROR(PlaceRun(run, run.placement_tiers, options.open_tier));
  // Remote tiers stop with the run, and must answer before anything starts.
  TF_RETURN_IF_ERROR(WatchRemoteTiers(run, units.tier_events, units.transfers_cancelled,
                                      units.tier_retried, links.wake));
  units.cache.emplace(*units.db, run);
  units.replicas.emplace(run, *units.writer, units.moves, links.hooks, links.post_move_result);
  units.checkpoints.emplace(*units.db, run, *units.writer, units.moves, links.hooks);
  return units.checkpoints->SetUp();
}

// The pipeline's, run's and tasks' rows, in one transaction.
absl::Status CreateRun(const EngineOptions& options, const RunRequest& request,
                       const std::string& yaml, RunModel& run, RunUnits& units) {
  RunWriter& writer = *units.writer;
  TF_ASSIGN_OR_RETURN(Transaction transaction, writer.BeginOnce());
  TF_ASSIGN_OR_RETURN(run.run_id,
                      writer.CreateRun(NewRun{.pipeline_name = run.pipeline.name,
                                              .file = run.pipeline.file,
                                              .yaml = yaml,
                                              .working_dir = run.working_dir,
                                              .params = request.params,
                                              .slots = options.slots,
                                              .tiers_json = run.tiers_json,
                                              .priority = request.priority,
                                              .executor = options.executor,
                                              .executor_options = options.executor_options}));
  // Locked before anyone can see the run, so `tierflow cancel` never takes
  // it for a run without an engine.
  run.run_dir = run.state_dir / "runs" / run.run_id;
  TF_ASSIGN_OR_RETURN(RunLock lock, RunLock::Acquire(run.run_dir, run.run_id));
  units.lock.emplace(std::move(lock));
  TF_RETURN_IF_ERROR(writer.CreateTasks(run.run_id, NewTasks(run)));
  TF_RETURN_IF_ERROR(writer.RecordPlacement(run.run_id, run.placement, run.checkpoint_placement));
  TF_RETURN_IF_ERROR(writer.Prepare(run.run_id));
  TF_RETURN_IF_ERROR(units.cache->Prepare());
  TF_RETURN_IF_ERROR(writer.AddEvent("", 0, "run_started", StrCat(run.tasks.size(), " tasks")));
  return writer.Commit(transaction);
}

// Each stage's recorded task time in earlier runs, for the executor's
// launches (TaskLaunch::expected_duration): once per run, not per launch.
absl::Status ReadStageTimes(Database& db, RunModel& run) {
  TF_ASSIGN_OR_RETURN(auto medians, MedianStageTimes(db, run.pipeline.name, run.run_id));
  for (StageRec& stage : run.stages) {
    if (auto median = medians.find(stage.name); median != medians.end()) {
      stage.expected_duration = median->second;
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status StartNewRun(const EngineOptions& options, const RunRequest& request,
                         const EngineLinks& links, RunModel& run, RunUnits& units) {
  std::stringstream text;
  if (request.yaml) {
    text << *request.yaml;
  } else {
    std::ifstream in(request.file, std::ios::binary);
    if (!in) {
      return absl::NotFoundError(
          StrCat(request.file, ": cannot read the pipeline file: ", std::strerror(errno)));
    }
    text << in.rdbuf();
  }
  std::error_code error;
  fs::path file = fs::absolute(request.file, error);
  run.working_dir = file.parent_path().string();
  TF_RETURN_IF_ERROR(BuildRunModel(run, text.str(), request.file, request.params));
  // A task that could never start is refused before the run is recorded.
  if (options.local_budget) TF_RETURN_IF_ERROR(CheckStagesFit(*options.local_budget, run.pipeline));
  run.pipeline.file = file.string();
  TF_ASSIGN_OR_RETURN(run.forced_stages,
                      ForcedStages(*run.graph, options.rerun, options.rerun_downstream));
  TF_RETURN_IF_ERROR(OpenDatabase(options, run, units));
  TF_RETURN_IF_ERROR(SetUpTiers(options, std::nullopt, links, run, units));
  TF_RETURN_IF_ERROR(CreateRun(options, request, text.str(), run, units));
  return ReadStageTimes(*units.db, run);
}

absl::Status TakeOverRun(const EngineOptions& options, const std::string& run_ref, bool reattach,
                         const EngineLinks& links, RunModel& run, RunUnits& units) {
  TF_RETURN_IF_ERROR(OpenDatabase(options, run, units));
  TF_ASSIGN_OR_RETURN(run.run_id, ResolveRunId(*units.db, run_ref));
  TF_ASSIGN_OR_RETURN(StoredRun stored, ReadStoredRun(*units.db, run.run_id));
  if (stored.executor != options.executor) {
    // Its attempts may still run where it started them: another executor
    // would run them a second time.
    auto name = [](const std::string& executor) {
      return executor.empty() ? std::string("the local executor") : StrCat("--executor ", executor);
    };
    return absl::FailedPreconditionError(
        StrCat("run ", run.run_id, " was started with ", name(stored.executor),
               ": resume it with the same, not ", name(options.executor), "; nothing was changed"));
  }
  if (stored.executor_options && *stored.executor_options != options.executor_options) {
    // Its jobs were submitted with the recorded options; new ones would
    // differ from them behind the user's back.
    return absl::FailedPreconditionError(StrCat(
        "run ", run.run_id, " was started with ",
        slurm::DescribeExecutorOptions(stored.executor, *stored.executor_options),
        ": resume it with the same (or with no executor options: the recorded ones are used), not ",
        slurm::DescribeExecutorOptions(options.executor, options.executor_options),
        "; nothing was changed"));
  }
  run.working_dir = stored.working_dir;
  if (stored.state == RunState::kSucceeded) {
    return absl::FailedPreconditionError(
        StrCat("run ", run.run_id, " already succeeded: nothing to resume"));
  }
  if (!options.resume_force) TF_RETURN_IF_ERROR(RefuseStaleResume(*units.db, run.run_id, stored));
  run.run_dir = run.state_dir / "runs" / run.run_id;
  TF_ASSIGN_OR_RETURN(RunLock lock, RunLock::Acquire(run.run_dir, run.run_id));
  units.lock.emplace(std::move(lock));
  // A cancel request addressed to an earlier engine of this run.
  std::error_code ignored;
  fs::remove(run.run_dir / kCancelFile, ignored);
  // The pipeline as it was when the run started: the file may have changed.
  TF_RETURN_IF_ERROR(BuildRunModel(run, stored.yaml, stored.file, stored.params));
  run.pipeline.file = stored.file;
  if (options.local_budget) TF_RETURN_IF_ERROR(CheckStagesFit(*options.local_budget, run.pipeline));
  // Dynamic stages as they were expanded (recorded task rows), before
  // placement and the tasks' states are read.
  TF_RETURN_IF_ERROR(ExpandFromStore(*units.db, run));
  TF_RETURN_IF_ERROR(SetUpTiers(options, stored.tiers_json.value_or(""), links, run, units));
  if (!reattach) {
    TF_RETURN_IF_ERROR(
        KillLeftoverTasks(*units.db, run.run_id, options.kill_leftovers_on_host).status());
  }
  SweepUploads(run, units.tier_events, "left by an earlier engine of this run");
  TF_RETURN_IF_ERROR(units.cache->Prepare());
  TF_RETURN_IF_ERROR(
      LoadRunForResume(*units.db, run, *units.writer, *units.checkpoints, reattach).status());
  return ReadStageTimes(*units.db, run);
}

}  // namespace tierflow::scheduler::internal
