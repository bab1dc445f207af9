#include "rpc/task_proto.h"

#include <chrono>

namespace tierflow::rpc {

void ToProto(const TaskLaunch& launch, v1::TaskLaunch* out) {
  out->set_mode(launch.mode == TaskLaunch::Mode::kReuse ? v1::TaskLaunch::REUSE
                                                        : v1::TaskLaunch::RUN);
  out->set_attempt_id(launch.attempt_id);
  out->set_run_id(launch.run_id);
  out->set_task_id(launch.task_id);
  out->set_attempt(launch.attempt);
  for (const std::string& arg : launch.argv) out->add_argv(arg);
  out->set_shell(launch.shell);
  for (const auto& [name, value] : launch.env) {
    v1::EnvVar* var = out->add_env();
    var->set_name(name);
    var->set_value(value);
  }
  out->set_working_dir(launch.working_dir);
  out->set_log_path(launch.log_path);
  for (const OutputLaunch& output : launch.outputs) {
    v1::OutputLaunch* o = out->add_outputs();
    o->set_name(output.name);
    o->set_staging_path(output.staging_path);
    o->set_final_path(output.final_path);
    o->set_reuse_from(output.reuse_from);
    o->set_durable(output.durable);
    o->set_tier_root(output.tier_root);
  }
  out->set_checkpoint_dir(launch.checkpoint_dir);
  out->set_checkpoint_root(launch.checkpoint_root);
  out->set_timeout_ms(launch.timeout ? launch.timeout->count() : 0);
  out->set_kill_grace_ms(launch.kill_grace.count());
  out->set_cpus(launch.cpus);
  out->set_memory_bytes(launch.memory);
  out->set_gpus(launch.gpus);
  out->mutable_labels()->insert(launch.labels.begin(), launch.labels.end());
  for (const StageIn& stage : launch.stage_in) {
    v1::StageIn* o = out->add_stage_in();
    o->set_tier(stage.tier);
    o->set_key(stage.key);
    o->set_source_root(stage.source_root);
    o->set_content_hash(stage.content_hash);
    o->set_bytes(stage.bytes);
    o->set_stream(stage.stream);
  }
  for (const NodeInput& input : launch.node_inputs) {
    v1::NodeInput* o = out->add_node_inputs();
    o->set_env(input.env);
    o->set_tier(input.tier);
    o->set_key(input.key);
  }
  if (launch.checkpoint_relay) {
    v1::CheckpointRelay* o = out->mutable_checkpoint_relay();
    o->set_tier(launch.checkpoint_relay->tier);
    o->set_key(launch.checkpoint_relay->key);
    o->set_keep(launch.checkpoint_relay->keep);
  }
  out->set_expected_duration_ms(launch.expected_duration ? launch.expected_duration->count() : 0);
  out->mutable_slurm()->set_items_per_job(launch.slurm.items_per_job);
  for (const std::string& option : launch.slurm.options) out->mutable_slurm()->add_options(option);
  out->mutable_node_tier_roots()->insert(launch.node_tier_roots.begin(),
                                         launch.node_tier_roots.end());
}

TaskLaunch FromProto(const v1::TaskLaunch& in) {
  TaskLaunch launch;
  launch.mode =
      in.mode() == v1::TaskLaunch::REUSE ? TaskLaunch::Mode::kReuse : TaskLaunch::Mode::kRun;
  launch.attempt_id = in.attempt_id();
  launch.run_id = in.run_id();
  launch.task_id = in.task_id();
  launch.attempt = in.attempt();
  launch.argv.assign(in.argv().begin(), in.argv().end());
  launch.shell = in.shell();
  for (const v1::EnvVar& var : in.env()) launch.env.emplace_back(var.name(), var.value());
  launch.working_dir = in.working_dir();
  launch.log_path = in.log_path();
  for (const v1::OutputLaunch& o : in.outputs()) {
    launch.outputs.push_back(
        {o.name(), o.staging_path(), o.final_path(), o.reuse_from(), o.durable(), o.tier_root()});
  }
  launch.checkpoint_dir = in.checkpoint_dir();
  launch.checkpoint_root = in.checkpoint_root();
  if (in.timeout_ms() > 0) launch.timeout = Duration(in.timeout_ms());
  launch.kill_grace = Duration(in.kill_grace_ms());
  launch.cpus = in.cpus();
  launch.memory = in.memory_bytes();
  launch.gpus = in.gpus();
  launch.labels.insert(in.labels().begin(), in.labels().end());
  for (const v1::StageIn& o : in.stage_in()) {
    launch.stage_in.push_back(
        {o.tier(), o.key(), o.source_root(), o.content_hash(), o.bytes(), o.stream()});
  }
  for (const v1::NodeInput& o : in.node_inputs()) {
    launch.node_inputs.push_back({o.env(), o.tier(), o.key()});
  }
  if (in.has_checkpoint_relay() && !in.checkpoint_relay().tier().empty()) {
    launch.checkpoint_relay = CheckpointRelay{
        in.checkpoint_relay().tier(), in.checkpoint_relay().key(), in.checkpoint_relay().keep()};
  }
  if (in.expected_duration_ms() > 0) launch.expected_duration = Duration(in.expected_duration_ms());
  launch.slurm.items_per_job = in.slurm().items_per_job();
  launch.slurm.options.assign(in.slurm().options().begin(), in.slurm().options().end());
  launch.node_tier_roots.insert(in.node_tier_roots().begin(), in.node_tier_roots().end());
  return launch;
}

void ToProto(const TaskReport& report, v1::TaskReport* out) {
  out->set_attempt_id(report.attempt_id);
  switch (report.outcome) {
    case TaskReport::Outcome::kSubmitted:
      out->set_outcome(v1::TaskReport::SUBMITTED);
      break;
    case TaskReport::Outcome::kStarted:
      out->set_outcome(v1::TaskReport::STARTED);
      break;
    case TaskReport::Outcome::kSucceeded:
      out->set_outcome(v1::TaskReport::SUCCEEDED);
      break;
    case TaskReport::Outcome::kFailed:
      out->set_outcome(v1::TaskReport::FAILED);
      break;
    case TaskReport::Outcome::kTimedOut:
      out->set_outcome(v1::TaskReport::TIMED_OUT);
      break;
    case TaskReport::Outcome::kCancelled:
      out->set_outcome(v1::TaskReport::CANCELLED);
      break;
    case TaskReport::Outcome::kLost:  // the scheduler's verdict, never sent by a worker
      out->set_outcome(v1::TaskReport::FAILED);
      break;
  }
  out->set_handle(report.handle);
  out->set_pid(report.pid);
  out->set_has_exit_code(report.exit_code.has_value());
  out->set_exit_code(report.exit_code.value_or(0));
  out->set_has_signal(report.signal.has_value());
  out->set_signal(report.signal.value_or(0));
  out->set_message(report.message);
  for (const OutputReport& output : report.outputs) {
    v1::OutputReport* o = out->add_outputs();
    o->set_name(output.name);
    o->set_path(output.path);
    o->set_content_hash(output.content_hash);
    o->set_bytes(output.bytes);
    o->set_files(output.files);
  }
  out->set_log_bytes(report.log_bytes);
  out->set_started_ms(report.started_ms);
  out->set_finished_ms(report.finished_ms);
  out->set_data_wait_ms(report.data_wait_ms);
  out->set_io_wait_ms(report.io_wait_ms);
  out->set_read_bytes(report.read_bytes);
  out->set_write_bytes(report.write_bytes);
  out->set_checkpoint_node_dir(report.checkpoint_node_dir);
  out->set_checkpoint_node_error(report.checkpoint_node_error);
  out->set_worker(report.worker);
  for (const NodeCopyReport& copy : report.node_copies) {
    v1::NodeCopy* o = out->add_node_copies();
    o->set_tier(copy.tier);
    o->set_key(copy.key);
    o->set_path(copy.path);
    o->set_bytes(copy.bytes);
    o->set_reused(copy.reused);
    o->set_elapsed_ms(copy.elapsed_ms);
    o->set_error(copy.error);
  }
}

TaskReport FromProto(const v1::TaskReport& in) {
  TaskReport report;
  report.attempt_id = in.attempt_id();
  switch (in.outcome()) {
    case v1::TaskReport::SUBMITTED:
      report.outcome = TaskReport::Outcome::kSubmitted;
      break;
    case v1::TaskReport::STARTED:
      report.outcome = TaskReport::Outcome::kStarted;
      break;
    case v1::TaskReport::SUCCEEDED:
      report.outcome = TaskReport::Outcome::kSucceeded;
      break;
    case v1::TaskReport::TIMED_OUT:
      report.outcome = TaskReport::Outcome::kTimedOut;
      break;
    case v1::TaskReport::CANCELLED:
      report.outcome = TaskReport::Outcome::kCancelled;
      break;
    default:
      report.outcome = TaskReport::Outcome::kFailed;
      break;
  }
  report.handle = in.handle();
  report.pid = in.pid();
  if (in.has_exit_code()) report.exit_code = in.exit_code();
  if (in.has_signal()) report.signal = in.signal();
  report.message = in.message();
  for (const v1::OutputReport& o : in.outputs()) {
    report.outputs.push_back({o.name(), o.path(), o.content_hash(), o.bytes(), o.files()});
  }
  report.log_bytes = in.log_bytes();
  report.started_ms = in.started_ms();
  report.finished_ms = in.finished_ms();
  report.data_wait_ms = in.data_wait_ms();
  report.io_wait_ms = in.io_wait_ms();
  report.read_bytes = in.read_bytes();
  report.write_bytes = in.write_bytes();
  report.checkpoint_node_dir = in.checkpoint_node_dir();
  report.checkpoint_node_error = in.checkpoint_node_error();
  report.worker = in.worker();
  for (const v1::NodeCopy& o : in.node_copies()) {
    report.node_copies.push_back(
        {o.tier(), o.key(), o.path(), o.bytes(), o.reused(), o.elapsed_ms(), o.error()});
  }
  return report;
}

void ToProto(const std::map<std::string, std::string>& tiers,
             google::protobuf::RepeatedPtrField<v1::NodeTier>* out) {
  for (const auto& [name, path] : tiers) {
    v1::NodeTier* tier = out->Add();
    tier->set_name(name);
    tier->set_path(path);
  }
}

std::map<std::string, std::string> FromProto(
    const google::protobuf::RepeatedPtrField<v1::NodeTier>& tiers) {
  std::map<std::string, std::string> out;
  for (const v1::NodeTier& tier : tiers) out[tier.name()] = tier.path();
  return out;
}

}  // namespace tierflow::rpc
