#include "api/slurm_executor.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_join.h"
#include "common/run_command.h"
#include "common/status.h"
#include "common/strings.h"
#include "scheduler/lease_policy.h"
#include "scheduler/run_queries.h"
#include "scheduler/slurm_locality.h"
#include "scheduler/store.h"
#include "storage_adapters/tier_factory.h"
#include "worker/exec_task.h"
#include "worker/job_node_side.h"

namespace tierflow::api {
namespace {

namespace fs = std::filesystem;
namespace slurm = scheduler::slurm;
using Clock = std::chrono::steady_clock;
using Outcome = TaskReport::Outcome;
// How long a finishing executor waits for its eviction jobs before it
// cancels those still queued.
constexpr std::chrono::seconds kEvictionWait{10};

using Output = CommandOutput;

std::string FirstLine(std::string_view text) {
  text = TrimWhitespace(text);
  return std::string(text.substr(0, text.find('\n')));
}

absl::Status WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  out.close();
  if (!out) return absl::UnavailableError(StrCat("cannot write ", path));
  return absl::OkStatus();
}

class SlurmExecutor final : public Executor {
 public:
  SlurmExecutor(SlurmOptions options, ReportCallback on_report)
      : options_(std::move(options)), on_report_(std::move(on_report)) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~SlurmExecutor() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
    FinishEvictions();
  }

  bool Reattaches() const override { return true; }

  void Launch(TaskLaunch launch) override {
    const int64_t attempt = launch.attempt_id;
    // Only queued here: its launch file is written when its batch is
    // submitted, on the executor's thread, so that a slow disk (an fsync
    // per file) does not stretch the gaps between a turn's launches past
    // the batch window.
    const absl::Status ready = UseRun(launch.run_id);
    std::lock_guard lock(mu_);
    if (!ready.ok()) {
      outbox_.push_back(Final(attempt, Outcome::kFailed, std::string(ready.message())));
    } else {
      for (const auto& [tier, root] : launch.node_tier_roots) node_tier_roots_[tier] = root;
      const slurm::NodeChoice near = slurm::PreferredNode(launch, held_);
      placed_[attempt] = near.reason;
      const std::string key = slurm::BatchKey(launch, near.node);
      auto batch = std::find_if(batches_.begin(), batches_.end(),
                                [&](const Batch& b) { return b.key == key; });
      if (batch == batches_.end()) {
        Batch fresh;
        fresh.key = key;
        fresh.first = Clock::now();
        fresh.node = near.node;
        fresh.node_reason = near.reason;
        batches_.push_back(std::move(fresh));
        batch = std::prev(batches_.end());
      }
      // Open while attempts keep coming within the window, up to kBatchMaxWait.
      batch->due = std::min(Clock::now() + options_.batch_window,
                            batch->first + scheduler::slurm::kBatchMaxWait);
      batch->launches.push_back(std::move(launch));
    }
    wake_.notify_all();
  }

  bool Reattach(const TaskLaunch& launch, const std::string& handle) override {
    const int64_t attempt = launch.attempt_id;
    if (!UseRun(launch.run_id).ok()) return false;
    const worker::JobFiles files = worker::JobFiles::In(job_dir_, attempt);
    std::string found = handle;
    bool packed = false;  // its job runs other attempts too
    bool reported = worker::ReadReportFile(files.report).value_or(std::nullopt).has_value();
    if (!reported) {
      std::optional<std::vector<slurm::JobRecord>> queue = Squeue(/*fresh=*/false);
      if (!queue) return false;
      found = "";
      for (const slurm::JobRecord& job : *queue) {
        const bool shared = slurm::ItemsPerJobOfComment(job.comment) > 1 &&
                            slurm::AttemptsOfComment(job.comment).size() > 1;
        if (!handle.empty()) {
          if (job.handle == handle) {
            found = handle;
            packed = shared;
          }
          continue;
        }
        // No handle recorded (a crash right after sbatch): the comment
        // names the attempt, its position the array element.
        std::vector<int64_t> attempts = slurm::AttemptsOfComment(job.comment);
        auto at = std::find(attempts.begin(), attempts.end(), attempt);
        if (at == attempts.end()) continue;
        const std::string base = job.handle.substr(0, job.handle.find('_'));
        const std::string element =
            slurm::HandleOf(base, static_cast<size_t>(at - attempts.begin()), attempts.size(),
                            slurm::ItemsPerJobOfComment(job.comment));
        if (job.handle == element) {
          found = element;
          packed = shared;
        }
      }
      if (found.empty()) {
        // Not in the queue: it may have ended since the first look at its
        // report. A job writes its report before it leaves the queue, so a
        // second look settles it; without it, an attempt that ended in
        // between would be called lost and run again.
        reported = worker::ReadReportFile(files.report).value_or(std::nullopt).has_value();
        if (!reported) return false;
        found = handle;
        packed = false;
      }
    }
    std::lock_guard lock(mu_);
    Job& job = jobs_[attempt];
    job = Job();
    job.handle = found;
    job.packed = packed;
    job.submitted_told = !handle.empty() || found.empty();
    wake_.notify_all();
    return true;
  }

  // Deleted on that node by an eviction job, batched per node per round.
  void EvictNodeCopy(const std::string& worker, const std::string& tier,
                     const std::string& key) override {
    std::lock_guard lock(mu_);
    auto node = held_.find(worker);
    if (node != held_.end()) node->second.erase(scheduler::HeldKey(tier, key));
    auto root = node_tier_roots_.find(tier);
    // A job-scoped root's copies went with their job (exec-task removes them).
    if (root == node_tier_roots_.end() || worker.empty() || worker::JobScopedRoot(root->second)) {
      return;
    }
    evictions_[worker].push_back({tier, root->second, key});
    wake_.notify_all();
  }

  void Cancel(int64_t attempt_id) override { Signal(attempt_id, "TERM"); }
  void Kill(int64_t attempt_id) override { Signal(attempt_id, "USR1"); }
  void KillAll() override {
    std::string name;
    {
      std::lock_guard lock(mu_);
      for (Batch& batch : batches_) {
        for (const TaskLaunch& launch : batch.launches) {
          outbox_.push_back(
              Final(launch.attempt_id, Outcome::kCancelled, "killed before submission"));
        }
      }
      batches_.clear();
      for (auto& [attempt, job] : jobs_) job.cancel_requested = true;
      name = run_id_.empty() ? "" : slurm::JobName(run_id_);
    }
    wake_.notify_all();
    if (name.empty()) return;
    RunCommand({"scancel", "--batch", "--signal=USR1", "--state=RUNNING", StrCat("--name=", name)});
    RunCommand({"scancel", "--state=PENDING", StrCat("--name=", name)});
  }

 private:
  struct Batch {
    std::string key;
    Clock::time_point first;  // its first attempt came
    Clock::time_point due;
    std::vector<TaskLaunch> launches;
    std::string node;  // --nodelist: its attempts read copies there
    std::string node_reason;
  };
  struct Job {
    std::string handle;  // "" until submitted
    bool submitted_told = false;
    bool started_told = false;
    bool cancel_requested = false;
    bool submitting = false;                   // its batch is being submitted: no handle yet
    bool packed = false;                       // its job runs other attempts too
    std::string submit_reason;                 // told with kSubmitted
    std::string node;                          // from squeue
    std::optional<Clock::time_point> missing;  // since when squeue lacks it
    std::optional<TaskReport> held;            // a report Slurm's word may overrule
  };

  static TaskReport Final(int64_t attempt, Outcome outcome, std::string message) {
    TaskReport report;
    report.attempt_id = attempt;
    report.outcome = outcome;
    report.message = std::move(message);
    return report;
  }

  // The run's job folder, from its first launch (one run per executor).
  absl::Status UseRun(const std::string& run_id) {
    std::lock_guard lock(dir_mu_);
    if (!run_id_.empty()) return dir_status_;
    run_id_ = run_id;
    job_dir_ = options_.job_dir.empty()
                   ? (fs::path(options_.state_dir) / "runs" / run_id / "slurm").string()
                   : options_.job_dir;
    std::error_code error;
    fs::create_directories(job_dir_, error);
    if (error || access(job_dir_.c_str(), W_OK) != 0) {
      dir_status_ = absl::FailedPreconditionError(
          StrCat("the Slurm job folder ", job_dir_, " is not writable",
                 error ? StrCat(": ", error.message()) : "",
                 " (it must be on a file system every node reaches; docs/slurm.md)"));
    }
    if (options_.tierflow.empty()) {
      options_.tierflow = fs::read_symlink("/proc/self/exe", error).string();
    }
    return dir_status_;
  }

  void Signal(int64_t attempt_id, const std::string& signal) {
    std::string handle;
    bool started = false;
    std::optional<std::vector<std::vector<std::string>>> packed;  // a packed job's scancels
    {
      std::lock_guard lock(mu_);
      for (Batch& batch : batches_) {
        auto it = std::find_if(batch.launches.begin(), batch.launches.end(),
                               [&](const TaskLaunch& l) { return l.attempt_id == attempt_id; });
        if (it == batch.launches.end()) continue;
        batch.launches.erase(it);
        outbox_.push_back(Final(attempt_id, Outcome::kCancelled, "cancelled before submission"));
        wake_.notify_all();
        return;
      }
      auto job = jobs_.find(attempt_id);
      if (job == jobs_.end()) return;
      job->second.cancel_requested = true;
      if (job->second.handle.empty()) return;  // submitting: cancelled once it has a handle
      handle = job->second.handle;
      started = job->second.started_told;
      if (job->second.packed) packed = PackedSignal(attempt_id, handle, signal);
    }
    if (packed) {
      for (const std::vector<std::string>& command : *packed) RunCommand(command);
      return;
    }
    // A running job's exec-task gets the signal (TERM: cancel with the
    // task's grace; USR1: kill at once) and reports; a queued one is
    // cancelled by Slurm (CANCELLED, reported cancelled).
    for (const std::vector<std::string>& command :
         StopCommands(handle, started, StrCat("--signal=", signal))) {
      RunCommand(command);
    }
  }

  // The scancels that stop job `handle` with `signal` to its exec-task.
  // One not seen running yet may have started since the last look: Slurm
  // cancels it if it is still queued, else its exec-task gets the signal
  // (never the whole job's processes: a task killed behind exec-task's back
  // would be reported failed, not cancelled).
  static std::vector<std::vector<std::string>> StopCommands(const std::string& handle, bool running,
                                                            const std::string& signal) {
    if (running) return {{"scancel", "--batch", signal, handle}};
    return {{"scancel", "--state=PENDING", handle},
            {"scancel", "--batch", signal, "--state=RUNNING", handle}};
  }

  // One attempt of a packed job (several attempts to one handle): its
  // marker, then USR2 to the job's exec-task, which stops exactly the
  // marked items (worker/exec_task.h); the others run on. A queued job is
  // cancelled by Slurm once every attempt of it is; until then the job
  // reads the marker when the item's turn comes. Returns the scancel to
  // run (none: nothing to send). Called with mu_ held.
  std::vector<std::vector<std::string>> PackedSignal(int64_t attempt_id, const std::string& handle,
                                                     const std::string& signal) {
    bool running = false, all_cancelled = true;
    for (const auto& [attempt, job] : jobs_) {
      if (job.handle != handle) continue;
      running = running || job.started_told || !job.node.empty();
      all_cancelled = all_cancelled && job.cancel_requested;
    }
    const absl::Status marked = WriteText(worker::JobFiles::In(job_dir_, attempt_id).cancel,
                                          signal == "USR1" ? "kill\n" : "cancel\n");
    if (!running && all_cancelled) return StopCommands(handle, false, "--signal=USR2");
    if (running || !marked.ok()) return StopCommands(handle, true, "--signal=USR2");
    return {};
  }

  // One squeue of the run's jobs; nullopt when squeue failed. `fresh`
  // false: a snapshot up to a second old will do (re-attaching many).
  std::optional<std::vector<slurm::JobRecord>> Squeue(bool fresh) {
    std::lock_guard lock(squeue_mu_);
    if (!fresh && snapshot_ && Clock::now() - snapshot_time_ < std::chrono::seconds(1)) {
      return snapshot_;
    }
    Output out = RunCommand({"squeue", "--noheader", "--array",
                             StrCat("--name=", slurm::JobName(run_id_)), "--format=%i|%T|%N|%k"});
    if (out.status != 0) return std::nullopt;
    snapshot_ = slurm::ParseSqueue(out.out);
    snapshot_time_ = Clock::now();
    return snapshot_;
  }

  // What Slurm says of a job that left the queue: jobcomp/filetxt, else sacct.
  std::optional<slurm::JobRecord> Ended(const std::string& handle) {
    LookAtConfig();
    if (auto accounted = accounted_.find(handle); accounted != accounted_.end()) {
      return accounted->second;  // this round's sacct said how it ended
    }
    std::vector<slurm::JobRecord> records;
    if (jobcomp_file_) {
      std::ifstream in(*jobcomp_file_);
      std::stringstream text;
      text << in.rdbuf();
      records = slurm::ParseJobcomp(text.str());
    } else {
      Output sacct = RunCommand({"sacct", "--parsable2", "--noheader", "-j", handle,
                                 "--format=JobID,State,NodeList,ExitCode"});
      if (sacct.status == 0) records = slurm::ParseSacct(sacct.out);
    }
    std::optional<slurm::JobRecord> found;
    for (slurm::JobRecord& record : records) {
      if (record.handle == handle) found = std::move(record);  // the last line wins
    }
    return found;
  }

  // `scontrol show config`, once: the jobcomp file, and whether accounting
  // is on (then sacct tracks the run instead of squeue).
  void LookAtConfig() {
    if (config_looked_) return;
    config_looked_ = true;
    Output config = RunCommand({"scontrol", "show", "config"});
    if (config.status == 0) jobcomp_file_ = slurm::JobcompFileOf(config.out);
    tracking_ = slurm::TrackWithSacct(config.out, config.status == 0);
  }

  // The run's jobs still queued or running, from one squeue or, where
  // accounting is on, one sacct (whose ended jobs go to accounted_);
  // nullopt when the command failed.
  std::optional<std::vector<slurm::JobRecord>> InFlight() {
    LookAtConfig();
    if (!tracking_.sacct) return Squeue(/*fresh=*/true);
    std::vector<std::string> args = {"sacct"};
    for (std::string& arg : slurm::SacctTrackArgs(slurm::JobName(run_id_))) {
      args.push_back(std::move(arg));
    }
    Output out = RunCommand(args);
    if (out.status != 0) return std::nullopt;
    std::vector<slurm::JobRecord> in_flight;
    accounted_.clear();
    for (slurm::JobRecord& job : slurm::TrackedJobs(out.out)) {
      if (slurm::FateOf(job, false).in_flight) {
        in_flight.push_back(std::move(job));
      } else {
        accounted_[job.handle] = std::move(job);
      }
    }
    return in_flight;
  }

  std::string TakePlaced(int64_t attempt) {
    std::lock_guard lock(mu_);
    auto found = placed_.find(attempt);
    if (found == placed_.end()) return "";
    std::string reason = std::move(found->second);
    placed_.erase(found);
    return reason;
  }

  // The copies a job's start report says its node's tiers hold now.
  void RecordHeld(const TaskReport& started) {
    if (started.worker.empty()) return;
    std::lock_guard lock(mu_);
    for (const NodeCopyReport& copy : started.node_copies) {
      auto root = node_tier_roots_.find(copy.tier);
      if (!copy.error.empty() ||
          (root != node_tier_roots_.end() && worker::JobScopedRoot(root->second))) {
        continue;  // a later job there would not see it
      }
      held_[started.worker][scheduler::HeldKey(copy.tier, copy.key)] = copy.bytes;
    }
  }

  // One eviction job per node with copies to delete (this round's).
  void SubmitEvictions() {
    std::map<std::string, std::vector<std::array<std::string, 3>>> evictions;
    {
      std::lock_guard lock(mu_);
      evictions.swap(evictions_);
    }
    if (evictions.empty() || job_dir_.empty()) return;
    for (const auto& [node, copies] : evictions) {
      const std::string base = StrCat(job_dir_, "/evict-", next_eviction_++);
      absl::Status written = WriteText(base + ".list", worker::EvictionList(copies));
      if (written.ok()) {
        written = WriteText(base + ".sh", slurm::EvictionScript(options_.tierflow, base + ".list"));
      }
      if (!written.ok()) continue;  // the copies stay; a job-scoped root's go with their job
      std::vector<std::string> args = {"sbatch"};
      for (std::string& arg : slurm::EvictionSbatchArgs(run_id_, node, options_.submit,
                                                        StrCat(job_dir_, "/evict-%j.out"))) {
        args.push_back(std::move(arg));
      }
      args.push_back(base + ".sh");
      Output out = RunCommand(args);
      std::optional<std::string> id =
          out.status == 0 ? slurm::ParseSbatchOutput(out.out) : std::nullopt;
      if (!id) continue;
      std::lock_guard lock(mu_);
      std::ofstream(StrCat(job_dir_, "/evictions.log"), std::ios::app)
          << *id << ' ' << node << '\n';
      eviction_jobs_.push_back(*id);
    }
  }

  // At the end: the copies evicted last are deleted (what this round still
  // holds is submitted), then eviction jobs still queued after a bounded
  // wait are cancelled, never left queued.
  void FinishEvictions() {
    SubmitEvictions();
    std::vector<std::string> jobs;
    {
      std::lock_guard lock(mu_);
      jobs.swap(eviction_jobs_);
    }
    const Clock::time_point give_up = Clock::now() + kEvictionWait;
    while (!jobs.empty()) {
      std::optional<std::vector<slurm::JobRecord>> queue = Squeue(/*fresh=*/true);
      if (!queue) break;
      std::erase_if(jobs, [&](const std::string& id) {
        return std::none_of(queue->begin(), queue->end(),
                            [&](const slurm::JobRecord& job) { return job.handle == id; });
      });
      if (jobs.empty() || Clock::now() >= give_up) break;
      std::this_thread::sleep_for(options_.poll.min);
    }
    for (const std::string& id : jobs) RunCommand({"scancel", id});
  }

  void Submit(Batch batch) {
    std::vector<int64_t> attempts;
    for (const TaskLaunch& launch : batch.launches) attempts.push_back(launch.attempt_id);
    // Every attempt of a batch is of one stage: one packing for all.
    const slurm::Packing packing = slurm::ItemsPerJob(batch.launches[0]);
    const uint32_t per_job = packing.items_per_job;
    const bool packed = per_job > 1 && attempts.size() > 1;
    const bool array = attempts.size() > per_job;
    const std::string base = StrCat(job_dir_, "/batch-", attempts[0]);
    absl::Status written = absl::OkStatus();
    for (const TaskLaunch& launch : batch.launches) {
      if (!written.ok()) break;
      written =
          worker::WriteLaunchFile(worker::JobFiles::In(job_dir_, launch.attempt_id).launch, launch);
    }
    if (written.ok() && attempts.size() > 1) {
      written = WriteText(base + ".list", slurm::ListFile(attempts));
    }
    if (written.ok()) {
      written = WriteText(base + ".sh", slurm::JobScript(options_.tierflow, job_dir_, attempts,
                                                         base + ".list", per_job));
    }
    std::optional<std::string> job_id;
    std::string error = std::string(written.message());
    if (written.ok()) {
      slurm::SbatchPlan plan =
          slurm::SbatchArgs(batch.launches[0], attempts, options_.submit,
                            StrCat(job_dir_, array ? "/job-%A_%a.out" : "/job-%j.out"), packing,
                            batch.node, batch.node_reason);
      std::vector<std::string> args = {"sbatch"};
      args.insert(args.end(), plan.args.begin(), plan.args.end());
      args.push_back(base + ".sh");
      Output out = RunCommand(args);
      if (out.status == 0) job_id = slurm::ParseSbatchOutput(out.out);
      error = StrCat("sbatch failed: ", FirstLine(out.err.empty() ? out.out : out.err));
    }
    std::set<std::vector<std::string>> cancels;  // asked while sbatch ran
    {
      std::lock_guard lock(mu_);
      if (!job_id) {
        for (int64_t attempt : attempts) {
          jobs_.erase(attempt);
          outbox_.push_back(Final(attempt, Outcome::kFailed, error));
        }
        return;
      }
      std::ofstream log(StrCat(job_dir_, "/submissions.log"), std::ios::app);
      for (size_t i = 0; i < attempts.size(); ++i) {
        const std::string handle = slurm::HandleOf(*job_id, i, attempts.size(), per_job);
        log << attempts[i] << ' ' << handle << '\n';
        Job& job = jobs_[attempts[i]];
        job.handle = handle;
        job.submitting = false;
        job.packed = packed;
        job.submit_reason = StrCat("Slurm job ", handle, ": ", packing.reason);
      }
      for (int64_t attempt : attempts) {
        Job& job = jobs_[attempt];
        if (!job.cancel_requested) continue;
        for (std::vector<std::string>& command :
             packed ? PackedSignal(attempt, job.handle, "TERM")
                    : StopCommands(job.handle, false, "--signal=TERM")) {
          cancels.insert(std::move(command));
        }
      }
    }
    for (const std::vector<std::string>& command : cancels) {
      if (!command.empty()) RunCommand(command);
    }
  }

  // One round: reports from the job folder and, when `ask_queue`, one
  // squeue (or sacct) for the run. True when something changed: a report,
  // or a job's state or node in the queue.
  bool Track(bool ask_queue) {
    std::vector<std::pair<int64_t, Job>> tracked;
    {
      std::lock_guard lock(mu_);
      tracked.assign(jobs_.begin(), jobs_.end());
    }
    if (tracked.empty()) return false;
    std::optional<std::vector<slurm::JobRecord>> queue;
    if (ask_queue) queue = InFlight();
    std::map<std::string, const slurm::JobRecord*> queued;
    bool changed = false;
    if (queue) {
      std::map<std::string, std::string> seen;
      for (const slurm::JobRecord& job : *queue) {
        queued[job.handle] = &job;
        seen[job.handle] = StrCat(job.state, " ", job.nodes);
      }
      changed = seen != last_queue_;
      last_queue_ = std::move(seen);
    }
    std::vector<TaskReport> reports;
    std::set<int64_t> done;
    std::map<int64_t, Job> updates;
    std::map<std::string, std::optional<slurm::JobRecord>> ended_records;
    for (auto& [attempt, job] : tracked) {
      if (job.submitting) continue;
      const worker::JobFiles files = worker::JobFiles::In(job_dir_, attempt);
      auto in_queue = queued.find(job.handle);
      if (in_queue != queued.end() && !in_queue->second->nodes.empty()) {
        job.node = in_queue->second->nodes;
      }
      if (!job.submitted_told) {
        TaskReport submitted = Final(attempt, Outcome::kSubmitted, job.submit_reason);
        submitted.handle = job.handle;
        reports.push_back(std::move(submitted));
        job.submitted_told = true;
      }
      std::optional<TaskReport> report =
          job.held ? std::nullopt : worker::ReadReportFile(files.report).value_or(std::nullopt);
      // A task killed by a signal nobody in tierflow sent: Slurm may have
      // ended the job (a node failure, its time limit). Held until the job
      // has left the queue; Slurm's word then decides.
      if (report && report->signal && !job.cancel_requested &&
          (report->outcome == Outcome::kFailed || report->outcome == Outcome::kCancelled)) {
        job.held = std::move(report);
        report.reset();
      }
      // Also when it has ended already: its start says where it ran, why,
      // and what it copied onto node tiers there (lineage).
      if (!job.held && !job.started_told) {
        std::optional<TaskReport> started =
            worker::ReadReportFile(files.started).value_or(std::nullopt);
        if (started) {
          started->handle = job.handle;
          if (started->worker.empty()) started->worker = job.node;
          if (started->message.empty()) started->message = TakePlaced(attempt);
          RecordHeld(*started);
          reports.push_back(std::move(*started));
          job.started_told = true;
        }
      }
      if (report) {
        if (report->worker.empty()) report->worker = job.node;
        reports.push_back(std::move(*report));
        done.insert(attempt);
        continue;
      }
      if (!queue) {  // the queue was not asked (or failed) this round: as it was
        updates[attempt] = job;
        continue;
      }
      if (in_queue != queued.end()) {
        job.missing.reset();
        updates[attempt] = job;
        continue;
      }
      // Gone from the queue without a report: after the grace (a shared
      // file system may show the report late), Slurm's word says why.
      if (!job.missing) job.missing = Clock::now();
      if (Clock::now() - *job.missing < options_.lost_grace) {
        updates[attempt] = job;
        continue;
      }
      // The attempts of a packed job share its record: read once a round.
      auto [record, fresh] = ended_records.try_emplace(job.handle);
      if (fresh) record->second = Ended(job.handle);
      const std::optional<slurm::JobRecord>& ended = record->second;
      if (job.held) {
        if (ended && slurm::EndedBySlurm(ended->state)) {
          slurm::Fate fate = slurm::FateOf(*ended, false);
          job.held->outcome = fate.outcome;
          job.held->message = StrCat(fate.message, " (the task: ", job.held->message, ")");
        }
        if (job.held->worker.empty()) job.held->worker = job.node;
        reports.push_back(std::move(*job.held));
        done.insert(attempt);
        continue;
      }
      TaskReport lost = Final(attempt, Outcome::kLost,
                              StrCat("its Slurm job ", job.handle, " ended without a report"));
      if (ended) {
        slurm::Fate fate = slurm::FateOf(*ended, job.cancel_requested);
        // An item of a packed job that never started is not at fault for
        // how the job ended (its time limit, a failure): it runs again.
        const bool never_ran = job.packed && !job.started_told && !job.cancel_requested;
        if (!fate.in_flight && !never_ran) {
          lost.outcome = fate.outcome;
          lost.message = fate.message;
        } else if (never_ran) {
          lost.message = StrCat(fate.message, " (this item of the packed job had not started)");
        }
        lost.worker = ended->nodes;
      } else if (job.cancel_requested) {
        lost.outcome = Outcome::kCancelled;
        lost.message = StrCat("its Slurm job ", job.handle, " was cancelled (scancel)");
      }
      reports.push_back(std::move(lost));
      done.insert(attempt);
    }
    {
      std::lock_guard lock(mu_);
      for (int64_t attempt : done) {
        jobs_.erase(attempt);
        placed_.erase(attempt);
      }
      // A lost job's node may be gone, and its copies with it.
      for (const TaskReport& report : reports) {
        if (report.outcome == Outcome::kLost && !report.worker.empty()) held_.erase(report.worker);
      }
      for (auto& [attempt, job] : updates) {
        auto it = jobs_.find(attempt);
        if (it == jobs_.end()) continue;
        // Cancel may have been asked meanwhile; the rest is this thread's.
        const bool cancel = it->second.cancel_requested;
        it->second = job;
        it->second.cancel_requested = cancel || job.cancel_requested;
      }
    }
    changed = changed || !reports.empty();
    for (TaskReport& report : reports) on_report_(std::move(report));
    return changed;
  }

  void Loop() {
    // Reports are read every short round (poll.min: a file read is cheap);
    // the queue is asked at the adaptive interval (slurm::NextPoll).
    Clock::time_point next_poll = Clock::now();
    Clock::time_point next_queue = Clock::now();
    std::chrono::milliseconds interval{0};
    std::unique_lock lock(mu_);
    while (!stop_) {
      std::vector<TaskReport> outbox = std::move(outbox_);
      outbox_.clear();
      std::vector<Batch> due;
      const Clock::time_point now = Clock::now();
      for (auto it = batches_.begin(); it != batches_.end();) {
        if (it->due <= now || it->launches.empty()) {
          for (const TaskLaunch& launch : it->launches) {
            jobs_[launch.attempt_id] = Job();
            jobs_[launch.attempt_id].submitting = true;
          }
          if (!it->launches.empty()) due.push_back(std::move(*it));
          it = batches_.erase(it);
        } else {
          ++it;
        }
      }
      lock.unlock();
      for (TaskReport& report : outbox) on_report_(std::move(report));
      for (Batch& batch : due) Submit(std::move(batch));
      if (!due.empty()) {  // a new submission: watch it closely again
        interval = slurm::NextPoll(interval, /*changed=*/true, options_.poll).interval;
        next_queue = std::min(next_queue, Clock::now() + interval);
      }
      SubmitEvictions();
      if (Clock::now() >= next_poll) {
        const bool ask_queue = Clock::now() >= next_queue;
        const bool changed = Track(ask_queue);
        if (ask_queue || changed) {
          interval = slurm::NextPoll(interval, changed, options_.poll).interval;
          next_queue = Clock::now() + interval;
        }
        next_poll = Clock::now() + options_.poll.min;
      }
      lock.lock();
      Clock::time_point wake = next_poll;
      for (const Batch& batch : batches_) wake = std::min(wake, batch.due);
      if (outbox_.empty()) wake_.wait_until(lock, wake);
    }
  }

  SlurmOptions options_;
  const ReportCallback on_report_;
  std::mutex dir_mu_;
  std::string run_id_;   // set once, by the first launch or reattach
  std::string job_dir_;  // likewise
  absl::Status dir_status_;
  std::mutex squeue_mu_;
  std::optional<std::vector<slurm::JobRecord>> snapshot_;  // guarded by squeue_mu_
  Clock::time_point snapshot_time_;
  // The loop thread's:
  bool config_looked_ = false;
  int next_eviction_ = 0;
  std::optional<std::string> jobcomp_file_;
  slurm::TrackingChoice tracking_;
  std::map<std::string, slurm::JobRecord> accounted_;  // ended, by handle (sacct)
  std::map<std::string, std::string> last_queue_;      // handle: "STATE NODES"
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;               // guarded by mu_
  std::vector<Batch> batches_;      // guarded by mu_
  std::map<int64_t, Job> jobs_;     // guarded by mu_
  std::vector<TaskReport> outbox_;  // guarded by mu_
  // Locality (docs/slurm.md "Node-local tiers"): what each node's node
  // tiers hold, from the jobs' start reports; the tiers' configured roots;
  // why each attempt goes where it goes; copies to delete, per node; the
  // eviction jobs submitted (guarded by mu_).
  slurm::NodeHoldings held_;
  std::map<std::string, std::string> node_tier_roots_;
  std::map<int64_t, std::string> placed_;
  std::map<std::string, std::vector<std::array<std::string, 3>>> evictions_;
  std::vector<std::string> eviction_jobs_;
  std::thread thread_;
};

}  // namespace

absl::Status CheckSlurmCommands() {
  for (const char* command : {"sbatch", "squeue", "scancel"}) {
    if (!OnPath(command)) {
      return absl::FailedPreconditionError(
          StrCat("--executor slurm: `", command,
                 "` is not on PATH (install Slurm's client commands, or run on a submit host)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Executor>> StartSlurmExecutor(SlurmOptions options,
                                                             Executor::ReportCallback on_report) {
  TF_RETURN_IF_ERROR(CheckSlurmCommands());
  return std::make_unique<SlurmExecutor>(std::move(options), std::move(on_report));
}

std::unique_ptr<scheduler::Engine> MakeSlurmEngine(scheduler::EngineOptions engine_options,
                                                   SlurmOptions slurm_options) {
  UseSlurm(engine_options, std::move(slurm_options));
  return std::make_unique<scheduler::Engine>(std::move(engine_options));
}

void UseSlurm(scheduler::EngineOptions& engine_options, SlurmOptions slurm_options) {
  if (slurm_options.state_dir.empty()) {
    std::error_code error;
    slurm_options.state_dir =
        fs::absolute(fs::path(engine_options.db_path).parent_path(), error).string();
  }
  engine_options.make_executor = [slurm_options](Executor::ReportCallback on_report) {
    return StartSlurmExecutor(slurm_options, std::move(on_report));
  };
  if (!engine_options.open_tier) engine_options.open_tier = storage::OpenTier;
  // A node tier's root with variables is each node's, expanded there; the
  // engine never writes on node tiers (their copies are the jobs'), so it
  // opens a stand-in in the state directory rather than a folder named
  // after an unexpanded variable.
  engine_options.open_tier = [open = engine_options.open_tier,
                              state = slurm_options.state_dir](const storage::TierConfig& tier) {
    if (tier.scope != storage::Scope::kNode || tier.root.find('$') == std::string::npos) {
      return open(tier);
    }
    storage::TierConfig stand_in = tier;
    stand_in.root = (fs::path(state) / "slurm-node-tiers" / tier.name).string();
    return open(stand_in);
  };
  // Jobs may run on this host (a one-machine cluster): a resume must not
  // kill them as a dead engine's leftovers; it re-attaches.
  engine_options.kill_leftovers_on_host = false;
  // Node tiers are each node's own, as a cluster's workers' are: a job
  // stages its inputs there and relays its checkpoints from there.
  engine_options.node_tiers_on_workers = true;
  engine_options.worker = "";
  engine_options.executor = "slurm";
  engine_options.executor_options = slurm::SubmitOptionsJson(slurm_options.submit);
}

absl::StatusOr<RecordedExecutor> RecordedExecutorOf(const std::string& db_path,
                                                    const std::string& run_ref) {
  TF_ASSIGN_OR_RETURN(std::unique_ptr<scheduler::Database> db, scheduler::OpenStore(db_path));
  RecordedExecutor recorded;
  TF_ASSIGN_OR_RETURN(recorded.run_id, scheduler::ResolveRunId(*db, run_ref));
  TF_ASSIGN_OR_RETURN(scheduler::RunExecutor stored,
                      scheduler::GetRunExecutor(*db, recorded.run_id));
  recorded.executor = stored.executor;
  if (stored.executor == "slurm" && stored.options) {
    TF_ASSIGN_OR_RETURN(recorded.slurm, slurm::ParseSubmitOptionsJson(*stored.options));
  }
  return recorded;
}

absl::Status CancelSlurmJobs(const std::string& run_id) {
  TF_RETURN_IF_ERROR(CheckSlurmCommands());
  const std::string name = StrCat("--name=", slurm::JobName(run_id));
  // Queued ones first: one that starts meanwhile is signalled below.
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"scancel", "--state=PENDING", name},
        std::vector<std::string>{"scancel", "--batch", "--signal=TERM", "--state=RUNNING", name}}) {
    Output out = RunCommand(args);
    if (out.status != 0) {
      return absl::UnavailableError(StrCat("cannot cancel the Slurm jobs of run ", run_id, ": ",
                                           absl::StrJoin(args, " "), ": ",
                                           FirstLine(out.err.empty() ? out.out : out.err)));
    }
  }
  return absl::OkStatus();
}

}  // namespace tierflow::api
