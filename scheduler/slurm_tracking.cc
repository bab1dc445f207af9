#include "scheduler/slurm_tracking.h"

#include <algorithm>

#include "absl/strings/str_join.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/units.h"
#include "nlohmann/json.hpp"

namespace tierflow::scheduler::slurm {
namespace {

std::vector<std::string_view> SplitOn(std::string_view text, char sep) {
  std::vector<std::string_view> pieces;
  for (size_t at = text.find(sep); at != std::string_view::npos; at = text.find(sep)) {
    pieces.push_back(text.substr(0, at));
    text.remove_prefix(at + 1);
  }
  pieces.push_back(text);
  return pieces;
}

}  // namespace

PollDecision NextPoll(std::chrono::milliseconds previous, bool changed,
                      const PollOptions& options) {
  if (previous.count() <= 0) return {options.min, "first round"};
  if (changed) return {options.min, "the run's jobs changed: asking again soon"};
  const std::chrono::milliseconds doubled = std::min(previous * 2, options.max);
  return {std::max(doubled, options.min), doubled >= options.max
                                              ? "nothing changed: at the longest interval"
                                              : "nothing changed: backing off"};
}

TrackingChoice TrackWithSacct(std::string_view show_config, bool ok) {
  if (!ok) return {false, "scontrol show config failed: squeue"};
  for (std::string_view line : SplitOn(show_config, '\n')) {
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    if (TrimWhitespace(line.substr(0, eq)) != "AccountingStorageType") continue;
    const std::string_view type = TrimWhitespace(line.substr(eq + 1));
    if (type.empty() || type == "accounting_storage/none") {
      return {false, "accounting is off (AccountingStorageType=accounting_storage/none): squeue"};
    }
    return {true, StrCat("accounting is on (AccountingStorageType=", type, "): sacct --name")};
  }
  return {false, "no AccountingStorageType in scontrol show config: squeue"};
}

std::vector<std::string> SacctTrackArgs(const std::string& job_name) {
  // sacct shows today's jobs by default: a run resumed days later still
  // wants its own, so a week back.
  return {"--parsable2",
          "--noheader",
          "--allusers",
          "--starttime=now-7days",
          StrCat("--name=", job_name),
          "--format=JobID,State,NodeList,ExitCode"};
}

std::vector<JobRecord> TrackedJobs(std::string_view sacct_output) {
  std::vector<JobRecord> jobs;
  for (JobRecord& job : ParseSacct(sacct_output)) {
    if (job.handle.find("_[") == std::string::npos) {
      jobs.push_back(std::move(job));
      continue;
    }
    // A pending array range, written as squeue would: ParseSqueue expands it.
    for (JobRecord& element :
         ParseSqueue(StrCat(job.handle, "|", job.state, "|", job.nodes, "|"))) {
      element.exit_code = job.exit_code;
      jobs.push_back(std::move(element));
    }
  }
  return jobs;
}

absl::StatusOr<PollOptions> ParsePollOptions(std::string_view text) {
  std::vector<std::string_view> parts = SplitOn(text, ',');
  if (parts.empty() || parts.size() > 2) {
    return absl::InvalidArgumentError(
        StrCat("--slurm-poll '", text, "': expected MIN or MIN,MAX, e.g. 2s,1m"));
  }
  auto duration = [text](std::string_view part) -> absl::StatusOr<Duration> {
    absl::StatusOr<Duration> parsed = ParseDuration(part);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          StrCat("--slurm-poll '", text, "': ", parsed.status().message()));
    }
    return parsed;
  };
  PollOptions options;
  TF_ASSIGN_OR_RETURN(options.min, duration(parts[0]));
  options.max = std::max(options.min, PollOptions().max);
  if (parts.size() == 2) {
    TF_ASSIGN_OR_RETURN(options.max, duration(parts[1]));
  }
  if (options.min.count() <= 0 || options.max < options.min) {
    return absl::InvalidArgumentError(
        StrCat("--slurm-poll '", text, "': MIN must be above 0 and MAX at least MIN"));
  }
  return options;
}

std::string SubmitOptionsJson(const SubmitOptions& options) {
  nlohmann::json json = {{"partition", options.partition},
                         {"account", options.account},
                         {"extra", options.extra},
                         {"array_throttle", options.array_throttle}};
  return json.dump();
}

absl::StatusOr<SubmitOptions> ParseSubmitOptionsJson(std::string_view text) {
  nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  auto bad = [&] {
    return absl::InvalidArgumentError(
        StrCat("the recorded Slurm options '", text, "' are not what this tierflow records"));
  };
  if (!json.is_object()) return bad();
  SubmitOptions options;
  for (const auto& [key, value] : json.items()) {
    if (key == "partition" && value.is_string()) {
      options.partition = value.get<std::string>();
    } else if (key == "account" && value.is_string()) {
      options.account = value.get<std::string>();
    } else if (key == "array_throttle" && value.is_number_integer()) {
      options.array_throttle = value.get<int>();
    } else if (key == "extra" && value.is_array()) {
      for (const nlohmann::json& arg : value) {
        if (!arg.is_string()) return bad();
        options.extra.push_back(arg.get<std::string>());
      }
    } else {
      return bad();
    }
  }
  return options;
}

std::string DescribeSubmitOptions(const SubmitOptions& options) {
  std::vector<std::string> parts;
  if (!options.partition.empty()) parts.push_back(StrCat("--slurm-partition ", options.partition));
  if (!options.account.empty()) parts.push_back(StrCat("--slurm-account ", options.account));
  for (const std::string& arg : options.extra) parts.push_back(StrCat("--slurm-option=", arg));
  if (options.array_throttle > 0) {
    parts.push_back(StrCat("--slurm-array-throttle ", options.array_throttle));
  }
  return parts.empty() ? "no --slurm-* options" : absl::StrJoin(parts, " ");
}

std::string DescribeExecutorOptions(const std::string& executor, const std::string& json) {
  if (executor == "slurm") {
    absl::StatusOr<SubmitOptions> options = ParseSubmitOptionsJson(json);
    if (options.ok()) return DescribeSubmitOptions(*options);
  }
  return json.empty() ? "no executor options" : StrCat("the executor options ", json);
}

}  // namespace tierflow::scheduler::slurm
