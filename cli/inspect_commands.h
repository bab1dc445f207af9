// `tierflow runs`, `show`, `logs` and `lineage`: the commands that look at
// runs recorded in the state database, read-only, while or after they run.
// Kept apart from argument parsing (main.cc) like the other commands; they
// talk only to api/run_service. Exit codes as in commands.h: 0 done, 1 for
// a missing database or an unknown run, task, attempt or artifact, 2 for a
// usage error.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace tierflow::cli {

struct RunsOptions {
  std::string db;               // "" : $TIERFLOW_DB or .tierflow/tierflow.db
  int64_t limit = 20;           // newest first; 0 = all
  std::string state;            // "" = any
  std::string output = "text";  // text | json
  std::string scheduler;        // set: list that server's runs
};

struct ShowOptions {
  std::string run;  // id, or last/latest
  std::string db;
  std::string output = "text";  // text | json
  bool attempts = false;        // every attempt of every task, not only retried ones
};

struct LogsOptions {
  std::string run;                  // id, or last/latest
  std::string task;                 // "": every task's log, prefixed
  bool failed = false;              // without a task: only failed tasks
  std::vector<std::string> stages;  // without a task: only these stages
  int64_t attempt = 0;              // 0 = the latest
  bool follow = false;
  std::string db;
  std::string scheduler;  // set: read it from that server (token: TIERFLOW_TOKEN)
};

struct LineageOptions {
  std::string target;  // a run (id, last, latest) or an artifact (RUN/TASK/OUTPUT, #ID)
  bool upstream = false;
  bool downstream = false;      // neither or both: both directions
  int64_t depth = -1;           // task steps; -1 = unbounded
  std::string output = "text";  // text | json | dot
  std::string db;
  std::string scheduler;  // set: ask that server (token: TIERFLOW_TOKEN)
};

int RunRuns(const RunsOptions& options, std::ostream& out, std::ostream& err);
int RunShow(const ShowOptions& options, std::ostream& out, std::ostream& err);
// The log goes to `out` byte for byte; remarks (a cached attempt's source,
// a switch to a newer attempt) to `err`.
int RunLogs(const LogsOptions& options, std::ostream& out, std::ostream& err);
int RunLineage(const LineageOptions& options, std::ostream& out, std::ostream& err);

}  // namespace tierflow::cli
