// The command lines of the commands that look at runs (runs, show, logs,
// lineage, lineage export) and the flags every command shares (--db,
// --output): command_line.h.
#include <CLI/CLI.hpp>
#include <charconv>
#include <cstdint>
#include <string>
#include <vector>

#include "cli/command_line.h"

namespace tierflow::cli {

CLI::Validator AtLeast(int64_t minimum) {
  return CLI::Validator(
      [minimum](std::string& text) -> std::string {
        int64_t value = 0;
        auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (error != std::errc() || end != text.data() + text.size()) {
          return "'" + text + "' is not a whole number";
        }
        if (value < minimum) return "must be at least " + std::to_string(minimum);
        return "";
      },
      minimum > 0 ? "POSITIVE" : "NONNEGATIVE");
}

void AddDbOption(CLI::App& command, std::string& db) {
  command
      .add_option("--db", db,
                  "State database (default: $TIERFLOW_DB, else .tierflow/tierflow.db); "
                  "artifacts and logs live beside it")
      ->type_name("PATH");
}

void AddOutputOption(CLI::App& command, std::string& output,
                     std::initializer_list<std::string> formats) {
  command.add_option("--output,-o", output, "Output format")
      ->check(CLI::IsMember(std::vector<std::string>(formats)))
      ->capture_default_str();
}

namespace {

// --scheduler HOST:PORT of the commands that read a run: ask a server.
void AddAskSchedulerOption(CLI::App& command, std::string& scheduler) {
  command
      .add_option("--scheduler", scheduler,
                  "Ask this scheduler ('tierflow server') instead of the local database")
      ->type_name("HOST:PORT");
}

}  // namespace

CLI::App* AddRunsCommand(CLI::App& app, RunsOptions& options) {
  CLI::App* command = app.add_subcommand(
      "runs",
      "List the runs in the state database, newest first. Each shows its id, pipeline, state, "
      "tasks done of all, failed tasks, start time and duration. A run still marked running whose "
      "tierflow "
      "process is gone (killed, or the machine rebooted) shows as 'running (engine gone)' "
      "with the command that resumes it. --output json gives every field for scripts. Exits 0, "
      "or 1 when there is no database.");
  AddDbOption(*command, options.db);
  command
      ->add_option("--scheduler", options.scheduler,
                   "List the newest 20 runs of this scheduler ('tierflow server') instead")
      ->type_name("HOST:PORT");
  command->add_option("--limit,-n", options.limit, "Show the newest N runs; 0 shows all")
      ->check(AtLeast(0))
      ->type_name("N")
      ->capture_default_str();
  command->add_option("--state", options.state, "Only runs in this state")
      ->check(CLI::IsMember({"running", "succeeded", "failed", "cancelled"}))
      ->type_name("STATE");
  AddOutputOption(*command, options.output, {"text", "json"});
  command->footer(
      "Examples:\n  tierflow runs\n  tierflow runs --state failed --limit 5\n"
      "  tierflow runs --output json --db /scratch/tierflow.db");
  return command;
}

CLI::App* AddShowCommand(CLI::App& app, ShowOptions& options) {
  CLI::App* command = app.add_subcommand(
      "show",
      "Show one run in detail. First its pipeline, state, params, times and task counts, then "
      "every task in plan order with its state, attempts, duration and failure reason (each "
      "attempt of a "
      "retried task below it: state, exit code or signal, duration, what a cached attempt "
      "reused), then every output with its size, content hash and copies. RUN may be 'last'. "
      "Exits 0, or 1 when the run or the database does not exist.");
  command->add_option("run", options.run, "Run id (see 'tierflow runs'), or last")
      ->required()
      ->type_name("RUN");
  AddDbOption(*command, options.db);
  command->add_flag("--attempts,-a", options.attempts, "List every attempt of every task");
  AddOutputOption(*command, options.output, {"text", "json"});
  command->footer(
      "Examples:\n  tierflow show quickstart-3f9a1c\n  tierflow show last --attempts\n"
      "  tierflow show last --output json");
  return command;
}

CLI::App* AddLogsCommand(CLI::App& app, LogsOptions& options) {
  CLI::App* command = app.add_subcommand(
      "logs",
      "Print the log (stdout and stderr) of a task's latest attempt, or of --attempt N. With "
      "-f, keep printing lines as they are written until the attempt ends, going on to each "
      "newer attempt of the task (a retry) until the task is done; a task that has not started "
      "is waited for, and -f exits 1 saying why when it never will (an upstream task failed, "
      "it was cancelled, the run ended, its engine is gone). A cached task's log is "
      "that of the attempt whose outputs it reused. Without a TASK: every task's log in plan "
      "order, each line prefixed with its task id (--failed: only failed tasks; --stage: only "
      "those stages'), or with -f what the running tasks write until the run ends. RUN may be "
      "'last'. Exits 0, or 1 when the run, task, stage or attempt does not exist.");
  command->add_option("run", options.run, "Run id (see 'tierflow runs'), or last")
      ->required()
      ->type_name("RUN");
  command->add_option("task", options.task, "Task id, e.g. train or ingest[0]; none: every task")
      ->type_name("TASK");
  command->add_flag("--failed", options.failed, "Without a TASK: only the failed tasks' logs");
  command
      ->add_option("--stage", options.stages,
                   "Without a TASK: only this stage's tasks (repeatable)")
      ->type_name("STAGE");
  command->add_option("--attempt", options.attempt, "Attempt number (default: the latest)")
      ->check(AtLeast(1))
      ->type_name("N");
  command->add_flag("--follow,-f", options.follow, "Keep printing until the task is done");
  AddDbOption(*command, options.db);
  AddAskSchedulerOption(*command, options.scheduler);
  command->footer(
      "Examples:\n  tierflow logs quickstart-3f9a1c train\n  tierflow logs last 'ingest[0]' "
      "--attempt 1\n  tierflow logs -f last train\n  tierflow logs last --failed\n"
      "  tierflow logs last --stage ingest -f");
  return command;
}

CLI::App* AddLineageCommand(CLI::App& app, LineageOptions& options) {
  CLI::App* command = app.add_subcommand(
      "lineage",
      "Show where data came from and where it went. For a RUN: every attempt of the run "
      "that consumed or produced an artifact, and those artifacts. For an ARTIFACT, written "
      "RUN/TASK/OUTPUT (quickstart-3f9a1c/train/model, last/ingest[0]/raw) or #ID: what it "
      "was made from (--upstream) and what was made from it (--downstream), both by default, "
      "across runs where a cached task reused an earlier run's outputs. --output json gives "
      "nodes and edges; dot a Graphviz graph (tierflow lineage RUN -o dot | dot -Tsvg). Exits "
      "0, 1 when the run or artifact does not exist, 2 on a usage error.");
  // Required unless a subcommand (export) is given: checked after parsing.
  command->add_option("target", options.target, "A run, or an artifact: RUN/TASK/OUTPUT or #ID")
      ->type_name("RUN|ARTIFACT");
  command->add_flag("--upstream", options.upstream, "Only what the artifact was made from");
  command->add_flag("--downstream", options.downstream, "Only what was made from the artifact");
  command
      ->add_option("--depth", options.depth,
                   "At most N task steps from the artifact (default: no limit)")
      ->check(AtLeast(0))
      ->type_name("N");
  AddOutputOption(*command, options.output, {"text", "json", "dot"});
  AddDbOption(*command, options.db);
  AddAskSchedulerOption(*command, options.scheduler);
  command->footer(
      "Examples:\n  tierflow lineage last\n  tierflow lineage quickstart-3f9a1c/train/model "
      "--upstream\n  tierflow lineage '#42' --downstream --depth 1\n"
      "  tierflow lineage quickstart-3f9a1c --output dot | dot -Tsvg > lineage.svg");
  return command;
}

CLI::App* AddLineageExportCommand(CLI::App& lineage, LineageExportOptions& options) {
  CLI::App* command = lineage.add_subcommand(
      "export",
      "Write a run's OpenLineage events (spec 2-0-2) as NDJSON, one event per line, for offline "
      "import: the run's START and end, and each task attempt's START and end with its input "
      "and output datasets, rendered from the store (docs/lineage-export.md). Exits 0, 1 when "
      "the run does not exist or FILE cannot be written, 2 on a usage error.");
  command->add_option("run", options.run, "The run: an id, or last")->type_name("RUN");
  command->add_flag("--rejected", options.rejected,
                    "Instead: the events the endpoint rejected (a 4xx), parked in the store's "
                    "outbox, each with the endpoint's answer and the body");
  command->add_option("--format", options.format, "What to write (default: openlineage)")
      ->check(CLI::IsMember({"openlineage"}))
      ->type_name("FORMAT");
  command->add_option("-o,--output", options.file, "Write to FILE instead of standard output")
      ->type_name("FILE");
  AddDbOption(*command, options.db);
  command->footer(
      "Examples:\n  tierflow lineage export last --format openlineage\n"
      "  tierflow lineage export quickstart-3f9a1c -o quickstart.ndjson\n"
      "  tierflow lineage export --rejected");
  return command;
}

}  // namespace tierflow::cli
