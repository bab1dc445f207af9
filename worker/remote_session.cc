// `tierflow worker`'s session loop (worker/remote_session.h): connect,
// register, clear what a predecessor left, run leases on the local pool,
// report, heartbeat; reconnect with backoff.
#include "worker/remote_session.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <future>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "common/processes.h"
#include "common/strings.h"
#include "rpc/channel.h"
#include "rpc/status.h"
#include "rpc/task_proto.h"
#include "rpc/tierflow.grpc.pb.h"
#include "worker/checkpoint_relay.h"
#include "worker/local_pool.h"
#include "worker/node_tiers.h"
#include "worker/report_batcher.h"
#include "worker/worker_state.h"

namespace tierflow::worker {
namespace {

using rpc::Authorize;
using rpc::FromGrpc;
using rpc::FromProto;
using rpc::ToProto;

using WorkerStream = grpc::ClientReaderWriter<v1::WorkerMessage, v1::SchedulerMessage>;

// A registered worker's connection: runs what it is leased until the
// stream ends (or `stop`), recording in `state` its tasks' process groups
// and the folders it makes on its node tiers. Every task it started is
// dead when it returns. Fails only when its tasks cannot be run at all.
absl::Status Serve(const WorkerOptions& options, const std::string& name,
                   const std::string& worker_id, const v1::Registered& registered,
                   const std::atomic<bool>& stop, grpc::ClientContext& context,
                   WorkerStream& stream, const std::function<bool(const v1::WorkerMessage&)>& send,
                   WorkerState& state) {
  auto node_folder = [&](const std::string& tier, const std::string& key) {
    auto root = options.tiers.find(tier);
    return root == options.tiers.end() ? std::optional<NodeFolder>()
                                       : NodeFolder{root->second, key};
  };
  NodeTiers node_tiers(options.tiers);
  CheckpointRelays relays(options.tiers);
  ReportBatcher reports(send, registered.takes_report_batches());
  // Attempts whose inputs are being copied onto node tiers (not launched
  // yet): cancelled ones are reported, not launched. What was copied, and
  // where the task writes its checkpoints, go with the start report.
  std::mutex staging_mu;
  std::set<int64_t> staging;
  std::set<int64_t> cancelled_staging;
  std::map<int64_t, TaskReport> staged;         // node_copies, checkpoint_node_*
  std::map<int64_t, NodeFolder> relay_folders;  // removed when the attempt ends
  absl::StatusOr<std::unique_ptr<Executor>> pool = StartLocalPool([&](TaskReport report) {
    if (report.outcome == TaskReport::Outcome::kStarted) {
      if (report.pid > 0) state.TaskStarted(report.attempt_id, report.pid);
    } else {
      // Its streamed inputs need not wait for it any more, and what it
      // committed last is in the scheduler's folder before it hears.
      node_tiers.Ended(report.attempt_id);
      relays.Ended(report.attempt_id);
      state.TaskEnded(report.attempt_id);
    }
    {
      std::lock_guard lock(staging_mu);
      auto found = staged.find(report.attempt_id);
      if (found != staged.end()) {
        report.node_copies = std::move(found->second.node_copies);
        report.checkpoint_node_dir = std::move(found->second.checkpoint_node_dir);
        report.checkpoint_node_error = std::move(found->second.checkpoint_node_error);
        staged.erase(found);
      }
      if (report.outcome != TaskReport::Outcome::kStarted) {
        auto relay = relay_folders.find(report.attempt_id);
        if (relay != relay_folders.end()) {
          state.FolderGone(relay->second);
          relay_folders.erase(relay);
        }
      }
    }
    reports.Add(report);
  });
  if (!pool.ok()) {
    context.TryCancel();
    return pool.status();
  }
  std::unique_ptr<Executor> executor = std::move(*pool);

  std::atomic<bool> done{false};
  const auto interval = std::chrono::milliseconds(registered.heartbeat_interval_ms());
  std::thread beat([&] {
    while (!done) {
      for (auto slept = std::chrono::milliseconds(0); slept < interval && !done && !stop;
           slept += std::chrono::milliseconds(50)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        reports.Flush();  // a start is held 50 ms at most
      }
      if (stop) context.TryCancel();
      if (done || stop) break;
      v1::WorkerMessage message;
      message.mutable_heartbeat();
      send(message);
    }
  });
  // Copies onto node tiers run beside the stream, one thread per launch.
  std::list<std::future<void>> stagers;
  auto stage_then_launch = [&](TaskLaunch launch) {
    TaskReport notes;
    notes.node_copies = node_tiers.Stage(launch);
    relays.Start(launch, notes);
    bool cancelled = false;
    {
      std::lock_guard lock(staging_mu);
      staging.erase(launch.attempt_id);
      cancelled = cancelled_staging.erase(launch.attempt_id) > 0;
      if (!cancelled) staged[launch.attempt_id] = std::move(notes);
    }
    if (!cancelled) {
      executor->Launch(std::move(launch));
      return;
    }
    node_tiers.Ended(launch.attempt_id);
    relays.Ended(launch.attempt_id);
    {
      std::lock_guard lock(staging_mu);
      auto relay = relay_folders.find(launch.attempt_id);
      if (relay != relay_folders.end()) {
        state.FolderGone(relay->second);
        relay_folders.erase(relay);
      }
    }
    TaskReport report;
    report.attempt_id = launch.attempt_id;
    report.outcome = TaskReport::Outcome::kCancelled;
    report.message = "cancelled while its inputs were copied to this worker";
    reports.Add(report);
  };
  auto take_lease = [&](const v1::TaskLaunch& lease) {
    TaskLaunch launch = FromProto(lease);
    launch.env.emplace_back("TIERFLOW_WORKER", name);
    launch.env.emplace_back("TIERFLOW_WORKER_ID", worker_id);
    if (launch.stage_in.empty() && !launch.checkpoint_relay) {
      executor->Launch(std::move(launch));
      return;
    }
    // Recorded before they are made, so that a successor finds them
    // even when this worker dies in the middle of a copy.
    for (const StageIn& stage : launch.stage_in) {
      if (auto folder = node_folder(stage.tier, stage.key)) state.FolderMade(*folder);
    }
    {
      std::lock_guard lock(staging_mu);
      staging.insert(launch.attempt_id);
      if (launch.checkpoint_relay && launch.mode == TaskLaunch::Mode::kRun) {
        if (auto folder =
                node_folder(launch.checkpoint_relay->tier, launch.checkpoint_relay->key)) {
          state.FolderMade(*folder);
          relay_folders[launch.attempt_id] = *folder;
        }
      }
    }
    stagers.remove_if([](std::future<void>& f) {
      return f.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
    });
    stagers.push_back(std::async(std::launch::async, stage_then_launch, std::move(launch)));
  };
  v1::SchedulerMessage message;
  while (stream.Read(&message)) {
    if (message.has_lease()) {
      take_lease(message.lease());
    } else if (message.has_leases()) {
      for (const v1::TaskLaunch& lease : message.leases().leases()) take_lease(lease);
    } else if (message.has_cancel()) {
      // Exactly the attempt named: other attempts here (of this run or
      // another) are never touched by it.
      const int64_t attempt = message.cancel().attempt_id();
      {
        std::lock_guard lock(staging_mu);
        if (staging.count(attempt) > 0) {
          cancelled_staging.insert(attempt);
          continue;
        }
      }
      if (message.cancel().kill_now()) {
        executor->Kill(attempt);
      } else {
        executor->Cancel(attempt);
      }
    } else if (message.has_evict()) {
      node_tiers.Evict(message.evict().tier(), message.evict().key());
      if (auto folder = node_folder(message.evict().tier(), message.evict().key())) {
        state.FolderGone(*folder);
      }
    }
  }
  done = true;
  beat.join();
  stagers.clear();  // waits for copies under way (their tasks are killed next)
  // The scheduler counts this worker's tasks lost: stop them.
  executor->KillAll();
  executor.reset();
  return absl::OkStatus();
}

// One connection's life: register, deal with what an earlier worker of
// this name for this cluster left behind, run leases until the stream
// ends, then clean up after itself. Returns how it ended; `registered`
// says whether it got that far.
absl::Status Session(const WorkerOptions& options, const std::string& name,
                     const std::atomic<bool>& stop, std::ostream& log, bool& registered) {
  auto stub = v1::Workers::NewStub(rpc::OpenChannel(options.scheduler));
  grpc::ClientContext context;
  Authorize(context, options.token);
  std::unique_ptr<WorkerStream> stream = stub->Connect(&context);
  std::mutex write_mu;
  auto send = [&](const v1::WorkerMessage& message) {
    std::lock_guard lock(write_mu);
    return stream->Write(message);
  };
  v1::WorkerMessage hello;
  v1::Register* reg = hello.mutable_register_();
  reg->set_name(name);
  reg->set_slots(options.slots);
  reg->set_cpus(options.cpus);
  reg->set_memory_bytes(options.memory);
  reg->set_gpus(options.gpus);
  reg->set_takes_lease_batches(true);
  reg->mutable_labels()->insert(options.labels.begin(), options.labels.end());
  ToProto(options.tiers, reg->mutable_tiers());
  v1::SchedulerMessage reply;
  if (!send(hello) || !stream->Read(&reply) || !reply.has_registered()) {
    stream->WritesDone();
    return FromGrpc(stream->Finish(), options.scheduler);
  }
  registered = true;
  const v1::Registered& me = reply.registered();
  // A server that issues no ids (older than this worker) is known by its address.
  const std::string cluster = me.cluster_id().empty() ? options.scheduler : me.cluster_id();
  const std::string worker_id = me.worker_id().empty() ? name : me.worker_id();
  auto abandon = [&](absl::Status why) {
    context.TryCancel();
    (void)stream->Finish();
    return why;
  };
  absl::StatusOr<std::unique_ptr<WorkerState>> opened =
      WorkerState::Open(options.state_dir, cluster, name);
  if (!opened.ok()) return abandon(opened.status());
  WorkerState& state = **opened;
  log << "worker " << me.worker() << ": connected to " << options.scheduler << " with "
      << options.slots << " slots (worker id " << worker_id << ")" << std::endl;
  // Tasks the worker of this name for this cluster before it left running
  // (killed -9, it could not stop them): the scheduler has given them to
  // others. Found through its record, never by looking at other processes.
  if (const int killed = state.KillRecordedTasks(); killed > 0) {
    log << "worker " << name << ": killed " << killed
        << " task(s) an earlier worker of this name left running" << std::endl;
  }
  // The folders it (or this worker's last connection) made on node tiers:
  // the scheduler knows of no copies on a worker that has just connected.
  if (absl::Status cleared = NodeTiers(options.tiers).Clear(state.Folders()); !cleared.ok()) {
    return abandon(cleared);
  }
  state.ForgetFolders();

  const absl::Status served =
      Serve(options, name, worker_id, me, stop, context, *stream, send, state);

  // Every task it started is dead and every copy done: nothing of this
  // connection is left for a successor to find.
  state.KillRecordedTasks();
  if (absl::Status cleared = NodeTiers(options.tiers).Clear(state.Folders()); cleared.ok()) {
    state.Remove();
  } else {
    log << "worker " << name << ": " << cleared.message() << std::endl;
  }
  const absl::Status ended = FromGrpc(stream->Finish(), options.scheduler);
  return served.ok() ? ended : served;
}

}  // namespace

absl::Status RunWorker(const WorkerOptions& options, const std::atomic<bool>& stop,
                       std::ostream& log) {
  const std::string name =
      options.name.empty() ? StrCat(HostName(), ":", static_cast<int64_t>(getpid())) : options.name;
  WorkerOptions with_slots = options;
  const unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
  if (with_slots.slots <= 0) with_slots.slots = static_cast<int>(cpus);
  if (with_slots.cpus <= 0) with_slots.cpus = cpus;
  if (with_slots.memory == 0) {
    with_slots.memory = static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) *
                        static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  }
  auto backoff = std::chrono::milliseconds(200);
  while (!stop) {
    bool registered = false;
    absl::Status ended = Session(with_slots, name, stop, log, registered);
    if (stop) break;
    if (absl::IsUnauthenticated(ended) || absl::IsPermissionDenied(ended) ||
        absl::IsAlreadyExists(ended) || absl::IsInvalidArgument(ended)) {
      return ended;  // retrying would not help
    }
    if (registered) backoff = std::chrono::milliseconds(200);
    log << "worker " << name << ": " << (ended.ok() ? "disconnected" : ended.message())
        << "; reconnecting in " << backoff.count() << " ms" << std::endl;
    for (auto slept = std::chrono::milliseconds(0); slept < backoff && !stop;
         slept += std::chrono::milliseconds(50)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
  }
  return absl::OkStatus();
}

}  // namespace tierflow::worker
