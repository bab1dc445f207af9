#include "api/gc_service.h"

#include <nlohmann/json.hpp>
#include <ostream>

#include "common/status.h"
#include "common/strings.h"
#include "common/units.h"
#include "storage_adapters/tier_factory.h"

namespace tierflow::api {
namespace {
using Json = nlohmann::ordered_json;

void WriteText(const scheduler::GcReport& report, std::ostream& out) {
  const char* verb = report.dry_run ? "would remove" : "removed";
  size_t collected = 0;
  for (const scheduler::GcVerdict& verdict : report.verdicts) {
    if (!verdict.collect) continue;
    ++collected;
    out << (report.dry_run ? "would collect " : "collected ") << verdict.run_id << ": "
        << verdict.reason << '\n';
  }
  for (const std::string& run : report.finished) {
    out << (report.dry_run ? "would finish " : "finished ") << run
        << ": its data was being deleted by a gc that stopped\n";
  }
  for (const std::string& run : report.released) {
    out << (report.dry_run ? "would release " : "released ") << run
        << ": no kept run reuses its remaining copies any more\n";
  }
  for (const scheduler::GcVerdict& verdict : report.verdicts) {
    if (!verdict.collect) out << "kept " << verdict.run_id << ": " << verdict.reason << '\n';
  }
  out << (report.dry_run ? "dry run: " : "") << verb << " the data of " << collected
      << (collected == 1 ? " run" : " runs");
  if (!report.finished.empty()) out << " (and finished " << report.finished.size() << ")";
  out << '\n';
  if (report.bytes.empty()) out << "no bytes freed\n";
  for (const auto& [tier, bytes] : report.bytes) {
    const auto files = report.files.find(tier);
    out << "  " << tier << ": " << FormatSize(bytes) << " (" << bytes << " bytes, "
        << (files == report.files.end() ? 0 : files->second) << " files)"
        << (report.dry_run ? " would be freed" : " freed") << '\n';
  }
  for (const std::string& tier : report.archive_kept) {
    out << "  " << tier << ": archive tier, nothing deleted\n";
  }
  for (const std::string& problem : report.problems) out << "problem: " << problem << '\n';
}

Json ToJson(const scheduler::GcReport& report) {
  Json json;
  json["dry_run"] = report.dry_run;
  json["collected"] = Json::array();
  json["kept"] = Json::array();
  for (const scheduler::GcVerdict& verdict : report.verdicts) {
    json[verdict.collect ? "collected" : "kept"].push_back(
        {{"run", verdict.run_id}, {"reason", verdict.reason}});
  }
  json["finished"] = report.finished;
  json["released"] = report.released;
  json["bytes_freed"] = Json::object();
  for (const auto& [tier, bytes] : report.bytes) json["bytes_freed"][tier] = bytes;
  json["files_deleted"] = Json::object();
  for (const auto& [tier, files] : report.files) json["files_deleted"][tier] = files;
  json["archive_tiers_kept"] = report.archive_kept;
  json["problems"] = report.problems;
  return json;
}

}  // namespace

absl::Status WriteGc(const std::string& db_path, const scheduler::GcOptions& options,
                     const std::string& output, std::ostream& out) {
  if (!options.keep_last && !options.older_than) {
    return absl::InvalidArgumentError(
        "gc needs a rule: --keep-last N (runs kept per pipeline) and/or --older-than D "
        "(7d, 12h, 30m)");
  }
  if (options.keep_last && *options.keep_last < 0) {
    return absl::InvalidArgumentError(
        StrCat("--keep-last ", std::to_string(*options.keep_last), ": expected 0 or more"));
  }
  if (output != "text" && output != "json") {
    return absl::InvalidArgumentError(StrCat("--output '", output, "': expected text or json"));
  }
  TF_ASSIGN_OR_RETURN(scheduler::GcReport report,
                      scheduler::CollectGarbage(db_path, options, storage::OpenTier));
  if (output == "json") {
    out << ToJson(report).dump(2) << '\n';
  } else {
    WriteText(report, out);
  }
  if (!report.problems.empty()) {
    return absl::InternalError(StrCat(std::to_string(report.problems.size()),
                                      " deletes failed; their runs stay recorded as being "
                                      "deleted, and the next gc tries them again"));
  }
  return absl::OkStatus();
}

}  // namespace tierflow::api
