#include "scheduler/slurm_jobs.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>

#include "absl/strings/str_join.h"
#include "common/strings.h"
#include "common/units.h"

namespace tierflow::scheduler::slurm {
namespace {

constexpr std::string_view kCommentPrefix = "tierflow:";

// Pieces of `text` between `sep`s; `skip_blank` drops blank ones.
std::vector<std::string_view> Split(std::string_view text, char sep, bool skip_blank = false,
                                    size_t max_pieces = std::string_view::npos) {
  std::vector<std::string_view> pieces;
  for (;;) {
    size_t at = pieces.size() + 1 >= max_pieces ? std::string_view::npos : text.find(sep);
    std::string_view piece = text.substr(0, at);
    if (!skip_blank || !TrimWhitespace(piece).empty()) pieces.push_back(piece);
    if (at == std::string_view::npos) return pieces;
    text.remove_prefix(at + 1);
  }
}

std::optional<int64_t> ToInt(std::string_view text) {
  int64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::string EnvOf(const TaskLaunch& launch, std::string_view name) {
  for (const auto& [key, value] : launch.env) {
    if (key == name) return value;
  }
  return "";
}

// The Slurm feature a label asks for: `ssd: "true"` → ssd, `arch: a100` → a100.
std::string FeatureOf(const std::string& key, const std::string& value) {
  return value.empty() || value == "true" ? key : value;
}

// KEY=VALUE fields of a jobcomp line.
std::map<std::string, std::string> Fields(std::string_view line) {
  std::map<std::string, std::string> fields;
  for (std::string_view word : Split(line, ' ', true)) {
    size_t eq = word.find('=');
    if (eq == std::string_view::npos) continue;
    fields.emplace(std::string(word.substr(0, eq)), std::string(word.substr(eq + 1)));
  }
  return fields;
}

}  // namespace

std::string JobName(const std::string& run_id) { return StrCat("tierflow-", run_id); }

Packing ItemsPerJob(const TaskLaunch& launch) {
  if (launch.slurm.items_per_job > 0) {
    return Packing{.items_per_job = launch.slurm.items_per_job,
                   .reason = StrCat("slurm: {items_per_job: ", launch.slurm.items_per_job,
                                    "}: the stage's own setting")};
  }
  if (!launch.expected_duration) {
    return Packing{.items_per_job = 1,
                   .reason = "no recorded task times of the stage: one item a job"};
  }
  const int64_t median_ms = std::max<int64_t>(launch.expected_duration->count(), 1);
  const int64_t target_ms = std::chrono::milliseconds(kPackTarget).count();
  const uint32_t k = static_cast<uint32_t>(
      std::clamp<int64_t>(target_ms / median_ms, 1, static_cast<int64_t>(kMaxPack)));
  return Packing{.items_per_job = k,
                 .reason = StrCat("the stage's median recorded task time ",
                                  FormatDuration(Duration(median_ms)), ": ", k,
                                  " item(s) a job, one after another (about ", kPackTarget.count(),
                                  " s of work a job, at most ", kMaxPack, ")")};
}

std::string Comment(const std::vector<int64_t>& attempts, uint32_t per_job) {
  std::string comment = StrCat(kCommentPrefix, absl::StrJoin(attempts, ","));
  if (per_job > 1) comment += StrCat("/", per_job);
  return comment;
}

uint32_t ItemsPerJobOfComment(std::string_view comment) {
  if (comment.substr(0, kCommentPrefix.size()) != kCommentPrefix) return 1;
  const size_t slash = comment.find('/');
  if (slash == std::string_view::npos) return 1;
  std::optional<int64_t> per_job = ToInt(comment.substr(slash + 1));
  return per_job && *per_job > 1 ? static_cast<uint32_t>(*per_job) : 1;
}

std::vector<int64_t> AttemptsOfComment(std::string_view comment) {
  std::vector<int64_t> attempts;
  if (comment.substr(0, kCommentPrefix.size()) != kCommentPrefix) return attempts;
  comment = comment.substr(0, comment.find('/'));
  for (std::string_view id : Split(comment.substr(kCommentPrefix.size()), ',')) {
    std::optional<int64_t> attempt = ToInt(id);
    if (!attempt) return {};
    attempts.push_back(*attempt);
  }
  return attempts;
}

std::string BatchKey(const TaskLaunch& launch, const std::string& node) {
  std::string key =
      StrCat(EnvOf(launch, "TIERFLOW_STAGE"), "|", launch.cpus, "|", launch.memory, "|",
             launch.gpus, "|", launch.timeout ? std::to_string(launch.timeout->count()) : "none",
             "|", std::chrono::duration_cast<std::chrono::milliseconds>(launch.kill_grace).count());
  for (const auto& [label, value] : launch.labels) key += StrCat("|", label, "=", value);
  if (!node.empty()) key += StrCat("|nodelist=", node);
  return key;
}

SbatchPlan SbatchArgs(const TaskLaunch& first, const std::vector<int64_t>& attempts,
                      const SubmitOptions& options, const std::string& log, const Packing& packing,
                      const std::string& nodelist, const std::string& nodelist_reason) {
  const size_t per_job = std::max<uint32_t>(packing.items_per_job, 1);
  const size_t jobs = (attempts.size() + per_job - 1) / per_job;
  const size_t items = std::min(per_job, attempts.size());  // what one job runs
  SbatchPlan plan;
  auto add = [&plan](std::initializer_list<std::string> args, std::string reason) {
    plan.args.insert(plan.args.end(), args);
    plan.reasons.push_back(std::move(reason));
  };
  add({"--parsable", "--no-requeue"},
      "--no-requeue: Slurm's requeue after a node failure would run the task again behind "
      "tierflow's back; a lost job is rerun by tierflow as a new attempt");
  add({StrCat("--job-name=", JobName(first.run_id))},
      "one name per run: one squeue per round tracks all its jobs");
  add({StrCat("--comment=", Comment(attempts, static_cast<uint32_t>(per_job)))},
      "the comment names the attempt ids: a job submitted before a crash is found again");
  add({StrCat("--output=", log)}, "exec-task's own output; the task's log is its log_path");
  const int cpus = std::max(1, static_cast<int>(std::ceil(first.cpus - 1e-9)));
  add({"-c", std::to_string(cpus)}, StrCat("cpus ", first.cpus, " → -c ", cpus, " (rounded up)"));
  if (first.memory > 0) {
    const uint64_t mib = (first.memory + (1u << 20) - 1) >> 20;
    add({StrCat("--mem=", mib, "M")},
        StrCat("memory ", first.memory, " bytes → --mem=", mib, "M (MiB, rounded up)"));
  }
  if (first.gpus > 0) {
    add({StrCat("--gres=gpu:", first.gpus)}, StrCat("gpus ", first.gpus, " → --gres"));
  }
  if (first.timeout) {
    const auto bound = *first.timeout + first.kill_grace;
    const int64_t seconds =
        std::chrono::ceil<std::chrono::seconds>(bound).count() * static_cast<int64_t>(items);
    const int64_t minutes = (seconds + 59) / 60 + kTimeLimitGrace.count();
    add({"-t", std::to_string(minutes)},
        StrCat("timeout ", std::chrono::ceil<std::chrono::seconds>(*first.timeout).count(),
               "s (+ kill grace)", items > 1 ? StrCat(" x ", items, " items a job") : "", " → -t ",
               minutes, " min: rounded up plus a grace; exec-task enforces the exact timeout"));
  }
  std::string partition = options.partition;
  std::vector<std::string> features;
  for (const auto& [label, value] : first.labels) {
    if (label == "partition") {
      partition = value;
    } else {
      features.push_back(FeatureOf(label, value));
    }
  }
  if (!partition.empty()) {
    add({StrCat("--partition=", partition)},
        first.labels.contains("partition") ? "the stage's label partition" : "--slurm-partition");
  }
  if (!features.empty()) {
    add({StrCat("--constraint=", absl::StrJoin(features, "&"))},
        "labels other than partition are node features, all required");
  }
  if (!nodelist.empty()) add({StrCat("--nodelist=", nodelist)}, nodelist_reason);
  if (!options.account.empty()) {
    add({StrCat("--account=", options.account)}, "--slurm-account");
  }
  if (jobs > 1) {
    std::string array = StrCat("--array=0-", jobs - 1);
    if (options.array_throttle > 0) array += StrCat("%", options.array_throttle);
    add({array},
        StrCat(attempts.size(),
               " attempts of one stage with the same resources, each ready within ",
               kBatchWindow.count(), " ms of the one before: one job array",
               per_job > 1 ? StrCat(" of ", jobs, " jobs, ", per_job, " items each") : ""));
  }
  if (per_job > 1) {
    plan.reasons.push_back(StrCat("packing: ", packing.reason,
                                  "; a job asks for the resources of one item, which it runs at "
                                  "a time"));
  }
  for (const std::string& extra : options.extra) add({extra}, "--slurm-option");
  for (const std::string& extra : first.slurm.options) add({extra}, "the stage's slurm: options");
  return plan;
}

std::string ShellQuote(std::string_view text) {
  std::string quoted = "'";
  for (char c : text) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  quoted += "'";
  return quoted;
}

std::string ListFile(const std::vector<int64_t>& attempts) {
  std::string list;
  for (int64_t attempt : attempts) list += StrCat(attempt, "\n");
  return list;
}

std::string JobScript(const std::string& tierflow, const std::string& job_dir,
                      const std::vector<int64_t>& attempts, const std::string& list_file,
                      uint32_t per_job) {
  const std::string dir = ShellQuote(job_dir);
  if (per_job > 1 && attempts.size() > 1) {
    return StrCat("#!/bin/sh\n# tierflow: ", per_job,
                  " attempts of a run, one after another (docs/slurm.md)\n",
                  "first=$(( ${SLURM_ARRAY_TASK_ID:-0} * ", per_job, " ))\n", "exec ",
                  ShellQuote(tierflow), " exec-task --dir ", dir, " --list ", ShellQuote(list_file),
                  " --first \"$first\" --count ", per_job, "\n");
  }
  std::string script = "#!/bin/sh\n# tierflow: one attempt of a run (docs/slurm.md)\n";
  if (attempts.size() == 1) {
    script += StrCat("attempt=", attempts[0], "\n");
  } else {
    script +=
        StrCat("attempt=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" ", ShellQuote(list_file), ")\n");
  }
  script +=
      "case $attempt in\n"
      "  '' | *[!0-9]*) echo \"tierflow: no attempt for array element $SLURM_ARRAY_TASK_ID\" >&2; "
      "exit 1 ;;\n"
      "esac\n";
  script += StrCat("exec ", ShellQuote(tierflow), " exec-task --launch ", dir,
                   "\"/attempt-$attempt.launch\" --report ", dir, "\"/attempt-$attempt.report\"\n");
  return script;
}

std::optional<std::string> ParseSbatchOutput(std::string_view output) {
  std::string_view id = TrimWhitespace(output);
  id = id.substr(0, id.find(';'));
  if (id.empty() || !ToInt(id)) return std::nullopt;
  return std::string(id);
}

std::string HandleOf(const std::string& job_id, size_t index, size_t count, uint32_t per_job) {
  per_job = std::max<uint32_t>(per_job, 1);
  return count <= per_job ? job_id : StrCat(job_id, "_", index / per_job);
}

std::vector<JobRecord> ParseSqueue(std::string_view output) {
  std::vector<JobRecord> jobs;
  for (std::string_view line : Split(output, '\n', true)) {
    std::vector<std::string_view> fields = Split(TrimWhitespace(line), '|', false, 4);
    if (fields.size() < 2) continue;
    JobRecord job{.handle = std::string(fields[0]),
                  .state = std::string(fields[1]),
                  .nodes = fields.size() > 2 ? std::string(fields[2]) : "",
                  .comment = fields.size() > 3 ? std::string(fields[3]) : "",
                  .exit_code = ""};
    const size_t open = job.handle.find("_[");
    if (open == std::string::npos || job.handle.back() != ']') {
      jobs.push_back(std::move(job));
      continue;
    }
    // A pending range: 123_[1,3-5%2].
    const std::string base = job.handle.substr(0, open);
    std::string_view ranges(job.handle);
    ranges = ranges.substr(open + 2, ranges.size() - open - 3);
    ranges = ranges.substr(0, ranges.find('%'));
    for (std::string_view range : Split(ranges, ',', true)) {
      const size_t dash = range.find('-');
      std::optional<int64_t> from = ToInt(range.substr(0, dash));
      std::optional<int64_t> to =
          dash == std::string_view::npos ? from : ToInt(range.substr(dash + 1));
      if (!from || !to) continue;
      for (int64_t i = *from; i <= *to; ++i) {
        JobRecord element = job;
        element.handle = StrCat(base, "_", i);
        jobs.push_back(std::move(element));
      }
    }
  }
  return jobs;
}

std::vector<JobRecord> ParseJobcomp(std::string_view text) {
  std::vector<JobRecord> jobs;
  for (std::string_view line : Split(text, '\n', true)) {
    std::map<std::string, std::string> fields = Fields(line);
    if (!fields.contains("JobId") || !fields.contains("JobState")) continue;
    JobRecord job{.handle = fields["JobId"],
                  .state = fields["JobState"],
                  .nodes = fields["NodeList"],
                  .comment = "",
                  .exit_code = fields["ExitCode"]};
    auto array = fields.find("ArrayJobId");
    auto task = fields.find("ArrayTaskId");
    if (array != fields.end() && task != fields.end() && ToInt(array->second) &&
        ToInt(task->second)) {
      job.handle = StrCat(array->second, "_", task->second);
    }
    jobs.push_back(std::move(job));
  }
  return jobs;
}

std::vector<JobRecord> ParseSacct(std::string_view output) {
  std::vector<JobRecord> jobs;
  for (std::string_view line : Split(output, '\n', true)) {
    std::vector<std::string_view> fields = Split(TrimWhitespace(line), '|');
    if (fields.size() < 4 || fields[0].find('.') != std::string_view::npos) continue;
    std::string_view state = fields[1];
    state = state.substr(0, state.find(' '));  // "CANCELLED by 0"
    jobs.push_back(JobRecord{.handle = std::string(fields[0]),
                             .state = std::string(state),
                             .nodes = std::string(fields[2]),
                             .comment = "",
                             .exit_code = std::string(fields[3])});
  }
  return jobs;
}

std::optional<std::string> JobcompFileOf(std::string_view show_config) {
  std::string type, location;
  for (std::string_view line : Split(show_config, '\n')) {
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view key = TrimWhitespace(line.substr(0, eq));
    std::string_view value = TrimWhitespace(line.substr(eq + 1));
    if (key == "JobCompType") type = std::string(value);
    if (key == "JobCompLoc") location = std::string(value);
  }
  if (type != "jobcomp/filetxt" || location.empty()) return std::nullopt;
  return location;
}

Fate FateOf(const JobRecord& job, bool cancel_requested) {
  using Outcome = TaskReport::Outcome;
  const std::string& s = job.state;
  const std::string on = job.nodes.empty() || job.nodes == "(null)" || job.nodes == "None assigned"
                             ? ""
                             : StrCat(" on ", job.nodes);
  const std::string exit = job.exit_code.empty() ? "" : StrCat(" (exit code ", job.exit_code, ")");
  if (s == "PENDING" || s == "CONFIGURING" || s == "RUNNING" || s == "COMPLETING" ||
      s == "SUSPENDED" || s == "REQUEUED" || s == "REQUEUE_HOLD" || s == "REQUEUE_FED" ||
      s == "RESIZING" || s == "SIGNALING" || s == "STAGE_OUT" || s == "RESV_DEL_HOLD") {
    return Fate{.in_flight = true, .outcome = Outcome::kLost, .message = ""};
  }
  if (s == "NODE_FAIL" || s == "PREEMPTED" || s == "BOOT_FAIL") {
    return Fate{.in_flight = false,
                .outcome = Outcome::kLost,
                .message = StrCat("Slurm ", s, ": job ", job.handle, on,
                                  " ended without a report (not the task's fault); runs again")};
  }
  if (s == "TIMEOUT" || s == "DEADLINE") {
    return Fate{.in_flight = false,
                .outcome = Outcome::kTimedOut,
                .message = StrCat(
                    "Slurm ", s, ": job ", job.handle, on,
                    s == "TIMEOUT" ? " ran past its time limit (-t)" : " reached its deadline")};
  }
  if (s == "OUT_OF_MEMORY") {
    return Fate{.in_flight = false,
                .outcome = Outcome::kFailed,
                .message = StrCat("Slurm OUT_OF_MEMORY: job ", job.handle, on,
                                  " used more than its --mem", exit)};
  }
  if (s == "CANCELLED") {
    if (cancel_requested) {
      return Fate{.in_flight = false,
                  .outcome = Outcome::kCancelled,
                  .message = StrCat("Slurm CANCELLED: job ", job.handle, " (scancel by tierflow)")};
    }
    return Fate{.in_flight = false,
                .outcome = Outcome::kFailed,
                .message = StrCat("Slurm CANCELLED: job ", job.handle, on,
                                  " was cancelled outside tierflow")};
  }
  if (s == "FAILED") {
    return Fate{.in_flight = false,
                .outcome = Outcome::kFailed,
                .message = StrCat("Slurm FAILED: job ", job.handle, on,
                                  " failed before tierflow exec-task reported", exit)};
  }
  if (s == "COMPLETED") {
    return Fate{.in_flight = false,
                .outcome = Outcome::kLost,
                .message = StrCat("Slurm COMPLETED: job ", job.handle, on,
                                  " ended without a report; runs again")};
  }
  return Fate{.in_flight = false,
              .outcome = Outcome::kLost,
              .message = StrCat("Slurm ", s.empty() ? "(state unknown)" : s, ": job ", job.handle,
                                on, " ended without a report; runs again")};
}

bool EndedBySlurm(std::string_view state) {
  return state == "NODE_FAIL" || state == "PREEMPTED" || state == "BOOT_FAIL" ||
         state == "TIMEOUT" || state == "DEADLINE" || state == "OUT_OF_MEMORY";
}

}  // namespace tierflow::scheduler::slurm
