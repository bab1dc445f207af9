// The command-line descriptions split out of main.cc (CLI11 is a heavy
// header: only main.cc and the files that describe commands include it):
// the flags every command shares, and the commands that look at runs. Each
// Add*Command adds the command to `app` with its flags bound to `options`
// and returns it.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>

#include "cli/inspect_commands.h"
#include "cli/lineage_export_commands.h"

namespace CLI {
class App;
class Validator;
}  // namespace CLI

namespace tierflow::cli {

// A whole number of at least `minimum`, with an error that says so (CLI11's
// ranges print their bounds as doubles).
CLI::Validator AtLeast(int64_t minimum);
// --db PATH: the state database.
void AddDbOption(CLI::App& command, std::string& db);
// --output/-o FORMAT, one of `formats`.
void AddOutputOption(CLI::App& command, std::string& output,
                     std::initializer_list<std::string> formats);

CLI::App* AddRunsCommand(CLI::App& app, RunsOptions& options);
CLI::App* AddShowCommand(CLI::App& app, ShowOptions& options);
CLI::App* AddLogsCommand(CLI::App& app, LogsOptions& options);
CLI::App* AddLineageCommand(CLI::App& app, LineageOptions& options);
// `tierflow lineage export`, a subcommand of `lineage`.
CLI::App* AddLineageExportCommand(CLI::App& lineage, LineageExportOptions& options);

}  // namespace tierflow::cli
