// PrintRunSummary (run_summary.h).
#include "cli/run_summary.h"

#include <algorithm>
#include <ostream>

#include "api/run_failures.h"
#include "cli/live_display.h"
#include "cli/terminal_style.h"
#include "common/strings.h"
#include "common/units.h"

namespace tierflow::cli {
namespace {

// ` --db DB`, quoted, when the user gave one.
std::string DbSuffix(const std::string& db_flag) {
  return db_flag.empty() ? "" : StrCat(" --db ", ShellQuote(db_flag));
}

void PrintStageTable(const std::vector<api::StageSummary>& stages, bool color, std::ostream& out) {
  std::vector<std::vector<std::string>> rows = {{"STAGE", "KIND", "TASKS", "SUCCEEDED", "CACHED",
                                                 "FAILED", "UPSTREAM_FAILED", "CANCELLED",
                                                 "TASK TIME"}};
  for (const api::StageSummary& s : stages) {
    rows.push_back({s.stage, s.kind, std::to_string(s.tasks), std::to_string(s.succeeded),
                    std::to_string(s.cached), std::to_string(s.failed),
                    std::to_string(s.upstream_failed), std::to_string(s.cancelled),
                    FormatDuration(s.busy)});
  }
  std::vector<size_t> widths(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  // Non-zero failure counts in their state's colour.
  const char* const kStateOfColumn[] = {"",          "", "", "", "", "failed", "upstream_failed",
                                        "cancelled", ""};
  for (size_t r = 0; r < rows.size(); ++r) {
    const auto& row = rows[r];
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      // Names left-aligned, numbers right-aligned.
      std::string cell = row[i];
      std::string pad(widths[i] - cell.size(), ' ');
      if (r > 0 && cell != "0") cell = PaintState(color, kStateOfColumn[i], cell);
      line += i < 2 ? cell + pad : pad + cell;
      if (i + 1 < row.size()) line += "  ";
    }
    out << TrimWhitespace(line) << '\n';
  }
}

void PrintFailures(const SummaryInput& in, std::ostream& out) {
  api::FailureOptions options;
  options.limit = kFailuresListed;
  options.tail_lines = 5;
  options.db_flag = in.db_flag;
  absl::StatusOr<api::FailureList> list = api::ListFailures(in.db_flag, in.run_id, options);
  if (!list.ok()) {
    out << "\n(the failed tasks could not be read: " << list.status().message() << ")\n";
    return;
  }
  for (const api::FailureReport& f : list->failures) {
    std::string message = f.task.message;
    if (message.empty() && !f.task.attempts.empty()) message = f.task.attempts[0].message;
    out << '\n'
        << PaintState(in.color, "failed", "failed") << ": " << Paint(in.color, kBold, f.task.id)
        << ": " << message << '\n';
    if (f.log_cut && !f.log_tail.empty()) out << "    …\n";
    for (const std::string& line : f.log_tail) out << "    " << line << '\n';
    if (f.log_tail.empty() && !f.log_note.empty()) out << "    (" << f.log_note << ")\n";
    out << "  logs: " << f.logs_command << '\n';
  }
  if (list->total > list->failures.size()) {
    out << "\nand " << list->total - list->failures.size() << " more: tierflow logs "
        << ShellQuote(in.run_id) << " --failed" << DbSuffix(in.db_flag) << '\n';
  }
}

}  // namespace

void PrintRunSummary(const SummaryInput& in, std::ostream& out) {
  out << "\n";
  PrintStageTable(in.stages, in.color, out);
  if (in.counts.failed > 0) PrintFailures(in, out);
  // A write-back that failed (a full tier, say) fails the run, not a task.
  for (const std::string& failure : in.write_back_failures) {
    out << "\nwrite-back failed: " << failure << '\n';
  }
  const std::string state(api::RunStateName(in.state));
  out << "\nrun " << in.run_id << " " << PaintState(in.color, state, state) << " in "
      << FormatDuration(in.elapsed) << " (" << CountsText(in.counts, in.color) << ")\n";
  const std::string db = DbSuffix(in.db_flag);
  out << "details: tierflow show " << in.run_id << db << "; lineage: tierflow lineage " << in.run_id
      << db << "\n";
  if (in.state != api::RunState::kSucceeded) {
    out << "finish it: tierflow resume " << in.run_id << db << "\n";
  }
}

}  // namespace tierflow::cli
