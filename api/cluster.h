// Cluster mode (DESIGN.md "Modes" 2): `tierflow server` runs the same
// engine as `tierflow run`, one per submitted run, with an executor that
// leases tasks to workers over gRPC (rpc/tierflow.proto); `tierflow worker`
// runs what it is leased on its own local pool and reports back; clients
// submit and look at runs through the server. Only the server writes the
// state store.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/http_server.h"
#include "api/run_service.h"
#include "api/slurm_executor.h"
#include "worker/exec_task.h"
#include "worker/job_node_side.h"
#include "worker/remote_session.h"

namespace tierflow::api {

struct ServerOptions {
  std::string listen = "127.0.0.1:7070";  // HOST:PORT; port 0 picks a free one
  std::string db_path;
  std::string tiers_file;    // "" : the embedded default tiers beside the store
  std::string client_token;  // required from clients when set
  std::string worker_token;  // required from workers when set
  // A worker that sends nothing for this long is lost.
  std::chrono::milliseconds worker_timeout{10000};
  // TLS: the server's certificate chain and private key (PEM files); both
  // or neither. Clients then need TIERFLOW_TLS_CA.
  std::string tls_cert;
  std::string tls_key;
  // The HTTP API, /metrics and the web UI (api/http_server.h), on this
  // HOST:PORT; "" : none. It requires the client token when there is one.
  std::string http_listen;
  std::vector<WebAsset> ui_assets;  // the web UI's files (HttpServerOptions)
  // "slurm": new runs run as Slurm jobs (docs/slurm.md) with `slurm`'s
  // options, not on workers. "": on workers. A resumed run (a restart)
  // always uses its recorded executor and options.
  std::string executor;
  SlurmOptions slurm;
};

// Serves until `stop` becomes true (checked a few times a second). Prints
// "listening on HOST:PORT" to `log` once it accepts calls. Refuses to start
// on an address beyond loopback unless both tokens are set.
absl::Status RunServer(const ServerOptions& options, const std::atomic<bool>& stop,
                       std::ostream& log);

// `tierflow worker` (worker/remote_session.h).
using worker::RunWorker;
using worker::WorkerOptions;
// `tierflow exec-task`: the job side of an executor whose attempts outlive
// the engine (worker/exec_task.h).
using worker::ExecTask;
using worker::ExecTaskList;
// `tierflow node-evict`: an eviction job's side (worker/job_node_side.h).
using worker::EvictNodeCopies;

using scheduler::RunStateName;
using scheduler::TaskState;
using scheduler::TaskStateName;

// A run as the server tells it. The states travel as their words
// (rpc/tierflow.proto) and are parsed on arrival: a word this tierflow does
// not know (a newer server's) is an error naming it, never some default.
struct RemoteTask {
  std::string id;
  TaskState state = TaskState::kPending;
  uint32_t attempts = 0;
  std::string worker;
  std::string message;
};

struct RemoteRun {
  std::string id;
  std::string pipeline;
  RunState state = RunState::kRunning;
  std::string message;
  std::vector<RemoteTask> tasks;
  // By state (ListRemoteRuns; a server older than the counts leaves total 0).
  scheduler::RunCounts counts;
  int64_t created_at_ms = 0;
  std::optional<int64_t> finished_at_ms;
};

// Client calls. `token` is the client token ("" when the server needs none).
// Every client (and worker) speaks TLS when TIERFLOW_TLS_CA names the PEM
// file of the CA that signed the server's certificate.
absl::StatusOr<std::string> SubmitRemote(const std::string& scheduler, const std::string& token,
                                         const std::string& file,
                                         const std::map<std::string, std::string>& params,
                                         int priority = 0);
absl::StatusOr<RemoteRun> GetRemoteRun(const std::string& scheduler, const std::string& token,
                                       const std::string& run);
absl::StatusOr<std::string> CancelRemoteRun(const std::string& scheduler, const std::string& token,
                                            const std::string& run);
// `tierflow logs` and `lineage` against a server: the same output.
// `request.db` and `request.recheck` are the server's business.
absl::Status RemoteLogs(const std::string& scheduler, const std::string& token,
                        const LogRequest& request, std::ostream& out, std::ostream& notes);
absl::StatusOr<std::string> RemoteLineage(const std::string& scheduler, const std::string& token,
                                          const std::string& target, bool upstream, bool downstream,
                                          int64_t depth, const std::string& format);
struct WatchOptions {
  // How long to keep trying once the server is out of reach (killed,
  // restarting): capped exponential backoff, then the watch goes on where
  // it was.
  std::chrono::milliseconds reconnect_for{std::chrono::minutes(5)};
  // Told when the server is lost and when it is back (stderr); none: silent.
  std::ostream* notes = nullptr;
};
// Calls `on_change` with the run now, then each time it changes, until it
// ends. A server that goes away (the stream breaks with UNAVAILABLE, or
// ends before the run) is watched again once it answers, for up to
// `options.reconnect_for`; then an error. Other errors end the watch.
absl::Status WatchRemoteRun(const std::string& scheduler, const std::string& token,
                            const std::string& run,
                            const std::function<void(const RemoteRun&)>& on_change,
                            const WatchOptions& options = {});
// The newest `limit` runs of a server, without their tasks.
absl::StatusOr<std::vector<RemoteRun>> ListRemoteRuns(const std::string& scheduler,
                                                      const std::string& token, int limit);
// `tierflow tiers list` of a server: its tiers file (or defaults) and store.
absl::StatusOr<std::string> RemoteTiers(const std::string& scheduler, const std::string& token,
                                        const std::string& format);
// The workers connected to a server.
struct RemoteWorker {
  std::string name;
  int slots = 0;
  int running = 0;
  int64_t last_heartbeat_ms = 0;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> tiers;  // node tiers: name -> path
};
absl::StatusOr<std::vector<RemoteWorker>> ListRemoteWorkers(const std::string& scheduler,
                                                            const std::string& token);

}  // namespace tierflow::api
