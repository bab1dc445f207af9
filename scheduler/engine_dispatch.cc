// The engine's launches (internal/engine_impl.h): a ready task's launch is
// built, the cache decides whether it runs or reuses (and why), the attempt
// is recorded, and only then handed to the executor; restores of cached
// outputs kept on an object store, and re-attaching a resumed run's
// attempts that outlive the engine.
#include "common/shell_words.h"
#include "common/status.h"
#include "common/strings.h"
#include "nlohmann/json.hpp"
#include "scheduler/internal/engine_impl.h"
#include "scheduler/run_writer.h"

namespace tierflow::scheduler {
using internal::TaskRec;
using internal::Tier;
using json = nlohmann::json;

// --------------------------------------------------------------- dispatch

absl::Status Engine::Impl::Dispatch(uint32_t t, const internal::LocalResources::Grant* grant) {
  TaskRec& task = run_.tasks[t];
  if (task.state != TaskState::kPending && task.state != TaskState::kQueued) {
    return absl::OkStatus();
  }
  const dag::Stage& stage = run_.pipeline.stages[task.stage];
  ++task.attempts;
  TaskLaunch launch;
  internal::Env contract_env;
  const internal::LaunchInputs inputs = BuildLaunch(t, launch, contract_env);
  const std::string staging = internal::StagingKey(run_, t);
  // The cache key covers what the task sees, not where this run keeps things.
  task.cache_key.clear();
  task.reusing = false;
  task.cached_from = 0;
  using Lookup = internal::TaskCache::Lookup;
  const Lookup lookup = !stage.cache          ? Lookup::kStageOff
                        : !options_.use_cache ? Lookup::kNoCache
                        : !run_.forced_stages.empty() && run_.forced_stages[task.stage]
                            ? Lookup::kForced
                        : task.no_cache ? Lookup::kRetry
                                        : Lookup::kLook;
  TF_ASSIGN_OR_RETURN(internal::TaskCache::Decision cached,
                      cache().Decide(t, lookup, launch.argv, contract_env, inputs.producers));
  task.cache_key = cached.key;
  std::optional<internal::TaskCache::Hit> hit = std::move(cached.hit);
  internal::SetEnvironment(run_, t, std::move(contract_env), launch);
  if (hit) launch.log_path.clear();  // nothing runs, nothing logs
  task.log_path = launch.log_path;
  TF_RETURN_IF_ERROR(RecordAttempt(t, launch, hit, inputs, std::move(cached.ingredients)));
  if (grant != nullptr && !hit) {
    internal::SetVisibleDevices(local_->VisibleDevices(*grant), launch);
    TF_RETURN_IF_ERROR(writer().AddEvent(task.id, task.attempt_id, "resources", grant->reason));
  }
  TF_RETURN_IF_ERROR(writer().AddEvent(task.id, task.attempt_id, "cache",
                                       StrCat(hit ? "reuse: " : "run: ", cached.reason)));
  if (hit) {
    task.reusing = true;
    task.cached_from = hit->attempt_id;
    task.expected_hashes = hit->hashes;
    launch.mode = TaskLaunch::Mode::kReuse;
    for (size_t o = 0; o < launch.outputs.size(); ++o) launch.outputs[o].reuse_from = hit->paths[o];
  }
  TF_RETURN_IF_ERROR(SetTaskState(
      t, TaskState::kRunning,
      hit ? StrCat("reusing the outputs of attempt #", hit->attempt_id) : std::string()));
  int restores = hit ? StartRestores(t, launch, *hit, staging) : 0;
  if (!hit) TF_RETURN_IF_ERROR(checkpoints().Watch(t, launch, restores));
  if (restores > 0) {
    waiting_launches_[t] = WaitingLaunch{.launch = std::move(launch), .restores = restores};
    return absl::OkStatus();
  }
  to_launch_.push_back(std::move(launch));
  return absl::OkStatus();
}

// Task t's launch for its attempt number task.attempts, and the
// environment its cache key covers (without the run's own paths).
internal::LaunchInputs Engine::Impl::BuildLaunch(uint32_t t, TaskLaunch& launch,
                                                 internal::Env& contract_env) {
  launch = internal::NewLaunch(run_, t, options_.kill_grace);
  contract_env = run_.graph->TaskEnvironment(run_.graph->tasks()[t]);
  internal::LaunchInputs inputs = internal::AddInputs(run_, t, launch, contract_env);
  // Staging beside the artifact, on its write tier: publishing is a rename.
  internal::AddOutputs(run_, t, launch, contract_env, internal::StagingKey(run_, t));
  if (run_.pipeline.stages[run_.tasks[t].stage].checkpoints.enabled) {
    checkpoints().SetLaunchDir(t, launch);
    contract_env.emplace_back("TIERFLOW_CHECKPOINT_DIR", launch.checkpoint_dir);
  }
  // The node tiers' configured roots, for a job side without tiers of its own.
  for (const internal::Tier& tier : run_.tiers) {
    const std::string& name = tier.config.name;
    const bool used = (launch.checkpoint_relay && launch.checkpoint_relay->tier == name) ||
                      std::any_of(launch.stage_in.begin(), launch.stage_in.end(),
                                  [&](const StageIn& stage) { return stage.tier == name; });
    if (used) launch.node_tier_roots[name] = tier.config.root;
  }
  return inputs;
}

// The first turn of a resume whose executor re-attaches: each attempt the
// last engine left running is rebuilt as it was launched and, once the
// turn is committed, handed back to the executor (Executor::Reattach); one
// it cannot find is lost (ActOnCommittedTurn).
absl::Status Engine::Impl::ReattachAttempts() {
  for (const internal::RunModel::Reattach& r : run_.reattach) {
    TaskRec& task = run_.tasks[r.task];
    TaskLaunch launch;
    internal::Env contract_env;
    BuildLaunch(r.task, launch, contract_env);
    internal::SetEnvironment(run_, r.task, std::move(contract_env), launch);
    launch.attempt_id = task.attempt_id;
    task.log_path = launch.log_path;
    task.reusing = false;
    attempt_task_[task.attempt_id] = r.task;
    // Watched for commits again; a restore it would start (the folder lost
    // its checkpoints) goes on beside the attempt, which started without.
    int restores = 0;
    TF_RETURN_IF_ERROR(checkpoints().Watch(r.task, launch, restores));
    TF_RETURN_IF_ERROR(writer().AddEvent(
        task.id, task.attempt_id, "reattached",
        StrCat("attempt ", task.attempts, " was running when the last engine stopped",
               r.handle.empty() ? std::string() : StrCat(" (", r.handle, ")"),
               ": handed back to the executor, not launched again")));
    to_reattach_.push_back({std::move(launch), r.handle});
  }
  run_.reattach.clear();
  return absl::OkStatus();
}

// The attempt's row and the artifacts it consumes.
absl::Status Engine::Impl::RecordAttempt(uint32_t t, TaskLaunch& launch,
                                         const std::optional<internal::TaskCache::Hit>& hit,
                                         const internal::LaunchInputs& inputs,
                                         std::optional<std::string> cache_ingredients) {
  TaskRec& task = run_.tasks[t];
  const dag::Stage& stage = run_.pipeline.stages[task.stage];
  const int64_t now = WallClockMs();
  json command =
      stage.run.is_shell() ? json{{"shell", stage.run.shell}} : json{{"argv", launch.argv}};
  if (stage.run.is_shell()) {
    // How it ran: executed directly (its words) or through /bin/sh -c, and why.
    if (!launch.argv.empty()) {
      command["exec"] = "direct";
    } else {
      command["exec"] = "sh";
      command["why_shell"] = ClassifyShellCommand(stage.run.shell).why_shell;
    }
  }
  AttemptStart attempt;
  attempt.task_id = task.id;
  attempt.number = task.attempts;
  attempt.state = hit ? AttemptState::kCached : AttemptState::kRunning;
  attempt.command = command.dump();
  attempt.cache_key = task.cache_key;
  attempt.cache_ingredients = std::move(cache_ingredients);
  if (hit) attempt.cached_from = hit->attempt_id;
  attempt.started_at = now;
  attempt.log_path = launch.log_path;
  attempt.worker = options_.worker;
  attempt.input_wait_ms =
      task.data_wait_since_ms > 0 ? std::max<int64_t>(now - task.data_wait_since_ms, 0) : 0;
  if (!stage.inputs.empty()) attempt.reads_json = internal::ReadsJson(run_, t);
  task.data_wait_since_ms = 0;
  TF_ASSIGN_OR_RETURN(task.attempt_id, writer().StartAttempt(attempt));
  task.attempt_started_ms = now;
  launch.attempt_id = task.attempt_id;
  attempt_task_[task.attempt_id] = t;
  for (const auto& [name, artifact] : inputs.consumed) {
    TF_RETURN_IF_ERROR(writer().AddEdge(task.attempt_id, artifact, "consumed", name, now));
  }
  return absl::OkStatus();
}

// Outputs kept only on an object store are copied into staging on their
// write tier first; the reuse starts when every one is there.
int Engine::Impl::StartRestores(uint32_t t, TaskLaunch& launch, const internal::TaskCache::Hit& hit,
                                const std::string& staging) {
  int restores = 0;
  for (size_t o = 0; o < launch.outputs.size(); ++o) {
    if (!hit.restore[o]) continue;
    const auto& [tier, key] = *hit.restore[o];
    const std::string to_key = StrCat(staging, "restore/", launch.outputs[o].name);
    launch.outputs[o].reuse_from = run_.TierPath(run_.tasks[t].places[o].write, to_key);
    replicas().RestoreOutput(t, o, tier, key, to_key, hit.hashes[o]);
    ++restores;
  }
  return restores;
}

}  // namespace tierflow::scheduler
