#include "scheduler/testing/run_fixture.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <vector>

#include "common/processes.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/testing/child_process.h"
#include "scheduler/sqlite.h"
#include "scheduler/store.h"

namespace tierflow::scheduler::testing {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kHour = 3600 * 1000;

struct TaskSpec {
  std::string id;
  std::string stage;
  std::string kind;
  std::optional<std::string> item;
  int64_t item_index;
  int64_t layer;
};

const std::vector<TaskSpec>& Tasks() {
  static const std::vector<TaskSpec> tasks = {
      {"ingest[0]", "ingest", "ingest", "0", 0, 0},
      {"ingest[1]", "ingest", "ingest", "1", 1, 0},
      {"clean", "clean", "clean", std::nullopt, 0, 1},
      {"train", "train", "train", std::nullopt, 0, 2},
      {"publish", "publish", "checkpoint", std::nullopt, 0, 3},
      {"notify", "notify", "checkpoint", std::nullopt, 0, 4},
  };
  return tasks;
}

std::string Hash(char digit) { return "xxh3:" + std::string(32, digit); }

class Writer {
 public:
  Writer(Database& db, std::string dir) : db_(db), dir_(std::move(dir)) {}

  absl::Status Run(const std::string& id, const std::string& state, int64_t created,
                   std::optional<int64_t> finished, const std::string& params,
                   std::optional<int64_t> engine_pid, const std::string& message) {
    TF_ASSIGN_OR_RETURN(
        Statement insert,
        db_.Prepare("INSERT INTO runs(id, pipeline_id, pipeline_name, file, "
                    "working_dir, params_json, state, slots, created_at, "
                    "started_at, finished_at, engine_pid, engine_host, message) "
                    "VALUES (?, 1, 'quickstart', ?, ?, ?, ?, 4, ?, ?, ?, ?, ?, ?)"));
    insert.Bind(1, id)
        .Bind(2, dir_ + "/pipeline.yaml")
        .Bind(3, dir_)
        .Bind(4, params)
        .Bind(5, state)
        .Bind(6, created)
        .Bind(7, created)
        .Bind(8, finished)
        .Bind(9, engine_pid)
        .Bind(10, HostName())
        .Bind(11, message);
    return insert.Run();
  }

  absl::Status Task(const std::string& run, const TaskSpec& spec, int64_t seq,
                    const std::string& state, int64_t attempts, std::optional<int64_t> started,
                    std::optional<int64_t> finished, const std::string& message) {
    TF_ASSIGN_OR_RETURN(Statement insert,
                        db_.Prepare("INSERT INTO tasks(run_id, id, seq, stage, kind, item, "
                                    "item_index, layer, state, attempts, started_at, finished_at, "
                                    "message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
    insert.Bind(1, run)
        .Bind(2, spec.id)
        .Bind(3, seq)
        .Bind(4, spec.stage)
        .Bind(5, spec.kind)
        .Bind(6, spec.item)
        .Bind(7, spec.item_index)
        .Bind(8, spec.layer)
        .Bind(9, state)
        .Bind(10, attempts)
        .Bind(11, started)
        .Bind(12, finished)
        .Bind(13, message);
    return insert.Run();
  }

  // "STAGE" of task "STAGE" and "STAGE/ITEM" of task "STAGE[ITEM]", as the
  // engine lays out a run's folders.
  static std::string TaskPath(std::string_view task) {
    const size_t open = task.find('[');
    if (open == std::string_view::npos) return std::string(task);
    return StrCat(task.substr(0, open), "/", task.substr(open + 1, task.size() - open - 2));
  }

  std::string LogPath(const std::string& run, const std::string& task, int64_t number) {
    return StrCat(dir_, "/runs/", run, "/logs/", TaskPath(task), ".attempt-", number, ".log");
  }

  // Inserts an attempt and writes its log (`log` empty: "TASK attempt N\n").
  absl::Status Attempt(int64_t id, const std::string& run, const std::string& task, int64_t number,
                       const std::string& state, int64_t started, std::optional<int64_t> finished,
                       std::optional<int64_t> exit_code, std::optional<int64_t> signal,
                       const std::string& message, std::optional<int64_t> cached_from = {},
                       const std::string& cache_key = "", std::string log = "") {
    const std::string log_path = cached_from ? "" : LogPath(run, task, number);
    if (!log_path.empty()) {
      fs::create_directories(fs::path(log_path).parent_path());
      if (log.empty() && state != "running") log = StrCat(task, " attempt ", number, "\n");
      std::ofstream(log_path, std::ios::binary) << log;
    }
    TF_ASSIGN_OR_RETURN(
        Statement insert,
        db_.Prepare("INSERT INTO attempts(id, run_id, task_id, number, state, worker, pid, "
                    "command, cache_key, cached_from, started_at, finished_at, exit_code, signal, "
                    "message, log_path) VALUES (?, ?, ?, ?, ?, 'local', ?, ?, ?, ?, ?, ?, ?, ?, "
                    "?, ?)"));
    insert.Bind(1, id)
        .Bind(2, run)
        .Bind(3, task)
        .Bind(4, number)
        .Bind(5, state)
        .Bind(6, state == "running" ? std::optional<int64_t>(4242) : std::nullopt)
        .Bind(7, "{\"argv\": [\"python3\", \"task.py\"]}")
        .Bind(8, cache_key.empty() ? std::nullopt : std::optional<std::string>(cache_key))
        .Bind(9, cached_from)
        .Bind(10, started)
        .Bind(11, finished)
        .Bind(12, exit_code)
        .Bind(13, signal)
        .Bind(14, message)
        .Bind(15, log_path);
    return insert.Run();
  }

  // An artifact, its home copy and the edge from the attempt that made it.
  absl::Status Artifact(int64_t id, const std::string& run, const std::string& task,
                        const std::string& name, int64_t attempt, char hash, int64_t bytes,
                        int64_t files, int64_t created) {
    TF_ASSIGN_OR_RETURN(Statement insert,
                        db_.Prepare("INSERT INTO artifacts(id, run_id, task_id, name, attempt_id, "
                                    "content_hash, bytes, files, created_at) VALUES (?, ?, ?, ?, "
                                    "?, ?, ?, ?, ?)"));
    insert.Bind(1, id)
        .Bind(2, run)
        .Bind(3, task)
        .Bind(4, name)
        .Bind(5, attempt)
        .Bind(6, Hash(hash))
        .Bind(7, bytes)
        .Bind(8, files)
        .Bind(9, created);
    TF_RETURN_IF_ERROR(insert.Run());
    // artifacts/STAGE/OUTPUT[/ITEM]
    const std::string path = TaskPath(task);
    const size_t slash = path.find('/');
    TF_RETURN_IF_ERROR(Copy(id, "local",
                            StrCat(dir_, "/runs/", run, "/artifacts/", path.substr(0, slash), "/",
                                   name, slash == std::string::npos ? "" : path.substr(slash)),
                            "home", bytes, hash, "present", created));
    return Edge(attempt, id, "produced", name, created);
  }

  absl::Status Copy(int64_t artifact, const std::string& tier, const std::string& uri,
                    const std::string& role, int64_t bytes, char hash, const std::string& state,
                    int64_t created) {
    TF_ASSIGN_OR_RETURN(Statement insert,
                        db_.Prepare("INSERT INTO artifact_copies(artifact_id, tier, uri, role, "
                                    "bytes, content_hash, state, created_at) VALUES (?, ?, ?, ?, "
                                    "?, ?, ?, ?)"));
    insert.Bind(1, artifact)
        .Bind(2, tier)
        .Bind(3, uri)
        .Bind(4, role)
        .Bind(5, bytes)
        .Bind(6, Hash(hash))
        .Bind(7, state)
        .Bind(8, created);
    return insert.Run();
  }

  absl::Status Edge(int64_t attempt, int64_t artifact, const std::string& direction,
                    const std::string& name, int64_t created) {
    TF_ASSIGN_OR_RETURN(Statement insert,
                        db_.Prepare("INSERT INTO lineage_edges(attempt_id, artifact_id, "
                                    "direction, name, created_at) VALUES (?, ?, ?, ?, ?)"));
    insert.Bind(1, attempt).Bind(2, artifact).Bind(3, direction).Bind(4, name).Bind(5, created);
    return insert.Run();
  }

 private:
  Database& db_;
  std::string dir_;
};

constexpr int64_t kSecond = 1000;

absl::Status WriteFirstRun(Writer& w) {
  const std::string run = "quickstart-1a2b3c";
  const int64_t t = kT0;
  TF_RETURN_IF_ERROR(w.Run(run, "succeeded", t, t + 65 * kSecond, "{}", std::nullopt, ""));
  const std::vector<TaskSpec>& tasks = Tasks();
  for (size_t i = 0; i < tasks.size(); ++i) {
    const int64_t start = t + static_cast<int64_t>(i) * 10 * kSecond;
    const int64_t end = start + 10 * kSecond;
    TF_RETURN_IF_ERROR(
        w.Task(run, tasks[i], static_cast<int64_t>(i), "succeeded", 1, start, end, ""));
    TF_RETURN_IF_ERROR(w.Attempt(static_cast<int64_t>(i) + 1, run, tasks[i].id, 1, "succeeded",
                                 start, end, 0, std::nullopt, "", std::nullopt,
                                 tasks[i].id == "clean" ? "k-clean" : ""));
  }
  TF_RETURN_IF_ERROR(w.Artifact(1, run, "ingest[0]", "raw", 1, 'a', 16384, 1, t + 10 * kSecond));
  TF_RETURN_IF_ERROR(w.Artifact(2, run, "ingest[1]", "raw", 2, 'b', 16384, 1, t + 20 * kSecond));
  TF_RETURN_IF_ERROR(w.Edge(3, 1, "consumed", "raw", t + 20 * kSecond));
  TF_RETURN_IF_ERROR(w.Edge(3, 2, "consumed", "raw", t + 20 * kSecond));
  TF_RETURN_IF_ERROR(w.Artifact(3, run, "clean", "clean", 3, 'c', 65536, 1, t + 30 * kSecond));
  TF_RETURN_IF_ERROR(w.Edge(4, 3, "consumed", "clean", t + 30 * kSecond));
  TF_RETURN_IF_ERROR(w.Artifact(4, run, "train", "model", 4, 'd', 4096, 1, t + 40 * kSecond));
  TF_RETURN_IF_ERROR(w.Edge(5, 4, "consumed", "model", t + 40 * kSecond));
  TF_RETURN_IF_ERROR(w.Artifact(5, run, "publish", "report", 5, 'e', 512, 1, t + 50 * kSecond));
  return w.Edge(6, 5, "consumed", "report", t + 50 * kSecond);
}

absl::Status WriteSecondRun(Writer& w) {
  const std::string run = "quickstart-3f9a1c";
  const int64_t t = kT0 + kHour;
  const int64_t s = kSecond;
  TF_RETURN_IF_ERROR(w.Run(run, "failed", t, t + 95 * s, "{\"epochs\": \"3\"}", std::nullopt,
                           "1 failed, 1 upstream_failed"));
  const std::vector<TaskSpec>& tasks = Tasks();
  TF_RETURN_IF_ERROR(w.Task(run, tasks[0], 0, "succeeded", 1, t, t + 10 * s, ""));
  TF_RETURN_IF_ERROR(w.Task(run, tasks[1], 1, "succeeded", 2, t, t + 25 * s, ""));
  TF_RETURN_IF_ERROR(w.Task(run, tasks[2], 2, "cached", 1, t + 25 * s, t + 26 * s,
                            "reused the outputs of attempt #3"));
  TF_RETURN_IF_ERROR(w.Task(run, tasks[3], 3, "succeeded", 1, t + 26 * s, t + 56 * s, ""));
  TF_RETURN_IF_ERROR(w.Task(run, tasks[4], 4, "failed", 2, t + 56 * s, t + 95 * s,
                            "timed out after 30s (killed by SIGTERM)"));
  TF_RETURN_IF_ERROR(w.Task(run, tasks[5], 5, "upstream_failed", 0, std::nullopt, t + 95 * s,
                            "upstream task publish failed"));

  TF_RETURN_IF_ERROR(w.Attempt(7, run, "ingest[0]", 1, "succeeded", t, t + 10 * s, 0, {}, ""));
  TF_RETURN_IF_ERROR(w.Attempt(8, run, "ingest[1]", 1, "failed", t, t + 5 * s, 1, {}, "exit 1"));
  TF_RETURN_IF_ERROR(
      w.Attempt(9, run, "ingest[1]", 2, "succeeded", t + 15 * s, t + 25 * s, 0, {}, ""));
  TF_RETURN_IF_ERROR(w.Attempt(10, run, "clean", 1, "cached", t + 25 * s, t + 26 * s, {}, {}, "",
                               /*cached_from=*/3, "k-clean"));
  TF_RETURN_IF_ERROR(
      w.Attempt(11, run, "train", 1, "succeeded", t + 26 * s, t + 56 * s, 0, {}, ""));
  TF_RETURN_IF_ERROR(w.Attempt(12, run, "publish", 1, "failed", t + 56 * s, t + 60 * s, 1, {},
                               "exit 1", {}, "", "publishing model\nupload refused: HTTP 403\n"));
  TF_RETURN_IF_ERROR(w.Attempt(13, run, "publish", 2, "timed_out", t + 65 * s, t + 95 * s, {}, 15,
                               "timed out after 30s (killed by SIGTERM)", {}, "",
                               "publishing model (attempt 2)\n"));

  TF_RETURN_IF_ERROR(w.Artifact(6, run, "ingest[0]", "raw", 7, 'a', 16384, 1, t + 10 * s));
  TF_RETURN_IF_ERROR(w.Artifact(7, run, "ingest[1]", "raw", 9, 'b', 16384, 1, t + 25 * s));
  TF_RETURN_IF_ERROR(w.Edge(10, 6, "consumed", "raw", t + 25 * s));
  TF_RETURN_IF_ERROR(w.Edge(10, 7, "consumed", "raw", t + 25 * s));
  TF_RETURN_IF_ERROR(w.Artifact(8, run, "clean", "clean", 10, 'c', 65536, 1, t + 26 * s));
  TF_RETURN_IF_ERROR(w.Edge(11, 8, "consumed", "clean", t + 26 * s));
  TF_RETURN_IF_ERROR(w.Artifact(9, run, "train", "model", 11, 'f', 4096, 1, t + 56 * s));
  TF_RETURN_IF_ERROR(w.Copy(9, "nvme", "/mnt/nvme/cache/quickstart-3f9a1c/train/model", "working",
                            4096, 'f', "evicted", t + 57 * s));
  TF_RETURN_IF_ERROR(w.Edge(12, 9, "consumed", "model", t + 56 * s));
  return w.Edge(13, 9, "consumed", "model", t + 65 * s);
}

absl::Status WriteRunningRun(Writer& w, int64_t engine_pid) {
  const std::string run = "quickstart-c0ffee";
  const int64_t t = kT0 + 2 * kHour;
  TF_RETURN_IF_ERROR(w.Run(run, "running", t, std::nullopt, "{}", engine_pid, ""));
  const std::vector<TaskSpec>& tasks = Tasks();
  for (size_t i = 0; i < tasks.size(); ++i) {
    const std::string state = i == 0 ? "running" : i == 1 ? "queued" : "pending";
    TF_RETURN_IF_ERROR(w.Task(run, tasks[i], static_cast<int64_t>(i), state, i == 0 ? 1 : 0,
                              i == 0 ? std::optional<int64_t>(t) : std::nullopt, std::nullopt, ""));
  }
  return w.Attempt(14, run, "ingest[0]", 1, "running", t, {}, {}, {}, "");
}

}  // namespace

absl::StatusOr<RunFixture> WriteRunFixture(const std::string& dir, int64_t engine_pid) {
  RunFixture fixture;
  fixture.dir = dir;
  fixture.db_path = dir + "/tierflow.db";
  TF_ASSIGN_OR_RETURN(std::unique_ptr<Database> db, OpenStore(fixture.db_path));
  TF_ASSIGN_OR_RETURN(Transaction transaction,
                      Transaction::Begin(*db, Transaction::Kind::kDeferred));
  TF_RETURN_IF_ERROR(
      db->Execute(StrCat("INSERT INTO pipelines(id, name, yaml_hash, yaml, file, created_at) "
                         "VALUES (1, 'quickstart', 'h', 'name: quickstart', 'pipeline.yaml', ",
                         kT0, ")")));
  Writer writer(*db, dir);
  TF_RETURN_IF_ERROR(WriteFirstRun(writer));
  TF_RETURN_IF_ERROR(WriteSecondRun(writer));
  TF_RETURN_IF_ERROR(WriteRunningRun(writer, engine_pid));
  TF_RETURN_IF_ERROR(transaction.Commit());
  fixture.running_log = writer.LogPath("quickstart-c0ffee", "ingest[0]", 1);
  return fixture;
}

FakeEngine::FakeEngine() {
  // Start returns once the program runs: argv[0] is set by then.
  auto started =
      tierflow::testing::ChildProcess::Start({"/bin/sleep", {"300"}, "tierflow-fake-engine"});
  if (started.ok()) process_ = std::move(*started);
}

FakeEngine::~FakeEngine() = default;  // the process is killed and reaped by its pid

int64_t FakeEngine::pid() const { return process_ ? process_->pid() : -1; }

int64_t DeadPid() {
  auto started = tierflow::testing::ChildProcess::Start({"/bin/true"});
  if (!started.ok()) return -1;
  (*started)->Wait();
  return (*started)->pid();
}

std::string MakeTempDir() {
  std::string pattern = (fs::temp_directory_path() / "tierflow-runs.XXXXXX").string();
  return mkdtemp(pattern.data());
}

}  // namespace tierflow::scheduler::testing
